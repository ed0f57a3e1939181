//! Feedback: simulated labelers and the store where every judgement is kept.

pub mod labeler;
pub mod store;

pub use labeler::{Answer, AssistantConfig, Labeler, LabelerConfig};
pub use store::{Comparison, Filter, LabelStore, NewComparison, NewSample, OnBadLine};
