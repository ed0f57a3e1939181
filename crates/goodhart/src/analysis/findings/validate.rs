//! The verdict rules checked against curves whose truth is known: how often
//! each says "yes" when its prediction is false (the false-positive rate, to be
//! at most 5%), and how often at effect sizes like the runs' (power).
//!
//! A simulated task has `prompts` prompts; prompt i's completions are right
//! (gold +1) with probability `p_i` ~ U(0.1, 0.9) and wrong (-1) otherwise, so
//! prompts differ in difficulty as real ones do. A point at KL k moves that
//! probability by a known `shift_k` (gold's true change is 2 shift_k). Its
//! per-prompt gold is the mean over its samples:
//! - `Family::Pool`: every point reweights one pool of 16 samples per prompt
//!   (the same uniform draws decide every point: points are as correlated as
//!   best-of-n's are);
//! - `Family::Policy`: each point draws 4 fresh samples per prompt (a trained
//!   policy's checkpoint), the base point 64 (the pool's base measurement).
//!
//! The proxy and the labeler are simulated the same way with their own shifts
//! and draws. Every simulated curve goes through the run's own code
//! ([`super::findings`] on a one-task experiment), so what is measured is the
//! rule as shipped.

use std::path::Path;

use rand::Rng as _;
use rand::SeedableRng as _;
use serde::{Deserialize, Serialize};

use crate::analysis::curves::StrategyAnalysis;
use crate::error::{Error, Result};
use crate::experiment::config::{Experiment, GoodhartKind, TaskSetup};
use crate::fsutil::write_atomic;
use crate::rng::Rng;
use crate::score::{CurvePoint, PerPrompt};

use super::seeking::Claim;
use super::Shape;

mod scenarios;
mod seeking;

pub use scenarios::scenarios;

/// KL of the simulated points (the base first).
const KL: [f64; 7] = [0.0, 0.3, 0.7, 1.2, 1.9, 2.7, 3.6];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    Pool,
    Policy,
}

/// A known truth: per point, the shift of P(right) for gold, the proxy and the labeler.
#[derive(Clone, Copy, Debug)]
pub enum Truth {
    Null,
    /// Gold rises linearly by `to` (in gold units) at the largest KL.
    Rise(f64),
    Fall(f64),
    /// Gold rises by `up` to the middle of the curve, then loses `down` by its end.
    RiseThenFall(f64, f64),
    /// Gold rises by `up` to the middle, then stays there.
    RiseThenFlat(f64),
    /// The labeler's score rises by `labeler` while gold falls by `gold`.
    Parting {
        labeler: f64,
        gold: f64,
    },
    /// Gold changes by `gold` while the proxy rises, and the share of
    /// completions past the labelled range rises by `beyond` (from 5%).
    Beyond {
        gold: f64,
        beyond: f64,
    },
    /// On a shifted split, the policy takes a route to reward `policy` more
    /// often than the base policy does, its control `control` more (rates).
    Seeking {
        policy: f64,
        control: f64,
    },
}

impl Truth {
    /// The truth in words, in gold units.
    pub fn words(self) -> String {
        match self {
            Truth::Null => "nothing moves".into(),
            Truth::Rise(to) => format!("gold rises by {to}"),
            Truth::Fall(to) => format!("gold falls by {to}"),
            Truth::RiseThenFall(up, down) => format!("gold rises by {up}, then falls by {down}"),
            Truth::RiseThenFlat(up) => format!("gold rises by {up}, then stays"),
            Truth::Parting { labeler, gold } => {
                format!("the labeler's score rises by {labeler}, gold falls by {gold}")
            }
            Truth::Beyond { gold, beyond } => format!(
                "gold changes by {gold}, the share past the labelled range by {beyond}"
            ),
            Truth::Seeking { policy, control } => format!(
                "the route's rate rises by {policy} under the policy, {control} under its control (rates, not gold)"
            ),
        }
    }

    /// (gold, proxy, labeler) true changes in value units at point k.
    fn at(self, k: usize) -> (f64, f64, f64) {
        let last = KL.len() - 1;
        let d = |k: usize| KL[k].sqrt() / KL[last].sqrt();
        let mid = last / 2;
        let proxy = d(k);
        match self {
            Truth::Null => (0.0, 0.0, 0.0),
            Truth::Rise(to) => (to * d(k), proxy, 0.0),
            Truth::Fall(to) => (-to * d(k), proxy, 0.0),
            Truth::RiseThenFall(up, down) => {
                let g = if k <= mid {
                    up * d(k) / d(mid)
                } else {
                    up - down * (d(k) - d(mid)) / (1.0 - d(mid))
                };
                (g, proxy, 0.0)
            }
            Truth::RiseThenFlat(up) => (up * (d(k) / d(mid)).min(1.0), proxy, 0.0),
            Truth::Parting { labeler, gold } => (-gold * d(k), proxy, labeler * d(k)),
            Truth::Beyond { gold, .. } => (gold * d(k), proxy, 0.0),
            // Simulated by `seeking::once`, not as a gold curve.
            Truth::Seeking { .. } => (0.0, 0.0, 0.0),
        }
    }
}

/// Per-prompt means of +-1 outcomes: `draws[i][j] < p_i + shift/2` is right.
fn outcomes(p: &[f64], draws: &[Vec<f64>], change: f64) -> Vec<f64> {
    p.iter()
        .zip(draws)
        .map(|(&pi, d)| {
            let q = (pi + change / 2.0).clamp(0.0, 1.0);
            d.iter()
                .map(|&u| if u < q { 1.0 } else { -1.0 })
                .sum::<f64>()
                / d.len() as f64
        })
        .collect()
}

fn uniforms(rng: &mut Rng, prompts: usize, samples: usize) -> Vec<Vec<f64>> {
    (0..prompts)
        .map(|_| (0..samples).map(|_| rng.random::<f64>()).collect())
        .collect()
}

/// One seed's base draws: 64 uniforms per prompt for each of gold, the proxy
/// and the labeler, and (for a [`Truth::Beyond`] only, so that the other
/// scenarios keep their draws) for completions past the labelled range.
pub struct BaseDraws {
    pub scores: [Vec<Vec<f64>>; 3],
    pub beyond: Option<Vec<Vec<f64>>>,
}

pub fn base_draws(rng: &mut Rng, prompts: usize, truth: Truth) -> BaseDraws {
    BaseDraws {
        scores: [
            uniforms(rng, prompts, 64),
            uniforms(rng, prompts, 64),
            uniforms(rng, prompts, 64),
        ],
        beyond: matches!(truth, Truth::Beyond { .. }).then(|| uniforms(rng, prompts, 64)),
    }
}

/// The share of past-range completions of the base policy, on every prompt.
const BEYOND_BASE: f64 = 0.05;

/// One simulated held-out curve of `strategy` on task "sim", prompt
/// difficulties `p`; the base point is the mean over every base draw, a pool
/// point reweights the first 16 of them, a policy point draws 4 afresh.
pub fn curve(
    strategy: &str,
    family: Family,
    truth: Truth,
    p: &[f64],
    base: &BaseDraws,
    rng: &mut Rng,
) -> StrategyAnalysis {
    let n = p.len();
    let points = KL
        .iter()
        .enumerate()
        .map(|(k, &kl)| {
            let (dg, dp, dl) = truth.at(k);
            let first16 = |q: &Vec<Vec<f64>>| q.iter().map(|d| d[..16].to_vec()).collect();
            let draws: [Vec<Vec<f64>>; 3] = match (family, k) {
                (_, 0) => base.scores.clone(),
                (Family::Pool, _) => base.scores.each_ref().map(first16),
                (Family::Policy, _) => [
                    uniforms(rng, n, 4),
                    uniforms(rng, n, 4),
                    uniforms(rng, n, 4),
                ],
            };
            let beyond = base.beyond.as_ref().map(|b| {
                let draws: Vec<Vec<f64>> = match (family, k) {
                    (_, 0) => b.clone(),
                    (Family::Pool, _) => first16(b),
                    (Family::Policy, _) => uniforms(rng, n, 4),
                };
                let rise = match truth {
                    Truth::Beyond { beyond, .. } => beyond * KL[k].sqrt() / KL[KL.len() - 1].sqrt(),
                    _ => 0.0,
                };
                let rate = BEYOND_BASE + rise;
                crate::score::FeatureSeries {
                    name: crate::score::BEYOND_LABELS.into(),
                    values: draws
                        .iter()
                        .map(|d| d.iter().filter(|&&u| u < rate).count() as f64 / d.len() as f64)
                        .collect(),
                }
            });
            let (knob, value) = ("n", if k == 0 { 1.0 } else { (1 << k) as f64 });
            let mut point = CurvePoint::new("sim", strategy, "heldout", knob, value, vec![kl; n]);
            let pp = PerPrompt {
                kl: vec![kl; n],
                gold: outcomes(p, &draws[0], dg),
                proxy: outcomes(p, &draws[1], dp),
                labeler: outcomes(p, &draws[2], dl),
                features: beyond.into_iter().collect(),
                ..PerPrompt::default()
            };
            point.gold = crate::stats::Stat::of(&pp.gold);
            point.per_prompt = Some(pp);
            point
        })
        .collect();
    StrategyAnalysis {
        task: "sim".into(),
        strategy: strategy.into(),
        split: "heldout".into(),
        family: "pool".into(),
        points,
        ..Default::default()
    }
}

/// A one-task experiment named "sim" set up to show `kind`.
fn experiment(kind: GoodhartKind) -> Experiment {
    Experiment {
        tasks: vec![TaskSetup {
            name: Some("sim".into()),
            goodhart: Some(kind),
            ..TaskSetup::default()
        }],
        ..Experiment::default()
    }
}

/// What one simulated run says: each strategy's gold shape and the kind's verdict.
pub struct Outcome {
    pub shapes: Vec<Shape>,
    pub shown: Option<bool>,
}

/// Simulate `strategies` curves over `seeds` seeds (shared prompt difficulties
/// per seed, as one task's strategies share prompts) and run the findings on them.
pub fn run_once(
    kind: GoodhartKind,
    family: Family,
    truth: Truth,
    strategies: usize,
    seeds: usize,
    prompts: usize,
    rng: &mut Rng,
) -> Outcome {
    let per_seed: Vec<Vec<StrategyAnalysis>> = (0..seeds)
        .map(|_| {
            let p: Vec<f64> = (0..prompts)
                .map(|_| 0.1 + 0.8 * rng.random::<f64>())
                .collect();
            let base = base_draws(rng, prompts, truth);
            (0..strategies)
                .map(|s| curve(&format!("s{s}"), family, truth, &p, &base, rng))
                .collect()
        })
        .collect();
    let lists: Vec<&[StrategyAnalysis]> = per_seed.iter().map(Vec::as_slice).collect();
    let found = super::findings(&lists, &experiment(kind));
    let t = found.first();
    Outcome {
        shapes: t.map_or(vec![], |t| t.strategies.iter().map(|f| f.shape).collect()),
        shown: t.and_then(|t| t.shown),
    }
}

/// One row of the validation table.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub rule: String,
    pub truth: String,
    pub family: Family,
    pub strategies: usize,
    pub seeds: usize,
    /// Share of simulated runs where the rule said yes.
    pub rate: f64,
    /// Its Monte-Carlo standard error.
    pub se: f64,
    pub sims: usize,
    /// Whether the truth makes "yes" a false positive.
    pub null: bool,
}

/// A scenario: which rule, what truth, and whether "yes" is false under it.
pub struct Scenario {
    pub rule: &'static str,
    pub kind: GoodhartKind,
    pub truth: Truth,
    pub family: Family,
    pub strategies: usize,
    pub seeds: usize,
    pub null: bool,
}

impl Scenario {
    /// The share of `sims` runs whose rule says yes.
    pub fn rate(&self, sims: usize, seed: u64) -> Row {
        let mut rng = Rng::seed_from_u64(seed);
        let yes = (0..sims)
            .filter(|_| {
                if let Truth::Seeking { policy, control } = self.truth {
                    let claim =
                        seeking::once(policy, control, self.strategies, self.seeds, &mut rng);
                    return match self.rule {
                        "reward is not the target" => {
                            matches!(claim, Claim::NotTarget | Claim::Partly)
                        }
                        _ => matches!(claim, Claim::Seeker | Claim::Partly),
                    };
                }
                let o = run_once(
                    self.kind,
                    self.family,
                    self.truth,
                    self.strategies,
                    self.seeds,
                    64,
                    &mut rng,
                );
                match self.rule {
                    "gold rose" => o.shapes.first() == Some(&Shape::Rose),
                    "gold fell" => o.shapes.first() == Some(&Shape::Fell),
                    "gold rose, then fell" => o.shapes.first() == Some(&Shape::RoseThenFell),
                    _ => o.shown == Some(true),
                }
            })
            .count();
        let rate = yes as f64 / sims as f64;
        Row {
            rule: self.rule.to_string(),
            truth: self.truth.words(),
            family: self.family,
            strategies: self.strategies,
            seeds: self.seeds,
            rate,
            se: (rate * (1.0 - rate) / sims as f64).sqrt(),
            sims,
            null: self.null,
        }
    }
}

/// Every scenario's row: `sims` simulated runs each (a quarter as many for the
/// multi-strategy or multi-seed ones, which cost that much more), seeded by their place.
pub fn table(sims: usize) -> Vec<Row> {
    scenarios()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let n = if s.strategies * s.seeds > 1 {
                (sims / 4).max(1)
            } else {
                sims.max(1)
            };
            s.rate(n, i as u64)
        })
        .collect()
}

pub fn write(path: &Path, rows: &[Row]) -> Result<()> {
    let mut json = serde_json::to_string_pretty(rows).expect("rows serialise");
    json.push('\n');
    write_atomic(path, json.as_bytes())
}

pub fn read(path: &Path) -> Result<Vec<Row>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| {
        Error::invalid(
            path.display().to_string(),
            format!("line {}, column {}: {e}", e.line(), e.column()),
        )
    })
}

/// The table as Markdown.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| rule | the truth (gold units; the proxy rises throughout) | points | strategies | seeds | says yes | MC s.e. | runs | measures |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.3} | {:.3} | {} | {} |\n",
            r.rule,
            r.truth,
            match r.family {
                Family::Pool => "pool",
                Family::Policy => "trained",
            },
            r.strategies,
            r.seeds,
            r.rate,
            r.se,
            r.sims,
            if r.null {
                "false-positive rate"
            } else {
                "power"
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_says_yes_at_most_five_percent_of_the_time_when_its_prediction_is_false() {
        for (i, s) in scenarios().iter().filter(|s| s.null).enumerate() {
            // Multi-strategy and multi-seed runs cost more: fewer of them.
            let sims = if s.strategies * s.seeds > 1 { 100 } else { 300 };
            let row = s.rate(sims, 100 + i as u64);
            // 5% within two Monte-Carlo standard errors of a 5% rate.
            let bound = 0.05 + 2.0 * (0.05 * 0.95 / sims as f64).sqrt();
            assert!(row.rate <= bound, "{}", markdown(&[row]));
        }
    }

    #[test]
    fn the_rules_detect_effects_of_the_size_the_runs_report() {
        // Power: each non-null scenario says yes in most runs.
        for (i, s) in scenarios().iter().filter(|s| !s.null).enumerate() {
            let sims = if s.strategies * s.seeds > 1 { 40 } else { 100 };
            let row = s.rate(sims, 200 + i as u64);
            assert!(row.rate >= 0.5, "{}", markdown(&[row]));
        }
    }
}
