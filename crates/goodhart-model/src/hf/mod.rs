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

mod config;
mod rope;
mod tokenizer;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

pub use config::{parse_config, unread_keys, RawConfig, KEYS_WITHOUT_EFFECT};
pub use tokenizer::{HfTokenizer, TOKENIZER_FILE};

use config::{token_id, token_ids};

use crate::error::{Error, Result};
use crate::model::transformer::{parameter_specs, ParamSpec};
use crate::model::{Arch, Model, ModelConfig};
use crate::tokenize::Tokenizer as _;

pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

fn checkpoint_error(path: &Path, message: impl Into<String>) -> Error {
    Error::checkpoint(path, message)
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
