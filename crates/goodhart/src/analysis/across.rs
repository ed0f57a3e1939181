//! A figure across seeds: its mean with a 95% Student t-interval.

use serde::Serialize;

/// Two-sided 95% Student t quantile for `df` degrees of freedom.
fn t95(df: usize) -> f64 {
    const T: [f64; 10] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    ];
    match df {
        0 => f64::NAN,
        1..=10 => T[df - 1],
        11..=20 => 2.2 - (df - 10) as f64 * 0.0114,
        _ => 1.96 + 2.4 / df as f64,
    }
}

/// A mean over seeds with its 95% t-interval half-width (NaN with one seed).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct AcrossSeeds {
    pub mean: f64,
    pub half_width: f64,
    pub seeds: usize,
}

impl AcrossSeeds {
    pub fn of(xs: &[f64]) -> Self {
        let xs: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n.max(1) as f64;
        let half_width = if n > 1 {
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            t95(n - 1) * (var / n as f64).sqrt()
        } else {
            f64::NAN
        };
        AcrossSeeds {
            mean: if n > 0 { mean } else { f64::NAN },
            half_width,
            seeds: n,
        }
    }

    /// "mean ±half-width"; the mean alone with one seed; "-" with none.
    pub fn show(&self) -> String {
        if self.seeds == 0 {
            "-".to_string()
        } else if self.half_width.is_finite() {
            format!("{:.3} ±{:.3}", self.mean, self.half_width)
        } else {
            format!("{:.3}", self.mean)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn across_seed_interval_is_a_t_interval() {
        let s = AcrossSeeds::of(&[1.0, 2.0, 3.0]);
        assert_eq!(s.mean, 2.0);
        // sd 1, n 3, t(2) = 4.303.
        assert!((s.half_width - 4.303 / 3f64.sqrt()).abs() < 1e-9);
        assert!(AcrossSeeds::of(&[1.0]).half_width.is_nan());
    }
}
