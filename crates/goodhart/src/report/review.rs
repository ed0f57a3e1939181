//! The report's "review and revise" section: per K candidate goals searched,
//! what the simulated reviewer judged the chosen goal's policy to be worth,
//! against its gold, with the gap between them.

use serde::Serialize;

use super::svg::{Line, Plot, Series, PALETTE};
use crate::experiment::record::{Record, TaskRecords};
use crate::optimize::review::ReviewRow;

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
    let stat = |s: &crate::stats::Stat| format!("{:.3} ± {:.3}", s.mean, 1.96 * s.stderr);
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
