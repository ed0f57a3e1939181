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

use rand::Rng as _;
use serde::{Deserialize, Serialize};

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

/// A critic that points the labeler at one step of a completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssistantConfig {
    /// Probability that it points at the first wrong step when there is one (else a random step).
    pub accuracy: f64,
}

impl Default for AssistantConfig {
    fn default() -> Self {
        Self { accuracy: 0.9 }
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
            if !(0.0..=1.0).contains(&a.accuracy) {
                return Err(Error::invalid(
                    f("assistant.accuracy"),
                    "must be a probability in [0, 1]",
                ));
            }
        }
        Ok(())
    }
}

/// A labeler bound to a task.
pub struct Labeler<'t> {
    pub config: LabelerConfig,
    task: &'t dyn Task,
    /// Bias weight per entry of the task's looks.
    weights: Vec<f64>,
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
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The labeler's score of a completion, with the assistant's pointer drawn from `rng`.
    pub fn judge(&self, prompt: &str, completion: &str, rng: &mut Rng) -> Result<Judgement> {
        let pointer = self.config.assistant.as_ref().and_then(|a| {
            let n = self.task.n_steps(prompt, completion);
            if n == 0 {
                return None;
            }
            // Draw both numbers always, so the stream does not depend on the completion.
            let (u, random_step) = (rng.random::<f64>(), rng.random_range(0..n));
            match self.task.first_wrong_step(prompt, completion) {
                Some(w) if u < a.accuracy => Some(w),
                _ => Some(random_step),
            }
        });
        self.judge_with(prompt, completion, pointer)
    }

    /// The labeler's expected score of a completion: its reward, for measurement.
    /// With an assistant, the expectation over the same noisy pointer its labels
    /// were made with (the first wrong step with probability `accuracy`, else a
    /// step at random), so the measured labeler is the one that labelled.
    pub fn score(&self, prompt: &str, completion: &str) -> Result<f64> {
        let Some(a) = &self.config.assistant else {
            return Ok(self.judge_with(prompt, completion, None)?.score);
        };
        let n = self.task.n_steps(prompt, completion);
        if n == 0 {
            return Ok(self.judge_with(prompt, completion, None)?.score);
        }
        let mut at_random = 0.0;
        for k in 0..n {
            at_random += self.judge_with(prompt, completion, Some(k))?.score / n as f64;
        }
        Ok(match self.task.first_wrong_step(prompt, completion) {
            Some(w) => {
                let pointed = self.judge_with(prompt, completion, Some(w))?.score;
                a.accuracy * pointed + (1.0 - a.accuracy) * at_random
            }
            None => at_random,
        })
    }

    fn judge_with(
        &self,
        prompt: &str,
        completion: &str,
        pointer: Option<usize>,
    ) -> Result<Judgement> {
        let view = LabelerView {
            competence: self.config.competence,
            pointer,
        };
        let p = self.task.perceive(prompt, completion, &view)?;
        let bias: f64 = p.looks.iter().zip(&self.weights).map(|(x, w)| x * w).sum();
        let base = p.verified.unwrap_or(self.config.unverified_value);
        Ok(Judgement {
            score: self.config.verified_weight * base + bias,
            checked: p.verified.is_some(),
        })
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
        let checked = |x: &str| -> Result<bool> { Ok(self.judge_with(prompt, x, None)?.checked) };
        let cant = if !checked(a)? && !checked(b)? {
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
mod tests {
    use super::*;
    use crate::rng;
    use crate::task::answers::Question;
    use crate::task::{Answers, AnswersConfig};

    fn task() -> Answers {
        Answers::new(
            AnswersConfig {
                n_train: 10,
                ..Default::default()
            },
            0,
        )
        .unwrap()
    }

    fn share_a(l: &Labeler, p: &str, a: &str, b: &str) -> f64 {
        let mut rng = rng::stream(1, "t");
        let n = 4000;
        let wins = (0..n)
            .filter(|_| l.compare(p, a, b, &mut rng).unwrap() == Answer::A)
            .count();
        wins as f64 / n as f64
    }

    #[test]
    fn checks_easy_answers_and_judges_hard_ones_by_their_look() {
        let t = task();
        let cfg = LabelerConfig {
            biases: [("confident".to_string(), 0.5)].into_iter().collect(),
            p_random: 0.0,
            ..Default::default()
        };
        let l = Labeler::new(cfg, &t).unwrap();
        let easy = Question { a: 12, b: 30 }.prompt();
        assert!(
            share_a(&l, &easy, "42.", "maybe 43.") > 0.95,
            "easy: checks correctness"
        );
        assert!(
            share_a(&l, &easy, "maybe 42.", "43.") > 0.95,
            "easy: correct beats confident"
        );
        let hard = Question { a: 1234, b: 4321 }.prompt();
        // Cannot check 4-digit sums: the confident wrong answer wins.
        assert!(share_a(&l, &hard, "5556.", "maybe 5555.") > 0.8);
        // The labeler's own score says the same.
        assert!(l.score(&hard, "5556.").unwrap() > l.score(&hard, "maybe 5555.").unwrap());
    }

    #[test]
    fn noise_ties_and_cant_tell_follow_their_settings() {
        let t = task();
        let hard = Question { a: 1234, b: 4321 }.prompt();
        let random = Labeler::new(
            LabelerConfig {
                p_random: 1.0,
                ..Default::default()
            },
            &t,
        )
        .unwrap();
        let s = share_a(&random, &hard, "5555.", "5556.");
        assert!((s - 0.5).abs() < 0.05, "{s}");
        let unsure = Labeler::new(
            LabelerConfig {
                p_random: 0.0,
                p_cant_tell: 1.0,
                ..Default::default()
            },
            &t,
        )
        .unwrap();
        let mut rng = rng::stream(2, "t");
        assert_eq!(
            unsure.compare(&hard, "5555.", "5556.", &mut rng).unwrap(),
            Answer::CantTell
        );
        let tied = Labeler::new(
            LabelerConfig {
                p_random: 0.0,
                tie_margin: 0.1,
                ..Default::default()
            },
            &t,
        )
        .unwrap();
        assert_eq!(
            tied.compare(&hard, "5555.", "5556.", &mut rng).unwrap(),
            Answer::Tie
        );
    }

    #[test]
    fn the_probability_of_answering_a_matches_the_answers_it_gives() {
        let t = task();
        let hard = Question { a: 1234, b: 4321 }.prompt();
        let easy = Question { a: 12, b: 30 }.prompt();
        let cfg = LabelerConfig {
            biases: [("confident".to_string(), 0.2)].into_iter().collect(),
            p_random: 0.1,
            p_cant_tell: 0.5,
            ..Default::default()
        };
        let l = Labeler::new(cfg, &t).unwrap();
        for (p, a, b) in [
            (&hard, "5556.", "maybe 5555."),
            (&easy, "42.", "maybe 43."),
            (&easy, "maybe 42.", "42."),
        ] {
            let mut rng = rng::stream(3, "t");
            let answers: Vec<Answer> = (0..6000)
                .map(|_| l.compare(p, a, b, &mut rng).unwrap())
                .collect();
            let count = |x: Answer| answers.iter().filter(|&&y| y == x).count() as f64;
            let empirical = count(Answer::A) / (count(Answer::A) + count(Answer::B));
            let predicted = l.p_answers_a(p, a, b).unwrap();
            assert!(
                (empirical - predicted).abs() < 0.025,
                "{a} vs {b}: {empirical} answered A, {predicted} predicted"
            );
        }
        // Equal completions: a coin flip, so the ceiling there is 0.5.
        assert_eq!(l.p_answers_a(&easy, "42.", "42.").unwrap(), 0.5);
    }

    #[test]
    fn the_measured_score_is_the_mean_judgement_under_the_noisy_pointer() {
        let t = task();
        let hard = Question { a: 1234, b: 4321 }.prompt();
        let wrong = "4+1=5,3+2=6,2+3=5,1+4=5 so 5565.";
        let assisted = Labeler::new(
            LabelerConfig {
                p_random: 0.0,
                assistant: Some(AssistantConfig { accuracy: 0.5 }),
                ..Default::default()
            },
            &t,
        )
        .unwrap();
        let mut rng = rng::stream(2, "t");
        let n = 20_000;
        let mean = (0..n)
            .map(|_| assisted.judge(&hard, wrong, &mut rng).unwrap().score)
            .sum::<f64>()
            / n as f64;
        let score = assisted.score(&hard, wrong).unwrap();
        assert!(
            (score - mean).abs() < 0.02,
            "score {score} vs mean judgement {mean}"
        );
    }

    #[test]
    fn an_assistant_exposes_wrong_working_on_hard_items() {
        let t = task();
        let q = Question { a: 1234, b: 4321 };
        let hard = q.prompt();
        let right = "4+1=5,3+2=5,2+3=5,1+4=5 so 5555.";
        let wrong = "4+1=5,3+2=6,2+3=5,1+4=5 so 5565.";
        let base = LabelerConfig {
            p_random: 0.0,
            ..Default::default()
        };
        let plain = Labeler::new(base.clone(), &t).unwrap();
        let assisted = Labeler::new(
            LabelerConfig {
                name: "assisted".into(),
                assistant: Some(AssistantConfig { accuracy: 1.0 }),
                ..base
            },
            &t,
        )
        .unwrap();
        let p_plain = share_a(&plain, &hard, right, wrong);
        let p_assisted = share_a(&assisted, &hard, right, wrong);
        assert!(
            (p_plain - 0.5).abs() < 0.05,
            "unassisted cannot tell: {p_plain}"
        );
        assert!(
            p_assisted > 0.95,
            "assisted finds the wrong step: {p_assisted}"
        );
    }

    #[test]
    fn unknown_bias_names_the_feature_and_the_options() {
        let t = task();
        let cfg = LabelerConfig {
            biases: [("politeness".to_string(), 1.0)].into_iter().collect(),
            ..Default::default()
        };
        let err = Labeler::new(cfg, &t).err().unwrap().to_string();
        assert!(
            err.contains("biases.politeness") && err.contains("confident"),
            "{err}"
        );
    }
}
