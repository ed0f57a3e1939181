//! Adversarial testing and training of the reward model: a red team searches
//! base-policy completions for those the reward model likes and a gold
//! estimate the red team *is* given does not (the labeler's own score: it is
//! never shown gold), has the labeler compare each find with the labeler's
//! favourite answer to the same prompt, and the reward model is retrained with
//! those labels. The same number of labels on random pairs of the same
//! completions is the comparison arm (the on-policy alternative).

use std::collections::HashSet;

use rand::Rng as _;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optimize::pool::Agreement;
use crate::rng::Rng;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedTeamConfig {
    /// Rounds of search, label, retrain (0: no red team).
    pub rounds: usize,
    /// Pairs labelled per round, in each arm.
    pub pairs: usize,
    /// Training prompts searched (a round's finds are on prompts no earlier round of its arm labelled).
    pub prompts: usize,
    /// Base-policy samples searched per prompt.
    pub samples: usize,
    /// Also train the task's first RL strategy against every round's
    /// red-team and random-label reward model (curves `<name>-red-team-<r>`
    /// and `<name>-random-<r>`, beside `<name>` against round 0's).
    pub ppo: bool,
}

impl Default for RedTeamConfig {
    fn default() -> Self {
        Self {
            rounds: 0,
            pairs: 150,
            prompts: 512,
            samples: 16,
            ppo: false,
        }
    }
}

impl RedTeamConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rounds == 0 {
            return Ok(());
        }
        if self.rounds > 20 {
            return Err(Error::invalid("red_team.rounds", "must be at most 20"));
        }
        if self.samples < 2 {
            return Err(Error::invalid(
                "red_team.samples",
                "must be at least 2: a find is compared with another answer to its prompt",
            ));
        }
        if self.pairs == 0 || self.pairs * self.rounds > self.prompts {
            return Err(Error::invalid(
                "red_team.pairs",
                format!(
                    "must be at least 1, and rounds x pairs ({} x {}) at most the prompts searched ({}): each pair is on a prompt of its own",
                    self.rounds, self.pairs, self.prompts
                ),
            ));
        }
        Ok(())
    }
}

/// Which labels a round adds: the red team's finds, or random pairs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    RedTeam,
    Random,
}

impl Arm {
    pub fn name(self) -> &'static str {
        match self {
            Arm::RedTeam => "red_team",
            Arm::Random => "random",
        }
    }
}

/// One pair to label: indices into the searched samples (`first` is the
/// red team's find, `second` the labeler's favourite of the same prompt).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pick {
    pub prompt: usize,
    pub first: usize,
    pub second: usize,
}

/// What one searched sample is worth to the proxy and to the labeler, and its text.
pub struct Searched<'a> {
    pub proxy: f64,
    pub labeler: f64,
    pub text: &'a str,
}

fn z_scores(x: &[f64]) -> Vec<f64> {
    let n = x.len().max(1) as f64;
    let mean = x.iter().sum::<f64>() / n;
    let sd = (x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    x.iter().map(|v| (v - mean) / sd.max(1e-9)).collect()
}

/// `pairs` pairs on prompts not in `used` (`per_prompt` samples each, grouped
/// by prompt). The red team: per prompt, the sample the proxy likes most
/// above the labeler (z-scored over every searched sample), against the
/// labeler's favourite other answer; the prompts where that gap is largest.
/// Random: two distinct answers of a prompt drawn at random.
pub fn pick(
    arm: Arm,
    searched: &[Searched],
    per_prompt: usize,
    pairs: usize,
    used: &HashSet<usize>,
    rng: &mut Rng,
) -> Vec<Pick> {
    use rand::seq::SliceRandom as _;
    let zp = z_scores(&searched.iter().map(|s| s.proxy).collect::<Vec<_>>());
    let zl = z_scores(&searched.iter().map(|s| s.labeler).collect::<Vec<_>>());
    let n_prompts = searched.len() / per_prompt.max(1);
    let mut candidates: Vec<(f64, Pick)> = vec![];
    for p in (0..n_prompts).filter(|p| !used.contains(p)) {
        let idx: Vec<usize> = (p * per_prompt..(p + 1) * per_prompt).collect();
        let pair = match arm {
            Arm::RedTeam => {
                let first = *idx
                    .iter()
                    .max_by(|&&a, &&b| (zp[a] - zl[a]).total_cmp(&(zp[b] - zl[b])).then(b.cmp(&a)))
                    .expect("samples");
                let second = idx
                    .iter()
                    .copied()
                    .filter(|&j| searched[j].text != searched[first].text)
                    .max_by(|&a, &b| {
                        searched[a]
                            .labeler
                            .total_cmp(&searched[b].labeler)
                            .then(b.cmp(&a))
                    });
                second.map(|second| (zp[first] - zl[first], first, second))
            }
            Arm::Random => {
                let mut order = idx.clone();
                order.shuffle(rng);
                let first = order[0];
                order
                    .iter()
                    .copied()
                    .find(|&j| searched[j].text != searched[first].text)
                    .map(|second| (rng.random::<f64>(), first, second))
            }
        };
        if let Some((score, first, second)) = pair {
            candidates.push((
                score,
                Pick {
                    prompt: p,
                    first,
                    second,
                },
            ));
        }
    }
    // Largest score first; ties by prompt order.
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.prompt.cmp(&b.1.prompt)));
    candidates.into_iter().take(pairs).map(|(_, p)| p).collect()
}

/// One round of one arm, as measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RedTeamRound {
    pub arm: Arm,
    pub round: usize,
    /// Pairs labelled this round.
    pub pairs: usize,
    /// Of them, the share the reward model being tested ordered against gold: failures found.
    pub failures: f64,
    /// Of the failures, the share whose label agrees with gold: caught by the labeler.
    pub caught: Option<f64>,
    /// Comparisons the retrained reward model learnt from (the base labels and every round's so far).
    pub comparisons: usize,
    /// The retrained reward model against gold on pairs of held-out base answers.
    pub agreement: Option<Agreement>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn searched(v: &[(f64, f64, &'static str)]) -> Vec<Searched<'static>> {
        v.iter()
            .map(|&(proxy, labeler, text)| Searched {
                proxy,
                labeler,
                text,
            })
            .collect()
    }

    #[test]
    fn the_red_team_pairs_what_the_proxy_likes_above_the_labeler_with_the_labelers_favourite() {
        // Three prompts of three samples: (proxy, labeler score, text).
        let s = searched(&[
            // Prompt 0: sample 1 is liked by the proxy, not the labeler (a large gap).
            (0.0, 0.0, "a"),
            (3.0, -1.0, "b"),
            (0.5, 1.0, "c"),
            // Prompt 1: proxy and labeler agree (a small gap).
            (1.0, 1.0, "d"),
            (0.0, 0.0, "e"),
            (-1.0, -1.0, "f"),
            // Prompt 2: a gap, but the labeler's favourite is the same text.
            (2.0, -1.0, "g"),
            (0.0, -2.0, "g"),
            (0.0, -2.0, "g"),
        ]);
        let mut rng = crate::rng::stream(0, "test");
        let picks = pick(Arm::RedTeam, &s, 3, 2, &HashSet::new(), &mut rng);
        // Prompt 2 has no other answer to pair with; prompt 0's gap is the largest.
        assert_eq!(picks.len(), 2, "{picks:?}");
        assert_eq!(
            picks[0],
            Pick {
                prompt: 0,
                first: 1,
                second: 2
            }
        );
        // The second: prompt 1, against the labeler's favourite other answer.
        assert_eq!(picks[1].prompt, 1);
        let favourite = if picks[1].first == 3 { 4 } else { 3 };
        assert_eq!(picks[1].second, favourite, "{picks:?}");
        // A prompt used in an earlier round is not searched again.
        let used: HashSet<usize> = [0].into_iter().collect();
        let again = pick(Arm::RedTeam, &s, 3, 2, &used, &mut rng);
        assert!(again.iter().all(|p| p.prompt != 0), "{again:?}");
        // Random pairs: two distinct answers of unused prompts.
        let random = pick(Arm::Random, &s, 3, 3, &HashSet::new(), &mut rng);
        assert_eq!(random.len(), 2, "prompt 2 has one distinct answer");
        for p in &random {
            assert_ne!(s[p.first].text, s[p.second].text);
            assert_eq!(p.first / 3, p.prompt);
            assert_eq!(p.second / 3, p.prompt);
        }
    }

    #[test]
    fn a_red_team_needs_a_prompt_of_its_own_for_every_pair() {
        let cfg = RedTeamConfig {
            rounds: 4,
            pairs: 200,
            prompts: 512,
            samples: 16,
            ppo: false,
        };
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("red_team.pairs") && err.contains("4 x 200"),
            "{err}"
        );
        assert!(RedTeamConfig {
            samples: 1,
            rounds: 1,
            ..RedTeamConfig::default()
        }
        .validate()
        .unwrap_err()
        .to_string()
        .contains("red_team.samples"));
        assert!(RedTeamConfig::default().validate().is_ok());
    }
}
