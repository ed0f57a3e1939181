//! `report.html` of a sweep: per task and strategy, gold against KL with one
//! curve per point; the curves' ends, peaks and fit parameters against the
//! swept key; the table of `sweep.csv`. Each point's several-seed report is
//! written in its own directory.

use std::path::Path;

use serde::Serialize;

use super::render;
use super::svg::{Line, Plot, Series, PALETTE};
use crate::analysis::across::AcrossSeeds;
use crate::analysis::sweep::{PointRow, SweepAggregate};
use crate::error::Result;
use crate::experiment::sweep::{point_dir, short_key, Plan};
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

/// The x axis when no swept key is a number.
const BY_POINT: &str = "point (see the list above)";

/// What the "against" plots put on x: the first swept key whose values are
/// all numbers (each point's value), the other axes naming the series; with
/// none, the point's number. Returns the label, each point's x, and each
/// point's series suffix (its values on the other axes).
fn x_axis(plan: &Plan) -> (String, Vec<f64>, Vec<String>) {
    let number = |v: &toml::Value| v.as_float().or(v.as_integer().map(|i| i as f64));
    let numeric =
        (0..plan.keys.len()).find(|&k| plan.points.iter().all(|p| number(&p.values[k]).is_some()));
    let Some(k) = numeric else {
        return (
            BY_POINT.into(),
            (0..plan.points.len()).map(|i| i as f64).collect(),
            plan.points.iter().map(|p| p.label(plan)).collect(),
        );
    };
    let rest = |p: &crate::experiment::sweep::Point| {
        let mut parts: Vec<String> = plan
            .keys
            .iter()
            .zip(&p.values)
            .enumerate()
            .filter(|(j, _)| *j != k)
            .map(|(_, (key, v))| format!("{} = {v}", short_key(key)))
            .collect();
        if plan.experiments > 1 {
            parts.insert(0, p.experiment.clone());
        }
        parts.join(", ")
    };
    let xs: Vec<f64> = plan
        .points
        .iter()
        .map(|p| number(&p.values[k]).expect("checked numeric"))
        .collect();
    let (lo, hi) = xs
        .iter()
        .fold((f64::INFINITY, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
    // Values spread over decades (label budgets) read better on a log axis.
    let (label, xs) = if lo > 0.0 && hi / lo >= 20.0 {
        (
            format!("log10 {}", short_key(&plan.keys[k])),
            xs.iter().map(|x| x.log10()).collect(),
        )
    } else {
        (short_key(&plan.keys[k]).to_string(), xs)
    };
    (label, xs, plan.points.iter().map(rest).collect())
}

fn page(plan: &Plan, agg: &SweepAggregate) -> SweepPage {
    let (x_label, xs, groups) = x_axis(plan);
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
        // One row per point carries the task's reward model: the point's first.
        let first: Vec<&PointRow> = rows
            .iter()
            .enumerate()
            .filter(|(i, r)| rows[..*i].iter().all(|q| q.point != r.point))
            .map(|(_, r)| *r)
            .collect();
        let by_key = |r: &PointRow| Some(xs[r.point]);
        let by_accuracy = |r: &PointRow| Some(r.rm_gold.mean);
        let acc = "reward model's held-out accuracy vs gold";
        let plot = |title: &str,
                    x_label: &str,
                    y_label: &str,
                    rows: &[&PointRow],
                    x: &dyn Fn(&PointRow) -> Option<f64>,
                    y: &dyn Fn(&PointRow) -> Option<(f64, f64)>| {
            against(title, None, x_label, y_label, rows, &groups, x, y)
        };
        // The task's reward model, read from the rows of its first strategy.
        let rm_plot = |title: &str, y: &dyn Fn(&PointRow) -> Option<(f64, f64)>| {
            against(
                title,
                Some("reward model"),
                &x_label,
                "accuracy",
                &first,
                &groups,
                &by_key,
                y,
            )
        };
        let mut against_key = vec![
            plot(
                "Gold at the largest KL",
                &x_label,
                "gold reward",
                &rows,
                &by_key,
                &|r| Some((r.end_gold.mean, bar(&r.end_gold))),
            ),
            plot(
                "Peak gold along the curve",
                &x_label,
                "gold reward",
                &rows,
                &by_key,
                &|r| Some((r.peak_gold.mean, bar(&r.peak_gold))),
            ),
            plot(
                "Fit: alpha (initial slope)",
                &x_label,
                "alpha",
                &rows,
                &by_key,
                &|r| r.fit.as_ref().map(|f| (f.alpha, 1.96 * f.alpha_se)),
            ),
            plot(
                "Fit: beta (turn-over)",
                &x_label,
                "beta",
                &rows,
                &by_key,
                &|r| r.fit.as_ref().map(|f| (f.beta, 1.96 * f.beta_se)),
            ),
        ];
        let rm = vec![
            rm_plot("Reward model: held-out accuracy vs its labeler", &|r| {
                Some((r.rm_labeler.mean, bar(&r.rm_labeler)))
            }),
            rm_plot("Reward model: held-out accuracy vs gold", &|r| {
                Some((r.rm_gold.mean, bar(&r.rm_gold)))
            }),
        ];
        let mut against_accuracy = vec![
            plot(
                "Peak gold against the reward model's accuracy",
                acc,
                "gold reward",
                &rows,
                &by_accuracy,
                &|r| Some((r.peak_gold.mean, bar(&r.peak_gold))),
            ),
            plot(
                "Fit beta against the reward model's accuracy",
                acc,
                "beta",
                &rows,
                &by_accuracy,
                &|r| r.fit.as_ref().map(|f| (f.beta, 1.96 * f.beta_se)),
            ),
        ];
        // Points that are different experiments, not values of a key, share
        // no strategies to follow along x: only their reward models compare.
        task.against = if x_label == BY_POINT {
            rm
        } else {
            against_key.extend(rm);
            against_key.append(&mut against_accuracy);
            against_key
        };
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

/// One series per strategy and group (the point's values on the axes not on x), points in plan order.
#[allow(clippy::too_many_arguments)]
fn against(
    title: &str,
    name: Option<&str>,
    x_label: &str,
    y_label: &str,
    rows: &[&PointRow],
    groups: &[String],
    x: &dyn Fn(&PointRow) -> Option<f64>,
    y: &dyn Fn(&PointRow) -> Option<(f64, f64)>,
) -> String {
    let mut keys: Vec<(&str, &str)> = vec![];
    for r in rows {
        let k = (r.strategy.as_str(), groups[r.point].as_str());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let series = keys
        .iter()
        .enumerate()
        .map(|(k, (s, g))| {
            let mut points: Vec<(f64, f64, f64)> = rows
                .iter()
                .filter(|r| r.strategy == *s && groups[r.point] == *g)
                .filter_map(|r| Some((x(r)?, y(r)?)))
                .map(|(x, (v, e))| (x, v, e))
                .filter(|(x, v, _)| x.is_finite() && v.is_finite())
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            let s = name.unwrap_or(s);
            Series {
                name: if g.is_empty() {
                    s.to_string()
                } else {
                    format!("{s}, {g}")
                },
                color: PALETTE[k % PALETTE.len()].to_string(),
                points,
                line: Line::Solid,
                markers: true,
                legend: true,
            }
        })
        .collect();
    Plot {
        title: title.into(),
        x_label: x_label.into(),
        y_label: y_label.into(),
        series,
        y_ref: None,
    }
    .svg()
}

/// An interval half-width as an error bar (none with one seed).
fn bar(a: &AcrossSeeds) -> f64 {
    if a.half_width.is_finite() {
        a.half_width
    } else {
        0.0
    }
}
