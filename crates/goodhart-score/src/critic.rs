//! A learned critic: a copy of the base policy's trunk whose scalar head,
//! read where each step of a completion ends, gives the log-odds that the
//! step is wrong. It points at the step it believes most likely wrong.
//!
//! It is trained the way assisted oversight intends, never from gold: the
//! critic points at one step of a base-policy completion, a judge checks
//! that one step (cheap, where checking the whole answer is not), and the
//! critic learns from the judge's verdicts on the steps that were pointed
//! at. Round 1's pointers are drawn at random; each later round's checks are
//! pointed by the critic of the round before (the shape of recursive reward
//! modelling: the assistant of round k is the agent trained at round k - 1),
//! with a share drawn at random to keep exploring. Each round's critic starts
//! again from the base policy and learns every verdict gathered so far.

use std::collections::HashMap;
use std::sync::Mutex;

use rand::Rng as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::feedback::assistant::most_suspicious_first;
use crate::feedback::Critic;
use crate::model::{Mask, Model, SequenceBatch};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::stats::Stat;
use crate::task::Task;
use crate::train::{LossAt, OptimConfig, OptimKeys, Trainer};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CriticConfig {
    /// Rounds of critic training (0: the task has no learned critic).
    pub rounds: usize,
    /// Steps a judge checks per round, each on a base-policy completion.
    pub checks: usize,
    /// Optimiser steps per round.
    pub steps: usize,
    /// Checked steps per optimiser step.
    pub batch_size: usize,
    #[serde(deserialize_with = "optim_over_defaults")]
    pub optim: OptimConfig,
    /// Share of a later round's pointers drawn at random rather than from the critic before.
    pub explore: f64,
    /// Held-out base-policy completions on which precision and recall are measured.
    pub heldout: usize,
}

impl Default for CriticConfig {
    fn default() -> Self {
        Self {
            rounds: 0,
            checks: 2000,
            steps: 300,
            batch_size: 32,
            optim: OptimConfig {
                lr: 2e-3,
                warmup_steps: 20,
                ..OptimConfig::default()
            },
            explore: 0.2,
            heldout: 512,
        }
    }
}

/// An `optim` table sets keys over the optimiser defaults of this section.
fn optim_over_defaults<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<OptimConfig, D::Error> {
    OptimKeys::read_over(d, CriticConfig::default().optim)
}

impl CriticConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rounds > 0 && (self.checks == 0 || self.steps == 0 || self.batch_size == 0) {
            return Err(Error::invalid(
                "critic",
                "checks, steps and batch_size must be at least 1",
            ));
        }
        if !(0.0..=1.0).contains(&self.explore) {
            return Err(Error::invalid(
                "critic.explore",
                "must be a probability in [0, 1]",
            ));
        }
        self.optim.validate("critic.optim")
    }
}

/// How one round's critic did: what its judge confirmed while training it,
/// and its pointers against gold on held-out completions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CriticRound {
    pub round: usize,
    /// Steps checked so far (this round's and every earlier round's).
    pub checks: usize,
    /// Share of this round's checks at which the judge found a flaw.
    pub confirmed: Stat,
    pub train_loss: Vec<LossAt>,
    /// Over every held-out completion with steps, then per difficulty.
    pub overall: CriticScores,
    pub by_difficulty: Vec<(u32, CriticScores)>,
}

/// A critic's pointers against gold, each a share with its standard error.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CriticScores {
    /// Completions with steps, and how many of them have a wrong step.
    pub completions: usize,
    pub flawed: usize,
    /// P(the pointed step is wrong | a step is wrong): what a judge gains.
    pub hit: Stat,
    /// P(the pointed step is wrong | the critic flags it, P(wrong) >= 0.5).
    pub precision: Stat,
    /// P(the critic flags a wrong step | a step is wrong).
    pub recall: Stat,
}

/// A trained critic, as labelers use it (its beliefs are remembered).
pub struct LearnedCritic {
    pub model: Model,
    /// Its beliefs about each completion it was asked of.
    memo: Mutex<HashMap<(String, String), Vec<f64>>>,
}

/// A (prompt, completion).
type Completion = (String, String);

/// A completion with steps, and its encoding.
type Pointable = (Completion, Encoded);

/// A completion encoded for the critic, with where each step ends.
struct Encoded {
    prompt: Vec<u32>,
    completion: Vec<u32>,
    /// Sequence position (prompt + completion) of each step's last token.
    step_at: Vec<usize>,
}

fn encode(model: &Model, step_ends: &[usize], prompt: &str, completion: &str) -> Result<Encoded> {
    let tok = model.tokenizer();
    let p = tok.encode_prompt(prompt)?;
    let c = tok.encode_completion_as(completion, true)?;
    let mut step_at = vec![];
    for &end in step_ends {
        let k = tok
            .encode_completion_as(&completion[..end], false)?
            .len()
            .clamp(1, c.len().max(1));
        step_at.push(p.len() + k - 1);
    }
    Ok(Encoded {
        prompt: p,
        completion: c,
        step_at,
    })
}

/// The critic's log-odds at each `(sequence, position)` of `batch`, `[n]`.
fn logits_at(
    model: &Model,
    train: bool,
    seqs: &[&Encoded],
    at: &[(usize, usize)],
) -> Result<candle_core::Tensor> {
    let pairs: Vec<(&[u32], &[u32])> = seqs
        .iter()
        .map(|e| (e.prompt.as_slice(), e.completion.as_slice()))
        .collect();
    let batch = SequenceBatch::new(&pairs, model.tokenizer().pad_id(), model.device())?;
    let net = if train {
        model.train_net()
    } else {
        model.eval_net()
    };
    let hidden = net.hidden(&batch.input, &batch.positions, Mask::Causal, None)?;
    let values = net.scalar(&hidden)?; // [b, t]
    let t = values.dim(1)?;
    let flat: Vec<u32> = at.iter().map(|&(i, p)| (i * t + p) as u32).collect();
    let idx = candle_core::Tensor::from_vec(flat, at.len(), model.device())?;
    Ok(values.flatten_all()?.index_select(&idx, 0)?)
}

impl LearnedCritic {
    pub fn new(model: Model) -> Self {
        Self {
            model,
            memo: Mutex::new(HashMap::new()),
        }
    }

    /// P(wrong) of each step of each `(prompt, completion, step ends)`.
    pub fn probabilities(&self, items: &[(&str, &str, Vec<usize>)]) -> Result<Vec<Vec<f64>>> {
        let encoded = items
            .iter()
            .map(|(p, c, ends)| encode(&self.model, ends, p, c))
            .collect::<Result<Vec<_>>>()?;
        self.encoded_beliefs(&encoded.iter().collect::<Vec<_>>())
    }

    /// P(wrong) of each step of each encoded completion.
    fn encoded_beliefs(&self, encoded: &[&Encoded]) -> Result<Vec<Vec<f64>>> {
        let mut out = Vec::with_capacity(encoded.len());
        for chunk in encoded.chunks(64) {
            let at: Vec<(usize, usize)> = chunk
                .iter()
                .enumerate()
                .flat_map(|(i, e)| e.step_at.iter().map(move |&p| (i, p)))
                .collect();
            if at.is_empty() {
                out.extend(chunk.iter().map(|_| vec![]));
                continue;
            }
            let logits = logits_at(&self.model, false, chunk, &at)?.to_vec1::<f32>()?;
            let mut next = logits.into_iter();
            for e in chunk {
                out.push(
                    e.step_at
                        .iter()
                        .map(|_| 1.0 / (1.0 + (-f64::from(next.next().unwrap_or(0.0))).exp()))
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}

/// The most suspicious step: the first of the highest P(wrong).
fn argmax(ps: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &p) in ps.iter().enumerate() {
        if best.is_none_or(|b| p > ps[b]) {
            best = Some(i);
        }
    }
    best
}

impl Critic for LearnedCritic {
    fn beliefs(&self, prompt: &str, completion: &str, step_ends: &[usize]) -> Result<Vec<f64>> {
        let key = (prompt.to_string(), completion.to_string());
        if let Some(ps) = self.memo.lock().expect("critic memo").get(&key) {
            return Ok(ps.clone());
        }
        let ps = self
            .probabilities(&[(prompt, completion, step_ends.to_vec())])?
            .remove(0);
        self.memo
            .lock()
            .expect("critic memo")
            .insert(key, ps.clone());
        Ok(ps)
    }
}

/// One checked step: completion `item`, step `step`, and whether the judge found it wrong.
struct Check {
    item: usize,
    step: usize,
    wrong: bool,
}

/// Train `cfg.rounds` critics from `base` on checks of `train` completions,
/// measuring each on `heldout` ones against gold. Completions without steps
/// are left out (there is nothing to point at); with none at all, each
/// round's critic is the untrained base copy, and its report says 0 checks.
pub fn train_critics(
    base: &Model,
    task: &dyn Task,
    cfg: &CriticConfig,
    train: &[(String, String)],
    heldout: &[(String, String)],
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<Vec<(LearnedCritic, CriticRound)>> {
    let (train, heldout) = with_steps(base, task, train, heldout)?;
    let mut checks: Vec<Check> = vec![];
    let mut out: Vec<(LearnedCritic, CriticRound)> = vec![];
    progress.start("critic", (cfg.rounds * cfg.steps) as u64);
    for round in 1..=cfg.rounds {
        // Point: at random in round 1, else mostly where the critic before points.
        let items = draw_items(train.len(), cfg.checks, rng);
        let previous = out.last().map(|(c, _)| c);
        let beliefs = match previous {
            Some(critic) => {
                let chosen: Vec<&Encoded> = items.iter().map(|&i| &train[i].1).collect();
                Some(critic.encoded_beliefs(&chosen)?)
            }
            None => None,
        };
        let mut confirmed = vec![];
        for (k, &i) in items.iter().enumerate() {
            let n = train[i].1.step_at.len();
            let (u, random_step) = (rng.random::<f64>(), rng.random_range(0..n));
            let step = match &beliefs {
                Some(b) if u >= cfg.explore => argmax(&b[k]).unwrap_or(random_step),
                _ => random_step,
            };
            let (p, c) = &train[i].0;
            let wrong = task.step_is_wrong(p, c, step);
            confirmed.push(f64::from(wrong));
            checks.push(Check {
                item: i,
                step,
                wrong,
            });
        }
        let (critic, report) = fitted(base, task, cfg, &train, &checks, &heldout, rng, progress)?;
        let report = CriticRound {
            round,
            confirmed: Stat::of(&confirmed),
            ..report
        };
        out.push((critic, report));
    }
    progress.finish();
    Ok(out)
}

/// Train an honest defender against a fixed attacker (not by self-play): on
/// `train` completions the attacker points at its `pointers` most suspicious
/// steps, the judge checks one of them at random (misread with probability
/// `noise`), and the defender, a fresh copy of `base` with the critic's
/// head, learns from those verdicts (never from gold) which pointed steps
/// are wrong: what it concedes. Measured on `heldout` as a critic is.
#[allow(clippy::too_many_arguments)]
pub fn train_defender(
    base: &Model,
    task: &dyn Task,
    cfg: &CriticConfig,
    attacker: &LearnedCritic,
    pointers: usize,
    noise: f64,
    train: &[(String, String)],
    heldout: &[(String, String)],
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<(LearnedCritic, CriticRound)> {
    let (train, heldout) = with_steps(base, task, train, heldout)?;
    progress.start("defender", cfg.steps as u64);
    let items = draw_items(train.len(), cfg.checks, rng);
    let chosen: Vec<&Encoded> = items.iter().map(|&i| &train[i].1).collect();
    let beliefs = attacker.encoded_beliefs(&chosen)?;
    let mut checks = Vec::with_capacity(items.len());
    let mut confirmed = Vec::with_capacity(items.len());
    for (&i, b) in items.iter().zip(&beliefs) {
        let mut order = most_suspicious_first(b);
        order.truncate(pointers.max(1));
        let (pick, misread) = (
            rng.random_range(0..order.len()),
            rng.random::<f64>() < noise,
        );
        let step = order[pick];
        let (p, c) = &train[i].0;
        let wrong = task.step_is_wrong(p, c, step) != misread;
        confirmed.push(f64::from(u8::from(wrong)));
        checks.push(Check {
            item: i,
            step,
            wrong,
        });
    }
    let (defender, report) = fitted(base, task, cfg, &train, &checks, &heldout, rng, progress)?;
    progress.finish();
    let report = CriticRound {
        confirmed: Stat::of(&confirmed),
        ..report
    };
    Ok((defender, report))
}

/// `checks` completions to check, drawn with replacement from `n` (none when there are none).
fn draw_items(n: usize, checks: usize, rng: &mut Rng) -> Vec<usize> {
    if n == 0 {
        return vec![];
    }
    (0..checks).map(|_| rng.random_range(0..n)).collect()
}

/// The completions of `train` with steps (nothing else can be pointed at),
/// encoded for the critic, and those of `heldout`.
fn with_steps(
    base: &Model,
    task: &dyn Task,
    train: &[(String, String)],
    heldout: &[(String, String)],
) -> Result<(Vec<Pointable>, Vec<Completion>)> {
    let has_steps = |(p, c): &&(String, String)| task.n_steps(p, c) > 0;
    let train = train
        .iter()
        .filter(has_steps)
        .map(|(p, c)| {
            Ok((
                (p.clone(), c.clone()),
                encode(base, &task.step_ends(p, c), p, c)?,
            ))
        })
        .collect::<Result<_>>()?;
    Ok((train, heldout.iter().filter(has_steps).cloned().collect()))
}

/// A fresh copy of `base` fitted to `checks` and measured on `heldout`
/// against gold (its report's round 1, and `confirmed` empty: the caller's).
#[allow(clippy::too_many_arguments)]
fn fitted(
    base: &Model,
    task: &dyn Task,
    cfg: &CriticConfig,
    train: &[Pointable],
    checks: &[Check],
    heldout: &[(String, String)],
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<(LearnedCritic, CriticRound)> {
    let model = base.deep_copy(true)?;
    let train_loss = if checks.is_empty() {
        progress.advance(cfg.steps as u64);
        vec![]
    } else {
        fit(&model, train, checks, cfg, rng, progress)?
    };
    let critic = LearnedCritic::new(model.deep_copy(false)?);
    let (overall, by_difficulty) = measure(&critic, task, heldout)?;
    let report = CriticRound {
        round: 1,
        checks: checks.len(),
        confirmed: Stat::default(),
        train_loss,
        overall,
        by_difficulty,
    };
    Ok((critic, report))
}

/// Logistic regression of the judge's verdicts on the critic's step log-odds.
fn fit(
    model: &Model,
    train: &[Pointable],
    checks: &[Check],
    cfg: &CriticConfig,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<Vec<LossAt>> {
    let mut trainer = Trainer::new(model.vars(), &cfg.optim, cfg.steps, "critic")?;
    let mut losses = Vec::with_capacity(cfg.steps);
    for _ in 0..cfg.steps {
        let batch: Vec<&Check> = (0..cfg.batch_size)
            .map(|_| &checks[rng.random_range(0..checks.len())])
            .collect();
        let stats = trainer.step_sharded(batch.len(), |r| {
            let part = &batch[r];
            let seqs: Vec<&Encoded> = part.iter().map(|c| &train[c.item].1).collect();
            let at: Vec<(usize, usize)> = part
                .iter()
                .enumerate()
                .map(|(i, c)| (i, train[c.item].1.step_at[c.step]))
                .collect();
            let x = logits_at(model, true, &seqs, &at)?;
            let y = candle_core::Tensor::from_vec(
                part.iter()
                    .map(|c| f32::from(u8::from(c.wrong)))
                    .collect::<Vec<_>>(),
                part.len(),
                model.device(),
            )?;
            // -(y log s(x) + (1-y) log s(-x)) = softplus(x) - y x, with a stable softplus.
            let softplus = (x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
            Ok(((softplus - (&y * &x)?)?.sum_all()? / batch.len() as f64)?)
        })?;
        losses.push(stats.loss_at());
        progress.advance(1);
    }
    Ok(losses)
}

/// Precision, recall and hit rate of `critic`'s pointers against gold, over
/// all of `items` and per difficulty.
pub fn measure(
    critic: &LearnedCritic,
    task: &dyn Task,
    items: &[(String, String)],
) -> Result<(CriticScores, Vec<(u32, CriticScores)>)> {
    let refs: Vec<(&str, &str, Vec<usize>)> = items
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str(), task.step_ends(p, c)))
        .collect();
    let beliefs = critic.probabilities(&refs)?;
    let mut rows = vec![];
    for ((p, c), b) in items.iter().zip(&beliefs) {
        let Some(step) = argmax(b) else { continue };
        rows.push(Pointed {
            difficulty: task.difficulty(p)?,
            flawed: task.first_wrong_step(p, c).is_some(),
            hit: task.step_is_wrong(p, c, step),
            flagged: b[step] >= 0.5,
        });
    }
    let scores = |rows: &[&Pointed]| {
        let share = |keep: fn(&Pointed) -> bool, hit: fn(&Pointed) -> bool| {
            let xs: Vec<f64> = rows
                .iter()
                .filter(|r| keep(r))
                .map(|r| f64::from(u8::from(hit(r))))
                .collect();
            Stat::of(&xs)
        };
        CriticScores {
            completions: rows.len(),
            flawed: rows.iter().filter(|r| r.flawed).count(),
            hit: share(|r| r.flawed, |r| r.hit),
            precision: share(|r| r.flagged, |r| r.hit),
            recall: share(|r| r.flawed, |r| r.hit && r.flagged),
        }
    };
    let all: Vec<&Pointed> = rows.iter().collect();
    let mut levels: Vec<u32> = rows.iter().map(|r| r.difficulty).collect();
    levels.sort_unstable();
    levels.dedup();
    let by = levels
        .into_iter()
        .map(|d| {
            let at: Vec<&Pointed> = rows.iter().filter(|r| r.difficulty == d).collect();
            (d, scores(&at))
        })
        .collect();
    Ok((scores(&all), by))
}

/// One held-out completion as the critic pointed at it.
struct Pointed {
    difficulty: u32,
    /// It has a wrong step.
    flawed: bool,
    /// The pointed step is wrong.
    hit: bool,
    /// The critic believes the pointed step wrong (P >= 0.5).
    flagged: bool,
}

#[cfg(test)]
mod tests;
