//! `goodhart run`: one experiment end to end, each task in its own lane.
//!
//! A task's pipeline is the table [`stages`]: base policy, labels, reward
//! model, base-policy evaluation, the pool strategies (best-of-n, conditioning,
//! quantiliser), then each RL and DPO run. The runner, `--resume` and the
//! report all read that one list. A stage that completes writes its record to
//! `<task>/stages/<stage>.json` (atomically) beside what it saved (checkpoints,
//! labels); a resumed run skips every stage with a record, reloads the models
//! later stages need when they first need them, and redoes the first
//! unfinished stage from its start, withdrawing any labels that stage had
//! written. Every stage draws from its own random stream, so a resumed run
//! gives the same numbers as an uninterrupted one. The run's outputs
//! (`metrics.jsonl`, `curves.csv`, `fits.json`, `report.html`) are always
//! built from the records on disk.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use super::config::{Experiment, TaskSetup};
use super::record::{LabelerAnswers, Record, RunDir};
use super::stages::{
    evaluate_policy, fine_tune_base_policy, save_policy, task_of_checkpoint, train_base_policy,
};
use super::table::{stages, Work};
use crate::critic::LearnedCritic;
use crate::error::{Error, Result};
use crate::feedback::{simulate_labels, AnswerCounts, Filter, LabelStore, Labeler, PolicyTag};
use crate::measure::PolicySummary;
use crate::model::checkpoint;
use crate::model::Model;
use crate::progress::Progress;
use crate::reward::{train_reward_model, RewardModel};
use crate::rng;
use crate::runtime::Device;
use crate::task::{Split, Task};

/// Which strategies to run; `None` runs them all.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub only: Option<String>,
}

impl RunOptions {
    /// The strategy asked for exists in the experiment.
    pub fn check(&self, exp: &Experiment) -> Result<()> {
        match &self.only {
            Some(only) if !exp.tasks.iter().any(|t| t.strategy_names().contains(only)) => {
                let all: Vec<String> = exp.tasks.iter().flat_map(|t| t.strategy_names()).collect();
                Err(Error::invalid(
                    "strategy",
                    format!(
                        "no strategy named {only:?} in this experiment (it has: {})",
                        all.join(", ")
                    ),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Run (or continue) every task of the run in `dir`, the tasks side by side,
/// splitting `threads` between them. Returns when every task has finished or failed.
pub fn run_tasks(
    dir: &RunDir,
    exp: &Experiment,
    threads: usize,
    opts: &RunOptions,
    progress: &dyn Progress,
) -> Result<()> {
    opts.check(exp)?;
    let lanes = exp.tasks.len().min(threads.max(1));
    let per_lane = (threads / lanes).max(1);
    let lane_progress: Vec<Box<dyn Progress + '_>> =
        exp.tasks.iter().map(|t| progress.lane(t.name())).collect();
    let errors: Mutex<Vec<Error>> = Mutex::new(vec![]);
    // Tasks are dealt to lanes round-robin; each lane has its own thread pool.
    std::thread::scope(|scope| {
        for lane in 0..lanes {
            let (errors, lane_progress) = (&errors, &lane_progress);
            scope.spawn(move || {
                let pool = match crate::runtime::pool(per_lane) {
                    Ok(p) => p,
                    Err(e) => {
                        errors.lock().expect("error list").push(e);
                        return;
                    }
                };
                for (i, setup) in exp
                    .tasks
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % lanes == lane)
                {
                    let result = pool.install(|| {
                        let task = crate::reward::build_task(&setup.task_config(), exp.seed)?;
                        TaskRun {
                            dir,
                            setup,
                            task: task.as_ref(),
                            seed: exp.seed,
                            opts,
                            progress: lane_progress[i].as_ref(),
                            device: crate::runtime::device(),
                            base_reference: std::sync::OnceLock::new(),
                        }
                        .run()
                    });
                    if let Err(e) = result {
                        errors.lock().expect("error list").push(e);
                    }
                }
            });
        }
    });
    match errors.into_inner().expect("error list").into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Per evaluation split, the gold of base-policy samples of each of its prompts.
pub(super) type BaseGold = (Split, Vec<Vec<f64>>);

pub(super) struct TaskRun<'a> {
    dir: &'a RunDir,
    pub(super) setup: &'a TaskSetup,
    pub(super) task: &'a dyn Task,
    pub(super) seed: u64,
    opts: &'a RunOptions,
    pub(super) progress: &'a dyn Progress,
    pub(super) device: Device,
    /// [`TaskRun::base_reference`], sampled once and shared by every RL and DPO run.
    pub(super) base_reference: OnceLock<Vec<BaseGold>>,
}

/// What stages hand on to later ones. The base policy and the reward model are
/// made by their stages, or reloaded from their checkpoints when a later stage
/// first asks for them (a resumed run).
pub(super) struct Products<'a> {
    pub(super) labelers: Vec<Labeler<'a>>,
    store: LabelStore,
    pub(super) base: OnceLock<Model>,
    pub(super) reward_model: OnceLock<RewardModel>,
    /// The learned critics, by round (made by their stage, or loaded).
    pub(super) critics: OnceLock<Vec<Arc<LearnedCritic>>>,
}

impl TaskRun<'_> {
    /// The task's name in the experiment (its folder, records and random streams).
    pub(super) fn name(&self) -> &str {
        self.setup.name()
    }

    pub(super) fn rng(&self, stage: &str) -> rng::Rng {
        rng::stream(self.seed, &format!("{}/{stage}", self.name()))
    }

    pub(super) fn path(&self, rel: &str) -> PathBuf {
        self.dir.task_dir(self.name()).join(rel)
    }

    fn done(&self, stage: &str) -> Result<Option<Record>> {
        self.dir.read_record(self.name(), stage)
    }

    fn complete(&self, stage: &str, record: &Record) -> Result<()> {
        tracing::info!(task = self.name(), stage, "stage complete");
        self.dir.write_record(self.name(), stage, record)
    }

    fn wanted(&self, strategy: &str) -> bool {
        self.opts.only.as_deref().is_none_or(|o| o == strategy)
    }

    fn run(&self) -> Result<()> {
        let mut products = Products {
            labelers: self.setup.labelers(self.task)?,
            store: LabelStore::open(&self.path("labels.sqlite"))?,
            base: OnceLock::new(),
            reward_model: OnceLock::new(),
            critics: OnceLock::new(),
        };
        for stage in stages(self.setup) {
            if !stage.strategy().is_none_or(|s| self.wanted(s)) || self.done(&stage.name)?.is_some()
            {
                continue;
            }
            if !matches!(stage.work, Work::Base | Work::Critic) {
                self.attach_critics(&mut products)?;
            }
            let record = match stage.work {
                Work::Base => self.base(&products)?,
                Work::Critic => self.critic(&products)?,
                Work::Labels => self.labels(&mut products)?,
                Work::RewardModel => self.reward_model(&products)?,
                Work::BaseEval => self.base_eval(&products)?,
                Work::Pool => self.pool(&products)?,
                Work::Rl(cfg) => {
                    let (base, rm) = (
                        self.base_policy(&products.base)?,
                        self.proxy(&products.reward_model)?,
                    );
                    self.rl(cfg, base, rm, &products.labelers, &mut products.store)?
                }
                Work::Dpo(cfg) => {
                    let (base, rm) = (
                        self.base_policy(&products.base)?,
                        self.proxy(&products.reward_model)?,
                    );
                    self.dpo(cfg, base, rm, &products.labelers, &products.store)?
                }
            };
            self.complete(&stage.name, &record)?;
        }
        Ok(())
    }

    /// The base policy, with the task's prompt format and frozen blocks applied:
    /// the one its stage made, or its checkpoint.
    pub(super) fn base_policy<'p>(&self, made: &'p OnceLock<Model>) -> Result<&'p Model> {
        if let Some(m) = made.get() {
            return Ok(m);
        }
        let model = checkpoint::load(&self.path("base"), &self.device, false)?.0;
        let model = self.prepared(model)?;
        Ok(made.get_or_init(|| model))
    }

    /// The proxy reward model: the one its stage trained, or its checkpoint.
    pub(super) fn proxy<'p>(&self, made: &'p OnceLock<RewardModel>) -> Result<&'p RewardModel> {
        if let Some(rm) = made.get() {
            return Ok(rm);
        }
        let rm = RewardModel::load(&self.path("reward_model"), &self.device)?;
        Ok(made.get_or_init(|| rm))
    }

    /// Apply the task's chat template and `train_last_blocks` to a model.
    fn prepared(&self, mut model: Model) -> Result<Model> {
        if self.setup.chat_template {
            let chat = model.tokenizer().with_chat_template()?;
            model = model.with_tokenizer(chat)?;
        }
        model = super::stages::in_environment(model, self.task)?;
        match self.setup.train_last_blocks {
            Some(k) => model.train_last_blocks(k),
            None => Ok(model),
        }
    }

    /// An earlier task of this run whose trained base policy is the one this
    /// task would train (same task settings, network, SFT and seed), with its record.
    fn twin_base(&self) -> Result<Option<(String, Record)>> {
        let exp = self.dir.experiment()?;
        let same = |t: &TaskSetup| {
            t.base_checkpoint.is_none()
                && t.task_config() == self.setup.task_config()
                && t.model == self.setup.model
                && t.sft == self.setup.sft
        };
        for t in exp.tasks.iter().take_while(|t| t.name() != self.name()) {
            if !same(t) {
                continue;
            }
            if let Some(r @ Record::Base { .. }) = self.dir.read_record(t.name(), "base")? {
                if self.dir.task_dir(t.name()).join("base").is_dir() {
                    return Ok(Some((t.name().to_string(), r)));
                }
            }
        }
        Ok(None)
    }

    /// The base stage: train the base policy, or load (and optionally fine-tune) the given checkpoint.
    fn base(&self, p: &Products) -> Result<Record> {
        let dir = self.path("base");
        let twin = match self.setup.base_checkpoint {
            Some(_) => None,
            None => self.twin_base()?,
        };
        let (model, record) = match (&self.setup.base_checkpoint, twin) {
            (Some(path), _) => {
                let tune = self.setup.fine_tune_base;
                let (model, info) = checkpoint::load(path, &self.device, tune)?;
                match task_of_checkpoint(&info) {
                    Some((task, _)) if task == self.setup.task_config() => {}
                    // A pretrained Hugging Face model records no task: it is a starting point.
                    None if checkpoint::is_hugging_face(path) => {}
                    _ => {
                        return Err(Error::Mismatch(format!(
                            "{} was not trained on this experiment's {} task (settings differ or are not recorded)",
                            path.display(),
                            self.name()
                        )))
                    }
                }
                // Optionally SFT it on the task's demonstrations first (your own JSONL).
                let (model, sft) = if tune {
                    let model = self.prepared(model)?;
                    let report = fine_tune_base_policy(
                        &model,
                        self.setup,
                        self.task,
                        self.seed,
                        self.progress,
                    )?;
                    (model, Some(report))
                } else {
                    (model, None)
                };
                (
                    model,
                    Record::Base {
                        source: path.display().to_string(),
                        sft,
                    },
                )
            }
            (None, Some((twin, record))) => {
                // Another task of this run trained the very same policy (same
                // task settings, network, SFT and seed): training is
                // deterministic, so its checkpoint is what this one would be.
                tracing::info!(
                    task = self.name(),
                    from = twin.as_str(),
                    "base policy: the same as another task's"
                );
                let model =
                    checkpoint::load(&self.dir.task_dir(&twin).join("base"), &self.device, false)?
                        .0;
                (model, record)
            }
            (None, None) => {
                let (model, report) = train_base_policy(
                    self.setup,
                    self.task,
                    self.seed,
                    &self.device,
                    self.progress,
                )?;
                (
                    model,
                    Record::Base {
                        source: "sft".into(),
                        sft: Some(report),
                    },
                )
            }
        };
        let sft = match &record {
            Record::Base { sft, .. } => sft.as_ref(),
            _ => None,
        };
        save_policy(
            &model,
            &dir,
            &self.setup.task_config(),
            self.seed,
            sft,
            true,
        )?;
        let model = self.prepared(model)?;
        p.base.get_or_init(|| model);
        Ok(record)
    }

    fn labels(&self, p: &mut Products) -> Result<Record> {
        let base = self.base_policy(&p.base)?;
        let (store, labelers) = (&mut p.store, &p.labelers);
        store.retract_batch("base")?;
        let prompts = self.task.prompts(Split::Train);
        let pairs = match self.setup.task_config() {
            // A user's own data: its comparisons are the labels, under the first labeler's name.
            crate::task::TaskConfig::Jsonl(j) => {
                store
                    .import_jsonl(
                        &j.preferences,
                        self.task.name(),
                        labelers[0].name(),
                        crate::feedback::OnBadLine::Stop,
                        "base",
                    )?
                    .imported
            }
            _ => simulate_labels(
                store,
                base,
                &PolicyTag {
                    name: "base",
                    step: None,
                },
                self.task,
                labelers,
                &prompts,
                &self.setup.labels,
                "base",
                &mut self.rng("labels"),
                self.progress,
            )?,
        };
        let all = store.comparisons(&Filter {
            task: Some(self.task.name().into()),
            batches: vec!["base".into()],
            ..Default::default()
        })?;
        let answers = labelers
            .iter()
            .map(|l| {
                let mut counts = AnswerCounts::default();
                for c in all.iter().filter(|c| c.labeler == l.name()) {
                    counts.add(c.answer);
                }
                LabelerAnswers {
                    labeler: l.name().to_string(),
                    counts,
                }
            })
            .collect();
        Ok(Record::Labels { answers, pairs })
    }

    pub(super) fn base_comparisons(
        &self,
        store: &LabelStore,
    ) -> Result<Vec<crate::feedback::Comparison>> {
        store.comparisons(&Filter {
            task: Some(self.task.name().into()),
            labelers: self.setup.reward_labelers(),
            batches: vec!["base".into()],
        })
    }

    fn reward_model(&self, p: &Products) -> Result<Record> {
        let base = self.base_policy(&p.base)?;
        let comparisons = self.base_comparisons(&p.store)?;
        let (rm, report) = train_reward_model(
            base,
            &comparisons,
            self.task,
            &p.labelers,
            &self.setup.reward_model,
            &mut self.rng("reward_model"),
            self.progress,
        )?;
        rm.save(&self.path("reward_model"), true)?;
        p.reward_model.get_or_init(|| rm);
        Ok(Record::RewardModel { report })
    }

    fn base_eval(&self, p: &Products) -> Result<Record> {
        let (base, labelers) = (self.base_policy(&p.base)?, &p.labelers);
        let ev = &self.setup.evaluation;
        let mut rng = self.rng("base_eval");
        // Sampled as every curve point is, so the base policy's gold here is the curves' origin.
        let mut summarise = |split: Split, n: usize| -> Result<PolicySummary> {
            Ok(evaluate_policy(
                base,
                self.task,
                labelers,
                split,
                n,
                ev.per_prompt,
                self.setup.sampling.max_new_tokens,
                &mut rng,
            )?
            .summary)
        };
        self.progress.start("base policy", 1);
        let heldout = summarise(Split::Heldout, ev.prompts)?;
        let shift = if ev.shift_prompts > 0 {
            Some(summarise(Split::Shift, ev.shift_prompts)?)
        } else {
            None
        };
        self.progress.advance(1);
        self.progress.finish();
        Ok(Record::BaseEval { heldout, shift })
    }

    pub(super) fn splits(&self) -> Vec<(Split, usize)> {
        let ev = &self.setup.evaluation;
        let mut s = vec![(Split::Heldout, ev.prompts)];
        if ev.shift_prompts > 0 {
            s.push((Split::Shift, ev.shift_prompts));
        }
        s
    }
}
