//! The `critic` stage: learned critics trained on the base policy's
//! completions (see [`crate::critic`]), saved per round, and handed to the
//! labelers whose assistant names a round before they label or measure.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use crate::runtime::Device;

use rand::Rng as _;

use super::record::{Record, TaskRecords};
use super::run::{Products, TaskRun};
use super::seeds::AcrossSeeds;
use crate::critic::{train_critics, CriticRound, LearnedCritic};
use crate::error::{Error, Result};
use crate::feedback::{Critic, Labeler};
use crate::measure::LabelerFidelity;
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
        if p.labelers.iter().all(|l| l.missing_critic().is_none()) {
            return Ok(());
        }
        if p.critics.get().is_none() {
            let loaded = (1..=self.setup.critic.rounds)
                .map(|round| load_critic(&self.path(&format!("critic-{round}")), &self.device))
                .collect::<Result<Vec<_>>>()?;
            p.critics.get_or_init(|| loaded);
        }
        let critics = p.critics.get().expect("critics made or loaded");
        let labelers = std::mem::take(&mut p.labelers);
        p.labelers = labelers
            .into_iter()
            .map(|l| match l.missing_critic() {
                Some(r) => l.with_critic(critics[r - 1].clone() as Arc<dyn Critic>),
                None => l,
            })
            .collect();
        Ok(())
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

/// One task's judges and learned critic across seeds (means with 95%
/// t-intervals across seeds), for the several-seed summary and report.
#[derive(Clone, Debug)]
pub struct JudgesAcrossSeeds {
    pub task: String,
    pub seeds: usize,
    /// Per judge, its agreement with gold on the base policy's held-out
    /// pairs, by difficulty.
    pub agreement: Vec<(String, Vec<(u32, AcrossSeeds)>)>,
    /// Per critic round (1-based): hit rate, precision, recall, the share
    /// of its training checks that found a flaw, and the hit rate by difficulty.
    pub rounds: Vec<RoundAcrossSeeds>,
}

#[derive(Clone, Debug)]
pub struct RoundAcrossSeeds {
    pub hit: AcrossSeeds,
    pub precision: AcrossSeeds,
    pub recall: AcrossSeeds,
    pub confirmed: AcrossSeeds,
    pub hit_by_difficulty: Vec<(u32, AcrossSeeds)>,
}

/// [`JudgesAcrossSeeds`] of every task with more than one judge or a critic.
pub fn judges_across_seeds(per_seed: &[Vec<TaskRecords>]) -> Vec<JudgesAcrossSeeds> {
    let mut out = vec![];
    let Some(first) = per_seed.first() else {
        return out;
    };
    let of_task = |t: usize| per_seed.iter().filter_map(move |tasks| tasks.get(t));
    for (t, task) in first.iter().enumerate() {
        let judges: Vec<Vec<(String, LabelerFidelity)>> = of_task(t)
            .filter_map(|tr| {
                tr.records.iter().find_map(|(_, r)| match r {
                    Record::BaseEval { heldout, .. } => Some(heldout.fidelity.clone()),
                    _ => None,
                })
            })
            .collect();
        let critics: Vec<Vec<CriticRound>> = of_task(t)
            .filter_map(|tr| {
                tr.records.iter().find_map(|(_, r)| match r {
                    Record::Critic { rounds } => Some(rounds.clone()),
                    _ => None,
                })
            })
            .collect();
        let names: Vec<String> = judges
            .first()
            .map(|j| j.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        if names.len() < 2 && critics.is_empty() {
            continue;
        }
        let by_level = |levels: &[u32], value: &dyn Fn(u32) -> Vec<f64>| {
            levels
                .iter()
                .map(|&d| (d, AcrossSeeds::of(&value(d))))
                .collect::<Vec<_>>()
        };
        let levels: Vec<u32> = judges
            .first()
            .and_then(|j| j.first())
            .map(|(_, f)| f.agreement.iter().map(|(d, _)| *d).collect())
            .unwrap_or_default();
        let agreement = names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let cells = by_level(&levels, &|d| {
                    judges
                        .iter()
                        .filter_map(|js| js.get(j))
                        .filter_map(|(_, f)| f.agreement.iter().find(|(e, _)| *e == d))
                        .map(|(_, s)| s.mean)
                        .collect()
                });
                (name.clone(), cells)
            })
            .collect();
        let n_rounds = critics.iter().map(Vec::len).min().unwrap_or(0);
        let rounds = (0..n_rounds)
            .map(|k| {
                let of = |f: &dyn Fn(&CriticRound) -> f64| {
                    AcrossSeeds::of(&critics.iter().map(|c| f(&c[k])).collect::<Vec<_>>())
                };
                let levels: Vec<u32> = critics[0][k]
                    .by_difficulty
                    .iter()
                    .map(|(d, _)| *d)
                    .collect();
                RoundAcrossSeeds {
                    hit: of(&|r| r.overall.hit.mean),
                    precision: of(&|r| r.overall.precision.mean),
                    recall: of(&|r| r.overall.recall.mean),
                    confirmed: of(&|r| r.confirmed.mean),
                    hit_by_difficulty: by_level(&levels, &|d| {
                        critics
                            .iter()
                            .filter_map(|c| c[k].by_difficulty.iter().find(|(e, _)| *e == d))
                            .map(|(_, s)| s.hit.mean)
                            .collect()
                    }),
                }
            })
            .collect();
        out.push(JudgesAcrossSeeds {
            task: task.task.clone(),
            seeds: judges.len(),
            agreement,
            rounds,
        });
    }
    out
}

/// [`judges_across_seeds`] as text for the several-seed summary.
pub fn judges_text(all: &[JudgesAcrossSeeds]) -> String {
    let mut out = String::new();
    let cells = |v: &[(u32, AcrossSeeds)]| {
        v.iter()
            .map(|(d, a)| format!("{d}: {}", a.show()))
            .collect::<Vec<_>>()
            .join("   ")
    };
    for j in all {
        writeln!(
            out,
            "\n{}: judges' agreement with gold on the base policy's pairs, by difficulty ({} seeds; ± a 95% t-interval across seeds)",
            j.task, j.seeds
        )
        .unwrap();
        for (name, v) in &j.agreement {
            writeln!(out, "  {:<16} {}", name, cells(v)).unwrap();
        }
        for (k, r) in j.rounds.iter().enumerate() {
            writeln!(
                out,
                "  critic round {}: hit {}  precision {}  recall {}  (confirmed in training {})",
                k + 1,
                r.hit.show(),
                r.precision.show(),
                r.recall.show(),
                r.confirmed.show(),
            )
            .unwrap();
            if !r.hit_by_difficulty.is_empty() {
                writeln!(
                    out,
                    "    hit by difficulty  {}",
                    cells(&r.hit_by_difficulty)
                )
                .unwrap();
            }
        }
    }
    out
}
