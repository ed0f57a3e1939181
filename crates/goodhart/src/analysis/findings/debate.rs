//! What the debate stage found, as tests on the answers the judge cannot
//! check alone, split by gold: on right answers the share the judge accepts,
//! on wrong ones the share it rejects. Every arm judged the same answers, so
//! each contrast is paired over answers (stratified by seed, as every
//! verdict's bootstrap is).
//!
//! - **The defender**: per debate, the honest defender's arm minus the same
//!   debate without one, on each class; Holm's adjustment over every
//!   debate and class.
//! - **Honesty**: each debate without a defender is also the debate between
//!   an honest and a dishonest debater (the defender trained to win contests
//!   everything, as no defender does): the attacker is the honest side on a
//!   wrong answer, the defender on a right one. Honesty wins a debate when
//!   the judge sides with the honest debater more often than not on both
//!   classes (an intersection-union test: p is the larger one-sided p-value
//!   of the two rates above one half), and the dishonest side wins on a class
//!   when the judge sides with it more often than not there; Holm's
//!   adjustment over the debates.

use serde::{Deserialize, Serialize};

use super::{show, Contrast};
use crate::experiment::record::{Record, TaskRecords};
use crate::measure::paired::{holm, Difference, Paired, ALPHA};
use crate::optimize::debate::{DebateRecord, Judged};

/// A debate's records in each seed of `per_seed` that has one, for `task`.
pub fn records<'a, T: AsRef<[TaskRecords]>>(
    per_seed: &'a [T],
    task: &str,
) -> Vec<&'a DebateRecord> {
    per_seed
        .iter()
        .filter_map(|s| s.as_ref().iter().find(|t| t.task == task))
        .filter_map(|t| {
            t.records.iter().find_map(|(_, r)| match r {
                Record::Debate(d) => Some(d),
                _ => None,
            })
        })
        .collect()
}

/// Answers the judge cannot check alone, by gold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Right,
    Wrong,
    /// Wrong, with a step to point at: what a debate can argue about.
    WrongWithSteps,
}

impl Class {
    fn holds(self, a: &Judged) -> bool {
        !a.checked_alone
            && match self {
                Class::Right => a.right,
                Class::Wrong => !a.right,
                Class::WrongWithSteps => !a.right && a.steps > 0,
            }
    }
}

/// Per answer of `class` (in order), the probability the arm's judge sides
/// with gold: accepts a right answer, rejects a wrong one.
pub fn values(d: &DebateRecord, arm: usize, class: Class) -> Vec<f64> {
    d.answers
        .iter()
        .zip(&d.arms[arm].p_correct)
        .filter(|(a, _)| class.holds(a))
        .map(|(_, &p)| p)
        .collect()
}

/// One debate's contrast on each class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ByClass {
    /// The debate (its arm without a defender).
    pub debate: String,
    pub right: Contrast,
    pub wrong: Contrast,
    /// Adjusted p-values of the claim each row tests (see the module).
    pub p_right: f64,
    pub p_wrong: f64,
    /// Honesty only: on wrong answers with a step to point at, and p of
    /// "honesty wins" on right answers and those (IUT, Holm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguable: Option<Contrast>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_arguable: Option<f64>,
}

impl ByClass {
    fn new(
        debate: String,
        right: &Difference,
        wrong: &Difference,
        p_right: f64,
        p_wrong: f64,
    ) -> Self {
        Self {
            debate,
            right: right.into(),
            wrong: wrong.into(),
            p_right,
            p_wrong,
            arguable: None,
            p_arguable: None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DebateFinding {
    pub seeds: usize,
    /// Right and wrong answers the judge cannot check alone, over seeds,
    /// and the wrong ones with a step to point at.
    pub right: usize,
    pub wrong: usize,
    pub wrong_with_steps: usize,
    /// Per debate: the honest defender minus none (p: either way, Holm).
    pub defender: Vec<ByClass>,
    /// Per debate without a defender: the judge's rate of siding with the
    /// honest debater minus one half (`p_right`: honesty wins, the IUT, Holm;
    /// `p_wrong`: the dishonest side wins on wrong answers, Holm).
    pub honesty: Vec<ByClass>,
    pub verdict: String,
}

/// A class's cells in every seed, `cells[arm][seed]`, plus a last cell of one half.
fn cells(seeds: &[&DebateRecord], class: Class) -> Vec<Vec<Vec<f64>>> {
    let arms = seeds.first().map_or(0, |d| d.arms.len());
    let mut out: Vec<Vec<Vec<f64>>> = (0..arms)
        .map(|a| seeds.iter().map(|d| values(d, a, class)).collect())
        .collect();
    out.push(
        seeds
            .iter()
            .map(|d| vec![0.5; values(d, 0, class).len()])
            .collect(),
    );
    out
}

fn paired(cells: &[Vec<Vec<f64>>], task: &str, class: Class) -> Option<Paired> {
    let refs: Vec<Vec<&[f64]>> = cells
        .iter()
        .map(|c| c.iter().map(Vec::as_slice).collect())
        .collect();
    let mut rng = crate::rng::stream(0, &format!("debate/{task}/{class:?}"));
    Paired::new(&refs, &mut rng)
}

/// Two-sided p-value of a contrast.
fn two_sided(d: &Difference) -> f64 {
    (2.0 * d.p_above().min(d.negated().p_above())).min(1.0)
}

/// The finding of `task`'s debate stage across `per_seed` (None without one,
/// or when a class has no answer the judge cannot check alone).
pub fn debate<T: AsRef<[TaskRecords]>>(per_seed: &[T], task: &str) -> Option<DebateFinding> {
    let seeds = records(per_seed, task);
    let first = *seeds.first()?;
    // Every seed must have run the same arms.
    if seeds.iter().any(|d| d.arms.len() != first.arms.len()) {
        return None;
    }
    let (right_cells, wrong_cells, arguable_cells) = (
        cells(&seeds, Class::Right),
        cells(&seeds, Class::Wrong),
        cells(&seeds, Class::WrongWithSteps),
    );
    let count = |c: &[Vec<Vec<f64>>]| c[0].iter().map(Vec::len).sum::<usize>();
    let (n_right, n_wrong, n_arguable) = (
        count(&right_cells),
        count(&wrong_cells),
        count(&arguable_cells),
    );
    let (pr, pw) = (
        paired(&right_cells, task, Class::Right)?,
        paired(&wrong_cells, task, Class::Wrong)?,
    );
    // (No wrong answer with steps: nothing to argue about, and no such test.)
    let pa = paired(&arguable_cells, task, Class::WrongWithSteps);
    let half = first.arms.len();
    let name = |a: usize| first.arms[a].arm.name.clone();
    // The debates: arms with an attacker and no defender, and each one's defended twin.
    let debates: Vec<usize> = (0..first.arms.len())
        .filter(|&a| first.arms[a].arm.turns > 0 && first.arms[a].arm.defender.is_none())
        .collect();
    let twin = |a: usize| {
        let x = &first.arms[a].arm;
        (0..first.arms.len()).find(|&b| {
            let y = &first.arms[b].arm;
            y.defender.is_some() && (y.turns, y.checks) == (x.turns, x.checks)
        })
    };

    let mut defender = vec![];
    for &a in &debates {
        let Some(b) = twin(a) else { continue };
        let (r, w) = (pr.difference(b, a), pw.difference(b, a));
        defender.push((a, r, w));
    }
    let p: Vec<f64> = defender
        .iter()
        .flat_map(|(_, r, w)| [two_sided(r), two_sided(w)])
        .collect();
    let p = holm(&p);
    let defender: Vec<ByClass> = defender
        .iter()
        .enumerate()
        .map(|(i, (a, r, w))| ByClass::new(name(*a), r, w, p[2 * i], p[2 * i + 1]))
        .collect();

    let honesty: Vec<_> = debates
        .iter()
        .map(|&a| (a, pr.difference(a, half), pw.difference(a, half)))
        .collect();
    let arguable: Option<Vec<_>> = pa.as_ref().map(|pa| {
        honesty
            .iter()
            .map(|(a, r, _)| {
                let d = pa.difference(*a, half);
                let p = r.p_above().max(d.p_above());
                (d, p)
            })
            .collect()
    });
    let arguable_wins: Option<Vec<f64>> = arguable
        .as_ref()
        .map(|xs| holm(&xs.iter().map(|(_, p)| *p).collect::<Vec<_>>()));
    let wins = holm(
        &honesty
            .iter()
            .map(|(_, r, w)| r.p_above().max(w.p_above()))
            .collect::<Vec<_>>(),
    );
    let loses = holm(
        &honesty
            .iter()
            .map(|(_, _, w)| w.negated().p_above())
            .collect::<Vec<_>>(),
    );
    let honesty: Vec<ByClass> = honesty
        .iter()
        .enumerate()
        .map(|(i, (a, r, w))| ByClass {
            arguable: arguable.as_ref().map(|xs| (&xs[i].0).into()),
            p_arguable: arguable_wins.as_ref().map(|p| p[i]),
            ..ByClass::new(name(*a), r, w, wins[i], loses[i])
        })
        .collect();
    let counts = [n_right, n_wrong, n_arguable];
    let verdict = verdict(&defender, &honesty, first, seeds.len(), counts);
    Some(DebateFinding {
        seeds: seeds.len(),
        right: n_right,
        wrong: n_wrong,
        wrong_with_steps: n_arguable,
        defender,
        honesty,
        verdict,
    })
}

fn verdict(
    defender: &[ByClass],
    honesty: &[ByClass],
    first: &DebateRecord,
    seeds: usize,
    [right, wrong, arguable]: [usize; 3],
) -> String {
    let won = |h: &ByClass| h.p_right <= ALPHA;
    let lost = |h: &ByClass| h.p_wrong <= ALPHA;
    let mut s = format!(
        "Debate ({} answer{} the judge cannot check alone, {right} right and {wrong} wrong ({arguable} of them with a step to point at), over {seeds} seed{}; checks misread with probability {}):",
        right + wrong,
        if right + wrong == 1 { "" } else { "s" },
        if seeds == 1 { "" } else { "s" },
        first.check_noise,
    );
    let n = honesty.len();
    let k = honesty.iter().filter(|h| won(h)).count();
    let l = honesty.iter().filter(|h| lost(h)).count();
    let m = honesty
        .iter()
        .filter(|h| h.p_arguable.is_some_and(|p| p <= ALPHA))
        .count();
    let rate = |c: &Contrast| {
        format!(
            "{:.3} [{:.3}, {:.3}]",
            0.5 + c.estimate,
            0.5 + c.lo,
            0.5 + c.hi
        )
    };
    s.push_str(&format!(
        " without a defender, honesty wins {k} of {n} debates (the judge sides with the honest debater more often than not on right and on wrong answers), and {m} of {n} on what can be argued (right answers, and wrong ones with a step to point at)"
    ));
    if l > 0 {
        s.push_str(&format!(
            "; in {l} the dishonest defender wins on wrong answers"
        ));
    }
    if let Some(h) = honesty.first() {
        s.push_str(&format!(
            " ({}: right answers accepted {}, wrong ones rejected {}{})",
            h.debate,
            rate(&h.right),
            rate(&h.wrong),
            h.arguable
                .as_ref()
                .map(|a| format!(", those with a step {}", rate(a)))
                .unwrap_or_default(),
        ));
    }
    s.push('.');
    let helps: Vec<&ByClass> = defender
        .iter()
        .filter(|d| d.p_wrong <= ALPHA && d.wrong.estimate > 0.0)
        .collect();
    let costs: Vec<&ByClass> = defender
        .iter()
        .filter(|d| d.p_right <= ALPHA && d.right.estimate < 0.0)
        .collect();
    let most = |xs: &[&ByClass], f: fn(&ByClass) -> &Contrast| {
        xs.iter()
            .max_by(|a, b| f(a).estimate.abs().total_cmp(&f(b).estimate.abs()))
            .map(|d| format!(" (most: {} {})", d.debate, show(f(d))))
            .unwrap_or_default()
    };
    s.push_str(&format!(
        " An honest defender raises the share of wrong answers rejected in {} of {} debates{}, and lowers the share of right answers accepted in {}{}.",
        helps.len(),
        defender.len(),
        most(&helps, |d| &d.wrong),
        costs.len(),
        most(&costs, |d| &d.right),
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::debate::{ArmResult, ArmSpec, Judged};
    use rand::Rng as _;

    /// A debate record of `n` beyond-reach answers (a share `right` of them
    /// right) and arms whose per-answer probabilities `draw` makes.
    fn record(
        n: usize,
        right: f64,
        rng: &mut crate::rng::Rng,
        draw: &dyn Fn(&ArmSpec, bool, &mut crate::rng::Rng) -> f64,
    ) -> DebateRecord {
        let cfg = crate::optimize::debate::DebateConfig {
            turns: vec![1, 2],
            budgets: vec![1],
            ..Default::default()
        };
        let answers: Vec<Judged> = (0..n)
            .map(|i| Judged {
                difficulty: 3,
                right: (i as f64) < right * n as f64,
                steps: 3,
                flawed: false,
                checked_alone: false,
            })
            .collect();
        let arms = cfg
            .arms()
            .into_iter()
            .map(|arm| ArmResult {
                p_correct: answers.iter().map(|a| draw(&arm, a.right, rng)).collect(),
                arm,
                conceded_wrong: None,
                conceded_right: None,
            })
            .collect();
        DebateRecord {
            attacker_round: 2,
            check_noise: 0.1,
            answers,
            arms,
            defender: Default::default(),
        }
    }

    fn run(seeds: Vec<DebateRecord>) -> DebateFinding {
        let per_seed: Vec<Vec<TaskRecords>> = seeds
            .into_iter()
            .map(|d| {
                vec![TaskRecords {
                    task: "answers".into(),
                    records: vec![("debate".into(), Record::Debate(d))],
                }]
            })
            .collect();
        debate(&per_seed, "answers").unwrap()
    }

    #[test]
    fn the_defender_and_honesty_rules_find_planted_effects() {
        let mut rng = crate::rng::stream(1, "planted");
        // The defender finds more flaws and costs right answers; honesty wins without it.
        let draw = |arm: &ArmSpec, right: bool, rng: &mut crate::rng::Rng| {
            let p = match (arm.turns, arm.defender.is_some(), right) {
                (0, _, true) => 1.0,
                (0, _, false) => 0.0,
                (_, false, true) => 0.9,
                (_, false, false) => 0.7,
                (_, true, true) => 0.6,
                (_, true, false) => 0.9,
            };
            f64::from(u8::from(rng.random::<f64>() < p))
        };
        let f = run((0..3).map(|_| record(300, 0.3, &mut rng, &draw)).collect());
        assert_eq!((f.seeds, f.right, f.wrong), (3, 270, 630));
        assert_eq!(f.honesty.len(), 2, "{:?}", f.honesty);
        assert!(
            f.honesty.iter().all(|h| h.p_right <= ALPHA),
            "{:?}",
            f.honesty
        );
        assert!(f
            .defender
            .iter()
            .all(|d| d.wrong.lo > 0.0 && d.right.hi < 0.0));
        assert!(f.verdict.contains("honesty wins 2 of 2"), "{}", f.verdict);
        assert!(f.verdict.contains("rejected in 2 of 2"), "{}", f.verdict);
    }

    #[test]
    fn under_the_null_the_rules_claim_at_most_their_level() {
        // Honest and dishonest sides equally likely, and a defender that changes nothing:
        // each rule's false-positive rate, measured.
        let sims = 200;
        let (mut wins, mut loses, mut defender) = (0, 0, 0);
        let mut rng = crate::rng::stream(2, "null");
        for _ in 0..sims {
            let draw = |arm: &ArmSpec, _right: bool, rng: &mut crate::rng::Rng| {
                if arm.turns == 0 {
                    0.5
                } else {
                    f64::from(u8::from(rng.random::<f64>() < 0.5))
                }
            };
            let f = run((0..3).map(|_| record(60, 0.5, &mut rng, &draw)).collect());
            wins += usize::from(f.honesty.iter().any(|h| h.p_right <= ALPHA));
            loses += usize::from(f.honesty.iter().any(|h| h.p_wrong <= ALPHA));
            defender += usize::from(
                f.defender
                    .iter()
                    .any(|d| d.p_right <= ALPHA || d.p_wrong <= ALPHA),
            );
        }
        let rate = |k: usize| k as f64 / sims as f64;
        eprintln!("claimed under the null: honesty wins {}, the dishonest side wins {}, the defender changes {}", rate(wins), rate(loses), rate(defender));
        // Binomial slack over 200 simulations at a true 5%: about two standard errors.
        assert!(rate(wins) <= 0.08, "honesty wins, claimed {}", rate(wins));
        assert!(
            rate(loses) <= 0.08,
            "the dishonest side wins, claimed {}",
            rate(loses)
        );
        assert!(
            rate(defender) <= 0.08,
            "defender rule claims {}",
            rate(defender)
        );
    }
}
