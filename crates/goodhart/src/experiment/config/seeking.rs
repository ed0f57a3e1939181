//! `[task.seeking]`: what trained policies pursue off their training
//! distribution, measured on the shifted split. Two questions: which of the
//! features that moved in training a policy carries there (`features`), and
//! whether it takes a route to its reward that only the shifted split offers
//! (`route`, tested by `pairs`: the policy against a control trained where the
//! route exists, and against a maximiser of the same reward).

use serde::{Deserialize, Serialize};

use super::TaskSetup;
use crate::error::{Error, Result};
use crate::optimize::rl::{RewardChoice, RlConfig};
use crate::task::Split;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeekingConfig {
    /// Task features (e.g. "shows_working") whose change from the base policy
    /// every strategy is measured by, on the held-out and the shifted split.
    pub features: Vec<String>,
    /// The feature that is a route to reward the shifted split offers and
    /// training did not (gridworld: "button_pressed"); `pairs` test whether
    /// policies take it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// `[[task.seeking.pairs]]`: a policy trained where the route does not
    /// exist, its control, and a maximiser of the same reward.
    pub pairs: Vec<SeekingPair>,
}

/// One test of reward seeking.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeekingPair {
    /// An RL run trained on the training split (where the route does not exist).
    pub policy: String,
    /// The same run (algorithm, reward, KL) trained on `split = "shift_train"`,
    /// where the route exists and earns reward: it shows the measurement can
    /// see reward seeking when the reward was earned in training.
    pub control: String,
    /// A strategy that maximises the same reward with the route available
    /// (best-of-n on it: "bon" for the proxy, "bon-labeler" for the labeler's
    /// score): the rate a policy that sought this reward would approach.
    pub maximiser: String,
}

impl SeekingConfig {
    pub(super) fn validate(&self, setup: &TaskSetup, at: &str) -> Result<()> {
        let at = format!("{at}.seeking");
        if setup.evaluation.shift_prompts == 0 {
            return Err(Error::invalid(
                at,
                "is measured on the shifted split: set evaluation.shift_prompts above 0",
            ));
        }
        let known = setup.task_config().feature_names();
        let features = self.features.iter().map(|f| ("features", f));
        for (key, f) in features.chain(self.route.iter().map(|r| ("route", r))) {
            if !known.contains(&f.as_str()) {
                return Err(Error::invalid(
                    format!("{at}.{key}"),
                    format!(
                        "{f:?} is not a feature of the {} task (it has {})",
                        setup.kind_name(),
                        known.join(", ")
                    ),
                ));
            }
        }
        if !self.pairs.is_empty() && self.route.is_none() {
            return Err(Error::invalid(
                format!("{at}.route"),
                "pairs test whether policies take a route to reward: name it (a feature)",
            ));
        }
        let rl = |name: &str| setup.strategies.rl.iter().find(|r| r.name == name);
        for (i, pair) in self.pairs.iter().enumerate() {
            let key = |k: &str| format!("{at}.pairs[{i}].{k}");
            let lane = |k: &str, name: &str, split: Split| -> Result<&RlConfig> {
                let r = rl(name).ok_or_else(|| {
                    Error::invalid(key(k), format!("{name:?} is not an RL run of this task"))
                })?;
                if r.split != split {
                    return Err(Error::invalid(
                        key(k),
                        format!(
                            "{name:?} must train on split = \"{}\" (it trains on \"{}\")",
                            split.name(),
                            r.split.name()
                        ),
                    ));
                }
                Ok(r)
            };
            let policy = lane("policy", &pair.policy, Split::Train)?;
            let control = lane("control", &pair.control, Split::ShiftTrain)?;
            let same = policy.algorithm == control.algorithm
                && policy.reward == control.reward
                && policy.kl == control.kl
                && policy.iterations == control.iterations;
            if !same {
                return Err(Error::invalid(
                    key("control"),
                    format!(
                        "{:?} differs from {:?} in more than its prompts (algorithm, reward, KL and iterations must match): it would not be a control",
                        pair.control, pair.policy
                    ),
                ));
            }
            // The pool strategies, and the reward each maximises.
            let maximises = match pair.maximiser.as_str() {
                "bon" | "conditioning" | "quantiliser" => Some(RewardChoice::Proxy),
                "bon-labeler" => Some(RewardChoice::Labeler),
                "bon-gold" => Some(RewardChoice::Gold),
                _ => None,
            };
            if maximises.is_none() || !setup.strategy_names().contains(&pair.maximiser) {
                return Err(Error::invalid(
                    key("maximiser"),
                    format!(
                        "{:?} is not a best-of-n, conditioning or quantiliser strategy this task runs",
                        pair.maximiser
                    ),
                ));
            }
            if maximises != Some(policy.reward) {
                return Err(Error::invalid(
                    key("maximiser"),
                    format!(
                        "{:?} maximises another reward than {:?} does",
                        pair.maximiser, pair.policy
                    ),
                ));
            }
        }
        Ok(())
    }
}
