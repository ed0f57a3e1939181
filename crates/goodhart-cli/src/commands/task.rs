//! `goodhart task`: look at the bundled tasks.

use anyhow::Result;
use clap::Subcommand;
use goodhart::task::{self, Split};

use super::SplitArg;

#[derive(Subcommand)]
pub enum TaskCommand {
    /// Show a few prompts, demonstrations and their gold reward.
    Show {
        /// answers or gridworld
        name: String,
        #[arg(long, default_value_t = 3)]
        n: usize,
        #[arg(long, value_enum, default_value = "train")]
        split: SplitArg,
    },
}

pub fn task_show(name: &str, n: usize, split: Split, seed: u64) -> Result<()> {
    let cfg = task::by_name(name)?;
    let task = goodhart::reward::build_task(&cfg, seed)?;
    outln!("task {name} ({} split)", split.name());
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
