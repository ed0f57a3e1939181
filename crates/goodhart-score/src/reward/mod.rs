//! Reward models: a transformer trunk with a scalar head, read at the last
//! token, trained on comparisons (Bradley-Terry). An ensemble averages members
//! whose scores are each normalised to mean 0, standard deviation 1 on the
//! base policy's completions; their spread is the model's uncertainty.

pub mod config;
pub mod train;

use std::path::Path;
use std::sync::Arc;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::model::checkpoint::{self, CheckpointInfo, ModelKind};
use crate::model::{Device, Model, SequenceBatch};
use crate::task::{GoldJudge, Observer, Task, TaskConfig};
use crate::tokenize::{Tokenizer, TokenizerSpec};

pub use config::{RewardInit, RewardModelConfig};
pub use train::{evaluate_on, fine_tune, train_reward_model, RewardReport};

const INFO_FILE: &str = "reward_model.json";

/// Build a task, loading the reward model a `jsonl` task names as its gold
/// (`gold_model`) first: a model that does not load fails here, naming its
/// directory, before any work is done.
pub fn build_task(config: &TaskConfig, seed: u64) -> Result<Box<dyn Task>> {
    let judge =
        match config {
            TaskConfig::Jsonl(c) => match &c.gold_model {
                Some(dir) => Some(Box::new(RewardModel::load(dir, &crate::runtime::device())?)
                    as Box<dyn GoldJudge>),
                None => None,
            },
            _ => None,
        };
    config.build_with(seed, judge)
}

/// A reward model as a task's gold: its ensemble mean, one completion at a time.
impl GoldJudge for RewardModel {
    fn judge(&self, prompt: &str, completion: &str) -> Result<f64> {
        Ok(self.score_texts(&[(prompt, completion)])?[0].mean)
    }
}

/// One member of an ensemble: a network and the affine map that normalises its raw scores.
pub struct Member {
    pub model: Model,
    pub shift: f64,
    pub scale: f64,
}

/// What a reward model is for, checked whenever it is loaded for use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardModelInfo {
    pub task: String,
    pub tokenizer: TokenizerSpec,
    /// Whose labels it learned.
    pub labelers: Vec<String>,
    pub comparisons: usize,
    /// (shift, scale) per member: normalised = (raw - shift) / scale.
    pub normalisation: Vec<(f64, f64)>,
    /// The random-answer rate folded into its likelihood (for held-out losses).
    #[serde(default)]
    pub p_random: f64,
    /// It reads the task's observations after each completion (`task::observer`).
    #[serde(default)]
    pub observes: bool,
}

pub struct RewardModel {
    pub members: Vec<Member>,
    pub info: RewardModelInfo,
}

/// A reward model's verdict on one completion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RewardScore {
    /// Mean of the members' normalised scores.
    pub mean: f64,
    /// Standard deviation across members (0 for a single model).
    pub spread: f64,
}

impl RewardModel {
    pub fn tokenizer(&self) -> &dyn Tokenizer {
        self.members[0].model.tokenizer()
    }

    /// What it reads after each completion, when it observes more than the text.
    pub fn observer(&self) -> Option<Observer> {
        if self.info.observes {
            crate::task::observer(&self.info.task)
        } else {
            None
        }
    }

    /// Scores of sampled completions: `(prompt, completion text, completion
    /// tokens as sampled)`, each followed by its observation when the model reads one.
    pub fn score_completions(
        &self,
        items: &[(&str, &[u32], &str, &[u32])],
    ) -> Result<Vec<RewardScore>> {
        let tok = self.tokenizer();
        let observer = self.observer();
        let completions = items
            .iter()
            .map(|&(prompt, _, text, tokens)| {
                observed(tok, observer, prompt, text, tokens.to_vec())
            })
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<(&[u32], &[u32])> = items
            .iter()
            .zip(&completions)
            .map(|(&(_, p, _, _), c)| (p, c.as_slice()))
            .collect();
        self.score_tokens(&pairs)
    }

    /// Scores of `(prompt tokens, completion tokens)` pairs, each completion as
    /// sampled (ending with EOS only when it finished: see `Tokenizer::encode_completion_as`)
    /// and followed by its observation when the model reads one (see [`Self::score_completions`]).
    pub fn score_tokens(&self, pairs: &[(&[u32], &[u32])]) -> Result<Vec<RewardScore>> {
        let n_ctx = self.members[0].model.config().n_ctx;
        if let Some((i, (p, c))) = pairs
            .iter()
            .enumerate()
            .find(|(_, (p, c))| p.len() + c.len() > n_ctx)
        {
            return Err(Error::invalid(
                "input",
                format!(
                    "item {}: prompt and completion (with what the labeler saw, where the model reads it) are {} tokens, more than the reward model's context of {n_ctx}",
                    i + 1,
                    p.len() + c.len()
                ),
            ));
        }
        let mut per_member: Vec<Vec<f64>> = vec![];
        for m in &self.members {
            let raw = raw_scores(&m.model, pairs)?;
            per_member.push(raw.into_iter().map(|r| (r - m.shift) / m.scale).collect());
        }
        let k = per_member.len() as f64;
        Ok((0..pairs.len())
            .map(|i| {
                let mean = per_member.iter().map(|s| s[i]).sum::<f64>() / k;
                let var = per_member
                    .iter()
                    .map(|s| (s[i] - mean).powi(2))
                    .sum::<f64>()
                    / k;
                RewardScore {
                    mean,
                    spread: var.sqrt(),
                }
            })
            .collect())
    }

    /// Scores of finished `(prompt, completion)` texts (e.g. a user's data).
    pub fn score_texts(&self, items: &[(&str, &str)]) -> Result<Vec<RewardScore>> {
        let tok = self.tokenizer();
        let observer = self.observer();
        let encoded = items
            .iter()
            .map(|(p, c)| {
                let completion = observed(tok, observer, p, c, tok.encode_completion(c)?)?;
                Ok((tok.encode_prompt(p)?, completion))
            })
            .collect::<Result<Vec<_>>>()?;
        let pairs: Vec<(&[u32], &[u32])> = encoded
            .iter()
            .map(|(p, c)| (p.as_slice(), c.as_slice()))
            .collect();
        self.score_tokens(&pairs)
    }

    /// Check that this reward model can judge `task`'s completions made with `tokenizer`.
    pub fn check_compatible(&self, task: &str, tokenizer: &TokenizerSpec) -> Result<()> {
        if self.info.task != task {
            return Err(Error::Mismatch(format!(
                "the reward model was trained on task {:?}, not {task:?}",
                self.info.task
            )));
        }
        if &self.info.tokenizer != tokenizer {
            return Err(Error::Mismatch(
                "the reward model uses another tokenizer than the policy".into(),
            ));
        }
        Ok(())
    }

    /// Save as a directory: `reward_model.json` and one checkpoint per member.
    pub fn save(&self, dir: &Path, replace: bool) -> Result<()> {
        let json = serde_json::to_vec_pretty(&self.info).expect("reward model info serialises");
        fsutil::write_dir_atomic(dir, replace, |tmp| {
            for (i, m) in self.members.iter().enumerate() {
                let info = CheckpointInfo::new(&m.model, ModelKind::RewardModel);
                checkpoint::save(&m.model, &info, &tmp.join(format!("member-{i}")), false)?;
            }
            fsutil::write_synced(&tmp.join(INFO_FILE), &json)
        })
    }

    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let path = dir.join(INFO_FILE);
        let bytes = std::fs::read(&path)
            .map_err(|e| Error::checkpoint(dir, format!("cannot read {INFO_FILE}: {e}")))?;
        let info: RewardModelInfo = serde_json::from_slice(&bytes)
            .map_err(|e| Error::checkpoint(dir, format!("{INFO_FILE}: {e}")))?;
        if info.normalisation.is_empty() {
            return Err(Error::checkpoint(dir, format!("{INFO_FILE}: no members")));
        }
        let members = info
            .normalisation
            .iter()
            .enumerate()
            .map(|(i, &(shift, scale))| {
                let (model, ck) =
                    checkpoint::load(&dir.join(format!("member-{i}")), device, false)?;
                if ck.kind != ModelKind::RewardModel {
                    return Err(Error::checkpoint(
                        dir,
                        format!("member-{i} is not a reward model"),
                    ));
                }
                if ck.tokenizer != info.tokenizer {
                    return Err(Error::checkpoint(
                        dir,
                        format!("member-{i} has another tokenizer than {INFO_FILE} says"),
                    ));
                }
                Ok(Member {
                    model,
                    shift,
                    scale,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { members, info })
    }

    /// An independent copy whose members can be trained further (online reward modelling).
    pub fn trainable_copy(&self) -> Result<Self> {
        let members = self
            .members
            .iter()
            .map(|m| {
                Ok(Member {
                    model: m.model.deep_copy(true)?,
                    shift: m.shift,
                    scale: m.scale,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            members,
            info: self.info.clone(),
        })
    }

    pub fn tokenizer_arc(&self) -> Arc<dyn Tokenizer> {
        self.members[0].model.tokenizer_arc()
    }
}

/// A completion's tokens followed by what `observer` says the labeler saw of it.
pub(crate) fn observed(
    tok: &dyn Tokenizer,
    observer: Option<Observer>,
    prompt: &str,
    completion: &str,
    mut tokens: Vec<u32>,
) -> Result<Vec<u32>> {
    if let Some(observe) = observer {
        tokens.extend(tok.encode(&observe(prompt, completion))?);
    }
    Ok(tokens)
}

/// Raw (unnormalised) scalar-head outputs at each sequence's last token, no gradient.
pub fn raw_scores(model: &Model, pairs: &[(&[u32], &[u32])]) -> Result<Vec<f64>> {
    crate::runtime::map_pieces(pairs.len(), 64, |r| {
        let batch = SequenceBatch::new(&pairs[r], model.tokenizer().pad_id(), model.device())?;
        let r = last_token_scalar(model.eval_net(), &batch)?;
        Ok(r.to_vec1::<f32>()?.into_iter().map(f64::from).collect())
    })
}

/// The scalar head at each sequence's last token `[b]` (differentiable through `net`).
pub fn last_token_scalar(net: &crate::model::Transformer, batch: &SequenceBatch) -> Result<Tensor> {
    let hidden = net.hidden(
        &batch.input,
        &batch.positions,
        crate::model::Mask::Causal,
        None,
    )?;
    let values = net.scalar(&hidden)?; // [b, t]
    Ok(values.gather(&batch.last.unsqueeze(1)?, 1)?.squeeze(1)?)
}
