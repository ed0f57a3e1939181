//! `report.html` at the root of a several-seed run: every strategy's curves
//! as means over seeds with 95% t-intervals across seeds, and the summary.

use std::path::Path;

use serde::Serialize;

use super::render;
use super::svg::{Line, Plot, Series, PALETTE};
use crate::error::Result;
use crate::experiment::seeds::{AcrossSeeds, Aggregate, SeedCurve, SeedPoint};
use crate::fsutil::write_atomic;

/// Write `<root>/report.html` for the aggregate of a several-seed run.
pub fn write_seed_report(root: &Path, name: &str, agg: &Aggregate) -> Result<()> {
    let html = render("seeds.html", &seed_page(name, agg))?;
    write_atomic(&root.join("report.html"), html.as_bytes())
}

#[derive(Serialize)]
struct SeedPage {
    name: String,
    seeds: Vec<u64>,
    tasks: Vec<SeedTask>,
    summary: String,
    findings: Vec<crate::experiment::findings::TaskFindings>,
}

#[derive(Serialize)]
struct SeedTask {
    name: String,
    plots: Vec<String>,
}

fn seed_page(name: &str, agg: &Aggregate) -> SeedPage {
    let mut strategies: Vec<&str> = vec![];
    for c in &agg.curves {
        if !strategies.contains(&c.strategy.as_str()) {
            strategies.push(&c.strategy);
        }
    }
    let colour = |s: &str| {
        let i = strategies.iter().position(|x| *x == s).unwrap_or(0);
        PALETTE[i % PALETTE.len()]
    };
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
                    color: colour(&c.strategy).into(),
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
        let plots = [
            plot("Gold reward", "gold reward", &|p| p.gold),
            plot("Proxy reward (the reward model)", "proxy", &|p| p.proxy),
            plot(
                "Gold win rate against the base policy",
                "P(gold beats a base sample)",
                &|p| p.gold_win_rate,
            ),
            plot("Entropy", "nats per generated token", &|p| p.entropy),
        ];
        SeedTask {
            name: task.to_string(),
            plots: plots.iter().map(Plot::svg).collect(),
        }
    });
    SeedPage {
        name: name.to_string(),
        seeds: agg.seeds.clone(),
        tasks: tasks.collect(),
        summary: agg.summary.clone(),
        findings: agg.findings.clone(),
    }
}
