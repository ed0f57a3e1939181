//! Judges and learned critics read back from a run's records: one critic
//! round in a sentence, and every task's judges and critic across seeds.

use std::fmt::Write as _;

use super::across::AcrossSeeds;
use crate::critic::CriticRound;
use crate::experiment::record::{Record, TaskRecords};
use crate::measure::LabelerFidelity;
use crate::stats::Stat;

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
