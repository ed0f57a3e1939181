//! `jsonl`: a user's own data. Prompts and preference pairs come from a
//! `{"prompt", "chosen", "rejected"}` JSONL file (the common form; goodhart's
//! optional `"chosen_gold"`/`"rejected_gold"`, `"tie"` and `"labeler"` fields are
//! read too), demonstrations for SFT from a `{"prompt", "completion"}` file or
//! else the chosen completions. Gold for a new completion is an external gold
//! reward model's score (a `goodhart rm train` output); without one, only the
//! completions the file scores have gold.
//!
//! The labels of a `goodhart run` on this task are the file's comparisons (the
//! labels stage imports them instead of simulating a labeler), so a labeler's
//! "score" of a completion has nothing to perceive: it is flat by design.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::{LabelerView, Perception, Split, Task};
use crate::error::{Error, Result};
use crate::formats::{read_jsonl, PreferenceLine};
use crate::train::Example;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JsonlConfig {
    /// Preference pairs: `{"prompt","chosen","rejected"}` lines.
    pub preferences: PathBuf,
    /// SFT demonstrations: `{"prompt","completion"}` lines (default: the chosen completions).
    pub demonstrations: Option<PathBuf>,
    /// Fraction of the prompts held out from training, for evaluation.
    pub heldout_fraction: f64,
    /// A reward-model directory whose score is gold for any completion.
    pub gold_model: Option<PathBuf>,
}

impl Default for JsonlConfig {
    fn default() -> Self {
        Self {
            preferences: PathBuf::new(),
            demonstrations: None,
            heldout_fraction: 0.1,
            gold_model: None,
        }
    }
}

impl JsonlConfig {
    pub fn validate(&self) -> Result<()> {
        if self.preferences.as_os_str().is_empty() {
            return Err(Error::invalid(
                "jsonl.preferences",
                "a {\"prompt\",\"chosen\",\"rejected\"} JSONL file is needed",
            ));
        }
        if !(0.0..1.0).contains(&self.heldout_fraction) {
            return Err(Error::invalid(
                "jsonl.heldout_fraction",
                "must be in [0, 1)",
            ));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DemonstrationLine {
    prompt: String,
    completion: String,
}

pub struct Jsonl {
    config: JsonlConfig,
    preferences: Vec<PreferenceLine>,
    train: Vec<String>,
    heldout: Vec<String>,
    demonstrations: Vec<Example>,
    gold_table: HashMap<(String, String), f64>,
    /// The `gold_model`, loaded by the scoring layer and handed over.
    gold_judge: Option<Box<dyn GoldJudge>>,
}

/// A judge whose score is gold for any completion: the task's `gold_model`
/// reward model, which the scoring layer loads (`goodhart::reward::build_task`)
/// and hands over, since this layer knows nothing of reward models.
pub trait GoldJudge: Send + Sync {
    fn judge(&self, prompt: &str, completion: &str) -> Result<f64>;
}

impl Jsonl {
    /// The task with only the gold scores its file gives; with a `gold_model`
    /// configured, [`Jsonl::with_gold_judge`] must hand the loaded model over.
    pub fn new(config: JsonlConfig, seed: u64) -> Result<Self> {
        config.validate()?;
        let preferences: Vec<PreferenceLine> = read_jsonl(&config.preferences)?;
        let mut seen = HashSet::new();
        let mut prompts: Vec<String> = preferences
            .iter()
            .filter(|p| seen.insert(p.prompt.clone()))
            .map(|p| p.prompt.clone())
            .collect();
        prompts.shuffle(&mut crate::rng::stream(seed, "jsonl/split"));
        let n_held = if prompts.len() < 2 {
            0
        } else {
            ((prompts.len() as f64 * config.heldout_fraction).ceil() as usize).max(1)
        };
        let heldout = prompts.split_off(prompts.len() - n_held);
        let train = prompts;
        let demonstrations = match &config.demonstrations {
            Some(path) => read_jsonl::<DemonstrationLine>(path)?
                .into_iter()
                .map(|d| Example {
                    prompt: d.prompt,
                    completion: d.completion,
                })
                .collect(),
            None => preferences
                .iter()
                .filter(|p| !p.tie)
                .map(|p| Example {
                    prompt: p.prompt.clone(),
                    completion: p.chosen.clone(),
                })
                .collect(),
        };
        let mut gold_table = HashMap::new();
        for p in &preferences {
            for (text, gold) in [(&p.chosen, p.chosen_gold), (&p.rejected, p.rejected_gold)] {
                if let Some(g) = gold {
                    gold_table.insert((p.prompt.clone(), text.clone()), g);
                }
            }
        }
        Ok(Self {
            config,
            preferences,
            train,
            heldout,
            demonstrations,
            gold_table,
            gold_judge: None,
        })
    }

    /// Judge gold with `judge` (the loaded `gold_model`) for any completion.
    pub fn with_gold_judge(mut self, judge: Box<dyn GoldJudge>) -> Self {
        self.gold_judge = Some(judge);
        self
    }

    /// The preference pairs, as read.
    pub fn preferences(&self) -> &[PreferenceLine] {
        &self.preferences
    }

    pub fn config(&self) -> &JsonlConfig {
        &self.config
    }

    fn held_out(&self, prompt: &str) -> bool {
        self.heldout.iter().any(|p| p == prompt)
    }
}

/// The features measured of every completion (`Task::features`).
pub const FEATURES: &[&str] = &["chars"];

impl Task for Jsonl {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn prompts(&self, split: Split) -> Vec<String> {
        match split {
            // No other distribution to shift to: the held-out prompts serve as
            // the shifted split, and the training prompts as its training side.
            Split::Train | Split::ShiftTrain => self.train.clone(),
            Split::Heldout | Split::Shift => self.heldout.clone(),
        }
    }

    fn demonstrations(&self, split: Split) -> Vec<Example> {
        let want_heldout = matches!(split, Split::Heldout | Split::Shift);
        self.demonstrations
            .iter()
            .filter(|e| self.held_out(&e.prompt) == want_heldout)
            .cloned()
            .collect()
    }

    fn gold(&self, prompt: &str, completion: &str) -> Result<f64> {
        if let Some(judge) = &self.gold_judge {
            return judge.judge(prompt, completion);
        }
        self.gold_table
            .get(&(prompt.to_string(), completion.to_string()))
            .copied()
            .ok_or_else(|| {
                Error::invalid(
                    "jsonl.gold_model",
                    "this completion has no gold score in the preferences file; give the task a gold_model to judge new completions",
                )
            })
    }

    fn perceive(&self, _: &str, _: &str, _: &LabelerView) -> Result<Perception> {
        Ok(Perception {
            verified: None,
            looks: vec![],
        })
    }

    fn look_names(&self) -> &'static [&'static str] {
        &[]
    }

    fn features(&self, _: &str, completion: &str) -> Result<Vec<f64>> {
        Ok(vec![completion.chars().count() as f64])
    }

    fn feature_names(&self) -> &'static [&'static str] {
        FEATURES
    }

    fn difficulty(&self, _: &str) -> Result<u32> {
        Ok(0)
    }

    fn n_steps(&self, _: &str, _: &str) -> usize {
        0
    }

    fn first_wrong_step(&self, _: &str, _: &str) -> Option<usize> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_prompts_pairs_demonstrations_and_gold_and_names_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let lines: Vec<String> = (0..20)
            .map(|i| {
                format!(
                    r#"{{"prompt":"Q{i}","chosen":"good {i}","rejected":"bad {i}","chosen_gold":1.0,"rejected_gold":-1.0}}"#
                )
            })
            .collect();
        let prefs = write(dir.path(), "p.jsonl", &(lines.join("\n") + "\n\n"));
        let cfg = JsonlConfig {
            preferences: prefs.clone(),
            heldout_fraction: 0.2,
            ..Default::default()
        };
        let t = Jsonl::new(cfg.clone(), 0).unwrap();
        let (train, held) = (t.prompts(Split::Train), t.prompts(Split::Heldout));
        assert_eq!((train.len(), held.len()), (16, 4));
        assert!(train.iter().all(|p| !held.contains(p)));
        assert_eq!(
            Jsonl::new(cfg.clone(), 0).unwrap().prompts(Split::Heldout),
            held,
            "the split follows the seed"
        );
        assert_eq!(t.demonstrations(Split::Train).len(), 16);
        assert_eq!(t.gold("Q3", "good 3").unwrap(), 1.0);
        assert_eq!(t.gold("Q3", "bad 3").unwrap(), -1.0);
        let err = t.gold("Q3", "something new").unwrap_err().to_string();
        assert!(err.contains("gold_model"), "{err}");

        let bad = write(
            dir.path(),
            "bad.jsonl",
            &format!("{}\n{{\"prompt\":\"x\",\"chosen\":\"y\"}}\n", lines[0]),
        );
        let err = Jsonl::new(
            JsonlConfig {
                preferences: bad,
                ..Default::default()
            },
            0,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            err.contains("bad.jsonl:2:") && err.contains("missing field `rejected`"),
            "{err}"
        );
        assert!(JsonlConfig::default().validate().is_err());
    }
}
