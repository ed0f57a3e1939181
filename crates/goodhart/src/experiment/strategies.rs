//! What a run optimises and how it measures: the strategies of one task and
//! the evaluation every policy goes through.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optimize::bon::BonConfig;
use crate::optimize::condition::ConditionConfig;
use crate::optimize::dpo::DpoConfig;
use crate::optimize::pool::PoolConfig;
use crate::optimize::quantilize::QuantiliserConfig;
use crate::optimize::review::ReviewConfig;
use crate::optimize::rl::{RewardChoice, RlConfig};
use crate::task::gridworld::PREDICATES as GRIDWORLD_PREDICATES;
use crate::task::spec::Formula;

/// The strategies compared on one task. The three reweightings of base samples
/// share one pool; an empty sweep switches a strategy off.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StrategiesConfig {
    /// The pool of base samples behind best-of-n, conditioning and the quantiliser.
    pub pool: PoolConfig,
    /// Best-of-n: `n = [...]`, each at most `pool.samples`.
    pub bon: BonConfig,
    /// Conditioning on exp(proxy / beta): `beta = [...]`.
    pub conditioning: ConditionConfig,
    /// Quantiliser: `q = [...]`.
    pub quantiliser: QuantiliserConfig,
    /// RL runs (`[[task.strategies.rl]]`), PPO or RLOO, each with its own name.
    pub rl: Vec<RlConfig>,
    /// DPO/IPO runs (`[[task.strategies.dpo]]`) on the base batch of comparisons.
    pub dpo: Vec<DpoConfig>,
    /// Review and revise (gridworld): a simulated reviewer looks at outcomes of
    /// candidate formal goals' policies and chooses one; `candidates = [...]` switches it on.
    pub review: ReviewConfig,
}

impl Default for StrategiesConfig {
    fn default() -> Self {
        Self {
            pool: PoolConfig::default(),
            bon: BonConfig::default(),
            conditioning: ConditionConfig::default(),
            quantiliser: QuantiliserConfig::default(),
            rl: vec![RlConfig::default()],
            dpo: vec![],
            review: ReviewConfig::default(),
        }
    }
}

impl StrategiesConfig {
    /// Every strategy's name, in the order the run measures them; a task with
    /// a formal goal (`has_spec`) also selects on it and may review candidate goals.
    pub fn names(&self, has_spec: bool) -> Vec<String> {
        let mut names = vec![];
        let oracles = !self.bon.n.is_empty() && self.bon.oracles;
        for (name, on) in [
            ("bon", !self.bon.n.is_empty()),
            ("bon-labeler", oracles),
            ("bon-gold", oracles),
            ("bon-spec", has_spec && !self.bon.n.is_empty()),
            ("conditioning", !self.conditioning.beta.is_empty()),
            (
                "conditioning-spec",
                has_spec && !self.conditioning.beta.is_empty(),
            ),
            ("quantiliser", !self.quantiliser.q.is_empty()),
            ("review", has_spec && self.review.enabled()),
        ] {
            if on {
                names.push(name.to_string());
            }
        }
        names.extend(self.rl.iter().map(|r| r.name.clone()));
        names.extend(self.dpo.iter().map(|d| d.name.clone()));
        names
    }

    pub fn validate(&self, at: &str, has_spec: bool) -> Result<()> {
        if self.pool.prompts == 0 || self.pool.samples == 0 {
            return Err(Error::invalid(
                format!("{at}.pool"),
                "prompts and samples must be at least 1",
            ));
        }
        for &n in &self.bon.n {
            if n == 0 || n > self.pool.samples {
                return Err(Error::invalid(
                    format!("{at}.bon.n"),
                    format!(
                        "n = {n} must be between 1 and pool.samples = {}",
                        self.pool.samples
                    ),
                ));
            }
        }
        if let Some(b) = self
            .conditioning
            .beta
            .iter()
            .find(|b| !(**b > 0.0 && b.is_finite()))
        {
            return Err(Error::invalid(
                format!("{at}.conditioning.beta"),
                format!("beta = {b} must be > 0"),
            ));
        }
        if let Some(q) = self
            .quantiliser
            .q
            .iter()
            .find(|q| !(**q > 0.0 && **q <= 1.0))
        {
            return Err(Error::invalid(
                format!("{at}.quantiliser.q"),
                format!("q = {q} is outside (0, 1]"),
            ));
        }
        for (i, r) in self.rl.iter().enumerate() {
            let here = format!("{at}.rl[{i}]");
            r.validate(&here)?;
            if matches!(
                r.reward,
                RewardChoice::Spec
                    | RewardChoice::SpecMargin
                    | RewardChoice::SpecProgress
                    | RewardChoice::SpecWorldModel
            ) && !has_spec
            {
                return Err(Error::invalid(
                    format!("{here}.reward"),
                    "this task has no formal goal (\"spec\", \"spec_margin\" and \"spec_world_model\" need gridworld)",
                ));
            }
            if r.world_model.is_some() && r.reward != RewardChoice::SpecWorldModel {
                return Err(Error::invalid(
                    format!("{here}.world_model"),
                    "a world model is only used with reward = \"spec_world_model\"",
                ));
            }
            if r.online.is_some() && r.reward != RewardChoice::Proxy {
                return Err(Error::invalid(
                    format!("{here}.online"),
                    "online labels refresh the proxy: set reward = \"proxy\"",
                ));
            }
        }
        for (i, d) in self.dpo.iter().enumerate() {
            d.validate(&format!("{at}.dpo[{i}]"))?;
        }
        self.review.validate(&format!("{at}.review"))?;
        if self.review.enabled() {
            if !has_spec {
                return Err(Error::invalid(
                    format!("{at}.review"),
                    "this task has no formal goals to review (review needs gridworld)",
                ));
            }
            for (i, c) in self.review.candidates.iter().enumerate() {
                Formula::parse(c, GRIDWORLD_PREDICATES).map_err(|e| {
                    Error::invalid(format!("{at}.review.candidates[{i}]"), e.to_string())
                })?;
            }
        }
        let names = self.names(has_spec);
        for (i, n) in names.iter().enumerate() {
            if n.is_empty()
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(Error::invalid(
                    at.to_string(),
                    format!("strategy name {n:?}: use letters, digits, '-' and '_'"),
                ));
            }
            if names[..i].contains(n) {
                return Err(Error::invalid(
                    at.to_string(),
                    format!("two strategies are named {n:?}"),
                ));
            }
        }
        Ok(())
    }
}

/// How every policy of the run is measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Held-out prompts each policy is sampled on.
    pub prompts: usize,
    /// Prompts of the shifted split.
    pub shift_prompts: usize,
    /// Completions per prompt.
    pub per_prompt: usize,
    /// Completions shown in the report per curve point.
    pub examples: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            prompts: 64,
            shift_prompts: 32,
            per_prompt: 4,
            examples: 3,
        }
    }
}

impl EvalConfig {
    pub fn validate(&self, at: &str) -> Result<()> {
        if self.prompts == 0 || self.per_prompt == 0 {
            return Err(Error::invalid(
                format!("{at}.prompts"),
                "prompts and per_prompt must be at least 1",
            ));
        }
        Ok(())
    }
}
