//! Recursive reward modelling as proposed: round k optimises a policy
//! against the reward model learnt from round k-1's judge, trains round k's
//! critic on that policy's answers (from the judge's verdicts on the steps it
//! points at, never from gold), and round k's judge (the labeler assisted by
//! that critic) labels the policy's answers for round k's reward model. The
//! recursion meets a stronger policy every round.

use serde::{Deserialize, Serialize};

use crate::critic::CriticRound;
use crate::error::{Error, Result};
use crate::stats::Stat;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RrmConfig {
    /// Rounds (0: none).
    pub rounds: usize,
    /// Each round's policy: best-of-n of base answers under the round before's reward model.
    pub n: usize,
    /// Training prompts the policy answers: its critic's checks and its judge's labels are on them.
    pub prompts: usize,
    /// Pairs of the policy's answers (each against another base answer to its prompt) the round's judge labels.
    pub pairs: usize,
}

impl Default for RrmConfig {
    fn default() -> Self {
        Self {
            rounds: 0,
            n: 16,
            prompts: 1024,
            pairs: 300,
        }
    }
}

impl RrmConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rounds == 0 {
            return Ok(());
        }
        if self.rounds > 10 {
            return Err(Error::invalid("rrm.rounds", "must be at most 10"));
        }
        if self.n < 2 {
            return Err(Error::invalid(
                "rrm.n",
                "must be at least 2: a policy that selects nothing is the base policy",
            ));
        }
        if self.pairs == 0 || self.pairs > self.prompts {
            return Err(Error::invalid(
                "rrm.pairs",
                format!(
                    "must be between 1 and the prompts answered ({})",
                    self.prompts
                ),
            ));
        }
        Ok(())
    }
}

/// Per prompt (`n` consecutive samples each), the index of the sample `rewards` ranks first (ties: the earlier).
pub fn best_of(rewards: &[f64], n: usize) -> Vec<usize> {
    rewards
        .chunks(n)
        .enumerate()
        .map(|(p, r)| {
            let best = (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
            p * n + best
        })
        .collect()
}

/// A digest of a list of (prompt, completion) pairs: what a round's critic
/// was trained on, compared with what its policy answered.
pub fn digest(answers: &[(String, String)]) -> String {
    // FNV-1a over the text: stable across runs and platforms.
    let mut h: u64 = 0xcbf29ce484222325;
    for (p, c) in answers {
        for b in p.bytes().chain([0]).chain(c.bytes()).chain([1]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    format!("{h:016x}")
}

/// One round, as measured on the round's policy's held-out answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RrmRound {
    pub round: usize,
    /// How the round's policy was made.
    pub policy: String,
    /// Digests of the policy's training answers and of what its critic was trained on.
    pub policy_answers: String,
    pub critic_trained_on: String,
    /// Gold of the policy's held-out answers (per prompt).
    pub gold: Stat,
    /// Share of the policy's held-out answers that are right (gold > 0).
    pub right: f64,
    /// Share the round's judge accepts (its score above 0), and the unassisted labeler.
    pub judge_accepts: f64,
    pub unassisted_accepts: f64,
    /// Share where the judge's acceptance agrees with gold (accepted iff right).
    pub agreement: f64,
    /// Of the wrong answers the judge accepts, the share with no step its critic could point at.
    #[serde(default)]
    pub accepted_wrong_without_steps: Option<f64>,
    /// Per held-out prompt (in order): accepted minus right, for paired contrasts between rounds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gap_per_prompt: Vec<f64>,
    /// The round's critic on the policy's held-out answers: hit rate on flawed ones, precision, recall.
    pub critic: CriticRound,
    /// Pairs the round's judge labelled.
    pub labels: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_of_picks_each_prompts_highest_reward_and_the_earlier_of_a_tie() {
        let rewards = [0.1, 0.9, 0.3, /* */ 0.5, 0.5, 0.2];
        assert_eq!(best_of(&rewards, 3), vec![1, 3]);
    }

    #[test]
    fn the_digest_tells_answer_lists_apart_and_is_stable() {
        let a = vec![("p".to_string(), "1.".to_string())];
        let b = vec![("p".to_string(), "2.".to_string())];
        let joined = vec![("p1".to_string(), ".".to_string())];
        let split = vec![("p".to_string(), "1.".to_string())];
        assert_eq!(digest(&a), digest(&a.clone()));
        assert_ne!(digest(&a), digest(&b));
        // The boundary between prompt and completion counts.
        assert_ne!(digest(&joined), digest(&split));
        assert_eq!(digest(&[]), "cbf29ce484222325");
    }

    #[test]
    fn a_round_needs_a_policy_that_selects_and_pairs_within_its_prompts() {
        let ok = RrmConfig {
            rounds: 3,
            ..RrmConfig::default()
        };
        assert!(ok.validate().is_ok());
        let err = RrmConfig { n: 1, ..ok.clone() }.validate().unwrap_err();
        assert!(err.to_string().contains("rrm.n"), "{err}");
        let err = RrmConfig { pairs: 2000, ..ok }.validate().unwrap_err();
        assert!(err.to_string().contains("rrm.pairs"), "{err}");
    }
}
