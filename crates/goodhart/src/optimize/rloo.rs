//! RLOO: REINFORCE with a leave-one-out baseline. Each prompt gets k samples;
//! a sample's advantage is its (KL-penalised) return minus the mean return of
//! the prompt's other samples (whitened across the rollout when
//! `whiten_advantages`); one gradient step per rollout on
//! `-advantage * log pi(completion)`.

use candle_core::Tensor;

use super::rl::{batch_of, whiten, IterationLog, RlConfig, Rollout, Update};
use crate::error::Result;
use crate::model::Model;
use crate::rng::Rng;
use crate::train::Trainer;

pub struct Rloo {
    cfg: RlConfig,
    trainer: Trainer,
}

impl Rloo {
    pub fn new(policy: &Model, cfg: &RlConfig) -> Result<Self> {
        Ok(Self {
            cfg: cfg.clone(),
            trainer: Trainer::new(policy.vars(), &cfg.optim, cfg.iterations, &cfg.name)?,
        })
    }
}

/// Leave-one-out advantages of `returns`, grouped in consecutive runs of `k` per prompt.
pub fn leave_one_out(returns: &[f64], k: usize) -> Vec<f64> {
    returns
        .chunks(k)
        .flat_map(|g| {
            let sum: f64 = g.iter().sum();
            let m = (g.len() - 1).max(1) as f64;
            g.iter().map(move |r| r - (sum - r) / m)
        })
        .collect()
}

/// Leave-one-out advantages, whitened across the rollout when asked.
fn advantages(returns: &[f64], k: usize, whiten_them: bool) -> Vec<f32> {
    let mut adv: Vec<f32> = leave_one_out(returns, k)
        .into_iter()
        .map(|a| a as f32)
        .collect();
    if whiten_them {
        whiten(&mut adv);
    }
    adv
}

impl Update for Rloo {
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
        let adv = advantages(
            &returns,
            self.cfg.samples_per_prompt,
            self.cfg.whiten_advantages,
        );

        let n = ro.samples.len();
        let stats = self.trainer.step_sharded(n, |r| {
            let batch = batch_of(policy, &ro.prompt_tokens, &ro.samples[r.clone()])?;
            let lp = policy.target_logprobs(policy.train_net(), &batch)?; // [b, t]
            let seq_lp = (lp * &batch.completion_mask)?.sum(1)?; // [b]
            let adv_t = Tensor::from_slice(&adv[r], seq_lp.dim(0)?, policy.device())?;
            Ok(((seq_lp * adv_t)?.sum_all()? / -(n as f64))?)
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
    fn leave_one_out_baseline() {
        let a = leave_one_out(&[1.0, 3.0, 0.0, 2.0], 2);
        assert_eq!(a, vec![-2.0, 2.0, -2.0, 2.0]);
        let a = leave_one_out(&[3.0, 0.0, 0.0], 3);
        assert_eq!(a, vec![3.0, -1.5, -1.5]);
        assert!(
            (a.iter().sum::<f64>()).abs() < 1e-12,
            "advantages of a group sum to zero"
        );
    }

    #[test]
    fn whiten_advantages_is_honoured() {
        let returns = [1.0, 3.0, 0.0, 2.0, 5.0, 1.0];
        let plain = advantages(&returns, 2, false);
        assert_eq!(plain, vec![-2.0, 2.0, -2.0, 2.0, 4.0, -4.0]);
        let white = advantages(&returns, 2, true);
        let mean = white.iter().sum::<f32>() / 6.0;
        let var = white.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / 6.0;
        assert!(
            mean.abs() < 1e-5 && (var.sqrt() - 1.0).abs() < 0.01,
            "{white:?}"
        );
    }
}
