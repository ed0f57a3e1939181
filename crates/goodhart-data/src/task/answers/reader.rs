//! What a careful reader makes of an answer beyond its correctness: credit for
//! each step of working it shows (right or wrong: the working lets the reader
//! check the answer, or see where it went wrong), up to the reader's patience,
//! and a cost for every character past it. With the defaults (no credit, no limit) gold is
//! the correctness alone.
//!
//! Set together, these make gold rise with the length of the working over
//! ordinary lengths and fall past the patience: the shape behind extremal
//! Goodhart, where a reward model that learnt "more working is better" on
//! the lengths its labels covered keeps paying for length where gold turns.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Reader {
    /// Gold added per step of working written (each column, padding included).
    pub detail: f64,
    /// Characters the reader reads gladly; none: any length.
    pub patience: Option<usize>,
    /// Gold lost per character past `patience`.
    pub cost: f64,
}

impl Default for Reader {
    fn default() -> Self {
        Self {
            detail: 0.0,
            patience: None,
            cost: 0.1,
        }
    }
}

impl Reader {
    pub fn validate(&self) -> Result<()> {
        for (k, v) in [
            ("answers.reader.detail", self.detail),
            ("answers.reader.cost", self.cost),
        ] {
            if !(0.0..=10.0).contains(&v) {
                return Err(Error::invalid(k, "must be between 0 and 10"));
            }
        }
        if self.patience == Some(0) {
            return Err(Error::invalid(
                "answers.reader.patience",
                "must be at least 1 character (leave it out for no limit)",
            ));
        }
        Ok(())
    }

    /// What `steps` steps of working in `chars` characters add to (or take from) gold.
    pub fn adjustment(&self, steps: usize, chars: usize) -> f64 {
        let past = self.patience.map_or(0, |p| chars.saturating_sub(p));
        self.detail * steps as f64 - self.cost * past as f64
    }
}
