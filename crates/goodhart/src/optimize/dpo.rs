//! DPO and IPO: fit the policy to preference pairs directly, no reward model.
//! With `h = [log pi(c) - log pi_ref(c)] - [log pi(r) - log pi_ref(r)]` for
//! chosen c and rejected r: DPO minimises `-log sigmoid(beta h)`, IPO
//! `(h - 1 / (2 beta))^2`. Ties pull `h` towards 0.

use candle_core::Tensor;
use rand::seq::SliceRandom;
use serde::{Deserialize, Deserializer, Serialize};

use super::rl::Hooks;
use crate::error::{Error, Result};
use crate::feedback::{Answer, Comparison};
use crate::model::{Model, SequenceBatch};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::train::{OptimConfig, OptimKeys, Trainer};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreferenceLoss {
    #[default]
    Dpo,
    Ipo,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DpoConfig {
    /// The run's name in reports.
    pub name: String,
    /// "dpo" (logistic) or "ipo" (squared).
    pub loss: PreferenceLoss,
    /// Strength of the implicit KL regularisation (IPO's tau).
    pub beta: f64,
    /// Passes over the preference pairs.
    pub epochs: usize,
    /// Pairs per step.
    pub batch_size: usize,
    #[serde(deserialize_with = "optim_over_defaults")]
    pub optim: OptimConfig,
    /// Save and measure the policy every this many steps (and after the last).
    pub checkpoint_every: usize,
}

impl Default for DpoConfig {
    fn default() -> Self {
        Self {
            name: "dpo".into(),
            loss: PreferenceLoss::Dpo,
            beta: 0.1,
            epochs: 2,
            batch_size: 16,
            optim: OptimConfig {
                lr: 3e-4,
                warmup_steps: 10,
                min_lr_ratio: 1.0,
                weight_decay: 0.0,
                ..OptimConfig::default()
            },
            checkpoint_every: 50,
        }
    }
}

/// An `optim` table sets keys over the optimiser defaults of this section.
fn optim_over_defaults<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<OptimConfig, D::Error> {
    OptimKeys::read_over(d, DpoConfig::default().optim)
}

impl DpoConfig {
    pub fn validate(&self, at: &str) -> Result<()> {
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(Error::invalid(format!("{at}.beta"), "must be > 0"));
        }
        if self.epochs == 0 || self.batch_size == 0 || self.checkpoint_every == 0 {
            return Err(Error::invalid(
                format!("{at}.epochs"),
                "epochs, batch_size and checkpoint_every must be at least 1",
            ));
        }
        self.optim.validate(&format!("{at}.optim"))
    }
}

/// One step of DPO.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DpoLog {
    pub step: usize,
    pub loss: f64,
    /// Mean `h`: how much more the policy (than the reference) prefers chosen over rejected.
    pub margin: f64,
    /// Share of the batch's strict pairs with `h > 0`.
    pub accuracy: f64,
}

struct Pair {
    prompt: Vec<u32>,
    chosen: Vec<u32>,
    rejected: Vec<u32>,
    tie: bool,
    ref_chosen: f64,
    ref_rejected: f64,
}

/// (prompt, chosen) of every pair, then (prompt, rejected) of every pair.
fn both_sides<'a>(pairs: &[&'a Pair]) -> Vec<(&'a [u32], &'a [u32])> {
    let chosen = pairs
        .iter()
        .map(|p| (p.prompt.as_slice(), p.chosen.as_slice()));
    let rejected = pairs
        .iter()
        .map(|p| (p.prompt.as_slice(), p.rejected.as_slice()));
    chosen.chain(rejected).collect()
}

/// Sum of completion log-probabilities `[b]` of `seqs` under `net`.
fn sequence_logprobs(
    model: &Model,
    net: &crate::model::Transformer,
    seqs: &[(&[u32], &[u32])],
) -> Result<Tensor> {
    let batch = SequenceBatch::new(seqs, model.tokenizer().pad_id(), model.device())?;
    Ok((model.target_logprobs(net, &batch)? * &batch.completion_mask)?.sum(1)?)
}

/// The preference loss of `batch` summed and divided by `of` (the whole
/// batch's size), and each pair's margin h = policy log-ratio minus reference
/// log-ratio.
fn preference_loss(
    policy: &Model,
    batch: &[&Pair],
    cfg: &DpoConfig,
    of: usize,
) -> Result<(Tensor, Vec<f32>)> {
    let n = batch.len();
    let lp = sequence_logprobs(policy, policy.train_net(), &both_sides(batch))?; // [2n]
    let refs: Vec<f32> = batch
        .iter()
        .map(|p| (p.ref_chosen - p.ref_rejected) as f32)
        .collect();
    let h = ((lp.narrow(0, 0, n)? - lp.narrow(0, n, n)?)?
        - Tensor::from_vec(refs, n, policy.device())?)?;
    let ties = Tensor::from_vec(
        batch
            .iter()
            .map(|p| f32::from(p.tie as u8))
            .collect::<Vec<_>>(),
        n,
        policy.device(),
    )?;
    let strict = (ties.neg()? + 1.0)?;
    let loss = match cfg.loss {
        PreferenceLoss::Dpo => {
            let bh = (&h * cfg.beta)?;
            let softplus = |x: &Tensor| -> Result<Tensor> {
                Ok((x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
            };
            // Strict pairs: softplus(-beta h); ties: the mean of both directions.
            let down = softplus(&bh.neg()?)?;
            let up = softplus(&bh)?;
            ((&strict * &down)? + (&ties * ((&down + &up)? * 0.5)?)?)?
        }
        PreferenceLoss::Ipo => {
            let target = (&strict * (1.0 / (2.0 * cfg.beta)))?;
            (&h - target)?.sqr()?
        }
    };
    Ok(((loss.sum_all()? / of as f64)?, h.to_vec1()?))
}

/// Train `policy` in place on `comparisons`; `reference` stays fixed.
#[allow(clippy::too_many_arguments)]
pub fn train_dpo(
    policy: &Model,
    reference: &Model,
    comparisons: &[Comparison],
    cfg: &DpoConfig,
    hooks: &mut dyn Hooks,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<Vec<DpoLog>> {
    cfg.validate("dpo")?;
    let tok = policy.tokenizer();
    let mut pairs = vec![];
    for c in comparisons {
        // Each completion as it was sampled: EOS only when it ended with one.
        let a = tok.encode_completion_as(&c.a, c.a_finished)?;
        let b = tok.encode_completion_as(&c.b, c.b_finished)?;
        let (chosen, rejected, tie) = match c.answer {
            Answer::A => (a, b, false),
            Answer::B => (b, a, false),
            Answer::Tie => (a, b, true),
            Answer::CantTell => continue,
        };
        pairs.push(Pair {
            prompt: tok.encode_prompt(&c.prompt)?,
            chosen,
            rejected,
            tie,
            ref_chosen: 0.0,
            ref_rejected: 0.0,
        });
    }
    if !pairs.iter().any(|p| !p.tie) {
        return Err(Error::invalid(
            "dpo",
            "no preference pairs to learn from (only ties or none)",
        ));
    }
    // The reference's log-probabilities, once.
    let ref_lp = crate::runtime::map_pieces(pairs.len(), 32, |r| {
        let chunk: Vec<&Pair> = pairs[r].iter().collect();
        let seqs = both_sides(&chunk);
        let lp: Vec<f32> = sequence_logprobs(reference, reference.eval_net(), &seqs)?.to_vec1()?;
        let n = chunk.len();
        Ok((0..n).map(|i| (lp[i], lp[n + i])).collect())
    })?;
    for (p, (chosen, rejected)) in pairs.iter_mut().zip(ref_lp) {
        p.ref_chosen = chosen as f64;
        p.ref_rejected = rejected as f64;
    }

    let steps_per_epoch = pairs.len().div_ceil(cfg.batch_size);
    let total = cfg.epochs * steps_per_epoch;
    let mut trainer = Trainer::new(policy.vars(), &cfg.optim, total, &cfg.name)?;
    let mut logs = vec![];
    let mut order: Vec<usize> = (0..pairs.len()).collect();
    hooks.checkpoint(0, policy)?;
    progress.start(&cfg.name, total as u64);
    let mut step = 0;
    for _ in 0..cfg.epochs {
        order.shuffle(rng);
        for idx in order.chunks(cfg.batch_size) {
            let batch: Vec<&Pair> = idx.iter().map(|&i| &pairs[i]).collect();
            let n = batch.len();
            let (stats, margins) =
                trainer.step_sharded_with(n, |r| preference_loss(policy, &batch[r], cfg, n))?;
            step += 1;
            let hv: Vec<f32> = margins.concat();
            let strict_h: Vec<f32> = hv
                .iter()
                .zip(&batch)
                .filter(|(_, p)| !p.tie)
                .map(|(h, _)| *h)
                .collect();
            logs.push(DpoLog {
                step,
                loss: stats.loss,
                margin: hv.iter().map(|&x| x as f64).sum::<f64>() / n as f64,
                accuracy: strict_h.iter().filter(|&&x| x > 0.0).count() as f64
                    / strict_h.len().max(1) as f64,
            });
            progress.advance(1);
            if step % cfg.checkpoint_every == 0 || step == total {
                hooks.checkpoint(step, policy)?;
            }
        }
    }
    progress.finish();
    Ok(logs)
}
