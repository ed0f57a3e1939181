//! `goodhart run` and `goodhart optimize` (one run, or one per seed with an
//! aggregate), and `goodhart report`, which rebuilds a run's outputs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use goodhart::experiment::seeds::{self, SEEDS_EXPERIMENT};
use goodhart::experiment::Experiment;
use goodhart::experiment::{self, RunDir};
use goodhart::{fsutil, runtime};

use super::{load_experiment, Overrides};
use crate::progress::Bars;

#[derive(Args)]
pub struct RunArgs {
    /// Experiment file (default: the embedded default experiment).
    experiment: Option<PathBuf>,
    /// A shrunken version of the experiment that finishes in under a minute (for smoke tests).
    #[arg(long)]
    quick: bool,
    /// Run directory to create (default: runs/<experiment name>).
    #[arg(long, conflicts_with = "resume")]
    out: Option<PathBuf>,
    /// Continue the run in this directory from its last completed stage.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Replace an existing run directory at --out.
    #[arg(long, conflicts_with = "resume")]
    force: bool,
    /// Run once per seed, each in <out>/seed-N, then aggregate across seeds in
    /// <out>: `0..4` (inclusive: 0 to 4) or a list `0,3,7`. --resume continues such a run.
    #[arg(long, conflicts_with = "resume")]
    seeds: Option<String>,
}

/// The experiment a new run starts from: the file (or the default), shrunk by --quick.
fn experiment_of(args: &RunArgs, o: &Overrides) -> Result<Experiment> {
    let exp = load_experiment(args.experiment.as_deref(), o)?;
    Ok(if args.quick { exp.quick() } else { exp })
}

/// Where a new run goes: --out, or runs/<experiment name>.
fn run_root(args: &RunArgs, exp: &Experiment) -> PathBuf {
    args.out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(super::slug(&exp.name)))
}

/// Run (or continue) every task of the prepared run in `root`, then write its outputs.
pub(crate) fn run_prepared(
    root: &Path,
    exp: &Experiment,
    opts: &experiment::RunOptions,
    bars: &Bars,
) -> Result<goodhart::report::Outputs> {
    let total = if exp.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        exp.threads
    };
    let lanes = exp.tasks.len().clamp(1, total);
    runtime::set_threads(total / lanes)?;
    tracing::info!(run = %root.display(), tasks = exp.tasks.len(), threads = total, seed = exp.seed, "run");
    let dir = RunDir::new(root);
    experiment::run_tasks(&dir, exp, total, opts, bars)?;
    Ok(goodhart::report::write_outputs(&dir)?)
}

/// `run --seeds`: one run per seed under the root, then the aggregate.
fn run_seeds(
    o: &Overrides,
    args: &RunArgs,
    opts: &experiment::RunOptions,
    resumed: Option<Vec<u64>>,
    bars: &Bars,
) -> Result<()> {
    let start = std::time::Instant::now();
    let (root, seed_list, exp) = match (&args.resume, resumed) {
        (Some(dir), Some(list)) => {
            let exp = Experiment::from_file(&dir.join(SEEDS_EXPERIMENT))?;
            (dir.clone(), list, exp)
        }
        _ => {
            let list = seeds::parse_seeds(args.seeds.as_deref().unwrap_or_default())?;
            let exp = experiment_of(args, o)?;
            opts.check(&exp)?;
            let root = run_root(args, &exp);
            if args.force {
                experiment::clear(&root)?;
            }
            if root.exists()
                && std::fs::read_dir(&root)
                    .with_context(|| root.display().to_string())?
                    .next()
                    .is_some()
            {
                bail!(
                    "{} already exists and is not empty (use --resume to continue it, or --force to replace a run)",
                    root.display()
                );
            }
            seeds::write_seeds(&root, &list)?;
            fsutil::write_atomic(&root.join(SEEDS_EXPERIMENT), exp.to_toml().as_bytes())?;
            (root, list, exp)
        }
    };
    for &seed in &seed_list {
        let sub = seeds::seed_dir(&root, seed);
        let mut e = exp.clone();
        e.seed = seed;
        let e = if sub.join(experiment::EXPERIMENT_FILE).is_file() {
            experiment::resume(&sub, Some(&e))?
        } else {
            experiment::start(&sub, &e)?
        };
        bars.println(&format!("seed {seed}: {}", sub.display()));
        run_prepared(&sub, &e, opts, bars)?;
    }
    let agg = goodhart::analysis::seeds::aggregate(&root, &seed_list)?;
    goodhart::report::seeds::write_seed_report(&root, &exp.name, &agg)?;
    bars.println(&agg.summary);
    bars.println(&format!(
        "finished {} seeds in {:.0} s; report: {}, each seed's: {}",
        seed_list.len(),
        start.elapsed().as_secs_f64(),
        root.join("report.html").display(),
        seeds::seed_dir(&root, seed_list[0])
            .join("report.html")
            .display()
    ));
    Ok(())
}

pub fn run_cmd(o: &Overrides, args: RunArgs, only: Option<String>, bars: &Bars) -> Result<()> {
    let start = std::time::Instant::now();
    let opts = experiment::RunOptions { only };
    let resumed = match &args.resume {
        Some(dir) => seeds::read_seeds(dir)?,
        None => None,
    };
    if args.seeds.is_some() || resumed.is_some() {
        return run_seeds(o, &args, &opts, resumed, bars);
    }
    let (root, exp) = match &args.resume {
        Some(dir) => {
            let given = match &args.experiment {
                Some(p) => {
                    let e = load_experiment(Some(p), o)?;
                    Some(if args.quick { e.quick() } else { e })
                }
                None => None,
            };
            (dir.clone(), experiment::resume(dir, given.as_ref())?)
        }
        None => {
            let exp = experiment_of(&args, o)?;
            opts.check(&exp)?;
            let root = run_root(&args, &exp);
            if args.force {
                experiment::clear(&root)?;
            }
            let exp = experiment::start(&root, &exp).map_err(|e| match e {
                goodhart::Error::Invalid { .. } => {
                    anyhow::anyhow!(
                        "{e} (use --resume to continue it, or --force to replace a run)"
                    )
                }
                e => e.into(),
            })?;
            (root.clone(), exp)
        }
    };
    let out = run_prepared(&root, &exp, &opts, bars)?;
    bars.println(&out.summary);
    bars.println(&format!(
        "finished in {:.0} s; report: {}",
        start.elapsed().as_secs_f64(),
        root.join("report.html").display()
    ));
    Ok(())
}

/// Rebuild the outputs of the run in `run_dir` from its records (a several-seed
/// run: each seed's outputs, then the aggregate).
pub fn report_cmd(run_dir: &Path, bars: &Bars) -> Result<()> {
    if let Some(list) = seeds::read_seeds(run_dir)? {
        for &seed in &list {
            goodhart::report::write_outputs(&RunDir::new(&seeds::seed_dir(run_dir, seed)))?;
        }
        let exp = Experiment::from_file(&run_dir.join(SEEDS_EXPERIMENT))?;
        let agg = goodhart::analysis::seeds::aggregate(run_dir, &list)?;
        goodhart::report::seeds::write_seed_report(run_dir, &exp.name, &agg)?;
        bars.println(&agg.summary);
    } else {
        let out = goodhart::report::write_outputs(&RunDir::new(run_dir))?;
        bars.println(&out.summary);
    }
    bars.println(&format!(
        "report: {}",
        run_dir.join("report.html").display()
    ));
    Ok(())
}
