//! Simulated labelling: sample pairs of a policy's completions, have every
//! labeler compare each pair, and record everything in the label store.

use rand::Rng as _;

use super::{LabelStore, Labeler, NewComparison, NewSample};
use crate::error::Result;
use crate::experiment::config::LabelsConfig;
use crate::model::sample::{sample, Sample, SamplingConfig};
use crate::model::Model;
use crate::progress::Progress;
use crate::task::Task;

/// Where sampled pairs come from in the label store.
pub struct PolicyTag<'a> {
    /// Name of the policy (or checkpoint) in the store.
    pub name: &'a str,
    /// Its training step, when it has one.
    pub step: Option<i64>,
}

/// Sample `cfg.pairs` pairs of distinct completions on `prompts` (drawn at random),
/// have every labeler compare each pair, and record them. Every `commit_every` pairs are one
/// transaction: a killed run keeps every comparison committed before it.
#[allow(clippy::too_many_arguments)]
pub fn simulate_labels(
    store: &mut LabelStore,
    model: &Model,
    policy: &PolicyTag,
    task: &dyn Task,
    labelers: &[Labeler],
    prompts: &[String],
    cfg: &LabelsConfig,
    batch: &str,
    rng: &mut crate::rng::Rng,
    progress: &dyn Progress,
) -> Result<usize> {
    cfg.validate()?;
    if prompts.is_empty() {
        return Err(crate::Error::invalid("labels", "no prompts to label"));
    }
    let sampling = SamplingConfig {
        batch_size: cfg.commit_every.max(1) * 2,
        ..cfg.sampling.clone()
    };
    let mut done = 0;
    let mut barren = 0;
    progress.start(&format!("labels {batch}"), cfg.pairs as u64);
    while done < cfg.pairs {
        let n = cfg.commit_every.min(cfg.pairs - done);
        let chosen: Vec<&String> = (0..n)
            .map(|_| &prompts[rng.random_range(0..prompts.len())])
            .collect();
        let ids = chosen
            .iter()
            .map(|p| model.tokenizer().encode_prompt(p))
            .collect::<Result<Vec<_>>>()?;
        let samples = sample(model, &ids, 2, &sampling, rng)?;
        // Judge first, then write the whole chunk in one transaction. Two identical
        // completions carry no preference: they are skipped, not labelled.
        let mut judged = Vec::with_capacity(n);
        for (i, pair) in samples.chunks(2).enumerate() {
            let (a, b) = (&pair[0], &pair[1]);
            if a.text == b.text {
                continue;
            }
            let answers = labelers
                .iter()
                .map(|l| l.compare(chosen[i], &a.text, &b.text, rng))
                .collect::<Result<Vec<_>>>()?;
            judged.push((chosen[i], a, b, answers));
        }
        if judged.is_empty() {
            barren += 1;
            if barren >= 20 {
                return Err(crate::Error::invalid(
                    "labels",
                    format!("the policy keeps writing identical completions: {done} distinct pairs of {} found", cfg.pairs),
                ));
            }
            continue;
        }
        barren = 0;
        store.write(|w| {
            for (prompt, a, b, answers) in &judged {
                let prompt_id = w.prompt(task.name(), "train", prompt)?;
                let mut record = |s: &Sample| {
                    w.sample(&NewSample {
                        prompt_id,
                        completion: &s.text,
                        policy: policy.name,
                        step: policy.step,
                        logprob: Some(s.logprob()),
                    })
                };
                let (ia, ib) = (record(a)?, record(b)?);
                for (l, answer) in labelers.iter().zip(answers) {
                    w.comparison(&NewComparison {
                        sample_a: ia,
                        sample_b: ib,
                        labeler: l.name(),
                        answer: *answer,
                        reason: None,
                        batch: Some(batch),
                        seconds: None,
                    })?;
                }
            }
            Ok(())
        })?;
        done += judged.len();
        progress.advance(judged.len() as u64);
    }
    progress.finish();
    Ok(done)
}
