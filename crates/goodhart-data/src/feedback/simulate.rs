//! Simulated labelling: sample pairs of a policy's completions, have every
//! labeler compare each pair, and record everything in the label store.

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::store::Writer;
use super::{Answer, Assist, LabelStore, Labeler, NewComparison, NewSample};
use crate::error::{Error, Result};
use crate::model::sample::{sample, Sample, SamplingConfig};
use crate::model::Model;
use crate::progress::Progress;
use crate::task::{Split, Task};

/// The label budget: pairs of base-policy completions, each compared by every labeler.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelsConfig {
    /// Pairs to label for the first reward model.
    pub pairs: usize,
    /// Pairs written per transaction (a killed run loses at most this many).
    pub commit_every: usize,
    /// How the pairs are sampled.
    pub sampling: SamplingConfig,
    /// The prompts the pairs are drawn on: "train", or "shift_train" (prompts
    /// of the shifted distribution, none of them in the shifted split), so that
    /// the reward model learns what the shifted distribution offers.
    pub split: Split,
    /// The labelled range: only completions of at most this many characters
    /// are put to the labelers (a pair with a longer one is not labelled);
    /// none: any length. What the reward model learns of longer completions
    /// is then extrapolation, and the extremal verdict asks whether proxy and
    /// gold part there.
    pub max_chars: Option<usize>,
}

impl Default for LabelsConfig {
    fn default() -> Self {
        Self {
            pairs: 2000,
            commit_every: 64,
            sampling: SamplingConfig::default(),
            split: Split::Train,
            max_chars: None,
        }
    }
}

impl LabelsConfig {
    pub fn validate(&self) -> Result<()> {
        if self.pairs == 0 {
            return Err(Error::invalid("labels.pairs", "must be at least 1"));
        }
        if self.commit_every == 0 {
            return Err(Error::invalid("labels.commit_every", "must be at least 1"));
        }
        if !matches!(self.split, Split::Train | Split::ShiftTrain) {
            return Err(Error::invalid(
                "labels.split",
                "must be \"train\" or \"shift_train\": labels on the prompts policies are measured on would leak them",
            ));
        }
        if self.max_chars == Some(0) {
            return Err(Error::invalid(
                "labels.max_chars",
                "must be at least 1 (leave it out for any length)",
            ));
        }
        self.sampling.validate().map_err(|e| e.within("labels"))
    }
}

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
    progress.start(&format!("labels {batch}"), cfg.pairs as u64);
    let done = sample_pairs(model, prompts, cfg, rng, |pairs, rng| {
        let answers = label_pairs(store, task, policy, labelers, pairs, batch, rng)?;
        progress.advance(answers.len() as u64);
        Ok(())
    })?;
    progress.finish();
    Ok(done)
}

/// Have every labeler compare each of `pairs` (a prompt and two of `policy`'s
/// completions of it) and record them in `batch`, in one transaction. Returns
/// each pair's answers, one per labeler in order.
pub fn label_pairs(
    store: &mut LabelStore,
    task: &dyn Task,
    policy: &PolicyTag,
    labelers: &[Labeler],
    pairs: Vec<(&str, Sample, Sample)>,
    batch: &str,
    rng: &mut crate::rng::Rng,
) -> Result<Vec<Vec<Answer>>> {
    let judged = pairs
        .into_iter()
        .map(|(prompt, a, b)| {
            let answers = labelers
                .iter()
                .map(|l| l.compare(prompt, &a.text, &b.text, rng))
                .collect::<Result<Vec<_>>>()?;
            Ok((prompt, a, b, answers))
        })
        .collect::<Result<Vec<_>>>()?;
    store.write(|w| {
        for (prompt, a, b, answers) in &judged {
            let (ia, ib) = record_pair(w, task, policy, prompt, a, b)?;
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
    Ok(judged.into_iter().map(|(_, _, _, a)| a).collect())
}

/// Sample `cfg.pairs` pairs as [`simulate_labels`] does and queue them in `batch`
/// for people to label in the web app (`goodhart label serve`). With an
/// `assistant` (a labeler with one), its pointers at each side's steps are
/// recorded with the pair, for the page to show.
#[allow(clippy::too_many_arguments)]
pub fn queue_pairs(
    store: &mut LabelStore,
    model: &Model,
    policy: &PolicyTag,
    task: &dyn Task,
    prompts: &[String],
    cfg: &LabelsConfig,
    batch: &str,
    assistant: Option<&Labeler>,
    rng: &mut crate::rng::Rng,
) -> Result<usize> {
    sample_pairs(model, prompts, cfg, rng, |pairs, rng| {
        let assists = pairs
            .iter()
            .map(|(prompt, a, b)| match assistant {
                Some(l) => Assist::of(l, task, prompt, &a.text, &b.text, rng),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;
        store.write(|w| {
            for ((prompt, a, b), assist) in pairs.iter().zip(&assists) {
                let (ia, ib) = record_pair(w, task, policy, prompt, a, b)?;
                let queued = w.queue(ia, ib, batch)?;
                if let Some(assist) = assist {
                    w.assist(queued, assist)?;
                }
            }
            Ok(())
        })
    })
}

fn record_pair(
    w: &mut Writer,
    task: &dyn Task,
    policy: &PolicyTag,
    prompt: &str,
    a: &Sample,
    b: &Sample,
) -> Result<(i64, i64)> {
    Ok((
        record_sample(w, task, policy, prompt, a)?,
        record_sample(w, task, policy, prompt, b)?,
    ))
}

/// Record a policy's sample of a training prompt; its id in the store.
pub(super) fn record_sample(
    w: &mut Writer,
    task: &dyn Task,
    policy: &PolicyTag,
    prompt: &str,
    s: &Sample,
) -> Result<i64> {
    let prompt_id = w.prompt(task.name(), "train", prompt)?;
    w.sample(&NewSample {
        prompt_id,
        completion: &s.text,
        policy: policy.name,
        step: policy.step,
        logprob: Some(s.logprob()),
        finished: Some(s.finished()),
    })
}

/// Sample `cfg.pairs` pairs of distinct completions, `commit_every` at a time,
/// handing each chunk to `chunk`. Two identical completions carry no preference:
/// they are skipped, as is a pair with a completion outside the labelled range
/// (`max_chars`). Returns the number of pairs.
fn sample_pairs<'p>(
    model: &Model,
    prompts: &'p [String],
    cfg: &LabelsConfig,
    rng: &mut crate::rng::Rng,
    mut chunk: impl FnMut(Vec<(&'p str, Sample, Sample)>, &mut crate::rng::Rng) -> Result<()>,
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
        let mut pairs = Vec::with_capacity(n);
        let mut it = samples.into_iter();
        for prompt in chosen {
            let (a, b) = (
                it.next().expect("two samples"),
                it.next().expect("two samples"),
            );
            let labelled = |s: &Sample| cfg.max_chars.is_none_or(|m| s.text.chars().count() <= m);
            if a.text != b.text && labelled(&a) && labelled(&b) {
                pairs.push((prompt.as_str(), a, b));
            }
        }
        if pairs.is_empty() {
            barren += 1;
            if barren >= 20 {
                let within = match cfg.max_chars {
                    Some(m) => format!(" or completions longer than labels.max_chars ({m})"),
                    None => String::new(),
                };
                return Err(crate::Error::invalid(
                    "labels",
                    format!("the policy keeps writing identical completions{within}: {done} distinct pairs of {} found", cfg.pairs),
                ));
            }
            continue;
        }
        barren = 0;
        done += pairs.len();
        chunk(pairs, rng)?;
    }
    Ok(done)
}
