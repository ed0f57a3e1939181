//! Whether recursive reward modelling's judge falls behind its policy: the
//! gap between the share of the policy's held-out answers the round's judge
//! accepts and the share that are right, from the first round to the last,
//! paired over the held-out prompts (the same every round) in each seed. The
//! gap grows (or shrinks) when the 95% interval of its change is above (or
//! below) 0, a two-sided test at the level every verdict uses; rounds
//! recorded without per-prompt values fall back to a t-interval across seeds.

use serde::{Deserialize, Serialize};

use super::{show, Contrast};
use crate::analysis::across::AcrossSeeds;
use crate::experiment::record::{Record, TaskRecords};
use crate::measure::paired::Paired;
use crate::optimize::rrm::RrmRound;

/// The rounds of `task`'s rrm stage in each seed that has one.
pub fn rounds<'a, T: AsRef<[TaskRecords]>>(per_seed: &'a [T], task: &str) -> Vec<&'a [RrmRound]> {
    per_seed
        .iter()
        .filter_map(|s| s.as_ref().iter().find(|t| t.task == task))
        .filter_map(|t| {
            t.records.iter().find_map(|(_, r)| match r {
                Record::Rrm { rounds, .. } => Some(rounds.as_slice()),
                _ => None,
            })
        })
        .collect()
}

/// Accepted minus right.
pub fn gap(x: &RrmRound) -> f64 {
    x.judge_accepts - x.right
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RrmFinding {
    pub seeds: usize,
    pub first: usize,
    pub last: usize,
    /// The gap's change from the first round to the last.
    pub change: Contrast,
    /// Paired over held-out prompts (else a t-interval across seeds).
    pub paired: bool,
    /// "grew", "shrank" or "did not change beyond noise".
    pub word: String,
    pub verdict: String,
}

/// The finding of `task`'s rrm stage (None without one, or with one round).
pub fn rrm<T: AsRef<[TaskRecords]>>(per_seed: &[T], task: &str) -> Option<RrmFinding> {
    let seeds = rounds(per_seed, task);
    let first = *seeds.first()?;
    let (a, b) = (first.first()?.round, first.last()?.round);
    if a >= b {
        return None;
    }
    // Paired per held-out prompt where recorded.
    let cell = |round: usize| -> Option<Vec<&[f64]>> {
        seeds
            .iter()
            .map(|s| {
                let r = s.iter().find(|r| r.round == round)?;
                (!r.gap_per_prompt.is_empty()).then_some(r.gap_per_prompt.as_slice())
            })
            .collect()
    };
    let paired = cell(b).zip(cell(a)).and_then(|(y, x)| {
        let mut r = crate::rng::stream(0, &format!("rrm/{task}"));
        Some(Paired::new(&[y, x], &mut r)?.difference(0, 1))
    });
    let (change, word, is_paired) = match &paired {
        Some(d) => {
            let word = if d.above() {
                "grew"
            } else if d.below() {
                "shrank"
            } else {
                "did not change beyond noise"
            };
            (Contrast::from(d), word, true)
        }
        None => {
            let change: Vec<f64> = seeds
                .iter()
                .filter_map(|s| {
                    let (x, y) = (
                        s.iter().find(|r| r.round == a)?,
                        s.iter().find(|r| r.round == b)?,
                    );
                    Some(gap(y) - gap(x))
                })
                .collect();
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
            let contrast = Contrast {
                estimate: c.mean,
                lo: c.mean - c.half_width,
                hi: c.mean + c.half_width,
                detectable: f64::NAN,
            };
            (contrast, word, false)
        }
    };
    let mean = |round: usize, f: &dyn Fn(&RrmRound) -> f64| {
        AcrossSeeds::of(
            &seeds
                .iter()
                .filter_map(|s| s.iter().find(|r| r.round == round).map(f))
                .collect::<Vec<_>>(),
        )
        .mean
    };
    let verdict = format!(
        "From round {a} to {b} of recursive reward modelling the gap between what the judge accepts and what is right {word}: {} ({}; {} seed{}); the judge's agreement with gold on its own policy's answers went from {:.3} to {:.3}.",
        show(&change),
        if is_paired {
            "paired over held-out prompts in each seed"
        } else {
            "a t-interval across seeds"
        },
        seeds.len(),
        if seeds.len() == 1 { "" } else { "s" },
        mean(a, &|r| r.agreement),
        mean(b, &|r| r.agreement),
    );
    Some(RrmFinding {
        seeds: seeds.len(),
        first: a,
        last: b,
        change,
        paired: is_paired,
        word: word.to_string(),
        verdict,
    })
}
