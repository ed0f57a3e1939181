//! `goodhart sample`: completions of a checkpoint as JSONL, optionally token by
//! token; each line says why its completion stopped (`eos`, `max_new_tokens`,
//! or `context`: the prompt and completion filled the model's context).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use goodhart::experiment::stages;
use goodhart::model::checkpoint;
use goodhart::model::sample::{sample, SamplingConfig};
use goodhart::task::Task;
use goodhart::{fsutil, rng, runtime};

use super::{check_output, Overrides, SplitArg};

#[derive(Args)]
pub struct SampleArgs {
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
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

pub fn sample_cmd(o: &Overrides, args: SampleArgs) -> Result<()> {
    if let Some(path) = &args.out {
        check_output(path, args.force)?;
    }
    runtime::set_threads(o.threads.unwrap_or(0))?;
    let device = runtime::device();
    let (model, info) = checkpoint::load(&args.checkpoint, &device, false)?;
    let task_seed = stages::task_of_checkpoint(&info);
    let task: Option<Box<dyn Task>> = match &task_seed {
        Some((cfg, seed)) => Some(goodhart::reward::build_task(cfg, *seed)?),
        None => None,
    };
    // A policy trained in closed loop samples in its task's environment.
    let model = match &task {
        Some(t) => stages::in_environment(model, t.as_ref())?,
        None => model,
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
    let samples = runtime::on_workers(|| {
        sample(
            &model,
            &ids,
            args.n,
            &cfg,
            &mut rng::stream(seed, "cli/sample"),
        )
    })?;
    if samples.iter().any(|s| !s.logprob().is_finite()) {
        anyhow::bail!(
            "{}: log-probabilities are not finite (the weights hold NaN or infinity)",
            args.checkpoint.display()
        );
    }
    let mut out = Vec::new();
    for s in &samples {
        let prompt = &prompts[s.prompt_index];
        let mut line = serde_json::json!({
            "prompt_index": s.prompt_index,
            "prompt": prompt,
            "completion": s.text,
            "logprob": s.logprob(),
            "finished": s.finished(),
            "stop": s.stop.as_str(),
        });
        // Which stop token, where the model has several.
        if let Some(t) = s.stop_token() {
            line["stop_token"] = t.into();
        }
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
