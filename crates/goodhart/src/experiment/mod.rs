//! Experiments: the config file, and the stages of a run as plain functions.

pub mod config;
pub mod stages;

pub use config::{Experiment, TaskKind, TaskSetup};
