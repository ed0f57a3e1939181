//! Experiments: the config file, and the stages of a run as plain functions.

pub mod config;
mod critics;
mod debate;
mod filtering;
pub mod launch;
mod policies;
pub mod record;
mod red_team;
pub mod reference;
mod rrm;
pub mod run;
mod schedule;
pub mod seeds;
pub mod stages;
pub mod strategies;
pub mod sweep;
pub mod table;

pub use config::{Experiment, GoodhartKind, LabelsConfig, TaskKind, TaskSetup};
pub use critics::with_critics_from;
pub use record::{clear, resume, start, Record, RunDir, TaskRecords, EXPERIMENT_FILE};
pub use run::{run_tasks, Prepared, RunOptions};
pub use strategies::{EvalConfig, StrategiesConfig};
pub use table::{stage_names, stages};
