//! The `critic` stage: learned critics trained on the base policy's
//! completions (see [`crate::critic`]), saved per round, and handed to the
//! labelers whose assistant names a round before they label or measure.

use std::sync::Arc;

use rand::Rng as _;

use super::record::Record;
use super::run::{Products, TaskRun};
use crate::critic::{train_critics, CriticRound, LearnedCritic};
use crate::error::{Error, Result};
use crate::feedback::Critic;
use crate::model::checkpoint::{self, CheckpointInfo, ModelKind};
use crate::model::sample::sample;
use crate::model::Model;
use crate::rng::Rng;
use crate::stats::Stat;
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
    fn completions(
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

    /// Give each labeler that is assisted by a learned critic its round's
    /// critic: the ones the stage made, or their checkpoints.
    pub(super) fn attach_critics(&self, p: &mut Products) -> Result<()> {
        if p.critics_attached || !p.labelers.iter().any(|l| l.learned_round().is_some()) {
            return Ok(());
        }
        if p.critics.get().is_none() {
            let mut loaded = vec![];
            for round in 1..=self.setup.critic.rounds {
                let dir = self.path(&format!("critic-{round}"));
                let (model, info) = checkpoint::load(&dir, &self.device, false)?;
                if info.kind != ModelKind::Critic {
                    return Err(Error::checkpoint(&dir, "is not a critic"));
                }
                loaded.push(Arc::new(LearnedCritic::new(model)));
            }
            p.critics.get_or_init(|| loaded);
        }
        let critics = p.critics.get().expect("critics made or loaded");
        let labelers = std::mem::take(&mut p.labelers);
        p.labelers = labelers
            .into_iter()
            .map(|l| match l.learned_round() {
                Some(r) => l.with_critic(critics[r - 1].clone() as Arc<dyn Critic>),
                None => l,
            })
            .collect();
        p.critics_attached = true;
        Ok(())
    }
}

/// A share as "0.83 ± 0.05" (a 95% normal interval), or "-" with no data.
pub fn share(s: &Stat) -> String {
    if s.n == 0 || !s.mean.is_finite() {
        "-".into()
    } else {
        format!("{:.2} ± {:.2}", s.mean, 1.96 * s.stderr)
    }
}

/// One round of a learned critic, in a sentence for the report.
pub fn critic_sentence(r: &CriticRound) -> String {
    let o = &r.overall;
    let by: Vec<String> = r
        .by_difficulty
        .iter()
        .filter(|(_, s)| s.flawed > 0)
        .map(|(d, s)| format!("{d}: {} of {}", share(&s.hit), s.flawed))
        .collect();
    format!(
        "Learned critic, round {}: trained on {} checked steps (a flaw confirmed at {} of this round's); on held-out base-policy answers it points at a wrong step of {} of the {} flawed ones (by difficulty {}), precision {}, recall {} (95% intervals over answers).",
        r.round,
        r.checks,
        share(&r.confirmed),
        share(&o.hit),
        o.flawed,
        by.join(", "),
        share(&o.precision),
        share(&o.recall)
    )
}
