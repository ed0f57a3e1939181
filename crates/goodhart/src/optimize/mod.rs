//! Optimisation strategies, one file each, over shared pieces: reward sources,
//! sampling, scoring and KL to the reference policy.
//!
//! - [`bon`]: best-of-n from one pool of base samples, for every n at once;
//! - [`condition`]: the KL-regularised optimum `pi_ref exp(r / beta)`, by importance weighting;
//! - [`quantilize`]: the top q of base samples by reward;
//! - [`ppo`]: PPO with a per-token or sequence KL penalty, fixed or adaptive;
//! - [`rloo`]: REINFORCE with a leave-one-out baseline, same KL options;
//! - [`dpo`]: DPO and IPO on stored preference pairs.

pub mod bon;
pub mod condition;
pub mod dpo;
pub mod online;
pub mod pool;
pub mod ppo;
pub mod quantilize;
pub mod rl;
pub mod rloo;

use crate::error::{Error, Result};
use crate::feedback::Labeler;
use crate::measure::Scored;
use crate::model::sample::Sample;
use crate::model::{Model, SequenceBatch};
use crate::reward::RewardModel;
use crate::task::Task;

/// Something that scores completions: what an optimiser maximises.
pub trait RewardSource: Sync {
    fn name(&self) -> &str;
    /// One reward per sample; `prompts[s.prompt_index]` is each sample's prompt.
    fn rewards(
        &self,
        prompts: &[String],
        prompt_tokens: &[Vec<u32>],
        samples: &[Sample],
    ) -> Result<Vec<f64>>;
}

/// The learned reward model: the proxy.
pub struct Proxy<'a>(pub &'a RewardModel);

impl RewardSource for Proxy<'_> {
    fn name(&self) -> &str {
        "proxy"
    }

    fn rewards(
        &self,
        _prompts: &[String],
        prompt_tokens: &[Vec<u32>],
        samples: &[Sample],
    ) -> Result<Vec<f64>> {
        let pairs: Vec<(&[u32], &[u32])> = samples
            .iter()
            .map(|s| {
                (
                    prompt_tokens[s.prompt_index].as_slice(),
                    completion_tokens(s),
                )
            })
            .collect();
        Ok(self
            .0
            .score_tokens(&pairs)?
            .into_iter()
            .map(|s| s.mean)
            .collect())
    }
}

impl Proxy<'_> {
    /// Record the proxy's score on each already-scored sample.
    pub fn annotate(
        &self,
        scored: &mut [Scored],
        prompts: &[String],
        prompt_tokens: &[Vec<u32>],
        samples: &[Sample],
    ) -> Result<()> {
        for (s, p) in scored
            .iter_mut()
            .zip(self.rewards(prompts, prompt_tokens, samples)?)
        {
            s.proxy = Some(p);
        }
        Ok(())
    }
}

/// The task's formal goal: 1 when the trajectory satisfies it, else 0.
pub struct Spec<'a>(pub &'a dyn Task);

impl RewardSource for Spec<'_> {
    fn name(&self) -> &str {
        "spec"
    }

    fn rewards(&self, prompts: &[String], _: &[Vec<u32>], samples: &[Sample]) -> Result<Vec<f64>> {
        samples
            .iter()
            .map(|s| {
                self.0
                    .spec_satisfied(&prompts[s.prompt_index], &s.text)
                    .ok_or_else(|| {
                        Error::invalid(
                            "reward",
                            format!("the {} task has no formal goal to optimise", self.0.name()),
                        )
                    })
            })
            .collect()
    }
}

/// Gold itself (an oracle, for reference runs).
pub struct Gold<'a>(pub &'a dyn Task);

impl RewardSource for Gold<'_> {
    fn name(&self) -> &str {
        "gold"
    }

    fn rewards(&self, prompts: &[String], _: &[Vec<u32>], samples: &[Sample]) -> Result<Vec<f64>> {
        samples
            .iter()
            .map(|s| self.0.gold(&prompts[s.prompt_index], &s.text))
            .collect()
    }
}

/// A labeler's own score (optimising the labeler directly, no reward model in between).
pub struct LabelerScore<'a>(pub &'a Labeler<'a>);

impl RewardSource for LabelerScore<'_> {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn rewards(&self, prompts: &[String], _: &[Vec<u32>], samples: &[Sample]) -> Result<Vec<f64>> {
        samples
            .iter()
            .map(|s| self.0.score(&prompts[s.prompt_index], &s.text))
            .collect()
    }
}

/// A sample's tokens as the model saw them: a completion that hit the length
/// limit has no EOS, and is scored as it stands.
pub fn completion_tokens(s: &Sample) -> &[u32] {
    &s.tokens
}

/// Per-token log-probabilities of each sample's completion under `model` (no gradient).
pub fn score_samples(
    model: &Model,
    prompt_tokens: &[Vec<u32>],
    samples: &[Sample],
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(64) {
        let pairs: Vec<(&[u32], &[u32])> = chunk
            .iter()
            .map(|s| {
                (
                    prompt_tokens[s.prompt_index].as_slice(),
                    completion_tokens(s),
                )
            })
            .collect();
        let batch = SequenceBatch::new(&pairs, model.tokenizer().pad_id(), model.device())?;
        out.extend(model.score_completions(&batch)?);
    }
    Ok(out)
}

/// `log pi(x) - log pi_ref(x)` per sample: averaged over samples from pi, an
/// unbiased estimate of KL(pi || pi_ref).
pub fn sequence_log_ratios(policy_logprobs: &[Vec<f32>], ref_logprobs: &[Vec<f32>]) -> Vec<f64> {
    policy_logprobs
        .iter()
        .zip(ref_logprobs)
        .map(|(p, r)| p.iter().zip(r).map(|(a, b)| (*a - *b) as f64).sum())
        .collect()
}
