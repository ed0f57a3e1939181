//! Experiments: the config file, and the stages of a run as plain functions.

pub mod analysis;
pub mod config;
mod critics;
mod filtering;
pub mod findings;
pub mod matched;
pub mod outputs;
mod policies;
pub mod record;
pub mod reference;
pub mod run;
pub mod seeds;
pub mod stages;
pub mod strategies;
pub mod sweep;

pub use config::{Experiment, GoodhartKind, LabelsConfig, TaskKind, TaskSetup};
pub use critics::{critic_sentence, share, with_critics_from, JudgesAcrossSeeds};
pub use record::{clear, resume, start, Record, RunDir, TaskRecords, EXPERIMENT_FILE};
pub use run::{run_tasks, stage_names, stages, RunOptions};
pub use strategies::{EvalConfig, StrategiesConfig};
