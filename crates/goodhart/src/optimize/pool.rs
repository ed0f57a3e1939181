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
    /// The labelled range (`labels.max_chars`): each point then records the share beyond it.
    pub labelled_chars: Option<usize>,
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
        labelled_chars: None,
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
            labelled_chars: self.labelled_chars,
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
        if let Some(max) = self.labelled_chars {
            w.mark_labelled_range(weights, max, &mut point);
        }
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
        labelled_chars: None,
    }
}

/// Whether the proxy orders completions as gold does where the labels were and
/// past them: the construction check of extremal Goodhart (high inside the
/// labelled range, low beyond it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RangeCheck {
    pub split: String,
    /// The labelled range: completions of at most this many characters.
    pub max_chars: usize,
    /// Pairs of one prompt's completions, both inside the range.
    pub inside: Option<Agreement>,
    /// Pairs with at least one completion past the range.
    pub beyond: Option<Agreement>,
}

/// The share of pairs (of one prompt's completions, gold differing) that the
/// proxy orders as gold does, ties in the proxy counting half: a mean over
/// prompts, with its standard error across them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    pub accuracy: crate::stats::Stat,
    pub pairs: usize,
}

impl Pool {
    /// The [`RangeCheck`] of this pool's proxy against the range `max_chars`
    /// (None without a proxy).
    pub fn range_check(&self, max_chars: usize) -> Option<RangeCheck> {
        let long = |s: &Scored| s.completion.chars().count() > max_chars;
        let [inside, beyond] = self.agreements(|a, b| usize::from(long(a) || long(b)))?;
        Some(RangeCheck {
            split: self.split.name().to_string(),
            max_chars,
            inside,
            beyond,
        })
    }

    /// The proxy's [`Agreement`] with gold over every pair of a prompt's completions (None without a proxy).
    pub fn agreement(&self) -> Option<Agreement> {
        self.agreements(|_, _| 0)?[0].take()
    }

    /// [`Agreement`] on the pairs `side` puts on side 0 and on side 1.
    fn agreements(
        &self,
        side: impl Fn(&Scored, &Scored) -> usize,
    ) -> Option<[Option<Agreement>; 2]> {
        let mut per_prompt: [Vec<f64>; 2] = [vec![], vec![]];
        let mut pairs = [0, 0];
        for group in self.scored.chunks(self.per_prompt) {
            let mut agree = [(0.0, 0usize); 2];
            for (i, a) in group.iter().enumerate() {
                for b in &group[i + 1..] {
                    if a.gold == b.gold || a.completion == b.completion {
                        continue;
                    }
                    let side = side(a, b);
                    let (pa, pb) = (a.proxy?, b.proxy?);
                    let right = if pa == pb {
                        0.5
                    } else {
                        f64::from((pa > pb) == (a.gold > b.gold))
                    };
                    agree[side].0 += right;
                    agree[side].1 += 1;
                }
            }
            for side in 0..2 {
                let (right, n) = agree[side];
                if n > 0 {
                    per_prompt[side].push(right / n as f64);
                    pairs[side] += n;
                }
            }
        }
        Some([0, 1].map(|side| {
            (!per_prompt[side].is_empty()).then(|| Agreement {
                accuracy: crate::stats::Stat::of(&per_prompt[side]),
                pairs: pairs[side],
            })
        }))
    }
}

#[cfg(test)]
mod range_tests {
    use super::synthetic;

    #[test]
    fn the_range_check_scores_inside_and_beyond_pairs_apart() {
        // Proxy: longer is better. Gold agrees up to 4 characters and turns past them.
        let texts = ["a", "aa", "aaaa", "aaaaaa", "aaaaaaaa"];
        let mut pool = synthetic(vec![texts
            .iter()
            .map(|t| (t.to_string(), t.len() as f64))
            .collect()]);
        for s in &mut pool.scored {
            let n = s.completion.len() as f64;
            s.gold = if n <= 4.0 { n } else { 8.0 - n };
        }
        let check = pool.range_check(4).unwrap();
        let (inside, beyond) = (check.inside.unwrap(), check.beyond.unwrap());
        // Inside: the 3 pairs of 1, 2 and 4 characters, all ordered as gold orders them.
        assert_eq!((inside.pairs, inside.accuracy.mean), (3, 1.0));
        // Beyond: 7 pairs less a tie in gold (6 characters against 2), all ordered
        // wrong but 6 against 1 (gold 2 against 1).
        assert_eq!(beyond.pairs, 6);
        assert!(
            (beyond.accuracy.mean - 1.0 / 6.0).abs() < 1e-12,
            "{beyond:?}"
        );
    }
}
