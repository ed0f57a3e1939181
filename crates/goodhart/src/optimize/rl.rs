//! What PPO and RLOO share: the KL penalty and its adaptive controller,
//! rollouts (sample, reward, score under policy and reference), and the loop
//! that runs iterations, checkpoints along the way and refreshes an online
//! reward model.

use candle_core::Tensor;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

mod config;

pub use config::{Algorithm, KlConfig, KlMode, OnlineConfig, PpoConfig, RewardChoice, RlConfig};

use crate::error::{Error, Result};
use crate::model::sample::{sample, Sample, SamplingConfig};
use crate::model::{Model, SequenceBatch};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::score::{Earned, RewardSource};
use crate::tokenize::Tokenizer;

/// The proportional controller of Ziegler et al.: beta *= 1 + clip(KL / target - 1, ±0.2) * n / horizon.
#[derive(Clone, Debug)]
pub struct KlController {
    pub coef: f64,
    target: Option<f64>,
    horizon: f64,
}

impl KlController {
    pub fn new(cfg: &KlConfig) -> Self {
        Self {
            coef: if cfg.mode == KlMode::None {
                0.0
            } else {
                cfg.coef
            },
            target: cfg.target,
            horizon: cfg.horizon,
        }
    }

    pub fn update(&mut self, measured_kl: f64, n_samples: usize) {
        if let Some(target) = self.target {
            let error = (measured_kl / target - 1.0).clamp(-0.2, 0.2);
            self.coef *= 1.0 + error * n_samples as f64 / self.horizon;
        }
    }
}

/// One iteration's worth of experience.
pub struct Rollout {
    pub prompt_tokens: Vec<Vec<u32>>,
    pub prompts: Vec<String>,
    pub samples: Vec<Sample>,
    /// Reward of each sample (before any KL penalty).
    pub rewards: Vec<f64>,
    /// Where each sample's reward was earned, where its source says:
    /// `(token index, reward)` pairs summing to its reward. None: at the last token.
    pub earned: Option<Vec<Earned>>,
    /// Per-token log-probabilities under the policy at rollout time (teacher-forced).
    pub logprobs: Vec<Vec<f32>>,
    /// Per-token log-probabilities under the reference policy.
    pub ref_logprobs: Vec<Vec<f32>>,
    /// Per-token values before each token (PPO).
    pub values: Vec<Vec<f32>>,
}

impl Rollout {
    /// Per-token `log pi - log pi_ref` of each sample.
    pub fn token_kl(&self) -> Vec<Vec<f32>> {
        self.logprobs
            .iter()
            .zip(&self.ref_logprobs)
            .map(|(p, r)| p.iter().zip(r).map(|(a, b)| a - b).collect())
            .collect()
    }

    /// Each sample's return: its reward less `kl_coef` times its sequence KL
    /// (per-token and sequence penalties coincide for a whole-sequence return),
    /// or the reward alone with no KL penalty.
    pub fn returns(&self, mode: KlMode, kl_coef: f64) -> Vec<f64> {
        self.token_kl()
            .iter()
            .zip(&self.rewards)
            .map(|(kl, r)| match mode {
                KlMode::None => *r,
                _ => r - kl_coef * kl.iter().map(|&k| k as f64).sum::<f64>(),
            })
            .collect()
    }

    /// Mean KL per sequence.
    pub fn mean_kl(&self) -> f64 {
        let kl = self.token_kl();
        kl.iter()
            .map(|k| k.iter().map(|&x| x as f64).sum::<f64>())
            .sum::<f64>()
            / kl.len().max(1) as f64
    }
}

/// Sample a rollout on `prompts` and score it under the policy and the reference.
pub fn rollout(
    policy: &Model,
    reference: &Model,
    reward: &dyn RewardSource,
    prompts: Vec<String>,
    cfg: &RlConfig,
    with_values: bool,
    rng: &mut Rng,
) -> Result<Rollout> {
    let tok = policy.tokenizer();
    let prompt_tokens = prompts
        .iter()
        .map(|p| tok.encode_prompt(p))
        .collect::<Result<Vec<_>>>()?;
    let sampling = SamplingConfig {
        max_new_tokens: cfg.max_new_tokens,
        batch_size: 256,
        ..SamplingConfig::default()
    };
    let samples = sample(
        policy,
        &prompt_tokens,
        cfg.samples_per_prompt,
        &sampling,
        rng,
    )?;
    let rewards = reward.rewards(&prompts, &prompt_tokens, &samples)?;
    let earned = reward.earned(&prompts, &samples)?.map(|earned| {
        let at_tokens = samples.iter().zip(earned);
        at_tokens
            .map(|(s, e)| at_token(tok, &s.tokens, e))
            .collect()
    });
    let (logprobs, values) = score_policy(policy, &prompt_tokens, &samples, with_values)?;
    let ref_logprobs = crate::score::completion_logprobs(reference, &prompt_tokens, &samples)?;
    Ok(Rollout {
        prompt_tokens,
        prompts,
        samples,
        rewards,
        earned,
        logprobs,
        ref_logprobs,
        values,
    })
}

/// `(chars, reward)` pairs of a completion as `(token, reward)`: each at the
/// token whose text reaches that many characters (the first token for 0, the
/// last for anything past the end).
fn at_token(tok: &dyn Tokenizer, tokens: &[u32], earned: Earned) -> Earned {
    let Some(last) = tokens.len().checked_sub(1) else {
        return vec![];
    };
    let mut read = Vec::with_capacity(tokens.len());
    let mut chars = 0;
    for t in tokens {
        chars += tok.decode(std::slice::from_ref(t)).chars().count();
        read.push(chars);
    }
    let token_of = |c: usize| read.iter().position(|&r| r >= c.max(1)).unwrap_or(last);
    earned.into_iter().map(|(c, r)| (token_of(c), r)).collect()
}

/// One value per completion token, per sample.
type PerToken = Vec<Vec<f32>>;

/// Per-token log-probabilities (and values) of samples under `model`, in one forward pass per chunk.
fn score_policy(
    model: &Model,
    prompt_tokens: &[Vec<u32>],
    samples: &[Sample],
    with_values: bool,
) -> Result<(PerToken, PerToken)> {
    let net = model.eval_net();
    let scored = crate::runtime::map_pieces(samples.len(), 64, |r| {
        let batch = batch_of(model, prompt_tokens, &samples[r])?;
        let hidden = net.hidden(
            &batch.input,
            &batch.positions,
            crate::model::Mask::Causal,
            None,
        )?;
        let lps = batch.completion_values(&crate::model::target_logprobs(
            net,
            &hidden,
            &batch.target,
        )?)?;
        let vs = if with_values {
            batch.completion_values(&net.scalar(&hidden)?)?
        } else {
            vec![vec![]; lps.len()]
        };
        Ok(lps.into_iter().zip(vs).collect::<Vec<_>>())
    })?;
    let (lps, vs): (PerToken, PerToken) = scored.into_iter().unzip();
    Ok((lps, if with_values { vs } else { vec![] }))
}

/// A teacher-forcing batch of prompt + completion for `samples`.
pub fn batch_of(
    model: &Model,
    prompt_tokens: &[Vec<u32>],
    samples: &[Sample],
) -> Result<SequenceBatch> {
    let pairs: Vec<(&[u32], &[u32])> = samples
        .iter()
        .map(|s| {
            (
                prompt_tokens[s.prompt_index].as_slice(),
                s.tokens.as_slice(),
            )
        })
        .collect();
    Ok(SequenceBatch::new(
        &pairs,
        model.tokenizer().pad_id(),
        model.device(),
    )?)
}

/// Lay per-completion-token values out as `[b, t]` in the batch's target positions (0 elsewhere).
pub fn scatter_completion(batch: &SequenceBatch, per_seq: &[&[f32]]) -> Result<Tensor> {
    let (b, t) = batch.target.dims2()?;
    let mut out = vec![0f32; b * t];
    for (i, vals) in per_seq.iter().enumerate() {
        let start = batch.prompt_lens[i] - 1;
        out[i * t + start..i * t + start + vals.len()].copy_from_slice(vals);
    }
    Ok(Tensor::from_vec(out, (b, t), batch.target.device())?)
}

/// What one RL iteration did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IterationLog {
    pub iteration: usize,
    /// Mean reward of the rollout (before the KL penalty).
    pub reward: f64,
    /// Mean KL per sequence, policy vs reference, at rollout time.
    pub kl: f64,
    /// The KL coefficient used.
    pub kl_coef: f64,
    pub policy_loss: f64,
    pub value_loss: f64,
    /// Fraction of tokens whose ratio was clipped (PPO).
    pub clip_fraction: f64,
    /// Mean completion length in tokens.
    pub length: f64,
}

impl IterationLog {
    /// The rollout's own figures (mean reward, KL, length); the losses are the algorithm's to fill.
    pub fn of(ro: &Rollout, kl_coef: f64) -> Self {
        let n = ro.samples.len().max(1) as f64;
        IterationLog {
            reward: ro.rewards.iter().sum::<f64>() / n,
            kl: ro.mean_kl(),
            kl_coef,
            length: ro
                .samples
                .iter()
                .map(|s| s.tokens.len() as f64)
                .sum::<f64>()
                / n,
            ..Default::default()
        }
    }
}

/// The algorithm-specific part of an RL loop.
pub trait Update {
    fn needs_values(&self) -> bool;
    /// Learn from one rollout; `kl_coef` is the current penalty.
    fn update(
        &mut self,
        policy: &Model,
        rollout: &Rollout,
        kl_coef: f64,
        rng: &mut Rng,
    ) -> Result<IterationLog>;
}

/// Hooks into the loop: where checkpoints go, and how the reward refreshes.
pub trait Hooks {
    /// The policy after `iteration` iterations (0: before any update).
    fn checkpoint(&mut self, iteration: usize, policy: &Model) -> Result<()>;
    /// Called every `online.every` iterations when online; may change `reward`'s behaviour.
    fn refresh_reward(&mut self, _iteration: usize, _policy: &Model) -> Result<()> {
        Ok(())
    }
    fn log(&mut self, _entry: &IterationLog) -> Result<()> {
        Ok(())
    }
}

/// Run `cfg.iterations` iterations of `algo` on `policy` (trained in place) against `reference`.
#[allow(clippy::too_many_arguments)]
pub fn train(
    policy: &Model,
    reference: &Model,
    reward: &dyn RewardSource,
    train_prompts: &[String],
    cfg: &RlConfig,
    algo: &mut dyn Update,
    hooks: &mut dyn Hooks,
    rng: &mut Rng,
    progress: &dyn Progress,
) -> Result<Vec<IterationLog>> {
    if train_prompts.is_empty() {
        return Err(Error::invalid("rl", "no training prompts"));
    }
    let mut kl = KlController::new(&cfg.kl);
    let mut logs = vec![];
    hooks.checkpoint(0, policy)?;
    progress.start(&cfg.name, cfg.iterations as u64);
    for it in 1..=cfg.iterations {
        let prompts: Vec<String> = (0..cfg.prompts_per_iteration)
            .map(|_| train_prompts[rng.random_range(0..train_prompts.len())].clone())
            .collect();
        let ro = rollout(
            policy,
            reference,
            reward,
            prompts,
            cfg,
            algo.needs_values(),
            rng,
        )?;
        let mut log = algo.update(policy, &ro, kl.coef, rng)?;
        log.iteration = it;
        kl.update(log.kl, ro.samples.len());
        progress.message(&format!("reward {:.3} kl {:.2}", log.reward, log.kl));
        hooks.log(&log)?;
        logs.push(log);
        if let Some(o) = &cfg.online {
            if it % o.every == 0 && it < cfg.iterations {
                hooks.refresh_reward(it, policy)?;
            }
        }
        if it % cfg.checkpoint_every == 0 || it == cfg.iterations {
            hooks.checkpoint(it, policy)?;
        }
        progress.advance(1);
    }
    progress.finish();
    Ok(logs)
}

/// Mean and standard deviation normalisation of `xs` in place (no-op on constants).
pub fn whiten(xs: &mut [f32]) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt().max(1e-8);
    for x in xs {
        *x = ((*x as f64 - mean) / std) as f32;
    }
}

#[cfg(test)]
mod tests;
