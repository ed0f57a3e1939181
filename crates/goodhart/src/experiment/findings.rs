//! What a run found, in sentences generated from its numbers (never written
//! by hand): for each task and strategy, what rose and what fell between the
//! base policy and the strategy's largest KL, whether gold rose, fell, or
//! rose and then fell, where it peaked, in how many seeds, with intervals; a
//! change within noise is said to be within noise. The summary prints them and
//! the report opens with them.
//!
//! Within one seed a change is noise when it is within 1.96 standard errors
//! over prompts; across seeds a figure is a mean with its 95% t-interval, and
//! each seed's own verdict is counted.

use std::fmt::Write as _;

use serde::Serialize;

use super::analysis::StrategyAnalysis;
use super::config::{Experiment, GoodhartKind};
use super::seeds::AcrossSeeds;
use crate::score::CurvePoint;

/// Changes smaller than this are no change (the figures print three decimals).
const MIN_CHANGE: f64 = 1e-3;

/// The shape of a strategy's gold from the base policy to its largest KL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Gold above the base policy's at the largest KL, and not below a higher peak.
    Rose,
    /// Gold above the base policy's at some KL, then back down by more than noise.
    RoseThenFell,
    /// Gold below the base policy's at the largest KL, never clearly above it.
    Fell,
    /// No change beyond noise.
    Flat,
    /// Across seeds: no verdict held in more than half of them.
    Mixed,
}

impl Shape {
    pub fn words(self) -> &'static str {
        match self {
            Shape::Rose => "rose",
            Shape::RoseThenFell => "rose, then fell",
            Shape::Fell => "fell",
            Shape::Flat => "did not move beyond noise",
            Shape::Mixed => "moved differently in different seeds",
        }
    }
}

/// One strategy's curve in one seed, as the findings read it.
#[derive(Clone, Debug)]
struct Facts {
    base_gold: f64,
    base_gold_se: f64,
    first: CurvePoint,
    last: CurvePoint,
    peak_kl: f64,
    peak_gold: f64,
    /// The lower end of the peak's bootstrap interval, where there is one.
    peak_gold_lo: Option<f64>,
    shape: Shape,
}

fn labeler(p: &CurvePoint) -> Option<f64> {
    p.labelers.first().map(|(_, s)| s.mean)
}

fn facts(a: &StrategyAnalysis) -> Option<Facts> {
    let trusted: Vec<&CurvePoint> = a.points.iter().filter(|p| p.flag.is_none()).collect();
    let first = (*trusted.first()?).clone();
    let last = (*trusted
        .iter()
        .max_by(|x, y| x.kl.mean.total_cmp(&y.kl.mean))?)
    .clone();
    let base_gold = a.reference_gold;
    // The base policy's standard error: the KL-0 point's where the curve starts there.
    let base_gold_se = if first.kl.mean.abs() < 1e-6 {
        first.gold.stderr
    } else {
        last.gold.stderr
    };
    let (peak_kl, peak_gold) = a.observed_peak;
    let peak_gold_lo = a
        .intervals
        .as_ref()
        .and_then(|iv| iv.observed_peak_gold)
        .map(|iv| iv.lo);
    // (A floor below the figures' printed precision: equal numbers never "move".)
    let noise = |se: f64| (1.96 * (se.powi(2) + base_gold_se.powi(2)).sqrt()).max(MIN_CHANGE);
    let last_noise = noise(last.gold.stderr);
    let peak_above = peak_kl < last.kl.mean
        && match peak_gold_lo {
            Some(lo) => lo > base_gold + MIN_CHANGE,
            None => peak_gold - base_gold > last_noise,
        };
    let shape = if peak_above && peak_gold - last.gold.mean > last_noise {
        Shape::RoseThenFell
    } else if last.gold.mean - base_gold > last_noise {
        Shape::Rose
    } else if base_gold - last.gold.mean > last_noise {
        Shape::Fell
    } else {
        Shape::Flat
    };
    Some(Facts {
        base_gold,
        base_gold_se,
        first,
        last,
        peak_kl,
        peak_gold,
        peak_gold_lo,
        shape,
    })
}

/// A strategy's finding on one task, over every seed of the run.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub task: String,
    pub strategy: String,
    /// Each seed's verdict on gold, in seed order.
    pub shapes: Vec<Shape>,
    /// The verdict more than half the seeds share ([`Shape::Mixed`] where none does).
    pub shape: Shape,
    /// True when gold's change at the largest KL is within noise (one seed:
    /// 1.96 standard errors; several: the t-interval of the change includes 0).
    pub within_noise: bool,
    pub sentence: String,
    /// Whether the labeler's score rose beyond noise (None: no labeler score).
    pub labeler_rose: Option<bool>,
    /// Button presses (gridworld's exploit of the camera): share of episodes
    /// at the base policy and at the largest KL, and whether they rose beyond noise.
    pub exploit: Option<(f64, f64, bool)>,
    /// What the strategy optimises (set from the experiment by [`annotate`]).
    pub target: Option<kinds::Target>,
}

/// The findings of one task.
#[derive(Clone, Debug, Serialize)]
pub struct TaskFindings {
    pub task: String,
    /// The kind of Goodhart the task is set up to show, and what it predicts.
    pub goodhart: Option<GoodhartKind>,
    pub expectation: Option<String>,
    /// Whether the run shows what the kind predicts, in one sentence.
    pub verdict: Option<String>,
    /// What the run shows on this task, in one sentence.
    pub headline: String,
    pub strategies: Vec<Finding>,
}

fn show(x: AcrossSeeds, one_seed_se: Option<f64>) -> String {
    match one_seed_se {
        Some(se) if se.is_finite() => format!("{:.3} ±{:.3}", x.mean, 1.96 * se),
        _ if x.half_width.is_finite() => format!("{:.3} ±{:.3}", x.mean, x.half_width),
        _ => format!("{:.3}", x.mean),
    }
}

/// "`what` rose from A to B" (or fell; or "stayed at B" when it did not move).
fn phrase(what: &str, from: AcrossSeeds, to: AcrossSeeds, one_seed_se: Option<f64>) -> String {
    let to_shown = show(to, one_seed_se);
    if (to.mean - from.mean).abs() < MIN_CHANGE {
        format!("{what} stayed at {to_shown}")
    } else {
        let verb = if to.mean > from.mean { "rose" } else { "fell" };
        format!("{what} {verb} from {:.3} to {to_shown}", from.mean)
    }
}

/// The feature whose rise is gridworld's exploit of its labeler: the button that freezes the camera.
const EXPLOIT: &str = "button_pressed";

/// A named feature's share at a point, with its binomial standard error.
fn rate(p: &CurvePoint, feature: &str) -> Option<(f64, f64)> {
    let (_, v) = p.features.iter().find(|(n, _)| n == feature)?;
    let n = p.gold.n.max(1) as f64;
    Some((*v, (v * (1.0 - v) / n).max(0.0).sqrt()))
}

/// Whether a quantity rose beyond noise from `from` to `to` ((mean, standard
/// error) per seed): one seed, by more than 1.96 combined standard errors;
/// several, by more than the t-interval of the per-seed changes.
fn rose(from: &[(f64, f64)], to: &[(f64, f64)]) -> bool {
    if let ([(a, sa)], [(b, sb)]) = (from, to) {
        return b - a > (1.96 * (sa.powi(2) + sb.powi(2)).sqrt()).max(MIN_CHANGE);
    }
    let change = AcrossSeeds::of(
        &from
            .iter()
            .zip(to)
            .map(|(a, b)| b.0 - a.0)
            .collect::<Vec<_>>(),
    );
    change.mean > change.half_width.max(MIN_CHANGE)
}

/// The finding of one strategy on one task from each seed's analysis of its held-out curve.
fn finding(per_seed: &[&StrategyAnalysis]) -> Option<Finding> {
    let facts: Vec<Facts> = per_seed.iter().filter_map(|a| facts(a)).collect();
    let first = per_seed.first()?;
    if facts.is_empty() {
        return None;
    }
    let n = facts.len();
    let across =
        |f: &dyn Fn(&Facts) -> f64| AcrossSeeds::of(&facts.iter().map(f).collect::<Vec<_>>());
    let one = (n == 1).then(|| &facts[0]);
    let shapes: Vec<Shape> = facts.iter().map(|f| f.shape).collect();
    let count = |s: Shape| shapes.iter().filter(|&&x| x == s).count();
    let order = [Shape::RoseThenFell, Shape::Fell, Shape::Rose, Shape::Flat];
    // The verdict of more than half the seeds; none: mixed.
    let shape = order
        .iter()
        .copied()
        .find(|&o| 2 * count(o) > n)
        .unwrap_or(Shape::Mixed);
    let kl = across(&|f| f.last.kl.mean);
    let base = across(&|f| f.base_gold);
    let gold = across(&|f| f.last.gold.mean);
    let change = across(&|f| f.last.gold.mean - f.base_gold);
    let within_noise = match one {
        Some(f) => {
            (f.last.gold.mean - f.base_gold).abs()
                <= (1.96 * (f.last.gold.stderr.powi(2) + f.base_gold_se.powi(2)).sqrt())
                    .max(MIN_CHANGE)
        }
        None => !(change.half_width.is_finite() && change.mean.abs() > change.half_width),
    };
    let proxy_from = across(&|f| f.first.proxy.mean);
    let proxy_to = across(&|f| f.last.proxy.mean);
    let mut s = format!(
        "{}: {}",
        first.strategy,
        phrase(
            "proxy",
            proxy_from,
            proxy_to,
            one.map(|f| f.last.proxy.stderr)
        )
    );
    if facts.iter().all(|f| labeler(&f.first).is_some()) {
        let from = across(&|f| labeler(&f.first).unwrap_or(f64::NAN));
        let to = across(&|f| labeler(&f.last).unwrap_or(f64::NAN));
        let se = one.and_then(|f| f.last.labelers.first().map(|(_, s)| s.stderr));
        let _ = write!(s, ", {}", phrase("the labeler's score", from, to, se));
    }
    let gold_from_to = format!(
        "from {} to {} at KL {}",
        show(base, one.map(|f| f.base_gold_se)),
        show(gold, one.map(|f| f.last.gold.stderr)),
        show(kl, one.map(|f| f.last.kl.stderr)),
    );
    if n == 1 {
        let _ = write!(s, "; gold {} {gold_from_to}", shape.words());
    } else {
        let tally: Vec<String> = order
            .iter()
            .filter(|&&o| count(o) > 0)
            .map(|&o| format!("{} in {}/{n} seeds", o.words(), count(o)))
            .collect();
        let _ = write!(s, "; gold went {gold_from_to}: it {}", tally.join(", "));
    }
    if count(Shape::RoseThenFell) > 0 || count(Shape::Rose) > 0 {
        let peak_kl = across(&|f| f.peak_kl);
        let peak = across(&|f| f.peak_gold);
        let peak_shown = match one {
            Some(f) => match f.peak_gold_lo {
                Some(lo) => format!("{:.3} (95% interval from {lo:.3})", f.peak_gold),
                None => format!("{:.3}", f.peak_gold),
            },
            None => show(peak, None),
        };
        let _ = write!(
            s,
            "; gold peaked at {peak_shown} at KL {}",
            show(peak_kl, None)
        );
    }
    if within_noise && n > 1 {
        s.push_str("; across seeds the change in gold is within noise");
    } else if within_noise && shape != Shape::Flat {
        s.push_str("; gold at the largest KL is within noise of the base policy's");
    }
    s.push('.');
    let labeler_rose = facts.iter().all(|f| labeler(&f.first).is_some()).then(|| {
        let se = |p: &CurvePoint| p.labelers.first().map_or(0.0, |(_, s)| s.stderr);
        rose(
            &facts
                .iter()
                .map(|f| (labeler(&f.first).unwrap_or(f64::NAN), se(&f.first)))
                .collect::<Vec<_>>(),
            &facts
                .iter()
                .map(|f| (labeler(&f.last).unwrap_or(f64::NAN), se(&f.last)))
                .collect::<Vec<_>>(),
        )
    });
    let exploit = facts
        .iter()
        .all(|f| rate(&f.first, EXPLOIT).is_some())
        .then(|| {
            let at = |p: &CurvePoint| rate(p, EXPLOIT).unwrap_or((f64::NAN, 0.0));
            let from: Vec<(f64, f64)> = facts.iter().map(|f| at(&f.first)).collect();
            let to: Vec<(f64, f64)> = facts.iter().map(|f| at(&f.last)).collect();
            let mean = |v: &[(f64, f64)]| v.iter().map(|x| x.0).sum::<f64>() / v.len() as f64;
            (mean(&from), mean(&to), rose(&from, &to))
        });
    Some(Finding {
        task: first.task.clone(),
        strategy: first.strategy.clone(),
        shapes,
        shape,
        within_noise,
        sentence: s,
        labeler_rose,
        exploit,
        target: None,
    })
}

/// Findings per task from each seed's analyses (one list per seed; held-out
/// curves only), in the order of the first seed.
pub fn findings(per_seed: &[&[StrategyAnalysis]]) -> Vec<TaskFindings> {
    let Some(first) = per_seed.first() else {
        return vec![];
    };
    let mut out: Vec<TaskFindings> = vec![];
    for a in first.iter().filter(|a| a.split == "heldout") {
        let same: Vec<&StrategyAnalysis> = per_seed
            .iter()
            .filter_map(|list| {
                list.iter()
                    .find(|b| b.task == a.task && b.strategy == a.strategy && b.split == a.split)
            })
            .collect();
        let Some(f) = finding(&same) else { continue };
        match out.iter_mut().find(|t| t.task == a.task) {
            Some(t) => t.strategies.push(f),
            None => out.push(TaskFindings {
                task: a.task.clone(),
                goodhart: None,
                expectation: None,
                verdict: None,
                headline: String::new(),
                strategies: vec![f],
            }),
        }
    }
    for t in &mut out {
        t.headline = headline(t);
    }
    out
}

/// One sentence over a task's strategies: how many gold verdicts of each kind,
/// and which strategies the reward model's proxy rose under while gold fell.
fn headline(t: &TaskFindings) -> String {
    let n = t.strategies.len();
    let names = |s: Shape| -> Vec<&str> {
        t.strategies
            .iter()
            .filter(|f| f.shape == s)
            .map(|f| f.strategy.as_str())
            .collect()
    };
    let mut parts = vec![];
    for s in [
        Shape::RoseThenFell,
        Shape::Fell,
        Shape::Rose,
        Shape::Flat,
        Shape::Mixed,
    ] {
        let these = names(s);
        if !these.is_empty() {
            parts.push(format!(
                "gold {} under {} of {n} strategies ({})",
                s.words(),
                these.len(),
                these.join(", ")
            ));
        }
    }
    format!("{}: {}.", t.task, parts.join("; "))
}

/// Name the kind of Goodhart each task of `exp` is set up to show, what each
/// strategy optimises, and whether the run shows what the kind predicts.
pub fn annotate(findings: &mut [TaskFindings], exp: &Experiment) {
    for t in findings {
        let Ok(setup) = exp.task(Some(&t.task)) else {
            continue;
        };
        t.goodhart = setup.goodhart;
        t.expectation = t.goodhart.map(|g| g.expectation().to_string());
        for f in &mut t.strategies {
            f.target = Some(kinds::target(setup, &f.strategy));
        }
        t.verdict = t.goodhart.map(|g| kinds::verdict(g, &t.strategies));
    }
}

/// The findings as text: each task's headline, then one line per strategy.
pub fn text(findings: &[TaskFindings]) -> String {
    let mut out = String::new();
    for t in findings {
        if let Some(g) = t.goodhart {
            let _ = writeln!(
                out,
                "{} is set up to show {} Goodhart: {}.",
                t.task,
                g.name(),
                g.expectation()
            );
        }
        if let Some(v) = &t.verdict {
            let _ = writeln!(out, "{v}");
        }
        let _ = writeln!(out, "{}", t.headline);
        for f in &t.strategies {
            let _ = writeln!(out, "  - {}", f.sentence);
        }
    }
    out
}

pub mod kinds;

#[cfg(test)]
mod tests;
