//! The view of one run's report: every figure the template shows, formatted,
//! and every plot drawn, per task.

use serde::Serialize;

use super::formal::{review_view, world_model_views, ReviewView, WorldModelView};
use super::plots::{overview, plots, training_plots};
use super::{colour_of, colours};
use crate::analysis::curves::{StrategyAnalysis, KL_BUDGETS};
use crate::analysis::findings::TaskFindings;
use crate::error::Result;
use crate::experiment::record::{Record, TaskRecords};
use crate::experiment::Experiment;
use crate::measure::bootstrap::Interval;
use crate::measure::PolicySummary;
use crate::stats::Stat;
use crate::task::Task;

#[derive(Serialize)]
pub(super) struct RunPage {
    name: String,
    seed: u64,
    budgets: Vec<String>,
    tasks: Vec<TaskView>,
    experiment: String,
    /// What the run found, generated from its numbers.
    findings: Vec<TaskFindings>,
    /// Gold against KL, one small panel per task.
    pub(super) overview: Vec<String>,
}

#[derive(Serialize)]
struct TaskView {
    name: String,
    /// Sentences on the base policy, the labels and the reward model.
    setup: Vec<String>,
    base_eval: Option<BaseEvalView>,
    plots: Vec<String>,
    matched: Vec<MatchedRow>,
    flagged: Vec<String>,
    /// The held-out split's, then the shifted split's when there is one.
    drifts: Vec<DriftView>,
    training_plots: Vec<String>,
    examples: Vec<ExampleGroup>,
    review: Option<ReviewView>,
    world_models: Vec<WorldModelView>,
}

#[derive(Serialize)]
struct BaseEvalView {
    labelers: Vec<String>,
    rows: Vec<BaseEvalRow>,
}

#[derive(Serialize)]
struct BaseEvalRow {
    split: String,
    gold: String,
    labelers: Vec<String>,
    accuracy: String,
    agreement: String,
    correlation: String,
}

/// One strategy compared at matched KL, with its fit and peaks.
#[derive(Serialize)]
struct MatchedRow {
    strategy: String,
    colour: String,
    within: Vec<String>,
    observed_peak: String,
    fit: Option<FitCells>,
    half: String,
}

#[derive(Serialize)]
struct FitCells {
    formula: String,
    alpha: String,
    beta: String,
    r2: String,
    peak: String,
}

#[derive(Serialize, Default)]
struct DriftView {
    split: &'static str,
    features: Vec<String>,
    base: Vec<String>,
    rows: Vec<DriftRow>,
}

#[derive(Serialize)]
struct DriftRow {
    strategy: String,
    kl: String,
    cells: Vec<Option<DriftCell>>,
    moved_most: String,
}

#[derive(Serialize)]
struct DriftCell {
    value: String,
    z: String,
    rgb: &'static str,
    shade: String,
}

#[derive(Serialize)]
struct ExampleGroup {
    strategy: String,
    examples: Vec<ExampleView>,
}

#[derive(Serialize)]
struct ExampleView {
    label: &'static str,
    kl: String,
    index: usize,
    gold: String,
    proxy: String,
    labeler: String,
    prompt: String,
    completion: String,
    svg: Option<String>,
}

pub(super) fn run_page(
    exp: &Experiment,
    tasks: &[TaskRecords],
    analyses: &[StrategyAnalysis],
    findings: Vec<TaskFindings>,
) -> Result<RunPage> {
    let colours = colours(exp);
    let tasks = tasks
        .iter()
        .map(|t| {
            let setup = exp.task(Some(&t.task))?;
            let task = crate::reward::build_task(&setup.task_config(), exp.seed)?;
            let mine: Vec<&StrategyAnalysis> =
                analyses.iter().filter(|a| a.task == t.task).collect();
            let mut view = task_view(t, &mine, &colours, task.as_ref());
            view.review = review_view(t, &setup.strategies.review.candidates);
            Ok(view)
        })
        .collect::<Result<_>>()?;
    let per_task: Vec<_> = findings
        .iter()
        .map(|f| {
            let heldout: Vec<&StrategyAnalysis> = analyses
                .iter()
                .filter(|a| a.task == f.task && a.split == "heldout")
                .collect();
            (f.task.clone(), f.goodhart, heldout)
        })
        .collect();
    Ok(RunPage {
        overview: overview(&per_task, &colours),
        findings,
        name: exp.name.clone(),
        seed: exp.seed,
        budgets: KL_BUDGETS.iter().map(|b| b.to_string()).collect(),
        tasks,
        experiment: exp.to_toml(),
    })
}

fn task_view(
    t: &TaskRecords,
    analyses: &[&StrategyAnalysis],
    colours: &[(String, String)],
    task: &dyn Task,
) -> TaskView {
    let heldout: Vec<&StrategyAnalysis> = analyses
        .iter()
        .copied()
        .filter(|a| a.split == "heldout")
        .collect();
    let shift: Vec<&StrategyAnalysis> = analyses
        .iter()
        .copied()
        .filter(|a| a.split == "shift")
        .collect();
    TaskView {
        name: t.task.clone(),
        setup: setup_sentences(t),
        base_eval: base_eval_view(t),
        plots: plots(&heldout, &shift, colours),
        matched: heldout.iter().map(|a| matched_row(a, colours)).collect(),
        flagged: flagged(t, &heldout),
        drifts: std::iter::once(drift_view(&heldout))
            .chain((!shift.is_empty()).then(|| shift_drift_view(&shift)))
            .collect(),
        training_plots: training_plots(t, colours),
        examples: heldout.iter().map(|a| examples(a, task)).collect(),
        review: None,
        world_models: world_model_views(t),
    }
}

fn ci(c: Option<Interval>) -> String {
    c.map_or(String::new(), |c| format!(" [{:.3}, {:.3}]", c.lo, c.hi))
}

fn matched_row(a: &StrategyAnalysis, colours: &[(String, String)]) -> MatchedRow {
    let iv = a.intervals.as_ref();
    MatchedRow {
        strategy: a.strategy.clone(),
        colour: colour_of(colours, &a.strategy).to_string(),
        within: a
            .gold_within
            .iter()
            .enumerate()
            .map(|(b, (_, g))| {
                g.map_or("–".to_string(), |g| {
                    format!("{g:.3}{}", ci(iv.and_then(|iv| iv.gold_within.get(b)?.1)))
                })
            })
            .collect(),
        observed_peak: format!(
            "{:.3}{} ({:.2})",
            a.observed_peak.1,
            ci(iv.and_then(|iv| iv.observed_peak_gold)),
            a.observed_peak.0
        ),
        fit: a.fit.as_ref().map(|f| FitCells {
            formula: f.form.formula().to_string(),
            alpha: format!("{:.3}{}", f.alpha, ci(iv.and_then(|iv| iv.alpha))),
            beta: format!("{:.3}{}", f.beta, ci(iv.and_then(|iv| iv.beta))),
            r2: format!("{:.2}", f.r2),
            peak: format!(
                "{}{}",
                match (f.peak_d, f.peak_gain) {
                    // A peak beyond the measured KL is an extrapolation, not a prediction.
                    (Some(d), Some(_)) if f.peak_extrapolated => {
                        format!("beyond the sweep (KL {:.1})", d * d)
                    }
                    (Some(d), Some(g)) => format!("{:.3} ({:.2})", a.reference_gold + g, d * d),
                    _ => "no peak".into(),
                },
                iv.map_or(String::new(), |iv| format!(
                    "; {:.0}%",
                    100.0 * iv.peak_share
                ))
            ),
        }),
        half: a.half.as_ref().map_or("–".to_string(), |p| {
            format!("{:.3} ({:.2})", p.rmse, p.r2)
        }),
    }
}

fn flagged(t: &TaskRecords, heldout: &[&StrategyAnalysis]) -> Vec<String> {
    heldout
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
        .collect()
}

fn drift_view(heldout: &[&StrategyAnalysis]) -> DriftView {
    let Some(first) = heldout.first() else {
        return DriftView::default();
    };
    let mut features: Vec<String> = first.drift.iter().map(|d| d.feature.clone()).collect();
    features.sort();
    let base = features
        .iter()
        .map(|f| {
            let d = first
                .drift
                .iter()
                .find(|d| &d.feature == f)
                .expect("feature");
            format!("{:.3}", d.base)
        })
        .collect();
    let rows = heldout
        .iter()
        .map(|a| DriftRow {
            strategy: a.strategy.clone(),
            kl: format!("{:.2}", a.end().kl.mean),
            cells: features
                .iter()
                .map(|f| {
                    a.drift.iter().find(|d| &d.feature == f).map(|d| DriftCell {
                        value: format!("{:.3}", d.now),
                        z: format!("{:+.2} sd", d.z),
                        rgb: if d.z > 0.0 { "0,114,178" } else { "213,94,0" },
                        shade: format!("{:.2}", (d.z.abs() / 3.0).min(1.0) * 0.5),
                    })
                })
                .collect(),
            moved_most: a
                .drift
                .iter()
                .take(2)
                .map(|d| format!("{} ({:+.1} sd)", d.feature, d.z))
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    DriftView {
        split: "heldout",
        features,
        base,
        rows,
    }
}

/// Features on the shifted split at each strategy's largest KL against its own
/// origin (its KL-0 point: the base policy sampled on the shifted prompts);
/// the title of each cell gives the change.
fn shift_drift_view(shift: &[&StrategyAnalysis]) -> DriftView {
    let origin = |a: &StrategyAnalysis| {
        a.points
            .first()
            .map(|p| p.features.clone())
            .unwrap_or_default()
    };
    let Some(first) = shift.first() else {
        return DriftView::default();
    };
    let first_origin = origin(first);
    let features: Vec<String> = first_origin.iter().map(|(n, _)| n.clone()).collect();
    let value = |fs: &[(String, f64)], f: &str| fs.iter().find(|(n, _)| n == f).map(|&(_, v)| v);
    let base = features
        .iter()
        .map(|f| value(&first_origin, f).map_or(String::new(), |v| format!("{v:.3}")))
        .collect();
    let rows = shift
        .iter()
        .map(|a| {
            let (from, last) = (origin(a), Some(a.end()));
            let changes: Vec<(String, f64)> = features
                .iter()
                .filter_map(|f| Some((f.clone(), value(&last?.features, f)? - value(&from, f)?)))
                .collect();
            let mut most = changes.clone();
            most.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
            DriftRow {
                strategy: a.strategy.clone(),
                kl: format!("{:.2}", last.map_or(0.0, |p| p.kl.mean)),
                cells: features
                    .iter()
                    .map(|f| {
                        let now = value(&last?.features, f)?;
                        let d = now - value(&from, f)?;
                        Some(DriftCell {
                            value: format!("{now:.3}"),
                            z: format!("{d:+.3} from its origin"),
                            rgb: if d > 0.0 { "0,114,178" } else { "213,94,0" },
                            shade: format!("{:.2}", (d.abs() / 0.3).min(1.0) * 0.5),
                        })
                    })
                    .collect(),
                moved_most: most
                    .iter()
                    .take(2)
                    .map(|(n, d)| format!("{n} ({d:+.3})"))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        })
        .collect();
    DriftView {
        split: "shift",
        features,
        base,
        rows,
    }
}

/// Completions at the base policy, the gold peak and the largest KL.
fn examples(a: &StrategyAnalysis, task: &dyn Task) -> ExampleGroup {
    let peak = a
        .points
        .iter()
        .max_by(|x, y| x.gold.mean.total_cmp(&y.gold.mean))
        .expect("points");
    let picks = [
        ("base policy", &a.points[0]),
        ("gold peak", peak),
        ("largest KL", a.end()),
    ];
    let signed = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:+.2}"));
    ExampleGroup {
        strategy: a.strategy.clone(),
        examples: picks
            .into_iter()
            .flat_map(|(label, p)| {
                p.examples
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| ExampleView {
                        label,
                        kl: format!("{:.2}", p.kl.mean),
                        index: i + 1,
                        gold: format!("{:+.2}", e.gold),
                        proxy: signed(e.proxy),
                        labeler: signed(e.labeler),
                        prompt: e.prompt.trim_end().to_string(),
                        completion: e.completion.clone(),
                        svg: task.render_svg(&e.prompt, &e.completion),
                    })
            })
            .collect(),
    }
}

fn setup_sentences(t: &TaskRecords) -> Vec<String> {
    t.records
        .iter()
        .filter_map(|(_, r)| match r {
            Record::Base { source, sft } => Some(match sft {
                Some(s) => format!(
                    "Base policy: trained by SFT, held-out loss {:.3} nats/token (a unigram model: {:.3}).",
                    s.final_heldout_loss().unwrap_or(f64::NAN),
                    s.unigram_loss
                ),
                None => format!("Base policy: loaded from {source}."),
            }),
            Record::Labels { answers, pairs } => {
                let parts: Vec<String> = answers
                    .iter()
                    .map(|l| {
                        let c = &l.counts;
                        format!(
                            "{} (A {} / B {} / tie {} / can't tell {})",
                            l.labeler, c.a, c.b, c.tie, c.cant_tell
                        )
                    })
                    .collect();
                Some(format!(
                    "Labels: {pairs} pairs of base-policy completions, compared by {}.",
                    parts.join(", ")
                ))
            }
            Record::Pool { range, .. } if !range.is_empty() => Some(
                range
                    .iter()
                    .map(|c| {
                        let s = crate::analysis::range::sentence(c);
                        format!("{}{}.", s[..1].to_uppercase(), &s[1..])
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Record::Critic { rounds } => Some(
                rounds
                    .iter()
                    .map(crate::analysis::judges::critic_sentence)
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Record::RewardModel { report } => Some(format!(
                "Reward model: held-out accuracy {:.3} ± {:.3} against the labeler's own labels{}{}, {:.3} ± {:.3} against gold.",
                report.accuracy_labeler.mean,
                report.accuracy_labeler.stderr,
                report
                    .noise_ceiling
                    .as_ref()
                    .map(|c| format!(
                        " (noise ceiling {:.3}: the labeler's own odds of its likelier answer)",
                        c.mean
                    ))
                    .unwrap_or_default(),
                report
                    .accuracy_likelier
                    .as_ref()
                    .map(|l| format!(
                        ", {:.3} ± {:.3} against its likelier answer (the label noise aside)",
                        l.mean,
                        l.stderr
                    ))
                    .unwrap_or_default(),
                report.accuracy_gold.mean,
                report.accuracy_gold.stderr
            )),
            _ => None,
        })
        .collect()
}

fn base_eval_view(t: &TaskRecords) -> Option<BaseEvalView> {
    let (heldout, shift) = t.records.iter().find_map(|(_, r)| match r {
        Record::BaseEval { heldout, shift } => Some((heldout, shift)),
        _ => None,
    })?;
    let by = |v: &[(u32, Stat)]| {
        v.iter()
            .map(|(d, s)| format!("{d}: {:.2}", s.mean))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let row = |s: &PolicySummary| {
        let fid = s.fidelity.first().map(|(_, f)| f);
        BaseEvalRow {
            split: s.split.name().to_string(),
            gold: format!("{:.3} ± {:.3}", s.gold.mean, s.gold.stderr),
            labelers: s
                .labelers
                .iter()
                .map(|(_, st)| format!("{:.3}", st.mean))
                .collect(),
            accuracy: fid.map_or(String::new(), |f| by(&f.accuracy)),
            agreement: fid.map_or(String::new(), |f| by(&f.agreement)),
            correlation: fid.map_or(String::new(), |f| format!("{:.2}", f.correlation)),
        }
    };
    Some(BaseEvalView {
        labelers: heldout.labelers.iter().map(|(n, _)| n.clone()).collect(),
        rows: std::iter::once(heldout)
            .chain(shift.as_ref())
            .map(row)
            .collect(),
    })
}
