//! `goodhart rm`: train a reward model on a label store, or score completions with one.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use goodhart::experiment::stages;
use goodhart::feedback::{Filter, LabelStore};
use goodhart::formats::parse_jsonl;
use goodhart::{rng, runtime};

use super::{fmt_stat, load_experiment, ExperimentArgs, Overrides};
use crate::progress::Bars;

#[derive(Subcommand)]
pub enum RmCommand {
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
        /// A run's folder of the task with the learned critics its labelers' assistants need
        /// (`critic-N/`; default: the base policy's folder).
        #[arg(long)]
        critics: Option<PathBuf>,
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

pub fn rm_cmd(o: &Overrides, cmd: RmCommand, bars: &Bars) -> Result<()> {
    match cmd {
        RmCommand::Train {
            store,
            base,
            out,
            exp: exp_args,
            labeler,
            critics,
            force,
        } => {
            super::check_output_dir(&out, force)?;
            let exp = load_experiment(exp_args.experiment.as_deref(), o)?;
            runtime::set_threads(exp.threads)?;
            runtime::set_bf16(exp.bf16)?;
            let stages::OpenedPolicy {
                model, setup, task, ..
            } = stages::open_policy(&base, &exp, exp_args.task.as_deref(), &runtime::device())?;
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
            // Simulated labelers of the experiment give the noise ceiling of their labels.
            let simulated =
                super::with_critics(setup.labelers(task.as_ref())?, &base, critics.as_deref())?;
            let (rm, report) = runtime::on_workers(|| {
                goodhart::reward::train_reward_model(
                    &model,
                    &comparisons,
                    task.as_ref(),
                    &simulated,
                    &setup.reward_model,
                    &mut rng::stream(exp.seed, "cli/rm"),
                    bars,
                )
            })?;
            rm.save(&out, force)?;
            bars.println(&format!(
                "{} comparisons ({} held out); held-out accuracy vs labeler {}, vs gold {}",
                report.train_comparisons,
                report.heldout_comparisons,
                fmt_stat(&report.accuracy_labeler),
                fmt_stat(&report.accuracy_gold)
            ));
            if let (Some(ceiling), Some(likelier)) =
                (&report.noise_ceiling, &report.accuracy_likelier)
            {
                bars.println(&format!(
                    "  the labels' noise ceiling {}; vs the labeler's likelier answer {}",
                    fmt_stat(ceiling),
                    fmt_stat(likelier)
                ));
            }
            for d in &report.by_difficulty {
                bars.println(&format!(
                    "  difficulty {}: vs labeler {}, vs gold {}",
                    d.difficulty,
                    fmt_stat(&d.vs_labeler),
                    fmt_stat(&d.vs_gold)
                ));
            }
        }
        RmCommand::Score { rm, input } => {
            let rm = goodhart::reward::RewardModel::load(&rm, &runtime::device())?;
            let name = input
                .as_ref()
                .map_or("<stdin>".to_string(), |p| p.display().to_string());
            let reader: Box<dyn std::io::BufRead> = match &input {
                Some(p) => Box::new(std::io::BufReader::new(
                    std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?,
                )),
                None => Box::new(std::io::stdin().lock()),
            };
            let mut rows = vec![];
            for (n, line) in parse_jsonl::<serde_json::Map<String, serde_json::Value>>(
                reader,
                std::path::Path::new(&name),
            )? {
                let line =
                    line.map_err(|e| anyhow::anyhow!("{name}:{n}: not a JSON object: {e}"))?;
                let field = |k: &str| -> Result<String> {
                    line.get(k)
                        .and_then(|x| x.as_str())
                        .map(str::to_string)
                        .with_context(|| format!("{name}:{n}: missing string field {k:?}"))
                };
                let (prompt, completion) = (field("prompt")?, field("completion")?);
                rows.push((line, prompt, completion));
            }
            let items: Vec<(&str, &str)> = rows
                .iter()
                .map(|(_, p, c)| (p.as_str(), c.as_str()))
                .collect();
            let scores = rm.score_texts(&items)?;
            let mut out = std::io::stdout().lock();
            for ((mut v, _, _), s) in rows.into_iter().zip(scores) {
                v.insert("reward".into(), s.mean.into());
                v.insert("spread".into(), s.spread.into());
                writeln!(out, "{}", serde_json::Value::Object(v))?;
            }
        }
    }
    Ok(())
}
