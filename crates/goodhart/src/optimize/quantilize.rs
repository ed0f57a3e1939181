//! The quantiliser: sample uniformly from the top q fraction of base samples
//! as ranked by the reward. Its expected cost is at most 1/q times the base
//! policy's. The ideal quantiliser's KL from the base policy is log(1/q); on a
//! pool of n samples per prompt it keeps the best k = q n, and the KL reported
//! is that of what it actually samples (one of the best k of n draws).

use serde::{Deserialize, Serialize};

use super::bon::{plugin_kl, top_k_kl};
use super::pool::Pool;
use crate::error::{Error, Result};
use crate::score::CurvePoint;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuantiliserConfig {
    /// The q of the sweep, each in (0, 1].
    pub q: Vec<f64>,
}

impl Default for QuantiliserConfig {
    fn default() -> Self {
        Self {
            q: vec![1.0, 0.5, 0.25, 0.1, 0.05],
        }
    }
}

/// The quantiliser on a pool of `n` samples per prompt keeps `k = round(q n)`
/// of them. It stands for its q only when at least two are kept and rounding
/// moved q by at most a tenth; otherwise it is another n-sample selection
/// (one kept of 64 is best-of-64) and the point is dropped, with a note saying why.
pub fn kept(q: f64, per_prompt: usize) -> std::result::Result<usize, String> {
    let exact = q * per_prompt as f64;
    let k = (exact.round() as usize).clamp(1, per_prompt);
    if k < 2 && per_prompt >= 2 {
        return Err(format!(
            "quantiliser q = {q} keeps {k} of {per_prompt} samples per prompt: that is best-of-{per_prompt}, not a q-quantile; point dropped (use a larger pool)"
        ));
    }
    if (k as f64 - exact).abs() > 0.1 * exact {
        return Err(format!(
            "quantiliser q = {q} would keep {k} of {per_prompt} samples per prompt (q = {:.3}); point dropped (choose q a multiple of 1/{per_prompt})",
            k as f64 / per_prompt as f64
        ));
    }
    Ok(k)
}

/// The sweep's points, and a note for each q dropped by [`kept`].
pub fn run(
    pool: &Pool,
    cfg: &QuantiliserConfig,
    strategy: &str,
) -> Result<(Vec<CurvePoint>, Vec<String>)> {
    let mut points = vec![];
    let mut notes = vec![];
    for &q in &cfg.q {
        if !(q > 0.0 && q <= 1.0) {
            return Err(Error::invalid(
                "strategies.quantiliser.q",
                format!("q = {q} is outside (0, 1]"),
            ));
        }
        let keep = match kept(q, pool.per_prompt) {
            Ok(k) => k,
            Err(note) => {
                tracing::warn!("{note}");
                notes.push(note);
                continue;
            }
        };
        let weights: Vec<Vec<f64>> = (0..pool.n_prompts())
            .map(|p| {
                let mut w = vec![0.0; pool.per_prompt];
                for &i in pool.ranked(p).iter().rev().take(keep) {
                    w[i - p * pool.per_prompt] = 1.0 / keep as f64;
                }
                w
            })
            .collect();
        // The KL of what is sampled: one of the best `keep` of `per_prompt` draws.
        let kl = (0..pool.n_prompts())
            .map(|p| plugin_kl(pool, p, pool.per_prompt, keep))
            .collect();
        let mut point = pool.point(strategy, "q", q, &weights, kl);
        point.kl_analytic = Some(top_k_kl(pool.per_prompt, keep));
        points.push(point);
    }
    Ok((points, notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_kept_sets_are_dropped_and_the_rest_report_the_kl_of_what_is_kept() {
        // 64 per prompt: q = 0.02 keeps one sample, which is best-of-64, not a 2% quantile.
        assert!(kept(0.02, 64).unwrap_err().contains("best-of-64"));
        assert_eq!(kept(0.25, 64), Ok(16));
        assert_eq!(kept(0.05, 64), Ok(3));
        assert!(kept(0.3, 8).is_err(), "2.4 rounds to 2: q moves by a sixth");
        assert_eq!(kept(1.0, 1), Ok(1));
        // Keeping 16 of 64 is below the ideal quantiliser's log 4: which 16 are the
        // top quarter of the base distribution varies from pool to pool.
        let kl = top_k_kl(64, 16);
        assert!(kl < 4f64.ln(), "{kl}");
        // Exact, not sampled: ∫ f ln f = 1.18670416 (mpmath), f the mean of the Beta(j, 65 - j)
        // densities for j = 49..=64; the 20,000 bins lower it by w²/24 ∫ f'²/f = 7e-9.
        assert!((kl - 1.186_704_16).abs() < 1e-8, "{kl}");
    }
}
