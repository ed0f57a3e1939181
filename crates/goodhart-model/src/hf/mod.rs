//! Hugging Face checkpoint directories: `config.json`, `model.safetensors` (or
//! shards listed in `model.safetensors.index.json`) and `tokenizer.json`, read
//! as they are, with no conversion step.
//!
//! GPT-2 maps onto goodhart's own transformer (the same parameter names and
//! `[in, out]` layout), so a loaded GPT-2 trains, samples with the KV cache and
//! serves as a reward-model trunk like any goodhart policy; its scalar head
//! (value / reward) starts at zero. Llama-family checkpoints (Llama, Qwen2,
//! Qwen3, Mistral/SmolLM-style: RMSNorm, rotary positions, grouped-query
//! attention, SwiGLU, tied or untied head) load onto goodhart's Llama blocks
//! the same way.
//!
//! Every key of `config.json` is read, listed in [`KEYS_WITHOUT_EFFECT`] (keys
//! that do not change the logits goodhart computes), or one transformers'
//! configs of these architectures do not define; a value goodhart cannot
//! compute is refused naming the key.

mod rope;
mod tokenizer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

pub use tokenizer::{HfTokenizer, TOKENIZER_FILE};

use crate::error::{Error, Result};
use crate::model::transformer::{parameter_specs, ParamSpec};
use crate::model::{Arch, Model, ModelConfig};
use crate::tokenize::Tokenizer as _;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// The fields of `config.json` goodhart reads; the rest are kept in `unread`.
#[derive(Clone, Debug, Deserialize)]
pub struct RawConfig {
    model_type: Option<String>,
    vocab_size: Option<usize>,
    // GPT-2
    n_embd: Option<usize>,
    n_layer: Option<usize>,
    n_head: Option<usize>,
    n_positions: Option<usize>,
    n_inner: Option<usize>,
    layer_norm_epsilon: Option<f64>,
    activation_function: Option<String>,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    reorder_and_upcast_attn: bool,
    /// Attention scores divided by sqrt(head_dim) (default true).
    scale_attn_weights: Option<bool>,
    /// Cross-attention layers for an encoder-decoder (goodhart has no encoder).
    #[serde(default)]
    add_cross_attention: bool,
    tie_word_embeddings: Option<bool>,
    initializer_range: Option<f64>,
    // Llama family
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    num_key_value_heads: Option<usize>,
    max_position_embeddings: Option<usize>,
    rms_norm_eps: Option<f64>,
    rope_theta: Option<f64>,
    rope_scaling: Option<serde_json::Value>,
    /// transformers 5.x: `{"rope_theta": ..., "rope_type": ...}` in place of the two above.
    rope_parameters: Option<serde_json::Value>,
    hidden_act: Option<String>,
    head_dim: Option<usize>,
    attention_bias: Option<bool>,
    mlp_bias: Option<bool>,
    /// Mistral (and Qwen2 with `use_sliding_window`): each token sees this many.
    sliding_window: Option<usize>,
    use_sliding_window: Option<bool>,
    /// transformers 5.x: "full_attention" or "sliding_attention" per layer.
    layer_types: Option<Vec<String>>,
    /// Qwen2/Qwen3 without `layer_types`: layers from this one on slide.
    max_window_layers: Option<usize>,
    /// Quantised weights (bitsandbytes, GPTQ, ...): refused.
    quantization_config: Option<serde_json::Value>,
    // special tokens
    bos_token_id: Option<serde_json::Value>,
    eos_token_id: Option<serde_json::Value>,
    pad_token_id: Option<serde_json::Value>,
    /// Every key not above.
    #[serde(flatten)]
    unread: serde_json::Map<String, serde_json::Value>,
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

fn checkpoint_error(path: &Path, message: impl Into<String>) -> Error {
    Error::checkpoint(path, message)
}

/// A special-token id from config.json: a number, or the first of a list.
fn token_id(v: &Option<serde_json::Value>) -> Option<u32> {
    token_ids(v).first().copied()
}

/// Every id of a special-token entry: a number, or a list of them.
fn token_ids(v: &Option<serde_json::Value>) -> Vec<u32> {
    let id = |n: &serde_json::Value| n.as_u64().map(|n| n as u32);
    match v {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(id).collect(),
        Some(n) => id(n).into_iter().collect(),
        None => vec![],
    }
}

/// The EOS ids of `generation_config.json`, which transformers' `generate`
/// stops at (none when the file or the key is absent).
fn generation_stops(dir: &Path) -> Result<Vec<u32>> {
    let path = dir.join("generation_config.json");
    if !path.is_file() {
        return Ok(vec![]);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| checkpoint_error(&path, format!("not JSON: {e}")))?;
    Ok(token_ids(&v.get("eos_token_id").cloned()))
}

/// Load a Hugging Face checkpoint directory as a goodhart policy.
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

pub fn load(dir: &Path, device: &Device, trainable: bool) -> Result<Model> {
    if !dir.is_dir() {
        return Err(checkpoint_error(dir, "not a directory"));
    }
    let config_path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| checkpoint_error(&config_path, format!("cannot read: {e}")))?;
    let (raw, config) = parse_config(&text, &config_path)?;

    let tok_path = dir.join(TOKENIZER_FILE);
    if !tok_path.is_file() {
        return Err(checkpoint_error(
            &tok_path,
            "missing (the model's tokenizer is needed)",
        ));
    }
    let eos = token_id(&raw.eos_token_id);
    let bos = token_id(&raw.bos_token_id).or(eos);
    let (Some(bos), Some(eos)) = (bos, eos) else {
        return Err(checkpoint_error(
            &config_path,
            "needs eos_token_id (and bos_token_id unless it is the same)",
        ));
    };
    let pad = token_id(&raw.pad_token_id).unwrap_or(eos);
    // Generation stops at any EOS id either file lists, as transformers' does.
    let stops = [token_ids(&raw.eos_token_id), generation_stops(dir)?].concat();
    let tokenizer = HfTokenizer::from_file(&tok_path, bos, eos, pad)?
        .with_more_stops(stops)?
        .with_template(chat_template(dir)?);
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(checkpoint_error(
            &tok_path,
            format!(
                "the tokenizer has {} tokens but config.json's vocab_size is {}",
                tokenizer.vocab_size(),
                config.vocab_size
            ),
        ));
    }

    let (mut tensors, mut origin) = read_weights(dir, device)?;
    match config.arch {
        Arch::Gpt2 => {
            let tied = raw.tie_word_embeddings.unwrap_or(true);
            gpt2_tensors(&config, &mut tensors, &mut origin, tied, device)?
        }
        Arch::Llama => llama_tensors(&config, &mut tensors, &mut origin, device)?,
    }
    for ParamSpec { name, shape, .. } in parameter_specs(&config) {
        let t = &tensors[&name];
        if t.dims() != shape.as_slice() {
            return Err(checkpoint_error(
                &origin[&name],
                format!(
                    "tensor `{name}` has shape {:?}; config.json implies {shape:?}",
                    t.dims()
                ),
            ));
        }
    }
    Model::from_tensors(&config, Arc::new(tokenizer), tensors, trainable)
        .map_err(|e| checkpoint_error(dir, e.to_string()))
}

/// The chat template of `tokenizer_config.json`, if the directory has one
/// (a string, or the entry named "default" of a list of named templates).
fn chat_template(dir: &Path) -> Result<Option<String>> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| checkpoint_error(&path, format!("not JSON: {e}")))?;
    Ok(match v.get("chat_template") {
        Some(serde_json::Value::String(t)) => Some(t.clone()),
        Some(serde_json::Value::Array(named)) => named
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template")?.as_str().map(str::to_string)),
        _ => None,
    })
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

/// Every tensor of the checkpoint (float32), and the file each came from.
fn read_weights(
    dir: &Path,
    device: &Device,
) -> Result<(HashMap<String, Tensor>, HashMap<String, PathBuf>)> {
    let index = dir.join(INDEX_FILE);
    let files: Vec<PathBuf> = if index.is_file() {
        #[derive(Deserialize)]
        struct Index {
            weight_map: HashMap<String, String>,
        }
        let text = std::fs::read_to_string(&index)
            .map_err(|e| checkpoint_error(&index, format!("cannot read: {e}")))?;
        let idx: Index = serde_json::from_str(&text)
            .map_err(|e| checkpoint_error(&index, format!("not a safetensors index: {e}")))?;
        let mut shards: Vec<String> = idx.weight_map.into_values().collect();
        shards.sort();
        shards.dedup();
        shards.into_iter().map(|s| dir.join(s)).collect()
    } else {
        vec![dir.join(WEIGHTS_FILE)]
    };
    let mut tensors = HashMap::new();
    let mut origin = HashMap::new();
    for file in files {
        let bytes = map_file(&file)?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| checkpoint_error(&file, format!("truncated or corrupt: {e}")))?;
        for (name, view) in st.tensors() {
            let dtype = view.dtype();
            if !matches!(
                dtype,
                safetensors::Dtype::F32 | safetensors::Dtype::F16 | safetensors::Dtype::BF16
            ) {
                return Err(checkpoint_error(
                    &file,
                    format!("tensor `{name}` has dtype {dtype:?}; expected F32, F16 or BF16"),
                ));
            }
            let t = candle_core::safetensors::Load::load(&view, device)
                .and_then(|t| t.to_dtype(DType::F32))
                .map_err(|e| checkpoint_error(&file, format!("tensor `{name}`: {e}")))?;
            origin.insert(name.clone(), file.clone());
            tensors.insert(name, t);
        }
    }
    Ok((tensors, origin))
}

/// The file's bytes, memory-mapped: a large checkpoint is paged in as its
/// tensors are copied out, never held twice.
fn map_file(file: &Path) -> Result<memmap2::Mmap> {
    let f = std::fs::File::open(file)
        .map_err(|e| checkpoint_error(file, format!("cannot read the weights: {e}")))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len == 0 {
        return Err(checkpoint_error(
            file,
            "truncated or corrupt: the file is empty",
        ));
    }
    // SAFETY: the map is read while the tensors are copied out of it, and dropped
    // before this load returns; a checkpoint rewritten during that window is a
    // caller error, as it is for every reader of safetensors files.
    unsafe { memmap2::Mmap::map(&f) }
        .map_err(|e| checkpoint_error(file, format!("cannot map the weights: {e}")))
}

/// Strip Llama's `model.` prefix, drop a tied head's duplicate and rotary buffers,
/// refuse unexpected tensors, and add the zero scalar head.
fn llama_tensors(
    config: &ModelConfig,
    tensors: &mut HashMap<String, Tensor>,
    origin: &mut HashMap<String, PathBuf>,
    device: &Device,
) -> Result<()> {
    for name in tensors.keys().cloned().collect::<Vec<_>>() {
        let t = tensors.remove(&name).expect("listed");
        let file = origin.remove(&name).expect("listed");
        let short = name.strip_prefix("model.").unwrap_or(&name).to_string();
        if short.ends_with("rotary_emb.inv_freq")
            || (config.tie_embeddings && short == "lm_head.weight")
        {
            continue;
        }
        origin.insert(short.clone(), file);
        tensors.insert(short, t);
    }
    add_scalar_head_and_check(config, tensors, origin, device)
}

/// Rename Hugging Face GPT-2 tensors to goodhart's, drop attention-mask buffers,
/// check the LM head is tied, and add the zero scalar head.
fn gpt2_tensors(
    config: &ModelConfig,
    tensors: &mut HashMap<String, Tensor>,
    origin: &mut HashMap<String, PathBuf>,
    tied: bool,
    device: &Device,
) -> Result<()> {
    let names: Vec<String> = tensors.keys().cloned().collect();
    let mut lm_head = None;
    for name in names {
        let t = tensors.remove(&name).expect("listed");
        let file = origin.remove(&name).expect("listed");
        let short = name
            .strip_prefix("transformer.")
            .unwrap_or(&name)
            .to_string();
        if short.ends_with(".attn.bias") || short.ends_with(".attn.masked_bias") {
            continue; // causal-mask buffers, not parameters
        }
        if short == "lm_head.weight" {
            lm_head = Some((t, file));
            continue;
        }
        origin.insert(short.clone(), file);
        tensors.insert(short, t);
    }
    if let Some((head, file)) = lm_head {
        let wte = tensors
            .get("wte.weight")
            .ok_or_else(|| checkpoint_error(&file, "tensor `wte.weight` is missing"))?;
        let same = head.dims() == wte.dims()
            && (&head - wte)?.abs()?.max_all()?.to_scalar::<f32>()? == 0.0;
        if !same {
            return Err(checkpoint_error(
                &file,
                "tensor `lm_head.weight` differs from `wte.weight`: untied GPT-2 heads are not supported",
            ));
        }
    } else if !tied {
        return Err(checkpoint_error(
            Path::new(CONFIG_FILE),
            "tie_word_embeddings is false but there is no `lm_head.weight`",
        ));
    }
    add_scalar_head_and_check(config, tensors, origin, device)
}

/// Every tensor must be one the config expects, and every expected one there;
/// the scalar head (value / reward), which Hugging Face models lack, starts at zero.
fn add_scalar_head_and_check(
    config: &ModelConfig,
    tensors: &mut HashMap<String, Tensor>,
    origin: &mut HashMap<String, PathBuf>,
    device: &Device,
) -> Result<()> {
    let expected: HashMap<String, Vec<usize>> = parameter_specs(config)
        .into_iter()
        .map(|p| (p.name, p.shape))
        .collect();
    if let Some(name) = tensors.keys().find(|n| !expected.contains_key(*n)) {
        return Err(checkpoint_error(
            &origin[name],
            format!(
                "unexpected tensor `{name}` for this {:?} config with {} layers",
                config.arch, config.n_layer
            ),
        ));
    }
    let d = config.d_model;
    tensors.insert(
        "scalar_head.weight".into(),
        Tensor::zeros((d, 1), DType::F32, device)?,
    );
    tensors.insert(
        "scalar_head.bias".into(),
        Tensor::zeros(1, DType::F32, device)?,
    );
    for (name, _) in expected {
        if !tensors.contains_key(&name) {
            let file = origin.values().next().cloned().unwrap_or_default();
            return Err(checkpoint_error(
                &file,
                format!("tensor `{name}` is missing"),
            ));
        }
        origin.entry(name).or_default();
    }
    Ok(())
}
