//! One module per subcommand, each a thin layer over the library: parse, call,
//! print. What several share (the experiment and its overrides, a task split,
//! how a statistic is printed) is here.

/// `println!` that hands back an error instead of panicking when standard
/// output is gone (`goodhart task show gridworld | head -1`); `main` exits
/// quietly on a broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}

pub mod eval;
pub mod label;
pub mod labels;
pub mod rm;
pub mod run;
pub mod sample;
pub mod sft;
pub mod sweep;
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

/// `labelers` of a checkpoint's task, each assisted by a learned critic given
/// its round's critic (`critic-N/`) from `critics` or, by default, the
/// checkpoint's folder (where a run keeps them).
pub fn with_critics<'t>(
    labelers: Vec<goodhart::feedback::Labeler<'t>>,
    checkpoint: &Path,
    critics: Option<&Path>,
) -> Result<Vec<goodhart::feedback::Labeler<'t>>> {
    let dir = critics
        .or_else(|| checkpoint.parent())
        .unwrap_or(Path::new("."));
    Ok(goodhart::experiment::with_critics_from(
        labelers,
        dir,
        &goodhart::runtime::device(),
    )?)
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

/// Where a command writes a file: refused when something is there already,
/// unless `force`; never a directory.
pub fn check_output(path: &Path, force: bool) -> Result<()> {
    if path.is_dir() {
        anyhow::bail!("{} is a directory, not a file to write", path.display());
    }
    if path.exists() && !force {
        anyhow::bail!(
            "{} already exists (use --force to replace it)",
            path.display()
        );
    }
    Ok(())
}

/// Where a command writes a checkpoint directory: refused when it exists,
/// unless `force`, and never a plain file (which `--force` would not replace).
pub fn check_output_dir(path: &Path, force: bool) -> Result<()> {
    if path.exists() && !path.is_dir() {
        anyhow::bail!(
            "{} is a file, not a checkpoint directory; choose another --out",
            path.display()
        );
    }
    if path.exists() && !force {
        anyhow::bail!(
            "{} already exists (use --force to replace it)",
            path.display()
        );
    }
    Ok(())
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

/// A name as a directory or job name: ASCII letters, digits and '-' (others become '-', none at the ends).
pub fn slug(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

pub fn fmt_stat(s: &goodhart::stats::Stat) -> String {
    format!("{:.3} ± {:.3} (n={})", s.mean, s.stderr, s.n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_safe_directory_names() {
        assert_eq!(super::slug("kl sweep (quick)"), "kl-sweep--quick");
    }
}
