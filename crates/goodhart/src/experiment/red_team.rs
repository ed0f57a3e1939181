//! The `red_team` stage: rounds of adversarial testing and training of the
//! reward model (see [`crate::optimize::red_team`]), against the same number
//! of labels on random pairs, each round's reward model retrained from the
//! base labels and its arm's labels so far with the reward model stage's own
//! random stream (so the arms and rounds differ in their labels alone), and
//! measured by best-of-n on one pool of held-out base samples.

use std::collections::HashSet;

use super::record::Record;
use super::run::{Products, TaskRun};
use crate::error::Result;
use crate::feedback::{label_pairs, Answer, Comparison, Filter, Labeler, PolicyTag};
use crate::model::Model;
use crate::optimize::bon;
use crate::optimize::pool::Pool;
use crate::optimize::red_team::{pick, Arm, RedTeamRound, Searched};
use crate::optimize::rl::RlConfig;
use crate::reward::{train_reward_model, RewardModel};
use crate::rng::Rng;
use crate::score::{evaluate, Evaluated, Judges, Proxy, RewardSource};
use crate::task::Split;

impl TaskRun<'_> {
    pub(super) fn red_team(&self, p: &Products) -> Result<Record> {
        let (base, proxy, labelers) = (
            self.base_policy(&p.base)?,
            self.proxy(&p.reward_model)?,
            self.labelers(p)?,
        );
        let cfg = &self.setup.red_team;
        let s = &self.setup.strategies;
        let mut rng = self.rng("red_team");
        self.progress.start("red team", 2 * cfg.rounds as u64 + 1);
        let (searched_prompts, search) = self.base_answers(
            base,
            labelers,
            Split::Train,
            cfg.prompts,
            cfg.samples,
            &mut rng,
        )?;
        let (held_prompts, held) = self.base_answers(
            base,
            labelers,
            Split::Heldout,
            s.pool.prompts,
            s.pool.samples,
            &mut rng,
        )?;
        let reward_labeler = &self.setup.reward_labelers()[0];
        let li = labelers
            .iter()
            .position(|l| l.name() == reward_labeler)
            .unwrap_or(0);
        let mut store = self.store()?;
        let base_labels = self.base_comparisons(&store)?;

        // Round 0: the reward model every other stage optimises.
        let mut points = bon::run(
            &self.held_pool(proxy, &held_prompts, &held)?,
            &s.bon,
            "bon-round-0",
        )?;
        self.progress.advance(1);
        let mut rounds = vec![];
        // Every round's reward model of each arm (the next round searches
        // against its arm's last; PPO after the rounds trains against each).
        let mut made: Vec<(Arm, usize, RewardModel)> = vec![];
        for arm in [Arm::RedTeam, Arm::Random] {
            let mut used = HashSet::new();
            let mut added: Vec<Comparison> = vec![];
            for round in 1..=cfg.rounds {
                let rm = made
                    .iter()
                    .rev()
                    .find(|(a, _, _)| *a == arm)
                    .map_or(proxy, |(_, _, m)| m);
                let scores =
                    Proxy(rm).rewards(&searched_prompts, &search.prompt_tokens, &search.samples)?;
                let searched: Vec<Searched> = search
                    .scored
                    .iter()
                    .zip(&scores)
                    .map(|(x, &proxy)| Searched {
                        proxy,
                        labeler: x.labeler[li],
                        text: &x.completion,
                    })
                    .collect();
                let picks = pick(arm, &searched, cfg.samples, cfg.pairs, &used, &mut rng);
                used.extend(picks.iter().map(|p| p.prompt));
                let batch = format!("red_team/{}/{round}", arm.name());
                let pairs = picks
                    .iter()
                    .map(|p| {
                        (
                            searched_prompts[p.prompt].as_str(),
                            search.samples[p.first].clone(),
                            search.samples[p.second].clone(),
                        )
                    })
                    .collect();
                let answers = label_pairs(
                    &mut store,
                    self.task,
                    &PolicyTag {
                        name: "base",
                        step: None,
                    },
                    labelers,
                    pairs,
                    &batch,
                    &mut rng,
                )?;
                let labelled = store.comparisons(&Filter {
                    task: Some(self.task.name().into()),
                    labelers: self.setup.reward_labelers(),
                    batches: vec![batch],
                })?;
                // Failures: pairs the tested model orders against gold; caught:
                // the reward model's labeler answered as gold orders them.
                let gold = |i: usize| search.scored[i].gold;
                let (mut failures, mut caught) = (0, 0);
                for (p, answer) in picks.iter().zip(&answers) {
                    let (g1, g2) = (gold(p.first), gold(p.second));
                    if g1 == g2 || (scores[p.first] > scores[p.second]) == (g1 > g2) {
                        continue;
                    }
                    failures += 1;
                    caught += usize::from(match answer[li] {
                        Answer::A => g1 > g2,
                        Answer::B => g2 > g1,
                        _ => false,
                    });
                }
                added.extend(labelled);
                let rm = self.retrained(base, labelers, &base_labels, &added)?;
                let name = format!("bon-{}-{round}", arm.name().replace('_', "-"));
                let pool = self.held_pool(&rm, &held_prompts, &held)?;
                points.extend(bon::run(&pool, &s.bon, &name)?);
                // Against gold on every pair of a prompt's held-out answers.
                let agreement = pool.agreement();
                rounds.push(RedTeamRound {
                    arm,
                    round,
                    pairs: picks.len(),
                    failures: failures as f64 / picks.len().max(1) as f64,
                    caught: (failures > 0).then(|| caught as f64 / failures as f64),
                    comparisons: base_labels.len() + added.len(),
                    agreement,
                });
                made.push((arm, round, rm));
                self.progress.advance(1);
            }
        }
        self.progress.finish();
        if cfg.ppo {
            // The task's first RL strategy, as its own stage runs it against
            // round 0's model, against every round's model of each arm.
            let rl =
                s.rl.first()
                    .expect("validated: red_team.ppo needs an RL strategy");
            let reference = self.base_reference(p, base)?;
            for (arm, round, rm) in &made {
                let name = format!("{}-{}-{round}", rl.name, arm.name().replace('_', "-"));
                let arm_cfg = RlConfig { name, ..rl.clone() };
                let record = self.rl(&arm_cfg, base, rm, labelers, &mut store, &reference)?;
                points.extend(record.points().iter().cloned());
            }
        }
        Ok(Record::RedTeam { rounds, points })
    }

    /// Base-policy answers to the first `n` prompts of `split`, `per_prompt`
    /// each, scored by gold and every labeler (not the proxy: that is what changes).
    pub(super) fn base_answers(
        &self,
        base: &Model,
        labelers: &[Labeler],
        split: Split,
        n: usize,
        per_prompt: usize,
        rng: &mut Rng,
    ) -> Result<(Vec<String>, Evaluated)> {
        let prompts: Vec<String> = self.task.prompts(split).into_iter().take(n).collect();
        let judges = Judges {
            task: self.task,
            labelers,
            proxy: None,
        };
        let max_new = self.setup.sampling.max_new_tokens;
        let answers = evaluate(base, &judges, &prompts, per_prompt, max_new, rng)?;
        Ok((prompts, answers))
    }

    /// A reward model trained afresh on the base labels and `extra`, with the
    /// reward-model stage's settings and random stream: two of them differ in
    /// their labels alone.
    pub(super) fn retrained(
        &self,
        base: &Model,
        labelers: &[Labeler],
        base_labels: &[Comparison],
        extra: &[Comparison],
    ) -> Result<RewardModel> {
        let all: Vec<Comparison> = base_labels.iter().chain(extra).cloned().collect();
        let (rm, _) = train_reward_model(
            base,
            &all,
            self.task,
            labelers,
            &self.setup.reward_model,
            &mut self.rng("reward_model"),
            &crate::progress::Silent,
        )?;
        Ok(rm)
    }

    /// The held-out pool scored by `rm` (the proxy every point reports, and the selection reward).
    fn held_pool(&self, rm: &RewardModel, prompts: &[String], held: &Evaluated) -> Result<Pool> {
        let reward = Proxy(rm).rewards(prompts, &held.prompt_tokens, &held.samples)?;
        let mut scored = held.scored.clone();
        for (x, &r) in scored.iter_mut().zip(&reward) {
            x.proxy = Some(r);
        }
        Ok(Pool {
            task: self.task.name().to_string(),
            split: Split::Heldout,
            prompts: prompts.to_vec(),
            per_prompt: held.scored.len() / prompts.len().max(1),
            scored,
            reward,
            reward_name: "proxy".into(),
            labeler_names: self.setup.labelers.iter().map(|l| l.name.clone()).collect(),
            feature_names: self.task.feature_names().to_vec(),
            examples: self.setup.evaluation.examples,
            labelled_chars: self.setup.labels.max_chars,
        })
    }
}
