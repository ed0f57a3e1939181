//! goodhart-score: the third layer. Everything that puts a number on a
//! completion (gold, each labeler, the proxy reward model, a formal spec, a
//! policy's log-probabilities), the learned reward models themselves, and the
//! summaries and statistics every later layer reports. Optimisers and
//! measurement both build on it; it sees only the model and data layers.

// `!(x > 0.0)` is how goodhart rejects NaN along with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod critic;
pub mod reward;
pub mod score;
pub mod stats;

pub use goodhart_data::{feedback, formats, task};
pub use goodhart_model::{error, fsutil, model, progress, rng, runtime, tokenize, train};
pub use goodhart_model::{Error, Result};
