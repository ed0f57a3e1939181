//! The one way a policy is measured, wherever it is measured (the base policy,
//! the pool of base samples, every checkpoint, `goodhart eval`): plain samples
//! of each prompt, scored by gold, every labeler, the task's features and,
//! when there is one, the proxy.

use super::{score_samples, Proxy, Scored};
use crate::error::Result;
use crate::feedback::Labeler;
use crate::model::sample::{sample, Sample, SamplingConfig};
use crate::model::Model;
use crate::reward::RewardModel;
use crate::rng::Rng;
use crate::task::Task;

/// How every measured policy is sampled: at temperature 1 with no truncation,
/// so its samples are draws from the policy itself and a KL is the policy's
/// own; only the length limit is the task's.
pub fn measurement_sampling(max_new_tokens: usize) -> SamplingConfig {
    SamplingConfig {
        max_new_tokens,
        ..SamplingConfig::default()
    }
}

/// Who judges a measured policy's completions.
#[derive(Clone, Copy)]
pub struct Judges<'a> {
    pub task: &'a dyn Task,
    pub labelers: &'a [Labeler<'a>],
    /// The proxy reward model, when its score is wanted too.
    pub proxy: Option<&'a RewardModel>,
}

/// A policy's samples of some prompts, scored.
pub struct Evaluated {
    /// Each prompt's tokens, as the policy read it.
    pub prompt_tokens: Vec<Vec<u32>>,
    /// `per_prompt` consecutive samples per prompt, in prompt order.
    pub samples: Vec<Sample>,
    /// Each sample, scored.
    pub scored: Vec<Scored>,
}

/// Sample `per_prompt` completions of each of `prompts` from `policy` (see
/// [`measurement_sampling`]) and score every one.
pub fn evaluate(
    policy: &Model,
    judges: &Judges,
    prompts: &[String],
    per_prompt: usize,
    max_new_tokens: usize,
    rng: &mut Rng,
) -> Result<Evaluated> {
    let tok = policy.tokenizer();
    let prompt_tokens = prompts
        .iter()
        .map(|p| tok.encode_prompt(p))
        .collect::<Result<Vec<_>>>()?;
    let samples = sample(
        policy,
        &prompt_tokens,
        per_prompt,
        &measurement_sampling(max_new_tokens),
        rng,
    )?;
    let mut scored = score_samples(judges.task, judges.labelers, prompts, &samples)?;
    if let Some(rm) = judges.proxy {
        Proxy(rm).annotate(&mut scored, prompts, &prompt_tokens, &samples)?;
    }
    Ok(Evaluated {
        prompt_tokens,
        samples,
        scored,
    })
}
