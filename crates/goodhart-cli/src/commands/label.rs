//! `goodhart label`: simulated labelers judge a policy's pairs, or people do
//! (queue, serve, sign-in tokens, statistics).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use goodhart::experiment::stages;
use goodhart::feedback::{LabelStore, Tally};
use goodhart::task::{self, Split};
use goodhart::{fsutil, rng, runtime};

use super::{check_output, load_experiment, with_critics, ExperimentArgs, Overrides};
use crate::log::escape;
use crate::progress::Bars;

#[derive(Args)]
pub struct PairSource {
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
    /// A run's folder of the task with the learned critics its labelers' assistants need
    /// (`critic-N/`; default: the checkpoint's folder).
    #[arg(long)]
    critics: Option<PathBuf>,
}

#[derive(Args)]
pub struct QueueArgs {
    #[command(flatten)]
    source: PairSource,
    /// Show people what this labeler's assistant shows it beside each pair: its critic's
    /// pointer at a step of each side, or a debate's pointers turn by turn.
    #[arg(long)]
    assistant: Option<String>,
}

#[derive(Args)]
pub struct ReviewSource {
    /// Policy checkpoint whose samples, conditioned on each goal, are shown.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Label store (SQLite; created if missing).
    #[arg(long)]
    store: PathBuf,
    #[command(flatten)]
    exp: ExperimentArgs,
    /// Reviews to queue.
    #[arg(long, default_value_t = 20)]
    items: usize,
    /// Candidate goals per review: the goal under review and K - 1 alternatives (default: up to 3).
    #[arg(long)]
    k: Option<usize>,
    /// Rollouts shown of each goal's policy (default: the experiment's `review.shown`).
    #[arg(long)]
    shown: Option<usize>,
    /// Training prompts the checkpoint is sampled on.
    #[arg(long, default_value_t = 32)]
    prompts: usize,
    /// Samples per prompt, from which each goal's policy is drawn (rejection sampling).
    #[arg(long, default_value_t = 16)]
    per_prompt: usize,
    /// Name of this round of reviews in the store.
    #[arg(long, default_value = "review")]
    batch: String,
}

#[derive(Subcommand)]
pub enum LabelCommand {
    /// Sample pairs from a checkpoint on the task's training prompts and have every labeler of the experiment compare them.
    Simulate(PairSource),
    /// Sample pairs from a checkpoint on the task's training prompts and queue them for people (`label serve`).
    Queue(QueueArgs),
    /// Sample a checkpoint and queue reviews of the experiment's candidate goals for people
    /// (`[task.strategies.review] candidates`; the first is the goal under review; page `/review`).
    QueueReview(ReviewSource),
    /// Serve the labeling page for the pairs queued in a store.
    Serve {
        /// Label store (SQLite) with queued pairs.
        #[arg(long)]
        store: PathBuf,
        /// Address to listen on. Anything but loopback exposes the page to the network
        /// (sign-in is always required; use a TLS proxy in front of it there).
        #[arg(long, default_value = "127.0.0.1:8080")]
        bind: std::net::SocketAddr,
        /// A name people reach the server by (repeatable), e.g. `labels.example.org`
        /// or `labels.example.org:443`; requests for any other host are refused.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Mark the session cookie Secure (serve behind a TLS proxy).
        #[arg(long)]
        secure_cookie: bool,
        /// A session with no request for this many minutes ends.
        #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..))]
        idle_minutes: u32,
        /// A session ends this many hours after sign-in.
        #[arg(long, default_value_t = 168, value_parser = clap::value_parser!(u32).range(1..))]
        session_hours: u32,
    },
    /// Take a person's access away: their unused token and every session end (their labels stay).
    Revoke {
        name: String,
        #[arg(long)]
        store: PathBuf,
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
        /// Replace an existing JSON file.
        #[arg(long)]
        force: bool,
    },
}

pub fn label_cmd(o: &Overrides, cmd: LabelCommand, bars: &Bars) -> Result<()> {
    match cmd {
        LabelCommand::Simulate(source) => label_pairs(o, &source, Judges::Simulated, bars),
        LabelCommand::Queue(q) => {
            let people = Judges::People {
                assistant: q.assistant.as_deref(),
            };
            label_pairs(o, &q.source, people, bars)
        }
        LabelCommand::QueueReview(source) => queue_reviews(o, &source, bars),
        LabelCommand::Serve {
            store,
            bind,
            hosts,
            secure_cookie,
            idle_minutes,
            session_hours,
        } => {
            let options = goodhart_web::ServeOptions {
                hosts,
                secure_cookie,
                sessions: goodhart::feedback::SessionLimits {
                    idle_ms: i64::from(idle_minutes) * 60_000,
                    max_age_ms: i64::from(session_hours) * 3_600_000,
                },
            };
            label_serve(&store, bind, options)
        }
        LabelCommand::Revoke { name, store } => {
            let mut store = LabelStore::open_existing(&store)?;
            if !store.revoke_user(&name)? {
                anyhow::bail!("nobody named {name:?} labels in this store");
            }
            outln!("{name} can no longer sign in; their sessions have ended (their labels stay)");
            Ok(())
        }
        LabelCommand::AddUser { name, store, url } => {
            let mut store = LabelStore::open_existing(&store)?;
            let token = store.add_user(&name)?;
            outln!("one-time sign-in token for {name}: {token}");
            outln!(
                "or open: {}/#signin={name}:{token}",
                url.trim_end_matches('/')
            );
            Ok(())
        }
        LabelCommand::Stats { store, json, force } => {
            if let Some(path) = &json {
                check_output(path, force)?;
            }
            label_stats(&store, json.as_deref())
        }
    }
}

/// Who judges sampled pairs.
#[derive(Clone, Copy)]
enum Judges<'a> {
    /// Every labeler of the experiment, now.
    Simulated,
    /// People, later: the pairs are queued, with what the named labeler's assistant shows it.
    People { assistant: Option<&'a str> },
}

/// Sample pairs from a checkpoint; simulated labelers judge them, or they are queued for people.
fn label_pairs(o: &Overrides, src: &PairSource, judges: Judges, bars: &Bars) -> Result<()> {
    with_policy(o, &src.exp, &src.checkpoint, |exp, opened| {
        label_pairs_with(exp, opened, src, judges, bars)
    })
}

/// Open the experiment and the policy checkpoint (threads set first), and hand both to `f`.
/// `f` runs on the thread pool (`runtime::on_workers`): it samples from the policy.
fn with_policy<T: Send>(
    o: &Overrides,
    args: &ExperimentArgs,
    checkpoint: &Path,
    f: impl FnOnce(&goodhart::experiment::Experiment, stages::OpenedPolicy) -> Result<T> + Send,
) -> Result<T> {
    let exp = load_experiment(args.experiment.as_deref(), o)?;
    runtime::set_threads(exp.threads)?;
    runtime::set_bf16(exp.bf16)?;
    let opened = stages::open_policy(checkpoint, &exp, args.task.as_deref(), &runtime::device())?;
    runtime::on_workers(|| f(&exp, opened))
}

fn label_pairs_with(
    exp: &goodhart::experiment::Experiment,
    stages::OpenedPolicy {
        model, setup, task, ..
    }: stages::OpenedPolicy,
    src: &PairSource,
    judges: Judges,
    bars: &Bars,
) -> Result<()> {
    let mut cfg = setup.labels.clone();
    if let Some(p) = src.pairs {
        cfg.pairs = p;
    }
    let batch = src.batch.clone().unwrap_or_else(|| match judges {
        Judges::People { .. } => "people".to_string(),
        Judges::Simulated => "simulate".to_string(),
    });
    let critics = |labelers| with_critics(labelers, &src.checkpoint, src.critics.as_deref());
    let mut store = LabelStore::open(&src.store)?;
    let name = src.checkpoint.display().to_string();
    let policy = goodhart::feedback::PolicyTag {
        name: &name,
        step: None,
    };
    let prompts = task.prompts(Split::Train);
    let mut rng = rng::stream(exp.seed, &format!("cli/label/{batch}"));
    if let Judges::People { assistant } = judges {
        // Only the assistant's labeler is built, with its learned critic if it has one.
        let assistant = match assistant {
            Some(name) => {
                let named = assisting_labeler(setup.labelers(task.as_ref())?, name, setup.name())?;
                critics(vec![named])?.pop()
            }
            None => None,
        };
        let n = goodhart::feedback::queue_pairs(
            &mut store,
            &model,
            &policy,
            task.as_ref(),
            &prompts,
            &cfg,
            &batch,
            assistant.as_ref(),
            &mut rng,
        )?;
        let shown = assistant.as_ref().map_or(String::new(), |l| {
            format!(" with the assistant of labeler {:?}", l.name())
        });
        bars.println(&format!(
            "{n} pairs queued{shown} in batch {batch:?}; {} queued in {}",
            store.queued()?,
            src.store.display()
        ));
    } else {
        let labelers = critics(setup.labelers(task.as_ref())?)?;
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

/// The labeler named `name` with an assistant, or why not.
fn assisting_labeler<'t>(
    mut labelers: Vec<goodhart::feedback::Labeler<'t>>,
    name: &str,
    task: &str,
) -> Result<goodhart::feedback::Labeler<'t>> {
    let why = match labelers.iter().position(|l| l.name() == name) {
        Some(i) if labelers[i].assistant().is_some() => return Ok(labelers.swap_remove(i)),
        Some(_) => "it has no assistant",
        None => "no such labeler",
    };
    let assisted: Vec<&str> = labelers
        .iter()
        .filter(|l| l.assistant().is_some())
        .map(|l| l.name())
        .collect();
    anyhow::bail!(
        "--assistant {name:?}: {why} in task {task:?} (its labelers with an assistant: {assisted:?})"
    )
}

/// Sample a checkpoint and queue reviews of the experiment's candidate goals.
fn queue_reviews(o: &Overrides, src: &ReviewSource, bars: &Bars) -> Result<()> {
    with_policy(o, &src.exp, &src.checkpoint, |exp, opened| {
        queue_reviews_with(exp, opened, src, bars)
    })
}

fn queue_reviews_with(
    exp: &goodhart::experiment::Experiment,
    stages::OpenedPolicy {
        model, setup, task, ..
    }: stages::OpenedPolicy,
    src: &ReviewSource,
    bars: &Bars,
) -> Result<()> {
    let review = &setup.strategies.review;
    let cfg = goodhart::feedback::ReviewQueueConfig {
        items: src.items,
        k: src.k.unwrap_or(review.candidates.len().min(3)),
        shown: src.shown.unwrap_or(review.shown),
        prompts: src.prompts,
        per_prompt: src.per_prompt,
        sampling: setup.sampling.clone(),
    };
    let mut store = LabelStore::open(&src.store)?;
    let name = src.checkpoint.display().to_string();
    let policy = goodhart::feedback::PolicyTag {
        name: &name,
        step: None,
    };
    let mut rng = rng::stream(exp.seed, &format!("cli/review/{}", src.batch));
    let n = goodhart::feedback::queue_reviews(
        &mut store,
        &model,
        &policy,
        task.as_ref(),
        &task.prompts(Split::Train),
        &review.candidates,
        &cfg,
        &src.batch,
        &mut rng,
    )?;
    bars.println(&format!(
        "{n} reviews of {} candidate goals each queued in batch {:?} of {}; people review them at /review",
        cfg.k,
        src.batch,
        src.store.display()
    ));
    Ok(())
}

fn label_serve(
    store: &Path,
    bind: std::net::SocketAddr,
    options: goodhart_web::ServeOptions,
) -> Result<()> {
    let app = goodhart_web::App::open_with(store, options)?;
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
        outln!("serving http://{addr}/");
        eprintln!("{queued} pairs queued; {} people: {}; Ctrl-C stops", users.len(), escape(&users.join(", ")));
        goodhart_web::serve(listener, app, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("server failed")
    })
}

fn label_stats(store: &Path, json: Option<&Path>) -> Result<()> {
    let store = LabelStore::open_existing(store)?;
    // Gold is a function of the prompt's text and the completion, for the generated tasks.
    let tasks = task::generated()?;
    let gold = |t: &str, p: &str, c: &str| {
        let (_, task) = tasks.iter().find(|(name, _)| *name == t)?;
        task.gold(p, c).ok()
    };
    let stats = store.labeler_stats(&gold)?;
    let frac = |t: Tally| {
        if t.compared == 0 {
            "-".to_string()
        } else {
            let (k, n) = (t.agreed, t.compared);
            format!("{:.3} ({k}/{n})", k as f64 / n as f64)
        }
    };
    outln!(
        "{:<16} {:>6} {:<14} {:>6} {:>5} {:>5} {:>4} {:>5}  {:<20} {:<20} {:>9}",
        "labeler",
        "kind",
        "assistant",
        "labels",
        "a",
        "b",
        "tie",
        "can't",
        "agreement",
        "vs gold",
        "median s"
    );
    for s in &stats {
        outln!(
            "{:<16} {:>6} {:<14} {:>6} {:>5} {:>5} {:>4} {:>5}  {:<20} {:<20} {:>9}",
            escape(&s.labeler),
            if s.person { "person" } else { "sim" },
            escape(s.assistant.as_deref().unwrap_or("-")),
            s.comparisons,
            s.answers.a,
            s.answers.b,
            s.answers.tie,
            s.answers.cant_tell,
            frac(s.agreement),
            frac(s.gold_agreement),
            s.median_seconds.map_or("-".into(), |m| format!("{m:.1}"))
        );
    }
    let shown = goodhart::feedback::people_by_assistant(&stats);
    if shown.iter().any(|s| s.assistant.is_some()) {
        outln!("\npeople, by the assistant they were shown (vs gold: 95% normal interval)");
        for s in &shown {
            outln!(
                "{:<24} {:>3} people {:>6} labels  vs gold {} ({}/{})",
                escape(s.assistant.as_deref().unwrap_or("no assistant")),
                s.people,
                s.labels,
                goodhart::analysis::judges::share(&share_of(s.gold_agreement)),
                s.gold_agreement.agreed,
                s.gold_agreement.compared,
            );
        }
    }
    outln!("{} pairs queued", store.queued()?);
    let goals = store.goal_tally()?;
    if !goals.is_empty() {
        outln!(
            "\n{:<48} {:>7} {:>7} {:>5}",
            "goal (reviews)",
            "offered",
            "chosen",
            "kept"
        );
        for g in &goals {
            outln!(
                "{:<48} {:>7} {:>7} {:>5}",
                escape(&g.goal),
                g.offered,
                g.chosen,
                g.kept
            );
        }
    }
    if let Some(path) = json {
        let figures =
            serde_json::json!({ "labelers": stats, "people_by_assistant": shown, "goals": goals });
        fsutil::write_atomic(path, &serde_json::to_vec_pretty(&figures)?)?;
    }
    Ok(())
}

/// The share that agreed, as a mean of 0/1 with its standard error.
fn share_of(t: Tally) -> goodhart::stats::Stat {
    let xs: Vec<f64> = (0..t.compared)
        .map(|i| f64::from(u8::from(i < t.agreed)))
        .collect();
    goodhart::stats::Stat::of(&xs)
}
