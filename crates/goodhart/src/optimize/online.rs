//! Online reward modelling: while RL runs, label pairs of the *current*
//! policy's completions and fine-tune the reward model on every label so far.
//! The frozen alternative keeps the reward model from the first batch.

use std::sync::Mutex;

use super::rl::OnlineConfig;
use crate::error::Result;
use crate::feedback::simulate::LabelsConfig;
use crate::feedback::{
    queue_pairs, simulate_labels, Comparison, Filter, LabelStore, Labeler, PolicyTag,
};
use crate::model::sample::Sample;
use crate::model::Model;
use crate::progress::Silent;
use crate::reward::{fine_tune, RewardModel, RewardModelConfig};
use crate::rng::Rng;
use crate::score::sources::proxy_rewards;
use crate::score::RewardSource;
use crate::task::Task;

/// A proxy reward whose model can be refreshed between iterations.
pub struct OnlineProxy {
    pub rm: Mutex<RewardModel>,
}

impl RewardSource for OnlineProxy {
    fn name(&self) -> &str {
        "proxy"
    }

    fn rewards(
        &self,
        prompts: &[String],
        prompt_tokens: &[Vec<u32>],
        samples: &[Sample],
    ) -> Result<Vec<f64>> {
        let rm = self.rm.lock().expect("reward model lock");
        proxy_rewards(&rm, 0.0, prompts, prompt_tokens, samples)
    }
}

/// Everything a refresh needs besides the policy.
pub struct Online<'a> {
    pub store: &'a mut LabelStore,
    pub task: &'a dyn Task,
    pub labelers: &'a [Labeler<'a>],
    /// Prompts to label on (the training split).
    pub prompts: &'a [String],
    pub labels: LabelsConfig,
    pub rm_config: RewardModelConfig,
    /// Whose labels the reward model learns.
    pub rm_labelers: Vec<String>,
    /// The first batch of labels (on the base policy): trained on, and what scores are normalised on.
    pub base_batch: String,
    /// This run's name, which names its batches of labels.
    pub run: String,
    pub config: OnlineConfig,
}

impl Online<'_> {
    /// Label `pairs` of `policy`'s completions at `iteration`, then fine-tune the proxy on all of this run's labels.
    /// Returns the number of new comparisons.
    pub fn refresh(
        &mut self,
        proxy: &OnlineProxy,
        policy: &Model,
        iteration: usize,
        rng: &mut Rng,
    ) -> Result<usize> {
        let batch = format!("online/{}/{iteration}", self.run);
        let cfg = LabelsConfig {
            pairs: self.config.pairs,
            ..self.labels.clone()
        };
        let policy_tag = PolicyTag {
            name: &self.run,
            step: Some(iteration as i64),
        };
        let mut rm_labelers = self.rm_labelers.clone();
        let n = if self.config.human_labels > 0 {
            queue_pairs(
                self.store,
                policy,
                &policy_tag,
                self.task,
                self.prompts,
                &cfg,
                &batch,
                self.config
                    .assistant
                    .as_ref()
                    .and_then(|name| self.labelers.iter().find(|l| l.name() == name)),
                rng,
            )?;
            let n = wait_for_people(self.store, &batch, self.config.human_labels)?;
            rm_labelers.extend(self.store.users()?);
            n
        } else {
            simulate_labels(
                self.store,
                policy,
                &policy_tag,
                self.task,
                self.labelers,
                self.prompts,
                &cfg,
                &batch,
                rng,
                &Silent,
            )? * self.labelers.len()
        };
        let mine = |batches: Vec<String>| -> Result<Vec<Comparison>> {
            self.store.comparisons(&Filter {
                task: Some(self.task.name().to_string()),
                labelers: rm_labelers.clone(),
                batches,
            })
        };
        let base = mine(vec![self.base_batch.clone()])?;
        let prefix = format!("online/{}/", self.run);
        let all: Vec<Comparison> = self
            .store
            .comparisons(&Filter {
                task: Some(self.task.name().to_string()),
                labelers: rm_labelers.clone(),
                batches: vec![],
            })?
            .into_iter()
            .filter(|c| {
                c.batch
                    .as_deref()
                    .is_some_and(|b| b == self.base_batch || b.starts_with(&prefix))
            })
            .collect();
        let mut rm = proxy.rm.lock().expect("reward model lock");
        fine_tune(
            &mut rm,
            &all,
            &base,
            &self.rm_config,
            self.config.rm_steps,
            rng,
        )?;
        tracing::info!(run = %self.run, iteration, new = n, total = all.len(), "reward model refreshed on current-policy labels");
        Ok(n)
    }
}

/// How often a paused run looks for new human labels.
const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Pause until people have given `wanted` labels in `batch`; returns how many there are.
pub fn wait_for_people(store: &LabelStore, batch: &str, wanted: usize) -> Result<usize> {
    let mut said = false;
    loop {
        let n = store.human_labels_in_batch(batch)?;
        if n >= wanted {
            return Ok(n);
        }
        if !said {
            tracing::warn!(
                batch,
                have = n,
                wanted,
                "paused for human labels: serve them with `goodhart label serve --store {}`",
                store.path().display()
            );
            said = true;
        }
        std::thread::sleep(POLL);
    }
}
