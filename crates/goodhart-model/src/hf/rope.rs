//! Rotary positions as a Hugging Face `config.json` states them: the base and
//! the scaling, in the layout transformers 5.x writes (`rope_parameters`) or
//! the older one (`rope_theta`, `rope_scaling`).

use std::path::Path;

use super::{checkpoint_error, RawConfig};
use crate::error::Result;
use crate::model::RopeScaling;

/// The rotary base and scaling, read from the current layout (`rope_parameters`,
/// as transformers 5.x writes it) or the older one (top-level `rope_theta` and
/// `rope_scaling`). Types `default`, `linear`, `dynamic`, `llama3` and `yarn`
/// are implemented; every other type (`longrope`, ...), and any key that would
/// change the frequencies, is refused by name rather than approximated.
pub(super) fn rope(raw: &RawConfig, path: &Path) -> Result<(f64, Option<RopeScaling>)> {
    let mut theta = raw.rope_theta.map(|t| ("rope_theta".to_string(), t));
    let mut scaling = None;
    for (key, value) in [
        ("rope_parameters", &raw.rope_parameters),
        ("rope_scaling", &raw.rope_scaling),
    ] {
        let Some(v) = value.as_ref().filter(|v| !v.is_null()) else {
            continue;
        };
        let obj = v
            .as_object()
            .ok_or_else(|| checkpoint_error(path, format!("`{key}` must be an object")))?;
        // The type first: it names what is unsupported better than its parameters do.
        let kind = match ["rope_type", "type"].into_iter().find_map(|k| obj.get(k).map(|f| (k, f))) {
            None => "default",
            Some((k, field)) => match field.as_str() {
                Some(t @ ("default" | "linear" | "dynamic" | "llama3" | "yarn")) => t,
                _ => {
                    return Err(checkpoint_error(
                        path,
                        format!("{key}.{k} = {field} is not supported: goodhart implements \"default\", \"linear\", \"dynamic\", \"llama3\" and \"yarn\" rotary positions"),
                    ))
                }
            },
        };
        let number = |k: &str| -> Result<f64> {
            obj.get(k)
                .and_then(|f| f.as_f64())
                .filter(|f| f.is_finite())
                .ok_or_else(|| {
                    checkpoint_error(
                        path,
                        format!("{key}.{k}: a number is needed for rope_type {kind:?}"),
                    )
                })
        };
        let optional = |k: &str| -> Result<Option<f64>> {
            match obj.get(k).filter(|f| !f.is_null()) {
                None => Ok(None),
                Some(_) => number(k).map(Some),
            }
        };
        // transformers: the pretraining context defaults to max_position_embeddings.
        let original = || -> Result<f64> {
            match optional("original_max_position_embeddings")? {
                Some(o) => Ok(o),
                None => raw.max_position_embeddings.map(|m| m as f64).ok_or_else(|| {
                    checkpoint_error(path, format!("{key}: rope_type {kind:?} needs original_max_position_embeddings or max_position_embeddings"))
                }),
            }
        };
        let allowed: &[&str] = match kind {
            "linear" => &["factor"],
            // Unused by transformers for this type, as here.
            "dynamic" => &["factor", "original_max_position_embeddings"],
            "yarn" => &[
                "factor",
                "original_max_position_embeddings",
                "beta_fast",
                "beta_slow",
                "mscale",
                "mscale_all_dim",
                "attention_factor",
                "truncate",
            ],
            "llama3" => &[
                "factor",
                "low_freq_factor",
                "high_freq_factor",
                "original_max_position_embeddings",
            ],
            _ => &[],
        };
        for (k, field) in obj {
            match k.as_str() {
                "rope_type" | "type" => {}
                k if allowed.contains(&k) => {}
                "rope_theta" => {
                    let t = field.as_f64().filter(|t| *t > 0.0).ok_or_else(|| {
                        checkpoint_error(
                            path,
                            format!("{key}.rope_theta must be a positive number"),
                        )
                    })?;
                    if let Some((prev_key, prev)) = &theta {
                        if *prev != t {
                            return Err(checkpoint_error(
                                path,
                                format!("{prev_key} = {prev} and {key}.rope_theta = {t} disagree"),
                            ));
                        }
                    }
                    theta = Some((format!("{key}.rope_theta"), t));
                }
                _ => {
                    return Err(checkpoint_error(
                        path,
                        format!("{key}.{k} = {field} is not supported for rope_type {kind:?}"),
                    ))
                }
            }
        }
        let this = match kind {
            "linear" => Some(RopeScaling::Linear {
                factor: number("factor")?,
            }),
            "dynamic" => Some(RopeScaling::Dynamic {
                factor: number("factor")?,
            }),
            "yarn" => {
                let factor = number("factor")?;
                // transformers: beta_fast / beta_slow default to 32 / 1 (also when 0).
                let original = original()?;
                let attention_factor = match optional("attention_factor")? {
                    Some(a) => a,
                    None => RopeScaling::yarn_attention_factor(
                        factor,
                        optional("mscale")?,
                        optional("mscale_all_dim")?,
                    ),
                };
                let truncate = match obj.get("truncate") {
                    None | Some(serde_json::Value::Null) => true,
                    Some(serde_json::Value::Bool(b)) => *b,
                    Some(other) => {
                        return Err(checkpoint_error(
                            path,
                            format!("{key}.truncate = {other}: true or false is needed"),
                        ))
                    }
                };
                Some(RopeScaling::Yarn {
                    factor,
                    original_max_position_embeddings: original,
                    beta_fast: optional("beta_fast")?.filter(|b| *b != 0.0).unwrap_or(32.0),
                    beta_slow: optional("beta_slow")?.filter(|b| *b != 0.0).unwrap_or(1.0),
                    truncate,
                    attention_factor,
                })
            }
            "llama3" => Some(RopeScaling::Llama3 {
                factor: number("factor")?,
                low_freq_factor: number("low_freq_factor")?,
                high_freq_factor: number("high_freq_factor")?,
                original_max_position_embeddings: original()?,
            }),
            _ => None,
        };
        if let Some(this) = this {
            if scaling.as_ref().is_some_and(|s| *s != this) {
                return Err(checkpoint_error(
                    path,
                    "rope_parameters and rope_scaling disagree",
                ));
            }
            scaling = Some(this);
        }
    }
    Ok((theta.map_or(10000.0, |(_, t)| t), scaling))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn theta_of(json: &str) -> std::result::Result<f64, String> {
        let raw: RawConfig = serde_json::from_str(json).unwrap();
        rope(&raw, Path::new("m/config.json"))
            .map(|(t, _)| t)
            .map_err(|e| e.to_string())
    }

    fn scaling_of(json: &str) -> Option<RopeScaling> {
        let raw: RawConfig = serde_json::from_str(json).unwrap();
        rope(&raw, Path::new("m/config.json")).unwrap().1
    }

    #[test]
    fn linear_and_llama3_scalings_are_read_from_either_layout() {
        assert_eq!(
            scaling_of(
                r#"{"rope_parameters": {"rope_theta": 10000.0, "rope_type": "linear", "factor": 4.0}}"#
            ),
            Some(RopeScaling::Linear { factor: 4.0 })
        );
        let llama31 = r#"{"rope_theta": 500000.0, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"}}"#;
        assert_eq!(
            scaling_of(llama31),
            Some(RopeScaling::Llama3 {
                factor: 8.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192.0
            })
        );
        assert_eq!(theta_of(llama31), Ok(500000.0));
        let err =
            theta_of(r#"{"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}"#).unwrap_err();
        assert!(err.contains("low_freq_factor"), "{err}");
        // Dynamic NTK equals the unscaled rope within max_position_embeddings (the context).
        assert_eq!(
            scaling_of(r#"{"rope_scaling": {"type": "dynamic", "factor": 2.0}}"#),
            Some(RopeScaling::Dynamic { factor: 2.0 })
        );
    }

    #[test]
    fn yarn_reads_its_defaults_as_transformers_does() {
        let yarn = scaling_of(
            r#"{"max_position_embeddings": 4096, "rope_parameters": {"rope_type": "yarn", "factor": 4.0}}"#,
        );
        assert_eq!(
            yarn,
            Some(RopeScaling::Yarn {
                factor: 4.0,
                original_max_position_embeddings: 4096.0,
                beta_fast: 32.0,
                beta_slow: 1.0,
                truncate: true,
                attention_factor: 0.1 * 4f64.ln() + 1.0,
            })
        );
        let stated = scaling_of(
            r#"{"rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                "beta_fast": 16, "beta_slow": 2, "truncate": false, "attention_factor": 0.7}}"#,
        );
        assert_eq!(
            stated,
            Some(RopeScaling::Yarn {
                factor: 40.0,
                original_max_position_embeddings: 4096.0,
                beta_fast: 16.0,
                beta_slow: 2.0,
                truncate: false,
                attention_factor: 0.7,
            })
        );
    }

    #[test]
    fn rope_theta_is_read_from_either_layout_and_unimplemented_scalings_are_refused_by_name() {
        // transformers 5.x keeps the base only inside rope_parameters.
        assert_eq!(
            theta_of(r#"{"rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}"#),
            Ok(500000.0)
        );
        assert_eq!(theta_of(r#"{"rope_theta": 1000000.0}"#), Ok(1000000.0));
        assert_eq!(theta_of(r#"{"rope_scaling": null}"#), Ok(10000.0));
        for (json, key) in [
            (
                r#"{"rope_scaling": {"type": "su", "factor": 2.0}}"#,
                "rope_scaling.type = \"su\"",
            ),
            (
                r#"{"max_position_embeddings": 64, "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "beta_fast": "32"}}"#,
                "rope_parameters.beta_fast",
            ),
            (
                r#"{"max_position_embeddings": 64, "rope_parameters": {"rope_type": "yarn", "factor": 4.0, "truncate": 1}}"#,
                "rope_parameters.truncate",
            ),
            (
                r#"{"rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "low_freq_factor": 1}}"#,
                "rope_parameters.low_freq_factor",
            ),
            (
                r#"{"rope_parameters": {"rope_type": "longrope", "factor": 8.0}}"#,
                "rope_parameters.rope_type = \"longrope\"",
            ),
            (
                r#"{"rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 0.5}}"#,
                "rope_parameters.partial_rotary_factor",
            ),
            (
                r#"{"rope_theta": 10000.0, "rope_parameters": {"rope_theta": 500000.0}}"#,
                "disagree",
            ),
        ] {
            let err = theta_of(json).unwrap_err();
            assert!(
                err.contains(key) && err.contains("config.json"),
                "{json}: {err}"
            );
        }
    }
}
