//! Assisted people: what an assistant (a critic's pointer, or a debate's
//! pointers turn by turn) showed beside a queued pair, and which queued pair,
//! with what assistance, each person's label answered. `label stats` then
//! compares assisted and unassisted people against gold.

use std::collections::BTreeMap;

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::store::{LabelStore, Writer};
use super::{Labeler, LabelerStats, Tally};
use crate::error::Result;
use crate::task::Task;

/// One side of a pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PairSide {
    A,
    B,
}

impl PairSide {
    fn as_str(self) -> &'static str {
        match self {
            PairSide::A => "a",
            PairSide::B => "b",
        }
    }
}

/// A step of one side's completion an assistant pointed at.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Pointer {
    /// The completion pointed into (in a debate, the other side's debater points).
    pub side: PairSide,
    /// 0-based; a critic's one pointer is turn 0.
    pub turn: usize,
    /// 0-based step of that completion.
    pub step: usize,
    /// The step's byte range in the completion.
    pub start: usize,
    pub end: usize,
}

/// What an assistant showed beside a queued pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Assist {
    /// The labeler of the experiment whose assistant pointed.
    pub assistant: String,
    /// Debate turns; `None`: a critic's one pointer per side.
    pub turns: Option<usize>,
    /// In turn order, A's before B's within a turn.
    pub pointers: Vec<Pointer>,
}

impl Assist {
    /// What `labeler`'s assistant shows beside the pair (`a`, `b`) of `prompt`,
    /// its scripted pointers drawn from `rng`; `None` when it has no assistant.
    pub fn of(
        labeler: &Labeler,
        task: &dyn Task,
        prompt: &str,
        a: &str,
        b: &str,
        rng: &mut crate::rng::Rng,
    ) -> Result<Option<Self>> {
        let Some(config) = labeler.assistant() else {
            return Ok(None);
        };
        let mut pointers = vec![];
        for (side, text) in [(PairSide::A, a), (PairSide::B, b)] {
            let spans = task.step_spans(prompt, text);
            for (turn, step) in labeler.pointers(prompt, text, rng)?.into_iter().enumerate() {
                let span = spans.get(step).cloned().unwrap_or(0..0);
                pointers.push(Pointer {
                    side,
                    turn,
                    step,
                    start: span.start,
                    end: span.end,
                });
            }
        }
        pointers.sort_by_key(|p| (p.turn, p.side));
        Ok(Some(Self {
            assistant: labeler.name().to_string(),
            turns: config.turns,
            pointers,
        }))
    }
}

impl Writer<'_> {
    /// Record what an assistant shows beside queued pair `queue_id`.
    pub fn assist(&mut self, queue_id: i64, assist: &Assist) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO queue_assistants (queue_id, assistant, turns) VALUES (?1, ?2, ?3)",
                params![queue_id, assist.assistant, assist.turns.map(|t| t as i64)],
            )
            .map_err(|e| self.err(e))?;
        for p in &assist.pointers {
            self.tx
                .execute(
                    "INSERT INTO queue_pointers (queue_id, side, turn, step, span_start, span_end)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        queue_id,
                        p.side.as_str(),
                        p.turn as i64,
                        p.step as i64,
                        p.start as i64,
                        p.end as i64
                    ],
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Record that comparison `comparison` answered queued pair `queue_id`,
    /// shown with that pair's assistance (if any).
    pub(super) fn shown(&mut self, comparison: i64, queue_id: i64) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO labels_shown (comparison_id, queue_id, assistant)
                 VALUES (?1, ?2, (SELECT assistant FROM queue_assistants WHERE queue_id = ?2))",
                params![comparison, queue_id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl LabelStore {
    /// What an assistant shows beside queued pair `queue_id`, if anything.
    pub fn assist(&self, queue_id: i64) -> Result<Option<Assist>> {
        let head: Option<(String, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT assistant, turns FROM queue_assistants WHERE queue_id = ?1",
                [queue_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((assistant, turns)) = head else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT side, turn, step, span_start, span_end FROM queue_pointers
                 WHERE queue_id = ?1 ORDER BY turn, side",
            )
            .map_err(|e| self.err(e))?;
        let pointers = stmt
            .query_map([queue_id], |r| {
                Ok(Pointer {
                    side: if r.get::<_, String>(0)? == "a" {
                        PairSide::A
                    } else {
                        PairSide::B
                    },
                    turn: r.get::<_, i64>(1)? as usize,
                    step: r.get::<_, i64>(2)? as usize,
                    start: r.get::<_, i64>(3)? as usize,
                    end: r.get::<_, i64>(4)? as usize,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(Some(Assist {
            assistant,
            turns: turns.map(|t| t as usize),
            pointers,
        }))
    }

    /// The queued pair comparison `comparison` answered and the assistant
    /// shown with it (`None`: unassisted), if a person made it from the queue.
    pub fn shown_with(&self, comparison: i64) -> Result<Option<(i64, Option<String>)>> {
        self.conn
            .query_row(
                "SELECT queue_id, assistant FROM labels_shown WHERE comparison_id = ?1",
                [comparison],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

/// People's labels pooled by the assistant they were shown.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AssistedPeople {
    /// `None`: shown with no assistant.
    pub assistant: Option<String>,
    pub people: usize,
    pub labels: usize,
    /// As in [`LabelerStats::gold_agreement`].
    pub gold_agreement: Tally,
}

/// The people among `stats`, pooled by the assistant they were shown
/// (unassisted first).
pub fn people_by_assistant(stats: &[LabelerStats]) -> Vec<AssistedPeople> {
    let mut by: BTreeMap<Option<&str>, AssistedPeople> = BTreeMap::new();
    for s in stats.iter().filter(|s| s.person) {
        let e = by
            .entry(s.assistant.as_deref())
            .or_insert_with(|| AssistedPeople {
                assistant: s.assistant.clone(),
                people: 0,
                labels: 0,
                gold_agreement: Tally::default(),
            });
        e.people += 1;
        e.labels += s.comparisons;
        e.gold_agreement.merge(s.gold_agreement);
    }
    by.into_values().collect()
}

#[cfg(test)]
mod tests;
