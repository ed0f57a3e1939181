//! goodhart-model: the first layer of goodhart. Tokenizers, the GPT-2 and
//! Llama transformers with their fused kernels, sampling with a KV cache,
//! checkpoints, Hugging Face loading, the optimiser and SFT, and the pieces
//! every later layer shares (the error type, the seeded random streams, atomic
//! files, progress). It knows nothing of tasks, labels or rewards.

// `!(x > 0.0)` is how goodhart rejects NaN along with the out-of-range values.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod error;
pub mod fsutil;
pub mod hf;
pub mod model;
pub mod progress;
pub mod rng;
pub mod runtime;
pub mod tokenize;
pub mod train;

pub use error::{Error, Result};
