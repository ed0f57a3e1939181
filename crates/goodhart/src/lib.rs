//! goodhart: train language-model policies from feedback, and measure how far
//! optimisation against a learned reward drifts from what a careful judge wants.
//!
//! The library holds all logic and never prints or exits; the `goodhart`
//! binary parses arguments, shows progress and reports errors.

// `!(x > 0.0)` is how this crate rejects NaN along with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod error;
pub mod experiment;
pub mod feedback;
pub mod fsutil;
pub mod hf;
pub mod measure;
pub mod model;
pub mod optimize;
pub mod progress;
pub mod report;
pub mod reward;
pub mod rng;
pub mod runtime;
pub mod task;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};
