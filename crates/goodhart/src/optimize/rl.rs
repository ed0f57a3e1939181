//! What PPO and RLOO share: the KL penalty and its adaptive controller,
//! rollouts (sample, reward, score under policy and reference), and the loop
//! that runs iterations, checkpoints along the way and refreshes an online
//! reward model.

use candle_core::Tensor;
use rand::Rng as _;
use serde::{Deserialize, Serialize};

use super::world_model::WorldModelConfig;

use crate::error::{Error, Result};
use crate::model::sample::{sample, Sample, SamplingConfig};
use crate::model::{Model, SequenceBatch};
use crate::progress::Progress;
use crate::rng::Rng;
use crate::score::RewardSource;
use crate::train::OptimConfig;

/// Where the KL penalty enters the reward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlMode {
    /// `-beta (log pi - log pi_ref)` on every token (InstructGPT).
    #[default]
    PerToken,
    /// `-beta sum_t (log pi - log pi_ref)` once, with the sequence's reward.
    Sequence,
    /// No penalty at all.
    None,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KlConfig {
    /// "per_token", "sequence" or "none".
    pub mode: KlMode,
    /// The penalty coefficient beta (the initial one, when adaptive).
    pub coef: f64,
    /// Adapt beta so the KL per sequence approaches this many nats; absent: beta stays fixed.
    pub target: Option<f64>,
    /// Horizon of the adaptive controller, in samples (Ziegler et al. 2019):
    /// beta moves by at most 20% per `horizon` samples. The default lets it
    /// move 5% per iteration of 64 samples, enough to reach a target within a
    /// few dozen iterations.
    pub horizon: f64,
}

impl Default for KlConfig {
    fn default() -> Self {
        Self {
            mode: KlMode::PerToken,
            coef: 0.05,
            target: None,
            horizon: 256.0,
        }
    }
}

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

/// Which reward an RL run optimises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardChoice {
    /// The learned reward model.
    #[default]
    Proxy,
    /// The task's formal goal (gridworld): 1 when satisfied, else 0.
    Spec,
    /// The formal goal's robustness margin in [-1, 1]: satisfied is positive,
    /// and a violation is graded by how near it came (a dense reward).
    SpecMargin,
    /// The formal goal (1 or 0) as a learned world model predicts it, trained
    /// on the base policy's trajectories; measured in the true simulator.
    SpecWorldModel,
    /// Gold itself (an oracle reference).
    Gold,
}

/// Keep collecting labels on the current policy during RL and fine-tune the reward model on them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OnlineConfig {
    /// Refresh every this many iterations.
    pub every: usize,
    /// Pairs of current-policy completions labelled per refresh.
    pub pairs: usize,
    /// Reward-model optimiser steps per refresh (on all labels so far).
    pub rm_steps: usize,
    /// People instead of simulated labelers: queue each refresh's pairs for the
    /// web app (`goodhart label serve`) and pause until this many human labels
    /// of them have arrived (0: simulated labelers, no pause).
    pub human_labels: usize,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        Self {
            every: 5,
            pairs: 200,
            rm_steps: 100,
            human_labels: 0,
        }
    }
}

/// An RL run (PPO or RLOO): the settings both share, and PPO's own in its
/// `ppo` section, which an RLOO run refuses instead of silently ignoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlConfig {
    /// The run's name in reports (unique within the task).
    pub name: String,
    /// "ppo" or "rloo".
    pub algorithm: Algorithm,
    /// What is maximised: "proxy", "spec" or "gold".
    pub reward: RewardChoice,
    pub iterations: usize,
    /// Training prompts per iteration.
    pub prompts_per_iteration: usize,
    /// Completions per prompt (RLOO's baseline needs at least 2).
    pub samples_per_prompt: usize,
    pub max_new_tokens: usize,
    pub kl: KlConfig,
    pub optim: OptimConfig,
    /// PPO's own settings (`algorithm = "ppo"` only; filled with defaults when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ppo: Option<PpoConfig>,
    /// Normalise advantages to mean 0, std 1 per rollout.
    pub whiten_advantages: bool,
    /// Save and measure the policy every this many iterations (and after the last).
    pub checkpoint_every: usize,
    /// Online reward modelling; absent: the reward model stays frozen.
    pub online: Option<OnlineConfig>,
    /// The world model a `reward = "spec_world_model"` run optimises the goal in
    /// (`[task.strategies.rl.world_model]`; its defaults when absent).
    pub world_model: Option<WorldModelConfig>,
}

/// PPO's own settings (`[task.strategies.rl.ppo]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PpoConfig {
    /// Passes over each rollout.
    pub epochs: usize,
    /// Sequences per gradient step.
    pub minibatch_size: usize,
    /// Clipping range of the probability ratio.
    pub clip: f64,
    /// Clipping range of the value update.
    pub value_clip: f64,
    /// Weight of the value loss.
    pub vf_coef: f64,
    /// Discount (1 for episodic text).
    pub gamma: f64,
    /// GAE lambda.
    pub lam: f64,
}

impl Default for PpoConfig {
    fn default() -> Self {
        Self {
            epochs: 2,
            minibatch_size: 32,
            clip: 0.2,
            value_clip: 0.2,
            vf_coef: 0.5,
            gamma: 1.0,
            lam: 0.95,
        }
    }
}

impl PpoConfig {
    fn validate(&self, at: &str) -> Result<()> {
        let f = |k: &str| format!("{at}.ppo.{k}");
        for (k, v) in [
            ("epochs", self.epochs),
            ("minibatch_size", self.minibatch_size),
        ] {
            if v == 0 {
                return Err(Error::invalid(f(k), "must be at least 1"));
            }
        }
        if !(self.clip > 0.0
            && self.value_clip > 0.0
            && (0.0..=1.0).contains(&self.gamma)
            && (0.0..=1.0).contains(&self.lam))
        {
            return Err(Error::invalid(
                f("clip"),
                "clip and value_clip must be > 0; gamma and lam in [0, 1]",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    #[default]
    Ppo,
    Rloo,
}

impl Default for RlConfig {
    fn default() -> Self {
        Self {
            name: "ppo".into(),
            algorithm: Algorithm::Ppo,
            reward: RewardChoice::Proxy,
            iterations: 30,
            prompts_per_iteration: 32,
            samples_per_prompt: 2,
            max_new_tokens: 48,
            kl: KlConfig::default(),
            optim: OptimConfig {
                lr: 3e-4,
                warmup_steps: 0,
                min_lr_ratio: 1.0,
                weight_decay: 0.0,
                ..OptimConfig::default()
            },
            ppo: None,
            whiten_advantages: true,
            checkpoint_every: 5,
            online: None,
            world_model: None,
        }
    }
}

impl RlConfig {
    /// PPO's settings: its section, or the defaults.
    pub fn ppo(&self) -> PpoConfig {
        self.ppo.clone().unwrap_or_default()
    }

    /// Every default filled in: a PPO run gets its `ppo` section.
    pub fn resolved(mut self) -> Self {
        if self.algorithm == Algorithm::Ppo && self.ppo.is_none() {
            self.ppo = Some(PpoConfig::default());
        }
        self
    }

    pub fn validate(&self, at: &str) -> Result<()> {
        let f = |k: &str| format!("{at}.{k}");
        if self.name.is_empty() {
            return Err(Error::invalid(f("name"), "must not be empty"));
        }
        for (k, v) in [
            ("iterations", self.iterations),
            ("prompts_per_iteration", self.prompts_per_iteration),
            ("samples_per_prompt", self.samples_per_prompt),
            ("max_new_tokens", self.max_new_tokens),
            ("checkpoint_every", self.checkpoint_every),
        ] {
            if v == 0 {
                return Err(Error::invalid(f(k), "must be at least 1"));
            }
        }
        if self.algorithm == Algorithm::Rloo && self.samples_per_prompt < 2 {
            return Err(Error::invalid(
                f("samples_per_prompt"),
                "RLOO's leave-one-out baseline needs at least 2",
            ));
        }
        if !(self.kl.coef >= 0.0 && self.kl.coef.is_finite()) {
            return Err(Error::invalid(f("kl.coef"), "must be >= 0"));
        }
        if let Some(t) = self.kl.target {
            if !(t > 0.0) || self.kl.mode == KlMode::None {
                return Err(Error::invalid(
                    f("kl.target"),
                    "needs a KL mode and a target > 0",
                ));
            }
        }
        if !(self.kl.horizon > 0.0) {
            return Err(Error::invalid(f("kl.horizon"), "must be > 0"));
        }
        match (&self.ppo, self.algorithm) {
            (Some(p), Algorithm::Ppo) => p.validate(at)?,
            (Some(_), Algorithm::Rloo) => {
                return Err(Error::invalid(
                    f("ppo"),
                    "PPO settings given to an RLOO run (it has no value head, epochs or clipping)",
                ))
            }
            (None, _) => {}
        }
        if let Some(o) = &self.online {
            if o.every == 0 || o.pairs == 0 || o.rm_steps == 0 {
                return Err(Error::invalid(
                    f("online"),
                    "every, pairs and rm_steps must be at least 1",
                ));
            }
        }
        self.optim.validate(&f("optim"))
    }
}

/// One iteration's worth of experience.
pub struct Rollout {
    pub prompt_tokens: Vec<Vec<u32>>,
    pub prompts: Vec<String>,
    pub samples: Vec<Sample>,
    /// Reward of each sample (before any KL penalty).
    pub rewards: Vec<f64>,
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
    let (logprobs, values) = score_policy(policy, &prompt_tokens, &samples, with_values)?;
    let ref_logprobs = crate::score::completion_logprobs(reference, &prompt_tokens, &samples)?;
    Ok(Rollout {
        prompt_tokens,
        prompts,
        samples,
        rewards,
        logprobs,
        ref_logprobs,
        values,
    })
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
    let (mut lps, mut vs) = (vec![], vec![]);
    let net = model.eval_net();
    for chunk in samples.chunks(64) {
        let batch = batch_of(model, prompt_tokens, chunk)?;
        let hidden = net.hidden(
            &batch.input,
            &batch.positions,
            crate::model::Mask::Causal,
            None,
        )?;
        lps.extend(batch.completion_values(&crate::model::target_logprobs(
            net,
            &hidden,
            &batch.target,
        )?)?);
        if with_values {
            vs.extend(batch.completion_values(&net.scalar(&hidden)?)?);
        }
    }
    Ok((lps, vs))
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
