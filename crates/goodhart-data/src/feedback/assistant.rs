//! What assists a labeler: a critic that points it at steps to check,
//! scripted or learned, and (with a learned one) a debate's settings.

use serde::{Deserialize, Serialize};

use super::debate::Defender;
use crate::error::{Error, Result};

/// A critic that points the labeler at one step of each completion to check:
/// scripted (`accuracy`) or the task's learned critic of a round (`learned_round`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssistantConfig {
    /// Scripted: the probability that it points at the first wrong step when
    /// there is one (else at a step drawn at random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Learned: the task's critic of this round (`[task.critic]`, 1-based),
    /// which points at the step it believes most likely wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learned_round: Option<usize>,
    /// Learned only: debate of this many turns. Each side's debater (the
    /// learned critic) points at one more step of the other side's answer per
    /// turn, most suspicious first, and the judge checks the steps pointed
    /// at (see `checks` and `defender`). Absent: one pointer, as a critic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turns: Option<usize>,
    /// Learned only: the judge's check budget, the most pointed steps it
    /// verifies per completion, contested ones in the attacker's order
    /// (absent: every one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<usize>,
    /// Learned only: the probability that a verified step is misread (a right
    /// step taken for wrong, a wrong one for right). Absent: 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_noise: Option<f64>,
    /// Learned only: who answers each pointer (see [`Defender`]); absent: nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defender: Option<Defender>,
}

impl AssistantConfig {
    /// A scripted critic of this accuracy.
    pub fn scripted(accuracy: f64) -> Self {
        Self {
            accuracy: Some(accuracy),
            ..Self::default()
        }
    }

    /// The learned critic of `round`.
    pub fn learned(round: usize) -> Self {
        Self {
            learned_round: Some(round),
            ..Self::default()
        }
    }

    /// Check the settings; `at` names the table in errors.
    pub fn validate(&self, at: &str) -> Result<()> {
        let f = |k: &str| format!("{at}.{k}");
        match (self.accuracy, self.learned_round) {
            (Some(p), None) if !(0.0..=1.0).contains(&p) => {
                return Err(Error::invalid(
                    f("accuracy"),
                    "must be a probability in [0, 1]",
                ));
            }
            (None, Some(0)) => {
                return Err(Error::invalid(f("learned_round"), "rounds count from 1"));
            }
            (Some(_), None) if self.turns.is_some() => {
                return Err(Error::invalid(
                    f("turns"),
                    "debate needs a learned critic to argue (learned_round)",
                ));
            }
            (None, Some(_)) if self.turns == Some(0) => {
                return Err(Error::invalid(f("turns"), "a debate has at least 1 turn"));
            }
            (Some(_), None)
                if self.checks.is_some()
                    || self.check_noise.is_some()
                    || self.defender.is_some() =>
            {
                return Err(Error::invalid(
                    at.to_string(),
                    "`checks`, `check_noise` and `defender` shape a debate: they need a learned critic (learned_round)",
                ));
            }
            (None, Some(_)) if self.checks == Some(0) => {
                return Err(Error::invalid(
                    f("checks"),
                    "a judge with a budget checks at least 1 step (leave it out to check every one)",
                ));
            }
            (None, Some(_)) if self.check_noise.is_some_and(|e| !(0.0..=0.5).contains(&e)) => {
                return Err(Error::invalid(
                    f("check_noise"),
                    "must be a probability in [0, 0.5] (a check misread more often than not is no check)",
                ));
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(Error::invalid(
                    at.to_string(),
                    "set one of `accuracy` (a scripted critic) or `learned_round` (the task's learned critic of that round)",
                ));
            }
        }
        Ok(())
    }
}

/// A learned critic, as a labeler uses it (as a debate's attacker, or as an
/// honest defender's beliefs), given where the task says each step ends.
pub trait Critic: Send + Sync {
    /// Its P(wrong) of each step (empty when the completion has no steps).
    fn beliefs(&self, prompt: &str, completion: &str, step_ends: &[usize]) -> Result<Vec<f64>>;

    /// The steps in the order it would point at them, most suspicious first
    /// (ties: the earlier step first).
    fn rank(&self, prompt: &str, completion: &str, step_ends: &[usize]) -> Result<Vec<usize>> {
        Ok(most_suspicious_first(
            &self.beliefs(prompt, completion, step_ends)?,
        ))
    }
}

/// Steps by P(wrong), highest first (ties: the earlier step first).
pub fn most_suspicious_first(ps: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..ps.len()).collect();
    order.sort_by(|&a, &b| ps[b].total_cmp(&ps[a]).then(a.cmp(&b)));
    order
}
