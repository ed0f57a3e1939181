//! From a run's stage records to what people read: the curves, the Gao et al.
//! fits, the Goodhart decomposition, gold at matched KL, and the files
//! `metrics.jsonl`, `curves.csv` and `fits.json`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::experiment::record::{BaseStats, MeanSd, Record, TaskRecords};
use crate::measure::bootstrap::{resample_curve, Interval, RESAMPLES};
use crate::measure::fit::{fit, predict_half, Fit, Form, HalfPrediction};
use crate::rng;
use crate::score::{CurvePoint, PerPrompt};

/// KL budgets (nats) at which strategies are compared.
pub const KL_BUDGETS: [f64; 5] = [0.5, 1.0, 2.0, 4.0, 8.0];

/// One strategy's curve on one split, analysed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StrategyAnalysis {
    pub task: String,
    pub strategy: String,
    pub split: String,
    /// "pool" (best-of-n, conditioning, quantiliser) or "policy" (RL, DPO).
    pub family: String,
    /// Points in order of KL.
    pub points: Vec<CurvePoint>,
    /// Gold of the point the gains are measured from (the base policy).
    pub reference_gold: f64,
    pub fit: Option<Fit>,
    pub half: Option<HalfPrediction>,
    /// The point with the highest observed gold: (KL, gold).
    pub observed_peak: (f64, f64),
    /// Best gold among points with KL at most each of [`KL_BUDGETS`].
    pub gold_within: Vec<(f64, Option<f64>)>,
    /// 95% bootstrap intervals over prompts of the fit, the peaks, the budgets and each point.
    pub intervals: Option<Intervals>,
    /// Per point: z(proxy) - z(labeler) (the reward model's error) and z(labeler) - z(gold) (the labeler's), in base-policy standard deviations.
    pub gaps: Vec<Gap>,
    /// Features at the highest-KL point against the base policy, the most moved first.
    pub drift: Vec<Drift>,
}

/// Bootstrap intervals of a curve's derived figures (95%, over prompts, [`RESAMPLES`] resamples).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Intervals {
    pub resamples: usize,
    pub alpha: Option<Interval>,
    pub beta: Option<Interval>,
    /// Share of resamples whose fit turns over (has a peak at d > 0).
    pub peak_share: f64,
    /// Over the resamples that turn over: the predicted peak's KL and gold gain.
    pub peak_kl: Option<Interval>,
    pub peak_gain: Option<Interval>,
    /// The highest-gold trusted point: the max over noisy points is biased
    /// upward, and its interval says by how much it can move.
    pub observed_peak_kl: Option<Interval>,
    pub observed_peak_gold: Option<Interval>,
    pub gold_within: Vec<(f64, Option<Interval>)>,
    /// Per point, in the order of [`StrategyAnalysis::points`].
    pub points: Vec<PointInterval>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PointInterval {
    pub kl: Option<Interval>,
    pub gold: Option<Interval>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Gap {
    pub kl: f64,
    pub proxy_minus_labeler: f64,
    pub labeler_minus_gold: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Drift {
    pub feature: String,
    pub base: f64,
    pub now: f64,
    /// (now - base) / base standard deviation (0.05 floor).
    pub z: f64,
}

impl StrategyAnalysis {
    /// The trusted point of largest KL (a flagged point feeds nothing but its own row).
    pub fn end(&self) -> &CurvePoint {
        trusted_end(&self.points)
            .or(self.points.first())
            .expect("a curve has points")
    }
}

/// The trusted point of largest KL among `points`.
fn trusted_end(points: &[CurvePoint]) -> Option<&CurvePoint> {
    points
        .iter()
        .filter(|p| p.flag.is_none())
        .max_by(|a, b| a.kl.mean.total_cmp(&b.kl.mean))
}

fn z(x: f64, MeanSd { mean, sd }: MeanSd) -> f64 {
    (x - mean) / sd.max(1e-6)
}

/// Whether `p` is a curve's own measurement of the unoptimised policy: best-of-n
/// at n = 1, or a trained policy's first checkpoint.
pub(crate) fn is_reference(p: &CurvePoint) -> bool {
    match p.knob.as_str() {
        "n" => p.value == 1.0,
        "beta" | "q" => false,
        _ => p.value == 0.0,
    }
}

/// The task's one measurement of its base policy on `split`, which every curve
/// starts from: the pool's uniform point (every base sample, on the prompts
/// every pool strategy is measured on), else the first trained policy's first
/// checkpoint. Measured once, it makes every contrast with the base paired.
fn shared_base(records: &TaskRecords, split: &str) -> Option<CurvePoint> {
    let all = || records.records.iter().flat_map(|(_, r)| r.points());
    all()
        .find(|p| p.strategy == "base" && p.split == split)
        .or_else(|| all().find(|p| p.split == split && is_reference(p)))
        .cloned()
}

/// Analyse every strategy of a task's records, on each split.
pub fn analyse(records: &TaskRecords) -> Vec<StrategyAnalysis> {
    let base = records.records.iter().find_map(|(_, r)| match r {
        Record::Pool { base, .. } => Some(base.clone()),
        _ => None,
    });
    let base = base.unwrap_or_default();
    let mut out = vec![];
    for (_, record) in &records.records {
        let points = record.points();
        // A red team's best-of-n curves reweight the pool; its PPO runs are trained policies.
        let family = |strategy: &str| match record {
            Record::Pool { .. } => "pool",
            Record::RedTeam { .. } if strategy.starts_with("bon-") => "pool",
            _ => "policy",
        };
        let mut groups: Vec<(String, String)> = vec![];
        for p in points.iter().filter(|p| p.strategy != "base") {
            let key = (p.strategy.clone(), p.split.clone());
            if !groups.contains(&key) {
                groups.push(key);
            }
        }
        for (strategy, split) in groups {
            let own: Vec<&CurvePoint> = points
                .iter()
                .filter(|p| p.strategy == strategy && p.split == split)
                .collect();
            // The curve's own reference point (if any) gives way to the task's
            // shared base measurement, under the reference's knob and value.
            let (knob, value) = own
                .iter()
                .find(|p| is_reference(p))
                .map_or(("n".to_string(), 1.0), |p| (p.knob.clone(), p.value));
            let mut pts: Vec<CurvePoint> = own
                .into_iter()
                .filter(|p| !is_reference(p))
                .cloned()
                .collect();
            if let Some(mut b) = shared_base(records, &split) {
                b.knob = knob;
                b.value = value;
                b.checkpoint = None;
                pts.push(b);
            }
            for p in pts.iter_mut() {
                p.strategy = strategy.clone();
                p.task = records.task.clone();
            }
            pts.sort_by(|a, b| a.kl.mean.total_cmp(&b.kl.mean));
            out.push(analyse_curve(
                &records.task,
                &strategy,
                &split,
                family(&strategy),
                pts,
                &base,
            ));
        }
    }
    out
}

/// What is derived from a curve's KL and gold means: the same function gives
/// the estimate and every bootstrap resample of it.
struct Derived {
    fit: Option<Fit>,
    half: Option<HalfPrediction>,
    /// (KL, gold) of the trusted point with the highest gold.
    observed_peak: (f64, f64),
    gold_within: Vec<(f64, Option<f64>)>,
}

/// Fits, peak and budgets over the trusted points (`trusted[i]`), gains measured from point `reference`.
fn derive(form: Form, kl: &[f64], gold: &[f64], reference: usize, trusted: &[bool]) -> Derived {
    let keep: Vec<usize> = (0..kl.len()).filter(|&i| trusted[i]).collect();
    // The reference (d = 0, gain 0 by construction) carries no information about
    // the curve's shape: it is not a fitted point.
    let fitted: Vec<usize> = keep.iter().copied().filter(|&i| kl[i] > 1e-9).collect();
    let ds: Vec<f64> = fitted.iter().map(|&i| kl[i].sqrt()).collect();
    let gains: Vec<f64> = fitted.iter().map(|&i| gold[i] - gold[reference]).collect();
    let peak = keep
        .iter()
        .copied()
        .max_by(|&a, &b| gold[a].total_cmp(&gold[b]))
        .unwrap_or(reference);
    let gold_within = KL_BUDGETS
        .iter()
        .map(|&b| {
            (
                b,
                keep.iter()
                    .filter(|&&i| kl[i] <= b)
                    .map(|&i| gold[i])
                    .max_by(f64::total_cmp),
            )
        })
        .collect();
    Derived {
        fit: fit(form, &ds, &gains),
        half: predict_half(form, &ds, &gains),
        observed_peak: (kl[peak], gold[peak]),
        gold_within,
    }
}

/// Bootstrap intervals (over prompts) of everything [`derive`] gives, and of each point.
fn intervals(
    points: &[CurvePoint],
    form: Form,
    reference: usize,
    trusted: &[bool],
    label: &str,
) -> Option<Intervals> {
    let per_prompt: Vec<&PerPrompt> = points
        .iter()
        .map(|p| p.per_prompt.as_ref())
        .collect::<Option<_>>()?;
    let mut rng = rng::stream(0, &format!("bootstrap/{label}"));
    let draws = resample_curve(&per_prompt, RESAMPLES, &mut rng)?;
    let derived: Vec<Derived> = draws
        .iter()
        .map(|r| derive(form, &r.kl, &r.gold, reference, trusted))
        .collect();
    let of = |f: &dyn Fn(&Derived) -> Option<f64>| -> Option<Interval> {
        Interval::of(&derived.iter().filter_map(f).collect::<Vec<_>>())
    };
    let turned = derived
        .iter()
        .filter(|d| d.fit.as_ref().is_some_and(|f| f.peak_d.is_some()))
        .count();
    Some(Intervals {
        resamples: draws.len(),
        alpha: of(&|d| d.fit.as_ref().map(|f| f.alpha)),
        beta: of(&|d| d.fit.as_ref().map(|f| f.beta)),
        peak_share: turned as f64 / draws.len() as f64,
        peak_kl: of(&|d| d.fit.as_ref()?.peak_d.map(|x| x * x)),
        peak_gain: of(&|d| d.fit.as_ref()?.peak_gain),
        observed_peak_kl: of(&|d| Some(d.observed_peak.0)),
        observed_peak_gold: of(&|d| Some(d.observed_peak.1)),
        gold_within: KL_BUDGETS
            .iter()
            .enumerate()
            .map(|(b, &budget)| (budget, of(&|d| d.gold_within[b].1)))
            .collect(),
        points: (0..points.len())
            .map(|i| PointInterval {
                kl: Interval::of(&draws.iter().map(|r| r.kl[i]).collect::<Vec<_>>()),
                gold: Interval::of(&draws.iter().map(|r| r.gold[i]).collect::<Vec<_>>()),
            })
            .collect(),
    })
}

fn analyse_curve(
    task: &str,
    strategy: &str,
    split: &str,
    family: &str,
    points: Vec<CurvePoint>,
    base: &BaseStats,
) -> StrategyAnalysis {
    // The reference is the task's shared base measurement (see [`shared_base`]).
    let reference = points.iter().position(is_reference).unwrap_or(0);
    let reference_gold = points[reference].gold.mean;
    let form = if family == "pool" {
        Form::Bon
    } else {
        Form::Rl
    };
    // Flagged points are shown but never fitted or compared.
    let trusted: Vec<bool> = points.iter().map(|p| p.flag.is_none()).collect();
    let kl: Vec<f64> = points.iter().map(|p| p.kl.mean).collect();
    let gold: Vec<f64> = points.iter().map(|p| p.gold.mean).collect();
    let derived = derive(form, &kl, &gold, reference, &trusted);
    let intervals = intervals(
        &points,
        form,
        reference,
        &trusted,
        &format!("{task}/{strategy}/{split}"),
    );
    let labeler_of = |p: &CurvePoint| {
        p.labelers
            .iter()
            .find(|(n, _)| *n == base.labeler.name)
            .map_or(f64::NAN, |(_, s)| s.mean)
    };
    let gaps = points
        .iter()
        .map(|p| {
            let (zp, zl, zg) = (
                z(p.proxy.mean, base.proxy),
                z(
                    labeler_of(p),
                    MeanSd {
                        mean: base.labeler.mean,
                        sd: base.labeler.sd,
                    },
                ),
                z(p.gold.mean, base.gold),
            );
            Gap {
                kl: p.kl.mean,
                proxy_minus_labeler: zp - zl,
                labeler_minus_gold: zl - zg,
            }
        })
        .collect();
    let last = trusted_end(&points).unwrap_or(&points[reference]);
    let mut drift: Vec<Drift> = last
        .features
        .iter()
        .filter_map(|(name, now)| {
            let f = base.features.iter().find(|f| &f.name == name)?;
            Some(Drift {
                feature: name.clone(),
                base: f.mean,
                now: *now,
                z: (now - f.mean) / f.sd.max(0.05),
            })
        })
        .collect();
    drift.sort_by(|a, b| {
        b.z.abs()
            .total_cmp(&a.z.abs())
            .then(a.feature.cmp(&b.feature))
    });
    StrategyAnalysis {
        task: task.to_string(),
        strategy: strategy.to_string(),
        split: split.to_string(),
        family: family.to_string(),
        reference_gold,
        fit: derived.fit,
        half: derived.half,
        observed_peak: derived.observed_peak,
        gold_within: derived.gold_within,
        intervals,
        gaps,
        drift,
        points,
    }
}

/// The one-screen summary printed at the end of a run.
pub fn summary(tasks: &[TaskRecords], analyses: &[StrategyAnalysis]) -> String {
    let mut out = String::new();
    for t in tasks {
        writeln!(out, "{}", t.task).unwrap();
        for (_, r) in &t.records {
            match r {
                Record::RewardModel { report } => writeln!(
                    out,
                    "  reward model: held-out accuracy {:.3} vs the labeler{}{}, {:.3} vs gold",
                    report.accuracy_labeler.mean,
                    report
                        .noise_ceiling
                        .as_ref()
                        .map(|c| format!(" (noise ceiling {:.3})", c.mean))
                        .unwrap_or_default(),
                    report
                        .accuracy_likelier
                        .as_ref()
                        .map(|l| format!(", {:.3} vs its likelier answer", l.mean))
                        .unwrap_or_default(),
                    report.accuracy_gold.mean
                )
                .unwrap(),
                Record::Pool { range, .. } => {
                    for c in range {
                        writeln!(out, "  {}", super::range::sentence(c)).unwrap();
                    }
                }
                Record::Critic { rounds } => {
                    for r in rounds {
                        let o = &r.overall;
                        writeln!(
                            out,
                            "  critic round {}: points at the wrong step of {} of {} flawed held-out answers; precision {}, recall {}",
                            r.round,
                            super::judges::share(&o.hit),
                            o.flawed,
                            super::judges::share(&o.precision),
                            super::judges::share(&o.recall)
                        )
                        .unwrap();
                    }
                }
                Record::BaseEval { heldout, .. } => {
                    if let Some((name, f)) = heldout.fidelity.first() {
                        writeln!(
                            out,
                            "  base policy: gold {:.3}; labeler {name} correlates {:.2} with gold",
                            heldout.gold.mean, f.correlation
                        )
                        .unwrap();
                    }
                }
                _ => {}
            }
        }
        writeln!(
            out,
            "  {:<18} {:>7} {:>8} {:>8} {:>15} {:>8} {:>26} {:>10}",
            "strategy",
            "max KL",
            "proxy",
            "labeler",
            "gold ±95%",
            "win",
            "peak gold [95% CI] @KL",
            "shift gold"
        )
        .unwrap();
        for a in analyses
            .iter()
            .filter(|a| a.task == t.task && a.split == "heldout")
        {
            let last = a.end();
            let labeler = last.labelers.first().map_or(f64::NAN, |(_, s)| s.mean);
            let shift = analyses
                .iter()
                .find(|b| b.task == a.task && b.strategy == a.strategy && b.split == "shift")
                .map(|b| b.end())
                .map_or("-".to_string(), |p| format!("{:.3}", p.gold.mean));
            let peak_ci = a
                .intervals
                .as_ref()
                .and_then(|iv| iv.observed_peak_gold)
                .map_or(String::new(), |c| format!("[{:.3}, {:.3}]", c.lo, c.hi));
            writeln!(
                out,
                "  {:<18} {:>7.2} {:>8.3} {:>8.3} {:>8.3} ±{:<5.3} {:>8.3} {:>7.3} {:>16} @{:<5.2} {:>10}",
                a.strategy,
                last.kl.mean,
                last.proxy.mean,
                labeler,
                last.gold.mean,
                1.96 * last.gold.stderr,
                last.gold_win_rate.map_or(f64::NAN, |w| w.mean),
                a.observed_peak.1,
                peak_ci,
                a.observed_peak.0,
                shift
            )
            .unwrap();
        }
        let flagged: Vec<String> = analyses
            .iter()
            .filter(|a| a.task == t.task && a.split == "heldout")
            .flat_map(|a| {
                a.points.iter().filter_map(move |p| {
                    p.flag
                        .as_ref()
                        .map(|f| format!("{} {} = {}: {f}", a.strategy, p.knob, p.value))
                })
            })
            .collect();
        // Fitted peaks: a peak beyond the measured KL is an extrapolation, not a finding.
        let peaks: Vec<String> = analyses
            .iter()
            .filter(|a| a.task == t.task && a.split == "heldout")
            .filter_map(|a| {
                let f = a.fit.as_ref()?;
                let d = f.peak_d?;
                Some(format!(
                    "{} fit ({}) peaks at KL {:.2}{}",
                    a.strategy,
                    f.form.formula(),
                    d * d,
                    if f.peak_extrapolated {
                        " (beyond the measured KL: an extrapolation)"
                    } else {
                        ""
                    }
                ))
            })
            .collect();
        if !peaks.is_empty() {
            writeln!(out, "  fitted peaks: {}", peaks.join("; ")).unwrap();
        }
        let notes = t.records.iter().flat_map(|(_, r)| match r {
            Record::Pool { notes, .. } => notes.clone(),
            _ => vec![],
        });
        for note in flagged
            .iter()
            .map(|f| format!("left out of fits and peaks: {f}"))
            .chain(notes)
        {
            writeln!(out, "  note: {note}").unwrap();
        }
    }
    out.push_str(LEGEND);
    out
}

/// What the columns of [`summary`]'s tables mean.
const LEGEND: &str = "columns: max KL = the strategy's largest KL from the base policy (nats); \
proxy, labeler, gold = their means there over held-out prompts (gold with its 95% interval); \
win = how often a completion there beats a base-policy sample of the same prompt on gold (ties half); \
peak gold = the highest gold measured on the curve, its 95% interval and KL; \
shift gold = gold at the largest KL on the shifted prompts (- where the task has none)\n";

#[cfg(test)]
mod tests;
