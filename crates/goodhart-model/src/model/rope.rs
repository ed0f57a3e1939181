//! Rotary-frequency scalings, computed as transformers computes them
//! (`modeling_rope_utils.py`: f32 frequencies, the correction ranges of YaRN in
//! f64), so a scaled checkpoint gives transformers' logits.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A rotary-frequency scaling (`rope_type`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rope_type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RopeScaling {
    /// Every frequency divided by `factor` (positions interpolated).
    Linear { factor: f64 },
    /// Dynamic NTK: the base grows only for sequences longer than
    /// `max_position_embeddings`, which is the model's whole context here, so
    /// within it the frequencies are the unscaled ones (as in transformers).
    Dynamic { factor: f64 },
    /// Llama 3.1's: wavelengths longer than `original_max_position_embeddings /
    /// low_freq_factor` divided by `factor`, shorter than `.. / high_freq_factor`
    /// kept, a smooth ramp between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// YaRN: frequencies that turn fewer than `beta_slow` times over the original
    /// context interpolated (divided by `factor`), more than `beta_fast` times
    /// kept, a linear ramp between; cos and sin multiplied by `attention_factor`.
    Yarn {
        factor: f64,
        original_max_position_embeddings: f64,
        beta_fast: f64,
        beta_slow: f64,
        /// Round the correction range outwards to whole dimensions (transformers' default).
        truncate: bool,
        attention_factor: f64,
    },
}

impl RopeScaling {
    /// YaRN's attention factor when the config does not state one: from `factor`
    /// and, when both are given and non-zero, `mscale` and `mscale_all_dim`.
    pub fn yarn_attention_factor(
        factor: f64,
        mscale: Option<f64>,
        mscale_all_dim: Option<f64>,
    ) -> f64 {
        let get = |scale: f64, m: f64| {
            if scale <= 1.0 {
                1.0
            } else {
                0.1 * m * scale.ln() + 1.0
            }
        };
        match (mscale, mscale_all_dim) {
            (Some(m), Some(all)) if m != 0.0 && all != 0.0 => get(factor, m) / get(factor, all),
            _ => get(factor, 1.0),
        }
    }

    /// What cos and sin are multiplied by (1 but for YaRN).
    pub fn attention_factor(&self) -> f32 {
        match *self {
            RopeScaling::Yarn {
                attention_factor, ..
            } => attention_factor as f32,
            _ => 1.0,
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
        let ok = match *self {
            RopeScaling::Linear { factor } | RopeScaling::Dynamic { factor } => factor > 0.0,
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => {
                factor > 0.0
                    && low_freq_factor > 0.0
                    && high_freq_factor > low_freq_factor
                    && original_max_position_embeddings >= 1.0
            }
            RopeScaling::Yarn {
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
                attention_factor,
                ..
            } => {
                factor > 0.0
                    && original_max_position_embeddings >= 1.0
                    && beta_fast > 0.0
                    && beta_slow > 0.0
                    && attention_factor > 0.0
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                "model.rope_scaling",
                "factors, betas and the attention factor must be positive, high_freq_factor above low_freq_factor, and original_max_position_embeddings at least 1",
            ))
        }
    }
}

/// The inverse frequency of each rotary pair of a `head_dim`-wide head with base
/// `theta`, scaled as `scaling` says.
pub fn inverse_frequencies(theta: f64, head_dim: usize, scaling: Option<&RopeScaling>) -> Vec<f32> {
    // base ** (2i / dim), rounded to float32 as transformers holds it.
    let pos_freq = |i: usize| theta.powf((2 * i) as f64 / head_dim as f64) as f32;
    let unscaled = (0..head_dim / 2).map(|i| (i, 1.0 / pos_freq(i)));
    match *scaling.unwrap_or(&RopeScaling::Dynamic { factor: 1.0 }) {
        // Within the context dynamic NTK is the unscaled rope (see the variant).
        RopeScaling::Dynamic { .. } => unscaled.map(|(_, inv)| inv).collect(),
        RopeScaling::Linear { factor } => unscaled.map(|(_, inv)| inv / factor as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old,
        } => unscaled
            .map(|(_, inv)| {
                let (f, low, high, old) = (
                    factor as f32,
                    low_freq_factor as f32,
                    high_freq_factor as f32,
                    old as f32,
                );
                llama3(inv, f, low, high, old)
            })
            .collect(),
        RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            beta_fast,
            beta_slow,
            truncate,
            ..
        } => {
            let (low, high) = yarn_correction_range(
                beta_fast,
                beta_slow,
                head_dim as f64,
                theta,
                original_max_position_embeddings,
                truncate,
            );
            let high = if low == high { high + 0.001 } else { high };
            unscaled
                .map(|(i, inv)| {
                    let ramp = ((i as f32 - low as f32) / (high - low) as f32).clamp(0.0, 1.0);
                    let extrapolation = 1.0 - ramp;
                    let interpolation = 1.0 / (factor as f32 * pos_freq(i));
                    interpolation * (1.0 - extrapolation) + inv * extrapolation
                })
                .collect()
        }
    }
}

fn llama3(inv: f32, factor: f32, low: f32, high: f32, old: f32) -> f32 {
    let wavelen = 2.0 * std::f32::consts::PI / inv;
    if wavelen < old / high {
        inv
    } else if wavelen > old / low {
        inv / factor
    } else {
        let smooth = (old / wavelen - low) / (high - low);
        (1.0 - smooth) * inv / factor + smooth * inv
    }
}

/// The dimensions between which YaRN ramps from extrapolation to interpolation
/// (`find_correction_range`).
fn yarn_correction_range(
    beta_fast: f64,
    beta_slow: f64,
    dim: f64,
    base: f64,
    original: f64,
    truncate: bool,
) -> (f64, f64) {
    let dim_of = |rotations: f64| {
        dim * (original / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * base.ln())
    };
    let (mut low, mut high) = (dim_of(beta_fast), dim_of(beta_slow));
    if truncate {
        low = low.floor();
        high = high.ceil();
    }
    (low.max(0.0), high.min(dim - 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_keeps_high_frequencies_divides_low_ones_and_ramps_between() {
        // Llama 3.1's settings on a 64-wide head with base 500000; the expected values are
        // transformers' `_compute_llama3_parameters` formula evaluated in f64.
        let s = RopeScaling::Llama3 {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192.0,
        };
        let inv = inverse_frequencies(500000.0, 64, Some(&s));
        let expected = [
            (0, 1.0),                          // kept
            (8, 0.037_606_030_930_863_93),     // kept
            (12, 0.007_292_664_737_217_108),   // kept (wavelength just under 2048)
            (16, 0.000_524_846_160_992_954_7), // on the ramp
            (20, 3.428_102_195_952_591e-5),    // divided by 8
            (24, 6.647_869_871_181_236e-6),
            (31, 3.767_322_690_173_963_5e-7),
        ];
        for (i, want) in expected {
            let got = inv[i] as f64;
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "pair {i}: {got} vs {want}"
            );
        }
        let plain = inverse_frequencies(10000.0, 8, None);
        let linear = inverse_frequencies(10000.0, 8, Some(&RopeScaling::Linear { factor: 4.0 }));
        assert_eq!(linear[1], plain[1] / 4.0);
        let dynamic = inverse_frequencies(10000.0, 8, Some(&RopeScaling::Dynamic { factor: 2.0 }));
        assert_eq!(dynamic, plain);
    }

    #[test]
    fn yarn_ramps_between_the_correction_dimensions_and_scales_attention() {
        // transformers' `_compute_yarn_parameters` for head_dim 16, base 10000, factor 4,
        // original context 16, beta_fast 2, beta_slow 0.25: the correction range is
        // [0, 3], so pairs 0..3 ramp 1, 2/3, 1/3, 0 of the unscaled frequency.
        let s = RopeScaling::Yarn {
            factor: 4.0,
            original_max_position_embeddings: 16.0,
            beta_fast: 2.0,
            beta_slow: 0.25,
            truncate: true,
            attention_factor: RopeScaling::yarn_attention_factor(4.0, None, None),
        };
        let inv = inverse_frequencies(10000.0, 16, Some(&s));
        let plain = inverse_frequencies(10000.0, 16, None);
        for (i, keep) in [
            (0, 1.0f32),
            (1, 2.0 / 3.0),
            (2, 1.0 / 3.0),
            (3, 0.0),
            (7, 0.0),
        ] {
            let want = plain[i] * keep + plain[i] / 4.0 * (1.0 - keep);
            assert!(
                (inv[i] - want).abs() <= 1e-6 * want,
                "pair {i}: {} vs {want}",
                inv[i]
            );
        }
        assert!((s.attention_factor() - (1.0 + 0.1 * 4f32.ln())).abs() < 1e-7);
        // DeepSeek-style mscale over mscale_all_dim; equal ones cancel.
        assert_eq!(
            RopeScaling::yarn_attention_factor(40.0, Some(1.0), Some(1.0)),
            1.0
        );
        let f = RopeScaling::yarn_attention_factor(40.0, Some(1.0), Some(0.5));
        assert!((f - (0.1 * 40f64.ln() + 1.0) / (0.05 * 40f64.ln() + 1.0)).abs() < 1e-12);
        assert_eq!(RopeScaling::yarn_attention_factor(1.0, None, None), 1.0);
    }
}
