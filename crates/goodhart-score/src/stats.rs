//! Small statistics: means with standard errors, correlation.

use serde::{Deserialize, Serialize};

/// A mean with its standard error (NaN for no data: written as JSON null, read back as NaN).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    #[serde(deserialize_with = "null_as_nan")]
    pub mean: f64,
    #[serde(deserialize_with = "null_as_nan")]
    pub stderr: f64,
    pub n: usize,
}

/// JSON has no NaN: serde_json writes it as null; this reads null back as NaN.
pub fn null_as_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

impl Stat {
    pub fn of(xs: &[f64]) -> Self {
        let n = xs.len();
        if n == 0 {
            return Stat {
                mean: f64::NAN,
                stderr: f64::NAN,
                n: 0,
            };
        }
        let mean = xs.iter().sum::<f64>() / n as f64;
        let stderr = if n > 1 {
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        } else {
            0.0
        };
        Stat { mean, stderr, n }
    }

    /// A weighted mean (importance sampling) with the standard error from the effective sample size.
    pub fn weighted(xs: &[f64], ws: &[f64]) -> Self {
        let total: f64 = ws.iter().sum();
        if xs.is_empty() || total <= 0.0 {
            return Stat {
                mean: f64::NAN,
                stderr: f64::NAN,
                n: 0,
            };
        }
        let mean = xs.iter().zip(ws).map(|(x, w)| x * w).sum::<f64>() / total;
        let var = xs
            .iter()
            .zip(ws)
            .map(|(x, w)| w * (x - mean).powi(2))
            .sum::<f64>()
            / total;
        let ess = effective_sample_size(ws);
        Stat {
            mean,
            stderr: (var / ess.max(1.0)).sqrt(),
            n: xs.len(),
        }
    }
}

/// Kish's effective sample size of importance weights.
pub fn effective_sample_size(ws: &[f64]) -> f64 {
    let s: f64 = ws.iter().sum();
    let s2: f64 = ws.iter().map(|w| w * w).sum();
    if s2 > 0.0 {
        s * s / s2
    } else {
        0.0
    }
}

/// Pearson correlation; NaN when either side is constant.
pub fn pearson(xs: &[f64], ys: &[f64]) -> f64 {
    let n = xs.len().min(ys.len());
    if n < 2 {
        return f64::NAN;
    }
    let (mx, my) = (
        xs[..n].iter().sum::<f64>() / n as f64,
        ys[..n].iter().sum::<f64>() / n as f64,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (dx, dy) = (xs[i] - mx, ys[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    sxy / (sxx * syy).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_stderr_and_correlation() {
        let s = Stat::of(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.stderr - (1.666_666_666_666_666_7f64 / 4.0).sqrt()).abs() < 1e-12);
        assert!((pearson(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.5]) - 0.9986).abs() < 1e-3);
        assert!(pearson(&[1.0, 1.0], &[1.0, 2.0]).is_nan());
        let w = Stat::weighted(&[0.0, 10.0], &[3.0, 1.0]);
        assert_eq!(w.mean, 2.5);
        assert!((effective_sample_size(&[1.0, 1.0, 1.0, 1.0]) - 4.0).abs() < 1e-12);
    }
}
