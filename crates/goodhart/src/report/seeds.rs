//! `report.html` at the root of a several-seed run: every strategy's curves
//! as means over seeds with 95% t-intervals across seeds, and the summary.

use std::fmt::Write as _;
use std::path::Path;

use super::svg::{esc, Line, Plot, Series, PALETTE};
use super::STYLE;
use crate::error::Result;
use crate::experiment::seeds::{AcrossSeeds, Aggregate, SeedCurve, SeedPoint};
use crate::fsutil::write_atomic;

/// Write `<root>/report.html` for the aggregate of a several-seed run.
pub fn write_seed_report(root: &Path, name: &str, agg: &Aggregate) -> Result<()> {
    write_atomic(
        &root.join("report.html"),
        seed_report_html(name, agg).as_bytes(),
    )
}

fn seed_report_html(name: &str, agg: &Aggregate) -> String {
    let mut h = String::new();
    write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>goodhart: {} over {} seeds</title><style>{STYLE}</style></head><body>",
        esc(name),
        agg.seeds.len()
    )
    .unwrap();
    let seeds: Vec<String> = agg.seeds.iter().map(|s| s.to_string()).collect();
    write!(
        h,
        "<h1>goodhart: {} over {} seeds</h1><p class=\"note\">Seeds {}. Each point is the mean over seeds of one sweep value (n, &beta;, q, iteration, step); \
         error bars are 95% Student-t intervals across seeds (training, labelling and sampling randomness together). \
         Each seed's own report, with intervals over prompts, is in <code>seed-N/report.html</code>.</p>",
        esc(name),
        agg.seeds.len(),
        esc(&seeds.join(", "))
    )
    .unwrap();
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
    for task in tasks {
        write!(h, "<h2>Task: {}</h2>", esc(task)).unwrap();
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
        h.push_str("<div class=\"grid\">");
        for p in [
            plot("Gold reward", "gold reward", &|p| p.gold),
            plot("Proxy reward (the reward model)", "proxy", &|p| p.proxy),
            plot(
                "Gold win rate against the base policy",
                "P(gold beats a base sample)",
                &|p| p.gold_win_rate,
            ),
            plot("Entropy", "nats per generated token", &|p| p.entropy),
        ] {
            h.push_str(&p.svg());
        }
        h.push_str("</div>");
    }
    write!(h, "<h2>Summary</h2><pre>{}</pre>", esc(&agg.summary)).unwrap();
    h.push_str("</body></html>\n");
    h
}
