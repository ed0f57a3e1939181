//! The labelled range's construction check, for summaries: how often the
//! reward model orders a pair of base answers as gold does when both are
//! inside the range the labels covered (`labels.max_chars`) and when one is
//! past it. Extremal Goodhart needs the first high and the second low.

use std::fmt::Write as _;

use super::across::AcrossSeeds;
use crate::experiment::record::{Record, TaskRecords};
use crate::optimize::pool::{Agreement, RangeCheck};

fn checks(t: &TaskRecords) -> &[RangeCheck] {
    t.records
        .iter()
        .find_map(|(_, r)| match r {
            Record::Pool { range, .. } => Some(range.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
}

/// One seed's check in a line: each side's agreement with a 95% interval over prompts.
pub fn sentence(c: &RangeCheck) -> String {
    let side = |a: &Option<Agreement>| match a {
        Some(a) => format!(
            "{:.3} ± {:.3} ({} pairs)",
            a.accuracy.mean,
            1.96 * a.accuracy.stderr,
            a.pairs
        ),
        None => "no pairs".into(),
    };
    format!(
        "reward model against gold on pairs of base answers ({}): inside the labelled range (at most {} characters) {}; with an answer past it {}",
        c.split,
        c.max_chars,
        side(&c.inside),
        side(&c.beyond)
    )
}

/// Per task with a labelled range, its lines: one seed's sentence per split,
/// or over several seeds each side's mean with a 95% t-interval across them.
pub fn range_text(per_seed: &[Vec<TaskRecords>]) -> String {
    let mut out = String::new();
    let Some(first) = per_seed.first() else {
        return out;
    };
    for (t, task) in first.iter().enumerate() {
        let of_task: Vec<&[RangeCheck]> = per_seed
            .iter()
            .filter_map(|s| s.get(t))
            .map(checks)
            .collect();
        for c in checks(task) {
            let same: Vec<&RangeCheck> = of_task
                .iter()
                .filter_map(|cs| cs.iter().find(|x| x.split == c.split))
                .collect();
            if same.len() < 2 {
                let _ = writeln!(out, "  {}: {}", task.task, sentence(c));
                continue;
            }
            let across = |f: &dyn Fn(&RangeCheck) -> Option<f64>| {
                AcrossSeeds::of(&same.iter().filter_map(|x| f(x)).collect::<Vec<_>>()).show()
            };
            let inside = |x: &RangeCheck| x.inside.as_ref().map(|a| a.accuracy.mean);
            let beyond = |x: &RangeCheck| x.beyond.as_ref().map(|a| a.accuracy.mean);
            let _ = writeln!(
                out,
                "{}: reward model against gold on pairs of base answers ({}; {} seeds; ± is a 95% t-interval across seeds)\n  inside the labelled range (at most {} characters)  {}\n  with an answer past it                       {}\n  inside - past                                {}",
                task.task,
                c.split,
                same.len(),
                c.max_chars,
                across(&inside),
                across(&beyond),
                across(&|x| Some(inside(x)? - beyond(x)?)),
            );
        }
    }
    out
}
