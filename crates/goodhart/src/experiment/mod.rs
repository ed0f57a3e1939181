//! Experiments: the config file, and the stages of a run as plain functions.

pub mod analysis;
pub mod config;
pub mod run;
pub mod seeds;
pub mod stages;
pub mod strategies;

pub use config::{Experiment, LabelsConfig, TaskKind, TaskSetup};
pub use strategies::{EvalConfig, StrategiesConfig};
