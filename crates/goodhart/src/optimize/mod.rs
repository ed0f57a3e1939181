//! Optimisation strategies, one file each, over the scoring layer's reward
//! sources, log-prob scoring and KL to the reference policy.
//!
//! - [`bon`]: best-of-n from one pool of base samples, for every n at once;
//! - [`condition`]: the KL-regularised optimum `pi_ref exp(r / beta)`, by importance weighting;
//! - [`quantilize`]: the top q of base samples by reward;
//! - [`ppo`]: PPO with a per-token or sequence KL penalty, fixed or adaptive;
//! - [`rloo`]: REINFORCE with a leave-one-out baseline, same KL options;
//! - [`expert`]: distilled filtering (expert iteration): SFT on the best of the policy's own samples;
//! - [`dpo`]: DPO and IPO on stored preference pairs.

pub mod bon;
pub mod condition;
pub mod debate;
pub mod dpo;
pub mod expert;
pub mod online;
pub mod pool;
pub mod ppo;
pub mod quantilize;
pub mod red_team;
pub mod review;
pub mod rl;
pub mod rloo;
pub mod rrm;
pub mod world_model;
