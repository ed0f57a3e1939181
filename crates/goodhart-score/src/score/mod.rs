//! Scoring: what every completion is worth to gold, to each labeler, to the
//! proxy and to the formal goal, and what a set of scored completions sums to
//! (a point of a curve). Optimisers and measurement both build on these.

pub mod curve;
pub mod evaluate;
pub mod logprob;
pub mod sources;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::feedback::Labeler;
use crate::model::sample::{Sample, StopReason};
use crate::task::Task;

pub use curve::{CurvePoint, FeatureSeries, PerPrompt, Weighted, BEYOND_LABELS};
pub use evaluate::{evaluate, measurement_sampling, Evaluated, Judges};
pub use logprob::{completion_logprobs, completion_tokens, sequence_log_ratios};
pub use sources::{Binarised, Earned, Gold, LabelerScore, Pessimistic, Proxy, RewardSource, Spec};

/// Everything measured about one completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub prompt_index: usize,
    pub completion: String,
    pub gold: f64,
    /// One score per labeler, in the order given.
    pub labeler: Vec<f64>,
    /// The task's named features.
    pub features: Vec<f64>,
    pub difficulty: u32,
    /// Formal-goal satisfaction, where the task has one.
    pub spec: Option<f64>,
    /// log pi(completion) under the policy that sampled it.
    pub logprob: f64,
    /// The proxy reward model's score, when there is one.
    pub proxy: Option<f64>,
    /// Cut at the length limit instead of ending with EOS.
    #[serde(default)]
    pub truncated: bool,
    /// Why sampling stopped (none for completions that were not sampled here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopReason>,
    /// Tokens the policy generated (EOS included when there is one; not those its environment wrote).
    #[serde(default)]
    pub n_tokens: usize,
    /// For a wrong answer the first labeler cannot check alone: how likely
    /// its assistant is to show it the flaw ([`Labeler::finds_flaw`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flaw_found: Option<f64>,
}

/// Score samples of `prompts` with gold, every labeler and the task's features.
pub fn score_samples(
    task: &dyn Task,
    labelers: &[Labeler],
    prompts: &[String],
    samples: &[Sample],
) -> Result<Vec<Scored>> {
    samples
        .iter()
        .map(|s| {
            let prompt = &prompts[s.prompt_index];
            Ok(Scored {
                prompt_index: s.prompt_index,
                completion: s.text.clone(),
                gold: task.gold(prompt, &s.text)?,
                labeler: labelers
                    .iter()
                    .map(|l| l.score(prompt, &s.text))
                    .collect::<Result<_>>()?,
                features: task.features(prompt, &s.text)?,
                difficulty: task.difficulty(prompt)?,
                spec: task.spec_satisfied(prompt, &s.text),
                logprob: s.logprob(),
                proxy: None,
                truncated: !s.finished(),
                stop: Some(s.stop),
                n_tokens: s.tokens.len() - s.observed,
                flaw_found: match labelers.first() {
                    Some(l) => l.finds_flaw(prompt, &s.text)?,
                    None => None,
                },
            })
        })
        .collect()
}

/// The probability that `gold` beats a uniform draw of `others`, ties counting half.
pub fn win_rate(gold: f64, others: &[f64]) -> f64 {
    let score: f64 = others
        .iter()
        .map(|&o| {
            if gold > o {
                1.0
            } else if gold == o {
                0.5
            } else {
                0.0
            }
        })
        .sum();
    score / others.len().max(1) as f64
}
