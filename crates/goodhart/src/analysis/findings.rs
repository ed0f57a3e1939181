//! What a run found, in sentences generated from its numbers (never written
//! by hand), each resting on a paired test (`crate::measure::paired`).
//!
//! Per strategy (held-out curve, points trusted in every seed, the task's one
//! base measurement first): gold, the proxy, the labeler's score, the exploit
//! and the formal goal at the largest KL against the base, each a paired
//! difference over prompts (stratified by seed) with its 95% interval; and
//! whether gold turned: some point above both the base and the end, tested over
//! every candidate point at once (max-T), both conditions at once. The shape:
//! rose, then fell (the turn's p <= 0.05); else rose or fell (the end's
//! interval clear of 0); else "cannot tell", with the smallest change this run
//! detects (80% power). With several seeds, each seed's own shape is counted
//! beside the verdict over all of them. What each kind of Goodhart predicts,
//! and the test that decides it, is in [`kinds`]; the error rates of these
//! rules are measured by simulation in `crate::experiment::validate`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::curves::StrategyAnalysis;
use crate::experiment::config::{Experiment, GoodhartKind};
use crate::experiment::record::TaskRecords;
use crate::measure::paired::Difference;

pub mod curves;
pub mod debate;
pub mod kinds;
pub mod red_team;
pub mod rrm;
pub mod seeking;
pub mod validate;
mod written;

pub use written::{
    markdown, read, summary_markdown, text, verdicts_markdown, write, FINDINGS_FILE,
};

use curves::{Curve, Tests};

/// The feature whose rise is gridworld's exploit of its labeler: the button that freezes the camera.
pub const EXPLOIT: &str = "button_pressed";

/// The shape of a strategy's gold from the base policy to its largest KL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// Gold above the base policy's at the largest KL.
    Rose,
    /// Gold above both the base's and the end's at some point between.
    RoseThenFell,
    /// Gold below the base policy's at the largest KL.
    Fell,
    /// No test decided.
    Flat,
}

impl Shape {
    pub fn words(self) -> &'static str {
        match self {
            Shape::Rose => "rose",
            Shape::RoseThenFell => "rose, then fell",
            Shape::Fell => "fell",
            Shape::Flat => "cannot tell",
        }
    }
}

/// A paired difference as it is written down.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Contrast {
    pub estimate: f64,
    pub lo: f64,
    pub hi: f64,
    /// The smallest change this run detects with 80% power.
    pub detectable: f64,
}

impl From<&Difference> for Contrast {
    fn from(d: &Difference) -> Self {
        Self {
            estimate: d.estimate,
            lo: d.interval.lo,
            hi: d.interval.hi,
            detectable: d.detectable(),
        }
    }
}

/// Where gold turned: the rise to the candidate peak, and the fall after it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TurnFound {
    pub peak_kl: f64,
    pub rise: Contrast,
    pub fall: Contrast,
    /// Max-T adjusted over the candidate points.
    pub p: f64,
    pub candidates: usize,
}

/// A strategy's finding on one task, over every seed of the run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Finding {
    pub task: String,
    pub strategy: String,
    /// "pool" (reweightings of base samples) or "policy" (trained policies).
    #[serde(default)]
    pub family: String,
    pub seeds: usize,
    /// Prompts per seed the contrasts are paired over.
    pub prompts: usize,
    /// The largest KL (mean over seeds).
    pub kl: f64,
    /// End minus base.
    pub gold: Contrast,
    pub proxy: Option<Contrast>,
    pub labeler: Option<Contrast>,
    pub exploit: Option<Contrast>,
    pub spec: Option<Contrast>,
    /// The share of completions past the labelled range, where one is declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beyond: Option<Contrast>,
    pub turn: Option<TurnFound>,
    pub shape: Shape,
    /// Each seed's shape on its own, in seed order.
    pub shapes: Vec<Shape>,
    /// True when no test on gold decided.
    pub within_noise: bool,
    pub sentence: String,
    /// What the strategy optimises.
    pub target: kinds::Target,
}

/// The findings of one task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskFindings {
    pub task: String,
    /// The kind of Goodhart the task is set up to show, and what it predicts.
    pub goodhart: Option<GoodhartKind>,
    pub expectation: Option<String>,
    /// Whether the run shows what the kind predicts, with the deciding contrast.
    pub verdict: Option<String>,
    /// Whether the kind's prediction is shown (None: no kind, or it cannot be tested here).
    pub shown: Option<bool>,
    /// From a `--quick` run (a smoke test).
    #[serde(default)]
    pub quick: bool,
    /// What the run shows on this task, in one sentence.
    pub headline: String,
    pub strategies: Vec<Finding>,
    /// Against an earlier task measured on the same prompts (the same task
    /// generator and settings): each strategy both ran, paired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub against: Option<TaskContrast>,
    /// What trained policies pursue off their training distribution (`[task.seeking]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seeking: Option<seeking::Seeking>,
    /// Whether adversarial training of the reward model paid (`[task.red_team]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub red_team: Option<red_team::RedTeamFinding>,
    /// Whether honesty wins debates, and what a defender changes (`[task.debate]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debate: Option<debate::DebateFinding>,
    /// Whether recursive reward modelling's judge falls behind its policy (`[task.rrm]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rrm: Option<rrm::RrmFinding>,
}

/// One task against another that shares its base measurement.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskContrast {
    pub other: String,
    pub rows: Vec<StrategyContrast>,
}

/// A strategy's gain in gold (largest KL minus base) on this task minus on the
/// other, paired over the prompts they share.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StrategyContrast {
    pub strategy: String,
    pub kl: f64,
    pub other_kl: f64,
    pub gold: Contrast,
}

fn turn_found(curve: &Curve, t: &Tests) -> Option<TurnFound> {
    let turn = t.turn.as_ref()?;
    Some(TurnFound {
        peak_kl: curve.points[turn.at + 1].kl,
        rise: (&turn.rise).into(),
        fall: (&turn.fall).into(),
        p: turn.p,
        candidates: curve.points.len() - 2,
    })
}

/// "gold rose by +0.230 [+0.140, +0.310] up to KL 1.10, then fell by ..."
fn gold_words(f: &Finding) -> String {
    let g = &f.gold;
    match (f.shape, &f.turn) {
        (Shape::RoseThenFell, Some(t)) => format!(
            "gold rose by {} up to KL {:.2}, then fell by {} by KL {:.2} (turn p = {:.3} over {} candidate peaks)",
            by(&t.rise),
            t.peak_kl,
            by(&t.fall),
            f.kl,
            t.p,
            t.candidates
        ),
        (Shape::Rose | Shape::Fell, _) => {
            format!("gold {} by {} at KL {:.2}", f.shape.words(), by(g), f.kl)
        }
        _ => format!(
            "gold changed by {} at KL {:.2}: cannot tell (this run detects changes of {:.3} or more)",
            show(g),
            f.kl,
            g.detectable
        ),
    }
}

/// A size, for "rose by" / "fell by": the contrast's magnitude in its direction, unsigned.
pub fn by(c: &Contrast) -> String {
    if c.estimate < 0.0 {
        format!("{:.3} [{:.3}, {:.3}]", -c.estimate, -c.hi, -c.lo)
    } else {
        format!("{:.3} [{:.3}, {:.3}]", c.estimate, c.lo, c.hi)
    }
}

pub fn show(c: &Contrast) -> String {
    format!("{:+.3} [{:+.3}, {:+.3}]", c.estimate, c.lo, c.hi)
}

fn finding(curve: &Curve, exp: &Experiment) -> Option<(Finding, Tests)> {
    let tests = curves::tests(curve, EXPLOIT)?;
    let seeds = curve.seeds();
    let shapes = if seeds > 1 {
        (0..seeds)
            .map(|s| curves::tests(&curve.seed(s), EXPLOIT).map_or(Shape::Flat, |t| t.shape))
            .collect()
    } else {
        vec![tests.shape]
    };
    let target = exp
        .task(Some(&curve.task))
        .map_or(kinds::Target::Proxy, |setup| {
            kinds::target(setup, &curve.strategy)
        });
    let prompts = curve.points[0]
        .per_seed
        .iter()
        .filter_map(|p| p.per_prompt.as_ref().map(|pp| pp.gold.len()))
        .min()
        .unwrap_or(0);
    let mut f = Finding {
        task: curve.task.clone(),
        strategy: curve.strategy.clone(),
        family: curve.family.clone(),
        seeds,
        prompts,
        kl: curve.end().kl,
        gold: (&tests.gold).into(),
        proxy: tests.proxy.as_ref().map(Into::into),
        labeler: tests.labeler.as_ref().map(Into::into),
        exploit: tests.exploit.as_ref().map(Into::into),
        spec: tests.spec.as_ref().map(Into::into),
        beyond: tests.beyond.as_ref().map(Into::into),
        turn: turn_found(curve, &tests),
        shape: tests.shape,
        shapes,
        within_noise: tests.shape == Shape::Flat,
        sentence: String::new(),
        target,
    };
    f.sentence = sentence(&f);
    Some((f, tests))
}

/// The strategy's line: every quantity's paired change, then gold's verdict.
fn sentence(f: &Finding) -> String {
    let mut s = format!("{}: ", f.strategy);
    let mut moved = vec![];
    for (what, c) in [
        ("proxy", &f.proxy),
        ("the labeler's score", &f.labeler),
        ("button presses", &f.exploit),
        ("the formal goal", &f.spec),
        ("the share past the labelled range", &f.beyond),
    ] {
        if let Some(c) = c {
            moved.push(format!("{what} {}", show(c)));
        }
    }
    if !moved.is_empty() {
        let _ = write!(s, "{}; ", moved.join(", "));
    }
    s.push_str(&gold_words(f));
    let _ = write!(
        s,
        " — paired over {} prompts{}",
        f.prompts,
        if f.seeds > 1 {
            format!(" in each of {} seeds", f.seeds)
        } else {
            String::new()
        }
    );
    if f.seeds > 1 {
        let mut tally: Vec<String> = vec![];
        for shape in [Shape::RoseThenFell, Shape::Rose, Shape::Fell, Shape::Flat] {
            let k = f.shapes.iter().filter(|&&x| x == shape).count();
            if k > 0 {
                tally.push(format!("{} in {k}", shape.words()));
            }
        }
        let _ = write!(s, "; each seed alone: {}", tally.join(", "));
    }
    s.push('.');
    s
}

/// Findings per task from each seed's analyses (one list per seed; held-out
/// curves only), in the order of the first seed, with each task's verdict on
/// the kind of Goodhart `exp` says it is set up to show.
pub fn findings(per_seed: &[&[StrategyAnalysis]], exp: &Experiment) -> Vec<TaskFindings> {
    let Some(first) = per_seed.first() else {
        return vec![];
    };
    let mut out: Vec<(TaskFindings, Vec<(Curve, Tests)>)> = vec![];
    for a in first.iter().filter(|a| a.split == "heldout") {
        let Some(curve) = Curve::across_seeds(per_seed, a) else {
            continue;
        };
        let Some((f, tests)) = finding(&curve, exp) else {
            continue;
        };
        match out.iter_mut().find(|(t, _)| t.task == a.task) {
            Some((t, data)) => {
                t.strategies.push(f);
                data.push((curve, tests));
            }
            None => out.push((
                TaskFindings {
                    task: a.task.clone(),
                    goodhart: None,
                    expectation: None,
                    verdict: None,
                    shown: None,
                    quick: exp.name.ends_with("(quick)"),
                    headline: String::new(),
                    strategies: vec![f],
                    against: None,
                    seeking: None,
                    red_team: None,
                    debate: None,
                    rrm: None,
                },
                vec![(curve, tests)],
            )),
        }
    }
    let against: Vec<Option<TaskContrast>> = (0..out.len())
        .map(|i| {
            (0..i)
                .filter(|&j| same_prompts(exp, &out[i].0.task, &out[j].0.task))
                .find_map(|j| across_tasks(&out[i].1, &out[j].1, &out[j].0.task))
        })
        .collect();
    out.into_iter()
        .zip(against)
        .map(|((mut t, data), against)| {
            t.against = against;
            t.headline = headline(&t);
            t.goodhart = exp.task(Some(&t.task)).ok().and_then(|s| s.goodhart);
            t.expectation = t.goodhart.map(|g| g.expectation().to_string());
            if let Some(v) = t.goodhart.map(|g| kinds::verdict(g, &t.strategies, &data)) {
                t.shown = v.shown;
                t.verdict = Some(v.sentence);
            }
            let setup = exp.task(Some(&t.task)).ok();
            t.seeking = setup
                .and_then(|s| s.seeking.as_ref())
                .map(|cfg| seeking::seeking(per_seed, &t.task, cfg));
            t.red_team = setup.filter(|s| s.red_team.rounds > 0).and_then(|s| {
                let rl = s.strategies.rl.first().filter(|_| s.red_team.ppo);
                red_team::red_team(
                    per_seed,
                    &t.task,
                    s.red_team.rounds,
                    rl.map(|r| r.name.as_str()),
                )
            });
            t
        })
        .collect()
}

/// Attach each task's findings that rest on stage records rather than
/// curves (debate, recursive reward modelling) from every seed's records
/// (`per_seed[s]`: seed s's tasks), after [`findings`].
pub fn attach_records<T: AsRef<[TaskRecords]>>(found: &mut [TaskFindings], per_seed: &[T]) {
    for t in found.iter_mut() {
        t.debate = debate::debate(per_seed, &t.task);
        t.rrm = rrm::rrm(per_seed, &t.task);
    }
}

/// Whether two tasks of `exp` are measured on the same prompts: the same task
/// generator and settings (the prompts are drawn from the experiment's seed
/// and the task's settings, not its name).
fn same_prompts(exp: &Experiment, a: &str, b: &str) -> bool {
    match (exp.task(Some(a)), exp.task(Some(b))) {
        (Ok(a), Ok(b)) => a.task_config() == b.task_config(),
        _ => false,
    }
}

/// Each strategy of `here` that `there` also ran: its gain in gold (largest KL
/// minus base) here minus there, paired over the prompts the tasks share.
fn across_tasks(
    here: &[(Curve, Tests)],
    there: &[(Curve, Tests)],
    other: &str,
) -> Option<TaskContrast> {
    let rows: Vec<StrategyContrast> = here
        .iter()
        .filter_map(|(a, _)| {
            let (b, _) = there.iter().find(|(b, _)| b.strategy == a.strategy)?;
            let cells = vec![
                a.end().cell("gold")?,
                a.points[0].cell("gold")?,
                b.end().cell("gold")?,
                b.points[0].cell("gold")?,
            ];
            let paired = crate::measure::paired::Paired::new(
                &cells,
                &mut a.rng(&format!("against/{other}")),
            )?;
            let gain = paired.contrast(&[(0, 1.0), (1, -1.0), (2, -1.0), (3, 1.0)]);
            Some(StrategyContrast {
                strategy: a.strategy.clone(),
                kl: a.end().kl,
                other_kl: b.end().kl,
                gold: (&gain).into(),
            })
        })
        .collect();
    (!rows.is_empty()).then(|| TaskContrast {
        other: other.to_string(),
        rows,
    })
}

/// One sentence over a task's strategies: which gold verdicts held under which.
fn headline(t: &TaskFindings) -> String {
    let mut parts = vec![];
    for s in [Shape::RoseThenFell, Shape::Fell, Shape::Rose, Shape::Flat] {
        let these: Vec<&str> = t
            .strategies
            .iter()
            .filter(|f| f.shape == s)
            .map(|f| f.strategy.as_str())
            .collect();
        if !these.is_empty() {
            let verb = match s {
                Shape::Flat => "the run cannot tell gold's change".to_string(),
                s => format!("gold {}", s.words()),
            };
            parts.push(format!("{verb} under {}", these.join(", ")));
        }
    }
    format!("{}: {}.", t.task, parts.join("; "))
}

#[cfg(test)]
mod tests;
