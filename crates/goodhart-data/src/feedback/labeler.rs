//! Simulated labelers: a quick judge who compares two completions of the same
//! prompt from what it can perceive of them.
//!
//! Its score of a completion is what it can check (on the gold scale), or a
//! prior when it cannot check, plus its systematic biases, each a weight on an
//! observable feature (length, confident tone, ...). It compares two completions
//! with Bradley-Terry noise, sometimes answers at random, calls near-equal
//! scores a tie, and answers "can't tell" when it could check neither. An
//! assisted labeler gets a critic's pointer to one step and checks that step.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::assistant::{AssistantConfig, Critic};
use super::debate::{Defender, Moves};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::task::{LabelerView, Task};

/// A labeler's verdict on "is A better than B?".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    A,
    B,
    Tie,
    CantTell,
}

/// How often each answer was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AnswerCountsRepr")]
pub struct AnswerCounts {
    pub a: usize,
    pub b: usize,
    pub tie: usize,
    pub cant_tell: usize,
}

impl AnswerCounts {
    pub fn add(&mut self, answer: Answer) {
        match answer {
            Answer::A => self.a += 1,
            Answer::B => self.b += 1,
            Answer::Tie => self.tie += 1,
            Answer::CantTell => self.cant_tell += 1,
        }
    }
}

/// Counts as written now, or as the `[a, b, tie, can't tell]` array of older runs.
#[derive(Deserialize)]
#[serde(untagged)]
enum AnswerCountsRepr {
    Named {
        a: usize,
        b: usize,
        tie: usize,
        cant_tell: usize,
    },
    Positional([usize; 4]),
}

impl From<AnswerCountsRepr> for AnswerCounts {
    fn from(r: AnswerCountsRepr) -> Self {
        match r {
            AnswerCountsRepr::Named {
                a,
                b,
                tie,
                cant_tell,
            } => Self {
                a,
                b,
                tie,
                cant_tell,
            },
            AnswerCountsRepr::Positional([a, b, tie, cant_tell]) => Self {
                a,
                b,
                tie,
                cant_tell,
            },
        }
    }
}

impl Answer {
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::A => "a",
            Answer::B => "b",
            Answer::Tie => "tie",
            Answer::CantTell => "cant_tell",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "a" => Answer::A,
            "b" => Answer::B,
            "tie" => Answer::Tie,
            "cant_tell" => Answer::CantTell,
            _ => return None,
        })
    }

    /// The same verdict with A and B swapped.
    pub fn swapped(self) -> Self {
        match self {
            Answer::A => Answer::B,
            Answer::B => Answer::A,
            other => other,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelerConfig {
    /// The labeler's name in the label store.
    pub name: String,
    /// Bradley-Terry temperature: P(A) = sigmoid((score A - score B) / temperature).
    pub temperature: f64,
    /// Probability of answering A or B at random, whatever the completions.
    pub p_random: f64,
    /// Scores closer than this are called a tie.
    pub tie_margin: f64,
    /// Probability of "can't tell" when the labeler could check neither completion.
    pub p_cant_tell: f64,
    /// Reach of the labeler's checking (answers: the largest difficulty whose final answer it checks).
    pub competence: f64,
    /// Weight of the checked value in the labeler's score.
    pub verified_weight: f64,
    /// Value the labeler assumes for a completion it cannot check (before biases).
    pub unverified_value: f64,
    /// Systematic biases: a weight per observable feature of the task (see `goodhart task show`).
    pub biases: BTreeMap<String, f64>,
    /// A critic pointing at one step for the labeler to check (absent: unassisted).
    pub assistant: Option<AssistantConfig>,
}

impl Default for LabelerConfig {
    fn default() -> Self {
        Self {
            name: "quick".into(),
            temperature: 0.3,
            p_random: 0.05,
            tie_margin: 0.0,
            p_cant_tell: 0.0,
            competence: 2.0,
            verified_weight: 1.0,
            unverified_value: 0.3,
            biases: BTreeMap::new(),
            assistant: None,
        }
    }
}

impl LabelerConfig {
    /// Check the settings, and the bias names against what the task lets a labeler see.
    pub fn validate(&self, task_name: &str, looks: &[&str], at: &str) -> Result<()> {
        let f = |k: &str| format!("{at}.{k}");
        if self.name.is_empty() || self.name.len() > 64 {
            return Err(Error::invalid(f("name"), "must be 1 to 64 characters"));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::invalid(
                f("temperature"),
                "must be a positive number",
            ));
        }
        for (k, p) in [
            ("p_random", self.p_random),
            ("p_cant_tell", self.p_cant_tell),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::invalid(f(k), "must be a probability in [0, 1]"));
            }
        }
        if self.tie_margin < 0.0 {
            return Err(Error::invalid(f("tie_margin"), "must be >= 0"));
        }
        for name in self.biases.keys() {
            if !looks.contains(&name.as_str()) {
                return Err(Error::invalid(
                    f(&format!("biases.{name}")),
                    format!(
                        "the {task_name} task has no observable feature {name:?} (it has: {})",
                        looks.join(", ")
                    ),
                ));
            }
        }
        if let Some(a) = &self.assistant {
            a.validate(&f("assistant"))?;
        }
        Ok(())
    }
}

/// A labeler bound to a task.
#[derive(Clone)]
pub struct Labeler<'t> {
    pub config: LabelerConfig,
    task: &'t dyn Task,
    /// Bias weight per entry of the task's looks.
    weights: Vec<f64>,
    /// The learned critic its assistant names, once attached ([`Labeler::with_critic`]).
    critic: Option<Arc<dyn Critic>>,
    /// An honest defender's learned critic, once attached ([`Labeler::with_defender`]).
    defender: Option<Arc<dyn Critic>>,
}

/// What a labeler made of one completion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    pub score: f64,
    pub checked: bool,
}

impl<'t> Labeler<'t> {
    pub fn new(config: LabelerConfig, task: &'t dyn Task) -> Result<Self> {
        config.validate(
            task.name(),
            task.look_names(),
            &format!("labeler {:?}", config.name),
        )?;
        let weights = task
            .look_names()
            .iter()
            .map(|n| config.biases.get(*n).copied().unwrap_or(0.0))
            .collect();
        Ok(Self {
            config,
            task,
            weights,
            critic: None,
            defender: None,
        })
    }

    /// The learned critic of the round its assistant names
    /// (`assistant.learned_round`), to point with.
    pub fn with_critic(mut self, critic: Arc<dyn Critic>) -> Self {
        self.critic = Some(critic);
        self
    }

    /// The learned critic whose beliefs an honest defender concedes by
    /// (`assistant.defender = "honest"`).
    pub fn with_defender(mut self, defender: Arc<dyn Critic>) -> Self {
        self.defender = Some(defender);
        self
    }

    /// The round of the learned critic this labeler needs, if it needs one.
    pub fn learned_round(&self) -> Option<usize> {
        self.config.assistant.as_ref().and_then(|a| a.learned_round)
    }

    /// The round of the learned critic this labeler needs and lacks.
    pub fn missing_critic(&self) -> Option<usize> {
        self.learned_round().filter(|_| self.critic.is_none())
    }

    /// The debate over a completion with the learned critic attacking (one
    /// pointer, or one per turn), or a clear error when a model it needs is
    /// not attached.
    pub fn moves(&self, prompt: &str, completion: &str) -> Result<Moves> {
        let a = self.config.assistant.unwrap_or_default();
        let at = || format!("labeler {:?}.assistant", self.config.name);
        let Some(critic) = &self.critic else {
            return Err(Error::invalid(
                at(),
                format!(
                    "needs the learned critic of round {}, which is trained by `goodhart run` (stage `critic`) and was not loaded here",
                    self.learned_round().unwrap_or(0)
                ),
            ));
        };
        let ends = self.task.step_ends(prompt, completion);
        let mut pointers = critic.rank(prompt, completion, &ends)?;
        pointers.truncate(a.turns.unwrap_or(1));
        let beliefs = match (a.defender, &self.defender) {
            (Some(Defender::Honest), Some(d)) => d.beliefs(prompt, completion, &ends)?,
            (Some(Defender::Honest), None) => {
                return Err(Error::invalid(
                    at(),
                    "an honest defender needs its own learned critic, which the `debate` stage trains ([task.debate]); it was not loaded here",
                ))
            }
            _ => vec![],
        };
        Ok(Moves::play(pointers, a.defender, &beliefs, a.checks))
    }

    /// What a learned critic's debate can end in: the judgement if the
    /// completion survives (the labeler's own: a check read right adds
    /// nothing), the judgement if it sinks, and the probability it sinks.
    fn outcomes(&self, prompt: &str, completion: &str) -> Result<(Judgement, Judgement, f64)> {
        let own = self.judge_with(prompt, completion, &[])?;
        if own.checked {
            return Ok((own, own, 0.0));
        }
        let moves = self.moves(prompt, completion)?;
        let wrong = |k| self.task.step_is_wrong(prompt, completion, k);
        let p_sinks = 1.0 - moves.p_survives(wrong, self.check_noise());
        let sunk = match moves.sinking_step(wrong) {
            Some(k) => self.judge_taken_wrong(prompt, completion, k)?,
            None => own,
        };
        Ok((own, sunk, p_sinks))
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The labeler's score of a completion, with the assistant's pointer (or
    /// a noisy debate's checks) drawn from `rng`.
    pub fn judge(&self, prompt: &str, completion: &str, rng: &mut Rng) -> Result<Judgement> {
        if self.learned_round().is_none() {
            let pointers = self.pointers(prompt, completion, rng)?;
            return self.judge_with(prompt, completion, &pointers);
        }
        let (survived, sunk, p_sinks) = self.outcomes(prompt, completion)?;
        // One draw whenever checks are noisy, whatever the completion; none when not.
        let u = if self.check_noise() > 0.0 {
            rng.random::<f64>()
        } else {
            0.5
        };
        Ok(if u < p_sinks { sunk } else { survived })
    }

    /// The probability that its debate's checks are misread (0 without noise).
    fn check_noise(&self) -> f64 {
        self.assistant().and_then(|a| a.check_noise).unwrap_or(0.0)
    }

    /// Whether it checks a completion on its own, with no assistant's help.
    pub fn checks_alone(&self, prompt: &str, completion: &str) -> Result<bool> {
        Ok(self.judge_with(prompt, completion, &[])?.checked)
    }

    /// Its assistant, if it has one.
    pub fn assistant(&self) -> Option<&AssistantConfig> {
        self.config.assistant.as_ref()
    }

    /// The steps of a completion its assistant points it at, in order: none
    /// without an assistant, the scripted critic's one (drawn from `rng`), the
    /// learned critic's one, or one per debate turn.
    pub fn pointers(&self, prompt: &str, completion: &str, rng: &mut Rng) -> Result<Vec<usize>> {
        if self.learned_round().is_some() {
            return Ok(self.moves(prompt, completion)?.pointers);
        }
        let pointer = self.config.assistant.as_ref().and_then(|a| {
            let n = self.task.n_steps(prompt, completion);
            if n == 0 {
                return None;
            }
            // Draw both numbers always, so the stream does not depend on the completion.
            let (u, random_step) = (rng.random::<f64>(), rng.random_range(0..n));
            match self.task.first_wrong_step(prompt, completion) {
                Some(w) if u < a.accuracy.unwrap_or(1.0) => Some(w),
                _ => Some(random_step),
            }
        });
        Ok(pointer.into_iter().collect())
    }

    /// The labeler's expected score of a completion: its reward, for measurement.
    /// With an assistant, the expectation over the same noisy pointer its labels
    /// were made with (the first wrong step with probability `accuracy`, else a
    /// step at random), so the measured labeler is the one that labelled.
    pub fn score(&self, prompt: &str, completion: &str) -> Result<f64> {
        self.expected(prompt, completion, |j| j.score)
    }

    /// The probability that one judgement of a completion accepts it (scores it above 0).
    pub fn p_accepts(&self, prompt: &str, completion: &str) -> Result<f64> {
        self.expected(prompt, completion, |j| f64::from(u8::from(j.score > 0.0)))
    }

    /// The expectation of `f` of the labeler's judgement of a completion, over
    /// its assistant's pointers and checks.
    fn expected(
        &self,
        prompt: &str,
        completion: &str,
        f: impl Fn(Judgement) -> f64,
    ) -> Result<f64> {
        if self.learned_round().is_some() {
            let (survived, sunk, p_sinks) = self.outcomes(prompt, completion)?;
            return Ok((1.0 - p_sinks) * f(survived) + p_sinks * f(sunk));
        }
        let Some(a) = &self.config.assistant else {
            return Ok(f(self.judge_with(prompt, completion, &[])?));
        };
        let accuracy = a.accuracy.unwrap_or(1.0);
        let n = self.task.n_steps(prompt, completion);
        if n == 0 {
            return Ok(f(self.judge_with(prompt, completion, &[])?));
        }
        let mut at_random = 0.0;
        for k in 0..n {
            at_random += f(self.judge_with(prompt, completion, &[k])?) / n as f64;
        }
        Ok(match self.task.first_wrong_step(prompt, completion) {
            Some(w) => {
                let pointed = f(self.judge_with(prompt, completion, &[w])?);
                accuracy * pointed + (1.0 - accuracy) * at_random
            }
            None => at_random,
        })
    }

    /// How likely this labeler's assistant is to show it a flaw of a wrong
    /// answer it could not check on its own: `None` without an assistant,
    /// when no step is wrong, or when the labeler checks the answer anyway.
    /// A learned critic (or debate) finds it as likely as its debate sinks
    /// the answer; a scripted one with its accuracy, else by a lucky random pointer.
    pub fn finds_flaw(&self, prompt: &str, completion: &str) -> Result<Option<f64>> {
        let Some(a) = &self.config.assistant else {
            return Ok(None);
        };
        let n = self.task.n_steps(prompt, completion);
        let wrong = (0..n)
            .filter(|&k| self.task.step_is_wrong(prompt, completion, k))
            .count();
        if wrong == 0 || self.checks_alone(prompt, completion)? {
            return Ok(None);
        }
        if self.learned_round().is_some() {
            return Ok(Some(self.outcomes(prompt, completion)?.2));
        }
        let accuracy = a.accuracy.unwrap_or(1.0);
        Ok(Some(accuracy + (1.0 - accuracy) * wrong as f64 / n as f64))
    }

    /// The judgement with the steps `pointers` shown: checked one by one
    /// until one establishes the value (a wrong step sinks the answer).
    fn judge_with(&self, prompt: &str, completion: &str, pointers: &[usize]) -> Result<Judgement> {
        let view = |pointer| LabelerView {
            competence: self.config.competence,
            pointer,
            taken_wrong: None,
        };
        let mut p = self.task.perceive(prompt, completion, &view(None))?;
        for &k in pointers {
            if p.verified.is_some() {
                break;
            }
            p.verified = self
                .task
                .perceive(prompt, completion, &view(Some(k)))?
                .verified;
        }
        Ok(self.judgement(p))
    }

    /// The judgement with step `k` taken for wrong whatever it is: a
    /// defender's concession, or a check misread.
    fn judge_taken_wrong(&self, prompt: &str, completion: &str, k: usize) -> Result<Judgement> {
        let view = LabelerView {
            competence: self.config.competence,
            pointer: Some(k),
            taken_wrong: Some(true),
        };
        Ok(self.judgement(self.task.perceive(prompt, completion, &view)?))
    }

    /// The labeler's score of what it perceived: the verified value (else its
    /// assumption) weighted, plus its biases.
    fn judgement(&self, p: crate::task::Perception) -> Judgement {
        let bias: f64 = p.looks.iter().zip(&self.weights).map(|(x, w)| x * w).sum();
        let base = p.verified.unwrap_or(self.config.unverified_value);
        Judgement {
            score: self.config.verified_weight * base + bias,
            checked: p.verified.is_some(),
        }
    }

    /// The probability that this labeler's answer is A, given that it answers
    /// A or B (not a tie, not "can't tell"), from its expected scores: the
    /// best any reward model can do against its labels is to pick the likelier
    /// side, so the mean of `max(p, 1 - p)` over pairs is their noise ceiling.
    pub fn p_answers_a(&self, prompt: &str, a: &str, b: &str) -> Result<f64> {
        let c = &self.config;
        let (sa, sb) = (self.score(prompt, a)?, self.score(prompt, b)?);
        let d = sa - sb;
        if d.abs() < c.tie_margin {
            return Ok(0.5); // only random answers are decisive
        }
        let p_a = 1.0 / (1.0 + (-d / c.temperature).exp());
        let cant = if !self.checks_alone(prompt, a)? && !self.checks_alone(prompt, b)? {
            c.p_cant_tell
        } else {
            0.0
        };
        let judged = (1.0 - c.p_random) * (1.0 - cant);
        Ok((c.p_random / 2.0 + judged * p_a) / (c.p_random + judged).max(f64::MIN_POSITIVE))
    }

    /// Compare completions `a` and `b` of `prompt`.
    pub fn compare(&self, prompt: &str, a: &str, b: &str, rng: &mut Rng) -> Result<Answer> {
        let (ja, jb) = (self.judge(prompt, a, rng)?, self.judge(prompt, b, rng)?);
        // Fixed number of draws per comparison keeps streams aligned across labelers and runs.
        let (lapse, lapse_side, cant, bt) = (
            rng.random::<f64>(),
            rng.random_bool(0.5),
            rng.random::<f64>(),
            rng.random::<f64>(),
        );
        let c = &self.config;
        if lapse < c.p_random {
            return Ok(if lapse_side { Answer::A } else { Answer::B });
        }
        if !ja.checked && !jb.checked && cant < c.p_cant_tell {
            return Ok(Answer::CantTell);
        }
        let d = ja.score - jb.score;
        if d.abs() < c.tie_margin {
            return Ok(Answer::Tie);
        }
        let p_a = 1.0 / (1.0 + (-d / c.temperature).exp());
        Ok(if bt < p_a { Answer::A } else { Answer::B })
    }
}

#[cfg(test)]
mod tests;
