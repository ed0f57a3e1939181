//! Conditioning: the optimum of the KL-regularised objective
//! `E[r] - beta KL(pi || pi_ref)` is `pi*(x) = pi_ref(x) exp(r(x) / beta) / Z`.
//! On a pool of base samples its expectations are self-normalised importance
//! weighted averages (weights `exp(r / beta)`), with their effective sample
//! size; on an output space small enough to enumerate it is computed exactly.
//! With a 0/1 reward and small beta it is rejection sampling on r = 1.

use serde::{Deserialize, Serialize};

use super::pool::Pool;
use crate::error::{Error, Result};
use crate::score::CurvePoint;
use crate::stats::effective_sample_size;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConditionConfig {
    /// The beta of the sweep, each > 0 (smaller: further from the base policy).
    pub beta: Vec<f64>,
    /// Points whose mean effective sample size per prompt is below this are
    /// flagged (a handful of samples carry the weight: the plug-in KL cannot
    /// exceed log n and gold becomes the pool's top-1), and left out of fits and
    /// matched-KL comparisons.
    pub min_ess: f64,
}

impl Default for ConditionConfig {
    fn default() -> Self {
        Self {
            beta: vec![4.0, 2.0, 1.0, 0.5, 0.25, 0.125],
            min_ess: 10.0,
        }
    }
}

/// Importance weights of `pi*` over samples from `pi_ref` with rewards `r`, and
/// the estimated KL(pi* || pi_ref) = E_pi*[r] / beta - log E_ref[exp(r / beta)].
pub fn weights_and_kl(rewards: &[f64], beta: f64) -> (Vec<f64>, f64) {
    let lw: Vec<f64> = rewards.iter().map(|r| r / beta).collect();
    let max = lw.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = lw.iter().map(|l| (l - max).exp()).sum();
    let lse = max + sum.ln();
    let w: Vec<f64> = lw.iter().map(|l| (l - lse).exp()).collect();
    let log_mean = lse - (rewards.len() as f64).ln();
    let kl = w.iter().zip(&lw).map(|(w, l)| w * l).sum::<f64>() - log_mean;
    (w, kl.max(0.0))
}

/// `pi*` on an enumerated output space: `outputs[i] = (log pi_ref(x_i), r(x_i))`
/// covering all of pi_ref's mass. Returns (pi*(x_i), KL(pi* || pi_ref), E_pi*[r]).
pub fn exact(outputs: &[(f64, f64)], beta: f64) -> (Vec<f64>, f64, f64) {
    let logits: Vec<f64> = outputs.iter().map(|(lp, r)| lp + r / beta).collect();
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let log_z = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
    let pi: Vec<f64> = logits.iter().map(|l| (l - log_z).exp()).collect();
    let expected_r: f64 = pi.iter().zip(outputs).map(|(p, (_, r))| p * r).sum();
    let kl: f64 = pi
        .iter()
        .zip(outputs)
        .filter(|(p, _)| **p > 0.0)
        .map(|(p, (lp, _))| p * (p.ln() - lp))
        .sum();
    (pi, kl, expected_r)
}

pub fn run(pool: &Pool, cfg: &ConditionConfig, strategy: &str) -> Result<Vec<CurvePoint>> {
    if !(cfg.min_ess >= 0.0) {
        return Err(Error::invalid(
            "strategies.conditioning.min_ess",
            "must be a number >= 0",
        ));
    }
    let mut points = vec![];
    for &beta in &cfg.beta {
        if !(beta > 0.0 && beta.is_finite()) {
            return Err(Error::invalid(
                "strategies.conditioning.beta",
                format!("beta = {beta} must be > 0"),
            ));
        }
        let mut weights = vec![];
        let mut kls = vec![];
        let mut ess = vec![];
        for p in 0..pool.n_prompts() {
            let (w, kl) = weights_and_kl(pool.rewards_of(p), beta);
            ess.push(effective_sample_size(&w));
            kls.push(kl);
            weights.push(w);
        }
        let mut point = pool.point(strategy, "beta", beta, &weights, kls);
        point.ess = Some(ess.iter().sum::<f64>() / ess.len() as f64);
        if let Some(flag) = low_ess(&ess, cfg.min_ess) {
            point.flag = Some(flag);
        }
        points.push(point);
    }
    Ok(points)
}

/// Share of prompts a conditioned point may leave under `min_ess` effective samples.
const LOW_ESS_SHARE: f64 = 0.1;

/// Why a point with these per-prompt effective sample sizes is not trusted, if
/// it is not. Each prompt's weighted mean is a self-normalised importance
/// estimate whose bias and variance grow as its ESS falls; a point is a mean
/// over prompts, which tolerates a few such prompts but not many (a mean ESS
/// lets half the prompts sit at ESS 1 while the other half carry it). So: more
/// than a tenth of the prompts under `min_ess` flags the point.
fn low_ess(ess: &[f64], min_ess: f64) -> Option<String> {
    let low = ess.iter().filter(|&&e| e < min_ess).count();
    (low as f64 > LOW_ESS_SHARE * ess.len() as f64).then(|| {
        format!(
            "effective sample size under {min_ess} on {low} of {} prompts (more than a tenth)",
            ess.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn importance_weighting_converges_to_the_exact_optimum_on_an_enumerated_space() {
        // Five outputs with base probabilities and rewards; enumerate pi* exactly.
        let p0 = [0.4, 0.3, 0.15, 0.1, 0.05];
        let r = [0.0, 0.5, 1.0, 2.0, -1.0];
        let outputs: Vec<(f64, f64)> = p0.iter().zip(&r).map(|(p, r)| (f64::ln(*p), *r)).collect();
        let beta = 0.5;
        let (pi, kl, er) = exact(&outputs, beta);
        assert!((pi.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // The closed form: KL = E[r] / beta - log Z, Z = sum p0 exp(r / beta).
        let z: f64 = p0.iter().zip(&r).map(|(p, r)| p * (r / beta).exp()).sum();
        assert!((kl - (er / beta - z.ln())).abs() < 1e-12);
        // Importance-weighted estimates from samples of the base distribution.
        let mut rng = crate::rng::stream(3, "t");
        let draws: Vec<usize> = (0..200_000)
            .map(|_| {
                let u: f64 = rng.random();
                let mut acc = 0.0;
                p0.iter()
                    .position(|p| {
                        acc += p;
                        u < acc
                    })
                    .unwrap_or(4)
            })
            .collect();
        let rewards: Vec<f64> = draws.iter().map(|&i| r[i]).collect();
        let (w, kl_hat) = weights_and_kl(&rewards, beta);
        let er_hat: f64 = w.iter().zip(&rewards).map(|(w, r)| w * r).sum();
        assert!((er_hat - er).abs() < 0.01, "E[r]: {er_hat} vs exact {er}");
        assert!((kl_hat - kl).abs() < 0.01, "KL: {kl_hat} vs exact {kl}");
        let mass_on_best: f64 = w
            .iter()
            .zip(&draws)
            .filter(|(_, &i)| i == 3)
            .map(|(w, _)| w)
            .sum();
        assert!((mass_on_best - pi[3]).abs() < 0.01);
    }

    #[test]
    fn points_below_the_effective_sample_size_bar_are_flagged() {
        use crate::score::Scored;
        // One prompt, 16 samples with rewards 0..15: small beta puts the weight on a few.
        let scored: Vec<Scored> = (0..16)
            .map(|i| Scored {
                prompt_index: 0,
                completion: i.to_string(),
                gold: i as f64,
                labeler: vec![],
                features: vec![],
                difficulty: 1,
                spec: None,
                logprob: 0.0,
                proxy: Some(i as f64),
                truncated: false,
                stop: None,
                n_tokens: 1,
                flaw_found: None,
            })
            .collect();
        let pool = Pool {
            task: "t".into(),
            split: crate::task::Split::Heldout,
            prompts: vec!["p".into()],
            per_prompt: 16,
            reward: scored.iter().map(|s| s.gold).collect(),
            scored,
            reward_name: "proxy".into(),
            labeler_names: vec![],
            feature_names: vec![],
            examples: 0,
            labelled_chars: None,
        };
        let cfg = ConditionConfig {
            beta: vec![100.0, 0.5],
            min_ess: 10.0,
        };
        let points = run(&pool, &cfg, "conditioning").unwrap();
        assert!(points[0].ess.unwrap() > 10.0 && points[0].flag.is_none());
        let low = &points[1];
        assert!(low.ess.unwrap() < 10.0);
        assert!(low
            .flag
            .as_deref()
            .unwrap()
            .contains("effective sample size"));
    }

    #[test]
    fn binary_rewards_with_small_beta_are_rejection_sampling() {
        let rewards = [1.0, 0.0, 1.0, 0.0, 0.0];
        let (w, kl) = weights_and_kl(&rewards, 0.01);
        assert!((w[0] - 0.5).abs() < 1e-9 && (w[2] - 0.5).abs() < 1e-9 && w[1] < 1e-9);
        assert!(
            (kl - (5.0f64 / 2.0).ln()).abs() < 1e-6,
            "KL of conditioning on an event of mass 2/5: {kl}"
        );
    }

    #[test]
    fn a_point_is_flagged_by_its_prompts_ess_not_their_mean() {
        // Half the prompts at ESS 1, half at 40: the mean (20.5) passes 10, the prompts do not.
        let half: Vec<f64> = (0..20)
            .map(|i| if i % 2 == 0 { 1.0 } else { 40.0 })
            .collect();
        assert!(low_ess(&half, 10.0).unwrap().contains("10 of 20"));
        // Two of twenty low (a tenth) pass; three do not.
        let mut few = vec![40.0; 20];
        few[0] = 1.0;
        few[1] = 1.0;
        assert_eq!(low_ess(&few, 10.0), None);
        few[2] = 1.0;
        assert!(low_ess(&few, 10.0).is_some());
    }
}
