//! Training loops shared by the strategies: the optimiser and supervised fine-tuning.

pub mod optim;
pub mod sft;

pub use optim::{LossAt, OptimConfig, OptimKeys, StepStats, Trainer};
pub use sft::{train_sft, Example, SftConfig, SftKeys, SftReport};
