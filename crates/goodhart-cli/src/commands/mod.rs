//! One module per subcommand, each a thin layer over the library: parse, call,
//! print. What several share (the experiment and its overrides, a task split,
//! how a statistic is printed) is here.

pub mod eval;
pub mod label;
pub mod labels;
pub mod rm;
pub mod run;
pub mod sample;
pub mod sft;
pub mod task;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use goodhart::experiment::Experiment;
use goodhart::task::Split;

#[derive(Args)]
pub struct ExperimentArgs {
    /// Experiment file (default: the embedded default experiment).
    pub experiment: Option<PathBuf>,
    /// Which of the experiment's tasks (needed when it has several).
    #[arg(long)]
    pub task: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SplitArg {
    Train,
    Heldout,
    Shift,
}

impl From<SplitArg> for Split {
    fn from(s: SplitArg) -> Self {
        match s {
            SplitArg::Train => Split::Train,
            SplitArg::Heldout => Split::Heldout,
            SplitArg::Shift => Split::Shift,
        }
    }
}

/// Settings given on the command line that override the experiment.
pub struct Overrides {
    pub threads: Option<usize>,
    pub seed: Option<u64>,
}

pub fn load_experiment(path: Option<&Path>, o: &Overrides) -> Result<Experiment> {
    let mut exp = match path {
        Some(p) => Experiment::from_file(p)?,
        None => Experiment::embedded_default(),
    };
    if let Some(s) = o.seed {
        exp.seed = s;
    }
    if let Some(t) = o.threads {
        exp.threads = t;
    }
    Ok(exp)
}

pub fn fmt_stat(s: &goodhart::stats::Stat) -> String {
    format!("{:.3} ± {:.3} (n={})", s.mean, s.stderr, s.n)
}
