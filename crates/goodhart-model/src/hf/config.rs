//! `config.json`: the keys goodhart reads, the ones it knows change nothing,
//! and the [`ModelConfig`] it builds from them (or an error naming the key).

use std::path::Path;

use serde::Deserialize;

use super::{checkpoint_error, rope};
use crate::error::{Error, Result};
use crate::model::{Arch, ModelConfig};

/// The fields of `config.json` goodhart reads; the rest are kept in `unread`.
#[derive(Clone, Debug, Deserialize)]
pub struct RawConfig {
    pub(super) model_type: Option<String>,
    pub(super) vocab_size: Option<usize>,
    // GPT-2
    pub(super) n_embd: Option<usize>,
    pub(super) n_layer: Option<usize>,
    pub(super) n_head: Option<usize>,
    pub(super) n_positions: Option<usize>,
    pub(super) n_inner: Option<usize>,
    pub(super) layer_norm_epsilon: Option<f64>,
    pub(super) activation_function: Option<String>,
    #[serde(default)]
    pub(super) scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    pub(super) reorder_and_upcast_attn: bool,
    /// Attention scores divided by sqrt(head_dim) (default true).
    pub(super) scale_attn_weights: Option<bool>,
    /// Cross-attention layers for an encoder-decoder (goodhart has no encoder).
    #[serde(default)]
    pub(super) add_cross_attention: bool,
    pub(super) tie_word_embeddings: Option<bool>,
    pub(super) initializer_range: Option<f64>,
    // Llama family
    pub(super) hidden_size: Option<usize>,
    pub(super) intermediate_size: Option<usize>,
    pub(super) num_hidden_layers: Option<usize>,
    pub(super) num_attention_heads: Option<usize>,
    pub(super) num_key_value_heads: Option<usize>,
    pub(super) max_position_embeddings: Option<usize>,
    pub(super) rms_norm_eps: Option<f64>,
    pub(super) rope_theta: Option<f64>,
    pub(super) rope_scaling: Option<serde_json::Value>,
    /// transformers 5.x: `{"rope_theta": ..., "rope_type": ...}` in place of the two above.
    pub(super) rope_parameters: Option<serde_json::Value>,
    pub(super) hidden_act: Option<String>,
    pub(super) head_dim: Option<usize>,
    pub(super) attention_bias: Option<bool>,
    pub(super) mlp_bias: Option<bool>,
    /// Mistral (and Qwen2 with `use_sliding_window`): each token sees this many.
    pub(super) sliding_window: Option<usize>,
    pub(super) use_sliding_window: Option<bool>,
    /// transformers 5.x: "full_attention" or "sliding_attention" per layer.
    pub(super) layer_types: Option<Vec<String>>,
    /// Qwen2/Qwen3 without `layer_types`: layers from this one on slide.
    pub(super) max_window_layers: Option<usize>,
    /// Quantised weights (bitsandbytes, GPTQ, ...): refused.
    pub(super) quantization_config: Option<serde_json::Value>,
    // special tokens
    pub(super) bos_token_id: Option<serde_json::Value>,
    pub(super) eos_token_id: Option<serde_json::Value>,
    pub(super) pad_token_id: Option<serde_json::Value>,
    /// Every key not above.
    #[serde(flatten)]
    pub(super) unread: serde_json::Map<String, serde_json::Value>,
}

/// Keys of transformers' GPT-2, Llama, Qwen2, Qwen3 and Mistral configs that do
/// not change the logits goodhart computes, each with the reason.
pub const KEYS_WITHOUT_EFFECT: &[(&str, &str)] = &[
    ("_name_or_path", "where it was loaded from"),
    ("architectures", "a class name; model_type decides"),
    ("transformers_version", "the writer's version"),
    ("dtype", "stored type; goodhart computes in f32"),
    ("torch_dtype", "stored type (older name)"),
    ("use_cache", "a KV cache (goodhart always keeps one)"),
    ("return_dict", "the form of outputs"),
    ("output_attentions", "extra outputs"),
    ("output_hidden_states", "extra outputs"),
    ("id2label", "a classification head's labels"),
    ("label2id", "a classification head's labels"),
    ("problem_type", "a classification head's loss"),
    ("is_encoder_decoder", "false for these classes"),
    ("chunk_size_feed_forward", "MLP evaluation order"),
    ("attn_pdrop", "dropout (training only)"),
    ("embd_pdrop", "dropout (training only)"),
    ("resid_pdrop", "dropout (training only)"),
    ("attention_dropout", "dropout (training only)"),
    ("summary_type", "GPT-2's multiple-choice head"),
    ("summary_use_proj", "GPT-2's multiple-choice head"),
    ("summary_activation", "GPT-2's multiple-choice head"),
    ("summary_proj_to_labels", "GPT-2's multiple-choice head"),
    ("summary_first_dropout", "GPT-2's multiple-choice head"),
    ("pretraining_tp", "a tensor-parallel split, same matmuls"),
    ("n_ctx", "old duplicate of n_positions"),
];

/// The keys of `text` (a `config.json`) goodhart neither reads nor lists in
/// [`KEYS_WITHOUT_EFFECT`]: for the tests that walk transformers' config keys.
pub fn unread_keys(text: &str) -> Result<Vec<String>> {
    let raw: RawConfig = serde_json::from_str(text)
        .map_err(|e| Error::Mismatch(format!("not a model config: {e}")))?;
    Ok(raw
        .unread
        .keys()
        .filter(|k| !KEYS_WITHOUT_EFFECT.iter().any(|(key, _)| key == k))
        .cloned()
        .collect())
}

/// A special-token id from config.json: a number, or the first of a list.
pub(super) fn token_id(v: &Option<serde_json::Value>) -> Option<u32> {
    token_ids(v).first().copied()
}

/// Every id of a special-token entry: a number, or a list of them.
pub(super) fn token_ids(v: &Option<serde_json::Value>) -> Vec<u32> {
    let id = |n: &serde_json::Value| n.as_u64().map(|n| n as u32);
    match v {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(id).collect(),
        Some(n) => id(n).into_iter().collect(),
        None => vec![],
    }
}

/// A Hugging Face `config.json` (the text of the file at `path`), read and
/// checked: what goodhart builds from it, or an error naming the file and key.
pub fn parse_config(text: &str, path: &Path) -> Result<(RawConfig, ModelConfig)> {
    let raw: RawConfig = serde_json::from_str(text)
        .map_err(|e| checkpoint_error(path, format!("not a model config: {e}")))?;
    if raw.quantization_config.is_some() {
        return Err(checkpoint_error(
            path,
            "quantization_config: quantised weights are not supported",
        ));
    }
    let config = match raw.model_type.as_deref() {
        Some("gpt2") => gpt2_config(&raw, path)?,
        Some(t @ ("llama" | "qwen2" | "qwen3" | "mistral")) => llama_config(&raw, t, path)?,
        Some(other) => {
            return Err(checkpoint_error(
                path,
                format!(
                    "unsupported model_type {other:?} (goodhart loads gpt2, llama, qwen2, qwen3, mistral)"
                ),
            ))
        }
        None => return Err(checkpoint_error(path, "no model_type")),
    };
    Ok((raw, config))
}

fn gpt2_config(raw: &RawConfig, path: &Path) -> Result<ModelConfig> {
    let need = |v: Option<usize>, key: &str| {
        v.ok_or_else(|| checkpoint_error(path, format!("missing `{key}`")))
    };
    let activation = raw.activation_function.as_deref().unwrap_or("gelu_new");
    if !matches!(activation, "gelu_new" | "gelu_pytorch_tanh") {
        return Err(checkpoint_error(
            path,
            format!("activation_function {activation:?} is not supported (goodhart's GPT-2 uses the tanh GELU, \"gelu_new\")"),
        ));
    }
    if raw.scale_attn_by_inverse_layer_idx || raw.reorder_and_upcast_attn {
        return Err(checkpoint_error(
            path,
            "scale_attn_by_inverse_layer_idx / reorder_and_upcast_attn are not supported",
        ));
    }
    if raw.add_cross_attention {
        return Err(checkpoint_error(
            path,
            "add_cross_attention = true is not supported (goodhart's GPT-2 has no encoder)",
        ));
    }
    let config = ModelConfig {
        arch: Arch::Gpt2,
        n_layer: need(raw.n_layer, "n_layer")?,
        d_model: need(raw.n_embd, "n_embd")?,
        n_head: need(raw.n_head, "n_head")?,
        n_ctx: need(raw.n_positions, "n_positions")?,
        d_ff: raw.n_inner.unwrap_or(0),
        vocab_size: need(raw.vocab_size, "vocab_size")?,
        layer_norm_eps: raw.layer_norm_epsilon.unwrap_or(1e-5),
        init_std: raw.initializer_range.unwrap_or(0.02),
        scale_attn: raw.scale_attn_weights.unwrap_or(true),
        ..ModelConfig::default()
    };
    config
        .validate()
        .map_err(|e| checkpoint_error(path, e.to_string()))?;
    Ok(config)
}

fn llama_config(raw: &RawConfig, model_type: &str, path: &Path) -> Result<ModelConfig> {
    let need = |v: Option<usize>, key: &str| {
        v.ok_or_else(|| checkpoint_error(path, format!("missing `{key}`")))
    };
    let act = raw.hidden_act.as_deref().unwrap_or("silu");
    if act != "silu" {
        return Err(checkpoint_error(
            path,
            format!("hidden_act {act:?} is not supported (SwiGLU needs \"silu\")"),
        ));
    }
    if raw.mlp_bias == Some(true) {
        return Err(checkpoint_error(
            path,
            "mlp_bias = true is not supported (goodhart's SwiGLU projections have no biases)",
        ));
    }
    let (rope_theta, rope_scaling) = rope::rope(raw, path)?;
    let d = need(raw.hidden_size, "hidden_size")?;
    let n_head = need(raw.num_attention_heads, "num_attention_heads")?;
    let n_layer = need(raw.num_hidden_layers, "num_hidden_layers")?;
    // An explicit head width (Qwen3, Mistral-Nemo) is kept; one equal to
    // hidden_size / num_attention_heads is the default and stays implicit.
    let head_dim = match raw.head_dim {
        Some(0) => return Err(checkpoint_error(path, "head_dim is 0")),
        Some(h) if h * n_head != d => h,
        _ => 0,
    };
    let (n_ctx, sliding_window) = context(raw, model_type, n_layer, path)?;
    // As transformers builds them: Qwen2 always has query/key/value biases and no
    // output bias, Mistral never has any, Llama and Qwen3 have all four when
    // attention_bias says so.
    let attention_bias = raw.attention_bias.unwrap_or(false);
    let (qkv_bias, o_bias) = match model_type {
        "qwen2" => (true, false),
        "llama" | "qwen3" => (attention_bias, attention_bias),
        _ => (false, false),
    };
    let config = ModelConfig {
        arch: Arch::Llama,
        n_layer,
        d_model: d,
        n_head,
        n_kv_head: raw.num_key_value_heads.unwrap_or(n_head),
        n_ctx,
        d_ff: need(raw.intermediate_size, "intermediate_size")?,
        vocab_size: need(raw.vocab_size, "vocab_size")?,
        layer_norm_eps: raw.rms_norm_eps.unwrap_or(1e-6),
        init_std: raw.initializer_range.unwrap_or(0.02),
        rope_theta,
        rope_scaling,
        tie_embeddings: raw.tie_word_embeddings.unwrap_or(model_type != "llama"),
        qkv_bias,
        o_bias,
        head_dim,
        qk_norm: model_type == "qwen3",
        scale_attn: true,
        sliding_window,
    };
    config
        .validate()
        .map_err(|e| checkpoint_error(path, e.to_string()))?;
    Ok(config)
}

/// The context goodhart gives a Llama-family model, and the sliding window
/// when it is shorter (0 otherwise): `max_position_embeddings`, or a shorter
/// window some layer slides over, within which sliding-window attention is full
/// attention (so nothing is approximated; sampling past it is refused).
fn context(
    raw: &RawConfig,
    model_type: &str,
    n_layer: usize,
    path: &Path,
) -> Result<(usize, usize)> {
    let max = raw
        .max_position_embeddings
        .ok_or_else(|| checkpoint_error(path, "missing `max_position_embeddings`"))?;
    let layer_types = raw.layer_types.iter().flatten();
    if let Some(other) = layer_types
        .clone()
        .find(|t| !matches!(t.as_str(), "full_attention" | "sliding_attention"))
    {
        return Err(checkpoint_error(
            path,
            format!("layer_types has {other:?}: goodhart knows \"full_attention\" and \"sliding_attention\""),
        ));
    }
    let listed_sliding = layer_types.clone().any(|t| t == "sliding_attention");
    // Which layers slide, as transformers decides: Mistral's window is on every
    // layer; Qwen2/Qwen3's (with use_sliding_window) on those layer_types names,
    // or without layer_types on those from max_window_layers on.
    let window = match model_type {
        "mistral" => raw.sliding_window,
        "qwen2" | "qwen3" if raw.use_sliding_window == Some(true) => {
            let slides = match &raw.layer_types {
                Some(_) => listed_sliding,
                None => n_layer > raw.max_window_layers.unwrap_or(28),
            };
            raw.sliding_window.filter(|_| slides)
        }
        _ => None,
    };
    match window {
        Some(w) if w.max(1) < max => Ok((w.max(1), w.max(1))),
        Some(_) => Ok((max, 0)),
        None if listed_sliding && model_type != "qwen2" && model_type != "qwen3" => {
            Err(checkpoint_error(
                path,
                "layer_types has \"sliding_attention\" but there is no sliding_window",
            ))
        }
        None => Ok((max, 0)),
    }
}
