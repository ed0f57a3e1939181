//! A debate over one completion, as a judge with a check budget sees it.
//!
//! The attacker (a learned critic) points at the `turns` steps it finds most
//! suspicious, claiming each wrong. The defender concedes or contests each
//! pointer. The judge takes a concession for a found flaw, and verifies the
//! first `checks` contested pointers in the attacker's order, each check
//! misread with probability `check_noise`. The completion sinks when a step
//! is conceded or a check reads wrong; otherwise the judge knows no more
//! than it did alone.
//!
//! Budget and noise are what give the defender a move: with fewer checks
//! than pointers, a concession of a pointer the judge would not reach still
//! sinks the answer. An honest defender concedes the pointed steps its own
//! learned critic believes wrong. A defender trained to win has no better
//! policy than to contest every pointer (a concession always loses, a
//! contest only when checked and read wrong), so its debate is judged as one
//! without a defender: the dishonest defender is that policy, stated rather
//! than trained.

use serde::{Deserialize, Serialize};

/// Who answers the attacker's pointers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Defender {
    /// Concedes each pointed step its learned critic believes wrong (P >= 0.5), contests the rest.
    Honest,
    /// Trained to win, not to be right: contests every pointer.
    Dishonest,
}

impl Defender {
    pub fn as_str(self) -> &'static str {
        match self {
            Defender::Honest => "honest",
            Defender::Dishonest => "dishonest",
        }
    }
}

/// The moves of a debate over one completion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Moves {
    /// The attacker's pointers, most suspicious first.
    pub pointers: Vec<usize>,
    /// The pointers the defender concedes, in the attacker's order.
    pub conceded: Vec<usize>,
    /// The contested pointers the judge verifies: the first `checks` of them.
    pub checked: Vec<usize>,
}

impl Moves {
    /// Play a debate: `pointers` the attacker's, `beliefs` the defender's
    /// P(wrong) of each step (read by an honest defender only), `checks` the
    /// judge's budget (`None`: every contested pointer).
    pub fn play(
        pointers: Vec<usize>,
        defender: Option<Defender>,
        beliefs: &[f64],
        checks: Option<usize>,
    ) -> Self {
        let conceded: Vec<usize> = match defender {
            Some(Defender::Honest) => pointers
                .iter()
                .copied()
                .filter(|&k| beliefs.get(k).is_some_and(|&p| p >= 0.5))
                .collect(),
            Some(Defender::Dishonest) | None => vec![],
        };
        let checked = pointers
            .iter()
            .copied()
            .filter(|k| !conceded.contains(k))
            .take(checks.unwrap_or(usize::MAX))
            .collect();
        Self {
            pointers,
            conceded,
            checked,
        }
    }

    /// The probability that the completion survives: nothing conceded, and
    /// every checked step read right (`wrong` says which steps truly are;
    /// each check is misread with probability `noise`).
    pub fn p_survives(&self, wrong: impl Fn(usize) -> bool, noise: f64) -> f64 {
        if !self.conceded.is_empty() {
            return 0.0;
        }
        self.checked
            .iter()
            .map(|&k| if wrong(k) { noise } else { 1.0 - noise })
            .product()
    }

    /// The step the judge takes for wrong when the completion sinks: the
    /// first conceded, else the first checked that is wrong, else the first checked.
    pub fn sinking_step(&self, wrong: impl Fn(usize) -> bool) -> Option<usize> {
        self.conceded
            .first()
            .or_else(|| self.checked.iter().find(|&&k| wrong(k)))
            .or(self.checked.first())
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_honest_defender_concedes_what_it_believes_wrong_and_the_judge_checks_the_rest_within_budget(
    ) {
        let beliefs = [0.1, 0.9, 0.2, 0.7];
        let m = Moves::play(vec![2, 1, 0, 3], Some(Defender::Honest), &beliefs, Some(1));
        assert_eq!(m.conceded, vec![1, 3]);
        assert_eq!(m.checked, vec![2]);
        assert_eq!(m.p_survives(|_| false, 0.1), 0.0, "a concession sinks");
        let dishonest = Moves::play(
            vec![2, 1, 0, 3],
            Some(Defender::Dishonest),
            &beliefs,
            Some(2),
        );
        assert_eq!(
            dishonest,
            Moves::play(vec![2, 1, 0, 3], None, &[], Some(2)),
            "a defender trained to win contests all: judged as no defender"
        );
        assert_eq!(dishonest.checked, vec![2, 1]);
        // Checks misread with probability 0.1: a right step survives 0.9, a wrong one 0.1.
        let p = dishonest.p_survives(|k| k == 1, 0.1);
        assert!((p - 0.9 * 0.1).abs() < 1e-12, "{p}");
        assert_eq!(dishonest.sinking_step(|k| k == 1), Some(1));
        assert_eq!(dishonest.sinking_step(|_| false), Some(2));
        assert_eq!(Moves::default().sinking_step(|_| true), None);
    }
}
