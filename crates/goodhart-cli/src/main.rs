//! `goodhart`: the command-line program. It parses arguments, shows progress
//! and prints results; all the work is in the `goodhart` library.

mod commands;
mod progress;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use goodhart::experiment::config::DEFAULT_EXPERIMENT_NAME;
use goodhart::experiment::{stages, Experiment};
use goodhart::feedback::{Filter, LabelStore, OnBadLine};
use goodhart::model::checkpoint;
use goodhart::model::sample::{sample, SamplingConfig};
use goodhart::task::{self, Split, Task};
use goodhart::{fsutil, rng, runtime};
use tracing_subscriber::EnvFilter;

use commands::run::{report_cmd, run_cmd, RunArgs};
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
    /// Look at the bundled tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Print an experiment with every default filled in.
    Config {
        /// Experiment file (default: the embedded default experiment).
        experiment: Option<PathBuf>,
    },
}

#[derive(Args)]
struct ExperimentArgs {
    /// Experiment file (default: the embedded default experiment).
    experiment: Option<PathBuf>,
    /// Which of the experiment's tasks (needed when it has several).
    #[arg(long)]
    task: Option<String>,
}

#[derive(Args)]
struct SftArgs {
    #[command(flatten)]
    exp: ExperimentArgs,
    /// Directory to write the checkpoint to.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing checkpoint directory.
    #[arg(long)]
    force: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum SplitArg {
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

#[derive(Args)]
struct SampleArgs {
    /// Checkpoint directory.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Prompt text (repeatable); by default, prompts come from the checkpoint's task.
    #[arg(long = "prompt")]
    prompts: Vec<String>,
    /// Which split of the task's prompts.
    #[arg(long, value_enum, default_value = "heldout")]
    split: SplitArg,
    /// How many of the task's prompts.
    #[arg(long, default_value_t = 8)]
    n_prompts: usize,
    /// Completions per prompt.
    #[arg(long, short = 'n', default_value_t = 1)]
    n: usize,
    /// Softmax temperature; 0 is greedy (the most likely token at every step).
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Write JSONL here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write each completion token by token: the prompt's and the
    /// completion's token ids, each completion token's text, and its
    /// log-probability under the policy (temperature 1: comparable with any
    /// other implementation's log-softmax).
    #[arg(long)]
    per_token: bool,
}

#[derive(Args)]
struct EvalArgs {
    /// Checkpoint directory of the policy.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Labelers and sampling come from this experiment's task (default: the embedded one).
    #[command(flatten)]
    exp: ExperimentArgs,
    #[arg(long, value_enum, default_value = "heldout")]
    split: SplitArg,
    #[arg(long, default_value_t = 128)]
    n_prompts: usize,
    /// Completions per prompt.
    #[arg(long, short = 'n', default_value_t = 4)]
    n: usize,
    /// Also write the full report (every completion scored) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Args)]
struct PairSource {
    /// Policy checkpoint to sample from.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Label store (SQLite; created if missing).
    #[arg(long)]
    store: PathBuf,
    #[command(flatten)]
    exp: ExperimentArgs,
    /// Pairs to sample (default: the experiment's `labels.pairs`).
    #[arg(long)]
    pairs: Option<usize>,
    /// Name of this round of labelling in the store (default: "simulate" or "people").
    #[arg(long)]
    batch: Option<String>,
}

#[derive(Subcommand)]
enum LabelCommand {
    /// Sample pairs from a checkpoint on the task's training prompts and have every labeler of the experiment compare them.
    Simulate(PairSource),
    /// Sample pairs from a checkpoint on the task's training prompts and queue them for people (`label serve`).
    Queue(PairSource),
    /// Serve the labeling page for the pairs queued in a store.
    Serve {
        /// Label store (SQLite) with queued pairs.
        #[arg(long)]
        store: PathBuf,
        /// Address to listen on. Anything but loopback exposes the page to the network
        /// (sign-in is always required; use a TLS proxy in front of it there).
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
    },
    /// Let a person label: prints a one-time sign-in token (a new one if NAME exists).
    AddUser {
        name: String,
        #[arg(long)]
        store: PathBuf,
        /// Where the page is served, for the sign-in link.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
    },
    /// Counts, agreement between labelers on the same pairs, agreement with gold, median seconds per label.
    Stats {
        #[arg(long)]
        store: PathBuf,
        /// Also write the figures as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LabelsCommand {
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

#[derive(Subcommand)]
enum RmCommand {
    /// Train on the store's comparisons (the experiment's `reward_model` settings); report held-out accuracy.
    Train {
        #[arg(long)]
        store: PathBuf,
        /// The base policy: the task it was trained on, its tokenizer, and the initial weights.
        #[arg(long)]
        base: PathBuf,
        /// Directory to write the reward model to.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        exp: ExperimentArgs,
        /// Learn these labelers' comparisons (repeatable; default: the experiment's choice).
        #[arg(long)]
        labeler: Vec<String>,
        /// Replace an existing output directory.
        #[arg(long)]
        force: bool,
    },
    /// Score completions: JSONL lines with "prompt" and "completion" in, the same with "reward" and "spread" out.
    Score {
        /// Reward model directory.
        #[arg(long)]
        rm: PathBuf,
        /// JSONL input (default: standard input).
        #[arg(long)]
        input: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum TaskCommand {
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bars = Bars::new(!cli.quiet);
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("GOODHART_LOG").unwrap_or_else(|_| EnvFilter::new(level)),
        )
        .with_writer(bars.log_writer())
        .with_target(false)
        .init();
    match run(cli, &bars) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            let causes: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", causes.join(": "));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, bars: &Bars) -> Result<()> {
    match cli.command {
        Command::Run(args) => run_cmd(&cli_settings(&cli.threads, cli.seed), args, None, bars),
        Command::Optimize { strategy, run } => run_cmd(
            &cli_settings(&cli.threads, cli.seed),
            run,
            Some(strategy),
            bars,
        ),
        Command::Report { run_dir } => report_cmd(&run_dir, bars),
        Command::Sft(args) => sft(&cli_settings(&cli.threads, cli.seed), args, bars),
        Command::Sample(args) => sample_cmd(&cli_settings(&cli.threads, cli.seed), args),
        Command::Eval(args) => eval_cmd(&cli_settings(&cli.threads, cli.seed), args),
        Command::Label(cmd) => label_cmd(&cli_settings(&cli.threads, cli.seed), cmd, bars),
        Command::Labels(cmd) => labels_cmd(cmd),
        Command::Rm(cmd) => rm_cmd(&cli_settings(&cli.threads, cli.seed), cmd, bars),
        Command::Task(TaskCommand::Show { name, n, split }) => {
            task_show(&name, n, split.into(), cli.seed.unwrap_or(0))
        }
        Command::Config { experiment } => {
            let exp =
                load_experiment(experiment.as_deref(), &cli_settings(&cli.threads, cli.seed))?;
            print!("{}", exp.to_toml());
            Ok(())
        }
    }
}

/// Settings given on the command line that override the experiment.
struct Overrides {
    threads: Option<usize>,
    seed: Option<u64>,
}

fn cli_settings(threads: &Option<usize>, seed: Option<u64>) -> Overrides {
    Overrides {
        threads: *threads,
        seed,
    }
}

fn load_experiment(path: Option<&Path>, o: &Overrides) -> Result<Experiment> {
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

fn sft(o: &Overrides, args: SftArgs, bars: &Bars) -> Result<()> {
    let exp = load_experiment(args.exp.experiment.as_deref(), o)?;
    let setup = exp.task(args.exp.task.as_deref())?;
    if args.out.exists() && !args.force {
        bail!(
            "{} already exists (use --force to replace it)",
            args.out.display()
        );
    }
    let threads = runtime::set_threads(exp.threads);
    let source = args
        .exp
        .experiment
        .as_ref()
        .map_or(DEFAULT_EXPERIMENT_NAME.to_string(), |p| {
            p.display().to_string()
        });
    tracing::info!(experiment = %source, task = setup.name(), seed = exp.seed, threads, "sft");
    let task = goodhart::reward::build_task(&setup.task_config(), exp.seed)?;
    let device = runtime::device();
    let (model, report) = stages::train_base_policy(setup, task.as_ref(), exp.seed, &device, bars)?;
    stages::save_policy(
        &model,
        &args.out,
        &setup.task_config(),
        exp.seed,
        Some(&report),
        args.force,
    )?;
    bars.println(&format!(
        "held-out loss {:.4} nats/token (unigram baseline {:.4}); {} parameters; checkpoint in {}",
        report.final_heldout_loss().unwrap_or(f64::NAN),
        report.unigram_loss,
        model.config().n_params(),
        args.out.display()
    ));
    Ok(())
}

fn sample_cmd(o: &Overrides, args: SampleArgs) -> Result<()> {
    runtime::set_threads(o.threads.unwrap_or(0));
    let device = runtime::device();
    let (model, info) = checkpoint::load(&args.checkpoint, &device, false)?;
    let task_seed = stages::task_of_checkpoint(&info);
    let task: Option<Box<dyn Task>> = match &task_seed {
        Some((cfg, seed)) => Some(goodhart::reward::build_task(cfg, *seed)?),
        None => None,
    };
    let prompts: Vec<String> = if !args.prompts.is_empty() {
        args.prompts.clone()
    } else {
        let t = task
            .as_ref()
            .context("the checkpoint records no task: give prompts with --prompt")?;
        t.prompts(args.split.into())
            .into_iter()
            .take(args.n_prompts)
            .collect()
    };
    let tok = model.tokenizer();
    let ids = prompts
        .iter()
        .map(|p| tok.encode_prompt(p))
        .collect::<goodhart::Result<Vec<_>>>()?;
    let cfg = SamplingConfig {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        max_new_tokens: args.max_new_tokens,
        ..Default::default()
    };
    let seed = o.seed.or(task_seed.as_ref().map(|t| t.1)).unwrap_or(0);
    let samples = sample(
        &model,
        &ids,
        args.n,
        &cfg,
        &mut rng::stream(seed, "cli/sample"),
    )?;
    let mut out = Vec::new();
    for s in &samples {
        let prompt = &prompts[s.prompt_index];
        let mut line = serde_json::json!({
            "prompt_index": s.prompt_index,
            "prompt": prompt,
            "completion": s.text,
            "logprob": s.logprob(),
            "finished": s.finished,
        });
        if let Some(t) = &task {
            line["gold"] = t.gold(prompt, &s.text)?.into();
        }
        if args.per_token {
            line["prompt_tokens"] = serde_json::json!(ids[s.prompt_index]);
            line["tokens"] = serde_json::json!(s.tokens);
            line["token_strings"] = serde_json::json!(s
                .tokens
                .iter()
                .map(|&t| tok.decode(&[t]))
                .collect::<Vec<_>>());
            line["token_logprobs"] = serde_json::json!(s.logprobs);
        }
        writeln!(out, "{line}")?;
    }
    match &args.out {
        Some(path) => fsutil::write_atomic(path, &out)?,
        None => std::io::stdout().write_all(&out)?,
    }
    Ok(())
}

fn task_show(name: &str, n: usize, split: Split, seed: u64) -> Result<()> {
    let cfg = task::by_name(name)?;
    let task = goodhart::reward::build_task(&cfg, seed)?;
    println!("task {name} ({} split)", split.name());
    println!("labeler sees: {}", task.look_names().join(", "));
    println!("measured features: {}\n", task.feature_names().join(", "));
    for ex in task.demonstrations(split).iter().take(n) {
        println!("--- prompt (difficulty {}):", task.difficulty(&ex.prompt)?);
        println!("{}", ex.prompt);
        println!("--- demonstration: {}", ex.completion);
        println!("--- gold: {}", task.gold(&ex.prompt, &ex.completion)?);
        if let Some(s) = task.spec_satisfied(&ex.prompt, &ex.completion) {
            println!("--- formal goal satisfied: {}", s == 1.0);
        }
        println!();
    }
    Ok(())
}

/// The task a checkpoint was trained on; for one that records none (a Hugging
/// Face model), the experiment's task named by `--task` (or its only task).
fn checkpoint_task(
    info: &checkpoint::CheckpointInfo,
    exp: &Experiment,
    task: Option<&str>,
) -> Result<(task::TaskConfig, u64)> {
    if let Some(t) = stages::task_of_checkpoint(info) {
        return Ok(t);
    }
    let setup = exp
        .task(task)
        .context("the checkpoint records no task: name one of the experiment's with --task")?;
    Ok((setup.task_config(), exp.seed))
}

fn eval_cmd(o: &Overrides, args: EvalArgs) -> Result<()> {
    let (model, info) = checkpoint::load(&args.checkpoint, &runtime::device(), false)?;
    let exp = load_experiment(args.exp.experiment.as_deref(), o)?;
    let (task_cfg, task_seed) = checkpoint_task(&info, &exp, args.exp.task.as_deref())?;
    runtime::set_threads(exp.threads);
    let setup = match args.exp.task.as_deref() {
        Some(name) => exp.task(Some(name))?,
        None => exp.task(Some(task_cfg.name()))?,
    };
    let task = goodhart::reward::build_task(&task_cfg, task_seed)?;
    let labelers = setup.labelers(task.as_ref())?;
    let split: Split = args.split.into();
    let report = stages::evaluate_policy(
        &model,
        task.as_ref(),
        &labelers,
        split,
        args.n_prompts,
        args.n,
        &setup.sampling,
        &mut rng::stream(exp.seed, "cli/eval"),
    )?;
    println!(
        "{} on {} ({} split): {} prompts x {} samples",
        args.checkpoint.display(),
        task.name(),
        split.name(),
        report.n_prompts,
        report.per_prompt
    );
    println!("gold            {}", fmt_stat(&report.gold));
    for (name, s) in &report.labelers {
        println!("labeler {name:8}{}", fmt_stat(s));
    }
    if let Some(s) = &report.spec {
        println!("formal goal     {}", fmt_stat(s));
    }
    for (name, fid) in &report.fidelity {
        println!(
            "\nlabeler {name}: correlation with gold {:.3}",
            fid.correlation
        );
        println!("  difficulty  accuracy (gold = +1)   agreement with gold on pairs");
        for ((d, acc), (_, agree)) in fid.accuracy.iter().zip(&fid.agreement) {
            println!("  {d:>10}  {:<22} {}", fmt_stat(acc), fmt_stat(agree));
        }
    }
    println!("\nfeatures:");
    for (name, s) in &report.features {
        println!("  {name:20} {}", fmt_stat(s));
    }
    if let Some(path) = &args.json {
        fsutil::write_atomic(path, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}

fn fmt_stat(s: &goodhart::stats::Stat) -> String {
    format!("{:.3} ± {:.3} (n={})", s.mean, s.stderr, s.n)
}

fn label_cmd(o: &Overrides, cmd: LabelCommand, bars: &Bars) -> Result<()> {
    match cmd {
        LabelCommand::Simulate(source) => label_pairs(o, &source, false, bars),
        LabelCommand::Queue(source) => label_pairs(o, &source, true, bars),
        LabelCommand::Serve { store, bind } => label_serve(&store, bind),
        LabelCommand::AddUser { name, store, url } => {
            let mut store = LabelStore::open_existing(&store)?;
            let token = store.add_user(&name)?;
            println!("one-time sign-in token for {name}: {token}");
            println!(
                "or open: {}/#signin={name}:{token}",
                url.trim_end_matches('/')
            );
            Ok(())
        }
        LabelCommand::Stats { store, json } => label_stats(&store, json.as_deref()),
    }
}

/// Sample pairs from a checkpoint; simulated labelers judge them, or they are queued for people.
fn label_pairs(o: &Overrides, src: &PairSource, queue: bool, bars: &Bars) -> Result<()> {
    let exp = load_experiment(src.exp.experiment.as_deref(), o)?;
    runtime::set_threads(exp.threads);
    let (model, info) = checkpoint::load(&src.checkpoint, &runtime::device(), false)?;
    let (task_cfg, task_seed) = checkpoint_task(&info, &exp, src.exp.task.as_deref())?;
    let setup = exp.task(Some(src.exp.task.as_deref().unwrap_or(task_cfg.name())))?;
    let task = goodhart::reward::build_task(&task_cfg, task_seed)?;
    let mut cfg = setup.labels.clone();
    if let Some(p) = src.pairs {
        cfg.pairs = p;
    }
    let batch = src
        .batch
        .clone()
        .unwrap_or_else(|| if queue { "people" } else { "simulate" }.to_string());
    let mut store = LabelStore::open(&src.store)?;
    let name = src.checkpoint.display().to_string();
    let policy = goodhart::feedback::PolicyTag {
        name: &name,
        step: None,
    };
    let prompts = task.prompts(Split::Train);
    let mut rng = rng::stream(exp.seed, &format!("cli/label/{batch}"));
    if queue {
        let n = goodhart::feedback::queue_pairs(
            &mut store,
            &model,
            &policy,
            task.as_ref(),
            &prompts,
            &cfg,
            &batch,
            &mut rng,
        )?;
        bars.println(&format!(
            "{n} pairs queued in batch {batch:?}; {} queued in {}",
            store.queued()?,
            src.store.display()
        ));
    } else {
        let labelers = setup.labelers(task.as_ref())?;
        let n = goodhart::feedback::simulate_labels(
            &mut store,
            &model,
            &policy,
            task.as_ref(),
            &labelers,
            &prompts,
            &cfg,
            &batch,
            &mut rng,
            bars,
        )?;
        bars.println(&format!(
            "{n} pairs x {} labelers recorded; {} comparisons in {}",
            labelers.len(),
            store.count_comparisons()?,
            src.store.display()
        ));
    }
    Ok(())
}

fn label_serve(store: &Path, bind: std::net::SocketAddr) -> Result<()> {
    let app = goodhart_web::App::open(store)?;
    let (queued, users) = {
        let s = LabelStore::open_existing(store)?;
        (s.queued()?, s.users()?)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .with_context(|| format!("cannot listen on {bind}"))?;
        let addr = listener.local_addr()?;
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "serving beyond this machine: every person needs a token from `goodhart label add-user`; put a TLS proxy in front");
        }
        if users.is_empty() {
            tracing::warn!("nobody can sign in yet: add people with `goodhart label add-user NAME --store {}`", store.display());
        }
        // The address first, alone on its line: scripts wait for it.
        println!("serving http://{addr}/");
        eprintln!("{queued} pairs queued; {} people: {}; Ctrl-C stops", users.len(), users.join(", "));
        goodhart_web::serve(listener, app, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("server failed")
    })
}

fn label_stats(store: &Path, json: Option<&Path>) -> Result<()> {
    let store = LabelStore::open_existing(store)?;
    // Gold is a function of the prompt's text and the completion, for the bundled tasks.
    let tasks: std::collections::HashMap<&str, Box<dyn Task>> = ["answers", "gridworld"]
        .into_iter()
        .filter_map(|n| Some((n, task::by_name(n).ok()?.build(0).ok()?)))
        .collect();
    let gold = |t: &str, p: &str, c: &str| tasks.get(t)?.gold(p, c).ok();
    let stats = store.labeler_stats(&gold)?;
    let frac = |(k, n): (usize, usize)| {
        if n == 0 {
            "-".to_string()
        } else {
            format!("{:.3} ({k}/{n})", k as f64 / n as f64)
        }
    };
    println!(
        "{:<16} {:>6} {:>6} {:>5} {:>5} {:>4} {:>5}  {:<20} {:<20} {:>9}",
        "labeler", "kind", "labels", "a", "b", "tie", "can't", "agreement", "vs gold", "median s"
    );
    for s in &stats {
        println!(
            "{:<16} {:>6} {:>6} {:>5} {:>5} {:>4} {:>5}  {:<20} {:<20} {:>9}",
            s.labeler,
            if s.person { "person" } else { "sim" },
            s.comparisons,
            s.answers[0],
            s.answers[1],
            s.answers[2],
            s.answers[3],
            frac(s.agreement),
            frac(s.gold_agreement),
            s.median_seconds.map_or("-".into(), |m| format!("{m:.1}"))
        );
    }
    println!("{} pairs queued", store.queued()?);
    if let Some(path) = json {
        fsutil::write_atomic(path, &serde_json::to_vec_pretty(&stats)?)?;
    }
    Ok(())
}

fn labels_cmd(cmd: LabelsCommand) -> Result<()> {
    match cmd {
        LabelsCommand::Export {
            store,
            labeler,
            out,
        } => {
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

fn rm_cmd(o: &Overrides, cmd: RmCommand, bars: &Bars) -> Result<()> {
    match cmd {
        RmCommand::Train {
            store,
            base,
            out,
            exp: exp_args,
            labeler,
            force,
        } => {
            if out.exists() && !force {
                bail!(
                    "{} already exists (use --force to replace it)",
                    out.display()
                );
            }
            let exp = load_experiment(exp_args.experiment.as_deref(), o)?;
            runtime::set_threads(exp.threads);
            let (model, info) = checkpoint::load(&base, &runtime::device(), false)?;
            let (task_cfg, task_seed) = checkpoint_task(&info, &exp, exp_args.task.as_deref())?;
            let setup = exp.task(Some(exp_args.task.as_deref().unwrap_or(task_cfg.name())))?;
            let task = goodhart::reward::build_task(&task_cfg, task_seed)?;
            let labelers = if labeler.is_empty() {
                setup.reward_labelers()
            } else {
                labeler
            };
            let store = LabelStore::open_existing(&store)?;
            let filter = Filter {
                task: Some(task.name().to_string()),
                labelers: labelers.clone(),
                ..Default::default()
            };
            let comparisons = store.comparisons(&filter)?;
            tracing::info!(comparisons = comparisons.len(), labelers = ?labelers, "training reward model");
            let (rm, report) = goodhart::reward::train_reward_model(
                &model,
                &comparisons,
                task.as_ref(),
                &setup.reward_model,
                &mut rng::stream(exp.seed, "cli/rm"),
                bars,
            )?;
            rm.save(&out, force)?;
            bars.println(&format!(
                "{} comparisons ({} held out); held-out accuracy vs labeler {}, vs gold {}",
                report.train_comparisons,
                report.heldout_comparisons,
                fmt_stat(&report.accuracy_labeler),
                fmt_stat(&report.accuracy_gold)
            ));
            for (d, l, g) in &report.by_difficulty {
                bars.println(&format!(
                    "  difficulty {d}: vs labeler {}, vs gold {}",
                    fmt_stat(l),
                    fmt_stat(g)
                ));
            }
        }
        RmCommand::Score { rm, input } => {
            let rm = goodhart::reward::RewardModel::load(&rm, &runtime::device())?;
            let text = match &input {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
                None => std::io::read_to_string(std::io::stdin())?,
            };
            let name = input
                .as_ref()
                .map_or("<stdin>".to_string(), |p| p.display().to_string());
            let mut rows = vec![];
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let v: serde_json::Value = serde_json::from_str(line)
                    .with_context(|| format!("{name}:{}: not JSON", i + 1))?;
                let field = |k: &str| -> Result<String> {
                    v.get(k)
                        .and_then(|x| x.as_str())
                        .map(str::to_string)
                        .with_context(|| format!("{name}:{}: missing string field {k:?}", i + 1))
                };
                rows.push((v.clone(), field("prompt")?, field("completion")?));
            }
            let items: Vec<(&str, &str)> = rows
                .iter()
                .map(|(_, p, c)| (p.as_str(), c.as_str()))
                .collect();
            let scores = rm.score_texts(&items)?;
            let mut out = std::io::stdout().lock();
            for ((mut v, _, _), s) in rows.into_iter().zip(scores) {
                v["reward"] = s.mean.into();
                v["spread"] = s.spread.into();
                writeln!(out, "{v}")?;
            }
        }
    }
    Ok(())
}
