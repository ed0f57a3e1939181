//! The analysis layer: from a run's records (any run directory, or a
//! several-seed root) to what people read — curves with bootstrap intervals
//! and fits, the paired findings and each kind's verdict, gold at matched KL,
//! judges and the formal-goal records across seeds, and the files `curves.csv`, `fits.json`,
//! `findings.json`, `metrics.jsonl`. It reads what the runner wrote and is
//! never imported by it, so findings can be re-derived from any run directory
//! (`goodhart report DIR`).

pub mod across;
pub mod curves;
pub mod debate;
pub mod findings;
pub mod formal;
pub mod judges;
pub mod matched;
pub mod outputs;
pub mod range;
pub mod red_team;
pub mod rrm;
pub mod seeds;
pub mod sweep;
