//! The recursive-reward-modelling records across seeds, for the summary: per
//! round, the policy's gold on held-out prompts, how often its answers are
//! right, how often the round's judge (and the unassisted labeler) accepts
//! them, the judge's agreement with gold, and the critic's hit rate on the
//! policy's flawed answers; then whether the gap between what the judge
//! accepts and what is right grows or shrinks from the first round to the last.

use std::fmt::Write as _;

use super::across::AcrossSeeds;
use super::findings::rrm::{gap, rounds, rrm};
use super::findings::show;
use crate::experiment::record::TaskRecords;
use crate::optimize::rrm::RrmRound;

/// Per task with recursive reward modelling, its lines (empty when none has it).
pub fn rrm_text<T: AsRef<[TaskRecords]>>(per_seed: &[T]) -> String {
    let mut out = String::new();
    let Some(first) = per_seed.first() else {
        return out;
    };
    for task in first.as_ref() {
        let seeds = rounds(per_seed, &task.task);
        let Some(first_seed) = seeds.first() else {
            continue;
        };
        let n = seeds.len();
        let _ = writeln!(
            out,
            "{}: recursive reward modelling, each round's policy {} ({n} seed{}{})",
            task.task,
            first_seed
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
        for row in first_seed.iter() {
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
        if let Some(f) = rrm(per_seed, &task.task) {
            let _ = writeln!(
                out,
                "  from round {} to {} the gap between what the judge accepts and what is right {}: {}{}",
                f.first,
                f.last,
                f.word,
                if f.paired {
                    show(&f.change)
                } else {
                    AcrossSeeds {
                        mean: f.change.estimate,
                        half_width: f.change.hi - f.change.estimate,
                        seeds: f.seeds,
                    }
                    .show()
                },
                if f.paired {
                    " (paired over held-out prompts in each seed)"
                } else {
                    " (across seeds)"
                }
            );
        }
    }
    out
}
