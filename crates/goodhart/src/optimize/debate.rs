//! Debate with a defender, measured against gold: one judge (the task's
//! first labeler) decides whether each of a set of base-policy answers is
//! right, alone, helped by one critic's pointer, or in a debate of `T`
//! pointers with a check budget and noisy checks, with and without an
//! honest defender (see [`crate::feedback::debate`]). Every arm judges the
//! same answers, so arms are compared paired over answers.
//!
//! The attacker is the task's learned critic (trained by the critic stage
//! from the judge's checks, never from gold). The honest defender is the
//! critic's trunk with its own head, trained against that fixed attacker:
//! the judge checks the steps the attacker points at (with the same noise),
//! and it learns which pointed steps are wrong. The dishonest defender,
//! trained to win rather than to be right, contests every pointer, and its
//! debate is judged as one without a defender: so each "no defender" arm is
//! also the debate between an honest and a dishonest debater (the attacker
//! is the honest side on a wrong answer, the defender on a right one), and
//! the judge's accuracy there is how often honesty wins.

use serde::{Deserialize, Serialize};

use crate::critic::CriticRound;
use crate::error::{Error, Result};
use crate::feedback::{AssistantConfig, Defender};
use crate::stats::Stat;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DebateConfig {
    /// Pointers per debate, one debate per entry (empty: no debate stage).
    pub turns: Vec<usize>,
    /// The judge's check budgets: the most pointed steps it verifies per answer.
    pub budgets: Vec<usize>,
    /// The probability that a verified step is misread.
    pub check_noise: f64,
    /// Held-out prompts (the split's first), one base answer each, judged by every arm.
    pub prompts: usize,
    /// Shifted prompts (harder: the split's first), one base answer each, judged too.
    pub shift_prompts: usize,
    /// The round of the task's learned critic that attacks (0: the last).
    pub round: usize,
}

impl Default for DebateConfig {
    fn default() -> Self {
        Self {
            turns: vec![],
            budgets: vec![1, 2],
            check_noise: 0.1,
            prompts: 256,
            shift_prompts: 0,
            round: 0,
        }
    }
}

impl DebateConfig {
    pub fn validate(&self, critic_rounds: usize) -> Result<()> {
        if self.turns.is_empty() {
            return Ok(());
        }
        if self.turns.contains(&0) || self.turns.iter().any(|&t| t > 16) {
            return Err(Error::invalid(
                "debate.turns",
                "each must be 1 to 16 pointers",
            ));
        }
        if self.budgets.is_empty() || self.budgets.contains(&0) {
            return Err(Error::invalid(
                "debate.budgets",
                "give at least one budget, each at least 1 check",
            ));
        }
        if !(0.0..=0.5).contains(&self.check_noise) {
            return Err(Error::invalid(
                "debate.check_noise",
                "must be a probability in [0, 0.5]",
            ));
        }
        if self.prompts == 0 {
            return Err(Error::invalid("debate.prompts", "must be at least 1"));
        }
        if critic_rounds == 0 {
            return Err(Error::invalid(
                "debate.turns",
                "the attacker is the task's learned critic: set critic.rounds",
            ));
        }
        if self.round > critic_rounds {
            return Err(Error::invalid(
                "debate.round",
                format!("the task trains {critic_rounds} critic rounds"),
            ));
        }
        Ok(())
    }

    /// Every arm, in report order: the judge alone, then per number of
    /// pointers and budget (a budget at least the pointers checks them all,
    /// and is listed once), without and with an honest defender. One pointer
    /// without a defender is one critic.
    pub fn arms(&self) -> Vec<ArmSpec> {
        let mut out = vec![ArmSpec {
            name: "alone".into(),
            turns: 0,
            checks: 0,
            defender: None,
        }];
        let mut turns = self.turns.clone();
        turns.sort_unstable();
        turns.dedup();
        for t in turns {
            let mut budgets: Vec<usize> = self.budgets.iter().map(|&c| c.min(t)).collect();
            budgets.sort_unstable();
            budgets.dedup();
            for c in budgets {
                for defender in [None, Some(Defender::Honest)] {
                    let name = match (t, defender) {
                        (1, None) => "critic".to_string(),
                        _ => format!(
                            "debate-{t} c{c}{}",
                            if defender.is_some() { " +defender" } else { "" }
                        ),
                    };
                    out.push(ArmSpec {
                        name,
                        turns: t,
                        checks: c,
                        defender,
                    });
                }
            }
        }
        out
    }

    /// The most pointers any arm's attacker makes (what the defender is trained against).
    pub fn max_turns(&self) -> usize {
        self.turns.iter().copied().max().unwrap_or(1)
    }
}

/// One way of judging: the judge alone (`turns` 0) or a debate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmSpec {
    pub name: String,
    /// The attacker's pointers (0: no assistant).
    pub turns: usize,
    /// The judge's budget of checks.
    pub checks: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defender: Option<Defender>,
}

impl ArmSpec {
    /// The judge's assistant for this arm (none alone), attacking with the critic of `round`.
    pub fn assistant(&self, round: usize, noise: f64) -> Option<AssistantConfig> {
        (self.turns > 0).then(|| AssistantConfig {
            turns: Some(self.turns),
            checks: Some(self.checks),
            check_noise: Some(noise),
            defender: self.defender,
            ..AssistantConfig::learned(round)
        })
    }
}

/// One judged answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judged {
    pub difficulty: u32,
    /// Its final answer is right (the task's `correct` feature; else gold above 0).
    pub right: bool,
    /// Steps the attacker can point at.
    pub steps: usize,
    /// A step is wrong (a right answer can have one: gold grades the final
    /// answer, a check the step).
    #[serde(default)]
    pub flawed: bool,
    /// The judge checks it alone (within its competence): no debate changes its verdict.
    pub checked_alone: bool,
}

/// How one arm judged every answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmResult {
    pub arm: ArmSpec,
    /// Per answer (in order), the probability that the judge's verdict
    /// (accept: its score above 0) agrees with gold.
    pub p_correct: Vec<f64>,
    /// With a defender: of the steps pointed at, the share of wrong ones it
    /// conceded and of right ones it conceded (on answers the judge cannot check alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conceded_wrong: Option<Stat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conceded_right: Option<Stat>,
}

/// The record of the debate stage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DebateRecord {
    /// The attacking critic's round, and the checks' noise.
    pub attacker_round: usize,
    pub check_noise: f64,
    pub answers: Vec<Judged>,
    pub arms: Vec<ArmResult>,
    /// The honest defender's training and its own pointers against gold.
    pub defender: CriticRound,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_cover_every_turn_and_budget_once_with_and_without_a_defender() {
        let cfg = DebateConfig {
            turns: vec![4, 1, 2],
            budgets: vec![1, 2],
            ..DebateConfig::default()
        };
        let names: Vec<String> = cfg.arms().into_iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            [
                "alone",
                "critic",
                "debate-1 c1 +defender",
                "debate-2 c1",
                "debate-2 c1 +defender",
                "debate-2 c2",
                "debate-2 c2 +defender",
                "debate-4 c1",
                "debate-4 c1 +defender",
                "debate-4 c2",
                "debate-4 c2 +defender",
            ]
        );
        assert_eq!(cfg.max_turns(), 4);
        let a = &cfg.arms()[8];
        let assistant = a.assistant(2, 0.1).unwrap();
        assert_eq!(
            (assistant.learned_round, assistant.turns, assistant.checks),
            (Some(2), Some(4), Some(1))
        );
        assert_eq!(assistant.defender, Some(Defender::Honest));
        assert!(cfg.arms()[0].assistant(2, 0.1).is_none());
    }

    #[test]
    fn a_debate_needs_a_critic_to_attack_and_sane_budgets() {
        let ok = DebateConfig {
            turns: vec![1, 2],
            ..DebateConfig::default()
        };
        assert!(ok.validate(2).is_ok());
        let err = ok.validate(0).unwrap_err().to_string();
        assert!(err.contains("critic.rounds"), "{err}");
        let err = DebateConfig {
            budgets: vec![0],
            ..ok.clone()
        }
        .validate(2)
        .unwrap_err()
        .to_string();
        assert!(err.contains("debate.budgets"), "{err}");
        let err = DebateConfig { round: 3, ..ok }
            .validate(2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("debate.round"), "{err}");
    }
}
