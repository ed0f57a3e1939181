//! Reward sources: what an optimiser maximises, behind one trait (the proxy
//! reward model, the task's formal goal, gold itself, a labeler's own score).

use super::logprob::completion_tokens;
use super::Scored;
use crate::error::{Error, Result};
use crate::feedback::Labeler;
use crate::model::sample::Sample;
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
        prompts: &[String],
        prompt_tokens: &[Vec<u32>],
        samples: &[Sample],
    ) -> Result<Vec<f64>> {
        let items: Vec<(&str, &[u32], &str, &[u32])> = samples
            .iter()
            .map(|s| {
                (
                    prompts[s.prompt_index].as_str(),
                    prompt_tokens[s.prompt_index].as_slice(),
                    s.text.as_str(),
                    completion_tokens(s),
                )
            })
            .collect();
        Ok(self
            .0
            .score_completions(&items)?
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

/// The task's formal goal: its satisfaction (1 or 0), or its robustness
/// margin (in [-1, 1], positive when satisfied: a dense reward).
pub struct Spec<'a> {
    task: &'a dyn Task,
    margin: bool,
}

impl<'a> Spec<'a> {
    pub fn satisfied(task: &'a dyn Task) -> Self {
        Self {
            task,
            margin: false,
        }
    }

    pub fn margin(task: &'a dyn Task) -> Self {
        Self { task, margin: true }
    }
}

impl RewardSource for Spec<'_> {
    fn name(&self) -> &str {
        if self.margin {
            "spec_margin"
        } else {
            "spec"
        }
    }

    fn rewards(&self, prompts: &[String], _: &[Vec<u32>], samples: &[Sample]) -> Result<Vec<f64>> {
        samples
            .iter()
            .map(|s| {
                let prompt = &prompts[s.prompt_index];
                let value = if self.margin {
                    self.task.spec_margin(prompt, &s.text)
                } else {
                    self.task.spec_satisfied(prompt, &s.text)
                };
                value.ok_or_else(|| {
                    Error::invalid(
                        "reward",
                        format!(
                            "the {} task has no formal goal to optimise",
                            self.task.name()
                        ),
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
