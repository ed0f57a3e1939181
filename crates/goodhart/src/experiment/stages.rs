//! The stages of a run, each a plain function from data on disk or in memory
//! to data: the CLI's subcommands and `goodhart run` call the same ones.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;

use super::{Experiment, TaskSetup};
use crate::error::{Error, Result};
use crate::feedback::Labeler;
use crate::measure::{labeler_fidelity, PolicySummary};
use crate::model::checkpoint::{self, CheckpointInfo, ModelKind};
use crate::model::Model;
use crate::progress::Progress;
use crate::rng;
use crate::score::{evaluate, Judges, Scored};
use crate::stats::Stat;
use crate::task::{Split, Task, TaskConfig};
use crate::tokenize::CharTokenizer;
use crate::train::{train_sft, SftReport};

/// Train a base policy from scratch on the task's demonstrations.
pub fn train_base_policy(
    setup: &TaskSetup,
    task: &dyn Task,
    seed: u64,
    device: &Device,
    progress: &dyn Progress,
) -> Result<(Model, SftReport)> {
    let tokenizer = Arc::new(CharTokenizer::ascii());
    let model = Model::init(
        &setup.model,
        tokenizer,
        &mut rng::stream(seed, &format!("{}/init", task.name())),
        device,
    )?;
    let model = in_environment(model, task)?;
    let report = fine_tune_base_policy(&model, setup, task, seed, progress)?;
    Ok((model, report))
}

/// `model` acting in the task's environment, where the task has one that
/// writes into completions (see `model::Environment`); otherwise `model` as it is.
pub fn in_environment(model: Model, task: &dyn Task) -> Result<Model> {
    match task.environment(model.tokenizer_arc())? {
        Some(env) => model.with_environment(env),
        None => Ok(model),
    }
}

/// Supervised fine-tuning of `model` (fresh or pretrained) on the task's demonstrations.
pub fn fine_tune_base_policy(
    model: &Model,
    setup: &TaskSetup,
    task: &dyn Task,
    seed: u64,
    progress: &dyn Progress,
) -> Result<SftReport> {
    let train = task.demonstrations(Split::Train);
    let heldout = task.demonstrations(Split::Heldout);
    let mut rng = rng::stream(seed, &format!("{}/sft", task.name()));
    train_sft(model, &train, &heldout, &setup.sft, &mut rng, progress)
}

/// Save a base policy with what made it (task, seed, SFT curve) in its metadata.
pub fn save_policy(
    model: &Model,
    dir: &Path,
    task: &TaskConfig,
    seed: u64,
    sft: Option<&SftReport>,
    replace: bool,
) -> Result<()> {
    let mut info = CheckpointInfo::new(model, ModelKind::Policy);
    info.meta.insert(
        "task".into(),
        serde_json::to_value(task).expect("task config serialises"),
    );
    info.meta.insert("seed".into(), seed.into());
    if let Some(r) = sft {
        info.meta.insert(
            "sft".into(),
            serde_json::to_value(r).expect("report serialises"),
        );
    }
    checkpoint::save(model, &info, dir, replace)
}

/// The task a checkpoint was trained on, from its metadata.
pub fn task_of_checkpoint(info: &CheckpointInfo) -> Option<(TaskConfig, u64)> {
    let task = serde_json::from_value(info.meta.get("task")?.clone()).ok()?;
    let seed = info.meta.get("seed")?.as_u64()?;
    Some((task, seed))
}

/// A policy checkpoint opened with the task it is for.
pub struct OpenedPolicy<'e> {
    pub model: Model,
    pub info: CheckpointInfo,
    /// The experiment's settings for that task (labelers, sampling, labels, reward model).
    pub setup: &'e TaskSetup,
    pub task: Box<dyn Task>,
    /// The seed the task's prompts come from: the checkpoint's, when it records one.
    pub task_seed: u64,
}

/// Open the policy checkpoint at `path` with its task: the one it was trained
/// on, or for a checkpoint that records none (a Hugging Face model) the
/// experiment's task named `task` (or its only one). Where the experiment has
/// several tasks of the checkpoint's kind, `task` names one, or the checkpoint's
/// path does (a run directory keeps each task's checkpoints in its folder).
/// Set the thread count first.
pub fn open_policy<'e>(
    path: &Path,
    exp: &'e Experiment,
    task: Option<&str>,
    device: &Device,
) -> Result<OpenedPolicy<'e>> {
    let (model, info) = checkpoint::load(path, device, false)?;
    let (task_config, task_seed) = match task_of_checkpoint(&info) {
        Some(t) => t,
        None => {
            let setup = exp.task(task).map_err(|e| {
                Error::invalid(
                    "task",
                    format!(
                        "{} records no task, so the experiment's must be named: {e}",
                        path.display()
                    ),
                )
            })?;
            (setup.task_config(), exp.seed)
        }
    };
    // Several tasks of this kind: a checkpoint inside a run directory is in its task's folder.
    let lanes: Vec<&str> = exp
        .tasks
        .iter()
        .filter(|t| t.kind_name() == task_config.name())
        .map(|t| t.name())
        .collect();
    let from_path = path.components().rev().find_map(|c| {
        lanes
            .iter()
            .find(|l| c.as_os_str() == std::ffi::OsStr::new(l))
            .copied()
    });
    let named = task.or(if lanes.len() > 1 { from_path } else { None });
    let setup = exp.task_of_kind(named, &task_config)?;
    let task = crate::reward::build_task(&task_config, task_seed)?;
    let model = in_environment(model, task.as_ref())?;
    Ok(OpenedPolicy {
        model,
        info,
        setup,
        task,
        task_seed,
    })
}

/// A policy measured on one split, with every completion scored.
#[derive(Clone, Debug, serde::Serialize)]
pub struct PolicyReport {
    #[serde(flatten)]
    pub summary: PolicySummary,
    pub n_prompts: usize,
    pub per_prompt: usize,
    pub scored: Vec<Scored>,
}

/// Sample `per_prompt` completions for the first `n_prompts` prompts of `split`
/// (as every policy is measured: see [`crate::score::measurement_sampling`]) and measure them.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_policy(
    model: &Model,
    task: &dyn Task,
    labelers: &[Labeler],
    split: Split,
    n_prompts: usize,
    per_prompt: usize,
    max_new_tokens: usize,
    rng: &mut crate::rng::Rng,
) -> Result<PolicyReport> {
    let prompts: Vec<String> = task.prompts(split).into_iter().take(n_prompts).collect();
    let judges = Judges {
        task,
        labelers,
        proxy: None,
    };
    let scored = evaluate(model, &judges, &prompts, per_prompt, max_new_tokens, rng)?.scored;
    let column = |f: &dyn Fn(&Scored) -> f64| Stat::of(&scored.iter().map(f).collect::<Vec<_>>());
    let spec_values: Vec<f64> = scored.iter().filter_map(|s| s.spec).collect();
    let correct = task.feature_names().iter().position(|n| *n == "correct");
    let summary = PolicySummary {
        split,
        gold: column(&|s| s.gold),
        labelers: labelers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.name().to_string(), column(&|s| s.labeler[i])))
            .collect(),
        fidelity: labelers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    l.name().to_string(),
                    labeler_fidelity(&scored, i, per_prompt, correct),
                )
            })
            .collect(),
        features: task
            .feature_names()
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), column(&|s| s.features[i])))
            .collect(),
        spec: (!spec_values.is_empty()).then(|| Stat::of(&spec_values)),
    };
    Ok(PolicyReport {
        summary,
        n_prompts: prompts.len(),
        per_prompt,
        scored,
    })
}
