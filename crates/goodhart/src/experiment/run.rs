//! `goodhart run`: one experiment end to end, as one graph of stages.
//!
//! A task's pipeline is the table [`stages`]: base policy, labels, reward
//! model, base-policy evaluation, the pool strategies (best-of-n, conditioning,
//! quantiliser), then each RL and DPO run, each naming the stages it needs
//! ([`Stage::needs`](super::table::Stage::needs)). Every stage of every task
//! (and of every seed, for a several-seed run) is a node of one graph, run by
//! [`schedule::execute`] on the global pool: tasks, seeds and a task's RL and
//! DPO runs side by side, a stage starting as soon as what it needs is done.
//! The runner, `--resume` and the report all read that one table.
//!
//! A stage that completes writes its record to `<task>/stages/<stage>.json`
//! (atomically) beside what it saved (checkpoints, labels); a resumed run
//! skips every stage with a record, reloads the models later stages need when
//! they first need them, and redoes every unfinished stage from its start,
//! withdrawing any labels it had written. Every stage draws from its own
//! random stream and cuts its batches by their size alone, so neither the
//! order stages happen to run in, nor the thread count, nor a resume changes a
//! number. The run's outputs (`metrics.jsonl`, `curves.csv`, `fits.json`,
//! `report.html`) are always built from the records on disk.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use super::config::{Experiment, TaskSetup};
use super::record::{LabelerAnswers, Record, RunDir};
use super::schedule;
use super::stages::{
    evaluate_policy, fine_tune_base_policy, save_policy, task_of_checkpoint, train_base_policy,
};
use super::table::{stages, Stage, Work};
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

/// A prepared run directory and its experiment: one seed of what `run_tasks` runs.
pub struct Prepared<'a> {
    pub dir: &'a RunDir,
    pub exp: &'a Experiment,
}

/// Run (or continue) every task of every run in `runs` (one per seed) as one
/// graph of stages on the global pool, as many stages at once as the pool
/// has threads (from a thread of a pool: one at a time). Returns when every stage has
/// finished, or after the first failure, when the stages already started have
/// (that failure).
pub fn run_tasks(runs: &[Prepared], opts: &RunOptions, progress: &dyn Progress) -> Result<()> {
    for run in runs {
        opts.check(run.exp)?;
    }
    // Each task of each run, with its environment built once and its products shared by its stages.
    let mut tasks: Vec<(usize, &Prepared, &TaskSetup, Box<dyn Task>)> = vec![];
    for (r, run) in runs.iter().enumerate() {
        for setup in &run.exp.tasks {
            let task = crate::reward::build_task(&setup.task_config(), run.exp.seed)?;
            tasks.push((r, run, setup, task));
        }
    }
    let run_of: Vec<usize> = tasks.iter().map(|(r, ..)| *r).collect();
    let views: Vec<TaskRun> = tasks
        .iter()
        .map(|(_, run, setup, task)| TaskRun {
            dir: run.dir,
            setup,
            task: task.as_ref(),
            seed: run.exp.seed,
            opts,
            progress,
            device: crate::runtime::device(),
        })
        .collect();
    let products = views
        .iter()
        .map(TaskRun::products)
        .collect::<Result<Vec<_>>>()?;
    let graph = Graph::of(&views, &run_of, runs.len() > 1)?;
    let slots = rayon::current_num_threads();
    tracing::info!(
        stages = graph.nodes.len(),
        at_once = slots,
        "running the stage graph"
    );
    schedule::execute(&graph.needs, slots, |i| {
        let node = &graph.nodes[i];
        let lane = progress.lane(&node.label);
        let view = TaskRun {
            progress: lane.as_ref(),
            ..views[node.task].clone()
        };
        let stage = &stages(view.setup)[node.stage];
        let started = std::time::Instant::now();
        let record = view.run_stage(stage, &products[node.task])?;
        view.complete(&stage.name, &record)?;
        tracing::info!(
            stage = node.label.as_str(),
            seconds = started.elapsed().as_secs_f64(),
            "stage complete"
        );
        Ok(())
    })
}

/// The stages still to run of a set of tasks, and what each needs.
struct Graph {
    nodes: Vec<Node>,
    /// Per node, the nodes it needs (indices into `nodes`).
    needs: Vec<Vec<usize>>,
}

struct Node {
    /// Index of its task in the runner's list.
    task: usize,
    /// Index of its stage in the task's table.
    stage: usize,
    /// How progress names it: `<task>/<stage>`, after the seed when there are several.
    label: String,
}

impl Graph {
    /// Every stage of `tasks` that is wanted and has no record yet, listed in
    /// the order to prefer when several are ready: each run (seed) in turn,
    /// within it every task's first stage, then every task's second, and so
    /// on (the shared stages first, so that the strategies of every task
    /// become ready early). A task whose base policy an earlier task of its
    /// run trains already (the same settings) waits for that one and copies it.
    /// `run_of[t]` is the run (seed) task `t` belongs to.
    fn of(tasks: &[TaskRun], run_of: &[usize], name_seeds: bool) -> Result<Self> {
        let mut found: Vec<(usize, usize, usize, Node)> = vec![];
        let mut at: std::collections::HashMap<(usize, String), usize> = Default::default();
        for (t, view) in tasks.iter().enumerate() {
            let run = run_of[t];
            for (s, stage) in stages(view.setup).iter().enumerate() {
                let wanted = stage.strategy().is_none_or(|st| view.wanted(st));
                if !wanted || view.done(&stage.name)?.is_some() {
                    continue;
                }
                let seed = if name_seeds {
                    format!("seed {} ", view.seed)
                } else {
                    String::new()
                };
                let label = format!("{seed}{}/{}", view.name(), stage.name);
                found.push((
                    run,
                    s,
                    t,
                    Node {
                        task: t,
                        stage: s,
                        label,
                    },
                ));
            }
        }
        found.sort_by_key(|(run, s, t, _)| (*run, *s, *t));
        let nodes: Vec<Node> = found.into_iter().map(|(.., n)| n).collect();
        for (i, n) in nodes.iter().enumerate() {
            let name = stages(tasks[n.task].setup).swap_remove(n.stage).name;
            at.insert((n.task, name), i);
        }
        let needs = nodes
            .iter()
            .map(|n| {
                let view = &tasks[n.task];
                let table = stages(view.setup);
                let stage = &table[n.stage];
                let mut needs: Vec<usize> = stage
                    .needs()
                    .iter()
                    .filter_map(|name| at.get(&(n.task, name.to_string())).copied())
                    .collect();
                if matches!(stage.work, Work::Base) {
                    let twin = (0..n.task).find(|&other| {
                        run_of[other] == run_of[n.task] && view.same_base(tasks[other].setup)
                    });
                    needs.extend(twin.and_then(|t| at.get(&(t, "base".to_string())).copied()));
                }
                needs
            })
            .collect();
        Ok(Self { nodes, needs })
    }
}

/// Per evaluation split, the gold of base-policy samples of each of its prompts.
pub(super) type BaseGold = (Split, Vec<Vec<f64>>);

/// One task of a run, as one of its stages sees it.
#[derive(Clone)]
pub(super) struct TaskRun<'a> {
    dir: &'a RunDir,
    pub(super) setup: &'a TaskSetup,
    pub(super) task: &'a dyn Task,
    pub(super) seed: u64,
    opts: &'a RunOptions,
    pub(super) progress: &'a dyn Progress,
    pub(super) device: Device,
}

/// What stages hand on to later ones, shared by a task's stages as they run
/// side by side. The base policy and the reward model are made by their
/// stages, or reloaded from their checkpoints when a later stage first asks
/// for them (a resumed run). Each stage opens the label store on its own.
pub(super) struct Products<'a> {
    /// The task's labelers as configured, before any learned critic is attached.
    pub(super) unassisted: Vec<Labeler<'a>>,
    /// The labelers with their learned critics (made or loaded when first needed).
    pub(super) labelers: OnceLock<Vec<Labeler<'a>>>,
    pub(super) base: OnceLock<Model>,
    pub(super) reward_model: OnceLock<RewardModel>,
    /// The learned critics, by round (made by their stage, or loaded).
    pub(super) critics: OnceLock<Vec<Arc<LearnedCritic>>>,
    /// Per evaluation split, base-policy samples' gold, shared by every RL and
    /// DPO run (see [`TaskRun::base_reference`]).
    pub(super) base_reference: Mutex<Option<Arc<Vec<BaseGold>>>>,
}

impl<'a> TaskRun<'a> {
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

    /// The task's label store, opened for one stage (created if new).
    pub(super) fn store(&self) -> Result<LabelStore> {
        LabelStore::open(&self.path("labels.sqlite"))
    }

    fn done(&self, stage: &str) -> Result<Option<Record>> {
        self.dir.read_record(self.name(), stage)
    }

    fn complete(&self, stage: &str, record: &Record) -> Result<()> {
        self.dir.write_record(self.name(), stage, record)
    }

    fn wanted(&self, strategy: &str) -> bool {
        self.opts.only.as_deref().is_none_or(|o| o == strategy)
    }

    /// The task's products, none made yet; its label store created.
    fn products(&self) -> Result<Products<'a>> {
        self.store()?;
        Ok(Products {
            unassisted: self.setup.labelers(self.task)?,
            labelers: OnceLock::new(),
            base: OnceLock::new(),
            reward_model: OnceLock::new(),
            critics: OnceLock::new(),
            base_reference: Mutex::new(None),
        })
    }

    /// Whether `other` (a task of the same run) trains the very base policy
    /// this task would: same task settings, network, SFT and seed.
    fn same_base(&self, other: &TaskSetup) -> bool {
        self.setup.base_checkpoint.is_none()
            && other.base_checkpoint.is_none()
            && other.task_config() == self.setup.task_config()
            && other.model == self.setup.model
            && other.sft == self.setup.sft
    }

    fn run_stage(&self, stage: &Stage, p: &Products) -> Result<Record> {
        match stage.work {
            Work::Base => self.base(p),
            Work::Critic => self.critic(p),
            Work::Labels => self.labels(p),
            Work::RewardModel => self.reward_model(p),
            Work::BaseEval => self.base_eval(p),
            Work::Pool => self.pool(p),
            Work::RedTeam => self.red_team(p),
            Work::Rrm => self.rrm(p),
            Work::Debate => self.debate(p),
            Work::Rl(cfg) => {
                let (base, rm) = (self.base_policy(&p.base)?, self.proxy(&p.reward_model)?);
                let reference = self.base_reference(p, base)?;
                let mut store = self.store()?;
                self.rl(cfg, base, rm, self.labelers(p)?, &mut store, &reference)
            }
            Work::Dpo(cfg) => {
                let (base, rm) = (self.base_policy(&p.base)?, self.proxy(&p.reward_model)?);
                let reference = self.base_reference(p, base)?;
                self.dpo(cfg, base, rm, self.labelers(p)?, &self.store()?, &reference)
            }
        }
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
        for t in exp.tasks.iter().take_while(|t| t.name() != self.name()) {
            if !self.same_base(t) {
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

    fn labels(&self, p: &Products) -> Result<Record> {
        let base = self.base_policy(&p.base)?;
        let (store, labelers) = (&mut self.store()?, self.labelers(p)?);
        store.retract_batch("base")?;
        let prompts = self.task.prompts(self.setup.labels.split);
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
        let comparisons = self.base_comparisons(&self.store()?)?;
        let (rm, report) = train_reward_model(
            base,
            &comparisons,
            self.task,
            self.labelers(p)?,
            &self.setup.reward_model,
            &mut self.rng("reward_model"),
            self.progress,
        )?;
        rm.save(&self.path("reward_model"), true)?;
        p.reward_model.get_or_init(|| rm);
        Ok(Record::RewardModel { report })
    }

    fn base_eval(&self, p: &Products) -> Result<Record> {
        let (base, labelers) = (self.base_policy(&p.base)?, self.labelers(p)?);
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
