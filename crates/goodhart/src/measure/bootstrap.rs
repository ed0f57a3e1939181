//! Bootstrap over prompts: resample the evaluation prompts with replacement,
//! rebuild every point of a curve from its per-prompt values, and recompute
//! whatever is derived from the curve (fits, peaks, best gold within a KL
//! budget). Prompts are the unit of sampling; the points of one curve share
//! them, so each resample keeps the points paired.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::rng::Rng;
use crate::score::PerPrompt;

/// Resamples drawn for every curve.
pub const RESAMPLES: usize = 1000;

/// A 95% percentile interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// The 2.5th and 97.5th percentiles of the finite values; None when there are none.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            // Linear interpolation between order statistics (numpy's default).
            let pos = q * (v.len() - 1) as f64;
            let (i, frac) = (pos.floor() as usize, pos.fract());
            let next = v[(i + 1).min(v.len() - 1)];
            v[i] + frac * (next - v[i])
        };
        Some(Interval {
            lo: at(0.025),
            hi: at(0.975),
        })
    }

    pub fn contains(&self, x: f64) -> bool {
        self.lo <= x && x <= self.hi
    }
}

/// Per-point means of KL and gold over one draw of prompt indices.
pub struct Resample {
    pub kl: Vec<f64>,
    pub gold: Vec<f64>,
}

/// `resamples` draws of a curve whose points carry per-prompt values over the
/// split's first prompts (cut to the prefix every point has); None when some point has none.
pub fn resample_curve(
    points: &[&PerPrompt],
    resamples: usize,
    rng: &mut Rng,
) -> Option<Vec<Resample>> {
    let n = points.iter().map(|p| p.gold.len().min(p.kl.len())).min()?;
    if n == 0 {
        return None;
    }
    let mut out = Vec::with_capacity(resamples);
    let mut idx = vec![0usize; n];
    for _ in 0..resamples {
        for i in idx.iter_mut() {
            *i = rng.random_range(0..n);
        }
        let mean = |v: &[f64]| idx.iter().map(|&i| v[i]).sum::<f64>() / n as f64;
        out.push(Resample {
            kl: points.iter().map(|p| mean(&p.kl)).collect(),
            gold: points.iter().map(|p| mean(&p.gold)).collect(),
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn percentile_interval_of_the_mean_covers_the_truth_at_about_the_nominal_rate() {
        // 200 experiments of 50 prompts each, gold ~ Bernoulli(0.3): the 95% interval
        // of the mean should hold 0.3 in roughly 95% of them (and not in all).
        let mut rng = Rng::seed_from_u64(11);
        let mut covered = 0;
        for _ in 0..200 {
            let gold: Vec<f64> = (0..50)
                .map(|_| f64::from(rng.random::<f64>() < 0.3))
                .collect();
            let point = PerPrompt {
                kl: vec![0.0; 50],
                gold,
                ..PerPrompt::default()
            };
            let draws = resample_curve(&[&point], 400, &mut rng).unwrap();
            let means: Vec<f64> = draws.iter().map(|r| r.gold[0]).collect();
            if Interval::of(&means).unwrap().contains(0.3) {
                covered += 1;
            }
        }
        assert!((175..=199).contains(&covered), "covered {covered} of 200");
    }

    #[test]
    fn points_are_resampled_on_the_prompts_they_share() {
        let a = PerPrompt {
            kl: vec![0.0; 3],
            gold: vec![1.0; 3],
            ..PerPrompt::default()
        };
        let b = PerPrompt {
            kl: vec![0.0; 2],
            gold: vec![1.0; 2],
            ..PerPrompt::default()
        };
        let mut rng = Rng::seed_from_u64(0);
        let draws = resample_curve(&[&a, &b], 10, &mut rng).unwrap();
        assert!(draws.iter().all(|r| r.gold == [1.0, 1.0]));
        let none = PerPrompt::default();
        assert!(resample_curve(&[&a, &none], 10, &mut rng).is_none());
        assert_eq!(Interval::of(&[f64::NAN]), None);
        let i = Interval::of(&[1.0, 2.0, 3.0, 4.0, 5.0]).unwrap();
        assert!((i.lo - 1.1).abs() < 1e-12 && (i.hi - 4.9).abs() < 1e-12);
    }
}
