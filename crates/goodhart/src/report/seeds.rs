//! `report.html` at the root of a several-seed run: every strategy's curves
//! as means over seeds with 95% t-intervals across seeds, and the summary.

use std::path::Path;

use serde::Serialize;

use super::render;
use super::svg::{Line, Plot, Series};
use crate::analysis::across::AcrossSeeds;
use crate::analysis::judges::JudgesAcrossSeeds;
use crate::analysis::seeds::{Aggregate, SeedCurve, SeedPoint};
use crate::error::Result;
use crate::fsutil::write_atomic;

/// Write `<root>/report.html` for the aggregate of a several-seed run.
pub fn write_seed_report(root: &Path, name: &str, agg: &Aggregate) -> Result<()> {
    let page = seed_page(name, agg);
    write_atomic(
        &root.join(super::GOLD_BY_TASK),
        super::svg::row(&page.overview).as_bytes(),
    )?;
    let html = render("seeds.html", &page)?;
    write_atomic(&root.join("report.html"), html.as_bytes())
}

#[derive(Serialize)]
struct SeedPage {
    name: String,
    seeds: Vec<u64>,
    tasks: Vec<SeedTask>,
    summary: String,
    findings: Vec<crate::analysis::findings::TaskFindings>,
    /// Gold against KL, one small panel per task.
    overview: Vec<String>,
}

#[derive(Serialize)]
struct SeedTask {
    name: String,
    plots: Vec<String>,
}

fn seed_page(name: &str, agg: &Aggregate) -> SeedPage {
    let colours = super::colours_for(agg.curves.iter().map(|c| c.strategy.as_str()));
    let colour = |s: &str| super::colour_of(&colours, s).to_string();
    let mut tasks: Vec<&str> = vec![];
    for c in &agg.curves {
        if !tasks.contains(&c.task.as_str()) {
            tasks.push(&c.task);
        }
    }
    let tasks = tasks.into_iter().map(|task| {
        let curves: Vec<&SeedCurve> = agg
            .curves
            .iter()
            .filter(|c| c.task == task && c.split == "heldout")
            .collect();
        let plot = |title: &str, y_label: &str, y: &dyn Fn(&SeedPoint) -> AcrossSeeds| Plot {
            title: title.into(),
            x_label: "sqrt(KL to base)  (sqrt nats)".into(),
            y_label: y_label.into(),
            series: curves
                .iter()
                .map(|c| Series {
                    name: c.strategy.clone(),
                    color: colour(&c.strategy),
                    points: c
                        .points
                        .iter()
                        .map(|p| {
                            let v = y(p);
                            let bar = if v.half_width.is_finite() {
                                v.half_width
                            } else {
                                0.0
                            };
                            (p.kl.mean.max(0.0).sqrt(), v.mean, bar)
                        })
                        .collect(),
                    line: Line::Solid,
                    markers: true,
                    legend: true,
                })
                .collect(),
            y_ref: None,
        };
        let kind = agg
            .findings
            .iter()
            .find(|f| f.task == task)
            .and_then(|f| f.goodhart);
        let gold_title = match kind {
            Some(k) => format!("{task}: {} Goodhart", k.name()),
            None => task.to_string(),
        };
        let plots = [
            plot(&gold_title, "gold reward", &|p| p.gold),
            plot("Proxy reward (the reward model)", "proxy", &|p| p.proxy),
            plot(
                "Gold win rate against the base policy",
                "P(gold beats a base sample)",
                &|p| p.gold_win_rate,
            ),
            plot("Entropy", "nats per generated token", &|p| p.entropy),
        ];
        let mut svgs: Vec<String> = plots.iter().map(Plot::svg).collect();
        if let Some(j) = agg.judges.iter().find(|j| j.task == task) {
            svgs.extend(judge_plots(j));
        }
        // The gold panel is the task's small multiple at the top of the page.
        let gold = svgs.remove(0);
        (
            gold,
            SeedTask {
                name: task.to_string(),
                plots: svgs,
            },
        )
    });
    let (overview, tasks): (Vec<String>, Vec<SeedTask>) = tasks.unzip();
    SeedPage {
        name: name.to_string(),
        seeds: agg.seeds.clone(),
        tasks,
        overview,
        summary: agg.summary.clone(),
        findings: agg.findings.clone(),
    }
}

/// A task's judges against gold by difficulty, one line per judge, and its
/// learned critic's hit rate by difficulty, one line per round.
fn judge_plots(j: &JudgesAcrossSeeds) -> Vec<String> {
    let palette = super::colours_for(j.agreement.iter().map(|(n, _)| n.as_str()));
    let series = |name: &str, color: String, v: &[(u32, AcrossSeeds)]| Series {
        name: name.to_string(),
        color,
        points: v
            .iter()
            .filter(|(_, a)| a.mean.is_finite())
            .map(|(d, a)| {
                let bar = if a.half_width.is_finite() {
                    a.half_width
                } else {
                    0.0
                };
                (f64::from(*d), a.mean, bar)
            })
            .collect(),
        line: Line::Solid,
        markers: true,
        legend: true,
    };
    let mut plots = vec![];
    if j.agreement.len() > 1 {
        plots.push(Plot {
            title: "Judges against gold, by difficulty".into(),
            x_label: "difficulty (digits)".into(),
            y_label: "agreement with gold on pairs".into(),
            series: j
                .agreement
                .iter()
                .map(|(n, v)| series(n, super::colour_of(&palette, n).to_string(), v))
                .collect(),
            y_ref: Some(0.5),
        });
    }
    if !j.rounds.is_empty() {
        let names: Vec<String> = (1..=j.rounds.len()).map(|k| format!("round {k}")).collect();
        let palette = super::colours_for(names.iter().map(String::as_str));
        plots.push(Plot {
            title: "Learned critic: points at a wrong step".into(),
            x_label: "difficulty (digits)".into(),
            y_label: "P(pointed step wrong | flawed)".into(),
            series: j
                .rounds
                .iter()
                .zip(&names)
                .map(|(r, n)| {
                    series(
                        n,
                        super::colour_of(&palette, n).to_string(),
                        &r.hit_by_difficulty,
                    )
                })
                .collect(),
            y_ref: None,
        });
    }
    plots.iter().map(Plot::svg).collect()
}
