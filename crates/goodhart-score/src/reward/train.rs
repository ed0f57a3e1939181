//! Training a reward model on comparisons: `-log P(label)` with
//! `P(A over B) = p/2 + (1 - p) sigmoid(r(A) - r(B))`, where `p` is the
//! labelers' random-answer rate; ties are 0.5 targets, "can't tell" is dropped.

use candle_core::Tensor;
use rand::seq::SliceRandom;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::config::{RewardInit, RewardModelConfig};
use super::{last_token_scalar, observed, raw_scores, Member, RewardModel, RewardModelInfo};
use crate::error::{Error, Result};
use crate::feedback::{Answer, Comparison, Labeler};
use crate::model::{Model, SequenceBatch};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::stats::Stat;
use crate::task::{Observer, Task};
use crate::tokenize::Tokenizer;
use crate::train::{LossAt, Trainer};

/// How well a reward model learned, on held-out comparisons.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RewardReport {
    /// Comparisons trained on and held out (after dropping "can't tell").
    pub train_comparisons: usize,
    pub heldout_comparisons: usize,
    /// The training loss of each step, of the first member.
    pub train_loss: Vec<LossAt>,
    /// Share of held-out A/B labels the model ranks the same way, and its loss on them.
    pub accuracy_labeler: Stat,
    pub loss_labeler: f64,
    /// The same against gold-derived labels (pairs whose gold differs).
    pub accuracy_gold: Stat,
    pub loss_gold: f64,
    /// Held-out accuracy per difficulty of the prompts.
    pub by_difficulty: Vec<DifficultyAccuracy>,
    /// The best held-out accuracy against the labels any model could expect:
    /// per A/B label, the labeler's own probability of its likelier answer
    /// (`Labeler::p_answers_a`); absent when the labelers were not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_ceiling: Option<Stat>,
    /// Held-out accuracy against the labeler's likelier answer rather than the
    /// answer it gave (the same A/B labels, less those where neither answer is
    /// likelier): what the model learned of the labeler's preferences, its
    /// label noise aside (1 at best); absent when the labelers were not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_likelier: Option<Stat>,
}

/// Held-out accuracy on the pairs of one difficulty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "DifficultyAccuracyRepr")]
pub struct DifficultyAccuracy {
    pub difficulty: u32,
    pub vs_labeler: Stat,
    pub vs_gold: Stat,
}

/// As written now, or as the `[difficulty, vs labeler, vs gold]` triple of older runs.
#[derive(Deserialize)]
#[serde(untagged)]
enum DifficultyAccuracyRepr {
    Named {
        difficulty: u32,
        vs_labeler: Stat,
        vs_gold: Stat,
    },
    Triple(u32, Stat, Stat),
}

impl From<DifficultyAccuracyRepr> for DifficultyAccuracy {
    fn from(r: DifficultyAccuracyRepr) -> Self {
        match r {
            DifficultyAccuracyRepr::Named {
                difficulty,
                vs_labeler,
                vs_gold,
            }
            | DifficultyAccuracyRepr::Triple(difficulty, vs_labeler, vs_gold) => Self {
                difficulty,
                vs_labeler,
                vs_gold,
            },
        }
    }
}

/// A comparison as tokens and a target probability that A is better.
struct Encoded {
    prompt: Vec<u32>,
    a: Vec<u32>,
    b: Vec<u32>,
    target: f32,
}

/// Train a reward model (or ensemble) on `comparisons` of `task`, starting from `base`.
/// `labeled_by` (the simulated labelers who made `comparisons`, or none) give the held-out noise ceiling.
pub fn train_reward_model(
    base: &Model,
    comparisons: &[Comparison],
    task: &dyn Task,
    labeled_by: &[Labeler],
    cfg: &RewardModelConfig,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<(RewardModel, RewardReport)> {
    cfg.validate()?;
    let usable: Vec<&Comparison> = comparisons
        .iter()
        .filter(|c| c.answer != Answer::CantTell)
        .collect();
    let decisive = usable
        .iter()
        .filter(|c| matches!(c.answer, Answer::A | Answer::B))
        .count();
    if usable.len() < 2 || decisive == 0 {
        return Err(Error::invalid(
            "reward_model",
            format!(
                "{} usable comparisons, {decisive} with a preference: too few to learn from",
                usable.len()
            ),
        ));
    }
    let first = usable[0].answer;
    if usable.iter().all(|c| c.answer == first) {
        return Err(Error::invalid(
            "reward_model",
            format!(
                "every comparison says {:?}: a one-sided label set carries no preference to learn",
                first.as_str()
            ),
        ));
    }
    let tok = base.tokenizer();
    let observer = if cfg.observations {
        crate::task::observer(task.name())
    } else {
        None
    };
    let (heldout_idx, train_idx) = split_by_prompt(&usable, cfg.heldout_fraction, rng);
    if train_idx.is_empty() {
        return Err(Error::invalid(
            "reward_model.heldout_fraction",
            "every prompt was held out: lower heldout_fraction or label more prompts",
        ));
    }
    let train_set: Vec<Comparison> = train_idx.iter().map(|&i| usable[i].clone()).collect();
    let train = encode_all(tok, observer, &train_set)?;

    let mut members = vec![];
    let mut report = RewardReport {
        train_comparisons: train.len(),
        heldout_comparisons: heldout_idx.len(),
        ..Default::default()
    };
    progress.start("reward model", (cfg.steps * cfg.ensemble) as u64);
    for m in 0..cfg.ensemble {
        let model = match cfg.init {
            RewardInit::Policy => base.deep_copy(true)?,
            RewardInit::Scratch => {
                let shape = cfg.model.clone().unwrap_or_else(|| base.config().clone());
                Model::init(&shape, base.tokenizer_arc(), rng, base.device())?
            }
        };
        let losses = train_member(
            &model,
            &train,
            cfg.ensemble > 1,
            cfg,
            cfg.steps,
            rng,
            progress,
        )?;
        if m == 0 {
            report.train_loss = losses;
        }
        members.push(model);
    }
    progress.finish();

    // Normalise each member on the base policy's completions (the compared samples).
    let base_completions = completions_of(&train);
    let members: Vec<Member> = members
        .into_iter()
        .map(|model| {
            let (shift, scale) = normalisation(&model, &base_completions)?;
            Ok(Member {
                model,
                shift,
                scale,
            })
        })
        .collect::<Result<_>>()?;
    let mut labelers: Vec<String> = usable.iter().map(|c| c.labeler.clone()).collect();
    labelers.sort();
    labelers.dedup();
    let rm = RewardModel {
        info: RewardModelInfo {
            task: task.name().to_string(),
            tokenizer: tok.spec(),
            labelers,
            comparisons: train.len(),
            normalisation: members.iter().map(|m| (m.shift, m.scale)).collect(),
            p_random: cfg.p_random,
            observes: observer.is_some(),
        },
        members,
    };
    let heldout: Vec<&Comparison> = heldout_idx.iter().map(|&i| usable[i]).collect();
    let ranks_a_first = evaluate(&rm, &heldout, task, &mut report)?;
    (report.noise_ceiling, report.accuracy_likelier) =
        against_likelier_answers(&heldout, &ranks_a_first, labeled_by)?;
    Ok((rm, report))
}

/// Hold out whole prompts (every comparison of them, by every labeler) until
/// about `fraction` of the comparisons are held out: a pair judged by several
/// labelers never lands on both sides. Returns (held out, train) indices, each ascending.
fn split_by_prompt(
    comparisons: &[&Comparison],
    fraction: f64,
    rng: &mut Rng,
) -> (Vec<usize>, Vec<usize>) {
    let mut prompts: Vec<&str> = comparisons.iter().map(|c| c.prompt.as_str()).collect();
    prompts.sort_unstable();
    prompts.dedup();
    prompts.shuffle(rng);
    let target = (comparisons.len() as f64 * fraction).round() as usize;
    let mut held: std::collections::HashSet<&str> = Default::default();
    let mut n_held = 0;
    for p in prompts {
        if n_held >= target {
            break;
        }
        n_held += comparisons.iter().filter(|c| c.prompt == p).count();
        held.insert(p);
    }
    (0..comparisons.len()).partition(|&i| held.contains(comparisons[i].prompt.as_str()))
}

/// Train one member for `steps` steps on `train` (a bootstrap resample of it when `bootstrap`).
fn train_member(
    model: &Model,
    train: &[Encoded],
    bootstrap: bool,
    cfg: &RewardModelConfig,
    steps: usize,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<Vec<LossAt>> {
    let pool: Vec<usize> = if bootstrap {
        (0..train.len())
            .map(|_| rng.random_range(0..train.len()))
            .collect()
    } else {
        (0..train.len()).collect()
    };
    let mut trainer = Trainer::new(model.vars(), &cfg.optim, steps, "reward model")?;
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let batch: Vec<&Encoded> = (0..cfg.batch_size)
            .map(|_| &train[pool[rng.random_range(0..pool.len())]])
            .collect();
        let stats = trainer.step_sharded(batch.len(), |r| {
            bt_loss(model, &batch[r], cfg.p_random, batch.len())
        })?;
        losses.push(stats.loss_at());
        progress.advance(1);
    }
    Ok(losses)
}

fn completions_of(train: &[Encoded]) -> Vec<(&[u32], &[u32])> {
    train
        .iter()
        .flat_map(|e| {
            [
                (e.prompt.as_slice(), e.a.as_slice()),
                (e.prompt.as_slice(), e.b.as_slice()),
            ]
        })
        .collect()
}

/// (shift, scale) that map a model's raw scores on `completions` to mean 0, standard deviation 1.
fn normalisation(model: &Model, completions: &[(&[u32], &[u32])]) -> Result<(f64, f64)> {
    let raw = raw_scores(model, completions)?;
    let s = Stat::of(&raw);
    Ok((s.mean, (s.stderr * (s.n as f64).sqrt()).max(1e-6)))
}

fn encode_all(
    tok: &dyn Tokenizer,
    observer: Option<Observer>,
    comparisons: &[Comparison],
) -> Result<Vec<Encoded>> {
    let completion = |prompt: &str, text: &str, finished: bool| {
        observed(
            tok,
            observer,
            prompt,
            text,
            tok.encode_completion_as(text, finished)?,
        )
    };
    comparisons
        .iter()
        .filter(|c| c.answer != Answer::CantTell)
        .map(|c| {
            Ok(Encoded {
                prompt: tok.encode_prompt(&c.prompt)?,
                a: completion(&c.prompt, &c.a, c.a_finished)?,
                b: completion(&c.prompt, &c.b, c.b_finished)?,
                target: match c.answer {
                    Answer::A => 1.0,
                    Answer::B => 0.0,
                    _ => 0.5,
                },
            })
        })
        .collect()
}

/// Continue training every member of a (trainable) reward model on `comparisons`
/// for `steps` steps, then renormalise on the base policy's completions in `base`.
pub fn fine_tune(
    rm: &mut RewardModel,
    comparisons: &[Comparison],
    base: &[Comparison],
    cfg: &RewardModelConfig,
    steps: usize,
    rng: &mut Rng,
) -> Result<()> {
    let train = encode_all(rm.tokenizer(), rm.observer(), comparisons)?;
    if train.is_empty() {
        return Err(Error::invalid(
            "reward_model",
            "no comparisons to fine-tune on",
        ));
    }
    let base_encoded = encode_all(rm.tokenizer(), rm.observer(), base)?;
    let base_completions = completions_of(&base_encoded);
    let k = rm.members.len();
    for m in &mut rm.members {
        if m.model.vars().is_empty() {
            return Err(Error::invalid(
                "reward_model",
                "a loaded reward model is frozen; fine-tune the one training made",
            ));
        }
        train_member(
            &m.model,
            &train,
            k > 1,
            cfg,
            steps,
            rng,
            &crate::progress::Silent,
        )?;
        (m.shift, m.scale) = normalisation(&m.model, &base_completions)?;
    }
    rm.info.normalisation = rm.members.iter().map(|m| (m.shift, m.scale)).collect();
    rm.info.comparisons = train.len();
    Ok(())
}

/// Held-out accuracy and loss of `rm` on `comparisons`, against their labels and against gold.
pub fn evaluate_on(
    rm: &RewardModel,
    comparisons: &[Comparison],
    task: &dyn Task,
) -> Result<RewardReport> {
    let usable: Vec<&Comparison> = comparisons
        .iter()
        .filter(|c| c.answer != Answer::CantTell)
        .collect();
    let mut report = RewardReport {
        heldout_comparisons: usable.len(),
        ..Default::default()
    };
    evaluate(rm, &usable, task, &mut report)?;
    Ok(report)
}

/// Per held-out A/B label of a given labeler: the labeler's own probability
/// of its likelier answer (their mean is the noise ceiling), and whether the
/// model (`ranks_a_first`, per comparison) ranks that likelier answer first.
fn against_likelier_answers(
    heldout: &[&Comparison],
    ranks_a_first: &[bool],
    labelers: &[Labeler],
) -> Result<(Option<Stat>, Option<Stat>)> {
    let (mut best, mut hits) = (vec![], vec![]);
    for (c, &a_first) in heldout.iter().zip(ranks_a_first) {
        if !matches!(c.answer, Answer::A | Answer::B) {
            continue;
        }
        if let Some(l) = labelers.iter().find(|l| l.name() == c.labeler) {
            let p = l.p_answers_a(&c.prompt, &c.a, &c.b)?;
            best.push(p.max(1.0 - p));
            if p != 0.5 {
                hits.push(f64::from(a_first == (p > 0.5)));
            }
        }
    }
    let stat = |xs: Vec<f64>| (!xs.is_empty()).then(|| Stat::of(&xs));
    Ok((stat(best), stat(hits)))
}

/// Bradley-Terry negative log-likelihood of `batch` (differentiable), summed
/// and divided by `of`: the mean over a batch cut into shards of it.
fn bt_loss(model: &Model, batch: &[&Encoded], p_random: f64, of: usize) -> Result<Tensor> {
    let n = batch.len();
    let mut pairs: Vec<(&[u32], &[u32])> = batch
        .iter()
        .map(|e| (e.prompt.as_slice(), e.a.as_slice()))
        .collect();
    pairs.extend(batch.iter().map(|e| (e.prompt.as_slice(), e.b.as_slice())));
    let seqs = SequenceBatch::new(&pairs, model.tokenizer().pad_id(), model.device())?;
    let r = last_token_scalar(model.train_net(), &seqs)?; // [2n]
    let d = (r.narrow(0, 0, n)? - r.narrow(0, n, n)?)?; // r(A) - r(B)
    let y: Vec<f32> = batch.iter().map(|e| e.target).collect();
    let y = Tensor::from_vec(y, n, model.device())?;
    let loss = if p_random == 0.0 {
        // -(y log s(d) + (1-y) log s(-d)) = softplus(d) - y d, with a stable softplus.
        let softplus = (d.relu()? + (d.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
        (softplus - (&y * &d)?)?
    } else {
        let p = ((candle_nn::ops::sigmoid(&d)? * (1.0 - p_random))? + p_random / 2.0)?;
        let q = (p.neg()? + 1.0)?;
        ((&y * p.log()?)? + ((y.neg()? + 1.0)? * q.log()?)?)?.neg()?
    };
    Ok((loss.sum_all()? / of as f64)?)
}

/// `P(A preferred)` per comparison under the model's likelihood: per member
/// `p/2 + (1 - p) sigmoid(raw(A) - raw(B))` on the raw Bradley-Terry scale the
/// member was trained on, averaged over the members (the ensemble's prediction).
fn predicted_preferences(rm: &RewardModel, encoded: &[Encoded]) -> Result<Vec<f64>> {
    let pairs = completions_of(encoded);
    let p_random = rm.info.p_random;
    let mut p_a = vec![0.0; encoded.len()];
    for m in &rm.members {
        let raw = raw_scores(&m.model, &pairs)?;
        for (i, p) in p_a.iter_mut().enumerate() {
            let d = raw[2 * i] - raw[2 * i + 1];
            *p +=
                (p_random / 2.0 + (1.0 - p_random) / (1.0 + (-d).exp())) / rm.members.len() as f64;
        }
    }
    Ok(p_a)
}

/// One held-out comparison: (difficulty, ranks A first, model's P(A), labeler's target, gold target or None).
type HeldoutRow = (u32, bool, f64, Option<f64>, Option<f64>);

/// Held-out accuracy and loss against the labelers' labels and against gold, by difficulty.
/// The loss is the training objective's: ties count as half of each answer.
fn evaluate(
    rm: &RewardModel,
    heldout: &[&Comparison],
    task: &dyn Task,
    report: &mut RewardReport,
) -> Result<Vec<bool>> {
    if heldout.is_empty() {
        return Ok(vec![]);
    }
    let owned: Vec<Comparison> = heldout.iter().map(|c| (*c).clone()).collect();
    let encoded = encode_all(rm.tokenizer(), rm.observer(), &owned)?;
    let p_model = predicted_preferences(rm, &encoded)?;
    let scores = rm.score_tokens(&completions_of(&encoded))?;
    // Per comparison: (difficulty, ranks A first, model's P(A), labeler's target, gold target or None).
    let mut rows = vec![];
    for (i, (c, e)) in heldout.iter().zip(&encoded).enumerate() {
        let a_first = scores[2 * i].mean > scores[2 * i + 1].mean;
        let (ga, gb) = (task.gold(&c.prompt, &c.a)?, task.gold(&c.prompt, &c.b)?);
        let gold = (ga != gb).then_some(if ga > gb { 1.0 } else { 0.0 });
        rows.push((
            task.difficulty(&c.prompt)?,
            a_first,
            p_model[i],
            Some(e.target as f64),
            gold,
        ));
    }
    let acc = |rows: &[&HeldoutRow], gold: bool| -> (Stat, f64) {
        let mut hits = vec![];
        let mut nll = 0.0;
        let mut n = 0;
        for r in rows {
            let target = if gold { r.4 } else { r.3 };
            if let Some(t) = target {
                if t != 0.5 {
                    hits.push(f64::from(r.1 == (t > 0.5)));
                }
                let p = r.2.clamp(1e-12, 1.0 - 1e-12);
                nll -= t * p.ln() + (1.0 - t) * (1.0 - p).ln();
                n += 1;
            }
        }
        (Stat::of(&hits), nll / n.max(1) as f64)
    };
    let all: Vec<_> = rows.iter().collect();
    (report.accuracy_labeler, report.loss_labeler) = acc(&all, false);
    (report.accuracy_gold, report.loss_gold) = acc(&all, true);
    let mut diffs: Vec<u32> = rows.iter().map(|r| r.0).collect();
    diffs.sort_unstable();
    diffs.dedup();
    for d in diffs {
        let sub: Vec<_> = rows.iter().filter(|r| r.0 == d).collect();
        report.by_difficulty.push(DifficultyAccuracy {
            difficulty: d,
            vs_labeler: acc(&sub, false).0,
            vs_gold: acc(&sub, true).0,
        });
    }
    Ok(rows.iter().map(|r| r.1).collect())
}

#[cfg(test)]
mod tests;
