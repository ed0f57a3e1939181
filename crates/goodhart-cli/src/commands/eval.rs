//! `goodhart eval`: measure a policy checkpoint against gold and every labeler.

use std::path::PathBuf;

use anyhow::Result;
use clap::builder::TypedValueParser as _;
use clap::Args;
use goodhart::experiment::stages;
use goodhart::task::Split;
use goodhart::{fsutil, rng, runtime};

use super::{
    check_output, fmt_stat, load_experiment, with_critics, ExperimentArgs, Overrides, SplitArg,
};

#[derive(Args)]
pub struct EvalArgs {
    /// Checkpoint directory of the policy.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Labelers and sampling come from this experiment's task (default: the embedded one).
    #[command(flatten)]
    exp: ExperimentArgs,
    /// A run's folder of the task with the learned critics its labelers' assistants need
    /// (`critic-N/`; default: the checkpoint's folder).
    #[arg(long)]
    critics: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "heldout")]
    split: SplitArg,
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..).map(|n| n as usize))]
    n_prompts: usize,
    /// Completions per prompt.
    #[arg(long, short = 'n', default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=4096).map(|n| n as usize))]
    n: usize,
    /// Also write the full report (every completion scored) as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

pub fn eval_cmd(o: &Overrides, args: EvalArgs) -> Result<()> {
    if let Some(path) = &args.json {
        check_output(path, args.force)?;
    }
    let exp = load_experiment(args.exp.experiment.as_deref(), o)?;
    runtime::set_threads(exp.threads)?;
    runtime::set_bf16(exp.bf16)?;
    let stages::OpenedPolicy {
        model, setup, task, ..
    } = stages::open_policy(
        &args.checkpoint,
        &exp,
        args.exp.task.as_deref(),
        &runtime::device(),
    )?;
    let labelers = with_critics(
        setup.labelers(task.as_ref())?,
        &args.checkpoint,
        args.critics.as_deref(),
    )?;
    let split: Split = args.split.into();
    let report = runtime::on_workers(|| {
        stages::evaluate_policy(
            &model,
            task.as_ref(),
            &labelers,
            split,
            args.n_prompts,
            args.n,
            setup.sampling.max_new_tokens,
            &mut rng::stream(exp.seed, "cli/eval"),
        )
    })?;
    outln!(
        "{} on {} ({} split): {} prompts x {} samples",
        args.checkpoint.display(),
        task.name(),
        split.name(),
        report.n_prompts,
        report.per_prompt
    );
    outln!("gold            {}", fmt_stat(&report.summary.gold));
    for (name, s) in &report.summary.labelers {
        outln!("labeler {name:8}{}", fmt_stat(s));
    }
    if let Some(s) = &report.summary.spec {
        outln!("formal goal     {}", fmt_stat(s));
    }
    for (name, fid) in &report.summary.fidelity {
        outln!(
            "\nlabeler {name}: correlation with gold {:.3}",
            fid.correlation
        );
        outln!("  difficulty  accuracy (gold = +1)   agreement with gold on pairs");
        for ((d, acc), (_, agree)) in fid.accuracy.iter().zip(&fid.agreement) {
            outln!("  {d:>10}  {:<22} {}", fmt_stat(acc), fmt_stat(agree));
        }
    }
    outln!("\nfeatures:");
    for (name, s) in &report.summary.features {
        outln!("  {name:20} {}", fmt_stat(s));
    }
    if let Some(path) = &args.json {
        fsutil::write_atomic(path, &serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
