//! `goodhart sweep`: plan a grid of runs into a directory, run it here (a
//! pool of `goodhart sweep run-one` processes) or on a Slurm cluster (one job
//! array, one run per task), and aggregate it (`sweep report`). Scheduling is
//! the pool's or Slurm's; this module only says what to run.

mod slurm;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use goodhart::experiment::sweep::{self, Plan, RunState, SweepConfig};
use goodhart::experiment::{self, RunOptions};

use crate::progress::Bars;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    command: Option<SweepCommand>,
    #[command(flatten)]
    start: StartArgs,
}

#[derive(Args)]
struct StartArgs {
    /// The sweep file (TOML: experiments, seeds, grid of dotted keys, threads, [slurm]).
    #[arg(required = true)]
    sweep: Option<PathBuf>,
    /// Sweep directory (default: sweeps/<sweep name>); an existing one holding
    /// the same sweep is continued, finished runs are never redone.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Where the runs go: processes on this machine, or a Slurm job array.
    #[arg(long, value_enum, default_value_t = Backend::Local)]
    backend: Backend,
    /// Local backend: runs at once (default: the sweep's `parallel`, or the cores over `threads`).
    #[arg(long)]
    parallel: Option<usize>,
    /// Replace an existing sweep directory at --out.
    #[arg(long)]
    force: bool,
    /// Slurm backend: wait for the array to finish, then write the report.
    #[arg(long)]
    wait: bool,
    /// Shrink every run as `goodhart run --quick` does (a smoke test of the sweep; its numbers mean nothing).
    #[arg(long)]
    quick: bool,
    /// Replace the sweep's seeds: `0..4` (inclusive) or `0,3,7`.
    #[arg(long)]
    seeds: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Backend {
    Local,
    Slurm,
}

#[derive(Subcommand)]
enum SweepCommand {
    /// Each run's state (finished, stages done, queued or running on Slurm).
    Status {
        /// The sweep directory.
        dir: PathBuf,
    },
    /// Aggregate the finished runs: sweep.csv, summary.txt, report.html (and each point's).
    Report {
        /// The sweep directory.
        dir: PathBuf,
    },
    /// Run (or continue) one run of a sweep: what each local process and Slurm task executes.
    RunOne {
        /// The sweep directory.
        dir: PathBuf,
        /// The run's index (point x seeds + seed's position), as in `sweep status`.
        index: usize,
    },
}

/// `device`: the `--device` given, handed on to each local run's process.
pub fn sweep_cmd(args: SweepArgs, device: Option<&str>, bars: &Bars) -> Result<()> {
    match args.command {
        Some(SweepCommand::Status { dir }) => status(&dir),
        Some(SweepCommand::Report { dir }) => report(&dir, bars).map(|_| ()),
        Some(SweepCommand::RunOne { dir, index }) => run_one(&dir, index, bars),
        None => start(args.start, device, bars),
    }
}

fn start(args: StartArgs, device: Option<&str>, bars: &Bars) -> Result<()> {
    let began = Instant::now();
    let file = args.sweep.expect("clap requires the sweep file");
    let mut cfg = SweepConfig::from_file(&file)?;
    if args.quick {
        cfg.quick = true;
        cfg.name = format!("{} (quick)", cfg.name);
    }
    if let Some(seeds) = args.seeds {
        cfg.seeds = sweep::Seeds::Spec(seeds);
        cfg.seed_list()?;
    }
    let dir = args
        .out
        .unwrap_or_else(|| PathBuf::from("sweeps").join(super::slug(&cfg.name)));
    if args.force {
        sweep::clear(&dir)?;
    }
    let base = file.parent().unwrap_or(Path::new("."));
    let plan = sweep::create(&dir, &cfg, base)?;
    let todo = unfinished(&dir, &plan)?;
    bars.println(&format!(
        "sweep {}: {} points x {} seeds = {} runs in {} ({} to run)",
        plan.name,
        plan.points.len(),
        plan.seeds.len(),
        plan.runs(),
        dir.display(),
        todo.len()
    ));
    match args.backend {
        Backend::Local => {
            let parallel = args.parallel.unwrap_or(plan.parallel);
            let failed = run_local(&dir, &plan, &todo, parallel, device, bars)?;
            report(&dir, bars)?;
            bars.println(&format!(
                "finished in {:.0} s; report: {}",
                began.elapsed().as_secs_f64(),
                dir.join("report.html").display()
            ));
            failures(&dir, &failed)
        }
        Backend::Slurm => {
            if todo.is_empty() {
                report(&dir, bars)?;
                return Ok(());
            }
            let job = slurm::submit(&dir, &plan, &todo)?;
            bars.println(&format!(
                "submitted Slurm job {job}: {} array tasks, logs in {}",
                todo.len(),
                dir.join("logs").display()
            ));
            if !args.wait {
                bars.println(&format!(
                    "follow it with `goodhart sweep status {0}`; aggregate with `goodhart sweep report {0}`",
                    dir.display()
                ));
                return Ok(());
            }
            slurm::wait(&job)?;
            report(&dir, bars)?;
            let failed: Vec<usize> = unfinished(&dir, &plan)?;
            bars.println(&format!(
                "finished in {:.0} s; report: {}",
                began.elapsed().as_secs_f64(),
                dir.join("report.html").display()
            ));
            failures(&dir, &failed)
        }
    }
}

/// The runs not finished yet, in order.
fn unfinished(dir: &Path, plan: &Plan) -> Result<Vec<usize>> {
    let mut todo = vec![];
    for i in 0..plan.runs() {
        if sweep::run_state(dir, &plan.run(i)?)? != RunState::Finished {
            todo.push(i);
        }
    }
    Ok(todo)
}

fn failures(dir: &Path, failed: &[usize]) -> Result<()> {
    if failed.is_empty() {
        return Ok(());
    }
    let logs: Vec<String> = failed
        .iter()
        .map(|i| log_path(dir, *i).display().to_string())
        .collect();
    bail!(
        "{} runs did not finish (see {}); run the sweep again to continue them",
        failed.len(),
        logs.join(", ")
    )
}

/// Where a run's output goes (both backends).
fn log_path(dir: &Path, index: usize) -> PathBuf {
    dir.join("logs").join(format!("run-{index}.log"))
}

/// The local backend: a pool of `parallel` processes, each running one
/// `goodhart sweep run-one` at a time. Returns the runs that failed.
fn run_local(
    dir: &Path,
    plan: &Plan,
    todo: &[usize],
    parallel: usize,
    device: Option<&str>,
    bars: &Bars,
) -> Result<Vec<usize>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slots = if parallel == 0 {
        (cores / plan.threads).max(1)
    } else {
        parallel
    }
    .min(todo.len().max(1));
    let exe = std::env::current_exe().context("finding this program to run each run")?;
    std::fs::create_dir_all(dir.join("logs")).with_context(|| dir.display().to_string())?;
    let queue = Mutex::new(todo.iter().copied());
    let failed = Mutex::new(vec![]);
    let done = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..slots {
            s.spawn(|| loop {
                let Some(i) = queue.lock().expect("queue").next() else {
                    break;
                };
                let began = Instant::now();
                let ok = run_process(&exe, dir, i, device).unwrap_or(false);
                let run = plan.run(i).expect("indices come from the plan");
                let mut n = done.lock().expect("count");
                *n += 1;
                bars.println(&format!(
                    "run {i} ({} seed {}) {} in {:.0} s [{}/{}]",
                    run.point.id,
                    run.seed,
                    if ok { "finished" } else { "FAILED" },
                    began.elapsed().as_secs_f64(),
                    *n,
                    todo.len()
                ));
                if !ok {
                    failed.lock().expect("failures").push(i);
                }
            });
        }
    });
    let mut failed = failed.into_inner().expect("failures");
    failed.sort_unstable();
    Ok(failed)
}

/// Run one run as a child process, its output in its log; whether it succeeded.
fn run_process(exe: &Path, dir: &Path, index: usize, device: Option<&str>) -> Result<bool> {
    let log = std::fs::File::create(log_path(dir, index))?;
    let status = std::process::Command::new(exe)
        .args(["--quiet", "sweep", "run-one"])
        .args(device.map(|d| ["--device", d]).into_iter().flatten())
        .arg(dir)
        .arg(index.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()?;
    Ok(status.success())
}

/// `sweep run-one`: one run, started or continued; a finished one is left alone.
fn run_one(dir: &Path, index: usize, bars: &Bars) -> Result<()> {
    let plan = Plan::load(dir)?;
    let run = plan.run(index)?;
    if sweep::run_state(dir, &run)? == RunState::Finished {
        bars.println(&format!("run {index} is finished already"));
        return Ok(());
    }
    let exp = sweep::run_experiment(dir, &run)?;
    let root = sweep::run_dir(dir, &run);
    let exp = if root.join(experiment::EXPERIMENT_FILE).is_file() {
        experiment::resume(&root, Some(&exp))?
    } else {
        experiment::start(&root, &exp)?
    };
    bars.println(&format!(
        "run {index}: {} seed {} in {}",
        run.point.label(&plan),
        run.seed,
        root.display()
    ));
    let out = super::run::run_prepared(&root, &exp, &RunOptions::default(), bars)?;
    bars.println(&out.summary);
    Ok(())
}

/// `sweep report`: aggregate what has finished.
fn report(dir: &Path, bars: &Bars) -> Result<goodhart::analysis::sweep::SweepAggregate> {
    let plan = Plan::load(dir)?;
    let agg = goodhart::analysis::sweep::aggregate(dir, &plan)?;
    goodhart::report::sweep::write_sweep_report(dir, &plan, &agg)?;
    bars.println(&agg.summary);
    bars.println(&format!("report: {}", dir.join("report.html").display()));
    Ok(agg)
}

/// `sweep status`: a line per run, then the counts.
fn status(dir: &Path) -> Result<()> {
    let plan = Plan::load(dir)?;
    let queued = slurm::queue_states(dir)?;
    let (mut finished, mut partial, mut waiting, mut idle) = (0, 0, 0, 0);
    outln!("{:>5}  {:<40} {:>6}  state", "run", "point", "seed");
    for i in 0..plan.runs() {
        let run = plan.run(i)?;
        let state = sweep::run_state(dir, &run)?;
        let slurm_state = queued
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, s)| s.as_str());
        let text = match (state, slurm_state) {
            (RunState::Finished, _) => {
                finished += 1;
                "finished".to_string()
            }
            (_, Some(s)) => {
                waiting += 1;
                format!("slurm: {}", s.to_lowercase())
            }
            (RunState::Partial(d, t), None) => {
                partial += 1;
                format!("stopped after {d} of {t} stages")
            }
            (RunState::NotStarted, None) => {
                idle += 1;
                "not started".to_string()
            }
        };
        outln!("{i:>5}  {:<40} {:>6}  {text}", run.point.id, run.seed);
    }
    outln!(
        "{} runs: {finished} finished, {waiting} queued or running on Slurm, {partial} stopped part way, {idle} not started",
        plan.runs()
    );
    Ok(())
}
