//! Feedback: simulated labelers and the store where every judgement is kept.

pub mod assist;
pub mod assistant;
pub mod debate;
pub mod labeler;
pub mod people;
pub mod reviews;
pub mod sessions;
pub mod simulate;
pub mod store;

pub use assist::{people_by_assistant, Assist, AssistedPeople, PairSide, Pointer};
pub use assistant::{AssistantConfig, Critic};
pub use debate::{Defender, Moves};
pub use labeler::{Answer, AnswerCounts, Labeler, LabelerConfig};
pub use people::{HumanLabel, HumanProgress, LabelerStats, QueuedPair, Refusal, Tally};
pub use reviews::{
    queue_reviews, GoalTally, QueuedReview, ReviewAnswer, ReviewCandidate, ReviewProgress,
    ReviewQueueConfig, Rollout,
};
pub use sessions::{Session, SessionLimits};
pub use simulate::{label_pairs, queue_pairs, simulate_labels, LabelsConfig, PolicyTag};
pub use store::{Comparison, Filter, LabelStore, NewComparison, NewSample, OnBadLine};
