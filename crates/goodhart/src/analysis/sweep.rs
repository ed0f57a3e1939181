//! The sweep's aggregate: each point aggregated over its finished seeds (as
//! `goodhart run --seeds` does, in the point's directory), then one row per
//! point, task and strategy (`sweep.csv`): where the curve ends, its gold
//! peak, the Gao fit of its mean curve, and the reward model's accuracy,
//! each a mean over seeds with its 95% t-interval.

use std::fmt::Write as _;
use std::path::Path;

use crate::analysis::across::AcrossSeeds;
use crate::analysis::seeds::{self, Aggregate, SeedCurve};
use crate::error::Result;
use crate::experiment::record::{Record, RunDir};
use crate::experiment::sweep::{point_dir, run_state, Plan, RunState};
use crate::fsutil::write_atomic;
use crate::measure::fit::Fit;

/// One point's result for one task and strategy (held-out split).
#[derive(Clone, Debug)]
pub struct PointRow {
    /// Index into the plan's points.
    pub point: usize,
    pub task: String,
    pub strategy: String,
    pub seeds: usize,
    /// Gold at the curve's first point (the base policy, KL 0).
    pub start_gold: AcrossSeeds,
    /// The point furthest from the base policy (mean KL over seeds).
    pub end_kl: AcrossSeeds,
    pub end_proxy: AcrossSeeds,
    pub end_gold: AcrossSeeds,
    /// The highest mean gold along the curve, and its KL.
    pub peak_gold: AcrossSeeds,
    pub peak_kl: f64,
    /// The fit of the across-seed mean curve.
    pub fit: Option<Fit>,
    /// The task's reward model: held-out accuracy against its labeler and against gold.
    pub rm_labeler: AcrossSeeds,
    pub rm_gold: AcrossSeeds,
}

/// What [`aggregate`] wrote.
pub struct SweepAggregate {
    /// Each point with finished seeds: its index and aggregate.
    pub points: Vec<(usize, Aggregate)>,
    pub rows: Vec<PointRow>,
    /// Points not in the aggregate yet, and runs not finished ("p01-... seed 2").
    pub unfinished: Vec<String>,
    pub summary: String,
}

/// Aggregate every point of the sweep in `dir` over its finished seeds, and
/// write `sweep.csv` and `summary.txt` (each point's own aggregate goes in
/// its directory; the reports are the report module's).
pub fn aggregate(dir: &Path, plan: &Plan) -> Result<SweepAggregate> {
    let mut points = vec![];
    let mut rows = vec![];
    let mut unfinished = vec![];
    for (i, point) in plan.points.iter().enumerate() {
        let mut done = vec![];
        for (j, &seed) in plan.seeds.iter().enumerate() {
            let run = plan.run(i * plan.seeds.len() + j)?;
            if run_state(dir, &run)? == RunState::Finished {
                done.push(seed);
            } else {
                unfinished.push(format!("{} seed {seed}", point.id));
            }
        }
        if done.is_empty() {
            continue;
        }
        let root = point_dir(dir, point);
        let agg = seeds::aggregate(&root, &done)?;
        let rm = reward_models(&root, &done)?;
        for (curve, fit) in agg.curves.iter().zip(&agg.fits) {
            if curve.split != "heldout" {
                continue;
            }
            let (rm_labeler, rm_gold) = rm
                .iter()
                .find(|(t, _, _)| *t == curve.task)
                .map_or((AcrossSeeds::of(&[]), AcrossSeeds::of(&[])), |(_, l, g)| {
                    (*l, *g)
                });
            rows.push(row(
                i,
                curve,
                fit.pooled.clone(),
                done.len(),
                rm_labeler,
                rm_gold,
            ));
        }
        points.push((i, agg));
    }
    write_atomic(&dir.join("sweep.csv"), csv(plan, &rows).as_bytes())?;
    let summary = summary(plan, &rows, &unfinished);
    write_atomic(&dir.join("summary.txt"), summary.as_bytes())?;
    Ok(SweepAggregate {
        points,
        rows,
        unfinished,
        summary,
    })
}

fn row(
    point: usize,
    curve: &SeedCurve,
    fit: Option<Fit>,
    seeds: usize,
    rm_labeler: AcrossSeeds,
    rm_gold: AcrossSeeds,
) -> PointRow {
    // Flagged points feed nothing but their own rows.
    let trusted = || curve.points.iter().filter(|p| p.trusted);
    let end = trusted()
        .max_by(|a, b| a.kl.mean.total_cmp(&b.kl.mean))
        .unwrap_or(&curve.points[0]);
    let peak = trusted()
        .filter(|p| p.gold.mean.is_finite())
        .max_by(|a, b| a.gold.mean.total_cmp(&b.gold.mean))
        .unwrap_or(end);
    PointRow {
        point,
        task: curve.task.clone(),
        strategy: curve.strategy.clone(),
        seeds,
        start_gold: curve.points[0].gold,
        end_kl: end.kl,
        end_proxy: end.proxy,
        end_gold: end.gold,
        peak_gold: peak.gold,
        peak_kl: peak.kl.mean,
        fit,
        rm_labeler,
        rm_gold,
    }
}

/// Per task: the reward model's held-out accuracy against its labeler and gold, over seeds.
fn reward_models(root: &Path, seeds: &[u64]) -> Result<Vec<(String, AcrossSeeds, AcrossSeeds)>> {
    let mut per_task: Vec<(String, Vec<f64>, Vec<f64>)> = vec![];
    for &seed in seeds {
        let rd = RunDir::new(&crate::experiment::seeds::seed_dir(root, seed));
        let exp = rd.experiment()?;
        for t in &exp.tasks {
            if let Some(Record::RewardModel { report }) =
                rd.read_record(t.name(), "reward_model")?
            {
                let entry = match per_task.iter_mut().position(|(n, _, _)| n == t.name()) {
                    Some(i) => &mut per_task[i],
                    None => {
                        per_task.push((t.name().to_string(), vec![], vec![]));
                        per_task.last_mut().expect("just pushed")
                    }
                };
                entry.1.push(report.accuracy_labeler.mean);
                entry.2.push(report.accuracy_gold.mean);
            }
        }
    }
    Ok(per_task
        .into_iter()
        .map(|(t, l, g)| (t, AcrossSeeds::of(&l), AcrossSeeds::of(&g)))
        .collect())
}

/// `sweep.csv`: one row per point, task and strategy; the swept values as columns.
fn csv(plan: &Plan, rows: &[PointRow]) -> String {
    let mut out = String::from("point");
    if plan.experiments > 1 {
        out.push_str(",experiment");
    }
    for k in &plan.keys {
        write!(out, ",{k}").unwrap();
    }
    out.push_str(",task,strategy,seeds,start_gold,start_gold_ci,kl,kl_ci,proxy,proxy_ci,gold,gold_ci,peak_gold,peak_gold_ci,peak_kl,fit_alpha,fit_alpha_se,fit_beta,fit_beta_se,fit_peak_sqrt_kl,fit_peak_extrapolated,rm_accuracy_labeler,rm_accuracy_labeler_ci,rm_accuracy_gold,rm_accuracy_gold_ci\n");
    for r in rows {
        let p = &plan.points[r.point];
        out.push_str(&p.id);
        if plan.experiments > 1 {
            write!(out, ",{}", p.experiment).unwrap();
        }
        for v in &p.values {
            write!(out, ",{}", csv_value(v)).unwrap();
        }
        let f = |x: f64| {
            if x.is_finite() {
                x.to_string()
            } else {
                String::new()
            }
        };
        let s = |a: &AcrossSeeds| format!("{},{}", f(a.mean), f(a.half_width));
        let (alpha, alpha_se, beta, beta_se, peak, beyond) = match &r.fit {
            Some(fit) => (
                f(fit.alpha),
                f(fit.alpha_se),
                f(fit.beta),
                f(fit.beta_se),
                fit.peak_d.map_or(String::new(), f),
                fit.peak_d
                    .map_or(String::new(), |_| fit.peak_extrapolated.to_string()),
            ),
            None => Default::default(),
        };
        writeln!(
            out,
            ",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.task,
            r.strategy,
            r.seeds,
            s(&r.start_gold),
            s(&r.end_kl),
            s(&r.end_proxy),
            s(&r.end_gold),
            s(&r.peak_gold),
            f(r.peak_kl),
            alpha,
            alpha_se,
            beta,
            beta_se,
            peak,
            beyond,
            s(&r.rm_labeler),
            s(&r.rm_gold),
        )
        .unwrap();
    }
    out
}

/// A value as a CSV cell (quoted only when it must be: a string, array or
/// inline table with a comma, quote or newline in it).
fn csv_value(v: &toml::Value) -> String {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn show(a: &AcrossSeeds) -> String {
    if a.half_width.is_finite() {
        format!("{:.3} ±{:.3}", a.mean, a.half_width)
    } else {
        format!("{:.3}", a.mean)
    }
}

/// Per task and strategy, a line per point: where the curve ends and its peak.
fn summary(plan: &Plan, rows: &[PointRow], unfinished: &[String]) -> String {
    let mut s = format!(
        "sweep {}: {} points x {} seeds ({} runs); ± is a 95% t-interval across seeds\n",
        plan.name,
        plan.points.len(),
        plan.seeds.len(),
        plan.runs()
    );
    if !unfinished.is_empty() {
        writeln!(
            s,
            "not finished ({} runs, left out): {}",
            unfinished.len(),
            unfinished.join(", ")
        )
        .unwrap();
    }
    let mut pairs: Vec<(&str, &str)> = vec![];
    for r in rows {
        if !pairs.contains(&(r.task.as_str(), r.strategy.as_str())) {
            pairs.push((&r.task, &r.strategy));
        }
    }
    let width = plan
        .points
        .iter()
        .map(|p| p.label(plan).chars().count())
        .max()
        .unwrap_or(0)
        .max(34);
    for (task, strategy) in pairs {
        writeln!(s, "\n{task} / {strategy}").unwrap();
        writeln!(
            s,
            "  {:<width$} {:>5} {:>15} {:>15} {:>15} {:>16} {:>8}",
            "point",
            "seeds",
            "max KL",
            "gold at max KL",
            "peak gold",
            "rm acc (labeler)",
            "fit beta"
        )
        .unwrap();
        for r in rows
            .iter()
            .filter(|r| r.task == task && r.strategy == strategy)
        {
            let beta = r
                .fit
                .as_ref()
                .map_or("-".to_string(), |f| format!("{:.3}", f.beta));
            writeln!(
                s,
                "  {:<width$} {:>5} {:>15} {:>15} {:>15} {:>16} {:>8}",
                plan.points[r.point].label(plan),
                r.seeds,
                show(&r.end_kl),
                show(&r.end_gold),
                show(&r.peak_gold),
                show(&r.rm_labeler),
                beta
            )
            .unwrap();
        }
    }
    s
}
