//! Supervised fine-tuning: next-token cross-entropy on the completion tokens of
//! (prompt, completion) demonstrations, with held-out loss measured along the way.

use rand::seq::SliceRandom;
use serde::{Deserialize, Deserializer, Serialize};

use super::optim::{LossAt, OptimConfig, OptimKeys, Trainer};
use crate::error::{Error, Result};
use crate::model::{Model, SequenceBatch};
use crate::progress::Progress;
use crate::rng::Rng;

/// One demonstration: a prompt and the completion the policy should learn to write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub prompt: String,
    pub completion: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Demonstrations per step.
    pub batch_size: usize,
    pub optim: OptimConfig,
    /// Measure held-out loss every this many steps (and after the last).
    pub eval_every: usize,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            steps: 600,
            batch_size: 32,
            optim: OptimConfig::default(),
            eval_every: 100,
        }
    }
}

/// The keys an `sft` table sets, laid over a section's own SFT defaults
/// (the world model's) as [`OptimKeys`] are over its optimiser's.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftKeys {
    steps: Option<usize>,
    batch_size: Option<usize>,
    optim: Option<OptimKeys>,
    eval_every: Option<usize>,
}

impl SftKeys {
    /// `defaults` with the keys this table set replaced.
    pub fn over(self, defaults: SftConfig) -> SftConfig {
        let d = defaults;
        SftConfig {
            steps: self.steps.unwrap_or(d.steps),
            batch_size: self.batch_size.unwrap_or(d.batch_size),
            optim: self.optim.unwrap_or_default().over(d.optim),
            eval_every: self.eval_every.unwrap_or(d.eval_every),
        }
    }

    /// Read an `sft` table over `defaults` (for a field's `deserialize_with`).
    pub fn read_over<'de, D: Deserializer<'de>>(
        d: D,
        defaults: SftConfig,
    ) -> std::result::Result<SftConfig, D::Error> {
        Ok(Self::deserialize(d)?.over(defaults))
    }
}

impl SftConfig {
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 {
            return Err(Error::invalid("sft.steps", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("sft.batch_size", "must be at least 1"));
        }
        if self.eval_every == 0 {
            return Err(Error::invalid("sft.eval_every", "must be at least 1"));
        }
        self.optim.validate("sft.optim")
    }
}

/// What SFT did, in nats per completion token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SftReport {
    /// The training loss of each step's batch.
    pub train_loss: Vec<LossAt>,
    /// The held-out loss every `eval_every` steps and after the last.
    pub heldout_loss: Vec<LossAt>,
    /// Held-out loss of a unigram model fitted to the training completions: the bar to clear.
    pub unigram_loss: f64,
}

impl SftReport {
    pub fn final_heldout_loss(&self) -> Option<f64> {
        self.heldout_loss.last().map(|l| l.loss)
    }
}

type Encoded = (Vec<u32>, Vec<u32>);

/// Encode demonstrations as (BOS + prompt, completion + EOS) token ids, checking they fit the context.
pub fn encode_examples(model: &Model, examples: &[Example], what: &str) -> Result<Vec<Encoded>> {
    let tok = model.tokenizer();
    let n_ctx = model.config().n_ctx;
    examples
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let p = tok
                .encode_prompt(&e.prompt)
                .map_err(|err| Error::invalid(what, format!("example {i}: {err}")))?;
            let c = tok
                .encode_completion(&e.completion)
                .map_err(|err| Error::invalid(what, format!("example {i}: {err}")))?;
            if p.len() + c.len() > n_ctx {
                return Err(Error::invalid(
                    what,
                    format!(
                        "example {i} has {} tokens; the model's context is {n_ctx}",
                        p.len() + c.len()
                    ),
                ));
            }
            Ok((p, c))
        })
        .collect()
}

/// Train `model` in place on `train`; measure on `heldout`.
pub fn train_sft(
    model: &Model,
    train: &[Example],
    heldout: &[Example],
    cfg: &SftConfig,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<SftReport> {
    cfg.validate()?;
    if train.is_empty() {
        return Err(Error::invalid("sft", "no training demonstrations"));
    }
    let train_seqs = encode_examples(model, train, "sft training data")?;
    let heldout_seqs = encode_examples(model, heldout, "sft held-out data")?;
    let mut report = SftReport {
        unigram_loss: unigram_cross_entropy(&train_seqs, &heldout_seqs, model.config().vocab_size),
        ..Default::default()
    };
    let mut trainer = Trainer::new(model.vars(), &cfg.optim, cfg.steps, "sft")?;
    let pad = model.tokenizer().pad_id();
    let device = model.device().clone();

    // Epochs of shuffled demonstrations, so each is seen once before any is seen twice.
    let mut order: Vec<usize> = vec![];
    progress.start("sft", cfg.steps as u64);
    for _ in 0..cfg.steps {
        let mut idx = Vec::with_capacity(cfg.batch_size);
        while idx.len() < cfg.batch_size {
            if order.is_empty() {
                order = (0..train_seqs.len()).collect();
                order.shuffle(rng);
            }
            idx.push(order.pop().expect("refilled above"));
        }
        let pairs: Vec<(&[u32], &[u32])> = idx
            .iter()
            .map(|&i| (train_seqs[i].0.as_slice(), train_seqs[i].1.as_slice()))
            .collect();
        let stats = sft_step(model, &mut trainer, &pairs, pad, &device)?;
        report.train_loss.push(stats.loss_at());
        if (stats.step % cfg.eval_every == 0 || stats.step == cfg.steps) && !heldout_seqs.is_empty()
        {
            let l = heldout_nll(model, &heldout_seqs)?;
            let loss = LossAt {
                step: stats.step,
                loss: l,
            };
            report.heldout_loss.push(loss);
            tracing::info!(
                step = stats.step,
                train_loss = stats.loss,
                heldout_loss = l,
                "sft"
            );
            progress.message(&format!("loss {:.3} held-out {:.3}", stats.loss, l));
        }
        progress.advance(1);
    }
    progress.finish();
    Ok(report)
}

/// One optimiser step on the mean negative log-likelihood per completion token
/// of `pairs` (prompt, completion), the batch sharded across the pool's threads.
pub fn sft_step(
    model: &Model,
    trainer: &mut Trainer,
    pairs: &[(&[u32], &[u32])],
    pad: u32,
    device: &candle_core::Device,
) -> Result<super::optim::StepStats> {
    let tokens = pairs
        .iter()
        .map(|(_, c)| model.chosen_tokens(c))
        .sum::<usize>()
        .max(1) as f64;
    trainer.step_sharded(pairs.len(), |range| {
        let batch = SequenceBatch::new(&pairs[range], pad, device)?;
        completion_nll_over(model, &batch, tokens)
    })
}

/// Mean negative log-likelihood per completion token of `batch` (differentiable).
pub fn completion_nll(model: &Model, batch: &SequenceBatch) -> Result<candle_core::Tensor> {
    completion_nll_over(model, batch, batch.n_completion_tokens().max(1) as f64)
}

/// `batch`'s negative log-likelihood summed over its completion tokens and divided by `tokens`.
fn completion_nll_over(
    model: &Model,
    batch: &SequenceBatch,
    tokens: f64,
) -> Result<candle_core::Tensor> {
    let lp = model.target_logprobs(model.train_net(), batch)?; // [b, t]
    Ok(((lp * &batch.completion_mask)?.sum_all()? * (-1.0 / tokens))?)
}

/// Mean negative log-likelihood per completion token the policy chose over `seqs` (no gradient).
pub fn heldout_nll(model: &Model, seqs: &[Encoded]) -> Result<f64> {
    let pad = model.tokenizer().pad_id();
    let parts = crate::runtime::map_pieces(seqs.len(), 64, |r| {
        let pairs: Vec<(&[u32], &[u32])> = seqs[r.clone()]
            .iter()
            .map(|(p, c)| (p.as_slice(), c.as_slice()))
            .collect();
        let batch = SequenceBatch::new(&pairs, pad, model.device())?;
        let lp = model.target_logprobs(model.eval_net(), &batch)?;
        let sum = (lp * &batch.completion_mask)?
            .sum_all()?
            .to_scalar::<f32>()?;
        let chosen = seqs[r].iter().map(|(_, c)| model.chosen_tokens(c)).sum();
        Ok(vec![(sum as f64, chosen)])
    })?;
    let total: f64 = -parts.iter().map(|(s, _)| s).sum::<f64>();
    let count: usize = parts.iter().map(|(_, n)| n).sum();
    Ok(total / count.max(1) as f64)
}

/// Held-out cross-entropy of an add-one-smoothed unigram model of the training completions.
fn unigram_cross_entropy(train: &[Encoded], heldout: &[Encoded], vocab: usize) -> f64 {
    let mut counts = vec![1.0f64; vocab];
    for (_, c) in train {
        for &t in c {
            counts[t as usize] += 1.0;
        }
    }
    let total: f64 = counts.iter().sum();
    let (mut nll, mut n) = (0.0, 0usize);
    for (_, c) in heldout {
        for &t in c {
            nll -= (counts[t as usize] / total).ln();
            n += 1;
        }
    }
    nll / n.max(1) as f64
}
