//! The `debate` stage: one judge, the task's first labeler, decides whether
//! base answers to held-out prompts are right, in every arm of
//! [`crate::optimize::debate`] (alone, with one critic's pointer, and in
//! debates with a check budget and noisy checks, without and with an honest
//! defender trained here against the fixed attacker), on the same answers.

use std::sync::Arc;

use super::record::Record;
use super::run::{Products, TaskRun};
use crate::critic::train_defender;
use crate::error::{Error, Result};
use crate::feedback::{Critic, Labeler, LabelerConfig};
use crate::optimize::debate::{ArmResult, DebateRecord, Judged};
use crate::stats::Stat;
use crate::task::Split;

impl TaskRun<'_> {
    pub(super) fn debate(&self, p: &Products) -> Result<Record> {
        let base = self.base_policy(&p.base)?;
        let cfg = &self.setup.debate;
        let critics = self.critics(p)?;
        let round = if cfg.round == 0 {
            critics.len()
        } else {
            cfg.round
        };
        let attacker = critics.get(round.wrapping_sub(1)).ok_or_else(|| {
            Error::invalid(
                "debate.round",
                "the task has no learned critic of that round",
            )
        })?;
        let first: &LabelerConfig = self
            .setup
            .labelers
            .first()
            .ok_or_else(|| Error::invalid("debate", "needs a labeler to judge"))?;
        let labelers = self.labelers(p)?;
        let mut rng = self.rng("debate");
        let arms = cfg.arms();
        self.progress.start("debate", arms.len() as u64 + 1);

        // The honest defender learns against the fixed attacker, from the judge's checks.
        let train = self.completions(base, Split::Train, self.setup.critic.checks, &mut rng)?;
        let measured =
            self.completions(base, Split::Heldout, self.setup.critic.heldout, &mut rng)?;
        let (defender, defender_report) = train_defender(
            base,
            self.task,
            &self.setup.critic,
            attacker,
            cfg.max_turns(),
            cfg.check_noise,
            &train,
            &measured,
            &mut rng,
            &crate::progress::Silent,
        )?;
        let defender: Arc<dyn Critic> = Arc::new(defender);
        self.progress.advance(1);

        // Right: the task's `correct` feature where it has one (gold can
        // reward working shown, right or wrong), else gold above 0.
        let correct = self
            .task
            .feature_names()
            .iter()
            .position(|&n| n == "correct");
        let right = |s: &crate::score::Scored| match correct {
            Some(i) => s.features.get(i).is_some_and(|&x| x > 0.5),
            None => s.gold > 0.0,
        };
        // Base answers to held-out prompts, then to shifted ones: one each.
        let mut judged = vec![];
        for (split, n) in [
            (Split::Heldout, cfg.prompts),
            (Split::Shift, cfg.shift_prompts),
        ] {
            if n > 0 {
                let (prompts, answers) =
                    self.base_answers(base, labelers, split, n, 1, &mut rng)?;
                judged.extend(
                    answers
                        .scored
                        .into_iter()
                        .map(|s| (prompts[s.prompt_index].clone(), right(&s), s.completion)),
                );
            }
        }
        let alone = Labeler::new(
            LabelerConfig {
                assistant: None,
                ..first.clone()
            },
            self.task,
        )?;
        let answers = judged
            .iter()
            .map(|(prompt, right, completion)| {
                Ok(Judged {
                    difficulty: self.task.difficulty(prompt)?,
                    right: *right,
                    steps: self.task.n_steps(prompt, completion),
                    flawed: self.task.first_wrong_step(prompt, completion).is_some(),
                    checked_alone: alone.checks_alone(prompt, completion)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let mut results = vec![];
        for arm in arms {
            let judge = Labeler::new(
                LabelerConfig {
                    name: format!("{}-{}", first.name, arm.name),
                    assistant: arm.assistant(round, cfg.check_noise),
                    ..first.clone()
                },
                self.task,
            )?
            .with_critic(attacker.clone() as Arc<dyn Critic>)
            .with_defender(defender.clone());
            let mut p_correct = Vec::with_capacity(answers.len());
            // Of the pointed steps the defender answered, wrong and right ones: conceded or not.
            let (mut of_wrong, mut of_right) = (vec![], vec![]);
            for (a, (prompt, _, completion)) in answers.iter().zip(&judged) {
                let accepts = judge.p_accepts(prompt, completion)?;
                p_correct.push(if a.right { accepts } else { 1.0 - accepts });
                if arm.defender.is_none() || a.checked_alone {
                    continue;
                }
                let moves = judge.moves(prompt, completion)?;
                for &k in &moves.pointers {
                    let conceded = f64::from(u8::from(moves.conceded.contains(&k)));
                    if self.task.step_is_wrong(prompt, completion, k) {
                        of_wrong.push(conceded);
                    } else {
                        of_right.push(conceded);
                    }
                }
            }
            let defended = arm.defender.is_some();
            results.push(ArmResult {
                arm,
                p_correct,
                conceded_wrong: defended.then(|| Stat::of(&of_wrong)),
                conceded_right: defended.then(|| Stat::of(&of_right)),
            });
            self.progress.advance(1);
        }
        self.progress.finish();
        Ok(Record::Debate(DebateRecord {
            attacker_round: round,
            check_noise: cfg.check_noise,
            answers,
            arms: results,
            defender: defender_report,
        }))
    }
}
