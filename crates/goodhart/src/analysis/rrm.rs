//! The recursive-reward-modelling records across seeds, for the summary: per
//! round, the policy's gold on held-out prompts, how often its answers are
//! right, how often the round's judge (and the unassisted labeler) accepts
//! them, the judge's agreement with gold, and the critic's hit rate on the
//! policy's flawed answers; then whether the gap between what the judge
//! accepts and what is right grows or shrinks from the first round to the last.

use std::fmt::Write as _;

use super::across::AcrossSeeds;
use crate::experiment::record::{Record, TaskRecords};
use crate::optimize::rrm::RrmRound;

fn of(t: &TaskRecords) -> Option<&[RrmRound]> {
    t.records.iter().find_map(|(_, r)| match r {
        Record::Rrm { rounds, .. } => Some(rounds.as_slice()),
        _ => None,
    })
}

/// Per task with recursive reward modelling, its lines (empty when none has it).
pub fn rrm_text<T: AsRef<[TaskRecords]>>(per_seed: &[T]) -> String {
    let mut out = String::new();
    let Some(first) = per_seed.first() else {
        return out;
    };
    for (t, task) in first.as_ref().iter().enumerate() {
        let seeds: Vec<&[RrmRound]> = per_seed
            .iter()
            .filter_map(|s| s.as_ref().get(t))
            .filter_map(of)
            .collect();
        let Some(rounds) = seeds.first() else {
            continue;
        };
        let n = seeds.len();
        let _ = writeln!(
            out,
            "{}: recursive reward modelling, each round's policy {} ({n} seed{}{})",
            task.task,
            rounds
                .first()
                .map_or("", |r| r.policy.as_str())
                .replace(" 0's", " k-1's"),
            if n == 1 { "" } else { "s" },
            if n > 1 {
                "; ± is a 95% t-interval across seeds"
            } else {
                ""
            },
        );
        let _ = writeln!(
            out,
            "  {:>5} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
            "round",
            "policy gold",
            "right",
            "judge accepts",
            "unassisted",
            "judge = gold",
            "accepts - right",
            "critic hits",
            "fooled, no step"
        );
        let gap = |x: &RrmRound| x.judge_accepts - x.right;
        for row in rounds.iter() {
            let same: Vec<&RrmRound> = seeds
                .iter()
                .filter_map(|s| s.iter().find(|x| x.round == row.round))
                .collect();
            let across = |f: &dyn Fn(&RrmRound) -> f64| {
                AcrossSeeds::of(&same.iter().map(|x| f(x)).collect::<Vec<_>>()).show()
            };
            let unpointable: Vec<f64> = same
                .iter()
                .filter_map(|x| x.accepted_wrong_without_steps)
                .collect();
            let unpointable = AcrossSeeds::of(&unpointable).show();
            let _ = writeln!(
                out,
                "  {:>5} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
                row.round,
                across(&|x| x.gold.mean),
                across(&|x| x.right),
                across(&|x| x.judge_accepts),
                across(&|x| x.unassisted_accepts),
                across(&|x| x.agreement),
                across(&gap),
                across(&|x| x.critic.overall.hit.mean),
                unpointable,
            );
        }
        let ends = rounds.first().zip(rounds.last());
        if let Some((a, b)) = ends.filter(|(a, b)| a.round < b.round) {
            let change: Vec<f64> = seeds
                .iter()
                .filter_map(|s| {
                    let (x, y) = (
                        s.iter().find(|r| r.round == a.round)?,
                        s.iter().find(|r| r.round == b.round)?,
                    );
                    Some(gap(y) - gap(x))
                })
                .collect();
            // Paired per held-out prompt (the same prompts every round) where recorded, else across seeds.
            let cell = |round: usize| -> Option<Vec<&[f64]>> {
                seeds
                    .iter()
                    .map(|s| {
                        let r = s.iter().find(|r| r.round == round)?;
                        (!r.gap_per_prompt.is_empty()).then_some(r.gap_per_prompt.as_slice())
                    })
                    .collect()
            };
            let paired = cell(b.round).zip(cell(a.round)).and_then(|(y, x)| {
                let mut r = crate::rng::stream(0, &format!("rrm/{}", task.task));
                Some(crate::measure::paired::Paired::new(&[y, x], &mut r)?.difference(0, 1))
            });
            let (word, shown) = match &paired {
                Some(d) if d.above() => ("grew", d.shown()),
                Some(d) if d.below() => ("shrank", d.shown()),
                Some(d) => ("did not change beyond noise", d.shown()),
                None => {
                    let c = AcrossSeeds::of(&change);
                    let word = if !c.half_width.is_finite() {
                        "changed (one seed: no interval)"
                    } else if c.mean - c.half_width > 0.0 {
                        "grew"
                    } else if c.mean + c.half_width < 0.0 {
                        "shrank"
                    } else {
                        "did not change beyond noise"
                    };
                    (word, c.show())
                }
            };
            let _ = writeln!(
                out,
                "  from round {} to {} the gap between what the judge accepts and what is right {word}: {shown}{}",
                a.round,
                b.round,
                if paired.is_some() {
                    " (paired over held-out prompts in each seed)"
                } else {
                    " (across seeds)"
                }
            );
        }
    }
    out
}
