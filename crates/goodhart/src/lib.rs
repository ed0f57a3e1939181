//! goodhart: train language-model policies from feedback, and measure how far
//! optimisation against a learned reward drifts from what a careful judge wants.
//!
//! This crate is the top of a stack of layers, each a crate, so the compiler
//! keeps every import pointing down the pipeline:
//!
//! ```text
//! goodhart-model   tokenizers, gpt2/llama, kernels, sampling, checkpoints, HF, optimiser
//!   -> goodhart-data    tasks, labelers, label store, file formats
//!   -> goodhart-score   reward sources, log-prob scoring, reward models, statistics
//!   -> goodhart         optimize | measure -> experiment -> report
//! ```
//!
//! Inside this crate, `optimize` and `measure` never import each other and
//! `experiment` never imports `report` (a test reads the sources to keep it so).
//! The lower layers' modules are re-exported under their own names, so a user
//! depends on this one crate. The library holds all logic and never prints or
//! exits; the `goodhart` binary parses arguments, shows progress and reports errors.

// `!(x > 0.0)` is how goodhart rejects NaN along with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod analysis;
pub mod experiment;
pub mod measure;
pub mod optimize;
pub mod report;

pub use goodhart_data::{feedback, formats, task};
pub use goodhart_model::{error, fsutil, hf, model, progress, rng, runtime, tokenize, train};
pub use goodhart_model::{Error, Result};
pub use goodhart_score::{critic, reward, score, stats};
