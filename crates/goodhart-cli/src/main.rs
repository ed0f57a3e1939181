//! The `goodhart` command-line program: parses arguments, sets up logging and
//! progress, and hands each subcommand to its module in `commands/`.

mod commands;
mod log;
mod progress;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

use commands::eval::{eval_cmd, EvalArgs};
use commands::label::{label_cmd, LabelCommand};
use commands::labels::{labels_cmd, LabelsCommand};
use commands::rm::{rm_cmd, RmCommand};
use commands::run::{report_cmd, run_cmd, RunArgs};
use commands::sample::{sample_cmd, SampleArgs};
use commands::sft::{sft_cmd, SftArgs};
use commands::sweep::{sweep_cmd, SweepArgs};
use commands::task::{task_show, TaskCommand};
use commands::{load_experiment, Overrides};
use progress::Bars;

#[derive(Parser)]
#[command(
    name = "goodhart",
    version,
    about = "Train language-model policies from feedback and measure proxy, labeler and gold reward against KL.",
    long_about = None
)]
struct Cli {
    /// Threads for tensor work (default: the experiment's `threads`, 0 = one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Override the experiment's seed.
    #[arg(long, global = true)]
    seed: Option<u64>,
    /// Where tensors live: cpu, cuda or cuda:N (default: the first CUDA GPU when built with `--features cuda` and one is present, else the CPU).
    #[arg(long, global = true, value_name = "DEVICE")]
    device: Option<String>,
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bars and only warnings in the log.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an experiment end to end: base policy, labels, reward model, every strategy, fits and report.
    Run(RunArgs),
    /// Run one strategy of an experiment (with the stages it needs) and write its curve.
    Optimize {
        /// The strategy's name in the experiment: bon, conditioning, quantiliser, or an RL/DPO run's name.
        strategy: String,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Rebuild a run's report.html, curves.csv, fits.json and metrics.jsonl from its files.
    Report {
        /// The run directory.
        run_dir: PathBuf,
        /// Print instead the findings as Markdown, from the directory's findings.json alone (what docs/ pages are generated from).
        #[arg(long)]
        markdown: bool,
        /// Print instead each task's verdict as a Markdown bullet, from findings.json alone (the README's summary).
        #[arg(long, conflicts_with = "markdown")]
        verdicts: bool,
        /// Print instead the directory's summary.txt as a Markdown code block (what docs/ pages quote).
        #[arg(long, conflicts_with_all = ["markdown", "verdicts"])]
        summary: bool,
    },
    /// Train a base policy by supervised fine-tuning on a task's demonstrations.
    Sft(SftArgs),
    /// Sample completions from a checkpoint (JSONL: prompt, completion, log-prob, gold).
    Sample(SampleArgs),
    /// Measure a policy: gold, labeler scores, features, and how well each labeler tracks gold.
    Eval(EvalArgs),
    /// Collect labels: simulated labelers judge pairs of a policy's completions.
    #[command(subcommand)]
    Label(LabelCommand),
    /// Move comparisons in and out of a label store as preference JSONL.
    #[command(subcommand)]
    Labels(LabelsCommand),
    /// Train a reward model on a label store, or score completions with one.
    #[command(subcommand)]
    Rm(RmCommand),
    /// Run a grid of experiments (seeds, dotted experiment keys, files) here or as a Slurm job array; `sweep status`, `sweep report`.
    Sweep(SweepArgs),
    /// Look at the bundled tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Print an experiment with every default filled in.
    Config {
        /// Experiment file (default: the embedded default experiment).
        experiment: Option<PathBuf>,
        /// Print instead the format's reference (every table, key and code default) as the README's Markdown table.
        #[arg(long, conflicts_with = "experiment")]
        reference: bool,
    },
    /// Measure the verdict rules on simulated curves whose truth is known: each rule's false-positive rate under the null and its power (a Markdown table).
    Verdicts {
        /// Simulated runs per row (each multi-strategy or multi-seed row runs a quarter as many).
        #[arg(long, default_value_t = 1000)]
        sims: usize,
        /// Also write the rows as JSON to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print the table of rows written before by --out, simulating nothing.
        #[arg(long, conflicts_with = "out")]
        from: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bars = Bars::new(!cli.quiet);
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    log::init(level, bars.log_writer());
    match run(cli, &bars) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, bars: &Bars) -> Result<()> {
    if let Some(t) = cli.threads.filter(|&t| t > goodhart::runtime::MAX_THREADS) {
        anyhow::bail!(
            "--threads {t} is more than {}",
            goodhart::runtime::MAX_THREADS
        );
    }
    // Refused here, before any tensor work: a GPU this build cannot use, and a
    // GOODHART_COMPOSITE_OPS that is neither 0 nor 1.
    goodhart::runtime::cpu_ops_path()?;
    if let Some(spec) = &cli.device {
        goodhart::runtime::select_device(Some(spec))?;
    }
    let o = Overrides {
        threads: cli.threads,
        seed: cli.seed,
    };
    match cli.command {
        Command::Run(args) => run_cmd(&o, args, None, bars),
        Command::Optimize { strategy, run } => run_cmd(&o, run, Some(strategy), bars),
        Command::Report {
            run_dir,
            summary: true,
            ..
        } => {
            let text = goodhart::analysis::findings::summary_markdown(&run_dir)?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(())
        }
        Command::Report {
            run_dir,
            markdown,
            verdicts,
            ..
        } if markdown || verdicts => {
            use goodhart::analysis::findings;
            let found = findings::read(&run_dir)?;
            let text = if verdicts {
                findings::verdicts_markdown(&found)
            } else {
                findings::markdown(&found)
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(())
        }
        Command::Report { run_dir, .. } => report_cmd(&run_dir, bars),
        Command::Sft(args) => sft_cmd(&o, args, bars),
        Command::Sample(args) => sample_cmd(&o, args),
        Command::Eval(args) => eval_cmd(&o, args),
        Command::Label(cmd) => label_cmd(&o, cmd, bars),
        Command::Labels(cmd) => labels_cmd(cmd),
        Command::Rm(cmd) => rm_cmd(&o, cmd, bars),
        Command::Sweep(args) => sweep_cmd(args, cli.device.as_deref(), bars),
        Command::Task(TaskCommand::Show {
            name,
            experiment,
            n,
            split,
        }) => {
            let exp = load_experiment(experiment.as_deref(), &o)?;
            task_show(&name, &exp, n, split.into())
        }
        Command::Config {
            reference: true, ..
        } => {
            let text = goodhart::experiment::reference::reference_markdown();
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(())
        }
        Command::Verdicts { sims, out, from } => {
            use goodhart::analysis::findings::validate;
            let rows: Vec<validate::Row> = match from {
                Some(path) => validate::read(&path)?,
                None => validate::table(sims),
            };
            if let Some(path) = out {
                validate::write(&path, &rows)?;
            }
            std::io::stdout()
                .lock()
                .write_all(validate::markdown(&rows).as_bytes())?;
            Ok(())
        }
        Command::Config { experiment, .. } => {
            let text = load_experiment(experiment.as_deref(), &o)?.to_toml();
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(())
        }
    }
}

/// Standard output closed by its reader (`| head`): nothing left to say.
fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, each said once (a cause that an
/// error's own message already spells out is not repeated).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        // A newline becomes a space; any other control character (from a
        // name or path in the message) is escaped.
        let text = log::escape(&cause.to_string().replace('\n', " ")).into_owned();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
