//! A predictive model of the gridworld, in which a formal goal is optimised:
//! a small transformer trained on the base policy's trajectories to predict,
//! after each move, the full state it leads to (one symbol a state, see
//! `task::gridworld::state_symbol`). A policy optimised against the goal as
//! the world model predicts it is measured in the true simulator; the gap
//! between predicted and true satisfaction, as optimisation pushes, is a
//! Goodhart of its own (the optimiser exploits the model's errors).

use std::sync::Mutex;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::model::sample::{sample, Sample};
use crate::model::{Mask, Model, ModelConfig, SequenceBatch};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::score::{measurement_sampling, RewardSource};
use crate::stats::Stat;
use crate::task::gridworld::text::parse_moves;
use crate::task::gridworld::{initial_state, symbol_state, with_states};
use crate::task::spec::{Formula, WorldState};
use crate::task::{Split, Task};
use crate::train::{train_sft, Example, OptimConfig, SftConfig, SftKeys};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldModelConfig {
    /// Base-policy trajectories (one per training map, cycling) it learns from.
    pub trajectories: usize,
    /// Its shape (default: the policy's).
    pub model: Option<ModelConfig>,
    /// Supervised training on the trajectories (a tenth held out).
    #[serde(deserialize_with = "sft_over_defaults")]
    pub sft: SftConfig,
}

impl Default for WorldModelConfig {
    fn default() -> Self {
        Self {
            trajectories: 3000,
            model: None,
            sft: SftConfig {
                steps: 600,
                batch_size: 64,
                optim: OptimConfig {
                    lr: 3e-3,
                    warmup_steps: 30,
                    ..OptimConfig::default()
                },
                ..SftConfig::default()
            },
        }
    }
}

/// An `sft` table sets keys over the training defaults of this section.
fn sft_over_defaults<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<SftConfig, D::Error> {
    SftKeys::read_over(d, WorldModelConfig::default().sft)
}

/// How well the world model learned: its training, and on held-out
/// trajectories the share of states it predicts right from the moves alone
/// (decoding its own predictions) and the share of trajectories whose goal
/// verdict it gets right.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorldModelReport {
    pub sft: crate::train::SftReport,
    pub state_accuracy: Stat,
    pub verdict_accuracy: Stat,
}

/// Train a world model on `base`'s trajectories of `task`'s training maps.
pub fn train(
    task: &dyn Task,
    base: &Model,
    goal: &Formula,
    cfg: &WorldModelConfig,
    max_new_tokens: usize,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<(Model, WorldModelReport)> {
    let examples = trajectories(task, base, cfg.trajectories, max_new_tokens, rng, progress)?;
    fit(base, &examples, goal, cfg, rng, progress)
}

/// `n` trajectories of `base` on `task`'s training maps (cycling), as world-model text.
pub fn trajectories(
    task: &dyn Task,
    base: &Model,
    n: usize,
    max_new_tokens: usize,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<Vec<Example>> {
    if n < 10 {
        return Err(Error::invalid(
            "world_model.trajectories",
            "must be at least 10",
        ));
    }
    let prompts: Vec<String> = task
        .prompts(Split::Train)
        .into_iter()
        .cycle()
        .take(n)
        .collect();
    let tok = base.tokenizer();
    let encoded = prompts
        .iter()
        .map(|p| tok.encode_prompt(p))
        .collect::<Result<Vec<_>>>()?;
    progress.start("world model: trajectories", 1);
    let samples = sample(
        base,
        &encoded,
        1,
        &measurement_sampling(max_new_tokens),
        rng,
    )?;
    progress.finish();
    Ok(samples
        .iter()
        .filter_map(|s| {
            let prompt = &prompts[s.prompt_index];
            Some(Example {
                prompt: prompt.clone(),
                completion: with_states(prompt, &s.text)?,
            })
        })
        .collect())
}

/// Train a world model (shaped like `base` unless `cfg.model` says otherwise)
/// on trajectories in world-model text, a tenth of them held out to measure it.
pub fn fit(
    base: &Model,
    examples: &[Example],
    goal: &Formula,
    cfg: &WorldModelConfig,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<(Model, WorldModelReport)> {
    if examples.len() < 10 {
        return Err(Error::invalid(
            "world_model",
            format!(
                "{} well-formed trajectories to learn from: too few (the policy's moves must parse)",
                examples.len()
            ),
        ));
    }
    let n_held = (examples.len() / 10).max(1);
    let (heldout, train_set) = examples.split_at(n_held);
    let shape = cfg.model.clone().unwrap_or_else(|| base.config().clone());
    let model = Model::init(&shape, base.tokenizer_arc(), rng, base.device())?;
    let sft = train_sft(&model, train_set, heldout, &cfg.sft, rng, progress)?;
    // Decoded from the moves alone, as the optimiser will use it.
    let (mut states, mut verdicts) = (vec![], vec![]);
    for e in heldout {
        let moves: String = e.completion.chars().step_by(2).collect();
        let truth: Vec<char> = e.completion.chars().skip(1).step_by(2).collect();
        let predicted = predict(&model, &[(&e.prompt, &moves)])?.remove(0);
        states.extend(truth.iter().zip(&predicted).map(|(a, b)| f64::from(a == b)));
        let verdict = |symbols: &[char]| satisfied(goal, &e.prompt, symbols);
        verdicts.push(f64::from(verdict(&truth)? == verdict(&predicted)?));
    }
    Ok((
        model,
        WorldModelReport {
            sft,
            state_accuracy: Stat::of(&states),
            verdict_accuracy: Stat::of(&verdicts),
        },
    ))
}

/// The states `model` predicts after each move of each `(prompt, moves)`,
/// decoding greedily among the state symbols, each conditioned on its own
/// predictions so far. Moves that do not parse predict nothing.
pub fn predict(model: &Model, items: &[(&str, &str)]) -> Result<Vec<Vec<char>>> {
    let tok = model.tokenizer();
    let symbols: Vec<u32> = ('a'..='p')
        .map(|c| Ok(tok.encode(&c.to_string())?[0]))
        .collect::<Result<_>>()?;
    let moves: Vec<Vec<char>> = items
        .iter()
        .map(|(_, m)| match parse_moves(m) {
            Some(moves) => moves.iter().map(|m| m.symbol()).collect(),
            None => vec![],
        })
        .collect();
    let prompts = items
        .iter()
        .map(|(p, _)| tok.encode_prompt(p))
        .collect::<Result<Vec<_>>>()?;
    let mut out: Vec<Vec<char>> = vec![vec![]; items.len()];
    let longest = moves.iter().map(Vec::len).max().unwrap_or(0);
    for step in 0..longest {
        let active: Vec<usize> = (0..items.len())
            .filter(|&i| moves[i].len() > step)
            .collect();
        let texts: Vec<Vec<u32>> = active
            .iter()
            .map(|&i| {
                let text: String = (0..=step)
                    .flat_map(|k| std::iter::once(moves[i][k]).chain(out[i].get(k).copied()))
                    .collect();
                tok.encode(&text)
            })
            .collect::<Result<_>>()?;
        for chunk in active.chunks(64).zip(texts.chunks(64)) {
            let (rows, texts) = chunk;
            let pairs: Vec<(&[u32], &[u32])> = rows
                .iter()
                .zip(texts)
                .map(|(&i, t)| (prompts[i].as_slice(), t.as_slice()))
                .collect();
            let batch = SequenceBatch::new(&pairs, tok.pad_id(), model.device())?;
            let net = model.eval_net();
            let logits =
                net.lm_logits(&net.hidden(&batch.input, &batch.positions, Mask::Causal, None)?)?;
            let logits = logits.to_vec3::<f32>()?;
            let last = batch.last.to_vec1::<u32>()?;
            for ((&i, row), &at) in rows.iter().zip(&logits).zip(&last) {
                let scores = &row[at as usize];
                let best = (0..16)
                    .max_by(|&a, &b| {
                        scores[symbols[a] as usize].total_cmp(&scores[symbols[b] as usize])
                    })
                    .expect("16 symbols");
                out[i].push(char::from(b'a' + best as u8));
            }
        }
    }
    Ok(out)
}

/// Whether `goal` holds on the map's initial state followed by `symbols`.
fn satisfied(goal: &Formula, prompt: &str, symbols: &[char]) -> Result<bool> {
    let first =
        initial_state(prompt).ok_or_else(|| Error::invalid("prompt", "not a gridworld map"))?;
    let trace: Vec<WorldState> = std::iter::once(Some(first))
        .chain(
            symbols
                .iter()
                .enumerate()
                .map(|(k, &c)| symbol_state(c, k as u32 + 1)),
        )
        .collect::<Option<_>>()
        .ok_or_else(|| Error::invalid("world model", "predicted a symbol that is not a state"))?;
    Ok(goal.evaluate(&trace).satisfied)
}

/// One RL iteration's rollouts: the share satisfying the goal as the world
/// model predicts it, and as the simulator measures it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "GapRepr")]
pub struct Gap {
    pub predicted: Stat,
    pub simulated: Stat,
}

/// A [`Gap`] as written: named, or a `[predicted, simulated]` pair (records
/// of runs before it was named).
#[derive(Deserialize)]
#[serde(untagged)]
enum GapRepr {
    Named { predicted: Stat, simulated: Stat },
    Pair(Stat, Stat),
}

impl From<GapRepr> for Gap {
    fn from(r: GapRepr) -> Self {
        let (GapRepr::Named {
            predicted,
            simulated,
        }
        | GapRepr::Pair(predicted, simulated)) = r;
        Self {
            predicted,
            simulated,
        }
    }
}

/// The formal goal as the world model predicts it (1 or 0 per completion;
/// moves that do not parse, 0). Every call also records the mean predicted and
/// the mean true satisfaction of the same completions: the gap, per RL iteration.
pub struct WorldModelSpec<'a> {
    pub model: Model,
    pub goal: Formula,
    pub task: &'a dyn Task,
    pub log: Mutex<Vec<Gap>>,
}

impl<'a> WorldModelSpec<'a> {
    /// `goal` (a gridworld formula) in `model`.
    pub fn new(model: Model, goal: Formula, task: &'a dyn Task) -> Self {
        Self {
            model,
            goal,
            task,
            log: Mutex::new(vec![]),
        }
    }
}

impl RewardSource for WorldModelSpec<'_> {
    fn name(&self) -> &str {
        "spec_world_model"
    }

    fn rewards(&self, prompts: &[String], _: &[Vec<u32>], samples: &[Sample]) -> Result<Vec<f64>> {
        let items: Vec<(&str, &str)> = samples
            .iter()
            .map(|s| (prompts[s.prompt_index].as_str(), s.text.as_str()))
            .collect();
        let predicted = predict(&self.model, &items)?;
        let mut rewards = vec![];
        let mut truth = vec![];
        for ((prompt, moves), symbols) in items.iter().zip(&predicted) {
            let parses = parse_moves(moves).is_some();
            rewards.push(f64::from(parses && satisfied(&self.goal, prompt, symbols)?));
            truth.push(
                self.task
                    .goal_satisfied(&self.goal, prompt, moves)
                    .unwrap_or(0.0),
            );
        }
        self.log.lock().expect("world model log").push(Gap {
            predicted: Stat::of(&rewards),
            simulated: Stat::of(&truth),
        });
        Ok(rewards)
    }
}

#[cfg(test)]
mod tests;
