//! Review and revise: instead of optimising a person's approval, state the
//! goal formally, optimise it, and let a reviewer look at outcomes of each
//! candidate goal's policy (the full state, not the camera) and choose the
//! goal whose outcomes look best. No gradient pushes on the reviewer's
//! judgement, but searching over goals does select on it: the more candidates
//! (K) the reviewer compares, the more the winner's look overstates its
//! worth. This measures both: the gold of the chosen goal's policy and the
//! gap between what the reviewer saw and gold, as K grows.
//!
//! A candidate's policy is the base policy conditioned on satisfying it
//! (rejection sampling over the pool: Bayesian conditioning on a 0/1 goal),
//! with KL `log(n / n_satisfying)` per prompt; where no sample of a prompt
//! satisfies it the base policy is left as it is there. The simulated reviewer
//! has limited attention: it sees `shown` rollouts of each candidate's policy,
//! judges each by its gold plus Gaussian noise, and picks the best mean.

use rand::seq::index::sample;
use rand::Rng as _;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::pool::Pool;
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::score::CurvePoint;
use crate::stats::Stat;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// Candidate formal goals the reviewer chooses among (empty: no review).
    pub candidates: Vec<String>,
    /// How many candidates a review compares (each at most the number of candidates).
    pub k: Vec<usize>,
    /// Rollouts of each candidate's policy the reviewer looks at.
    pub shown: usize,
    /// Standard deviation of the reviewer's error judging one rollout, on the gold scale.
    pub noise: f64,
    /// Independent reviews per K (each draws its K candidates and its rollouts): the intervals.
    pub reviews: usize,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        Self {
            candidates: vec![],
            k: vec![1, 2, 4, 8],
            shown: 3,
            noise: 0.2,
            reviews: 40,
        }
    }
}

impl ReviewConfig {
    pub fn enabled(&self) -> bool {
        !self.candidates.is_empty()
    }

    pub fn validate(&self, at: &str) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        if let Some(&k) = self
            .k
            .iter()
            .find(|&&k| k == 0 || k > self.candidates.len())
        {
            return Err(Error::invalid(
                format!("{at}.k"),
                format!(
                    "K = {k}: a review compares between 1 and the {} candidates",
                    self.candidates.len()
                ),
            ));
        }
        if self.k.is_empty() || self.shown == 0 || self.reviews == 0 {
            return Err(Error::invalid(
                format!("{at}.shown"),
                "k must list at least one K, and shown and reviews must be at least 1",
            ));
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return Err(Error::invalid(format!("{at}.noise"), "must be >= 0"));
        }
        Ok(())
    }
}

/// What the reviews with K candidates chose, and how their judgement compared with gold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewRow {
    pub split: String,
    pub k: usize,
    /// The reviewer's estimate of the chosen candidate (mean judgement of what it saw).
    pub judged: Stat,
    /// Gold of the chosen candidate's policy over every prompt of the pool.
    pub gold: Stat,
    /// `judged - gold` per review: how much the winner's look overstates it.
    pub gap: Stat,
    /// How often each candidate was chosen, in the order of the configuration.
    pub chosen: Vec<usize>,
}

/// One candidate goal's conditioned policy on the pool.
pub struct Candidate {
    /// Weights over each prompt's samples.
    pub weights: Vec<Vec<f64>>,
    pub kl: Vec<f64>,
    /// Gold of the policy (mean over prompts).
    pub gold: f64,
}

/// The base policy of `pool` conditioned on `satisfied` (one 0/1 per sample).
pub fn condition_on(pool: &Pool, satisfied: &[f64]) -> Candidate {
    let n = pool.per_prompt;
    let mut weights = vec![];
    let mut kl = vec![];
    let mut gold = 0.0;
    for p in 0..pool.n_prompts() {
        let sat = &satisfied[p * n..(p + 1) * n];
        let k = sat.iter().filter(|&&s| s > 0.5).count();
        let w: Vec<f64> = if k == 0 {
            vec![1.0 / n as f64; n]
        } else {
            sat.iter()
                .map(|&s| if s > 0.5 { 1.0 / k as f64 } else { 0.0 })
                .collect()
        };
        kl.push(if k == 0 {
            0.0
        } else {
            (n as f64 / k as f64).ln()
        });
        gold += w
            .iter()
            .zip(&pool.scored[p * n..(p + 1) * n])
            .map(|(w, s)| w * s.gold)
            .sum::<f64>();
        weights.push(w);
    }
    Candidate {
        weights,
        kl,
        gold: gold / pool.n_prompts().max(1) as f64,
    }
}

/// Reviews with each K of `cfg`: a curve point per K (the mixture of the
/// policies chosen over the reviews, strategy `strategy`, knob `K`) and a row
/// of what the reviewer judged against gold.
pub fn run(
    pool: &Pool,
    candidates: &[Candidate],
    cfg: &ReviewConfig,
    strategy: &str,
    rng: &mut Rng,
) -> Result<(Vec<CurvePoint>, Vec<ReviewRow>)> {
    let n = pool.per_prompt;
    let n_prompts = pool.n_prompts();
    let mut points = vec![];
    let mut rows = vec![];
    for &k in &cfg.k {
        let mut mixture = vec![vec![0.0; n]; n_prompts];
        let (mut judged, mut gold, mut gap) = (vec![], vec![], vec![]);
        let mut chosen = vec![0; candidates.len()];
        for _ in 0..cfg.reviews {
            let drawn = sample(rng, candidates.len(), k).into_vec();
            let mut best: Option<(usize, f64)> = None;
            for &c in &drawn {
                let mut seen = 0.0;
                for _ in 0..cfg.shown {
                    let p = rng.random_range(0..n_prompts);
                    let i = draw(&candidates[c].weights[p], rng);
                    let noise: f64 = StandardNormal.sample(rng);
                    seen += pool.scored[p * n + i].gold + cfg.noise * noise;
                }
                let estimate = seen / cfg.shown as f64;
                if best.is_none_or(|(_, e)| estimate > e) {
                    best = Some((c, estimate));
                }
            }
            let (c, estimate) = best.expect("K >= 1 candidates were drawn");
            chosen[c] += 1;
            judged.push(estimate);
            gold.push(candidates[c].gold);
            gap.push(estimate - candidates[c].gold);
            for (m, w) in mixture.iter_mut().zip(&candidates[c].weights) {
                for (m, w) in m.iter_mut().zip(w) {
                    *m += w / cfg.reviews as f64;
                }
            }
        }
        // Plug-in KL of the mixture against the pool (uniform over each prompt's samples).
        let kl = mixture
            .iter()
            .map(|w| {
                w.iter()
                    .filter(|&&w| w > 0.0)
                    .map(|w| w * (w * n as f64).ln())
                    .sum::<f64>()
                    .max(0.0)
            })
            .collect();
        points.push(pool.point(strategy, "K", k as f64, &mixture, kl));
        rows.push(ReviewRow {
            split: pool.split.name().to_string(),
            k,
            judged: Stat::of(&judged),
            gold: Stat::of(&gold),
            gap: Stat::of(&gap),
            chosen,
        });
    }
    Ok((points, rows))
}

/// An index drawn from `weights` (summing to 1).
fn draw(weights: &[f64], rng: &mut Rng) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (i, w) in weights.iter().enumerate() {
        acc += w;
        if u < acc {
            return i;
        }
    }
    weights.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

#[cfg(test)]
mod tests;
