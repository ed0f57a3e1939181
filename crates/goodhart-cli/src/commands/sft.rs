//! `goodhart sft`: train a base policy on a task's demonstrations.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use goodhart::experiment::config::DEFAULT_EXPERIMENT_NAME;
use goodhart::experiment::stages;
use goodhart::runtime;

use super::{check_output_dir, load_experiment, ExperimentArgs, Overrides};
use crate::progress::Bars;

#[derive(Args)]
pub struct SftArgs {
    #[command(flatten)]
    exp: ExperimentArgs,
    /// Directory to write the checkpoint to.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing checkpoint directory.
    #[arg(long)]
    force: bool,
}

pub fn sft_cmd(o: &Overrides, args: SftArgs, bars: &Bars) -> Result<()> {
    check_output_dir(&args.out, args.force)?;
    let exp = load_experiment(args.exp.experiment.as_deref(), o)?;
    let setup = exp.task(args.exp.task.as_deref())?;
    let threads = runtime::set_threads(exp.threads)?;
    runtime::set_bf16(exp.bf16)?;
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
    let (model, report) = runtime::on_workers(|| {
        stages::train_base_policy(setup, task.as_ref(), exp.seed, &device, bars)
    })?;
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
