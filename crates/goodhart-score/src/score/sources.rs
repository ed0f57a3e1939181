//! Reward sources: what an optimiser maximises, behind one trait (the proxy
//! reward model, the task's formal goal, gold itself, a labeler's own score).

use super::logprob::completion_tokens;
use super::Scored;
use crate::error::{Error, Result};
use crate::feedback::Labeler;
use crate::model::sample::Sample;
use crate::reward::{RewardModel, RewardScore};
use crate::task::Task;

/// Where in one completion its reward was earned: `(position, reward)` pairs.
pub type Earned = Vec<(usize, f64)>;

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

    /// Where in each completion its reward was earned, where the source can
    /// say: `(chars, reward)` pairs, `chars` counting the completion's
    /// characters read when it was earned, summing to [`RewardSource::rewards`]'
    /// value. None: all of it at the end (what RL does with every other source).
    fn earned(&self, _prompts: &[String], _samples: &[Sample]) -> Result<Option<Vec<Earned>>> {
        Ok(None)
    }
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
        proxy_rewards(self.0, 0.0, prompts, prompt_tokens, samples)
    }
}

/// The proxy reward of each sampled completion: the reward model's ensemble
/// mean, less `uncertainty_penalty` times its members' spread (a pessimistic
/// reward where they disagree). `prompts[s.prompt_index]` is each sample's prompt.
pub fn proxy_rewards(
    rm: &RewardModel,
    uncertainty_penalty: f64,
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
    let scores = rm.score_completions(&items)?;
    // No penalty is the mean itself: 0 times an infinite spread would be NaN.
    Ok(if uncertainty_penalty == 0.0 {
        scores.iter().map(|s| s.mean).collect()
    } else {
        let penalised = |s: &RewardScore| s.mean - uncertainty_penalty * s.spread;
        scores.iter().map(penalised).collect()
    })
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

/// The task's formal goal: its satisfaction (1 or 0), its robustness margin
/// (in [-1, 1], positive when satisfied), or that margin paid as it is earned.
pub struct Spec<'a> {
    task: &'a dyn Task,
    kind: SpecReward,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum SpecReward {
    Satisfied,
    Margin,
    /// The margin, earned move by move: after each move, the change in the
    /// margin of the trajectory so far (they sum to the final margin).
    Progress,
}

impl<'a> Spec<'a> {
    pub fn satisfied(task: &'a dyn Task) -> Self {
        let kind = SpecReward::Satisfied;
        Self { task, kind }
    }

    pub fn margin(task: &'a dyn Task) -> Self {
        let kind = SpecReward::Margin;
        Self { task, kind }
    }

    pub fn progress(task: &'a dyn Task) -> Self {
        let kind = SpecReward::Progress;
        Self { task, kind }
    }

    fn no_goal(&self) -> Error {
        let why = format!(
            "the {} task has no formal goal to optimise",
            self.task.name()
        );
        Error::invalid("reward", why)
    }
}

impl RewardSource for Spec<'_> {
    fn name(&self) -> &str {
        match self.kind {
            SpecReward::Satisfied => "spec",
            SpecReward::Margin => "spec_margin",
            SpecReward::Progress => "spec_progress",
        }
    }

    fn rewards(&self, prompts: &[String], _: &[Vec<u32>], samples: &[Sample]) -> Result<Vec<f64>> {
        samples
            .iter()
            .map(|s| {
                let prompt = &prompts[s.prompt_index];
                let value = match self.kind {
                    SpecReward::Satisfied => self.task.spec_satisfied(prompt, &s.text),
                    SpecReward::Margin | SpecReward::Progress => {
                        self.task.spec_margin(prompt, &s.text)
                    }
                };
                value.ok_or_else(|| self.no_goal())
            })
            .collect()
    }

    fn earned(&self, prompts: &[String], samples: &[Sample]) -> Result<Option<Vec<Earned>>> {
        if self.kind != SpecReward::Progress {
            return Ok(None);
        }
        let earned = samples.iter().map(|s| {
            let prompt = &prompts[s.prompt_index];
            let Some(by_move) = self.task.spec_margin_by_move(prompt, &s.text) else {
                // No moves to pay by: the whole margin at the end.
                let margin = self
                    .task
                    .spec_margin(prompt, &s.text)
                    .ok_or_else(|| self.no_goal())?;
                return Ok(vec![(s.text.chars().count(), margin)]);
            };
            let mut before = 0.0;
            let paid = by_move.into_iter().map(|(chars, margin)| {
                let change = margin - before;
                before = margin;
                (chars, change)
            });
            Ok(paid.collect())
        });
        earned.collect::<Result<Vec<_>>>().map(Some)
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

/// The proxy less an uncertainty penalty: the ensemble's mean minus `lambda`
/// times its members' spread (a pessimistic reward where they disagree).
pub struct Pessimistic<'a> {
    pub rm: &'a RewardModel,
    pub lambda: f64,
}

impl RewardSource for Pessimistic<'_> {
    fn name(&self) -> &str {
        "proxy_pessimistic"
    }

    fn rewards(
        &self,
        prompts: &[String],
        prompt_tokens: &[Vec<u32>],
        samples: &[Sample],
    ) -> Result<Vec<f64>> {
        proxy_rewards(self.rm, self.lambda, prompts, prompt_tokens, samples)
    }
}

/// A reward cut to 0 or 1: 1 when it exceeds the threshold that only the top
/// `top` share of the first batch scored (the first batch comes from the
/// base policy, so this is 1[reward > the base policy's (1 - top) quantile],
/// the indicator a quantiliser at q = `top` conditions on).
pub struct Binarised<'a> {
    pub inner: &'a dyn RewardSource,
    pub top: f64,
    threshold: std::sync::OnceLock<f64>,
}

impl<'a> Binarised<'a> {
    pub fn new(inner: &'a dyn RewardSource, top: f64) -> Self {
        Self {
            inner,
            top,
            threshold: std::sync::OnceLock::new(),
        }
    }

    /// The threshold, once the first batch has set it.
    pub fn threshold(&self) -> Option<f64> {
        self.threshold.get().copied()
    }
}

/// The value that a share `top` of `xs` exceeds (the (1 - top) empirical quantile).
pub fn upper_quantile(xs: &[f64], top: f64) -> f64 {
    let mut sorted: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let keep = ((sorted.len() as f64 * top).round() as usize).clamp(1, sorted.len());
    // Strictly above the (keep+1)-th largest: the keep largest pass (ties aside).
    if keep == sorted.len() {
        f64::NEG_INFINITY
    } else {
        sorted[sorted.len() - keep - 1]
    }
}

impl RewardSource for Binarised<'_> {
    fn name(&self) -> &str {
        "binarised"
    }

    fn rewards(
        &self,
        prompts: &[String],
        prompt_tokens: &[Vec<u32>],
        samples: &[Sample],
    ) -> Result<Vec<f64>> {
        let raw = self.inner.rewards(prompts, prompt_tokens, samples)?;
        let threshold = *self
            .threshold
            .get_or_init(|| upper_quantile(&raw, self.top));
        Ok(raw.iter().map(|&r| f64::from(r > threshold)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_quantile_lets_the_top_share_through() {
        let xs: Vec<f64> = (0..10).map(f64::from).collect();
        assert_eq!(upper_quantile(&xs, 0.2), 7.0, "8 and 9 exceed it");
        assert_eq!(upper_quantile(&xs, 0.5), 4.0);
        assert_eq!(upper_quantile(&xs, 1.0), f64::NEG_INFINITY);
        assert_eq!(upper_quantile(&xs, 0.01), 8.0, "at least one passes");
        assert!(upper_quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn the_progress_reward_is_the_margin_paid_move_by_move() {
        let task = crate::task::gridworld::Gridworld::new(Default::default(), 0).unwrap();
        let prompts = task.prompts(crate::task::Split::Heldout)[..2].to_vec();
        let samples: Vec<Sample> = ["DRRRRD", "RRUUx", ""]
            .iter()
            .enumerate()
            .map(|(i, text)| Sample {
                text: text.to_string(),
                ..Sample::new(i % 2, vec![])
            })
            .collect();
        let (margin, progress) = (Spec::margin(&task), Spec::progress(&task));
        let totals = progress.rewards(&prompts, &[], &samples).unwrap();
        assert_eq!(totals, margin.rewards(&prompts, &[], &samples).unwrap());
        let earned = progress.earned(&prompts, &samples).unwrap().unwrap();
        assert_eq!(
            earned[0].len(),
            7,
            "before the first move and after each of six"
        );
        assert_eq!(
            earned[1],
            vec![(5, -1.0)],
            "no moves to pay by: all at the end"
        );
        for (e, total) in earned.iter().zip(&totals) {
            let sum: f64 = e.iter().map(|&(_, r)| r).sum();
            assert!(
                (sum - total).abs() < 1e-12,
                "{e:?} sums to {sum}, not {total}"
            );
        }
        assert_eq!(margin.earned(&prompts, &samples).unwrap(), None);
    }
}
