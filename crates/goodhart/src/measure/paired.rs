//! Paired contrasts over prompts, stratified by seed: the statistics every
//! verdict rests on.
//!
//! A *cell* is one quantity (gold, proxy, a feature...) of one policy measured
//! on a split's prompts: per seed, one value per prompt. Every policy of a task
//! is measured on the same prompts (the first n of the split), so a difference
//! of cells is paired: prompt difficulty, which dominates each cell's own
//! standard error, cancels. A contrast is a weighted sum of cells, estimated as
//! the mean over seeds of its per-seed prompt means.
//!
//! Its uncertainty is a bootstrap over prompts, stratified by seed: each
//! resample redraws every seed's prompts with replacement (one draw of indices
//! for all cells, so the pairing is kept). Seeds are held fixed: a verdict is a
//! statement about the policies this run trained, and how far those vary
//! between seeds is reported beside it (each seed's own test), not folded in.
//!
//! Tests use the centred draws (the basic bootstrap): a contrast is above 0 at
//! level a when fewer than a share a of the centred draws reach its estimate;
//! its 95% interval is `estimate - quantiles of (draw - estimate)`, so interval
//! and test agree. A family of contrasts tested together (every candidate peak
//! of a curve) uses the max-T adjustment: each contrast's z against the
//! distribution of the largest centred z of the family, which holds the
//! family-wise error rate whatever the correlation between the contrasts. Several
//! strategies tested for one prediction are adjusted by Holm's step-down.
//! The error rates of the rules built on these are measured by simulation in
//! the analysis layer (its `findings::validate`).

use rand::Rng as _;

use super::bootstrap::{Interval, RESAMPLES};
use crate::rng::Rng;

/// The level of every test (two-sided intervals are 95%).
pub const ALPHA: f64 = 0.05;

/// Spreads and estimates below this are rounding, not measurement.
const SPREAD_FLOOR: f64 = 1e-9;

/// z for 80% power in a two-sided test at [`ALPHA`]: 1.96 + 0.84.
const DETECTABLE_Z: f64 = 2.8;

/// Cells measured on the same prompts, with one set of bootstrap draws of each
/// cell's mean: `means[b][cell]`.
pub struct Paired {
    estimate: Vec<f64>,
    draws: Vec<Vec<f64>>,
    /// Prompts per seed, after cutting every cell of a seed to the common prefix.
    pub prompts: Vec<usize>,
}

/// The mean over seeds of each seed's mean over the prompts `idx[s]` (all prompts when None).
fn seed_mean(cell: &[&[f64]], prompts: &[usize], idx: Option<&[Vec<u32>]>) -> f64 {
    let per_seed = cell.iter().zip(prompts).enumerate().map(|(s, (v, &n))| {
        let sum: f64 = match idx {
            Some(idx) => idx[s].iter().map(|&i| v[i as usize]).sum(),
            None => v[..n].iter().sum(),
        };
        sum / n as f64
    });
    per_seed.sum::<f64>() / cell.len() as f64
}

impl Paired {
    /// `cells[c][s]`: cell c's per-prompt values in seed s, the split's prompts in
    /// order. Cells of one seed are cut to their common prefix of prompts. None
    /// when there is no seed, or a seed has no prompt common to every cell.
    pub fn new(cells: &[Vec<&[f64]>], rng: &mut Rng) -> Option<Self> {
        Self::with_resamples(cells, RESAMPLES, rng)
    }

    pub fn with_resamples(cells: &[Vec<&[f64]>], resamples: usize, rng: &mut Rng) -> Option<Self> {
        let seeds = cells.first()?.len();
        if seeds == 0 || cells.iter().any(|c| c.len() != seeds) {
            return None;
        }
        let prompts: Vec<usize> = (0..seeds)
            .map(|s| cells.iter().map(|c| c[s].len()).min().unwrap_or(0))
            .collect();
        if prompts.contains(&0) {
            return None;
        }
        let estimate = cells.iter().map(|c| seed_mean(c, &prompts, None)).collect();
        let mut idx: Vec<Vec<u32>> = prompts.iter().map(|&n| vec![0; n]).collect();
        let draws = (0..resamples)
            .map(|_| {
                for (s, seed_idx) in idx.iter_mut().enumerate() {
                    for i in seed_idx.iter_mut() {
                        *i = rng.random_range(0..prompts[s] as u32);
                    }
                }
                cells
                    .iter()
                    .map(|c| seed_mean(c, &prompts, Some(&idx)))
                    .collect()
            })
            .collect();
        Some(Self {
            estimate,
            draws,
            prompts,
        })
    }

    /// Cell `a` minus cell `b`.
    pub fn difference(&self, a: usize, b: usize) -> Difference {
        self.contrast(&[(a, 1.0), (b, -1.0)])
    }

    /// The weighted sum of cells `sum w * cell`.
    pub fn contrast(&self, terms: &[(usize, f64)]) -> Difference {
        let of = |means: &[f64]| terms.iter().map(|&(c, w)| w * means[c]).sum::<f64>();
        let estimate = of(&self.estimate);
        let centred: Vec<f64> = self.draws.iter().map(|d| of(d) - estimate).collect();
        Difference::new(estimate, centred)
    }
}

/// One contrast: its estimate, and its centred bootstrap draws.
#[derive(Clone, Debug)]
pub struct Difference {
    pub estimate: f64,
    /// Bootstrap standard error.
    pub se: f64,
    /// 95% basic-bootstrap interval.
    pub interval: Interval,
    centred: Vec<f64>,
}

impl Difference {
    fn new(estimate: f64, mut centred: Vec<f64>) -> Self {
        let n = centred.len().max(1) as f64;
        let mut se = (centred.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
        // Sums of equal values differ in their last bits: no spread, not evidence.
        if se < SPREAD_FLOOR {
            se = 0.0;
            centred.iter_mut().for_each(|x| *x = 0.0);
        }
        let estimate = if estimate.abs() < SPREAD_FLOOR {
            0.0
        } else {
            estimate
        };
        let q = Interval::of(&centred).unwrap_or(Interval { lo: 0.0, hi: 0.0 });
        Self {
            estimate,
            se,
            interval: Interval {
                lo: estimate - q.hi,
                hi: estimate - q.lo,
            },
            centred,
        }
    }

    /// One-sided p-value against "at most 0" (small when the contrast is above 0).
    pub fn p_above(&self) -> f64 {
        if self.se == 0.0 {
            return if self.estimate > 0.0 {
                1.0 / (1 + self.centred.len()) as f64
            } else {
                1.0
            };
        }
        let reach = self.centred.iter().filter(|&&x| x >= self.estimate).count();
        (1 + reach) as f64 / (1 + self.centred.len()) as f64
    }

    /// The same contrast turned round (b - a).
    pub fn negated(&self) -> Self {
        Self {
            estimate: -self.estimate,
            se: self.se,
            interval: Interval {
                lo: -self.interval.hi,
                hi: -self.interval.lo,
            },
            centred: self.centred.iter().map(|x| -x).collect(),
        }
    }

    /// Above 0 beyond noise: the 95% interval is above 0 (a two-sided test at [`ALPHA`]).
    pub fn above(&self) -> bool {
        self.interval.lo > 0.0
    }

    pub fn below(&self) -> bool {
        self.interval.hi < 0.0
    }

    /// The smallest change this contrast detects with 80% power (two-sided, [`ALPHA`]).
    pub fn detectable(&self) -> f64 {
        DETECTABLE_Z * self.se
    }

    /// "0.23 [0.14, 0.31]".
    pub fn shown(&self) -> String {
        format!(
            "{:+.3} [{:+.3}, {:+.3}]",
            self.estimate, self.interval.lo, self.interval.hi
        )
    }
}

/// Max-T adjusted one-sided p-values of a family of contrasts each tested for
/// "above 0": contrast j's z against the distribution of the largest centred z of
/// the family (all from the same bootstrap draws).
pub fn max_t_adjusted(family: &[&Difference]) -> Vec<f64> {
    let Some(first) = family.first() else {
        return vec![];
    };
    let z = |d: &Difference, x: f64| if d.se > 0.0 { x / d.se } else { 0.0 };
    let largest: Vec<f64> = (0..first.centred.len())
        .map(|b| {
            family
                .iter()
                .map(|d| z(d, d.centred[b]))
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    family
        .iter()
        .map(|d| {
            // A contrast with no spread is no evidence either way.
            if d.se <= 0.0 {
                return 1.0;
            }
            let zj = d.estimate / d.se;
            let reach = largest.iter().filter(|&&m| m >= zj).count();
            (1 + reach) as f64 / (1 + largest.len()) as f64
        })
        .collect()
}

/// Holm's step-down adjustment of p-values (family-wise error rate, any dependence).
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![1.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

/// A turn: a point above the first and above the last, tested together over
/// every candidate point (max-T), each condition at once (intersection-union).
#[derive(Clone, Debug)]
pub struct Turn {
    /// The candidate point with the smallest p-value.
    pub at: usize,
    /// Point `at` against the first point, and against the last.
    pub rise: Difference,
    pub fall: Difference,
    /// Its p-value (max-T adjusted over the candidates).
    pub p: f64,
}

/// Whether a series turns over between its first and last point: for the
/// candidates (points strictly between), `rise[k]` is point k minus the first
/// and `fall[k]` point k minus the last, all from one [`Paired`].
pub fn turn(rise: Vec<Difference>, fall: Vec<Difference>) -> Option<Turn> {
    if rise.is_empty() || rise.len() != fall.len() {
        return None;
    }
    let family: Vec<&Difference> = rise.iter().chain(&fall).collect();
    let adjusted = max_t_adjusted(&family);
    let k = rise.len();
    let at = (0..k)
        .min_by(|&a, &b| {
            let pa = adjusted[a].max(adjusted[k + a]);
            let pb = adjusted[b].max(adjusted[k + b]);
            pa.total_cmp(&pb)
                .then(rise[b].estimate.total_cmp(&rise[a].estimate))
        })
        .unwrap_or(0);
    let p = adjusted[at].max(adjusted[k + at]);
    Some(Turn {
        at,
        rise: rise[at].clone(),
        fall: fall[at].clone(),
        p,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;

    #[test]
    fn a_paired_difference_cancels_what_the_prompts_share() {
        // Prompt difficulty varies a lot; the second point is the first plus 0.1 and small noise.
        let mut rng = Rng::seed_from_u64(3);
        let base: Vec<f64> = (0..64).map(|_| rng.random::<f64>() * 2.0 - 1.0).collect();
        let moved: Vec<f64> = base
            .iter()
            .map(|b| b + 0.1 + 0.05 * (rng.random::<f64>() - 0.5))
            .collect();
        let p = Paired::new(&[vec![&base[..]], vec![&moved[..]]], &mut rng).unwrap();
        let d = p.difference(1, 0);
        assert!((d.estimate - 0.1).abs() < 0.01, "{d:?}");
        assert!(d.above() && d.p_above() < 0.01, "{}", d.shown());
        // Each level's own error is many times the paired difference's.
        let level = p.contrast(&[(0, 1.0)]).se;
        assert!(level > 10.0 * d.se, "{level} vs {}", d.se);
        assert!(d.interval.contains(0.1));
        let back = d.negated();
        assert!(back.below() && back.p_above() > 0.99);
    }

    #[test]
    fn holm_adjusts_step_down_and_keeps_order() {
        let a = holm(&[0.01, 0.04, 0.03, 0.5]);
        assert_eq!(a, vec![0.04, 0.09, 0.09, 0.5]);
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn cells_are_cut_to_the_prompts_they_share() {
        let a = [1.0, 2.0, 3.0, 100.0];
        let b = [1.0, 2.0, 3.0];
        let mut rng = Rng::seed_from_u64(0);
        let p = Paired::with_resamples(&[vec![&a[..]], vec![&b[..]]], 50, &mut rng).unwrap();
        assert_eq!(p.prompts, vec![3]);
        assert_eq!(p.difference(0, 1).estimate, 0.0);
        assert!(Paired::new(&[vec![&a[..]], vec![&[][..]]], &mut rng).is_none());
    }
}
