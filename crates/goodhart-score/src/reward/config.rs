//! What a reward model is and how it is trained: `[task.reward_model]`.

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::model::ModelConfig;
use crate::train::{OptimConfig, OptimKeys};

/// Where a reward model's weights start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RewardInit {
    /// From the base policy (its trunk already reads the task).
    #[default]
    Policy,
    /// From fresh random weights, shaped like the policy unless `model` says otherwise.
    Scratch,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewardModelConfig {
    /// Start from the base policy's weights ("policy") or from fresh ones ("scratch").
    pub init: RewardInit,
    /// Shape of a reward model trained from scratch (default: the policy's).
    pub model: Option<ModelConfig>,
    /// Ensemble members, each trained on a bootstrap resample of the comparisons.
    pub ensemble: usize,
    /// Learn these labelers' comparisons (empty: the experiment's first labeler).
    pub labelers: Vec<String>,
    /// Probability that a label is a random answer, folded into the likelihood.
    pub p_random: f64,
    /// Optimiser steps per member.
    pub steps: usize,
    /// Comparisons per step.
    pub batch_size: usize,
    #[serde(deserialize_with = "optim_over_defaults")]
    pub optim: OptimConfig,
    /// Share of the comparisons held out to measure accuracy.
    pub heldout_fraction: f64,
    /// Read what the labeler saw after each completion, where the task's
    /// labelers see more than its text (gridworld: the camera's frames).
    pub observations: bool,
}

impl Default for RewardModelConfig {
    fn default() -> Self {
        Self {
            init: RewardInit::Policy,
            model: None,
            ensemble: 1,
            labelers: vec![],
            p_random: 0.0,
            steps: 300,
            batch_size: 32,
            optim: OptimConfig {
                lr: 2e-3,
                warmup_steps: 20,
                ..OptimConfig::default()
            },
            heldout_fraction: 0.1,
            observations: true,
        }
    }
}

impl RewardModelConfig {
    pub fn validate(&self) -> Result<()> {
        if self.ensemble == 0 {
            return Err(Error::invalid(
                "reward_model.ensemble",
                "must be at least 1",
            ));
        }
        if self.steps == 0 || self.batch_size == 0 {
            return Err(Error::invalid(
                "reward_model.steps",
                "steps and batch_size must be at least 1",
            ));
        }
        if self.model.is_some() && self.init == RewardInit::Policy {
            return Err(Error::invalid(
                "reward_model.model",
                "a reward model started from the policy (init = \"policy\") has the policy's shape; set init = \"scratch\" to give it one of its own",
            ));
        }
        let shape = self.model.as_ref().map(ModelConfig::validate_shape);
        shape.transpose().map_err(|e| e.within("reward_model"))?;
        if !(0.0..1.0).contains(&self.p_random) {
            return Err(Error::invalid("reward_model.p_random", "must be in [0, 1)"));
        }
        if !(0.0..0.9).contains(&self.heldout_fraction) {
            return Err(Error::invalid(
                "reward_model.heldout_fraction",
                "must be in [0, 0.9)",
            ));
        }
        self.optim.validate("reward_model.optim")
    }
}

/// An `optim` table sets keys over the reward model's own optimiser defaults.
fn optim_over_defaults<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<OptimConfig, D::Error> {
    OptimKeys::read_over(d, RewardModelConfig::default().optim)
}
