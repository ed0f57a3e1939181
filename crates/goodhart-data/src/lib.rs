//! goodhart-data: the second layer. The bundled tasks (prompts from a seed,
//! gold, what a labeler can perceive), the simulated labelers, the label store
//! and the file formats people bring (JSONL preference pairs). It sees the
//! model layer and nothing above it.

// `!(x > 0.0)` is how goodhart rejects NaN along with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod feedback;
pub mod formats;
pub mod task;

// The model layer's modules under their own names, so a path reads the same in every layer.
pub use goodhart_model::{error, fsutil, model, progress, rng, runtime, tokenize, train};
pub use goodhart_model::{Error, Result};
