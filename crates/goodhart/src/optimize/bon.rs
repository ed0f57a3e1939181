//! Best-of-n: draw n completions from the base policy and keep the one the
//! reward likes best. From one pool of N samples per prompt, the expected value
//! of best-of-n for every n <= N is estimated without resampling: the sample of
//! rank i (of N, ascending) is the best of a random n-subset with probability
//! C(i-1, n-1) / C(N, n).

use serde::{Deserialize, Serialize};

use super::pool::Pool;
use crate::error::{Error, Result};
use crate::score::CurvePoint;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BonConfig {
    /// The n of the sweep (each at most the pool's samples per prompt).
    pub n: Vec<usize>,
    /// Also run the sweep selecting on the labeler's own score
    /// (`bon-labeler`) and on gold (`bon-gold`), from the same pool: oracle
    /// baselines that show how much of a gap is the reward model's and how
    /// much the labeler's.
    pub oracles: bool,
}

impl Default for BonConfig {
    fn default() -> Self {
        Self {
            n: vec![1, 2, 4, 8, 16, 32, 64],
            oracles: true,
        }
    }
}

/// KL(best-of-n || base) for a reward with no ties: log n - (n-1)/n.
pub fn analytic_kl(n: usize) -> f64 {
    let n = n as f64;
    n.ln() - (n - 1.0) / n
}

/// Probability that the sample of (1-based, ascending) rank `i` of `big_n` is the best of a random `n`-subset.
pub fn rank_weights(big_n: usize, n: usize) -> Vec<f64> {
    // log C(a, b) from log-factorials.
    let lf: Vec<f64> = std::iter::once(0.0)
        .chain((1..=big_n).scan(0.0, |acc, k| {
            *acc += (k as f64).ln();
            Some(*acc)
        }))
        .collect();
    let log_choose = |a: usize, b: usize| lf[a] - lf[b] - lf[a - b];
    (1..=big_n)
        .map(|i| {
            if i < n {
                0.0
            } else {
                (log_choose(i - 1, n - 1) - log_choose(big_n, n)).exp()
            }
        })
        .collect()
}

/// Probability that "draw `n`, keep one of the best `k` at random" picks a
/// sample whose base-distribution quantile lies in `(lo, hi]`: the mean over
/// the top `k` order statistics `j` of `P(Bin(n, hi) >= j) - P(Bin(n, lo) >= j)`.
/// Best-of-n is `k = 1` (`hi^n - lo^n`); the quantiliser on a pool of `n` keeps `k = q n`.
pub fn top_k_mass(lo: f64, hi: f64, n: usize, k: usize) -> f64 {
    let tail = |u: f64| -> f64 {
        // sum over j in n-k+1..=n of P(Bin(n, u) >= j) = sum_i P(Bin = i) * max(0, i - (n - k)).
        if u <= 0.0 {
            return 0.0;
        }
        if u >= 1.0 {
            return k as f64;
        }
        let (lu, l1u) = (u.ln(), (1.0 - u).ln());
        let mut log_choose = 0.0; // log C(n, i), built up from i = 0
        let mut total = 0.0;
        for i in 0..=n {
            if i > 0 {
                log_choose += ((n - i + 1) as f64).ln() - (i as f64).ln();
            }
            if i + k > n {
                let p = (log_choose + i as f64 * lu + (n - i) as f64 * l1u).exp();
                total += p * (i + k - n) as f64;
            }
        }
        total
    };
    (tail(hi) - tail(lo)) / k as f64
}

/// KL(selection || base) for a reward without ties, where the selection keeps
/// one of the best `k` of `n` base draws at random: the limit of the plug-in
/// estimate over ever finer quantile bins. `k = 1` gives `log n - (n-1)/n`; for
/// large `n` with `k = q n` it tends to the quantiliser's `log(1/q)`.
pub fn top_k_kl(n: usize, k: usize) -> f64 {
    const BINS: usize = 20_000;
    let width = 1.0 / BINS as f64;
    (1..=BINS)
        .map(|m| {
            let pm = top_k_mass((m - 1) as f64 * width, m as f64 * width, n, k);
            if pm > 0.0 {
                pm * (pm / width).ln()
            } else {
                0.0
            }
        })
        .sum::<f64>()
        .max(0.0)
}

/// KL(selection || base) on one prompt's pool, where the selection keeps one of
/// the best `k` of `n` draws at random (best-of-n: `k = 1`): the plug-in estimate
/// over its distinct completions, with the base distribution estimated by their
/// shares of the pool and the selection's by [`top_k_mass`] over the pool's
/// reward CDF. Repeated completions lower the KL below the closed form, which
/// holds only for rewards without ties.
pub fn plugin_kl(pool: &Pool, prompt: usize, n: usize, k: usize) -> f64 {
    let ranked = pool.ranked(prompt);
    let big_n = pool.per_prompt as f64;
    // Distinct completions in reward order; identical text has identical reward, so copies are adjacent
    // once ties in reward are grouped by text.
    let mut groups: Vec<(f64, &str, usize)> = vec![];
    for &i in &ranked {
        let (r, text) = (pool.reward[i], pool.scored[i].completion.as_str());
        match groups
            .iter_mut()
            .find(|(gr, gt, _)| *gr == r && *gt == text)
        {
            Some(g) => g.2 += 1,
            None => groups.push((r, text, 1)),
        }
    }
    let mut below = 0.0;
    let mut kl = 0.0;
    let mut i = 0;
    while i < groups.len() {
        // Completions tied in reward share one rung of the CDF, split by their counts.
        let r = groups[i].0;
        let rung: Vec<usize> = groups[i..]
            .iter()
            .take_while(|g| g.0 == r)
            .map(|g| g.2)
            .collect();
        let rung_count: usize = rung.iter().sum();
        let (lo, hi) = (below / big_n, (below + rung_count as f64) / big_n);
        let rung_mass = top_k_mass(lo, hi, n, k);
        for &count in &rung {
            let p0 = count as f64 / big_n;
            let pn = rung_mass * count as f64 / rung_count as f64;
            if pn > 0.0 {
                kl += pn * (pn / p0).ln();
            }
        }
        below += rung_count as f64;
        i += rung.len();
    }
    kl.max(0.0)
}

pub fn run(pool: &Pool, cfg: &BonConfig, strategy: &str) -> Result<Vec<CurvePoint>> {
    let mut points = vec![];
    for &n in &cfg.n {
        if n == 0 {
            return Err(Error::invalid("strategies.bon.n", "n must be at least 1"));
        }
        if n > pool.per_prompt {
            return Err(Error::invalid(
                "strategies.bon.n",
                format!(
                    "n = {n} exceeds the pool's {} samples per prompt",
                    pool.per_prompt
                ),
            ));
        }
        let by_rank = rank_weights(pool.per_prompt, n);
        let weights: Vec<Vec<f64>> = (0..pool.n_prompts())
            .map(|p| {
                let mut w = vec![0.0; pool.per_prompt];
                for (rank, &i) in pool.ranked(p).iter().enumerate() {
                    w[i - p * pool.per_prompt] = by_rank[rank];
                }
                w
            })
            .collect();
        let kl = (0..pool.n_prompts())
            .map(|p| plugin_kl(pool, p, n, 1))
            .collect();
        let mut point = pool.point(strategy, "n", n as f64, &weights, kl);
        point.kl_analytic = Some(analytic_kl(n));
        points.push(point);
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng as _;

    #[test]
    fn top_k_kl_is_best_of_n_at_k_1_and_log_1_over_q_for_large_pools() {
        for n in [1, 2, 8, 64] {
            assert!((top_k_kl(n, 1) - analytic_kl(n)).abs() < 1e-3, "n = {n}");
        }
        assert!(
            top_k_kl(64, 64).abs() < 1e-9,
            "keeping everything is the base policy"
        );
        // Keeping 1 of 64 is best-of-64 (KL 3.17), not a quantiliser at q = 0.02 (log 50 = 3.91).
        assert!((top_k_kl(64, 1) - 3.175).abs() < 1e-2);
        // A quantiliser's kept set of k = q n: its KL rises towards log(1/q) as the pool grows.
        let (small, large) = (top_k_kl(100, 10), top_k_kl(2000, 200));
        println!(
            "top 10 of 100: {small:.4}, top 200 of 2000: {large:.4}, log 10 = {:.4}",
            10f64.ln()
        );
        assert!(small < large && large < 10f64.ln() && large > 10f64.ln() - 0.1);
        // The mass of every quantile bin sums to one.
        let total: f64 = (0..10)
            .map(|m| top_k_mass(m as f64 / 10.0, (m + 1) as f64 / 10.0, 16, 5))
            .sum();
        assert!((total - 1.0).abs() < 1e-12);
    }

    #[test]
    fn rank_weights_are_a_distribution_and_match_brute_force() {
        for (big_n, n) in [(5, 1), (5, 2), (8, 3), (64, 16)] {
            let w = rank_weights(big_n, n);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        }
        // Brute force over all 2-subsets of 4 ranks: the max is rank 2 once, rank 3 twice, rank 4 thrice.
        let w = rank_weights(4, 2);
        for (got, want) in w.iter().zip([0.0, 1.0 / 6.0, 2.0 / 6.0, 3.0 / 6.0]) {
            assert!((got - want).abs() < 1e-12);
        }
    }

    #[test]
    fn sample_kl_agrees_with_the_closed_form_on_continuous_rewards_and_is_lower_with_repeats() {
        let mut rng = crate::rng::stream(1, "t");
        // 64 prompts, 256 distinct completions each, continuous rewards: the closed form holds.
        let pool = crate::optimize::pool::synthetic(
            (0..64)
                .map(|p| {
                    (0..256)
                        .map(|i| (format!("{p}-{i}"), rng.random::<f64>()))
                        .collect()
                })
                .collect(),
        );
        let points = run(
            &pool,
            &BonConfig {
                n: vec![1, 2, 4, 8, 16],
                oracles: false,
            },
            "bon",
        )
        .unwrap();
        for p in &points {
            let (est, exact) = (p.kl.mean, p.kl_analytic.unwrap());
            println!(
                "n = {}: sample estimate {est:.4} ± {:.4}, log n - (n-1)/n = {exact:.4}",
                p.value, p.kl.stderr
            );
            assert!(
                (est - exact).abs() <= 2.0 * p.kl.stderr + 0.02 * exact.max(0.05),
                "n = {}: {est} vs {exact}",
                p.value
            );
        }
        // Ten equally likely completions, each repeated 20 times: the exact KL of best-of-16 is
        // sum_k pi_k log(10 pi_k) with pi_k = (k/10)^16 - ((k-1)/10)^16, below the closed form.
        let pool = crate::optimize::pool::synthetic(
            (0..8)
                .map(|_| {
                    (0..200)
                        .map(|i| (format!("c{}", i % 10), (i % 10) as f64))
                        .collect()
                })
                .collect(),
        );
        let p = &run(
            &pool,
            &BonConfig {
                n: vec![16],
                oracles: false,
            },
            "bon",
        )
        .unwrap()[0];
        let exact: f64 = (1..=10)
            .map(|k| {
                let pi = (k as f64 / 10.0).powi(16) - ((k - 1) as f64 / 10.0).powi(16);
                if pi > 0.0 {
                    pi * (10.0 * pi).ln()
                } else {
                    0.0
                }
            })
            .sum();
        assert!(
            (p.kl.mean - exact).abs() < 1e-9,
            "{} vs exact {exact}",
            p.kl.mean
        );
        assert!(exact < p.kl_analytic.unwrap());
        // Best-of-16 over ten equally likely values: P(best = top value) = 1 - 0.9^16.
        assert!((p.gold.mean - 9.0).abs() < 1.0 && p.gold.mean > 8.5);
    }

    #[test]
    fn the_pool_estimate_of_best_of_n_is_unbiased() {
        // Values uniform on [0, 1]: E[max of n] = n / (n + 1).
        let mut rng = crate::rng::stream(0, "t");
        let (big_n, prompts) = (64, 400);
        for n in [1, 4, 16] {
            let w = rank_weights(big_n, n);
            let mut est = 0.0;
            for _ in 0..prompts {
                let mut xs: Vec<f64> = (0..big_n).map(|_| rng.random::<f64>()).collect();
                xs.sort_by(f64::total_cmp);
                est += xs.iter().zip(&w).map(|(x, w)| x * w).sum::<f64>();
            }
            est /= prompts as f64;
            let truth = n as f64 / (n as f64 + 1.0);
            assert!((est - truth).abs() < 0.01, "n={n}: {est} vs {truth}");
        }
    }
}
