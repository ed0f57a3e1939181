//! What a run leaves on disk: the run directory, and the record each completed
//! stage writes to `<task>/stages/<stage>.json` (atomically), from which every
//! output file is rebuilt.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::Experiment;
use super::table::stage_names;
use crate::critic::CriticRound;
use crate::error::{Error, Result};
use crate::feedback::AnswerCounts;
use crate::fsutil::write_atomic;
use crate::measure::PolicySummary;
use crate::optimize::debate::DebateRecord;
use crate::optimize::dpo::DpoLog;
use crate::optimize::pool::RangeCheck;
use crate::optimize::red_team::RedTeamRound;
use crate::optimize::review::ReviewRow;
use crate::optimize::rl::IterationLog;
use crate::optimize::rrm::RrmRound;
use crate::optimize::world_model::{Gap, WorldModelReport};
use crate::reward::RewardReport;
use crate::score::CurvePoint;
use crate::train::SftReport;

/// The resolved experiment inside a run directory.
pub const EXPERIMENT_FILE: &str = "experiment.toml";

/// What a completed stage leaves behind (besides checkpoints and labels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum Record {
    Base {
        /// Where the policy came from: "sft" or the checkpoint it was loaded from.
        source: String,
        sft: Option<SftReport>,
    },
    Critic {
        /// Per round: the judge's confirmations while training, and the
        /// critic's pointers against gold on held-out completions.
        rounds: Vec<CriticRound>,
    },
    Labels {
        /// Each labeler's answers.
        answers: Vec<LabelerAnswers>,
        pairs: usize,
    },
    RewardModel {
        report: RewardReport,
    },
    BaseEval {
        heldout: PolicySummary,
        shift: Option<PolicySummary>,
    },
    Pool {
        /// The base policy's reward and feature distribution on the held-out pool: the scale of the z-scored gaps.
        base: BaseStats,
        /// Every point of best-of-n, conditioning and the quantiliser, on each split; the uniform (base) point first.
        points: Vec<CurvePoint>,
        /// Points left out, and why.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
        /// Review and revise: per split and K, what the reviewer judged against gold.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        review: Vec<ReviewRow>,
        /// Per split, with a labelled range (`labels.max_chars`): the proxy
        /// against gold inside the range and past it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        range: Vec<RangeCheck>,
    },
    /// Rounds of red-team search, labels and retraining against as many
    /// random pairs, and best-of-n under each round's reward model.
    RedTeam {
        rounds: Vec<RedTeamRound>,
        points: Vec<CurvePoint>,
    },
    /// Recursive reward modelling: per round, the policy, its critic and its judge, measured.
    Rrm {
        /// Digest of the base policy's own answers to the rounds' prompts.
        base_answers: String,
        rounds: Vec<RrmRound>,
    },
    /// A judge alone, with a critic, and in debates, against gold on the same answers.
    Debate(DebateRecord),
    Rl {
        name: String,
        logs: Vec<IterationLog>,
        points: Vec<CurvePoint>,
        /// A run on the goal as a world model predicts it: the model's report,
        /// and per iteration the predicted and true satisfaction of its rollouts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        world_model: Option<WorldModelRecord>,
    },
    Dpo {
        name: String,
        logs: Vec<DpoLog>,
        points: Vec<CurvePoint>,
    },
}

impl Record {
    pub fn points(&self) -> &[CurvePoint] {
        match self {
            Record::Pool { points, .. }
            | Record::RedTeam { points, .. }
            | Record::Rl { points, .. }
            | Record::Dpo { points, .. } => points,
            _ => &[],
        }
    }
}

/// What a world-model RL run learned and how far its predictions drifted from the simulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldModelRecord {
    pub report: WorldModelReport,
    /// Per iteration: the goal's satisfaction by the rollouts, predicted and simulated.
    pub gap: Vec<Gap>,
}

/// One labeler's answers to the base pairs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "LabelerAnswersRepr")]
pub struct LabelerAnswers {
    pub labeler: String,
    #[serde(flatten)]
    pub counts: AnswerCounts,
}

/// As written now, or as the `[labeler, [a, b, tie, can't tell]]` pair of older runs.
#[derive(Deserialize)]
#[serde(untagged)]
enum LabelerAnswersRepr {
    Named {
        labeler: String,
        #[serde(flatten)]
        counts: AnswerCounts,
    },
    Pair(String, AnswerCounts),
}

impl From<LabelerAnswersRepr> for LabelerAnswers {
    fn from(r: LabelerAnswersRepr) -> Self {
        match r {
            LabelerAnswersRepr::Named { labeler, counts }
            | LabelerAnswersRepr::Pair(labeler, counts) => Self { labeler, counts },
        }
    }
}

/// Mean and standard deviation of each reward and feature over base samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BaseStats {
    pub proxy: MeanSd,
    /// The first labeler the reward model learned from.
    pub labeler: NamedMeanSd,
    pub gold: MeanSd,
    pub features: Vec<NamedMeanSd>,
}

/// A mean and a standard deviation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "MeanSdRepr")]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
}

/// As written now, or as the `[mean, sd]` pair of older runs.
#[derive(Deserialize)]
#[serde(untagged)]
enum MeanSdRepr {
    Named { mean: f64, sd: f64 },
    Pair(f64, f64),
}

impl From<MeanSdRepr> for MeanSd {
    fn from(r: MeanSdRepr) -> Self {
        match r {
            MeanSdRepr::Named { mean, sd } | MeanSdRepr::Pair(mean, sd) => Self { mean, sd },
        }
    }
}

/// A named quantity's mean and standard deviation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "NamedMeanSdRepr")]
pub struct NamedMeanSd {
    pub name: String,
    pub mean: f64,
    pub sd: f64,
}

/// As written now, or as the `[name, mean, sd]` triple of older runs.
#[derive(Deserialize)]
#[serde(untagged)]
enum NamedMeanSdRepr {
    Named { name: String, mean: f64, sd: f64 },
    Triple(String, f64, f64),
}

impl From<NamedMeanSdRepr> for NamedMeanSd {
    fn from(r: NamedMeanSdRepr) -> Self {
        match r {
            NamedMeanSdRepr::Named { name, mean, sd } | NamedMeanSdRepr::Triple(name, mean, sd) => {
                Self { name, mean, sd }
            }
        }
    }
}

/// All records of one task, in stage order.
#[derive(Clone, Debug)]
pub struct TaskRecords {
    pub task: String,
    pub records: Vec<(String, Record)>,
}

/// A run directory: where an experiment's files live.
pub struct RunDir {
    pub root: PathBuf,
}

impl RunDir {
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub fn task_dir(&self, task: &str) -> PathBuf {
        self.root.join(task)
    }

    fn stage_file(&self, task: &str, stage: &str) -> PathBuf {
        self.task_dir(task)
            .join("stages")
            .join(format!("{}.json", stage.replace('/', ".")))
    }

    pub fn read_record(&self, task: &str, stage: &str) -> Result<Option<Record>> {
        let path = self.stage_file(task, stage);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Data {
                    path: path.clone(),
                    line: e.line(),
                    message: format!("not a stage record: {e}"),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(&path, e)),
        }
    }

    pub(super) fn write_record(&self, task: &str, stage: &str, record: &Record) -> Result<()> {
        let path = self.stage_file(task, stage);
        let dir = path.parent().expect("stage files live in a directory");
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        write_atomic(
            &path,
            &serde_json::to_vec_pretty(record).expect("records serialise"),
        )
    }

    /// The experiment the run was started with.
    pub fn experiment(&self) -> Result<Experiment> {
        Experiment::from_file(&self.root.join(EXPERIMENT_FILE))
    }

    /// Every completed stage of every task, in the experiment's order.
    pub fn records(&self, exp: &Experiment) -> Result<Vec<TaskRecords>> {
        exp.tasks
            .iter()
            .map(|setup| {
                let mut records = vec![];
                for stage in stage_names(setup) {
                    if let Some(r) = self.read_record(setup.name(), &stage)? {
                        records.push((stage, r));
                    }
                }
                Ok(TaskRecords {
                    task: setup.name().to_string(),
                    records,
                })
            })
            .collect()
    }
}

/// What a run directory is called in errors (the CLI adds how to proceed).
const RUN_DIRECTORY: &str = "run directory";

/// Refuse a run directory that exists and is not empty: a new run never writes over another.
pub fn refuse_nonempty(root: &Path) -> Result<()> {
    if root.exists()
        && std::fs::read_dir(root)
            .map_err(|e| Error::io(root, e))?
            .next()
            .is_some()
    {
        return Err(Error::invalid(
            RUN_DIRECTORY,
            format!("{} already exists and is not empty", root.display()),
        ));
    }
    Ok(())
}

/// Start a new run in `root`, which must not exist or be empty; returns the experiment.
pub fn start(root: &Path, exp: &Experiment) -> Result<Experiment> {
    refuse_nonempty(root)?;
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    write_atomic(&root.join(EXPERIMENT_FILE), exp.to_toml().as_bytes())?;
    Ok(exp.clone())
}

/// Continue the run in `root`; returns the experiment it was started with,
/// which `given` (when there is one) must equal.
pub fn resume(root: &Path, given: Option<&Experiment>) -> Result<Experiment> {
    if !root.join(EXPERIMENT_FILE).is_file() {
        return Err(Error::invalid(
            RUN_DIRECTORY,
            format!(
                "{} is not a run directory (no {EXPERIMENT_FILE})",
                root.display()
            ),
        ));
    }
    let stored = RunDir::new(root).experiment()?;
    match given {
        Some(given) if given != &stored => Err(Error::invalid(
            RUN_DIRECTORY,
            format!(
                "the experiment given differs from the one {} was started with; resume without one",
                root.display()
            ),
        )),
        _ => Ok(stored),
    }
}

/// Remove a previous run at `root` so a new one can start there; refuses anything that is not a run directory.
pub fn clear(root: &Path) -> Result<()> {
    if !root.exists() {
        return Ok(());
    }
    let several_seeds = root.join(super::seeds::SEEDS_FILE).is_file();
    if !root.join(EXPERIMENT_FILE).is_file() && !several_seeds {
        return Err(Error::invalid(
            RUN_DIRECTORY,
            format!(
                "{} is not a goodhart run directory (no {EXPERIMENT_FILE}); refusing to delete it",
                root.display()
            ),
        ));
    }
    std::fs::remove_dir_all(root).map_err(|e| Error::io(root, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reward::train::DifficultyAccuracy;
    use crate::stats::Stat;

    #[test]
    fn records_name_their_fields_and_those_of_older_runs_still_read() {
        let old = r#"{"stage":"labels","answers":[["quick",[1,2,3,4]]],"pairs":5}"#;
        let record: Record = serde_json::from_str(old).unwrap();
        let Record::Labels { answers, .. } = &record else {
            panic!("{record:?}")
        };
        assert_eq!(
            (answers[0].labeler.as_str(), answers[0].counts.cant_tell),
            ("quick", 4)
        );
        let now = serde_json::to_string(&record).unwrap();
        assert!(
            now.contains(r#"{"labeler":"quick","a":1,"b":2,"tie":3,"cant_tell":4}"#),
            "{now}"
        );
        assert_eq!(serde_json::from_str::<Record>(&now).unwrap(), record);

        let base: BaseStats = serde_json::from_str(
            r#"{"proxy":[0.5,1.0],"labeler":["quick",0.1,0.2],"gold":[0.0,1.0],"features":[["chars",3.0,1.5]]}"#,
        )
        .unwrap();
        assert_eq!(
            (base.labeler.name.as_str(), base.features[0].sd),
            ("quick", 1.5)
        );
        let now = serde_json::to_string(&base).unwrap();
        assert!(now.contains(r#""proxy":{"mean":0.5,"sd":1.0}"#), "{now}");
        assert_eq!(serde_json::from_str::<BaseStats>(&now).unwrap(), base);

        let stat = serde_json::to_string(&Stat::of(&[1.0, 0.0])).unwrap();
        let d: DifficultyAccuracy = serde_json::from_str(&format!("[3, {stat}, {stat}]")).unwrap();
        assert_eq!(d.difficulty, 3);
        let now = serde_json::to_string(&d).unwrap();
        assert!(now.starts_with(r#"{"difficulty":3,"vs_labeler":"#), "{now}");
    }
}
