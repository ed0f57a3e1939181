//! `goodhart task`: look at the bundled tasks.

use anyhow::Result;
use clap::Subcommand;
use goodhart::task::{self, Split};

use super::SplitArg;

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Show a few prompts, demonstrations and their gold reward, as an
    /// experiment sets the task up (its settings, not only the task's kind).
    Show {
        /// A task of the experiment (e.g. answers, answers-careful, gridworld),
        /// or a bundled task's kind with its code defaults.
        name: String,
        /// Experiment file (default: the embedded default experiment).
        #[arg(long)]
        experiment: Option<std::path::PathBuf>,
        #[arg(long, default_value_t = 3)]
        n: usize,
        #[arg(long, value_enum, default_value = "train")]
        split: SplitArg,
    },
}

pub fn task_show(
    name: &str,
    exp: &goodhart::experiment::Experiment,
    n: usize,
    split: Split,
) -> Result<()> {
    let (cfg, from) = match exp.tasks.iter().find(|t| t.name() == name) {
        Some(t) => (
            t.task_config(),
            format!("as experiment {:?} sets it up", exp.name),
        ),
        None => (
            task::by_name(name).map_err(|e| {
                let names: Vec<&str> = exp.tasks.iter().map(|t| t.name()).collect();
                anyhow::anyhow!("{e} (experiment {:?} has: {})", exp.name, names.join(", "))
            })?,
            "a bundled kind with its code defaults".to_string(),
        ),
    };
    let task = goodhart::reward::build_task(&cfg, exp.seed)?;
    outln!(
        "task {name} ({} split; {from}, seed {})",
        split.name(),
        exp.seed
    );
    outln!("labeler sees: {}", task.look_names().join(", "));
    outln!("measured features: {}\n", task.feature_names().join(", "));
    for ex in task.demonstrations(split).iter().take(n) {
        outln!("--- prompt (difficulty {}):", task.difficulty(&ex.prompt)?);
        outln!("{}", ex.prompt);
        outln!("--- demonstration: {}", ex.completion);
        outln!("--- gold: {}", task.gold(&ex.prompt, &ex.completion)?);
        if let Some(s) = task.spec_satisfied(&ex.prompt, &ex.completion) {
            outln!("--- formal goal satisfied: {}", s == 1.0);
        }
        outln!();
    }
    Ok(())
}
