//! Distilled filtering (expert iteration): each iteration samples k
//! completions per prompt from the current policy, keeps the one with the
//! highest return (the reward, less the KL penalty when there is one: the
//! same return RLOO's advantages use), and takes one supervised step towards
//! the kept completions (mean token cross-entropy). Best-of-k filtering,
//! distilled into the weights and iterated: the policy moves only towards its
//! own samples, as filtering does, but compounds the selection.

use candle_core::Tensor;

use super::rl::{batch_of, IterationLog, RlConfig, Rollout, Update};
use crate::error::Result;
use crate::model::Model;
use crate::rng::Rng;
use crate::train::Trainer;

pub struct ExpertIteration {
    cfg: RlConfig,
    trainer: Trainer,
}

impl ExpertIteration {
    pub fn new(policy: &Model, cfg: &RlConfig) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            trainer: Trainer::new(policy.vars(), &cfg.optim, cfg.iterations, &cfg.name)?,
        })
    }
}

/// The index of the best of each consecutive group of `k` returns (the first on ties).
pub fn best_of_groups(returns: &[f64], k: usize) -> Vec<usize> {
    returns
        .chunks(k)
        .enumerate()
        .map(|(g, group)| {
            let mut best = 0;
            for (i, r) in group.iter().enumerate() {
                if r.total_cmp(&group[best]).is_gt() {
                    best = i;
                }
            }
            g * k + best
        })
        .collect()
}

impl Update for ExpertIteration {
    fn needs_values(&self) -> bool {
        false
    }

    fn update(
        &mut self,
        policy: &Model,
        ro: &Rollout,
        kl_coef: f64,
        _rng: &mut Rng,
    ) -> Result<IterationLog> {
        let returns = ro.returns(self.cfg.kl.mode, kl_coef);
        let kept: Vec<_> = best_of_groups(&returns, self.cfg.samples_per_prompt)
            .into_iter()
            .map(|i| ro.samples[i].clone())
            .collect();
        let tokens = kept.iter().map(|s| s.tokens.len()).sum::<usize>();
        let tokens = Tensor::new(tokens as f32, policy.device())?;
        let stats = self.trainer.step_sharded(kept.len(), |r| {
            let batch = batch_of(policy, &ro.prompt_tokens, &kept[r])?;
            let lp = policy.target_logprobs(policy.train_net(), &batch)?; // [b, t]
            Ok(((lp * &batch.completion_mask)?.sum_all()? / &tokens)?.neg()?)
        })?;
        Ok(IterationLog {
            policy_loss: stats.loss,
            ..IterationLog::of(ro, kl_coef)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_of_each_prompt_is_kept() {
        assert_eq!(
            best_of_groups(&[0.1, 0.9, 0.5, 0.2, 0.2, 0.7], 3),
            vec![1, 5]
        );
        assert_eq!(best_of_groups(&[1.0, 1.0], 2), vec![0], "the first on ties");
    }
}
