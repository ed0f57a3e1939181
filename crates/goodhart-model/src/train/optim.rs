//! AdamW with a warm-up + cosine schedule and global gradient-norm clipping,
//! over candle-nn's AdamW. A NaN or infinite loss or gradient stops training
//! with an error naming the step, before the weights are touched.

use std::ops::Range;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warm-up from 0 to `lr`.
    pub warmup_steps: usize,
    /// The cosine decay ends at `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    /// Decoupled weight decay, applied to weight matrices only (not biases or norms).
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    pub grad_clip: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 3e-3,
            warmup_steps: 50,
            min_lr_ratio: 0.1,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            grad_clip: 1.0,
        }
    }
}

/// The keys an `optim` table sets, and nothing else. A section whose
/// optimiser defaults are its own (RL, DPO, the reward model, the critic, the
/// world model) lays them over those defaults, so that `optim = { lr = 1e-3 }`
/// there changes the rate and keeps the section's warm-up, decay and schedule.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimKeys {
    lr: Option<f64>,
    warmup_steps: Option<usize>,
    min_lr_ratio: Option<f64>,
    weight_decay: Option<f64>,
    beta1: Option<f64>,
    beta2: Option<f64>,
    eps: Option<f64>,
    grad_clip: Option<f64>,
}

impl OptimKeys {
    /// `defaults` with the keys this table set replaced.
    pub fn over(self, defaults: OptimConfig) -> OptimConfig {
        let d = defaults;
        OptimConfig {
            lr: self.lr.unwrap_or(d.lr),
            warmup_steps: self.warmup_steps.unwrap_or(d.warmup_steps),
            min_lr_ratio: self.min_lr_ratio.unwrap_or(d.min_lr_ratio),
            weight_decay: self.weight_decay.unwrap_or(d.weight_decay),
            beta1: self.beta1.unwrap_or(d.beta1),
            beta2: self.beta2.unwrap_or(d.beta2),
            eps: self.eps.unwrap_or(d.eps),
            grad_clip: self.grad_clip.unwrap_or(d.grad_clip),
        }
    }

    /// Read an `optim` table over `defaults` (for a field's `deserialize_with`).
    pub fn read_over<'de, D: Deserializer<'de>>(
        d: D,
        defaults: OptimConfig,
    ) -> std::result::Result<OptimConfig, D::Error> {
        Ok(Self::deserialize(d)?.over(defaults))
    }
}

impl OptimConfig {
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let f = |k: &str| format!("{prefix}.{k}");
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(Error::invalid(f("lr"), "must be a positive number"));
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return Err(Error::invalid(f("min_lr_ratio"), "must be in [0, 1]"));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(Error::invalid(
                f("beta1"),
                "beta1 and beta2 must be in [0, 1)",
            ));
        }
        let finite = [self.weight_decay, self.grad_clip, self.eps]
            .iter()
            .all(|v| v.is_finite());
        if !finite || self.weight_decay < 0.0 || self.grad_clip < 0.0 || self.eps <= 0.0 {
            return Err(Error::invalid(
                f("weight_decay"),
                "weight_decay and grad_clip must be numbers >= 0 and eps a number > 0",
            ));
        }
        Ok(())
    }

    /// Learning rate at `step` of `total` steps.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        min + (self.lr - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// What one optimiser step did.
#[derive(Clone, Copy, Debug)]
pub struct StepStats {
    pub step: usize,
    pub loss: f64,
    pub grad_norm: f64,
    pub lr: f64,
}

impl StepStats {
    /// The step's loss, as training reports record it.
    pub fn loss_at(&self) -> LossAt {
        LossAt {
            step: self.step,
            loss: self.loss,
        }
    }
}

/// A loss at an optimiser step, as training reports record it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "LossAtRepr")]
pub struct LossAt {
    pub step: usize,
    pub loss: f64,
}

/// A [`LossAt`] as written: named, or a `[step, loss]` pair (reports
/// written before it was named).
#[derive(Deserialize)]
#[serde(untagged)]
enum LossAtRepr {
    Named { step: usize, loss: f64 },
    Pair(usize, f64),
}

impl From<LossAtRepr> for LossAt {
    fn from(r: LossAtRepr) -> Self {
        let (LossAtRepr::Named { step, loss } | LossAtRepr::Pair(step, loss)) = r;
        Self { step, loss }
    }
}

pub struct Trainer {
    decay: AdamW,
    no_decay: AdamW,
    vars: Vec<Var>,
    cfg: OptimConfig,
    total_steps: usize,
    step: usize,
    what: String,
}

impl Trainer {
    /// `what` names the training run in errors ("sft", "reward model", ...).
    pub fn new(
        vars: Vec<(String, Var)>,
        cfg: &OptimConfig,
        total_steps: usize,
        what: &str,
    ) -> Result<Self> {
        cfg.validate(what)?;
        let params = |weight_decay| ParamsAdamW {
            lr: cfg.lr,
            beta1: cfg.beta1,
            beta2: cfg.beta2,
            eps: cfg.eps,
            weight_decay,
        };
        let (matrices, rest): (Vec<_>, Vec<_>) = vars
            .iter()
            .map(|(_, v)| v.clone())
            .partition(|v| v.rank() >= 2);
        Ok(Self {
            decay: AdamW::new(matrices, params(cfg.weight_decay))?,
            no_decay: AdamW::new(rest, params(0.0))?,
            vars: vars.into_iter().map(|(_, v)| v).collect(),
            cfg: cfg.clone(),
            total_steps,
            step: 0,
            what: what.to_string(),
        })
    }

    pub fn step_count(&self) -> usize {
        self.step
    }

    /// Back-propagate `loss`, clip, and update the weights.
    pub fn step(&mut self, loss: &Tensor) -> Result<StepStats> {
        let loss_value = scalar(loss)?;
        self.check_finite("loss", loss_value)?;
        let grads = loss.backward()?;
        self.apply(loss_value, grads)
    }

    /// One step on a batch of `n_items` split into contiguous shards, one per
    /// thread of the current pool, each shard's loss and gradient computed
    /// side by side (`runtime::set_threads` makes the kernels inside a shard
    /// serial). `loss_of(range)` returns the shard's share of the batch's loss:
    /// the shares must sum to it (a mean over the batch divides each shard's sum
    /// by the whole batch's count). With one thread this is
    /// `step(&loss_of(0..n_items)?)`, bit for bit.
    pub fn step_sharded<F>(&mut self, n_items: usize, loss_of: F) -> Result<StepStats>
    where
        F: Fn(Range<usize>) -> Result<Tensor> + Sync,
    {
        Ok(self
            .step_sharded_with(n_items, |r| Ok((loss_of(r)?, ())))?
            .0)
    }

    /// `step_sharded` where each shard also returns what it measured on the way
    /// (before the update), in shard order.
    pub fn step_sharded_with<T, F>(&mut self, n_items: usize, f: F) -> Result<(StepStats, Vec<T>)>
    where
        T: Send,
        F: Fn(Range<usize>) -> Result<(Tensor, T)> + Sync,
    {
        if crate::runtime::shards(n_items).len() <= 1 {
            let (loss, t) = f(0..n_items)?;
            return Ok((self.step(&loss)?, vec![t]));
        }
        let parts = crate::runtime::map_shards(n_items, |range| -> Result<_> {
            let (loss, t) = f(range)?;
            Ok((scalar(&loss)?, loss.backward()?, t))
        })?;
        let loss_value: f64 = parts.iter().map(|(l, _, _)| l).sum();
        self.check_finite("loss", loss_value)?;
        let mut grads: Option<GradStore> = None;
        let mut measured = Vec::with_capacity(parts.len());
        for (_, g, t) in parts {
            measured.push(t);
            let Some(sum) = grads.as_mut() else {
                grads = Some(g);
                continue;
            };
            for v in &self.vars {
                if let Some(g) = g.get(v.as_tensor()) {
                    let total = match sum.remove(v.as_tensor()) {
                        Some(acc) => (acc + g)?,
                        None => g.clone(),
                    };
                    sum.insert(v.as_tensor(), total);
                }
            }
        }
        let grads = grads.expect("two shards or more");
        Ok((self.apply(loss_value, grads)?, measured))
    }

    /// Clip `grads` and update the weights with them.
    fn apply(&mut self, loss_value: f64, mut grads: GradStore) -> Result<StepStats> {
        let mut sq = Vec::with_capacity(self.vars.len());
        for v in &self.vars {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq.push(g.sqr()?.sum_all()?);
            }
        }
        let grad_norm = if sq.is_empty() {
            0.0
        } else {
            Tensor::stack(&sq, 0)?.sum_all()?.to_scalar::<f32>()?.sqrt() as f64
        };
        self.check_finite("gradient norm", grad_norm)?;
        if self.cfg.grad_clip > 0.0 && grad_norm > self.cfg.grad_clip {
            let scale = self.cfg.grad_clip / (grad_norm + 1e-6);
            for v in &self.vars {
                if let Some(g) = grads.remove(v.as_tensor()) {
                    grads.insert(v.as_tensor(), (g * scale)?);
                }
            }
        }
        let lr = self.cfg.lr_at(self.step, self.total_steps);
        self.decay.set_learning_rate(lr);
        self.no_decay.set_learning_rate(lr);
        self.decay.step(&grads)?;
        self.no_decay.step(&grads)?;
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss: loss_value,
            grad_norm,
            lr,
        })
    }

    fn check_finite(&self, quantity: &str, value: f64) -> Result<()> {
        if value.is_finite() {
            Ok(())
        } else {
            Err(Error::Diverged {
                what: self.what.clone(),
                step: self.step + 1,
                quantity: quantity.into(),
                value,
            })
        }
    }
}

fn scalar(loss: &Tensor) -> Result<f64> {
    Ok(loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let c = OptimConfig {
            lr: 1.0,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            ..Default::default()
        };
        assert!((c.lr_at(0, 100) - 0.1).abs() < 1e-12);
        assert!((c.lr_at(9, 100) - 1.0).abs() < 1e-12);
        assert!(c.lr_at(50, 100) < 1.0 && c.lr_at(50, 100) > 0.1);
        assert!((c.lr_at(100, 100) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn minimises_a_quadratic_and_reports_divergence() {
        let x = Var::new(&[3.0f32, -2.0], &Device::Cpu).unwrap();
        let cfg = OptimConfig {
            lr: 0.1,
            warmup_steps: 0,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut t = Trainer::new(vec![("x".into(), x.clone())], &cfg, 300, "quadratic").unwrap();
        for _ in 0..300 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            t.step(&loss).unwrap();
        }
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!(v.iter().all(|a| a.abs() < 0.05), "{v:?}");
        let nan = (x.as_tensor().sum_all().unwrap() * f64::NAN).unwrap();
        let err = t.step(&nan).unwrap_err().to_string();
        assert!(
            err.contains("quadratic diverged at step 301: loss is NaN"),
            "{err}"
        );
    }

    #[test]
    fn a_loss_is_written_by_name_and_read_in_either_form() {
        let at = LossAt {
            step: 7,
            loss: 0.25,
        };
        let named = serde_json::to_string(&at).unwrap();
        assert_eq!(named, r#"{"step":7,"loss":0.25}"#);
        assert_eq!(serde_json::from_str::<LossAt>(&named).unwrap(), at);
        // Reports written before the loss was named hold `[step, loss]` pairs.
        assert_eq!(serde_json::from_str::<LossAt>("[7, 0.25]").unwrap(), at);
        assert!(serde_json::from_str::<LossAt>(r#"{"step":7}"#).is_err());
    }
}
