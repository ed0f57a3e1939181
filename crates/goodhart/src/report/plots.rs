//! The report's plots of one task: each strategy's curves against sqrt(KL),
//! the two Goodhart gaps, and the RL training logs.

use super::colour_of;
use super::svg::{Line, Plot, Series};
use crate::analysis::curves::StrategyAnalysis;
use crate::experiment::record::{Record, TaskRecords};
use crate::experiment::GoodhartKind;
use crate::score::CurvePoint;

fn series_of(a: &StrategyAnalysis, colour: &str, y: impl Fn(&CurvePoint) -> (f64, f64)) -> Series {
    Series {
        name: a.strategy.clone(),
        color: colour.to_string(),
        points: a
            .points
            .iter()
            .map(|p| {
                // Error bars: 95% normal intervals over prompts.
                let (m, se) = y(p);
                (p.kl.mean.max(0.0).sqrt(), m, 1.96 * se)
            })
            .collect(),
        line: Line::Solid,
        markers: true,
        legend: true,
    }
}

/// Small multiples: gold against sqrt(KL) on held-out prompts, one panel per
/// task (titled with the kind of Goodhart it shows), strategies as lines.
pub(super) fn overview(
    tasks: &[(String, Option<GoodhartKind>, Vec<&StrategyAnalysis>)],
    colours: &[(String, String)],
) -> Vec<String> {
    tasks
        .iter()
        .map(|(task, kind, heldout)| {
            Plot {
                title: match kind {
                    Some(k) => format!("{task}: {} Goodhart", k.name()),
                    None => task.clone(),
                },
                x_label: "sqrt(KL to base)  (sqrt nats)".into(),
                y_label: "gold reward".into(),
                series: heldout
                    .iter()
                    .map(|a| {
                        series_of(a, colour_of(colours, &a.strategy), |p| {
                            (p.gold.mean, p.gold.stderr)
                        })
                    })
                    .collect(),
                y_ref: heldout.first().map(|a| a.reference_gold),
            }
            .svg()
        })
        .collect()
}

pub(super) fn plots(
    heldout: &[&StrategyAnalysis],
    shift: &[&StrategyAnalysis],
    colours: &[(String, String)],
) -> Vec<String> {
    let labeler_name = heldout
        .first()
        .and_then(|a| a.points.first())
        .and_then(|p| p.labelers.first())
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    let x_label = "sqrt(KL to base)  (sqrt nats)";
    let mut plots = vec![];
    // Gold with the fitted curves: selection from the pool and trained
    // policies in panels of their own (fewer lines each).
    let base_gold = heldout.first().map(|a| a.reference_gold);
    for (family, title) in [
        (
            "pool",
            "Gold reward: selecting from the base policy's samples (dashed: fits)",
        ),
        ("policy", "Gold reward: trained policies (dashed: fits)"),
    ] {
        let mut gold = vec![];
        for a in heldout.iter().filter(|a| a.family == family) {
            let c = colour_of(colours, &a.strategy);
            gold.push(series_of(a, c, |p| (p.gold.mean, p.gold.stderr)));
            if let Some(f) = &a.fit {
                let dmax = a
                    .points
                    .iter()
                    .map(|p| p.kl.mean.max(0.0).sqrt())
                    .fold(0.0, f64::max)
                    * 1.15;
                let pts = (0..=40)
                    .map(|i| dmax * i as f64 / 40.0)
                    .map(|d| (d, a.reference_gold + f.gain(d), 0.0))
                    .collect();
                gold.push(Series {
                    name: format!("{} fit", a.strategy),
                    color: c.into(),
                    points: pts,
                    line: Line::Dashed,
                    markers: false,
                    legend: false,
                });
            }
        }
        if !gold.is_empty() {
            plots.push(Plot {
                title: title.into(),
                x_label: x_label.into(),
                y_label: "gold reward (held-out prompts)".into(),
                series: gold,
                y_ref: base_gold,
            });
        }
    }
    plots.push(Plot {
        title: "Proxy reward (the reward model)".into(),
        x_label: x_label.into(),
        y_label: "proxy (base policy: mean 0, sd 1)".into(),
        series: heldout
            .iter()
            .map(|a| {
                series_of(a, colour_of(colours, &a.strategy), |p| {
                    (p.proxy.mean, p.proxy.stderr)
                })
            })
            .collect(),
        y_ref: None,
    });
    plots.push(Plot {
        title: format!("Labeler score ({labeler_name})"),
        x_label: x_label.into(),
        y_label: "labeler score".into(),
        series: heldout
            .iter()
            .map(|a| {
                series_of(a, colour_of(colours, &a.strategy), |p| {
                    p.labelers
                        .iter()
                        .find(|(n, _)| *n == labeler_name)
                        .map_or((f64::NAN, 0.0), |(_, s)| (s.mean, s.stderr))
                })
            })
            .collect(),
        y_ref: None,
    });
    plots.push(Plot {
        title: "Gold win rate against the base policy".into(),
        x_label: x_label.into(),
        y_label: "P(gold beats a base sample), ties half".into(),
        series: heldout
            .iter()
            .map(|a| {
                series_of(a, colour_of(colours, &a.strategy), |p| {
                    p.gold_win_rate
                        .map_or((f64::NAN, 0.0), |w| (w.mean, w.stderr))
                })
            })
            .collect(),
        y_ref: Some(0.5),
    });
    plots.push(Plot {
        title: "Entropy (mode collapse shows as a fall)".into(),
        x_label: x_label.into(),
        y_label: "nats per generated token".into(),
        series: heldout
            .iter()
            .map(|a| {
                series_of(a, colour_of(colours, &a.strategy), |p| {
                    (p.entropy.unwrap_or(f64::NAN), 0.0)
                })
            })
            .collect(),
        y_ref: None,
    });
    if !shift.is_empty() {
        plots.push(Plot {
            title: "Gold reward under distribution shift".into(),
            x_label: x_label.into(),
            y_label: "gold reward (shift split)".into(),
            series: shift
                .iter()
                .map(|a| {
                    series_of(a, colour_of(colours, &a.strategy), |p| {
                        (p.gold.mean, p.gold.stderr)
                    })
                })
                .collect(),
            y_ref: shift.first().map(|a| a.reference_gold),
        });
    }
    if heldout
        .iter()
        .any(|a| a.points.iter().any(|p| p.spec.is_some()))
    {
        plots.push(Plot {
            title: "Formal spec satisfied".into(),
            x_label: x_label.into(),
            y_label: "share of trajectories satisfying the spec".into(),
            series: heldout
                .iter()
                .map(|a| {
                    series_of(a, colour_of(colours, &a.strategy), |p| {
                        p.spec.map_or((f64::NAN, 0.0), |s| (s.mean, s.stderr))
                    })
                })
                .collect(),
            y_ref: None,
        });
    }
    let gap = |title: &str, f: &dyn Fn(&crate::analysis::curves::Gap) -> f64| Plot {
        title: title.into(),
        x_label: x_label.into(),
        y_label: "gap (base-policy standard deviations)".into(),
        series: heldout
            .iter()
            .map(|a| Series {
                name: a.strategy.clone(),
                color: colour_of(colours, &a.strategy).into(),
                points: a
                    .gaps
                    .iter()
                    .map(|g| (g.kl.max(0.0).sqrt(), f(g), 0.0))
                    .collect(),
                line: Line::Solid,
                markers: true,
                legend: true,
            })
            .collect(),
        y_ref: Some(0.0),
    };
    plots.push(gap(
        "What the reward model got wrong: z(proxy) − z(labeler)",
        &|g| g.proxy_minus_labeler,
    ));
    plots.push(gap(
        "What the labeler got wrong: z(labeler) − z(gold)",
        &|g| g.labeler_minus_gold,
    ));
    plots.iter().map(Plot::svg).collect()
}

pub(super) fn training_plots(t: &TaskRecords, colours: &[(String, String)]) -> Vec<String> {
    let mut reward = vec![];
    let mut kl = vec![];
    for (_, r) in &t.records {
        if let Record::Rl { name, logs, .. } = r {
            let c = colour_of(colours, name).to_string();
            let mk = |pts: Vec<(f64, f64, f64)>| Series {
                name: name.clone(),
                color: c.clone(),
                points: pts,
                line: Line::Solid,
                markers: false,
                legend: true,
            };
            reward.push(mk(logs
                .iter()
                .map(|l| (l.iteration as f64, l.reward, 0.0))
                .collect()));
            kl.push(mk(logs
                .iter()
                .map(|l| (l.iteration as f64, l.kl, 0.0))
                .collect()));
        }
    }
    if reward.is_empty() {
        return vec![];
    }
    vec![
        Plot {
            title: "Reward optimised, per rollout".into(),
            x_label: "iteration".into(),
            y_label: "mean reward (before KL penalty)".into(),
            series: reward,
            y_ref: None,
        }
        .svg(),
        Plot {
            title: "KL to the base policy, per rollout".into(),
            x_label: "iteration".into(),
            y_label: "KL (nats per completion)".into(),
            series: kl,
            y_ref: None,
        }
        .svg(),
    ]
}
