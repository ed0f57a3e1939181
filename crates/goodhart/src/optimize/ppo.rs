//! PPO with a KL penalty to the reference policy (InstructGPT style).
//!
//! Each iteration: per-token rewards (the KL penalty on every token, or once
//! per sequence, plus the reward at the last token); GAE advantages from the
//! value head; then epochs of minibatch updates of the clipped policy loss and
//! the clipped value loss. The value head is the policy's scalar head, on the
//! shared trunk.

use candle_core::Tensor;
use rand::seq::SliceRandom;

use super::rl::{
    batch_of, scatter_completion, whiten, IterationLog, KlMode, PpoConfig, RlConfig, Rollout,
    Update,
};
use crate::error::Result;
use crate::model::{target_logprobs, Mask, Model};
use crate::rng::Rng;
use crate::train::Trainer;

pub struct Ppo {
    cfg: RlConfig,
    ppo: PpoConfig,
    trainer: Trainer,
}

impl Ppo {
    pub fn new(policy: &Model, cfg: &RlConfig) -> Result<Self> {
        let ppo = cfg.ppo();
        let steps = cfg.iterations
            * ppo.epochs
            * (cfg.prompts_per_iteration * cfg.samples_per_prompt).div_ceil(ppo.minibatch_size);
        Ok(Self {
            cfg: cfg.clone(),
            ppo,
            trainer: Trainer::new(policy.vars(), &cfg.optim, steps, &cfg.name)?,
        })
    }
}

/// Per-token rewards: `-beta * kl_t` on every token (per-token mode) or summed
/// at the end (sequence mode), plus the sequence's reward: on its last token,
/// or where it was earned (`(token, reward)` pairs; see `Rollout::earned`).
pub fn token_rewards(
    reward: f64,
    earned: Option<&[(usize, f64)]>,
    token_kl: &[f32],
    mode: KlMode,
    beta: f64,
) -> Vec<f32> {
    let n = token_kl.len();
    let mut r = vec![0f32; n];
    match mode {
        KlMode::PerToken => {
            for (r, k) in r.iter_mut().zip(token_kl) {
                *r = (-beta * *k as f64) as f32;
            }
        }
        KlMode::Sequence if n > 0 => {
            r[n - 1] = (-beta * token_kl.iter().map(|&k| k as f64).sum::<f64>()) as f32
        }
        _ => {}
    }
    let at_end = [(usize::MAX, reward)];
    if n > 0 {
        for &(t, e) in earned.unwrap_or(&at_end) {
            r[t.min(n - 1)] += e as f32;
        }
    }
    r
}

/// Generalised advantage estimation over one completion: (advantages, returns).
pub fn gae(rewards: &[f32], values: &[f32], gamma: f64, lam: f64) -> (Vec<f32>, Vec<f32>) {
    let n = rewards.len();
    let mut adv = vec![0f32; n];
    let mut next_adv = 0f64;
    for t in (0..n).rev() {
        let next_value = if t + 1 < n { values[t + 1] as f64 } else { 0.0 };
        let delta = rewards[t] as f64 + gamma * next_value - values[t] as f64;
        next_adv = delta + gamma * lam * next_adv;
        adv[t] = next_adv as f32;
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

/// [`gae`] over the policy's own choices, where an environment writes some of
/// the tokens (`chosen[t]` false): those are not steps. Their rewards count
/// towards the choice before them (the first choice, for what precedes it);
/// they get no advantage (their ratio is always 1) and their own value as the
/// return. λ then decays once per choice, not once per token the environment wrote.
pub fn gae_over_choices(
    rewards: &[f32],
    values: &[f32],
    chosen: &[bool],
    gamma: f64,
    lam: f64,
) -> (Vec<f32>, Vec<f32>) {
    let steps: Vec<usize> = (0..chosen.len()).filter(|&t| chosen[t]).collect();
    let mut step_rewards = vec![0f32; steps.len()];
    let mut step = 0;
    for (t, &r) in rewards.iter().enumerate() {
        while step + 1 < steps.len() && steps[step + 1] <= t {
            step += 1;
        }
        if let Some(sr) = step_rewards.get_mut(step) {
            *sr += r;
        }
    }
    let step_values: Vec<f32> = steps.iter().map(|&t| values[t]).collect();
    let (a, ret) = gae(&step_rewards, &step_values, gamma, lam);
    let mut advantages = vec![0f32; rewards.len()];
    let mut returns = values.to_vec();
    for (j, &t) in steps.iter().enumerate() {
        advantages[t] = a[j];
        returns[t] = ret[j];
    }
    (advantages, returns)
}

impl Update for Ppo {
    fn needs_values(&self) -> bool {
        true
    }

    fn update(
        &mut self,
        policy: &Model,
        ro: &Rollout,
        kl_coef: f64,
        rng: &mut Rng,
    ) -> Result<IterationLog> {
        let (cfg, ppo) = (&self.cfg, &self.ppo);
        // 1. Rewards per token and advantages.
        let token_kl = ro.token_kl();
        // Which tokens the policy chose (all of them, unless an environment writes some).
        let observed = policy.observed_tokens();
        let chosen: Vec<Vec<bool>> = ro
            .samples
            .iter()
            .map(|s| s.tokens.iter().map(|t| !observed.contains(t)).collect())
            .collect();
        let mut advantages = vec![];
        let mut returns = vec![];
        for (i, (((&reward, kl), values), chosen)) in ro
            .rewards
            .iter()
            .zip(&token_kl)
            .zip(&ro.values)
            .zip(&chosen)
            .enumerate()
        {
            let earned = ro.earned.as_ref().map(|e| e[i].as_slice());
            let r = token_rewards(reward, earned, kl, cfg.kl.mode, kl_coef);
            let (a, ret) = if observed.is_empty() {
                gae(&r, values, ppo.gamma, ppo.lam)
            } else {
                gae_over_choices(&r, values, chosen, ppo.gamma, ppo.lam)
            };
            advantages.push(a);
            returns.push(ret);
        }
        if cfg.whiten_advantages {
            // Over the choices only: the environment's tokens keep advantage 0.
            let mut flat: Vec<f32> = advantages
                .iter()
                .flatten()
                .zip(chosen.iter().flatten())
                .filter(|(_, &c)| c)
                .map(|(&a, _)| a)
                .collect();
            whiten(&mut flat);
            let mut k = 0;
            for (a, c) in advantages.iter_mut().zip(&chosen) {
                for (x, _) in a.iter_mut().zip(c).filter(|(_, &c)| c) {
                    *x = flat[k];
                    k += 1;
                }
            }
        }

        // 2. Epochs of clipped minibatch updates.
        let (mut pg_sum, mut vf_sum, mut clip_sum, mut n_mb) = (0.0, 0.0, 0.0, 0usize);
        let mut order: Vec<usize> = (0..ro.samples.len()).collect();
        for _ in 0..ppo.epochs {
            order.shuffle(rng);
            for mb in order.chunks(ppo.minibatch_size) {
                let n_tokens = mb
                    .iter()
                    .map(|&i| ro.samples[i].tokens.len())
                    .sum::<usize>();
                let of = (n_tokens.max(1) as f64, &advantages[..], &returns[..]);
                let (_, parts) = self
                    .trainer
                    .step_sharded_with(mb.len(), |r| clipped_loss(policy, ro, &mb[r], of, ppo))?;
                for [pg, vf, clip] in parts {
                    pg_sum += pg;
                    vf_sum += vf;
                    clip_sum += clip;
                }
                n_mb += 1;
            }
        }
        let n = n_mb.max(1) as f64;
        Ok(IterationLog {
            policy_loss: pg_sum / n,
            value_loss: vf_sum / n,
            clip_fraction: clip_sum / n,
            ..IterationLog::of(ro, kl_coef)
        })
    }
}

/// PPO's clipped policy and value loss over the samples `mb` of `ro`, summed
/// over their tokens and divided by `n_tokens` (the whole minibatch's count);
/// with it, the policy loss, the value loss and the clipped tokens' share.
fn clipped_loss(
    policy: &Model,
    ro: &Rollout,
    mb: &[usize],
    (n_tokens, advantages, returns): (f64, &[Vec<f32>], &[Vec<f32>]),
    ppo: &PpoConfig,
) -> Result<(Tensor, [f64; 3])> {
    let samples: Vec<_> = mb.iter().map(|&i| ro.samples[i].clone()).collect();
    let batch = batch_of(policy, &ro.prompt_tokens, &samples)?;
    let scatter = |v: &[Vec<f32>]| {
        let rows: Vec<&[f32]> = mb.iter().map(|&i| v[i].as_slice()).collect();
        scatter_completion(&batch, &rows)
    };
    let old_lp = scatter(&ro.logprobs)?; // [b, t]
    let old_v = scatter(&ro.values)?;
    let adv = scatter(advantages)?;
    let ret = scatter(returns)?;
    let mask = &batch.completion_mask;

    let net = policy.train_net();
    let hidden = net.hidden(&batch.input, &batch.positions, Mask::Causal, None)?;
    let new_lp = target_logprobs(net, &hidden, &batch.target)?; // [b, t]
    let new_v = net.scalar(&hidden)?; // [b, t]

    let ratio = (&new_lp - &old_lp)?.exp()?;
    let unclipped = (&ratio * &adv)?;
    let clipped = (ratio.clamp(1.0 - ppo.clip, 1.0 + ppo.clip)? * &adv)?;
    let pg = (unclipped.minimum(&clipped)?.neg()? * mask)?
        .sum_all()?
        .affine(1.0 / n_tokens, 0.0)?;

    let v_clipped = (&old_v + (&new_v - &old_v)?.clamp(-ppo.value_clip, ppo.value_clip)?)?;
    let vf1 = (&new_v - &ret)?.sqr()?;
    let vf2 = (&v_clipped - &ret)?.sqr()?;
    let vf = (vf1.maximum(&vf2)? * mask)?
        .sum_all()?
        .affine(0.5 / n_tokens, 0.0)?;

    let outside = ((&ratio - 1.0)?
        .abs()?
        .gt(ppo.clip)?
        .to_dtype(candle_core::DType::F32)?
        * mask)?;
    let measured = [
        pg.to_scalar::<f32>()? as f64,
        vf.to_scalar::<f32>()? as f64,
        outside.sum_all()?.to_scalar::<f32>()? as f64 / n_tokens,
    ];
    Ok(((&pg + vf.affine(ppo.vf_coef, 0.0)?)?, measured))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rewards_place_the_penalty_and_the_reward() {
        let kl = [0.5f32, -0.1, 0.2];
        let per_token = token_rewards(1.0, None, &kl, KlMode::PerToken, 0.1);
        assert_eq!(per_token, vec![-0.05, 0.01, 1.0 - 0.02]);
        let seq = token_rewards(1.0, None, &kl, KlMode::Sequence, 0.1);
        assert!((seq[2] - (1.0 - 0.06)).abs() < 1e-6 && seq[0] == 0.0);
        assert_eq!(
            token_rewards(1.0, None, &kl, KlMode::None, 0.1),
            vec![0.0, 0.0, 1.0]
        );
    }

    #[test]
    fn earned_rewards_are_placed_where_they_were_earned() {
        let kl = [0.5f32, -0.1, 0.2];
        // The sequence's reward is ignored when its earnings are given (they sum to it).
        let earned = [(0, -0.5), (1, 0.25), (7, 1.25)];
        let r = token_rewards(1.0, Some(&earned), &kl, KlMode::PerToken, 0.1);
        assert_eq!(r, vec![-0.05 - 0.5, 0.01 + 0.25, -0.02 + 1.25]);
        assert!(token_rewards(1.0, Some(&earned), &[], KlMode::None, 0.1).is_empty());
    }

    #[test]
    fn gae_over_choices_skips_the_environments_tokens() {
        // Choice, two written tokens, choice, one written token (the reward lands on it).
        let r = [0.1f32, 0.0, 0.0, -0.1, 1.0];
        let v = [0.2f32, 9.0, 9.0, 0.5, 9.0];
        let chosen = [true, false, false, true, false];
        let (a, ret) = gae_over_choices(&r, &v, &chosen, 1.0, 0.5);
        let (a2, ret2) = gae(&[0.1, 0.9], &[0.2, 0.5], 1.0, 0.5);
        assert_eq!((a[0], a[3]), (a2[0], a2[1]));
        assert_eq!((ret[0], ret[3]), (ret2[0], ret2[1]));
        assert_eq!((a[1], a[2], a[4]), (0.0, 0.0, 0.0));
        assert_eq!(
            (ret[1], ret[4]),
            (9.0, 9.0),
            "their own value: nothing to learn there"
        );
        // With every token chosen it is plain GAE.
        assert_eq!(
            gae_over_choices(&r, &v, &[true; 5], 1.0, 0.5),
            gae(&r, &v, 1.0, 0.5)
        );
    }

    #[test]
    fn gae_with_lambda_one_is_reward_to_go_minus_value() {
        let r = [0.0f32, 0.0, 1.0];
        let v = [0.2f32, 0.5, 0.7];
        let (a, ret) = gae(&r, &v, 1.0, 1.0);
        for t in 0..3 {
            assert!((ret[t] - 1.0).abs() < 1e-6, "returns are the reward-to-go");
            assert!((a[t] - (1.0 - v[t])).abs() < 1e-6);
        }
        let (a0, _) = gae(&r, &v, 1.0, 0.0);
        assert!(
            (a0[0] - (0.5 - 0.2)).abs() < 1e-6,
            "lambda 0: one-step TD error"
        );
    }
}
