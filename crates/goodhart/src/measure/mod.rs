//! Measurement: what every completion is worth to gold, to each labeler and to
//! the proxy, its features, and summaries with their standard errors.

pub mod bootstrap;
pub mod curve;
pub mod fit;
pub mod policy;
pub mod stats;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::feedback::Labeler;
use crate::model::sample::Sample;
use crate::task::Task;

pub use curve::{CurvePoint, PerPrompt};
pub use stats::{pearson, Stat};

/// Everything measured about one completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub prompt_index: usize,
    pub completion: String,
    pub gold: f64,
    /// One score per labeler, in the order given.
    pub labeler: Vec<f64>,
    /// The task's named features.
    pub features: Vec<f64>,
    pub difficulty: u32,
    /// Formal-goal satisfaction, where the task has one.
    pub spec: Option<f64>,
    /// log pi(completion) under the policy that sampled it.
    pub logprob: f64,
    /// The proxy reward model's score, when there is one.
    pub proxy: Option<f64>,
    /// Cut at the length limit instead of ending with EOS.
    #[serde(default)]
    pub truncated: bool,
    /// Tokens generated (EOS included when there is one).
    #[serde(default)]
    pub n_tokens: usize,
}

/// Score samples of `prompts` with gold, every labeler and the task's features.
pub fn score_samples(
    task: &dyn Task,
    labelers: &[Labeler],
    prompts: &[String],
    samples: &[Sample],
) -> Result<Vec<Scored>> {
    samples
        .iter()
        .map(|s| {
            let prompt = &prompts[s.prompt_index];
            Ok(Scored {
                prompt_index: s.prompt_index,
                completion: s.text.clone(),
                gold: task.gold(prompt, &s.text)?,
                labeler: labelers
                    .iter()
                    .map(|l| l.score(prompt, &s.text))
                    .collect::<Result<_>>()?,
                features: task.features(prompt, &s.text)?,
                difficulty: task.difficulty(prompt)?,
                spec: task.spec_satisfied(prompt, &s.text),
                logprob: s.logprob(),
                proxy: None,
                truncated: !s.finished,
                n_tokens: s.tokens.len(),
            })
        })
        .collect()
}

/// How a labeler's view of a policy's completions relates to gold, by difficulty.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabelerFidelity {
    /// (difficulty, share of completions with gold = +1).
    pub accuracy: Vec<(u32, Stat)>,
    /// (difficulty, share of pairs with different gold where the labeler's score ranks them as gold does).
    pub agreement: Vec<(u32, Stat)>,
    /// Correlation of the labeler's score with gold over all completions.
    #[serde(deserialize_with = "stats::null_as_nan")]
    pub correlation: f64,
}

/// Compare a labeler with gold on scored samples, `per_prompt` consecutive samples per prompt.
pub fn labeler_fidelity(
    scored: &[Scored],
    labeler_index: usize,
    per_prompt: usize,
) -> LabelerFidelity {
    let mut difficulties: Vec<u32> = scored.iter().map(|s| s.difficulty).collect();
    difficulties.sort_unstable();
    difficulties.dedup();
    let mut fid = LabelerFidelity::default();
    for &d in &difficulties {
        let correct: Vec<f64> = scored
            .iter()
            .filter(|s| s.difficulty == d)
            .map(|s| f64::from(s.gold == 1.0))
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
