//! `report.html` of a sweep: per task and strategy, gold against KL with one
//! curve per point; the curves' ends, peaks and fit parameters against the
//! swept key; the table of `sweep.csv`. Each point's several-seed report is
//! written in its own directory.

use std::path::Path;

use serde::Serialize;

use super::render;
use super::svg::{Line, Plot, Series, PALETTE};
use crate::error::Result;
use crate::experiment::seeds::AcrossSeeds;
use crate::experiment::sweep::{point_dir, short_key, Plan, PointRow, SweepAggregate};
use crate::fsutil::write_atomic;

/// Write each point's report and the sweep's `report.html`.
pub fn write_sweep_report(dir: &Path, plan: &Plan, agg: &SweepAggregate) -> Result<()> {
    for (i, point_agg) in &agg.points {
        let point = &plan.points[*i];
        super::seeds::write_seed_report(&point_dir(dir, point), &point.label(plan), point_agg)?;
    }
    let html = render("sweep.html", &page(plan, agg))?;
    write_atomic(&dir.join("report.html"), html.as_bytes())
}

#[derive(Serialize)]
struct SweepPage {
    name: String,
    seeds: Vec<u64>,
    points: Vec<PointView>,
    tasks: Vec<TaskView>,
    against: String,
    summary: String,
}

#[derive(Serialize)]
struct PointView {
    id: String,
    label: String,
    finished: bool,
}

#[derive(Serialize)]
struct TaskView {
    name: String,
    /// Gold against sqrt(KL), one plot per strategy, one curve per point.
    curves: Vec<String>,
    /// Gold at the end, peak gold, and fit parameters against the swept key.
    against: Vec<String>,
}

/// What the "against" plots put on x: the one swept numeric key, or the point's number.
fn x_axis(plan: &Plan) -> (String, Vec<f64>) {
    let numeric: Vec<Option<Vec<f64>>> = (0..plan.keys.len())
        .map(|k| {
            plan.points
                .iter()
                .map(|p| {
                    p.values[k]
                        .as_float()
                        .or(p.values[k].as_integer().map(|i| i as f64))
                })
                .collect()
        })
        .collect();
    if plan.keys.len() == 1 && plan.experiments == 1 {
        if let Some(xs) = &numeric[0] {
            return (short_key(&plan.keys[0]).to_string(), xs.clone());
        }
    }
    (
        "point (see the list above)".into(),
        (0..plan.points.len()).map(|i| i as f64).collect(),
    )
}

fn page(plan: &Plan, agg: &SweepAggregate) -> SweepPage {
    let (x_label, xs) = x_axis(plan);
    let colour = |i: usize| PALETTE[i % PALETTE.len()].to_string();
    let mut tasks: Vec<TaskView> = vec![];
    let mut pairs: Vec<(&str, &str)> = vec![];
    for r in &agg.rows {
        if !pairs.contains(&(r.task.as_str(), r.strategy.as_str())) {
            pairs.push((&r.task, &r.strategy));
        }
    }
    for (t, _) in &pairs {
        if !tasks.iter().any(|v| v.name == *t) {
            tasks.push(TaskView {
                name: t.to_string(),
                curves: vec![],
                against: vec![],
            });
        }
    }
    for task in &mut tasks {
        let strategies: Vec<&str> = pairs
            .iter()
            .filter(|(t, _)| *t == task.name)
            .map(|(_, s)| *s)
            .collect();
        for strategy in &strategies {
            let series = agg
                .points
                .iter()
                .filter_map(|(i, a)| {
                    let c = a.curves.iter().find(|c| {
                        c.task == task.name && c.strategy == *strategy && c.split == "heldout"
                    })?;
                    Some(Series {
                        name: plan.points[*i].label(plan),
                        color: colour(*i),
                        points: c
                            .points
                            .iter()
                            .map(|p| (p.kl.mean.max(0.0).sqrt(), p.gold.mean, bar(&p.gold)))
                            .collect(),
                        line: Line::Solid,
                        markers: true,
                        legend: true,
                    })
                })
                .collect();
            task.curves.push(
                Plot {
                    title: format!("{}: {strategy}", task.name),
                    x_label: "sqrt(KL to base)  (sqrt nats)".into(),
                    y_label: "gold reward".into(),
                    series,
                    y_ref: None,
                }
                .svg(),
            );
        }
        let rows: Vec<&PointRow> = agg.rows.iter().filter(|r| r.task == task.name).collect();
        let against = |title: &str, y_label: &str, y: &dyn Fn(&PointRow) -> Option<(f64, f64)>| {
            Plot {
                title: title.into(),
                x_label: x_label.clone(),
                y_label: y_label.into(),
                series: strategies
                    .iter()
                    .enumerate()
                    .map(|(k, s)| Series {
                        name: s.to_string(),
                        color: PALETTE[k % PALETTE.len()].to_string(),
                        points: rows
                            .iter()
                            .filter(|r| r.strategy == *s)
                            .filter_map(|r| y(r).map(|(v, e)| (xs[r.point], v, e)))
                            .filter(|(_, v, _)| v.is_finite())
                            .collect(),
                        line: Line::Solid,
                        markers: true,
                        legend: true,
                    })
                    .collect(),
                y_ref: None,
            }
            .svg()
        };
        task.against = vec![
            against("Gold at the largest KL", "gold reward", &|r| {
                Some((r.end_gold.mean, bar(&r.end_gold)))
            }),
            against("Peak gold along the curve", "gold reward", &|r| {
                Some((r.peak_gold.mean, bar(&r.peak_gold)))
            }),
            against("Fit: alpha (initial slope)", "alpha", &|r| {
                r.fit.as_ref().map(|f| (f.alpha, 1.96 * f.alpha_se))
            }),
            against("Fit: beta (turn-over)", "beta", &|r| {
                r.fit.as_ref().map(|f| (f.beta, 1.96 * f.beta_se))
            }),
            against(
                "Reward model: held-out accuracy vs its labeler",
                "accuracy",
                &|r| (r.strategy == strategies[0]).then(|| (r.rm_labeler.mean, bar(&r.rm_labeler))),
            ),
        ];
    }
    let finished: Vec<usize> = agg.points.iter().map(|(i, _)| *i).collect();
    SweepPage {
        name: plan.name.clone(),
        seeds: plan.seeds.clone(),
        points: plan
            .points
            .iter()
            .enumerate()
            .map(|(i, p)| PointView {
                id: p.id.clone(),
                label: p.label(plan),
                finished: finished.contains(&i),
            })
            .collect(),
        tasks,
        against: x_label,
        summary: agg.summary.clone(),
    }
}

/// An interval half-width as an error bar (none with one seed).
fn bar(a: &AcrossSeeds) -> f64 {
    if a.half_width.is_finite() {
        a.half_width
    } else {
        0.0
    }
}
