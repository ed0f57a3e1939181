//! `goodhart labels`: comparisons in and out of a label store as preference JSONL.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use goodhart::feedback::{Filter, LabelStore, OnBadLine};
use goodhart::{fsutil, task};

#[derive(Subcommand)]
pub enum LabelsCommand {
    /// Write comparisons as {"prompt","chosen","rejected"} JSONL (ties marked, can't-tell left out).
    Export {
        #[arg(long)]
        store: PathBuf,
        /// Only this labeler (repeatable).
        #[arg(long)]
        labeler: Vec<String>,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Replace an existing output file.
        #[arg(long)]
        force: bool,
    },
    /// Read {"prompt","chosen","rejected"} JSONL into the store as comparisons, all in one transaction.
    Import {
        #[arg(long)]
        store: PathBuf,
        /// The JSONL file.
        file: PathBuf,
        /// Task the prompts belong to (lines may name their own).
        #[arg(long)]
        task: String,
        /// Labeler name for lines that give none.
        #[arg(long, default_value = "imported")]
        labeler: String,
        /// Skip bad lines (each reported) instead of stopping at the first.
        #[arg(long)]
        skip_bad: bool,
    },
}

pub fn labels_cmd(cmd: LabelsCommand) -> Result<()> {
    match cmd {
        LabelsCommand::Export {
            store,
            labeler,
            out,
            force,
        } => {
            if let Some(path) = &out {
                super::check_output(path, force)?;
            }
            let store = LabelStore::open_existing(&store)?;
            let filter = Filter {
                labelers: labeler,
                ..Default::default()
            };
            let mut buf = vec![];
            let n = store.export_jsonl(&filter, &mut buf)?;
            match out {
                Some(path) => fsutil::write_atomic(&path, &buf)?,
                None => std::io::stdout().write_all(&buf)?,
            }
            eprintln!("exported {n} comparisons");
        }
        LabelsCommand::Import {
            store,
            file,
            task,
            labeler,
            skip_bad,
        } => {
            task::by_name(&task)?;
            let mut store = LabelStore::open(&store)?;
            let mode = if skip_bad {
                OnBadLine::Skip
            } else {
                OnBadLine::Stop
            };
            let report = store.import_jsonl(&file, &task, &labeler, mode, "import")?;
            for (line, problem) in &report.skipped {
                eprintln!("{}:{line}: skipped: {problem}", file.display());
            }
            eprintln!(
                "imported {} comparisons ({} lines skipped)",
                report.imported,
                report.skipped.len()
            );
        }
    }
    Ok(())
}
