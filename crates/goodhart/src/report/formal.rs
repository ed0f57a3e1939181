//! The report's formal-goal sections. Review and revise: per K candidate
//! goals searched, what the simulated reviewer judged the chosen goal's policy
//! to be worth, against its gold, with the gap between them. The world model:
//! the goal's satisfaction as the model predicted it against the simulator's,
//! per RL iteration.

use serde::Serialize;

use super::svg::{Line, Plot, Series, PALETTE};
use crate::experiment::record::{Record, TaskRecords};
use crate::optimize::review::ReviewRow;
use crate::optimize::world_model::Gap;
use crate::stats::Stat;

#[derive(Serialize)]
pub(super) struct ReviewView {
    plot: String,
    rows: Vec<ReviewRowView>,
}

#[derive(Serialize)]
struct ReviewRowView {
    split: String,
    k: usize,
    judged: String,
    gold: String,
    gap: String,
    chosen: String,
}

/// The review section of a task, when its run reviewed candidate goals.
pub(super) fn review_view(t: &TaskRecords, candidates: &[String]) -> Option<ReviewView> {
    let rows: Vec<&ReviewRow> = t
        .records
        .iter()
        .flat_map(|(_, r)| match r {
            Record::Pool { review, .. } => review.iter().collect(),
            _ => vec![],
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let stat = |s: &Stat| format!("{:.3} ± {:.3}", s.mean, 1.96 * s.stderr);
    let heldout: Vec<&&ReviewRow> = rows.iter().filter(|r| r.split == "heldout").collect();
    let series =
        |name: &str, colour: usize, line: Line, pick: &dyn Fn(&ReviewRow) -> (f64, f64)| Series {
            name: name.into(),
            color: PALETTE[colour].into(),
            points: heldout
                .iter()
                .map(|r| {
                    let (mean, stderr) = pick(r);
                    (r.k as f64, mean, 1.96 * stderr)
                })
                .collect(),
            line,
            markers: true,
            legend: true,
        };
    let plot = Plot {
        title: "Review and revise: the chosen goal, as judged and in gold".into(),
        x_label: "candidate goals searched (K)".into(),
        y_label: "reward".into(),
        series: vec![
            series("judged", 1, Line::Dashed, &|r| {
                (r.judged.mean, r.judged.stderr)
            }),
            series("gold", 0, Line::Solid, &|r| (r.gold.mean, r.gold.stderr)),
            series("judged - gold", 3, Line::Solid, &|r| {
                (r.gap.mean, r.gap.stderr)
            }),
        ],
        y_ref: Some(0.0),
    }
    .svg();
    let rows = rows
        .iter()
        .map(|r| {
            let mut chosen: Vec<(usize, &String)> = r
                .chosen
                .iter()
                .copied()
                .zip(candidates)
                .filter(|(n, _)| *n > 0)
                .collect();
            chosen.sort_by_key(|&(n, _)| std::cmp::Reverse(n));
            ReviewRowView {
                split: r.split.clone(),
                k: r.k,
                judged: stat(&r.judged),
                gold: stat(&r.gold),
                gap: stat(&r.gap),
                chosen: chosen
                    .iter()
                    .map(|(n, c)| format!("{c} ({n})"))
                    .collect::<Vec<_>>()
                    .join("; "),
            }
        })
        .collect();
    Some(ReviewView { plot, rows })
}

#[derive(Serialize)]
pub(super) struct WorldModelView {
    run: String,
    plot: String,
    summary: String,
}

/// A section per RL run that optimised the goal inside a world model.
pub(super) fn world_model_views(t: &TaskRecords) -> Vec<WorldModelView> {
    t.records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Rl {
                name,
                logs,
                world_model: Some(w),
                ..
            } => Some((name, logs, w)),
            _ => None,
        })
        .map(|(name, logs, w)| {
            let line = |label: &str, colour: usize, line: Line, pick: &dyn Fn(&Gap) -> &Stat| Series {
                name: label.into(),
                color: PALETTE[colour].into(),
                points: w
                    .gap
                    .iter()
                    .enumerate()
                    .map(|(i, g)| (i as f64 + 1.0, pick(g).mean, 1.96 * pick(g).stderr))
                    .collect(),
                line,
                markers: false,
                legend: true,
            };
            let plot = Plot {
                title: format!("{name}: the goal as the world model predicts it, and in the simulator"),
                x_label: "RL iteration".into(),
                y_label: "goal satisfied (share of rollouts)".into(),
                series: vec![
                    line("predicted", 1, Line::Dashed, &|g| &g.predicted),
                    line("true", 0, Line::Solid, &|g| &g.simulated),
                ],
                y_ref: None,
            }
            .svg();
            let r = &w.report;
            let last = w.gap.last();
            WorldModelView {
                run: name.clone(),
                plot,
                summary: format!(
                    "World model: held-out next-state accuracy {:.3} ± {:.3} (decoding its own predictions), goal verdict right on {:.3} ± {:.3} of held-out trajectories. \
                     At the last of {} iterations (rollout KL {:.2}) the rollouts satisfy the goal {:.3} as predicted and {:.3} in the simulator.",
                    r.state_accuracy.mean,
                    1.96 * r.state_accuracy.stderr,
                    r.verdict_accuracy.mean,
                    1.96 * r.verdict_accuracy.stderr,
                    w.gap.len(),
                    logs.last().map_or(0.0, |l| l.kl),
                    last.map_or(f64::NAN, |g| g.predicted.mean),
                    last.map_or(f64::NAN, |g| g.simulated.mean),
                ),
            }
        })
        .collect()
}
