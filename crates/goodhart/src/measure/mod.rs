//! Measurement: a trained policy evaluated on a split, bootstrap intervals
//! over prompts, the Gao et al. fits of gold against KL, and how a labeler's
//! view relates to gold. Scoring itself is the layer below (`crate::score`).

pub mod bootstrap;
pub mod fit;
pub mod paired;
pub mod policy;

use serde::{Deserialize, Serialize};

use crate::score::Scored;
use crate::stats::{self, pearson, Stat};
use crate::task::Split;

/// A policy measured on one split: gold, each labeler, how each labeler
/// tracks gold, the task's features and the formal goal (what the base-policy
/// evaluation records, and `goodhart eval` prints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicySummary {
    pub split: Split,
    pub gold: Stat,
    pub labelers: Vec<(String, Stat)>,
    pub fidelity: Vec<(String, LabelerFidelity)>,
    pub features: Vec<(String, Stat)>,
    pub spec: Option<Stat>,
}

/// How a labeler's view of a policy's completions relates to gold, by difficulty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelerFidelity {
    /// (difficulty, share of completions that are right: the task's `correct`
    /// feature where it has one, else gold = +1).
    pub accuracy: Vec<(u32, Stat)>,
    /// (difficulty, share of pairs with different gold where the labeler's score ranks them as gold does).
    pub agreement: Vec<(u32, Stat)>,
    /// Correlation of the labeler's score with gold over all completions.
    #[serde(deserialize_with = "stats::null_as_nan")]
    pub correlation: f64,
}

/// Compare a labeler with gold on scored samples, `per_prompt` consecutive
/// samples per prompt; `correct` is the index of the task's `correct` feature, if any.
pub fn labeler_fidelity(
    scored: &[Scored],
    labeler_index: usize,
    per_prompt: usize,
    correct: Option<usize>,
) -> LabelerFidelity {
    let mut difficulties: Vec<u32> = scored.iter().map(|s| s.difficulty).collect();
    difficulties.sort_unstable();
    difficulties.dedup();
    let mut fid = LabelerFidelity::default();
    for &d in &difficulties {
        let correct: Vec<f64> = scored
            .iter()
            .filter(|s| s.difficulty == d)
            .map(|s| match correct {
                Some(c) => s.features[c],
                None => f64::from(s.gold == 1.0),
            })
            .collect();
        fid.accuracy.push((d, Stat::of(&correct)));
        let mut agree = vec![];
        for group in scored
            .chunks(per_prompt.max(1))
            .filter(|g| g[0].difficulty == d)
        {
            for i in 0..group.len() {
                for j in i + 1..group.len() {
                    let (a, b) = (&group[i], &group[j]);
                    if a.gold != b.gold {
                        let (la, lb) = (a.labeler[labeler_index], b.labeler[labeler_index]);
                        if la != lb {
                            agree.push(f64::from((la > lb) == (a.gold > b.gold)));
                        }
                    }
                }
            }
        }
        fid.agreement.push((d, Stat::of(&agree)));
    }
    let gold: Vec<f64> = scored.iter().map(|s| s.gold).collect();
    let lab: Vec<f64> = scored.iter().map(|s| s.labeler[labeler_index]).collect();
    fid.correlation = pearson(&gold, &lab);
    fid
}
