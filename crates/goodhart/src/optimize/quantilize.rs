//! The quantiliser: sample uniformly from the top q fraction of base samples
//! as ranked by the reward. Its KL from the base policy is log(1/q), and its
//! expected cost is at most 1/q times the base policy's.

use serde::{Deserialize, Serialize};

use super::pool::Pool;
use crate::error::{Error, Result};
use crate::measure::CurvePoint;

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

pub fn run(pool: &Pool, cfg: &QuantiliserConfig, strategy: &str) -> Result<Vec<CurvePoint>> {
    let mut points = vec![];
    for &q in &cfg.q {
        if !(q > 0.0 && q <= 1.0) {
            return Err(Error::invalid(
                "strategies.quantiliser.q",
                format!("q = {q} is outside (0, 1]"),
            ));
        }
        let keep = ((q * pool.per_prompt as f64).round() as usize).clamp(1, pool.per_prompt);
        let weights: Vec<Vec<f64>> = (0..pool.n_prompts())
            .map(|p| {
                let mut w = vec![0.0; pool.per_prompt];
                for &i in pool.ranked(p).iter().rev().take(keep) {
                    w[i - p * pool.per_prompt] = 1.0 / keep as f64;
                }
                w
            })
            .collect();
        let mut point = pool.point(strategy, "q", q, &weights, pool.plugin_kl(&weights));
        point.kl_analytic = Some((1.0 / q).ln());
        points.push(point);
    }
    Ok(points)
}
