//! Environments in the loop: what a policy observes as it acts.
//!
//! A policy sampled with an [`Environment`] is an agent in closed loop: before its
//! first token and after each token it picks, the environment may write tokens
//! into the completion (what the agent sees now), and the policy reads them
//! before its next choice. Those tokens are the environment's, not the
//! policy's: the policy never emits them, and they carry no log-probability
//! (sampling records 0 and teacher-forced scoring gives 0 there), so SFT's
//! loss, PPO's ratio, DPO's margins and every KL are over the policy's own choices.

/// An environment that writes into completions as they are sampled.
pub trait Environment: Send + Sync {
    /// The token ids only the environment writes.
    fn observed_tokens(&self) -> Vec<u32>;

    /// What the environment writes now. `prompt` starts with BOS; `completion`
    /// is empty (before the policy's first token) or ends with a token the
    /// policy just picked (never the stop token).
    fn observe(&self, prompt: &[u32], completion: &[u32]) -> Vec<u32>;
}
