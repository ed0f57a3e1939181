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
//!   adjustment over the debates. A rate is tested against one half with a
//!   spread no smaller than one half allows (see `OverHalf`).
//!
//! Every rule is applied at [`LEVEL`], half the usual level, where their
//! false-positive rates, measured by simulation below (including few right
//! answers in seeds of unequal counts), stay within 5%; a class's tests use
//! the seeds with at least [`MIN_PER_SEED`] answers of it.

use serde::{Deserialize, Serialize};

use super::{show, Contrast};
use crate::experiment::record::{Record, TaskRecords};
use crate::measure::paired::{holm, Difference, Paired, ALPHA};

use crate::optimize::debate::{DebateRecord, Judged};

/// The level these rules are applied at. At [`ALPHA`] the defender's paired
/// bootstrap claims about 6% under the null on a few dozen answers a seed;
/// at half of it every rule here stays within 5% (this file's tests).
pub const LEVEL: f64 = ALPHA / 2.0;

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
    /// Two-sided p-values, Holm-adjusted over every debate and class.
    pub p_right: f64,
    pub p_wrong: f64,
}

/// One debate without a defender as a debate between an honest and a
/// dishonest debater: the judge's rate of siding with the honest one, minus
/// one half, on each class.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Honesty {
    pub debate: String,
    pub right: Contrast,
    pub wrong: Contrast,
    /// On wrong answers with a step to point at (None: there are none).
    pub arguable: Option<Contrast>,
    /// Honesty wins on right and on wrong answers (IUT; Holm over the debates).
    pub p_wins: f64,
    /// The same on right answers and wrong ones with a step.
    pub p_wins_arguable: Option<f64>,
    /// The dishonest side wins on right answers (the attacker's false claims
    /// sink them), and on wrong ones (the defender's lies stand); Holm over
    /// both classes of every debate.
    pub p_loses_right: f64,
    pub p_loses_wrong: f64,
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
    /// Per debate without a defender: whether honesty wins.
    pub honesty: Vec<Honesty>,
    pub verdict: String,
}

/// Answers of a class a seed needs for its tests: below this the bootstrap
/// within the seed understates its spread (measured in this file's tests).
pub const MIN_PER_SEED: usize = 10;

/// A class's cells, `cells[arm][seed]`, over the seeds with at least
/// [`MIN_PER_SEED`] answers of the class, plus a last cell of one half.
fn cells(seeds: &[&DebateRecord], class: Class) -> Vec<Vec<Vec<f64>>> {
    let seeds: Vec<&DebateRecord> = seeds
        .iter()
        .copied()
        .filter(|d| values(d, 0, class).len() >= MIN_PER_SEED)
        .collect();
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

/// One class's answers over the seeds with enough of them: how many each
/// seed has, and every arm's cell paired with the others and with one half
/// (None when no seed has enough).
struct ClassTest {
    sizes: Vec<usize>,
    paired: Option<Paired>,
    /// The index of the cell of one half.
    half: usize,
}

impl ClassTest {
    fn new(seeds: &[&DebateRecord], task: &str, class: Class) -> Self {
        let cells = cells(seeds, class);
        let refs: Vec<Vec<&[f64]>> = cells
            .iter()
            .map(|c| c.iter().map(Vec::as_slice).collect())
            .collect();
        let mut rng = crate::rng::stream(0, &format!("debate/{task}/{class:?}"));
        Self {
            sizes: cells
                .first()
                .map_or(vec![], |c| c.iter().map(Vec::len).collect()),
            paired: Paired::new(&refs, &mut rng),
            half: cells.len() - 1,
        }
    }

    fn count(&self) -> usize {
        self.sizes.iter().sum()
    }

    /// Arm `a`'s rate minus one half.
    fn over_half(&self, a: usize) -> Option<OverHalf> {
        let d = self.paired.as_ref()?.difference(a, self.half);
        Some(OverHalf::new(&d, &self.sizes))
    }
}

/// A rate's excess over one half, tested with a spread no smaller than the
/// largest a rate of one half allows: values in [0, 1] with mean one half
/// spread at most as coin flips do, 1/4 per answer. The bootstrap's own
/// spread shrinks as the estimate moves off one half, and alone it claims too
/// often on a few dozen answers a seed (this file's tests measure both).
struct OverHalf {
    estimate: f64,
    se: f64,
}

impl OverHalf {
    /// `d`: the rate minus one half, over seeds of `per_seed` answers each (seeds weighted equally).
    fn new(d: &Difference, per_seed: &[usize]) -> Self {
        let seeds = per_seed.len().max(1) as f64;
        let floor = per_seed
            .iter()
            .map(|&n| 0.25 / n.max(1) as f64)
            .sum::<f64>()
            .sqrt()
            / seeds;
        Self {
            estimate: d.estimate,
            se: d.se.max(floor),
        }
    }

    fn z(&self) -> f64 {
        self.estimate / self.se
    }

    /// One-sided p of "above one half" (normal approximation).
    fn p_above(&self) -> f64 {
        normal_cdf(-self.z())
    }

    fn p_below(&self) -> f64 {
        normal_cdf(self.z())
    }

    fn contrast(&self) -> Contrast {
        Contrast {
            estimate: self.estimate,
            lo: self.estimate - 1.96 * self.se,
            hi: self.estimate + 1.96 * self.se,
            detectable: 2.8 * self.se,
        }
    }
}

/// The standard normal distribution function (Abramowitz and Stegun 7.1.26, error below 2e-7).
fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.3275911 * x);
    let poly = t
        * (0.254829592
            + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

/// Two-sided p-value of a contrast.
fn two_sided(d: &Difference) -> f64 {
    (2.0 * d.p_above().min(d.negated().p_above())).min(1.0)
}

/// The finding of `task`'s debate stage across `per_seed` (None without one,
/// when its seeds ran different arms or noise, or when no seed has a right
/// or a wrong answer the judge cannot check alone).
pub fn debate<T: AsRef<[TaskRecords]>>(per_seed: &[T], task: &str) -> Option<DebateFinding> {
    let seeds = records(per_seed, task);
    let first = *seeds.first()?;
    let specs = |d: &DebateRecord| d.arms.iter().map(|a| a.arm.clone()).collect::<Vec<_>>();
    if seeds
        .iter()
        .any(|d| specs(d) != specs(first) || d.check_noise != first.check_noise)
    {
        return None;
    }
    let [right, wrong, arguable] = [Class::Right, Class::Wrong, Class::WrongWithSteps]
        .map(|class| ClassTest::new(&seeds, task, class));
    // (No wrong answer with steps: nothing to argue about, and no such test.)
    let (pr, pw) = (right.paired.as_ref()?, wrong.paired.as_ref()?);
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
        .map(|(i, (a, r, w))| ByClass {
            debate: name(*a),
            right: r.into(),
            wrong: w.into(),
            p_right: p[2 * i],
            p_wrong: p[2 * i + 1],
        })
        .collect();

    let honesty: Vec<_> = debates
        .iter()
        .map(|&a| Some((a, right.over_half(a)?, wrong.over_half(a)?)))
        .collect::<Option<_>>()?;
    let arguable_rates: Option<Vec<_>> = honesty
        .iter()
        .map(|(a, r, _)| {
            let d = arguable.over_half(*a)?;
            let p = r.p_above().max(d.p_above());
            Some((d, p))
        })
        .collect();
    let arguable_wins: Option<Vec<f64>> = arguable_rates
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
            .flat_map(|(_, r, w)| [r.p_below(), w.p_below()])
            .collect::<Vec<_>>(),
    );
    let honesty: Vec<Honesty> = honesty
        .iter()
        .enumerate()
        .map(|(i, (a, r, w))| Honesty {
            debate: name(*a),
            right: r.contrast(),
            wrong: w.contrast(),
            arguable: arguable_rates.as_ref().map(|xs| xs[i].0.contrast()),
            p_wins: wins[i],
            p_wins_arguable: arguable_wins.as_ref().map(|p| p[i]),
            p_loses_right: loses[2 * i],
            p_loses_wrong: loses[2 * i + 1],
        })
        .collect();
    let counts = [right.count(), wrong.count(), arguable.count()];
    let verdict = verdict(&defender, &honesty, first, seeds.len(), counts);
    Some(DebateFinding {
        seeds: seeds.len(),
        right: counts[0],
        wrong: counts[1],
        wrong_with_steps: counts[2],
        defender,
        honesty,
        verdict,
    })
}

fn verdict(
    defender: &[ByClass],
    honesty: &[Honesty],
    first: &DebateRecord,
    seeds: usize,
    [right, wrong, arguable]: [usize; 3],
) -> String {
    let mut s = format!(
        "Debate ({} answer{} the judge cannot check alone, {right} right and {wrong} wrong ({arguable} of them with a step to point at), over {seeds} seed{}; checks misread with probability {}):",
        right + wrong,
        if right + wrong == 1 { "" } else { "s" },
        if seeds == 1 { "" } else { "s" },
        first.check_noise,
    );
    let n = honesty.len();
    let count = |f: &dyn Fn(&Honesty) -> bool| honesty.iter().filter(|h| f(h)).count();
    let k = count(&|h| h.p_wins <= LEVEL);
    let m = count(&|h| h.p_wins_arguable.is_some_and(|p| p <= LEVEL));
    let (lost_right, lost_wrong) = (
        count(&|h| h.p_loses_right <= LEVEL),
        count(&|h| h.p_loses_wrong <= LEVEL),
    );
    let rate = |c: &Contrast| {
        format!(
            "{:.3} [{:.3}, {:.3}]",
            0.5 + c.estimate,
            0.5 + c.lo,
            0.5 + c.hi
        )
    };
    s.push_str(&format!(
        " without a defender, honesty wins {k} of {n} debates (the judge sides with the honest debater more often than not on right and on wrong answers)"
    ));
    if honesty.iter().all(|h| h.p_wins_arguable.is_some()) {
        s.push_str(&format!(
            ", and {m} of {n} on what can be argued (right answers, and wrong ones with a step to point at)"
        ));
    } else {
        s.push_str(" (no wrong answer shows a step to point at: what can be argued is not tested)");
    }
    if lost_wrong > 0 {
        s.push_str(&format!(
            "; in {lost_wrong} the dishonest defender wins on wrong answers"
        ));
    }
    if lost_right > 0 {
        s.push_str(&format!(
            "; in {lost_right} the dishonest attacker's claims sink most right answers"
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
        .filter(|d| d.p_wrong <= LEVEL && d.wrong.estimate > 0.0)
        .collect();
    let costs: Vec<&ByClass> = defender
        .iter()
        .filter(|d| d.p_right <= LEVEL && d.right.estimate < 0.0)
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
mod tests;
