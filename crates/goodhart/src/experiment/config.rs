//! Experiment files: TOML into serde structs. Every setting has its default
//! and a one-line doc beside it; an unknown key or a wrong type is an error
//! naming the file, line, column and key.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::strategies::{EvalConfig, StrategiesConfig};
use crate::critic::CriticConfig;
use crate::error::{Error, Result};
pub use crate::feedback::simulate::LabelsConfig;
use crate::feedback::{Labeler, LabelerConfig};
use crate::model::sample::SamplingConfig;
use crate::model::ModelConfig;
use crate::optimize::debate::DebateConfig;
use crate::optimize::red_team::RedTeamConfig;
use crate::optimize::rrm::RrmConfig;
use crate::reward::RewardModelConfig;
use crate::task::{AnswersConfig, GridworldConfig, JsonlConfig, Task, TaskConfig};
use crate::train::SftConfig;

/// The experiment compiled into the binary: what `goodhart run` runs with no argument.
pub const DEFAULT_EXPERIMENT: &str = include_str!("../../../../experiments/default.toml");
pub const DEFAULT_EXPERIMENT_NAME: &str = "experiments/default.toml (embedded)";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Experiment {
    /// Shown in reports.
    pub name: String,
    /// Seeds every random draw of the run.
    pub seed: u64,
    /// Threads for tensor work; 0 means one per core.
    pub threads: usize,
    /// Matrix products with bf16 operands on a GPU (weights, optimiser state and reductions stay f32); refused on the CPU.
    pub bf16: bool,
    /// One `[[task]]` table per task studied.
    #[serde(rename = "task")]
    pub tasks: Vec<TaskSetup>,
}

impl Default for Experiment {
    fn default() -> Self {
        Self {
            name: "experiment".into(),
            seed: 0,
            threads: 0,
            bf16: false,
            tasks: vec![TaskSetup::default()],
        }
    }
}

/// Which bundled task a `[[task]]` table studies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    #[default]
    Answers,
    Gridworld,
    /// A user's own prompts and preference pairs (`[task.jsonl]`).
    Jsonl,
}

/// The kinds of Goodhart's law a task can be set up to show (Manheim and
/// Garrabrant's taxonomy, as the domain notes use it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoodhartKind {
    /// The labeler tracks gold: what goes wrong is the reward model's error, selected for.
    Regressional,
    /// The labeler rewards looks that go with gold on the base policy; the policy can change the looks alone.
    Causal,
    /// Optimisation leaves the region where the proxy and gold were related.
    Extremal,
    /// The policy can act on the labeler's measurement itself.
    Adversarial,
}

impl GoodhartKind {
    pub fn name(self) -> &'static str {
        match self {
            GoodhartKind::Regressional => "regressional",
            GoodhartKind::Causal => "causal",
            GoodhartKind::Extremal => "extremal",
            GoodhartKind::Adversarial => "adversarial",
        }
    }

    /// What this kind predicts, in one sentence for readers of a report.
    pub fn expectation(self) -> &'static str {
        match self {
            GoodhartKind::Regressional => "the labeler's comparisons track gold, so any loss of gold comes from the reward model's errors: expect gold to rise, then fall, as the proxy is pushed",
            GoodhartKind::Causal => "the labeler judges what it cannot check by looks the policy can change without changing gold: expect the labeler's score to rise while gold falls",
            GoodhartKind::Extremal => "optimisation pushes the policy where the proxy and gold were never compared: expect gold to part from the proxy at large KL",
            GoodhartKind::Adversarial => "the policy can act on the labeler's evidence itself: expect the exploit (gridworld: the button that freezes the camera) to rise under optimisation of the proxy, and not under the formal goal",
        }
    }
}

/// Everything about one task: its generator, the policy, and how it is trained and judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaskSetup {
    /// The bundled task: "answers" or "gridworld".
    pub kind: TaskKind,
    /// The task's name: its folder in the run directory, its name in reports and
    /// for `--task` (default: its kind). Two tasks of one kind need names.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The kind of Goodhart this task is set up to show ("regressional",
    /// "causal", "extremal" or "adversarial"), named in the summary and the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodhart: Option<GoodhartKind>,
    /// Settings of the answers task (read when kind = "answers").
    pub answers: AnswersConfig,
    /// Settings of the gridworld task (read when kind = "gridworld").
    pub gridworld: GridworldConfig,
    /// Files of the jsonl task (read when kind = "jsonl").
    pub jsonl: JsonlConfig,
    /// Start from this saved policy (a `goodhart sft` output or a Hugging Face directory) instead of training one; `model` is then unused, and `sft` too unless `fine_tune_base`.
    pub base_checkpoint: Option<std::path::PathBuf>,
    /// Fine-tune `base_checkpoint` by SFT (`[task.sft]`) on the task's demonstrations
    /// before using it (off: use it as it is).
    pub fine_tune_base: bool,
    /// Train only the last this-many transformer blocks (plus the final norm and
    /// scalar head) in every stage after the base policy, and while `fine_tune_base`
    /// tunes it; the rest stay frozen and are shared with the reference policy.
    /// Unset: train everything.
    pub train_last_blocks: Option<usize>,
    /// Write prompts as a user turn of the base model's chat template (a Hugging
    /// Face model whose tokenizer_config.json has one); off: plain text after BOS.
    pub chat_template: bool,
    /// Shape of the policy (and reward-model) network.
    pub model: ModelConfig,
    /// Supervised fine-tuning of the base policy on the task's demonstrations.
    pub sft: SftConfig,
    /// How completions are sampled for labels and evaluation.
    pub sampling: SamplingConfig,
    /// The simulated labelers (`[[task.labelers]]`), each with its own name in the label store.
    pub labelers: Vec<LabelerConfig>,
    /// How many comparisons to collect, and how.
    pub labels: LabelsConfig,
    /// The reward model learned from the comparisons.
    pub reward_model: RewardModelConfig,
    /// A learned critic that points labelers at the step it believes wrong
    /// (labelers use it with `assistant = { learned_round = N }`); answers only.
    pub critic: CriticConfig,
    /// Rounds of adversarial testing and training of the reward model (`[task.red_team]`).
    pub red_team: RedTeamConfig,
    /// Rounds of recursive reward modelling on optimised policies (`[task.rrm]`).
    pub rrm: RrmConfig,
    /// A judge alone, with a critic, and in debates with and without a defender, against gold (`[task.debate]`).
    pub debate: DebateConfig,
    /// How every policy is measured.
    pub evaluation: EvalConfig,
    /// What is optimised, and how far.
    pub strategies: StrategiesConfig,
    /// What trained policies pursue on the shifted split (`[task.seeking]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeking: Option<SeekingConfig>,
}

impl Default for TaskSetup {
    fn default() -> Self {
        Self {
            kind: TaskKind::default(),
            name: None,
            goodhart: None,
            answers: AnswersConfig::default(),
            gridworld: GridworldConfig::default(),
            jsonl: JsonlConfig::default(),
            model: ModelConfig::default(),
            sft: SftConfig::default(),
            sampling: SamplingConfig::default(),
            labelers: vec![LabelerConfig::default()],
            labels: LabelsConfig::default(),
            reward_model: RewardModelConfig::default(),
            critic: CriticConfig::default(),
            red_team: RedTeamConfig::default(),
            rrm: RrmConfig::default(),
            debate: DebateConfig::default(),
            base_checkpoint: None,
            fine_tune_base: false,
            train_last_blocks: None,
            chat_template: false,
            evaluation: EvalConfig::default(),
            strategies: StrategiesConfig::default(),
            seeking: None,
        }
    }
}

impl TaskSetup {
    /// Every strategy's name on this task, in the order the run measures them.
    pub fn strategy_names(&self) -> Vec<String> {
        self.strategies.names(self.kind == TaskKind::Gridworld)
    }

    /// Whose comparisons the reward model learns: its `labelers`, else the first labeler.
    pub fn reward_labelers(&self) -> Vec<String> {
        if self.reward_model.labelers.is_empty() {
            vec![self.labelers[0].name.clone()]
        } else {
            self.reward_model.labelers.clone()
        }
    }

    /// The labelers bound to a built task (checks their bias names against it).
    pub fn labelers<'t>(&self, task: &'t dyn Task) -> Result<Vec<Labeler<'t>>> {
        self.labelers
            .iter()
            .map(|c| Labeler::new(c.clone(), task))
            .collect()
    }

    /// The task's name: `name`, or its kind.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.kind_name())
    }

    /// The bundled task's name ("answers", "gridworld", "jsonl").
    pub fn kind_name(&self) -> &'static str {
        self.task_config().name()
    }

    /// The task's kind and settings as one value (recorded in checkpoints).
    pub fn task_config(&self) -> TaskConfig {
        match self.kind {
            TaskKind::Answers => TaskConfig::Answers(self.answers.clone()),
            TaskKind::Gridworld => TaskConfig::Gridworld(self.gridworld.clone()),
            TaskKind::Jsonl => TaskConfig::Jsonl(self.jsonl.clone()),
        }
    }
}

/// The most `[[task]]` tables an experiment may have.
pub const MAX_TASKS: usize = 256;

impl Experiment {
    /// Parse an experiment; `source_name` (a path) is used in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Self> {
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| toml_error(source_name, text, &e, None))?;
        let mut exp: Experiment = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            toml_error(source_name, text, e.inner(), Some(path))
        })?;
        exp.validate().map_err(|e| {
            let at = match &e {
                Error::Invalid { field, .. } => locate(text, field),
                _ => None,
            };
            Error::Config {
                source_name: match at {
                    Some((line, col)) => format!("{source_name}:{line}:{col}"),
                    None => source_name.to_string(),
                },
                message: e.to_string(),
            }
        })?;
        // Every default filled in, so the experiment a run stores reads back equal.
        for t in &mut exp.tasks {
            for r in &mut t.strategies.rl {
                *r = std::mem::take(r).resolved();
            }
        }
        Ok(exp)
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The default experiment compiled into the binary.
    pub fn embedded_default() -> Self {
        Self::parse(DEFAULT_EXPERIMENT, DEFAULT_EXPERIMENT_NAME)
            .expect("the embedded experiment is valid")
    }

    /// The experiment as TOML, every default spelled out.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("experiments serialise")
    }

    /// The same experiment shrunk to run in seconds (`goodhart run --quick`):
    /// every stage and strategy still runs, on a tiny network with small
    /// budgets and sweeps. For smoke tests, not for conclusions.
    pub fn quick(&self) -> Experiment {
        let mut e = self.clone();
        e.name = format!("{} (quick)", e.name);
        for t in &mut e.tasks {
            t.model = ModelConfig {
                n_layer: 1,
                d_model: 32,
                n_head: 2,
                d_ff: 0,
                ..t.model.clone()
            };
            t.sft.steps = t.sft.steps.min(60);
            t.sft.eval_every = t.sft.steps;
            t.sft.batch_size = t.sft.batch_size.min(32);
            t.sft.optim.warmup_steps = t.sft.optim.warmup_steps.min(6);
            t.labels.pairs = t.labels.pairs.min(96);
            t.reward_model.steps = t.reward_model.steps.min(30);
            t.critic.checks = t.critic.checks.min(96);
            t.critic.steps = t.critic.steps.min(20);
            t.critic.heldout = t.critic.heldout.min(32);
            t.debate.prompts = t.debate.prompts.min(32);
            t.debate.shift_prompts = t.debate.shift_prompts.min(8);
            // One member, unless a run penalises the ensemble's spread (which needs two).
            let penalised = t.strategies.rl.iter().any(|r| r.uncertainty_penalty > 0.0);
            t.reward_model.ensemble = if penalised { 2 } else { 1 };
            t.evaluation.prompts = t.evaluation.prompts.min(8);
            t.evaluation.shift_prompts = t.evaluation.shift_prompts.min(8);
            t.evaluation.per_prompt = t.evaluation.per_prompt.min(2);
            let s = &mut t.strategies;
            s.pool.prompts = s.pool.prompts.min(8);
            s.pool.samples = s.pool.samples.min(8);
            s.bon.n.retain(|&n| n <= 8);
            // Keep the quantiles a pool of 8 can stand for (q = 0.1 would keep
            // one sample: best-of-8, dropped with a warning at every run).
            let samples = s.pool.samples;
            s.quantiliser
                .q
                .retain(|&q| crate::optimize::quantilize::kept(q, samples).is_ok());
            // A pool of 8 can never reach an effective sample size of 10: scale the bar with it.
            s.conditioning.min_ess = s.conditioning.min_ess.min(s.pool.samples as f64 / 4.0);
            for r in &mut s.rl {
                r.iterations = r.iterations.min(3);
                r.prompts_per_iteration = r.prompts_per_iteration.min(8);
                r.checkpoint_every = r.checkpoint_every.min(r.iterations);
                if r.reward == crate::optimize::rl::RewardChoice::SpecWorldModel {
                    let mut w = r.world_model.clone().unwrap_or_default();
                    w.trajectories = w.trajectories.min(64);
                    w.sft.steps = w.sft.steps.min(20);
                    w.sft.eval_every = w.sft.steps;
                    w.sft.optim.warmup_steps = w.sft.optim.warmup_steps.min(2);
                    r.world_model = Some(w);
                }
                if let Some(o) = &mut r.online {
                    o.every = 1;
                    o.pairs = o.pairs.min(16);
                    o.rm_steps = o.rm_steps.min(5);
                    o.human_labels = o.human_labels.min(o.pairs);
                }
            }
            for d in &mut s.dpo {
                d.epochs = 1;
                d.checkpoint_every = d.checkpoint_every.min(3);
            }
        }
        e
    }

    pub fn validate(&self) -> Result<()> {
        // Shown in terminals and reports: an escape sequence or a newline would act there.
        if let Some(c) = self.name.chars().find(|c| c.is_control()) {
            return Err(Error::invalid(
                "name",
                format!("{:?} holds the control character {c:?}", self.name),
            ));
        }
        if self.threads > crate::runtime::MAX_THREADS {
            return Err(Error::invalid(
                "threads",
                format!(
                    "{} is more than {}",
                    self.threads,
                    crate::runtime::MAX_THREADS
                ),
            ));
        }
        if self.tasks.is_empty() {
            return Err(Error::invalid(
                "task",
                "an experiment needs at least one [[task]]",
            ));
        }
        if self.tasks.len() > MAX_TASKS {
            return Err(Error::invalid(
                "task",
                format!(
                    "{} tasks; an experiment has at most {MAX_TASKS}",
                    self.tasks.len()
                ),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.tasks.iter().enumerate() {
            t.validate(&format!("task[{i}]"))?;
            if !names.insert(t.name()) {
                let field = if t.name.is_some() { "name" } else { "kind" };
                return Err(Error::invalid(
                    format!("task[{i}].{field}"),
                    format!(
                        "task `{}` is listed twice (two tasks of one kind need a `name` each)",
                        t.name()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The task a checkpoint of `config`'s kind belongs to: the one named, or the
    /// only one of that kind.
    pub fn task_of_kind(&self, name: Option<&str>, config: &TaskConfig) -> Result<&TaskSetup> {
        if name.is_some() {
            return self.task(name);
        }
        let same: Vec<&TaskSetup> = self
            .tasks
            .iter()
            .filter(|t| t.kind_name() == config.name())
            .collect();
        match same.as_slice() {
            [one] => Ok(one),
            [] => self.task(Some(config.name())),
            several => Err(Error::invalid(
                "task",
                format!(
                    "the experiment has several {} tasks; name one with --task ({})",
                    config.name(),
                    several
                        .iter()
                        .map(|t| t.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// The `[[task]]` of the given name, or the only one.
    pub fn task(&self, name: Option<&str>) -> Result<&TaskSetup> {
        match name {
            Some(n) => self.tasks.iter().find(|t| t.name() == n).ok_or_else(|| {
                let names: Vec<&str> = self.tasks.iter().map(|t| t.name()).collect();
                Error::invalid(
                    "task",
                    format!(
                        "this experiment has no task {n:?} (it has: {})",
                        names.join(", ")
                    ),
                )
            }),
            None if self.tasks.len() == 1 => Ok(&self.tasks[0]),
            None => {
                let names: Vec<&str> = self.tasks.iter().map(|t| t.name()).collect();
                Err(Error::invalid(
                    "task",
                    format!("it has several; name one of them ({})", names.join(", ")),
                ))
            }
        }
    }
}

/// Line and column (from 1) of byte `pos` of `text`.
fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Where in `text` a setting is written: `field` is its path as validation
/// names it (`task[1].labelers[0].biases.shows_working`); the place is that
/// of the deepest part of the path the text spells out (a key left to its
/// default has no line of its own; the table it belongs in does).
fn locate(text: &str, field: &str) -> Option<(usize, usize)> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let mut at = None;
    for part in field.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((name, i)) => (name, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some((key, mut value)) = table.get_key_value(name) else {
            break;
        };
        at = Some(key.span().start);
        if let Some(i) = index {
            let Some(item) = value.get_ref().as_array().and_then(|a| a.get(i)) else {
                break;
            };
            at = Some(item.span().start);
            value = item;
        }
        let Some(inner) = value.get_ref().as_table() else {
            break;
        };
        table = inner;
    }
    at.map(|pos| line_col(text, pos))
}

/// `file:line:col: key: message` from a TOML or type error.
fn toml_error(source_name: &str, text: &str, e: &toml::de::Error, path: Option<String>) -> Error {
    let location = e
        .span()
        .map(|span| {
            let (line, col) = line_col(text, span.start);
            format!("{line}:{col}: ")
        })
        .unwrap_or_default();
    let key = match path.as_deref() {
        Some(p) if p != "." && !p.is_empty() => format!("`{p}`: "),
        _ => String::new(),
    };
    Error::Config {
        source_name: format!("{source_name}:{location}")
            .trim_end_matches(": ")
            .trim_end_matches(':')
            .to_string(),
        message: format!("{key}{}", e.message().trim()),
    }
}

mod seeking;
mod validate;

pub use seeking::{SeekingConfig, SeekingPair};

#[cfg(test)]
mod tests;
