//! `goodhart run` and `goodhart optimize` (one run, or one per seed with an
//! aggregate), and `goodhart report`, which rebuilds a run's outputs.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use goodhart::experiment::launch::SeedsRun;
use goodhart::experiment::seeds;
use goodhart::experiment::{self, Experiment, RunDir, RunOptions};
use goodhart::report::end_to_end;

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

/// What `sweep run-one` runs a prepared run with (the library's, under its old name here).
pub(crate) use end_to_end::run as run_prepared;

/// What to do about a run directory that is there already.
const EXISTS_HINT: &str = "(use --resume to continue it, or --force to replace a run)";

/// `run --seeds`: a new several-seed run at the root, its seeds not started yet.
fn new_seeds_run(o: &Overrides, args: &RunArgs, opts: &RunOptions, spec: &str) -> Result<SeedsRun> {
    let list = seeds::parse_seeds(spec)?;
    let exp = experiment_of(args, o)?;
    opts.check(&exp)?;
    let root = run_root(args, &exp);
    if args.force {
        experiment::clear(&root)?;
    }
    SeedsRun::create(&root, &exp, list).map_err(|e| match e {
        goodhart::Error::Invalid { message, .. } => anyhow::anyhow!("{message} {EXISTS_HINT}"),
        e => e.into(),
    })
}

/// One run per seed under the root, then the aggregate.
fn run_seeds(run: &SeedsRun, opts: &RunOptions, start: Instant, bars: &Bars) -> Result<()> {
    let starting = |seed: u64, dir: &Path| bars.println(&format!("seed {seed}: {}", dir.display()));
    let agg = end_to_end::run_seeds(run, opts, bars, &starting)?;
    bars.println(&agg.summary);
    bars.println(&format!(
        "finished {} seeds in {:.0} s; report: {}, each seed's: {}",
        run.seeds.len(),
        start.elapsed().as_secs_f64(),
        run.root.join("report.html").display(),
        seeds::seed_dir(&run.root, run.seeds[0])
            .join("report.html")
            .display()
    ));
    Ok(())
}

pub fn run_cmd(o: &Overrides, args: RunArgs, only: Option<String>, bars: &Bars) -> Result<()> {
    let start = Instant::now();
    let opts = RunOptions { only };
    let resumed = match &args.resume {
        Some(dir) => SeedsRun::open(dir)?,
        None => None,
    };
    if let Some(run) = resumed {
        return run_seeds(&run, &opts, start, bars);
    }
    if let Some(spec) = &args.seeds {
        return run_seeds(&new_seeds_run(o, &args, &opts, spec)?, &opts, start, bars);
    }
    let (root, exp) = match &args.resume {
        Some(dir) => {
            let given = args.experiment.is_some().then(|| experiment_of(&args, o));
            let given = given.transpose()?;
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
                goodhart::Error::Invalid { .. } => anyhow::anyhow!("{e} {EXISTS_HINT}"),
                e => e.into(),
            })?;
            (root.clone(), exp)
        }
    };
    let out = end_to_end::run(&root, &exp, &opts, bars)?;
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
    let summary = match SeedsRun::open(run_dir)? {
        Some(run) => end_to_end::rewrite_seeds(&run)?.summary,
        None => goodhart::report::write_outputs(&RunDir::new(run_dir))?.summary,
    };
    bars.println(&summary);
    bars.println(&format!(
        "report: {}",
        run_dir.join("report.html").display()
    ));
    Ok(())
}
