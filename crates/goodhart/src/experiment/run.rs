//! `goodhart run`: one experiment end to end, each task in its own lane.
//!
//! Per task the stages are: base policy, labels, reward model, base-policy
//! evaluation, the pool strategies (best-of-n, conditioning, quantiliser), then
//! each RL and DPO run. A stage that completes writes its record to
//! `<task>/stages/<stage>.json` (atomically) beside what it saved (checkpoints,
//! labels); a resumed run skips every stage with a record, reloads their
//! models, and redoes the first unfinished stage from its start, withdrawing
//! any labels that stage had written. Every stage draws from its own random
//! stream, so a resumed run gives the same numbers as an uninterrupted one.
//! The run's outputs (`metrics.jsonl`, `curves.csv`, `fits.json`,
//! `report.html`) are always built from the records on disk.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::config::{Experiment, TaskSetup};
use super::stages::{
    evaluate_policy, fine_tune_base_policy, save_policy, task_of_checkpoint, train_base_policy,
};
use crate::error::{Error, Result};
use crate::feedback::{simulate_labels, Answer, Filter, LabelStore, Labeler, PolicyTag};
use crate::fsutil::write_atomic;
use crate::measure::policy::{measure_policy, Evaluation};
use crate::measure::LabelerFidelity;
use crate::model::checkpoint;
use crate::model::Model;
use crate::optimize::dpo::{train_dpo, DpoLog};
use crate::optimize::online::{Online, OnlineProxy};
use crate::optimize::pool::{build_pool, Pool};
use crate::optimize::ppo::Ppo;
use crate::optimize::rl::{self, Algorithm, Hooks, IterationLog, RewardChoice, RlConfig, Update};
use crate::optimize::rloo::Rloo;
use crate::optimize::{bon, condition, quantilize};
use crate::progress::Progress;
use crate::reward::{train_reward_model, RewardModel, RewardReport};
use crate::rng;
use crate::runtime::Device;
use crate::score::{CurvePoint, Gold, Proxy, RewardSource, Spec};
use crate::stats::Stat;
use crate::task::{Split, Task};
use crate::train::SftReport;

/// The resolved experiment inside a run directory.
pub const EXPERIMENT_FILE: &str = "experiment.toml";

/// What a completed stage leaves behind (besides checkpoints and labels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Record {
    Base {
        /// Where the policy came from: "sft" or the checkpoint it was loaded from.
        source: String,
        sft: Option<SftReport>,
    },
    Labels {
        /// (labeler, answers a, b, tie, can't tell).
        answers: Vec<(String, [usize; 4])>,
        pairs: usize,
    },
    RewardModel {
        report: RewardReport,
    },
    BaseEval {
        heldout: PolicySummary,
        shift: Option<PolicySummary>,
    },
    Pool {
        /// The base policy's reward and feature distribution on the held-out pool: the scale of the z-scored gaps.
        base: BaseStats,
        /// Every point of best-of-n, conditioning and the quantiliser, on each split; the uniform (base) point first.
        points: Vec<CurvePoint>,
        /// Points left out, and why.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    Rl {
        name: String,
        logs: Vec<IterationLog>,
        points: Vec<CurvePoint>,
    },
    Dpo {
        name: String,
        logs: Vec<DpoLog>,
        points: Vec<CurvePoint>,
    },
}

impl Record {
    pub fn points(&self) -> &[CurvePoint] {
        match self {
            Record::Pool { points, .. }
            | Record::Rl { points, .. }
            | Record::Dpo { points, .. } => points,
            _ => &[],
        }
    }
}

/// A policy measured on one split, without the per-sample detail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicySummary {
    pub split: Split,
    pub gold: Stat,
    pub labelers: Vec<(String, Stat)>,
    pub fidelity: Vec<(String, LabelerFidelity)>,
    pub features: Vec<(String, Stat)>,
    pub spec: Option<Stat>,
}

/// Mean and standard deviation of each reward and feature over base samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BaseStats {
    pub proxy: (f64, f64),
    /// The first labeler the reward model learned from.
    pub labeler: (String, f64, f64),
    pub gold: (f64, f64),
    pub features: Vec<(String, f64, f64)>,
}

fn mean_std(xs: impl Iterator<Item = f64>) -> (f64, f64) {
    let v: Vec<f64> = xs.collect();
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    (
        mean,
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt(),
    )
}

/// All records of one task, in stage order.
#[derive(Clone, Debug)]
pub struct TaskRecords {
    pub task: String,
    pub records: Vec<(String, Record)>,
}

/// A run directory: where an experiment's files live.
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn task_dir(&self, task: &str) -> PathBuf {
        self.root.join(task)
    }

    fn stage_file(&self, task: &str, stage: &str) -> PathBuf {
        self.task_dir(task)
            .join("stages")
            .join(format!("{}.json", stage.replace('/', ".")))
    }

    pub fn read_record(&self, task: &str, stage: &str) -> Result<Option<Record>> {
        let path = self.stage_file(task, stage);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Data {
                    path: path.clone(),
                    line: e.line(),
                    message: format!("not a stage record: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    fn write_record(&self, task: &str, stage: &str, record: &Record) -> Result<()> {
        let path = self.stage_file(task, stage);
        let dir = path.parent().expect("stage files live in a directory");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(record).expect("records serialise"),
        )
    }

    /// The experiment the run was started with.
    pub fn experiment(&self) -> Result<Experiment> {
        Experiment::from_file(&self.root.join(EXPERIMENT_FILE))
    }

    /// Every completed stage of every task, in the experiment's order.
    pub fn records(&self, exp: &Experiment) -> Result<Vec<TaskRecords>> {
        exp.tasks
            .iter()
            .map(|setup| {
                let mut records = vec![];
                for stage in stage_names(setup) {
                    if let Some(r) = self.read_record(setup.name(), &stage)? {
                        records.push((stage, r));
                    }
                }
                Ok(TaskRecords {
                    task: setup.name().to_string(),
                    records,
                })
            })
            .collect()
    }
}

/// The stages of a task, in the order they run.
pub fn stage_names(setup: &TaskSetup) -> Vec<String> {
    let mut names: Vec<String> = ["base", "labels", "reward_model", "base_eval", "pool"]
        .map(String::from)
        .to_vec();
    names.extend(setup.strategies.rl.iter().map(|r| format!("rl/{}", r.name)));
    names.extend(
        setup
            .strategies
            .dpo
            .iter()
            .map(|d| format!("dpo/{}", d.name)),
    );
    names
}

/// Start a new run in `root` (which must not exist or be empty), or continue one (`resume`).
/// Returns the experiment the run directory holds.
pub fn prepare(root: &Path, exp: Option<&Experiment>, resume: bool) -> Result<Experiment> {
    let file = root.join(EXPERIMENT_FILE);
    if resume {
        if !file.is_file() {
            return Err(Error::invalid(
                "--resume",
                format!(
                    "{} is not a run directory (no {EXPERIMENT_FILE})",
                    root.display()
                ),
            ));
        }
        let stored = RunDir::new(root).experiment()?;
        if let Some(given) = exp {
            if given != &stored {
                return Err(Error::invalid(
                    "--resume",
                    format!("the experiment given differs from the one {} was started with; resume without one", root.display()),
                ));
            }
        }
        return Ok(stored);
    }
    let exp = exp.expect("a new run needs an experiment");
    if root.exists()
        && std::fs::read_dir(root)
            .map_err(|e| Error::io(root, e))?
            .next()
            .is_some()
    {
        return Err(Error::invalid(
            "--out",
            format!("{} already exists and is not empty (use --resume to continue it, or --force to replace a run)", root.display()),
        ));
    }
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    write_atomic(&file, exp.to_toml().as_bytes())?;
    Ok(exp.clone())
}

/// Remove a previous run at `root` so a new one can start there; refuses anything that is not a run directory.
pub fn clear(root: &Path) -> Result<()> {
    if !root.exists() {
        return Ok(());
    }
    let several_seeds = root.join(super::seeds::SEEDS_FILE).is_file();
    if !root.join(EXPERIMENT_FILE).is_file() && !several_seeds {
        return Err(Error::invalid(
            "--force",
            format!(
                "{} is not a goodhart run directory (no {EXPERIMENT_FILE}); refusing to delete it",
                root.display()
            ),
        ));
    }
    std::fs::remove_dir_all(root).map_err(|e| Error::io(root, e))
}

/// Which strategies to run; `None` runs them all.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub only: Option<String>,
}

impl RunOptions {
    /// The strategy asked for exists in the experiment.
    pub fn check(&self, exp: &Experiment) -> Result<()> {
        match &self.only {
            Some(only)
                if !exp
                    .tasks
                    .iter()
                    .any(|t| t.strategies.names().contains(only)) =>
            {
                let all: Vec<String> = exp
                    .tasks
                    .iter()
                    .flat_map(|t| t.strategies.names())
                    .collect();
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
                let pool = match rayon::ThreadPoolBuilder::new()
                    .num_threads(per_lane)
                    .build()
                {
                    Ok(p) => p,
                    Err(e) => {
                        errors
                            .lock()
                            .expect("error list")
                            .push(Error::invalid("threads", e.to_string()));
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
type BaseGold = (Split, Vec<Vec<f64>>);

struct TaskRun<'a> {
    dir: &'a RunDir,
    setup: &'a TaskSetup,
    task: &'a dyn Task,
    seed: u64,
    opts: &'a RunOptions,
    progress: &'a dyn Progress,
    device: Device,
    /// [`TaskRun::base_reference`], sampled once and shared by every RL and DPO run.
    base_reference: std::sync::OnceLock<Vec<BaseGold>>,
}

impl TaskRun<'_> {
    fn name(&self) -> &'static str {
        self.task.name()
    }

    fn rng(&self, stage: &str) -> rng::Rng {
        rng::stream(self.seed, &format!("{}/{stage}", self.name()))
    }

    fn path(&self, rel: &str) -> PathBuf {
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
        let labelers = self.setup.labelers(self.task)?;
        let base = self.base_policy()?;
        let mut store = LabelStore::open(&self.path("labels.sqlite"))?;
        self.labels(&mut store, &base, &labelers)?;
        let rm = self.reward_model(&store, &base)?;
        self.base_eval(&base, &labelers)?;
        self.pool(&base, &rm, &labelers)?;
        for cfg in &self.setup.strategies.rl {
            if self.wanted(&cfg.name) {
                self.rl(cfg, &base, &rm, &labelers, &mut store)?;
            }
        }
        for cfg in &self.setup.strategies.dpo {
            if self.wanted(&cfg.name) {
                self.dpo(cfg, &base, &rm, &labelers, &store)?;
            }
        }
        Ok(())
    }

    /// The base policy, with the task's prompt format and frozen blocks applied.
    fn base_policy(&self) -> Result<Model> {
        self.prepared(self.base_policy_weights()?)
    }

    /// Apply the task's chat template and `train_last_blocks` to a model.
    fn prepared(&self, mut model: Model) -> Result<Model> {
        if self.setup.chat_template {
            let chat = model.tokenizer().with_chat_template()?;
            model = model.with_tokenizer(chat)?;
        }
        match self.setup.train_last_blocks {
            Some(k) => model.train_last_blocks(k),
            None => Ok(model),
        }
    }

    fn base_policy_weights(&self) -> Result<Model> {
        let dir = self.path("base");
        if self.done("base")?.is_some() {
            return Ok(checkpoint::load(&dir, &self.device, false)?.0);
        }
        let (model, record) = match &self.setup.base_checkpoint {
            Some(path) => {
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
                save_policy(
                    &model,
                    &dir,
                    &self.setup.task_config(),
                    self.seed,
                    sft.as_ref(),
                    true,
                )?;
                (
                    model,
                    Record::Base {
                        source: path.display().to_string(),
                        sft,
                    },
                )
            }
            None => {
                let (model, report) = train_base_policy(
                    self.setup,
                    self.task,
                    self.seed,
                    &self.device,
                    self.progress,
                )?;
                save_policy(
                    &model,
                    &dir,
                    &self.setup.task_config(),
                    self.seed,
                    Some(&report),
                    true,
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
        self.complete("base", &record)?;
        Ok(model)
    }

    fn labels(&self, store: &mut LabelStore, base: &Model, labelers: &[Labeler]) -> Result<()> {
        if self.done("labels")?.is_some() {
            return Ok(());
        }
        store.retract_batch("base")?;
        let prompts = self.task.prompts(Split::Train);
        let pairs = match self.setup.task_config() {
            // A user's own data: its comparisons are the labels, under the first labeler's name.
            crate::task::TaskConfig::Jsonl(j) => {
                store
                    .import_jsonl(
                        &j.preferences,
                        self.name(),
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
            task: Some(self.name().into()),
            batches: vec!["base".into()],
            ..Default::default()
        })?;
        let answers = labelers
            .iter()
            .map(|l| {
                let mut counts = [0; 4];
                for c in all.iter().filter(|c| c.labeler == l.name()) {
                    counts[match c.answer {
                        Answer::A => 0,
                        Answer::B => 1,
                        Answer::Tie => 2,
                        Answer::CantTell => 3,
                    }] += 1;
                }
                (l.name().to_string(), counts)
            })
            .collect();
        self.complete("labels", &Record::Labels { answers, pairs })
    }

    fn base_comparisons(&self, store: &LabelStore) -> Result<Vec<crate::feedback::Comparison>> {
        store.comparisons(&Filter {
            task: Some(self.name().into()),
            labelers: self.setup.reward_labelers(),
            batches: vec!["base".into()],
        })
    }

    fn reward_model(&self, store: &LabelStore, base: &Model) -> Result<RewardModel> {
        let dir = self.path("reward_model");
        if self.done("reward_model")?.is_some() {
            return RewardModel::load(&dir, &self.device);
        }
        let comparisons = self.base_comparisons(store)?;
        let (rm, report) = train_reward_model(
            base,
            &comparisons,
            self.task,
            &self.setup.reward_model,
            &mut self.rng("reward_model"),
            self.progress,
        )?;
        rm.save(&dir, true)?;
        self.complete("reward_model", &Record::RewardModel { report })?;
        Ok(rm)
    }

    fn base_eval(&self, base: &Model, labelers: &[Labeler]) -> Result<()> {
        if self.done("base_eval")?.is_some() {
            return Ok(());
        }
        let ev = &self.setup.evaluation;
        let mut rng = self.rng("base_eval");
        // Sampled as every curve point is, so the base policy's gold here is the curves' origin.
        let sampling = self.setup.curve_sampling();
        let mut summarise = |split: Split, n: usize| -> Result<PolicySummary> {
            let r = evaluate_policy(
                base,
                self.task,
                labelers,
                split,
                n,
                ev.per_prompt,
                &sampling,
                &mut rng,
            )?;
            Ok(PolicySummary {
                split,
                gold: r.gold,
                labelers: r.labelers,
                fidelity: r.fidelity,
                features: r.features,
                spec: r.spec,
            })
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
        self.complete("base_eval", &Record::BaseEval { heldout, shift })
    }

    fn splits(&self) -> Vec<(Split, usize)> {
        let ev = &self.setup.evaluation;
        let mut s = vec![(Split::Heldout, ev.prompts)];
        if ev.shift_prompts > 0 {
            s.push((Split::Shift, ev.shift_prompts));
        }
        s
    }

    fn pool(&self, base: &Model, rm: &RewardModel, labelers: &[Labeler]) -> Result<()> {
        let s = &self.setup.strategies;
        if self.done("pool")?.is_some() {
            return Ok(());
        }
        let mut rng = self.rng("pool");
        let mut points = vec![];
        let mut notes = vec![];
        let mut stats = BaseStats::default();
        let splits: Vec<Split> = self.splits().into_iter().map(|(s, _)| s).collect();
        self.progress.start("best-of-n pool", splits.len() as u64);
        for split in splits {
            let prompts: Vec<String> = self
                .task
                .prompts(split)
                .into_iter()
                .take(s.pool.prompts)
                .collect();
            let mut pool: Pool = build_pool(
                base,
                self.task,
                labelers,
                Some(rm),
                &Proxy(rm),
                split,
                prompts,
                s.pool.samples,
                self.setup.sampling.max_new_tokens,
                &mut rng,
            )?;
            pool.examples = self.setup.evaluation.examples;
            let uniform =
                vec![vec![1.0 / pool.per_prompt as f64; pool.per_prompt]; pool.n_prompts()];
            points.push(pool.point("base", "n", 1.0, &uniform, vec![0.0; pool.n_prompts()]));
            if split == Split::Heldout {
                stats = self.base_stats(&pool);
            }
            if !s.bon.n.is_empty() {
                points.extend(bon::run(&pool, &s.bon, "bon")?);
                if s.bon.oracles && !pool.labeler_names.is_empty() {
                    // The labeler the reward model learned from, and gold itself, as the selection reward.
                    let li = self.reward_labeler_index(&pool);
                    let by_labeler = pool.scored.iter().map(|x| x.labeler[li]).collect();
                    let by_gold = pool.scored.iter().map(|x| x.gold).collect();
                    let labeler = pool.selecting_on(&pool.labeler_names[li], by_labeler);
                    points.extend(bon::run(&labeler, &s.bon, "bon-labeler")?);
                    let gold = pool.selecting_on("gold", by_gold);
                    points.extend(bon::run(&gold, &s.bon, "bon-gold")?);
                }
            }
            if !s.conditioning.beta.is_empty() {
                points.extend(condition::run(&pool, &s.conditioning, "conditioning")?);
            }
            if !s.quantiliser.q.is_empty() {
                let (q_points, dropped) = quantilize::run(&pool, &s.quantiliser, "quantiliser")?;
                points.extend(q_points);
                notes.extend(
                    dropped
                        .into_iter()
                        .map(|n| format!("{}: {n}", split.name())),
                );
            }
            self.progress.advance(1);
        }
        self.progress.finish();
        self.complete(
            "pool",
            &Record::Pool {
                base: stats,
                points,
                notes,
            },
        )
    }

    /// Where the labeler the reward model learned from sits among the pool's labelers.
    fn reward_labeler_index(&self, pool: &Pool) -> usize {
        let first = &self.setup.reward_labelers()[0];
        pool.labeler_names
            .iter()
            .position(|n| n == first)
            .unwrap_or(0)
    }

    fn base_stats(&self, pool: &Pool) -> BaseStats {
        let first = &self.setup.reward_labelers()[0];
        let li = self.reward_labeler_index(pool);
        BaseStats {
            proxy: mean_std(pool.scored.iter().map(|s| s.proxy.unwrap_or(0.0))),
            labeler: {
                let (m, sd) = mean_std(pool.scored.iter().map(|s| s.labeler[li]));
                (first.clone(), m, sd)
            },
            gold: mean_std(pool.scored.iter().map(|s| s.gold)),
            features: pool
                .feature_names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let (m, sd) = mean_std(pool.scored.iter().map(|s| s.features[i]));
                    (n.to_string(), m, sd)
                })
                .collect(),
        }
    }

    /// Gold of base-policy samples on each evaluation split's prompts, sampled as
    /// checkpoints are (once, from its own stream): what a checkpoint's gold win
    /// rate is measured against.
    fn base_reference(&self, base: &Model) -> Result<&[BaseGold]> {
        if let Some(r) = self.base_reference.get() {
            return Ok(r);
        }
        let r = self.sample_base_reference(base)?;
        Ok(self.base_reference.get_or_init(|| r))
    }

    fn sample_base_reference(&self, base: &Model) -> Result<Vec<BaseGold>> {
        let ev = &self.setup.evaluation;
        self.splits()
            .into_iter()
            .map(|(split, n)| {
                let prompts: Vec<String> = self.task.prompts(split).into_iter().take(n).collect();
                let ids = prompts
                    .iter()
                    .map(|p| base.tokenizer().encode_prompt(p))
                    .collect::<Result<Vec<_>>>()?;
                let cfg = self.setup.curve_sampling();
                let mut rng = self.rng(&format!("base_reference/{}", split.name()));
                let samples =
                    crate::model::sample::sample(base, &ids, ev.per_prompt, &cfg, &mut rng)?;
                let golds = samples
                    .chunks(ev.per_prompt)
                    .map(|c| {
                        c.iter()
                            .map(|s| self.task.gold(&prompts[s.prompt_index], &s.text))
                            .collect::<Result<Vec<f64>>>()
                    })
                    .collect::<Result<Vec<_>>>()?;
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

    fn rl(
        &self,
        cfg: &RlConfig,
        base: &Model,
        rm: &RewardModel,
        labelers: &[Labeler],
        store: &mut LabelStore,
    ) -> Result<()> {
        let stage = format!("rl/{}", cfg.name);
        if self.done(&stage)?.is_some() {
            return Ok(());
        }
        // A resumed run redoes the whole stage: withdraw the labels its first attempt asked for.
        store.retract_batch(&format!("online/{}", cfg.name))?;
        let policy = base.deep_copy(true)?;
        let mut algo: Box<dyn Update> = match cfg.algorithm {
            Algorithm::Ppo => Box::new(Ppo::new(&policy, cfg)?),
            Algorithm::Rloo => Box::new(Rloo::new(&policy, cfg)?),
        };
        let online_proxy = cfg
            .online
            .as_ref()
            .map(|_| rm.trainable_copy())
            .transpose()?;
        let online_proxy = online_proxy.map(|rm| OnlineProxy { rm: Mutex::new(rm) });
        let (proxy, spec, gold) = (Proxy(rm), Spec(self.task), Gold(self.task));
        let reward: &dyn RewardSource = match (&online_proxy, cfg.reward) {
            (Some(o), _) => o,
            (None, RewardChoice::Proxy) => &proxy,
            (None, RewardChoice::Spec) => &spec,
            (None, RewardChoice::Gold) => &gold,
        };
        let prompts = self.task.prompts(Split::Train);
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
                base_gold: self.base_reference(base)?,
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
        let points = hooks.points;
        self.complete(
            &stage,
            &Record::Rl {
                name: cfg.name.clone(),
                logs,
                points,
            },
        )
    }

    fn dpo(
        &self,
        cfg: &crate::optimize::dpo::DpoConfig,
        base: &Model,
        rm: &RewardModel,
        labelers: &[Labeler],
        store: &LabelStore,
    ) -> Result<()> {
        let stage = format!("dpo/{}", cfg.name);
        if self.done(&stage)?.is_some() {
            return Ok(());
        }
        let data = self.base_comparisons(store)?;
        let policy = base.deep_copy(true)?;
        let mut hooks = RunHooks {
            run: self,
            measurer: Measurer {
                strategy: &cfg.name,
                knob: "step",
                base,
                labelers,
                base_gold: self.base_reference(base)?,
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
        let points = hooks.points;
        self.complete(
            &stage,
            &Record::Dpo {
                name: cfg.name.clone(),
                logs,
                points,
            },
        )
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
