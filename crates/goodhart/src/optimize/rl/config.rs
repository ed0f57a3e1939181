//! What an RL run is configured with: the algorithm, the reward it
//! optimises, the KL penalty, PPO's own settings and online labels.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::optimize::world_model::WorldModelConfig;
use crate::task::Split;
use crate::train::{OptimConfig, OptimKeys};

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
    /// The same margin, earned move by move: after each move, the change in
    /// the margin of the trajectory so far (summing to the final margin), so
    /// that PPO credits the move that broke a vase or neared the goal.
    SpecProgress,
    /// The formal goal (1 or 0) as a learned world model predicts it, trained
    /// on the base policy's trajectories; measured in the true simulator.
    SpecWorldModel,
    /// Gold itself (an oracle reference).
    Gold,
    /// The labeler's own score (the first labeler whose comparisons train the
    /// reward model): optimising the labeler directly, no reward model between.
    Labeler,
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
    /// With `human_labels`: show people what this labeler's assistant (one of
    /// the task's labelers with an `assistant`) shows it beside each queued pair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assistant: Option<String>,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        Self {
            every: 5,
            pairs: 200,
            rm_steps: 100,
            human_labels: 0,
            assistant: None,
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
    /// "ppo", "rloo" or "expert_iteration".
    pub algorithm: Algorithm,
    /// What is maximised: "proxy", "labeler", "gold", "spec", "spec_margin", "spec_progress" or "spec_world_model".
    pub reward: RewardChoice,
    /// Maximise the reward model's ensemble mean less this many times its
    /// members' spread (reward = "proxy"; needs an ensemble of 2 or more).
    pub uncertainty_penalty: f64,
    /// Binarise the reward: 1 when it exceeds the value only this top share of
    /// the first rollout (the base policy's) exceeded, else 0 (in (0, 1); absent: the reward itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binarise_top: Option<f64>,
    pub iterations: usize,
    /// The prompts it trains on: "train", or "shift_train" (prompts of the
    /// shifted distribution, none of them in the shifted split: a control
    /// that was trained where the shifted split's new routes exist).
    pub split: Split,
    /// Training prompts per iteration.
    pub prompts_per_iteration: usize,
    /// Completions per prompt (RLOO's baseline needs at least 2).
    pub samples_per_prompt: usize,
    pub max_new_tokens: usize,
    pub kl: KlConfig,
    #[serde(deserialize_with = "optim_over_defaults")]
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
    /// Distilled filtering: supervised steps on the best of each prompt's samples.
    ExpertIteration,
}

impl Default for RlConfig {
    fn default() -> Self {
        Self {
            name: "ppo".into(),
            algorithm: Algorithm::Ppo,
            reward: RewardChoice::Proxy,
            uncertainty_penalty: 0.0,
            binarise_top: None,
            iterations: 30,
            split: Split::Train,
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

/// An `optim` table sets keys over the optimiser defaults of this section.
fn optim_over_defaults<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<OptimConfig, D::Error> {
    OptimKeys::read_over(d, RlConfig::default().optim)
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
        if !matches!(self.split, Split::Train | Split::ShiftTrain) {
            return Err(Error::invalid(
                f("split"),
                "must be \"train\" or \"shift_train\": training on the prompts policies are measured on would leak them",
            ));
        }
        if self.algorithm == Algorithm::Rloo && self.samples_per_prompt < 2 {
            return Err(Error::invalid(
                f("samples_per_prompt"),
                "RLOO's leave-one-out baseline needs at least 2",
            ));
        }
        if self.algorithm == Algorithm::ExpertIteration && self.samples_per_prompt < 2 {
            return Err(Error::invalid(
                f("samples_per_prompt"),
                "expert iteration keeps the best of each prompt's samples: it needs at least 2",
            ));
        }
        if !(self.uncertainty_penalty >= 0.0 && self.uncertainty_penalty.is_finite()) {
            return Err(Error::invalid(f("uncertainty_penalty"), "must be >= 0"));
        }
        if self.uncertainty_penalty > 0.0
            && (self.reward != RewardChoice::Proxy || self.online.is_some())
        {
            return Err(Error::invalid(
                f("uncertainty_penalty"),
                "penalises the reward model's ensemble spread: needs reward = \"proxy\" without online labels",
            ));
        }
        if let Some(top) = self.binarise_top {
            if !(top > 0.0 && top < 1.0) {
                return Err(Error::invalid(
                    f("binarise_top"),
                    format!("{top} is not a share in (0, 1)"),
                ));
            }
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
            (Some(_), other) => {
                let run = if other == Algorithm::Rloo {
                    "an RLOO run"
                } else {
                    "an expert-iteration run"
                };
                return Err(Error::invalid(
                    f("ppo"),
                    format!("PPO settings given to {run}, which is not PPO (no value head, epochs or clipping)"),
                ));
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
            if o.assistant.is_some() && o.human_labels == 0 {
                return Err(Error::invalid(
                    f("online.assistant"),
                    "is shown to people: it needs human_labels of at least 1",
                ));
            }
        }
        self.optim.validate(&f("optim"))
    }
}
