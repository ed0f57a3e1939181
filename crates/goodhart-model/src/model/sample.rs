//! Batched autoregressive sampling with a KV cache.
//!
//! Prompts are left-padded into one batch; each prompt's keys are computed
//! once and its cache rows copied to every sample drawn from it. Each decoding
//! step runs the network on one token per row; the choice of token (temperature,
//! top-k, top-p) happens on the host over the step's logits, drawing from the
//! caller's seeded generator. Each row stops at any of the model's stop tokens,
//! at `max_new_tokens`, or where its own prompt and completion fill the
//! context, and says which ([`StopReason`]).

use candle_core::Tensor;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::{Mask, Model};
use crate::error::{Error, Result};
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Softmax temperature; 0 picks the most likely token (greedy).
    pub temperature: f64,
    /// Keep only the k most likely tokens; 0 keeps all.
    pub top_k: usize,
    /// Keep the smallest set of tokens holding this much probability; 1 keeps all.
    pub top_p: f64,
    /// Most tokens generated per completion (the stop token included).
    pub max_new_tokens: usize,
    /// Sequences decoded together (prompts x samples per prompt).
    pub batch_size: usize,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            max_new_tokens: 64,
            batch_size: 64,
        }
    }
}

impl SamplingConfig {
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return Err(Error::invalid(
                "sampling.temperature",
                "must be a finite number >= 0",
            ));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::invalid("sampling.top_p", "must be in (0, 1]"));
        }
        if self.max_new_tokens == 0 {
            return Err(Error::invalid(
                "sampling.max_new_tokens",
                "must be at least 1",
            ));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("sampling.batch_size", "must be at least 1"));
        }
        Ok(())
    }

    /// Plain ancestral sampling: the sampler's distribution is the policy's.
    pub fn is_unmodified(&self) -> bool {
        self.temperature == 1.0 && self.top_k == 0 && self.top_p >= 1.0
    }
}

/// One completion of one prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Index of the prompt in the list passed to [`sample`].
    pub prompt_index: usize,
    /// Generated token ids, the stop token included when one was produced.
    pub tokens: Vec<u32>,
    /// The completion as text (special tokens left out).
    pub text: String,
    /// `log pi(token)` under the policy itself (temperature 1, no truncation), per token.
    pub logprobs: Vec<f32>,
    /// `log q(token)` under the distribution actually sampled from, per token.
    pub sampler_logprobs: Vec<f32>,
    /// Why the completion ended: a stop token, `max_new_tokens`, or the context.
    pub stop: StopReason,
    /// How many of `tokens` the policy's environment wrote (see `model::Environment`).
    #[serde(default)]
    pub observed: usize,
}

impl Sample {
    /// `tokens` of prompt `prompt_index`, not yet sampled: no text, log-probabilities or stop.
    pub fn new(prompt_index: usize, tokens: Vec<u32>) -> Self {
        Self {
            prompt_index,
            tokens,
            text: String::new(),
            logprobs: vec![],
            sampler_logprobs: vec![],
            stop: StopReason::MaxNewTokens,
            observed: 0,
        }
    }

    /// `log pi(completion)`: the sum of the per-token log-probabilities.
    pub fn logprob(&self) -> f64 {
        self.logprobs.iter().map(|&x| x as f64).sum()
    }

    /// Ended with a stop token rather than at a length limit.
    pub fn finished(&self) -> bool {
        self.stop == StopReason::Eos
    }

    /// The stop token it ended with (the model may have several), if any.
    pub fn stop_token(&self) -> Option<u32> {
        self.tokens.last().copied().filter(|_| self.finished())
    }
}

/// Why a completion ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// It wrote one of the model's stop tokens (its last token).
    Eos,
    /// It reached `max_new_tokens`.
    MaxNewTokens,
    /// Its prompt and completion filled the model's context before `max_new_tokens`.
    Context,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Eos => "eos",
            StopReason::MaxNewTokens => "max_new_tokens",
            StopReason::Context => "context",
        }
    }
}

/// Draw `n_per_prompt` completions for each prompt (token ids starting with BOS).
/// Samples come back grouped by prompt, in prompt order.
pub fn sample(
    model: &Model,
    prompts: &[Vec<u32>],
    n_per_prompt: usize,
    cfg: &SamplingConfig,
    rng: &mut Rng,
) -> Result<Vec<Sample>> {
    cfg.validate()?;
    let n_ctx = model.config().n_ctx;
    let window = model.config().sliding_window;
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(Error::invalid(
                "prompt",
                format!("prompt {i} is empty (it must start with BOS)"),
            ));
        }
        // Past its window the model attends to the last `window` tokens only,
        // which goodhart does not compute: refuse rather than cut short.
        if window > 0 && p.len() + cfg.max_new_tokens > window {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "prompt {i} has {} tokens and max_new_tokens is {}: more than the model's sliding_window of {window} (attention past the window is not implemented)",
                    p.len(),
                    cfg.max_new_tokens
                ),
            ));
        }
        if p.len() >= n_ctx {
            return Err(Error::invalid(
                "prompt",
                format!(
                    "prompt {i} has {} tokens; the model's context is {n_ctx}",
                    p.len()
                ),
            ));
        }
    }
    let mut out = Vec::with_capacity(prompts.len() * n_per_prompt);
    for chunk in plan_chunks(prompts.len(), n_per_prompt, cfg.batch_size) {
        let rows: usize = chunk.iter().map(|&(_, n)| n).sum();
        let shards = crate::runtime::shards_of(rows, crate::runtime::SAMPLE_SHARD_ROWS);
        let parts = split_rows(&chunk, &shards);
        if parts.len() <= 1 {
            out.extend(sample_chunk(model, prompts, &chunk, cfg, rng)?);
            continue;
        }
        // Each shard of the batch draws from its own stream, seeded from `rng` in shard order.
        let seeds: Vec<u64> = parts.iter().map(|_| rng.random()).collect();
        out.extend(crate::runtime::map_pieces(parts.len(), 1, |part| {
            let i = part.start;
            let rng = &mut <Rng as rand::SeedableRng>::seed_from_u64(seeds[i]);
            sample_chunk(model, prompts, &parts[i], cfg, rng)
        })?);
    }
    Ok(out)
}

/// Cut a chunk's rows into the given contiguous row ranges, each again a list of
/// (prompt index, rows for it); a prompt's rows may fall in two parts.
fn split_rows(
    chunk: &[(usize, usize)],
    ranges: &[std::ops::Range<usize>],
) -> Vec<Vec<(usize, usize)>> {
    let mut entries = chunk.iter().copied();
    let mut current = entries.next();
    ranges
        .iter()
        .map(|range| {
            let mut part = vec![];
            let mut need = range.len();
            while need > 0 {
                let Some((p, n)) = current else { break };
                let take = n.min(need);
                part.push((p, take));
                need -= take;
                current = if take == n {
                    entries.next()
                } else {
                    Some((p, n - take))
                };
            }
            part
        })
        .collect()
}

/// Split (prompt, sample) rows into batches of at most `batch_size` rows,
/// each a list of (prompt index, rows for it).
fn plan_chunks(
    n_prompts: usize,
    n_per_prompt: usize,
    batch_size: usize,
) -> Vec<Vec<(usize, usize)>> {
    let mut chunks = vec![];
    let mut current: Vec<(usize, usize)> = vec![];
    let mut rows = 0;
    for p in 0..n_prompts {
        let mut left = n_per_prompt;
        while left > 0 {
            let take = left.min(batch_size - rows);
            current.push((p, take));
            rows += take;
            left -= take;
            if rows == batch_size {
                chunks.push(std::mem::take(&mut current));
                rows = 0;
            }
        }
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

fn sample_chunk(
    model: &Model,
    prompts: &[Vec<u32>],
    chunk: &[(usize, usize)],
    cfg: &SamplingConfig,
    rng: &mut Rng,
) -> Result<Vec<Sample>> {
    let net = model.eval_net();
    let tok = model.tokenizer();
    let stop_ids = tok.stop_ids();
    let device = net.device().clone();
    let n_ctx = model.config().n_ctx;

    // Prefill: the chunk's prompts, left-padded to a common width.
    let p = chunk.len();
    let width = chunk
        .iter()
        .map(|&(i, _)| prompts[i].len())
        .max()
        .unwrap_or(1);
    // Each prompt's own budget: max_new_tokens, or what its context leaves.
    let budgets: Vec<usize> = chunk
        .iter()
        .map(|&(i, _)| cfg.max_new_tokens.min(n_ctx - prompts[i].len()))
        .collect();
    let max_new = budgets.iter().copied().max().unwrap_or(0);
    let pads: Vec<usize> = chunk
        .iter()
        .map(|&(i, _)| width - prompts[i].len())
        .collect();
    let mut tokens = vec![tok.pad_id(); p * width];
    let mut positions = vec![0u32; p * width];
    for (r, &(i, _)) in chunk.iter().enumerate() {
        let pad = pads[r];
        tokens[r * width + pad..(r + 1) * width].copy_from_slice(&prompts[i]);
        for t in pad..width {
            positions[r * width + t] = (t - pad) as u32;
        }
    }
    let mut cache = net.new_cache(p, width + max_new)?;
    let hidden = net.hidden(
        &Tensor::from_vec(tokens, (p, width), &device)?,
        &Tensor::from_vec(positions, (p, width), &device)?,
        Mask::LeftPadded(&pads),
        Some(&mut cache),
    )?; // [p, width, d]
    let logits = net
        .policy_logits(&hidden.narrow(1, width - 1, 1)?)?
        .squeeze(1)?; // [p, vocab]

    // Expand: every sample of a prompt starts from that prompt's cache rows.
    let row_prompt: Vec<u32> = chunk
        .iter()
        .enumerate()
        .flat_map(|(r, &(_, n))| std::iter::repeat_n(r as u32, n))
        .collect();
    let rows = row_prompt.len();
    let mut cache = cache.select_rows(&row_prompt)?;
    let mut logits = logits.index_select(&Tensor::from_slice(&row_prompt, rows, &device)?, 0)?;
    let row_pad: Vec<usize> = row_prompt.iter().map(|&r| pads[r as usize]).collect();
    let row_budget: Vec<usize> = row_prompt.iter().map(|&r| budgets[r as usize]).collect();
    let mut done = vec![false; rows];

    let mut samples: Vec<Sample> = row_prompt
        .iter()
        .map(|&r| Sample::new(chunk[r as usize].0, vec![]))
        .collect();
    // The logits already give these no mass (-1e30); the picker skips them outright.
    let never = [tok.never_sampled(), model.observed_tokens().to_vec()].concat();
    let mut picker = Picker::new(cfg, &never);
    let environment = model.environment();
    // What the environment has written and the policy has not read yet, per row (front first).
    let mut observed: Vec<std::collections::VecDeque<u32>> = samples
        .iter()
        .map(|s| match environment {
            Some(env) => env.observe(&prompts[s.prompt_index], &[]).into(),
            None => Default::default(),
        })
        .collect();
    for step in 0..max_new {
        let step_logits: Vec<f32> = logits.flatten_all()?.to_vec1()?; // [rows * vocab]
        let vocab = step_logits.len() / rows;
        let mut next = vec![tok.pad_id(); rows];
        for (r, s) in samples.iter_mut().enumerate() {
            if done[r] {
                continue;
            }
            // The environment's tokens go in as written: no choice, no log-probability.
            let written = observed[r].pop_front();
            let (token, lp, sampler_lp) = match written {
                Some(token) => {
                    s.observed += 1;
                    (token, 0.0, 0.0)
                }
                None => picker.pick(&step_logits[r * vocab..(r + 1) * vocab], rng),
            };
            s.tokens.push(token);
            s.logprobs.push(lp);
            s.sampler_logprobs.push(sampler_lp);
            next[r] = token;
            if stop_ids.contains(&token) {
                s.stop = StopReason::Eos;
                done[r] = true;
            } else if s.tokens.len() == row_budget[r] {
                s.stop = if row_budget[r] < cfg.max_new_tokens {
                    StopReason::Context
                } else {
                    StopReason::MaxNewTokens
                };
                done[r] = true;
            } else if let (Some(env), None) = (environment, written) {
                observed[r].extend(env.observe(&prompts[s.prompt_index], &s.tokens));
            }
        }
        if step + 1 == max_new || done.iter().all(|&d| d) {
            break;
        }
        // Decode one token per row at position prompt length + step; keys left of the
        // padding are masked. A row that has stopped is fed padding at its last
        // position (inside the context), and what it computes is not read.
        let positions: Vec<u32> = row_pad
            .iter()
            .map(|&pad| (width - pad + step).min(n_ctx - 1) as u32)
            .collect();
        let hidden = net.hidden(
            &Tensor::from_vec(next, (rows, 1), &device)?,
            &Tensor::from_vec(positions, (rows, 1), &device)?,
            Mask::LeftPadded(&row_pad),
            Some(&mut cache),
        )?; // [rows, 1, d]
        logits = net.policy_logits(&hidden)?.squeeze(1)?; // [rows, vocab]
    }
    for s in &mut samples {
        s.text = tok.decode(&s.tokens);
    }
    Ok(samples)
}

/// Chooses a token from one row of logits.
struct Picker {
    temperature: f64,
    top_k: usize,
    top_p: f64,
    banned: Vec<u32>,
    scratch: Vec<(f64, u32)>,
}

impl Picker {
    fn new(cfg: &SamplingConfig, banned: &[u32]) -> Self {
        Self {
            temperature: cfg.temperature,
            top_k: cfg.top_k,
            top_p: cfg.top_p,
            banned: banned.to_vec(),
            scratch: vec![],
        }
    }

    /// (token, log pi(token) under the policy, log q(token) under the sampler).
    fn pick(&mut self, logits: &[f32], rng: &mut Rng) -> (u32, f32, f32) {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let lse = max
            + logits
                .iter()
                .map(|&l| (l as f64 - max).exp())
                .sum::<f64>()
                .ln();
        let policy_lp = |t: u32| (logits[t as usize] as f64 - lse) as f32;

        let allowed = |t: usize| !self.banned.contains(&(t as u32));
        if self.temperature == 0.0 {
            let best = (0..logits.len())
                .filter(|&t| allowed(t))
                .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
                .unwrap_or(0) as u32;
            return (best, policy_lp(best), 0.0);
        }

        // Tempered scores of the allowed tokens, most likely first when truncating.
        let inv_t = 1.0 / self.temperature;
        self.scratch.clear();
        self.scratch.extend(
            (0..logits.len())
                .filter(|&t| allowed(t))
                .map(|t| ((logits[t] as f64 - max) * inv_t, t as u32)),
        );
        let truncating = self.top_k > 0 || self.top_p < 1.0;
        if truncating {
            self.scratch
                .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            if self.top_k > 0 {
                self.scratch.truncate(self.top_k.max(1));
            }
        }
        let top = self
            .scratch
            .iter()
            .map(|s| s.0)
            .fold(f64::NEG_INFINITY, f64::max);
        for s in &mut self.scratch {
            s.0 = (s.0 - top).exp();
        }
        if self.top_p < 1.0 {
            let total: f64 = self.scratch.iter().map(|s| s.0).sum();
            let mut cum = 0.0;
            let mut keep = self.scratch.len();
            for (i, s) in self.scratch.iter().enumerate() {
                cum += s.0;
                if cum >= self.top_p * total {
                    keep = i + 1;
                    break;
                }
            }
            self.scratch.truncate(keep);
        }
        let total: f64 = self.scratch.iter().map(|s| s.0).sum();
        let mut u = rng.random::<f64>() * total;
        let mut chosen = self.scratch[self.scratch.len() - 1];
        for &s in &self.scratch {
            if u < s.0 {
                chosen = s;
                break;
            }
            u -= s.0;
        }
        let sampler_lp = (chosen.0 / total).ln() as f32;
        (chosen.1, policy_lp(chosen.1), sampler_lp)
    }
}

#[cfg(test)]
mod tests;
