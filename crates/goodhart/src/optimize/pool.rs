//! A pool of base-policy samples per prompt, each scored every way (gold,
//! labelers, proxy, features, the reward being selected on). Best-of-n,
//! conditioning and quantilisation are all reweightings of one pool.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::feedback::Labeler;
use crate::model::Model;
use crate::reward::RewardModel;
use crate::rng::Rng;
use crate::score::curve::{CurvePoint, Weighted};
use crate::score::RewardSource;
use crate::score::{evaluate, win_rate, Judges, Scored};
use crate::task::{Split, Task};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    /// Prompts of each evaluation split in the pool.
    pub prompts: usize,
    /// Base-policy samples per prompt (the largest best-of-n).
    pub samples: usize,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            prompts: 64,
            samples: 64,
        }
    }
}

pub struct Pool {
    pub task: String,
    pub split: Split,
    pub prompts: Vec<String>,
    pub per_prompt: usize,
    /// Grouped by prompt, `per_prompt` each; `proxy` filled when there is a reward model.
    pub scored: Vec<Scored>,
    /// What the strategies select on, per sample.
    pub reward: Vec<f64>,
    pub reward_name: String,
    pub labeler_names: Vec<String>,
    pub feature_names: Vec<&'static str>,
    /// Completions kept per curve point for reports (the first prompts' most weighted).
    pub examples: usize,
}

/// Sample `per_prompt` completions of each prompt from `base` (plain sampling:
/// the pool must be draws from the base policy itself) and score them.
#[allow(clippy::too_many_arguments)]
pub fn build_pool(
    base: &Model,
    task: &dyn Task,
    labelers: &[Labeler],
    rm: Option<&RewardModel>,
    select_on: &dyn RewardSource,
    split: Split,
    prompts: Vec<String>,
    per_prompt: usize,
    max_new_tokens: usize,
    rng: &mut Rng,
) -> Result<Pool> {
    if per_prompt == 0 || prompts.is_empty() {
        return Err(Error::invalid(
            "pool",
            "needs at least one prompt and one sample per prompt",
        ));
    }
    let judges = Judges {
        task,
        labelers,
        proxy: rm,
    };
    let e = evaluate(base, &judges, &prompts, per_prompt, max_new_tokens, rng)?;
    let reward = select_on.rewards(&prompts, &e.prompt_tokens, &e.samples)?;
    let scored = e.scored;
    Ok(Pool {
        task: task.name().to_string(),
        split,
        prompts,
        per_prompt,
        scored,
        reward,
        reward_name: select_on.name().to_string(),
        labeler_names: labelers.iter().map(|l| l.name().to_string()).collect(),
        feature_names: task.feature_names().to_vec(),
        examples: 3,
    })
}

impl Pool {
    pub fn n_prompts(&self) -> usize {
        self.prompts.len()
    }

    /// The same samples selected on another reward (one value per sample).
    pub fn selecting_on(&self, name: &str, reward: Vec<f64>) -> Pool {
        Pool {
            task: self.task.clone(),
            split: self.split,
            prompts: self.prompts.clone(),
            per_prompt: self.per_prompt,
            scored: self.scored.clone(),
            reward,
            reward_name: name.to_string(),
            labeler_names: self.labeler_names.clone(),
            feature_names: self.feature_names.clone(),
            examples: self.examples,
        }
    }

    /// Per prompt, the probability that a draw from `weights` beats a draw from
    /// the base policy (the pool, uniformly) on gold, ties counting half.
    fn gold_win_rates(&self, weights: &[Vec<f64>]) -> Vec<f64> {
        weights
            .iter()
            .enumerate()
            .map(|(p, w)| {
                let group = &self.scored[p * self.per_prompt..(p + 1) * self.per_prompt];
                let golds: Vec<f64> = group.iter().map(|s| s.gold).collect();
                group
                    .iter()
                    .zip(w)
                    .map(|(s, wi)| wi * win_rate(s.gold, &golds))
                    .sum()
            })
            .collect()
    }

    /// Sample indices of prompt `p`, sorted by reward ascending (ties by sample order).
    pub fn ranked(&self, p: usize) -> Vec<usize> {
        let base = p * self.per_prompt;
        let mut idx: Vec<usize> = (base..base + self.per_prompt).collect();
        idx.sort_by(|&a, &b| self.reward[a].total_cmp(&self.reward[b]).then(a.cmp(&b)));
        idx
    }

    pub fn rewards_of(&self, p: usize) -> &[f64] {
        &self.reward[p * self.per_prompt..(p + 1) * self.per_prompt]
    }

    /// A curve point from per-prompt weights over each prompt's samples (in sample order).
    pub fn point(
        &self,
        strategy: &str,
        knob: &str,
        value: f64,
        weights: &[Vec<f64>],
        kl_per_prompt: Vec<f64>,
    ) -> CurvePoint {
        let mut point = CurvePoint::new(
            &self.task,
            strategy,
            self.split.name(),
            knob,
            value,
            kl_per_prompt,
        );
        let w = Weighted {
            scored: &self.scored,
            per_prompt: self.per_prompt,
        };
        w.summarise(
            weights,
            &self.feature_names,
            &self.labeler_names,
            (&self.prompts, self.examples),
            &mut point,
        );
        point.gold_win_rate = Some(crate::stats::Stat::of(&self.gold_win_rates(weights)));
        // H(q) = E_q[-log p_base] - KL(q || p_base) for a reweighting q of base samples.
        let (surprisal, length) = w.surprisal_and_length(weights);
        point.entropy = Some((surprisal - point.kl.mean).max(0.0) / length.max(1.0));
        point
    }
}

/// A pool with the given completions and rewards (gold and proxy) per prompt: no model needed.
#[cfg(test)]
pub(crate) fn synthetic(groups: Vec<Vec<(String, f64)>>) -> Pool {
    let per_prompt = groups[0].len();
    let mut scored = vec![];
    let mut reward = vec![];
    for (p, g) in groups.iter().enumerate() {
        for (text, r) in g {
            scored.push(crate::score::Scored {
                prompt_index: p,
                completion: text.clone(),
                gold: *r,
                labeler: vec![],
                features: vec![],
                difficulty: 1,
                spec: None,
                logprob: 0.0,
                proxy: Some(*r),
                truncated: false,
                stop: None,
                n_tokens: 1,
                flaw_found: None,
            });
            reward.push(*r);
        }
    }
    Pool {
        task: "synthetic".into(),
        split: crate::task::Split::Heldout,
        prompts: (0..groups.len()).map(|i| i.to_string()).collect(),
        per_prompt,
        scored,
        reward,
        reward_name: "proxy".into(),
        labeler_names: vec![],
        feature_names: vec![],
        examples: 0,
    }
}
