//! The `rrm` stage: recursive reward modelling with the rounds in the run
//! (see [`crate::optimize::rrm`]). Round k's policy is best-of-n of base
//! answers under round k-1's reward model (round 0's is the task's own,
//! learnt from the unassisted labeler); round k's critic is trained on that
//! policy's answers to training prompts; round k's judge, the first labeler
//! assisted by it, labels pairs of the policy's answers; round k's reward
//! model learns the base labels and every round's so far.

use std::sync::Arc;

use super::record::Record;
use super::run::{Products, TaskRun};
use crate::critic::{train_critics, CriticConfig};
use crate::error::{Error, Result};
use crate::feedback::{
    label_pairs, AssistantConfig, Comparison, Critic, Filter, Labeler, PolicyTag,
};
use crate::optimize::rrm::{best_of, digest, RrmRound};
use crate::reward::RewardModel;
use crate::score::{Proxy, RewardSource};
use crate::stats::Stat;
use crate::task::Split;

impl TaskRun<'_> {
    pub(super) fn rrm(&self, p: &Products) -> Result<Record> {
        let (base, proxy, labelers) = (
            self.base_policy(&p.base)?,
            self.proxy(&p.reward_model)?,
            self.labelers(p)?,
        );
        let cfg = &self.setup.rrm;
        let mut rng = self.rng("rrm");
        self.progress
            .start("recursive reward modelling", cfg.rounds as u64);
        let (prompts, train) =
            self.base_answers(base, labelers, Split::Train, cfg.prompts, cfg.n, &mut rng)?;
        let held_n = self.setup.strategies.pool.prompts;
        let (held_prompts, held) =
            self.base_answers(base, labelers, Split::Heldout, held_n, cfg.n, &mut rng)?;
        let first = self
            .setup
            .labelers
            .first()
            .ok_or_else(|| Error::invalid("rrm", "needs a labeler to assist"))?;
        let mut store = self.store()?;
        let store_labels = self.base_comparisons(&store)?;
        let mut added: Vec<Comparison> = vec![];
        let mut current: Option<RewardModel> = None;
        let mut rounds = vec![];
        let answers = |ev: &crate::score::Evaluated,
                       ps: &[String],
                       picks: &[usize]|
         -> Vec<(String, String)> {
            picks
                .iter()
                .map(|&i| {
                    (
                        ps[ev.scored[i].prompt_index].clone(),
                        ev.scored[i].completion.clone(),
                    )
                })
                .collect()
        };
        // The base policy's own answers (each prompt's first sample), to tell the policies' apart from.
        let firsts: Vec<usize> = (0..prompts.len()).map(|p| p * cfg.n).collect();
        let base_answers = digest(&answers(&train, &prompts, &firsts));
        for round in 1..=cfg.rounds {
            let rm = current.as_ref().unwrap_or(proxy);
            let pick = |ps: &[String], ev: &crate::score::Evaluated| -> Result<Vec<usize>> {
                Ok(best_of(
                    &Proxy(rm).rewards(ps, &ev.prompt_tokens, &ev.samples)?,
                    cfg.n,
                ))
            };
            let (train_picks, held_picks) = (pick(&prompts, &train)?, pick(&held_prompts, &held)?);
            let policy_answers = answers(&train, &prompts, &train_picks);
            let held_answers = answers(&held, &held_prompts, &held_picks);
            // The critic learns from checks of this round's policy's answers.
            let critic_cfg = CriticConfig {
                rounds: 1,
                ..self.setup.critic.clone()
            };
            let critic_trained_on = digest(&policy_answers);
            let (critic, report) = train_critics(
                base,
                self.task,
                &critic_cfg,
                &policy_answers,
                &held_answers,
                &mut rng,
                &crate::progress::Silent,
            )?
            .pop()
            .expect("one round");
            let mut report = report;
            report.round = round;
            let judge = Labeler::new(
                crate::feedback::LabelerConfig {
                    name: format!("{}-rrm-{round}", first.name),
                    assistant: Some(AssistantConfig::learned(1)),
                    ..first.clone()
                },
                self.task,
            )?
            .with_critic(Arc::new(critic) as Arc<dyn Critic>);
            // What the judge accepts of the policy's held-out answers, against gold.
            let (mut gold, mut right, mut accepts, mut plain, mut agree) =
                (vec![], 0.0, 0.0, 0.0, 0.0);
            let mut gap_per_prompt = vec![];
            // Wrong answers the judge accepts, and of them those with no step to point at.
            let (mut fooled, mut unpointable) = (0.0, 0.0);
            // (Gold and the unassisted labeler's score were measured with the samples.)
            for (&i, (prompt, completion)) in held_picks.iter().zip(&held_answers) {
                let g = held.scored[i].gold;
                let accepted = judge.score(prompt, completion)? > 0.0;
                gold.push(g);
                right += f64::from(g > 0.0);
                accepts += f64::from(accepted);
                plain += f64::from(held.scored[i].labeler[0] > 0.0);
                agree += f64::from(accepted == (g > 0.0));
                gap_per_prompt.push(f64::from(accepted) - f64::from(g > 0.0));
                if accepted && g <= 0.0 {
                    fooled += 1.0;
                    unpointable += f64::from(self.task.n_steps(prompt, completion) == 0);
                }
            }
            let n = held_answers.len().max(1) as f64;
            // The judge labels the policy's answers, each against another base answer to its prompt.
            let pairs: Vec<_> = train_picks
                .iter()
                .skip(((round - 1) * cfg.pairs) % cfg.prompts.max(1))
                .chain(train_picks.iter())
                .filter_map(|&i| {
                    let p = train.scored[i].prompt_index;
                    let other = (p * cfg.n..(p + 1) * cfg.n)
                        .find(|&j| train.scored[j].completion != train.scored[i].completion)?;
                    Some((
                        prompts[p].as_str(),
                        train.samples[i].clone(),
                        train.samples[other].clone(),
                    ))
                })
                .take(cfg.pairs)
                .collect();
            let batch = format!("rrm/{round}");
            let labels = label_pairs(
                &mut store,
                self.task,
                &PolicyTag {
                    name: &format!("rrm-policy-{round}"),
                    step: Some(round as i64),
                },
                std::slice::from_ref(&judge),
                pairs,
                &batch,
                &mut rng,
            )?;
            added.extend(store.comparisons(&Filter {
                task: Some(self.task.name().into()),
                labelers: vec![],
                batches: vec![batch],
            })?);
            let rm = self.retrained(base, labelers, &store_labels, &added)?;
            rounds.push(RrmRound {
                round,
                policy: format!("best-of-{} under round {}'s reward model", cfg.n, round - 1),
                policy_answers: digest(&policy_answers),
                critic_trained_on,
                gold: Stat::of(&gold),
                right: right / n,
                judge_accepts: accepts / n,
                unassisted_accepts: plain / n,
                agreement: agree / n,
                gap_per_prompt,
                accepted_wrong_without_steps: (fooled > 0.0).then(|| unpointable / fooled),
                critic: report,
                labels: labels.len(),
            });
            current = Some(rm);
            self.progress.advance(1);
        }
        self.progress.finish();
        Ok(Record::Rrm {
            base_answers,
            rounds,
        })
    }
}
