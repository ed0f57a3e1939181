//! The run's machine-readable outputs, from its records and their analyses:
//! `metrics.jsonl` (every record), `curves.csv` (every curve point) and
//! `fits.json` (every fit, peak and interval).

use serde::Serialize;

use super::curves::StrategyAnalysis;
use crate::experiment::record::TaskRecords;
use crate::measure::bootstrap::Interval;
use crate::measure::fit::{Fit, Form, HalfPrediction};

/// `metrics.jsonl`: every record of every task, one JSON object per line, in stage order.
pub fn metrics_jsonl(tasks: &[TaskRecords]) -> String {
    let mut out = String::new();
    for t in tasks {
        for (stage, record) in &t.records {
            let mut v = serde_json::to_value(record).expect("records serialise");
            if let Some(obj) = v.as_object_mut() {
                obj.insert("task".into(), t.task.clone().into());
                obj.insert("stage_name".into(), stage.clone().into());
            }
            out.push_str(&serde_json::to_string(&v).expect("json"));
            out.push('\n');
        }
    }
    out
}

/// `curves.csv`: one row per curve point (strategy, split, sweep value) with every measurement.
pub fn curves_csv(analyses: &[StrategyAnalysis]) -> String {
    let mut features: Vec<String> = vec![];
    let mut labelers: Vec<String> = vec![];
    for a in analyses {
        for p in &a.points {
            for (f, _) in &p.features {
                if !features.contains(f) {
                    features.push(f.clone());
                }
            }
            for (l, _) in &p.labelers {
                if !labelers.contains(l) {
                    labelers.push(l.clone());
                }
            }
        }
    }
    let mut header: Vec<String> = "task,strategy,split,knob,value,kl,kl_se,kl_lo,kl_hi,kl_analytic,sqrt_kl,proxy,proxy_se,gold,gold_se,gold_lo,gold_hi,spec,spec_se,ess,truncated,gold_win_rate,gold_win_rate_se,entropy,distinct,flag"
        .split(',')
        .map(String::from)
        .collect();
    for l in &labelers {
        header.extend([format!("labeler_{l}"), format!("labeler_{l}_se")]);
    }
    header.extend(features.iter().cloned());
    header.push("checkpoint".into());
    let num = |x: Option<f64>| {
        x.filter(|v| v.is_finite())
            .map_or(String::new(), |v| format!("{v}"))
    };
    let mut out = csv::Writer::from_writer(vec![]);
    out.write_record(&header).expect("writing to memory");
    for a in analyses {
        for (i, p) in a.points.iter().enumerate() {
            let ci = a.intervals.as_ref().and_then(|iv| iv.points.get(i));
            let (kl_ci, gold_ci) = (ci.and_then(|c| c.kl), ci.and_then(|c| c.gold));
            let mut row = vec![
                p.task.clone(),
                a.strategy.clone(),
                p.split.clone(),
                p.knob.clone(),
                format!("{}", p.value),
                format!("{}", p.kl.mean),
                format!("{}", p.kl.stderr),
                num(kl_ci.map(|c| c.lo)),
                num(kl_ci.map(|c| c.hi)),
                num(p.kl_analytic),
                format!("{}", p.kl.mean.max(0.0).sqrt()),
                format!("{}", p.proxy.mean),
                format!("{}", p.proxy.stderr),
                format!("{}", p.gold.mean),
                format!("{}", p.gold.stderr),
                num(gold_ci.map(|c| c.lo)),
                num(gold_ci.map(|c| c.hi)),
                num(p.spec.map(|s| s.mean)),
                num(p.spec.map(|s| s.stderr)),
                num(p.ess),
                num(p.truncated),
                num(p.gold_win_rate.map(|s| s.mean)),
                num(p.gold_win_rate.map(|s| s.stderr)),
                num(p.entropy),
                num(p.distinct),
                p.flag.clone().unwrap_or_default(),
            ];
            for l in &labelers {
                let s = p.labelers.iter().find(|(n, _)| n == l).map(|(_, s)| *s);
                row.extend([num(s.map(|s| s.mean)), num(s.map(|s| s.stderr))]);
            }
            for f in &features {
                row.push(num(p
                    .features
                    .iter()
                    .find(|(n, _)| n == f)
                    .map(|(_, v)| *v)));
            }
            row.push(p.checkpoint.clone().unwrap_or_default());
            out.write_record(&row).expect("writing to memory");
        }
    }
    let bytes = out.into_inner().expect("writing to memory");
    String::from_utf8(bytes).expect("fields are UTF-8")
}

/// `fits.json`: per task, strategy and split, the fitted form, its half-sweep prediction and the observed peak.
pub fn fits_json(analyses: &[StrategyAnalysis]) -> String {
    #[derive(Serialize)]
    struct Row<'a> {
        task: &'a str,
        strategy: &'a str,
        split: &'a str,
        form: &'static str,
        reference_gold: f64,
        fit: &'a Option<Fit>,
        half_sweep_prediction: &'a Option<HalfPrediction>,
        observed_peak_kl: f64,
        observed_peak_gold: f64,
        gold_within_kl: &'a [(f64, Option<f64>)],
        /// 95% bootstrap intervals over prompts (fit, peaks, budgets).
        intervals: Option<FitIntervals<'a>>,
        /// Points shown but left out of the fit, and why.
        flagged: Vec<String>,
    }
    #[derive(Serialize)]
    struct FitIntervals<'a> {
        resamples: usize,
        alpha: Option<Interval>,
        beta: Option<Interval>,
        peak_share: f64,
        peak_kl: Option<Interval>,
        peak_gain: Option<Interval>,
        observed_peak_kl: Option<Interval>,
        observed_peak_gold: Option<Interval>,
        gold_within_kl: &'a [(f64, Option<Interval>)],
    }
    let rows: Vec<Row> = analyses
        .iter()
        .map(|a| Row {
            task: &a.task,
            strategy: &a.strategy,
            split: &a.split,
            form: if a.family == "pool" {
                Form::Bon.formula()
            } else {
                Form::Rl.formula()
            },
            reference_gold: a.reference_gold,
            fit: &a.fit,
            half_sweep_prediction: &a.half,
            observed_peak_kl: a.observed_peak.0,
            observed_peak_gold: a.observed_peak.1,
            gold_within_kl: &a.gold_within,
            intervals: a.intervals.as_ref().map(|iv| FitIntervals {
                resamples: iv.resamples,
                alpha: iv.alpha,
                beta: iv.beta,
                peak_share: iv.peak_share,
                peak_kl: iv.peak_kl,
                peak_gain: iv.peak_gain,
                observed_peak_kl: iv.observed_peak_kl,
                observed_peak_gold: iv.observed_peak_gold,
                gold_within_kl: &iv.gold_within,
            }),
            flagged: a
                .points
                .iter()
                .filter_map(|p| {
                    p.flag
                        .as_ref()
                        .map(|f| format!("{} = {}: {f}", p.knob, p.value))
                })
                .collect(),
        })
        .collect();
    // Non-finite numbers (a fit's R^2 on a flat curve) become null.
    let mut s = serde_json::to_string_pretty(&rows).expect("fits serialise");
    s.push('\n');
    s
}
