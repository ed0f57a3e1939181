//! The run's outputs, rebuilt from its stage records: `metrics.jsonl`,
//! `curves.csv`, `fits.json` and `report.html` (one self-contained file, inline
//! SVG, no network).

pub mod seeds;
pub mod svg;

use std::fmt::Write as _;

use crate::error::Result;
use crate::experiment::analysis::{self, StrategyAnalysis, KL_BUDGETS};
use crate::experiment::record::{Record, RunDir, TaskRecords};
use crate::experiment::Experiment;
use crate::fsutil::write_atomic;
use crate::measure::bootstrap::Interval;
use crate::score::CurvePoint;
use crate::task::Task;
use svg::{esc, Line, Plot, Series, PALETTE};

/// What `write_outputs` produced.
pub struct Outputs {
    /// The one-screen summary.
    pub summary: String,
    pub analyses: Vec<StrategyAnalysis>,
}

/// Rebuild every output file of the run in `dir` from its records.
pub fn write_outputs(dir: &RunDir) -> Result<Outputs> {
    let exp = dir.experiment()?;
    let tasks = dir.records(&exp)?;
    let analyses: Vec<StrategyAnalysis> = tasks.iter().flat_map(analysis::analyse).collect();
    write_atomic(
        &dir.root.join("metrics.jsonl"),
        analysis::metrics_jsonl(&tasks).as_bytes(),
    )?;
    write_atomic(
        &dir.root.join("curves.csv"),
        analysis::curves_csv(&analyses).as_bytes(),
    )?;
    write_atomic(
        &dir.root.join("fits.json"),
        analysis::fits_json(&analyses).as_bytes(),
    )?;
    let html = report_html(&exp, &tasks, &analyses)?;
    write_atomic(&dir.root.join("report.html"), html.as_bytes())?;
    Ok(Outputs {
        summary: analysis::summary(&tasks, &analyses),
        analyses,
    })
}

/// Colour of each strategy, fixed by its place in the experiment.
fn colours(exp: &Experiment) -> Vec<(String, String)> {
    let mut names: Vec<String> = vec![];
    for t in &exp.tasks {
        for n in t.strategies.names() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, PALETTE[i % PALETTE.len()].to_string()))
        .collect()
}

fn colour_of<'a>(colours: &'a [(String, String)], name: &str) -> &'a str {
    colours
        .iter()
        .find(|(n, _)| n == name)
        .map_or("#777", |(_, c)| c.as_str())
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1400px;margin:0 auto;padding:0 16px 40px;color:#222}
h1{margin-bottom:0}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid svg{border:1px solid #eee;max-width:100%;height:auto}
table{border-collapse:collapse;margin:8px 0;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f5f5f5}td:first-child,th:first-child{text-align:left}.swatch{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}.ex{display:flex;flex-wrap:wrap;gap:10px}.ex>div{border:1px solid #ddd;padding:6px;max-width:420px}
.ex pre{white-space:pre-wrap;margin:4px 0}.note{color:#555;font-size:13px;max-width:900px}details{margin:6px 0}";

fn report_html(
    exp: &Experiment,
    tasks: &[TaskRecords],
    analyses: &[StrategyAnalysis],
) -> Result<String> {
    let colours = colours(exp);
    let mut h = String::new();
    write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>goodhart: {}</title><style>{STYLE}</style></head><body>",
        esc(&exp.name)
    )
    .unwrap();
    write!(
        h,
        "<h1>goodhart: {}</h1><p class=\"note\">Seed {}. Every strategy optimises the <b>proxy</b> (a reward model learned from the labeler's comparisons) unless its name says otherwise; \
         the <b>labeler</b> is the quick judge whose comparisons trained it; <b>gold</b> is what a careful, fully informed judge says. \
         KL is KL(policy &#8214; base) in nats, estimated from samples; curves are plotted against sqrt(KL) as in Gao et al. (2022). \
         Error bars are 95% normal intervals across prompts (1.96 standard errors); the tables give 95% bootstrap intervals over prompts. \
         <b>bon-labeler</b> and <b>bon-gold</b> are oracle baselines: best-of-n from the same pool selecting on the labeler's own score and on gold.</p>",
        esc(&exp.name),
        exp.seed
    )
    .unwrap();
    for t in tasks {
        let setup = exp.task(Some(&t.task))?;
        let task = crate::reward::build_task(&setup.task_config(), exp.seed)?;
        let mine: Vec<&StrategyAnalysis> = analyses.iter().filter(|a| a.task == t.task).collect();
        task_section(&mut h, t, &mine, &colours, task.as_ref());
    }
    write!(h, "<h2>Experiment</h2><pre>{}</pre>", esc(&exp.to_toml())).unwrap();
    h.push_str("</body></html>\n");
    Ok(h)
}

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

fn task_section(
    h: &mut String,
    t: &TaskRecords,
    analyses: &[&StrategyAnalysis],
    colours: &[(String, String)],
    task: &dyn Task,
) {
    write!(h, "<h2>Task: {}</h2>", esc(&t.task)).unwrap();
    setup_tables(h, t);
    let heldout: Vec<&&StrategyAnalysis> =
        analyses.iter().filter(|a| a.split == "heldout").collect();
    let shift: Vec<&&StrategyAnalysis> = analyses.iter().filter(|a| a.split == "shift").collect();
    let labeler_name = heldout
        .first()
        .and_then(|a| a.points.first())
        .and_then(|p| p.labelers.first())
        .map(|(n, _)| n.clone())
        .unwrap_or_default();
    let x_label = "sqrt(KL to base)  (sqrt nats)";
    let mut plots = vec![];
    // Gold with the fitted curves.
    let mut gold = vec![];
    for a in &heldout {
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
    let base_gold = heldout.first().map(|a| a.reference_gold);
    plots.push(Plot {
        title: "Gold reward, held-out prompts (dashed: fits)".into(),
        x_label: x_label.into(),
        y_label: "gold reward".into(),
        series: gold,
        y_ref: base_gold,
    });
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
    let gap = |title: &str, f: &dyn Fn(&crate::experiment::analysis::Gap) -> f64| Plot {
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
    h.push_str("<div class=\"grid\">");
    for p in &plots {
        h.push_str(&p.svg());
    }
    h.push_str("</div>");

    // Strategies compared at matched KL.
    h.push_str("<h3>Gold at matched KL, fits and peaks (held-out prompts)</h3><table><tr><th>strategy</th>");
    for b in KL_BUDGETS {
        write!(h, "<th>best gold, KL &le; {b}</th>").unwrap();
    }
    h.push_str("<th>observed peak gold [95% CI] (at KL)</th><th>fit</th><th>alpha [95% CI]</th><th>beta [95% CI]</th><th>R&sup2;</th><th>predicted peak gold (at KL); share of resamples that turn over</th><th>half-sweep prediction RMSE (R&sup2;)</th></tr>");
    for a in &heldout {
        write!(
            h,
            "<tr><td><span class=\"swatch\" style=\"background:{}\"></span>{}</td>",
            colour_of(colours, &a.strategy),
            esc(&a.strategy)
        )
        .unwrap();
        let iv = a.intervals.as_ref();
        let max_kl = a.points.iter().map(|p| p.kl.mean).fold(0.0, f64::max);
        let ci = |c: Option<Interval>| {
            c.map_or(String::new(), |c| format!(" [{:.3}, {:.3}]", c.lo, c.hi))
        };
        for (b, (_, g)) in a.gold_within.iter().enumerate() {
            write!(
                h,
                "<td>{}</td>",
                g.map_or("&ndash;".to_string(), |g| format!(
                    "{g:.3}{}",
                    ci(iv.and_then(|iv| iv.gold_within.get(b)?.1))
                ))
            )
            .unwrap();
        }
        write!(
            h,
            "<td>{:.3}{} ({:.2})</td>",
            a.observed_peak.1,
            ci(iv.and_then(|iv| iv.observed_peak_gold)),
            a.observed_peak.0
        )
        .unwrap();
        match &a.fit {
            Some(f) => write!(
                h,
                "<td>{}</td><td>{:.3}{}</td><td>{:.3}{}</td><td>{:.2}</td><td>{}{}</td>",
                f.form.formula(),
                f.alpha,
                ci(iv.and_then(|iv| iv.alpha)),
                f.beta,
                ci(iv.and_then(|iv| iv.beta)),
                f.r2,
                match (f.peak_d, f.peak_gain) {
                    // A peak far beyond the measured KL is an extrapolation, not a prediction.
                    (Some(d), Some(_)) if d * d > 2.0 * max_kl => {
                        format!("beyond the sweep (KL {:.0})", d * d)
                    }
                    (Some(d), Some(g)) => format!("{:.3} ({:.2})", a.reference_gold + g, d * d),
                    _ => "no peak".into(),
                },
                iv.map_or(String::new(), |iv| format!(
                    "; {:.0}%",
                    100.0 * iv.peak_share
                ))
            )
            .unwrap(),
            None => h.push_str("<td colspan=\"5\">too few points to fit</td>"),
        }
        match &a.half {
            Some(p) => write!(h, "<td>{:.3} ({:.2})</td></tr>", p.rmse, p.r2).unwrap(),
            None => h.push_str("<td>&ndash;</td></tr>"),
        }
    }
    h.push_str("</table><p>Intervals: 95% percentile bootstrap over prompts (each resample rebuilds every point and refits). They cover sampling of prompts and completions, not the randomness of training: run several seeds for that.</p>");
    let flagged: Vec<String> = heldout
        .iter()
        .flat_map(|a| {
            a.points.iter().filter_map(move |p| {
                p.flag
                    .as_ref()
                    .map(|f| format!("{} {} = {}: {f}", a.strategy, p.knob, p.value))
            })
        })
        .chain(t.records.iter().flat_map(|(_, r)| match r {
            Record::Pool { notes, .. } => notes.clone(),
            _ => vec![],
        }))
        .collect();
    if !flagged.is_empty() {
        h.push_str("<p>Left out of fits, peaks and matched-KL columns (still plotted):</p><ul>");
        for f in &flagged {
            write!(h, "<li>{}</li>", esc(f)).unwrap();
        }
        h.push_str("</ul>");
    }

    // Feature drift.
    h.push_str("<h3>What moved: named features at each strategy's largest KL vs the base policy</h3><table><tr><th>strategy</th><th>KL</th>");
    let feature_names: Vec<String> = heldout
        .first()
        .map(|a| a.drift.iter().map(|d| d.feature.clone()).collect())
        .unwrap_or_default();
    let mut sorted_names = feature_names.clone();
    sorted_names.sort();
    for f in &sorted_names {
        write!(h, "<th>{}</th>", esc(f)).unwrap();
    }
    h.push_str("<th>moved most</th></tr><tr><td>base policy</td><td>0</td>");
    if let Some(a) = heldout.first() {
        for f in &sorted_names {
            let d = a.drift.iter().find(|d| &d.feature == f).expect("feature");
            write!(h, "<td>{:.3}</td>", d.base).unwrap();
        }
    }
    h.push_str("<td></td></tr>");
    for a in &heldout {
        write!(
            h,
            "<tr><td>{}</td><td>{:.2}</td>",
            esc(&a.strategy),
            a.points.last().map_or(0.0, |p| p.kl.mean)
        )
        .unwrap();
        for f in &sorted_names {
            let d = a.drift.iter().find(|d| &d.feature == f);
            match d {
                Some(d) => {
                    let shade = (d.z.abs() / 3.0).min(1.0) * 0.5;
                    let rgb = if d.z > 0.0 { "0,114,178" } else { "213,94,0" };
                    write!(h, "<td style=\"background:rgba({rgb},{shade:.2})\" title=\"{:+.2} sd\">{:.3}</td>", d.z, d.now).unwrap();
                }
                None => h.push_str("<td></td>"),
            }
        }
        let top: Vec<String> = a
            .drift
            .iter()
            .take(2)
            .map(|d| format!("{} ({:+.1} sd)", d.feature, d.z))
            .collect();
        write!(h, "<td>{}</td></tr>", esc(&top.join(", "))).unwrap();
    }
    h.push_str("</table>");

    training_logs(h, t, colours);

    // Examples at the base policy, the gold peak and the largest KL.
    h.push_str("<h3>Completions: base policy, at the gold peak, at the largest KL</h3>");
    for a in &heldout {
        let peak = a
            .points
            .iter()
            .max_by(|x, y| x.gold.mean.total_cmp(&y.gold.mean))
            .expect("points");
        let picks = [
            ("base policy", &a.points[0]),
            ("gold peak", peak),
            ("largest KL", a.points.last().expect("points")),
        ];
        write!(
            h,
            "<details><summary><b>{}</b></summary><div class=\"ex\">",
            esc(&a.strategy)
        )
        .unwrap();
        for (label, p) in picks {
            for (i, e) in p.examples.iter().enumerate() {
                write!(
                    h,
                    "<div><b>{label}</b> (KL {:.2}) #{}: gold {:+.2}, proxy {}, labeler {}<pre>{}</pre><pre>{}</pre>",
                    p.kl.mean,
                    i + 1,
                    e.gold,
                    e.proxy.map_or("-".into(), |x| format!("{x:+.2}")),
                    e.labeler.map_or("-".into(), |x| format!("{x:+.2}")),
                    esc(e.prompt.trim_end()),
                    esc(&e.completion)
                )
                .unwrap();
                if let Some(svg) = task.render_svg(&e.prompt, &e.completion) {
                    h.push_str(&svg);
                }
                h.push_str("</div>");
            }
        }
        h.push_str("</div></details>");
    }
}

fn setup_tables(h: &mut String, t: &TaskRecords) {
    h.push_str("<p class=\"note\">");
    for (_, r) in &t.records {
        match r {
            Record::Base { source, sft } => match sft {
                Some(s) => write!(
                    h,
                    "Base policy: trained by SFT, held-out loss {:.3} nats/token (a unigram model: {:.3}). ",
                    s.final_heldout_loss().unwrap_or(f64::NAN),
                    s.unigram_loss
                )
                .unwrap(),
                None => write!(h, "Base policy: loaded from {}. ", esc(source)).unwrap(),
            },
            Record::Labels { answers, pairs } => {
                write!(h, "Labels: {pairs} pairs of base-policy completions, compared by ").unwrap();
                let parts: Vec<String> = answers
                    .iter()
                    .map(|(n, c)| format!("{} (A {} / B {} / tie {} / can't tell {})", esc(n), c[0], c[1], c[2], c[3]))
                    .collect();
                write!(h, "{}. ", parts.join(", ")).unwrap();
            }
            Record::RewardModel { report } => write!(
                h,
                "Reward model: held-out accuracy {:.3} &plusmn; {:.3} against the labeler's own labels, {:.3} &plusmn; {:.3} against gold. ",
                report.accuracy_labeler.mean, report.accuracy_labeler.stderr, report.accuracy_gold.mean, report.accuracy_gold.stderr
            )
            .unwrap(),
            _ => {}
        }
    }
    h.push_str("</p>");
    for (_, r) in &t.records {
        if let Record::BaseEval { heldout, shift } = r {
            h.push_str("<table><tr><th>base policy</th><th>gold</th>");
            for (n, _) in &heldout.labelers {
                write!(h, "<th>labeler {}</th>", esc(n)).unwrap();
            }
            h.push_str("<th>share correct by difficulty</th><th>labeler agrees with gold on pairs, by difficulty</th><th>labeler&ndash;gold correlation</th></tr>");
            for s in std::iter::once(heldout).chain(shift.as_ref()) {
                write!(
                    h,
                    "<tr><td>{}</td><td>{:.3} &plusmn; {:.3}</td>",
                    s.split.name(),
                    s.gold.mean,
                    s.gold.stderr
                )
                .unwrap();
                for (_, st) in &s.labelers {
                    write!(h, "<td>{:.3}</td>", st.mean).unwrap();
                }
                let by = |v: &[(u32, crate::stats::Stat)]| {
                    v.iter()
                        .map(|(d, s)| format!("{d}: {:.2}", s.mean))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                match s.fidelity.first() {
                    Some((_, f)) => write!(
                        h,
                        "<td>{}</td><td>{}</td><td>{:.2}</td></tr>",
                        by(&f.accuracy),
                        by(&f.agreement),
                        f.correlation
                    )
                    .unwrap(),
                    None => h.push_str("<td></td><td></td><td></td></tr>"),
                }
            }
            h.push_str("</table>");
        }
    }
}

fn training_logs(h: &mut String, t: &TaskRecords, colours: &[(String, String)]) {
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
        return;
    }
    h.push_str("<h3>RL training</h3><div class=\"grid\">");
    h.push_str(
        &Plot {
            title: "Reward optimised, per rollout".into(),
            x_label: "iteration".into(),
            y_label: "mean reward (before KL penalty)".into(),
            series: reward,
            y_ref: None,
        }
        .svg(),
    );
    h.push_str(
        &Plot {
            title: "KL to the base policy, per rollout".into(),
            x_label: "iteration".into(),
            y_label: "KL (nats per completion)".into(),
            series: kl,
            y_ref: None,
        }
        .svg(),
    );
    h.push_str("</div>");
}
