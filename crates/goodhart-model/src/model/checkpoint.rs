//! Checkpoints: a directory holding `model.safetensors` and `checkpoint.json`
//! (what the weights are: architecture, tokenizer, kind, free-form metadata).
//! The directory is built under a temporary name and renamed into place, so a
//! reader never sees half a checkpoint.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Model, ModelConfig};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::hf::HfTokenizer;
use crate::tokenize::{CharTokenizer, Tokenizer, TokenizerSpec};

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const INFO_FILE: &str = "checkpoint.json";
const FORMAT: &str = "goodhart-checkpoint";
const VERSION: u32 = 1;

/// What a checkpoint's weights are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    Policy,
    RewardModel,
    /// A learned critic: per-step log-odds that a step is wrong.
    Critic,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointInfo {
    pub format: String,
    pub version: u32,
    pub kind: ModelKind,
    pub model: ModelConfig,
    pub tokenizer: TokenizerSpec,
    /// Free-form facts about the run that made it (task, step, score normalisation...).
    #[serde(default)]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl CheckpointInfo {
    pub fn new(model: &Model, kind: ModelKind) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            kind,
            model: model.config().clone(),
            tokenizer: model.tokenizer().spec(),
            meta: Default::default(),
        }
    }
}

/// Save `model` into `dir`. An existing `dir` is replaced only if `replace`.
pub fn save(model: &Model, info: &CheckpointInfo, dir: &Path, replace: bool) -> Result<()> {
    let tensors = model.tensors()?;
    let weights = safetensors::serialize(tensors.iter().map(|(n, t)| (n.as_str(), t)), None)
        .map_err(|e| Error::checkpoint(dir, format!("cannot serialise weights: {e}")))?;
    let json = serde_json::to_vec_pretty(info).expect("checkpoint info serialises");
    let tokenizer_files = model.tokenizer().files();
    fsutil::write_dir_atomic(dir, replace, |tmp| {
        fsutil::write_synced(&tmp.join(WEIGHTS_FILE), &weights)?;
        for (name, bytes) in &tokenizer_files {
            fsutil::write_synced(&tmp.join(name), bytes)?;
        }
        fsutil::write_synced(&tmp.join(INFO_FILE), &json)
    })
}

/// A Hugging Face model directory rather than a goodhart checkpoint.
pub fn is_hugging_face(dir: &Path) -> bool {
    !dir.join(INFO_FILE).exists() && dir.join(crate::hf::CONFIG_FILE).is_file()
}

/// Read only the description of a checkpoint.
pub fn read_info(dir: &Path) -> Result<CheckpointInfo> {
    let path = dir.join(INFO_FILE);
    if !dir.is_dir() {
        return Err(Error::checkpoint(dir, "not a directory"));
    }
    let bytes = std::fs::read(&path)
        .map_err(|e| Error::checkpoint(dir, format!("cannot read {INFO_FILE}: {e}")))?;
    let info: CheckpointInfo = serde_json::from_slice(&bytes)
        .map_err(|e| Error::checkpoint(dir, format!("{INFO_FILE}: {e}")))?;
    if info.format != FORMAT {
        return Err(Error::checkpoint(
            dir,
            format!(
                "{INFO_FILE}: format is {:?}, expected {FORMAT:?}",
                info.format
            ),
        ));
    }
    if info.version != VERSION {
        return Err(Error::checkpoint(
            dir,
            format!(
                "{INFO_FILE}: version {} is not supported (this build reads {VERSION})",
                info.version
            ),
        ));
    }
    info.model
        .validate()
        .map_err(|e| Error::checkpoint(dir, format!("{INFO_FILE}: {e}")))?;
    Ok(info)
}

/// Load a checkpoint; every tensor is checked against the config before use.
/// A Hugging Face directory (`config.json`, no `checkpoint.json`) loads as a
/// policy that records no task.
pub fn load(dir: &Path, device: &Device, trainable: bool) -> Result<(Model, CheckpointInfo)> {
    if is_hugging_face(dir) {
        let model = crate::hf::load(dir, device, trainable)?;
        let mut info = CheckpointInfo::new(&model, ModelKind::Policy);
        info.meta.insert(
            "source".into(),
            serde_json::json!(dir.display().to_string()),
        );
        return Ok((model, info));
    }
    let info = read_info(dir)?;
    let tokenizer: Arc<dyn Tokenizer> = tokenizer_from_spec(&info.tokenizer, Some(dir))
        .map_err(|e| Error::checkpoint(dir, e.to_string()))?
        .into();
    let tensors = read_weights(dir, device)?;
    let model = Model::from_tensors(&info.model, tokenizer, tensors, trainable)
        .map_err(|e| Error::checkpoint(dir.join(WEIGHTS_FILE), e.to_string()))?;
    Ok((model, info))
}

/// Rebuild a tokenizer from its spec; a Hugging Face tokenizer's file is read
/// from `dir` (the checkpoint's directory) and must match the recorded hash.
/// It lives here, above `tokenize` and `hf`, because a checkpoint's spec may name either.
pub fn tokenizer_from_spec(spec: &TokenizerSpec, dir: Option<&Path>) -> Result<Box<dyn Tokenizer>> {
    match spec {
        TokenizerSpec::Chars { alphabet } => Ok(Box::new(CharTokenizer::new(alphabet)?)),
        TokenizerSpec::HuggingFace {
            file,
            sha256,
            bos,
            eos,
            pad,
            more_stops,
            chat_template,
        } => {
            let dir = dir.ok_or_else(|| {
                Error::Tokenize(format!(
                    "Hugging Face tokenizer {file} must be loaded from its checkpoint directory"
                ))
            })?;
            let mut t = HfTokenizer::from_file(&dir.join(file), *bos, *eos, *pad)?
                .with_more_stops(more_stops.clone())?;
            if let Some(template) = chat_template {
                t = t.chatting(template.clone())?;
            }
            if t.sha256() != sha256 {
                return Err(Error::Tokenize(format!(
                    "{} is not the tokenizer this checkpoint was trained with (its hash differs)",
                    dir.join(file).display()
                )));
            }
            Ok(Box::new(t))
        }
    }
}

fn read_weights(dir: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let path = dir.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&path)
        .map_err(|e| Error::checkpoint(dir, format!("cannot read {WEIGHTS_FILE}: {e}")))?;
    // Parse the header ourselves first: its errors name the problem (truncation, bad JSON).
    safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::checkpoint(&path, format!("truncated or corrupt: {e}")))?;
    candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| Error::checkpoint(&path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::transformer::arange_positions;
    use crate::model::Mask;
    use crate::rng;

    fn tiny() -> Model {
        let cfg = ModelConfig {
            n_layer: 2,
            d_model: 32,
            n_head: 4,
            n_ctx: 16,
            ..Default::default()
        };
        let tok = Arc::new(CharTokenizer::ascii());
        Model::init(&cfg, tok, &mut rng::stream(3, "init"), &Device::Cpu).unwrap()
    }

    fn logits(m: &Model) -> Vec<f32> {
        let dev = Device::Cpu;
        let tokens = Tensor::new(&[[1u32, 40, 41, 42, 43, 44]], &dev).unwrap();
        let net = m.eval_net();
        let h = net
            .hidden(
                &tokens,
                &arange_positions(1, 6, &dev).unwrap(),
                Mask::Causal,
                None,
            )
            .unwrap();
        net.lm_logits(&h)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn tokenizer_spec_round_trips() {
        let t = CharTokenizer::new("xyz").unwrap();
        let t2 = tokenizer_from_spec(&t.spec(), None).unwrap();
        assert_eq!(t2.encode("zyx").unwrap(), t.encode("zyx").unwrap());
    }

    #[test]
    fn save_then_load_gives_bit_identical_logits() {
        let dir = tempfile::tempdir().unwrap();
        let m = tiny();
        let info = CheckpointInfo::new(&m, ModelKind::Policy);
        save(&m, &info, &dir.path().join("ck"), false).unwrap();
        let (m2, info2) = load(&dir.path().join("ck"), &Device::Cpu, false).unwrap();
        assert_eq!(info, info2);
        let (a, b) = (logits(&m), logits(&m2));
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn shape_disagreeing_with_config_names_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let m = tiny();
        let mut info = CheckpointInfo::new(&m, ModelKind::Policy);
        info.model.d_model = 64;
        info.model.n_head = 4;
        save(&m, &info, &dir.path().join("ck"), false).unwrap();
        let err = load(&dir.path().join("ck"), &Device::Cpu, false)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("wte.weight"),
            "{err}"
        );
    }

    #[test]
    fn truncated_weights_are_reported_not_panicked_on() {
        let dir = tempfile::tempdir().unwrap();
        let ck = dir.path().join("ck");
        let m = tiny();
        save(&m, &CheckpointInfo::new(&m, ModelKind::Policy), &ck, false).unwrap();
        let w = ck.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&w).unwrap();
        std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap();
        let err = load(&ck, &Device::Cpu, false).err().unwrap().to_string();
        assert!(err.contains("truncated or corrupt"), "{err}");
        std::fs::remove_file(&w).unwrap();
        let err = load(&ck, &Device::Cpu, false).err().unwrap().to_string();
        assert!(err.contains("cannot read model.safetensors"), "{err}");
    }
}
