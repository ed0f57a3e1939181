//! The formal-goal records across seeds, for the summary: what the reviewer
//! judged of the goal it chose against that goal's gold, per number of
//! candidates K and split; and how far a world-model PPO run's predicted
//! satisfaction drifted from the simulator's over its iterations.

use std::fmt::Write as _;

use super::across::AcrossSeeds;
use crate::experiment::record::{Record, TaskRecords};
use crate::optimize::review::ReviewRow;
use crate::optimize::world_model::Gap;

/// Iterations at each end of a world-model run that its drift compares.
const ENDS: usize = 5;

/// Per task with a review or a world-model run, its lines (empty when none has either).
pub fn formal_text(per_seed: &[Vec<TaskRecords>]) -> String {
    let mut out = String::new();
    let Some(first) = per_seed.first() else {
        return out;
    };
    for (t, task) in first.iter().enumerate() {
        let of_task: Vec<&TaskRecords> = per_seed.iter().filter_map(|s| s.get(t)).collect();
        review_lines(&mut out, &task.task, &of_task);
        world_model_lines(&mut out, &task.task, &of_task);
    }
    out
}

fn review_lines(out: &mut String, task: &str, seeds: &[&TaskRecords]) {
    let rows: Vec<_> = seeds
        .iter()
        .filter_map(|tr| {
            tr.records.iter().find_map(|(_, r)| match r {
                Record::Pool { review, .. } if !review.is_empty() => Some(review),
                _ => None,
            })
        })
        .collect();
    let Some(first) = rows.first() else {
        return;
    };
    let _ = writeln!(
        out,
        "{task}: review and revise, the chosen goal ({} seeds; ± is a 95% t-interval across seeds)",
        rows.len()
    );
    let _ = writeln!(
        out,
        "  {:<8} {:>3} {:>15} {:>15} {:>15}",
        "split", "K", "judged", "gold", "judged - gold"
    );
    for row in first.iter() {
        let same: Vec<_> = rows
            .iter()
            .filter_map(|r| r.iter().find(|x| x.split == row.split && x.k == row.k))
            .collect();
        let across = |f: fn(&ReviewRow) -> f64| {
            AcrossSeeds::of(&same.iter().map(|x| f(x)).collect::<Vec<_>>()).show()
        };
        let _ = writeln!(
            out,
            "  {:<8} {:>3} {:>15} {:>15} {:>15}",
            row.split,
            row.k,
            across(|x| x.judged.mean),
            across(|x| x.gold.mean),
            across(|x| x.gap.mean)
        );
    }
}

/// A world-model run's records in each seed, by the run's name.
fn world_model_gaps<'a>(seeds: &[&'a TaskRecords], run: &str) -> Vec<&'a [Gap]> {
    seeds
        .iter()
        .filter_map(|tr| {
            tr.records.iter().find_map(|(_, r)| match r {
                Record::Rl {
                    name,
                    world_model: Some(w),
                    ..
                } if name == run && !w.gap.is_empty() => Some(w.gap.as_slice()),
                _ => None,
            })
        })
        .collect()
}

fn world_model_lines(out: &mut String, task: &str, seeds: &[&TaskRecords]) {
    let Some(first) = seeds.first() else {
        return;
    };
    let runs = first.records.iter().filter_map(|(_, r)| match r {
        Record::Rl {
            name,
            world_model: Some(_),
            ..
        } => Some(name),
        _ => None,
    });
    for run in runs {
        let gaps = world_model_gaps(seeds, run);
        let drift = |g: &[Gap]| {
            g.iter()
                .map(|x| x.predicted.mean - x.simulated.mean)
                .sum::<f64>()
                / g.len().max(1) as f64
        };
        let ends = |last: bool| {
            let per_seed: Vec<f64> = gaps
                .iter()
                .map(|g| {
                    let k = ENDS.min(g.len());
                    drift(if last { &g[g.len() - k..] } else { &g[..k] })
                })
                .collect();
            AcrossSeeds::of(&per_seed).show()
        };
        let at_end = |f: fn(&Gap) -> f64| {
            let per_seed: Vec<f64> = gaps.iter().filter_map(|g| g.last().map(f)).collect();
            AcrossSeeds::of(&per_seed).show()
        };
        let _ = writeln!(
            out,
            "{task}: {run}, the goal's satisfaction as the world model predicts it minus as the simulator measures it: {} over the first {ENDS} iterations, {} over the last {ENDS}; at the last, predicted {} and simulated {} ({} seeds; ± is a 95% t-interval across seeds)",
            ends(false),
            ends(true),
            at_end(|x| x.predicted.mean),
            at_end(|x| x.simulated.mean),
            gaps.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::record::BaseStats;
    use crate::stats::Stat;

    fn stat(mean: f64) -> Stat {
        Stat {
            mean,
            stderr: 0.0,
            n: 40,
        }
    }

    fn seed(gap_at_8: f64) -> Vec<TaskRecords> {
        let row = |k: usize, gap: f64| ReviewRow {
            split: "heldout".into(),
            k,
            judged: stat(0.6 + gap),
            gold: stat(0.6),
            gap: stat(gap),
            chosen: vec![],
        };
        vec![TaskRecords {
            task: "gridworld".into(),
            records: vec![(
                "pool".into(),
                Record::Pool {
                    base: BaseStats::default(),
                    points: vec![],
                    notes: vec![],
                    review: vec![row(1, 0.0), row(8, gap_at_8)],
                    range: vec![],
                },
            )],
        }]
    }

    #[test]
    fn the_review_is_summarised_per_k_across_seeds() {
        let text = formal_text(&[seed(0.2), seed(0.3)]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("gridworld: review and revise") && lines[0].contains("2 seeds")
        );
        // K = 8: the gap's mean over the two seeds, 0.25, with its t-interval.
        assert!(
            lines[3].contains("heldout") && lines[3].contains("0.250 ±"),
            "{text}"
        );
        // No review, no world model: nothing.
        assert!(formal_text(&[vec![TaskRecords {
            task: "answers".into(),
            records: vec![],
        }]])
        .is_empty());
    }
}
