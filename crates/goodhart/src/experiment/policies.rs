//! The stages that train a policy (each RL and DPO run), and how their
//! checkpoints are saved and measured against the base policy.

use std::sync::{Arc, Mutex};

use super::record::Record;
use super::record::WorldModelRecord;
use super::run::{BaseGold, Products, TaskRun};
use super::stages::save_policy;
use crate::error::Error;
use crate::error::Result;
use crate::feedback::{LabelStore, Labeler};
use crate::measure::policy::{measure_policy, Evaluation};
use crate::model::Model;
use crate::optimize::dpo::{train_dpo, DpoConfig};
use crate::optimize::expert::ExpertIteration;
use crate::optimize::online::{Online, OnlineProxy};
use crate::optimize::ppo::Ppo;
use crate::optimize::rl::{self, Algorithm, Hooks, RewardChoice, RlConfig, Update};
use crate::optimize::rloo::Rloo;
use crate::optimize::world_model::{self, WorldModelReport, WorldModelSpec};
use crate::reward::RewardModel;
use crate::rng;
use crate::score::{
    evaluate, Binarised, CurvePoint, Gold, Judges, LabelerScore, Pessimistic, Proxy, RewardSource,
    Spec,
};
use crate::task::gridworld::PREDICATES;
use crate::task::spec::Formula;

impl TaskRun<'_> {
    /// Gold of base-policy samples on each evaluation split's prompts, sampled as
    /// checkpoints are (once per task, from its own stream): what a
    /// checkpoint's gold win rate is measured against.
    ///
    /// The lock is never held while sampling: a thread waiting inside that
    /// sampling's batch may start another stage of the task, which would then
    /// wait on the lock below it on its own stack. Two stages may both sample
    /// it; they get the same numbers (one stream), and the first kept stands.
    pub(super) fn base_reference(&self, p: &Products, base: &Model) -> Result<Arc<Vec<BaseGold>>> {
        let kept = || p.base_reference.lock().expect("base reference lock");
        if let Some(r) = kept().as_ref() {
            return Ok(r.clone());
        }
        let sampled = Arc::new(self.sample_base_reference(base)?);
        Ok(kept().get_or_insert(sampled).clone())
    }

    fn sample_base_reference(&self, base: &Model) -> Result<Vec<BaseGold>> {
        let ev = &self.setup.evaluation;
        self.splits()
            .into_iter()
            .map(|(split, n)| {
                let prompts: Vec<String> = self.task.prompts(split).into_iter().take(n).collect();
                let mut rng = self.rng(&format!("base_reference/{}", split.name()));
                let judges = Judges {
                    task: self.task,
                    labelers: &[],
                    proxy: None,
                };
                let max_new = self.setup.sampling.max_new_tokens;
                let e = evaluate(base, &judges, &prompts, ev.per_prompt, max_new, &mut rng)?;
                let golds = e
                    .scored
                    .chunks(ev.per_prompt)
                    .map(|c| c.iter().map(|s| s.gold).collect())
                    .collect();
                Ok((split, golds))
            })
            .collect()
    }

    /// Measure a policy checkpoint on every evaluation split, and save it.
    fn measure(
        &self,
        measurer: &Measurer,
        policy: &Model,
        knob: &str,
        value: usize,
        rm: &RewardModel,
    ) -> Result<Vec<CurvePoint>> {
        let rel = format!("policies/{}/{knob}-{value:05}", measurer.strategy);
        save_policy(
            policy,
            &self.path(&rel),
            &self.setup.task_config(),
            self.seed,
            None,
            true,
        )?;
        let mut points = vec![];
        for (split, n) in self.splits() {
            let prompts: Vec<String> = self.task.prompts(split).into_iter().take(n).collect();
            let ev = Evaluation {
                task: self.task,
                labelers: measurer.labelers,
                rm: Some(rm),
                split,
                prompts: &prompts,
                per_prompt: self.setup.evaluation.per_prompt,
                max_new_tokens: self.setup.sampling.max_new_tokens,
                examples: self.setup.evaluation.examples,
                base_gold: measurer
                    .base_gold
                    .iter()
                    .find(|(s, _)| *s == split)
                    .map(|(_, g)| g.as_slice()),
                labelled_chars: self.setup.labels.max_chars,
            };
            let mut rng = self.rng(&format!("{}/eval/{}", measurer.strategy, split.name()));
            let (mut point, _) = measure_policy(policy, measurer.base, &ev, &mut rng)?;
            point.strategy = measurer.strategy.to_string();
            point.knob = knob.to_string();
            point.value = value as f64;
            point.checkpoint = Some(format!("{}/{rel}", self.name()));
            points.push(point);
        }
        Ok(points)
    }

    pub(super) fn rl(
        &self,
        cfg: &RlConfig,
        base: &Model,
        rm: &RewardModel,
        labelers: &[Labeler],
        store: &mut LabelStore,
        base_gold: &[BaseGold],
    ) -> Result<Record> {
        let stage = format!("rl/{}", cfg.name);
        // A resumed run redoes the whole stage: withdraw the labels its first attempt asked for.
        store.retract_batch(&format!("online/{}", cfg.name))?;
        let policy = base.deep_copy(true)?;
        let mut algo: Box<dyn Update> = match cfg.algorithm {
            Algorithm::Ppo => Box::new(Ppo::new(&policy, cfg)?),
            Algorithm::Rloo => Box::new(Rloo::new(&policy, cfg)?),
            Algorithm::ExpertIteration => Box::new(ExpertIteration::new(&policy, cfg)?),
        };
        let online_proxy = cfg
            .online
            .as_ref()
            .map(|_| rm.trainable_copy())
            .transpose()?;
        let online_proxy = online_proxy.map(|rm| OnlineProxy { rm: Mutex::new(rm) });
        let (proxy, gold) = (Proxy(rm), Gold(self.task));
        let pessimistic = Pessimistic {
            rm,
            lambda: cfg.uncertainty_penalty,
        };
        let labeler = match cfg.reward {
            RewardChoice::Labeler => {
                let name = self.setup.reward_labelers().into_iter().next();
                let l = labelers
                    .iter()
                    .find(|l| Some(l.name()) == name.as_deref())
                    .ok_or_else(|| {
                        Error::invalid(format!("rl {}", cfg.name), "no labeler to optimise")
                    })?;
                Some(LabelerScore(l))
            }
            _ => None,
        };
        let (spec, margin) = (Spec::satisfied(self.task), Spec::margin(self.task));
        let progress = Spec::progress(self.task);
        let world = match cfg.reward {
            RewardChoice::SpecWorldModel => Some(self.world_model(cfg, base)?),
            _ => None,
        };
        let reward: &dyn RewardSource = match (&online_proxy, cfg.reward, &world) {
            (Some(o), _, _) => o,
            (None, RewardChoice::Proxy, _) if cfg.uncertainty_penalty > 0.0 => &pessimistic,
            (None, RewardChoice::Proxy, _) => &proxy,
            (None, RewardChoice::Labeler, _) => labeler.as_ref().expect("found above"),
            (None, RewardChoice::Spec, _) => &spec,
            (None, RewardChoice::SpecMargin, _) => &margin,
            (None, RewardChoice::SpecProgress, _) => &progress,
            (None, RewardChoice::Gold, _) => &gold,
            (None, RewardChoice::SpecWorldModel, Some((w, _))) => w,
            (None, RewardChoice::SpecWorldModel, None) => unreachable!("trained above"),
        };
        let binarised = cfg.binarise_top.map(|top| Binarised::new(reward, top));
        let reward: &dyn RewardSource = match &binarised {
            Some(b) => b,
            None => reward,
        };
        let prompts = self.task.prompts(cfg.split);
        let online = cfg.online.as_ref().map(|o| Online {
            store,
            task: self.task,
            labelers,
            prompts: &prompts,
            labels: self.setup.labels.clone(),
            rm_config: self.setup.reward_model.clone(),
            rm_labelers: self.setup.reward_labelers(),
            base_batch: "base".into(),
            run: cfg.name.clone(),
            config: o.clone(),
        });
        let mut hooks = RunHooks {
            run: self,
            measurer: Measurer {
                strategy: &cfg.name,
                knob: "iteration",
                base,
                labelers,
                base_gold,
            },
            rm,
            online,
            online_proxy: online_proxy.as_ref(),
            points: vec![],
            rng: self.rng(&format!("{}/online", cfg.name)),
        };
        let logs = rl::train(
            &policy,
            base,
            reward,
            &prompts,
            cfg,
            algo.as_mut(),
            &mut hooks,
            &mut self.rng(&stage),
            self.progress,
        )?;
        let world_model = world.map(|(w, report)| WorldModelRecord {
            report,
            gap: w.log.into_inner().expect("world model log"),
        });
        Ok(Record::Rl {
            name: cfg.name.clone(),
            logs,
            points: hooks.points,
            world_model,
        })
    }

    /// The world model of an RL run on the goal as predicted, trained on the base policy's trajectories.
    fn world_model(
        &self,
        cfg: &RlConfig,
        base: &Model,
    ) -> Result<(WorldModelSpec<'_>, WorldModelReport)> {
        let wm = cfg.world_model.clone().unwrap_or_default();
        let goal = Formula::parse(&self.setup.gridworld.spec, PREDICATES)?;
        let (model, report) = world_model::train(
            self.task,
            base,
            &goal,
            &wm,
            self.setup.sampling.max_new_tokens,
            &mut self.rng(&format!("{}/world_model", cfg.name)),
            self.progress,
        )?;
        Ok((WorldModelSpec::new(model, goal, self.task), report))
    }

    pub(super) fn dpo(
        &self,
        cfg: &DpoConfig,
        base: &Model,
        rm: &RewardModel,
        labelers: &[Labeler],
        store: &LabelStore,
        base_gold: &[BaseGold],
    ) -> Result<Record> {
        let stage = format!("dpo/{}", cfg.name);
        let data = self.base_comparisons(store)?;
        let policy = base.deep_copy(true)?;
        let mut hooks = RunHooks {
            run: self,
            measurer: Measurer {
                strategy: &cfg.name,
                knob: "step",
                base,
                labelers,
                base_gold,
            },
            rm,
            online: None,
            online_proxy: None,
            points: vec![],
            rng: self.rng(&format!("{}/unused", cfg.name)),
        };
        let logs = train_dpo(
            &policy,
            base,
            &data,
            cfg,
            &mut hooks,
            &mut self.rng(&stage),
            self.progress,
        )?;
        Ok(Record::Dpo {
            name: cfg.name.clone(),
            logs,
            points: hooks.points,
        })
    }
}

/// Who is measured against what.
struct Measurer<'a> {
    strategy: &'a str,
    /// What the checkpoints count: "iteration" (RL) or "step" (DPO).
    knob: &'static str,
    base: &'a Model,
    labelers: &'a [Labeler<'a>],
    /// Per evaluation split, the gold of base-policy samples of each prompt (for win rates).
    base_gold: &'a [BaseGold],
}

/// Checkpoints of an RL or DPO run: saved, measured, and (online) the reward refreshed.
struct RunHooks<'a> {
    run: &'a TaskRun<'a>,
    measurer: Measurer<'a>,
    rm: &'a RewardModel,
    online: Option<Online<'a>>,
    online_proxy: Option<&'a OnlineProxy>,
    points: Vec<CurvePoint>,
    rng: rng::Rng,
}

impl Hooks for RunHooks<'_> {
    fn checkpoint(&mut self, iteration: usize, policy: &Model) -> Result<()> {
        let knob = self.measurer.knob;
        // The proxy reported is the reward model being optimised: the refreshed one when online.
        let points = match self.online_proxy {
            Some(o) => {
                let rm = o.rm.lock().expect("reward model lock");
                self.run
                    .measure(&self.measurer, policy, knob, iteration, &rm)?
            }
            None => self
                .run
                .measure(&self.measurer, policy, knob, iteration, self.rm)?,
        };
        self.points.extend(points);
        Ok(())
    }

    fn refresh_reward(&mut self, iteration: usize, policy: &Model) -> Result<()> {
        if let (Some(online), Some(proxy)) = (self.online.as_mut(), self.online_proxy) {
            online.refresh(proxy, policy, iteration, &mut self.rng)?;
        }
        Ok(())
    }
}
