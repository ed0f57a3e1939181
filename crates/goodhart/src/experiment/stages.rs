//! The stages of a run, each a plain function from data on disk or in memory
//! to data: the CLI's subcommands and `goodhart run` call the same ones.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;

use super::TaskSetup;
use crate::error::Result;
use crate::model::checkpoint::{self, CheckpointInfo, ModelKind};
use crate::model::Model;
use crate::progress::Progress;
use crate::rng;
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
    let model = Model::init(&setup.model, tokenizer, &mut rng::stream(seed, &format!("{}/init", task.name())), device)?;
    let train = task.demonstrations(Split::Train);
    let heldout = task.demonstrations(Split::Heldout);
    let mut rng = rng::stream(seed, &format!("{}/sft", task.name()));
    let report = train_sft(&model, &train, &heldout, &setup.sft, &mut rng, progress)?;
    Ok((model, report))
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
    info.meta.insert("task".into(), serde_json::to_value(task).expect("task config serialises"));
    info.meta.insert("seed".into(), seed.into());
    if let Some(r) = sft {
        info.meta.insert("sft".into(), serde_json::to_value(r).expect("report serialises"));
    }
    checkpoint::save(model, &info, dir, replace)
}

/// The task a checkpoint was trained on, from its metadata.
pub fn task_of_checkpoint(info: &CheckpointInfo) -> Option<(TaskConfig, u64)> {
    let task = serde_json::from_value(info.meta.get("task")?.clone()).ok()?;
    let seed = info.meta.get("seed")?.as_u64()?;
    Some((task, seed))
}
