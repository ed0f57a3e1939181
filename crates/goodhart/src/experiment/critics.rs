//! The `critic` stage: learned critics trained on the base policy's
//! completions (see [`crate::critic`]), saved per round, and handed to the
//! labelers whose assistant names a round before they label or measure.

use std::path::Path;
use std::sync::Arc;

use crate::runtime::Device;

use rand::Rng as _;

use super::record::Record;
use super::run::{Products, TaskRun};
use crate::critic::{train_critics, LearnedCritic};
use crate::error::{Error, Result};
use crate::feedback::{Critic, Labeler};
use crate::model::checkpoint::{self, CheckpointInfo, ModelKind};
use crate::model::sample::sample;
use crate::model::Model;
use crate::rng::Rng;
use crate::task::Split;

impl TaskRun<'_> {
    /// Train the task's critics, one per round, and save each (`critic-N/`).
    pub(super) fn critic(&self, p: &Products) -> Result<Record> {
        let base = self.base_policy(&p.base)?;
        let cfg = &self.setup.critic;
        let mut rng = self.rng("critic");
        let train = self.completions(base, Split::Train, cfg.checks, &mut rng)?;
        let heldout = self.completions(base, Split::Heldout, cfg.heldout, &mut rng)?;
        let critics = train_critics(
            base,
            self.task,
            cfg,
            &train,
            &heldout,
            &mut rng,
            self.progress,
        )?;
        let mut rounds = vec![];
        let mut made = vec![];
        for (critic, report) in critics {
            let info = CheckpointInfo::new(&critic.model, ModelKind::Critic);
            checkpoint::save(
                &critic.model,
                &info,
                &self.path(&format!("critic-{}", report.round)),
                true,
            )?;
            rounds.push(report);
            made.push(Arc::new(critic));
        }
        p.critics.get_or_init(|| made);
        Ok(Record::Critic { rounds })
    }

    /// `n` base-policy completions of the split's prompts (one per prompt,
    /// the prompts drawn at random), sampled as labels are.
    pub(super) fn completions(
        &self,
        base: &Model,
        split: Split,
        n: usize,
        rng: &mut Rng,
    ) -> Result<Vec<(String, String)>> {
        let prompts = self.task.prompts(split);
        if prompts.is_empty() {
            return Err(Error::invalid(
                "critic",
                format!("the task has no {} prompts", split.name()),
            ));
        }
        let chosen: Vec<&String> = (0..n)
            .map(|_| &prompts[rng.random_range(0..prompts.len())])
            .collect();
        let ids = chosen
            .iter()
            .map(|p| base.tokenizer().encode_prompt(p))
            .collect::<Result<Vec<_>>>()?;
        let samples = sample(base, &ids, 1, &self.setup.labels.sampling, rng)?;
        Ok(chosen
            .into_iter()
            .zip(samples)
            .map(|(p, s)| (p.clone(), s.text))
            .collect())
    }

    /// The task's labelers, each assisted by a learned critic given its
    /// round's critic: the ones the critic stage made, or their checkpoints.
    /// Attached once, when a stage first asks.
    pub(super) fn labelers<'p, 't>(&self, p: &'p Products<'t>) -> Result<&'p [Labeler<'t>]> {
        if let Some(l) = p.labelers.get() {
            return Ok(l);
        }
        let assisted = p.unassisted.iter().any(|l| l.missing_critic().is_some());
        let critics = if assisted { self.critics(p)? } else { &[] };
        let labelers = p
            .unassisted
            .iter()
            .map(|l| match l.missing_critic() {
                Some(r) => l
                    .clone()
                    .with_critic(critics[r - 1].clone() as Arc<dyn Critic>),
                None => l.clone(),
            })
            .collect();
        Ok(p.labelers.get_or_init(|| labelers))
    }

    /// The task's learned critics by round: the ones the critic stage made,
    /// or their checkpoints (loaded once, when a stage first asks).
    pub(super) fn critics<'p>(&self, p: &'p Products) -> Result<&'p [Arc<LearnedCritic>]> {
        if p.critics.get().is_none() {
            let loaded = (1..=self.setup.critic.rounds)
                .map(|round| load_critic(&self.path(&format!("critic-{round}")), &self.device))
                .collect::<Result<Vec<_>>>()?;
            p.critics.get_or_init(|| loaded);
        }
        Ok(p.critics.get().expect("critics made or loaded"))
    }
}

/// The critic checkpoint at `dir`.
fn load_critic(dir: &Path, device: &Device) -> Result<Arc<LearnedCritic>> {
    let (model, info) = checkpoint::load(dir, device, false)?;
    if info.kind != ModelKind::Critic {
        return Err(Error::checkpoint(dir, "is not a critic"));
    }
    Ok(Arc::new(LearnedCritic::new(model)))
}

/// Give each of `labelers` assisted by a learned critic its round's critic
/// from `dir/critic-N` (a run's folder of the task: where `goodhart run` saves
/// them), for commands that label or measure outside a run.
pub fn with_critics_from<'t>(
    labelers: Vec<Labeler<'t>>,
    dir: &Path,
    device: &Device,
) -> Result<Vec<Labeler<'t>>> {
    labelers
        .into_iter()
        .map(|l| {
            let Some(round) = l.missing_critic() else {
                return Ok(l);
            };
            let at = dir.join(format!("critic-{round}"));
            if !at.is_dir() {
                return Err(Error::invalid(
                    format!("labeler {:?}.assistant", l.name()),
                    format!(
                        "needs the learned critic of round {round}, and {} is not a critic checkpoint \
                         (`goodhart run` saves critic-N/ in the run's folder of the task; name that folder with --critics)",
                        at.display()
                    ),
                ));
            }
            Ok(l.with_critic(load_critic(&at, device)? as Arc<dyn Critic>))
        })
        .collect()
}
