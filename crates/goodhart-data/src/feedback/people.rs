//! People in the label store: who may label (one-time sign-in tokens, sessions),
//! the pairs queued for them, their labels (ordinary comparisons, named by the
//! person), undo, progress, and agreement statistics over every labeler.
//!
//! A queued pair is shown to each person until that person has labelled it;
//! pairs with the fewest labels come first, so several people spread over the
//! queue and overlap only once it is covered. Every write is one IMMEDIATE
//! transaction that re-checks what it relies on, so concurrent submissions can
//! neither duplicate a label nor lose one.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::labeler::{Answer, AnswerCounts};
use super::store::{now_ms, LabelStore, Writer};
use crate::error::{Error, Result};

/// The longest free-text reason a label may carry, in characters.
pub const MAX_REASON_CHARS: usize = 2000;

/// A pair waiting for people's labels.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueuedPair {
    pub id: i64,
    pub task: String,
    pub prompt: String,
    pub a: String,
    pub b: String,
    pub batch: String,
    /// What an assistant shows beside it, if the queue was made with one.
    pub assist: Option<super::Assist>,
}

/// One person's answer to one queued pair.
#[derive(Clone, Debug, PartialEq)]
pub struct HumanLabel<'a> {
    pub pair: i64,
    pub answer: Answer,
    pub reason: Option<&'a str>,
    /// Time from showing the pair to the answer.
    pub seconds: Option<f64>,
}

/// Why a label was not recorded (the request was wrong, not the server).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no queued pair {0}")]
    UnknownPair(i64),
    #[error("you have already labelled pair {0}")]
    AlreadyLabelled(i64),
    #[error("the reason is {0} characters long; at most {MAX_REASON_CHARS} are kept")]
    ReasonTooLong(usize),
    #[error("seconds must be a number between 0 and 86400")]
    BadSeconds,
    #[error("no queued review {0}")]
    UnknownReview(i64),
    #[error("review {0} has no candidate at position {1}")]
    NoSuchCandidate(i64, usize),
    #[error("you have already done review {0}")]
    AlreadyReviewed(i64),
}

/// Where one person stands.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HumanProgress {
    /// Queued pairs this person has labelled.
    pub labelled: usize,
    /// Pairs in the queue.
    pub queued: usize,
    /// This person's labels per minute over their last ten minutes of labelling.
    pub per_minute: Option<f64>,
}

/// Counts and agreement of one labeler (a person or a simulated labeler).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LabelerStats {
    pub labeler: String,
    /// A person (signed in through the web app) rather than a simulated labeler.
    pub person: bool,
    /// The assistant a person was shown these labels with (`None`: none);
    /// a person labelling with and without one has a row for each.
    pub assistant: Option<String>,
    pub comparisons: usize,
    pub answers: AnswerCounts,
    /// How often this labeler's answer matched another labeler's on the same pair
    /// (both answered other than "can't tell").
    pub agreement: Tally,
    /// How often the completion preferred has the higher gold reward, over
    /// a/b answers on pairs whose gold differs.
    pub gold_agreement: Tally,
    pub median_seconds: Option<f64>,
}

/// How many of the answers compared agreed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub agreed: usize,
    pub compared: usize,
}

impl Tally {
    pub fn new(agreed: usize, compared: usize) -> Self {
        Self { agreed, compared }
    }

    /// Count one comparison.
    pub fn add(&mut self, agreed: bool) {
        self.compared += 1;
        self.agreed += usize::from(agreed);
    }

    /// Pool two tallies.
    pub fn merge(&mut self, other: Tally) {
        self.agreed += other.agreed;
        self.compared += other.compared;
    }
}

/// A person's free-text reason (trimmed; empty is none) and time taken, or why they are refused.
pub(super) fn checked_note(
    reason: Option<&str>,
    seconds: Option<f64>,
) -> std::result::Result<Option<&str>, Refusal> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = reason {
        let n = r.chars().count();
        if n > MAX_REASON_CHARS {
            return Err(Refusal::ReasonTooLong(n));
        }
    }
    if seconds.is_some_and(|s| !(s.is_finite() && (0.0..=86400.0).contains(&s))) {
        return Err(Refusal::BadSeconds);
    }
    Ok(reason)
}

impl Writer<'_> {
    /// Queue a pair of recorded samples for people to label.
    pub fn queue(&mut self, sample_a: i64, sample_b: i64, batch: &str) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO queue (sample_a, sample_b, batch, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![sample_a, sample_b, batch, now_ms()],
            )
            .map_err(|e| self.err(e))?;
        Ok(self.tx.last_insert_rowid())
    }
}

impl LabelStore {
    /// The next pair for `user`: one they have not labelled, fewest labels first.
    pub fn next_pair(&self, user: &str) -> Result<Option<QueuedPair>> {
        self.pending_pair(user, None)
    }

    /// Queued pair `id`, if `user` has not labelled it (shown again after an undo).
    pub fn queued_pair(&self, user: &str, id: i64) -> Result<Option<QueuedPair>> {
        self.pending_pair(user, Some(id))
    }

    fn pending_pair(&self, user: &str, id: Option<i64>) -> Result<Option<QueuedPair>> {
        self.conn
            .query_row(
                "SELECT q.id, p.task, p.text, sa.completion, sb.completion, q.batch
                 FROM queue q
                 JOIN samples sa ON sa.id = q.sample_a
                 JOIN samples sb ON sb.id = q.sample_b
                 JOIN prompts p ON p.id = sa.prompt_id
                 WHERE q.retired = 0 AND (?2 IS NULL OR q.id = ?2)
                   AND NOT EXISTS (SELECT 1 FROM comparisons c WHERE c.sample_a = q.sample_a
                     AND c.sample_b = q.sample_b AND c.labeler = ?1 AND c.retracted = 0)
                 ORDER BY (SELECT COUNT(*) FROM comparisons c WHERE c.sample_a = q.sample_a
                     AND c.sample_b = q.sample_b AND c.retracted = 0), q.id
                 LIMIT 1",
                params![user, id],
                |r| {
                    Ok(QueuedPair {
                        id: r.get(0)?,
                        task: r.get(1)?,
                        prompt: r.get(2)?,
                        a: r.get(3)?,
                        b: r.get(4)?,
                        batch: r.get(5)?,
                        assist: None,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))?
            .map(|pair| {
                Ok(QueuedPair {
                    assist: self.assist(pair.id)?,
                    ..pair
                })
            })
            .transpose()
    }

    /// Record `user`'s label of a queued pair, in one transaction that checks the
    /// pair is queued and not yet labelled by them. Returns the comparison's id.
    pub fn submit(
        &mut self,
        user: &str,
        label: &HumanLabel,
    ) -> Result<std::result::Result<i64, Refusal>> {
        let reason = match checked_note(label.reason, label.seconds) {
            Ok(reason) => reason,
            Err(refusal) => return Ok(Err(refusal)),
        };
        self.write(|w| {
            let pair: Option<(i64, i64, String)> =
                w.tx.query_row(
                    "SELECT sample_a, sample_b, batch FROM queue WHERE id = ?1 AND retired = 0",
                    [label.pair],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|e| w.err(e))?;
            let Some((sample_a, sample_b, batch)) = pair else {
                return Ok(Err(Refusal::UnknownPair(label.pair)));
            };
            let done: i64 =
                w.tx.query_row(
                    "SELECT COUNT(*) FROM comparisons WHERE sample_a = ?1 AND sample_b = ?2
                     AND labeler = ?3 AND retracted = 0",
                    params![sample_a, sample_b, user],
                    |r| r.get(0),
                )
                .map_err(|e| w.err(e))?;
            if done > 0 {
                return Ok(Err(Refusal::AlreadyLabelled(label.pair)));
            }
            let comparison = w.comparison(&super::NewComparison {
                sample_a,
                sample_b,
                labeler: user,
                answer: label.answer,
                reason,
                batch: Some(&batch),
                seconds: label.seconds,
            })?;
            w.shown(comparison, label.pair)?;
            Ok(Ok(comparison))
        })
    }

    /// Withdraw `user`'s latest label of a queued pair (kept on disk, marked
    /// retracted, logged). Returns the pair, which is then shown to them again.
    pub fn undo(&mut self, user: &str) -> Result<Option<i64>> {
        self.write(|w| {
            let last: Option<(i64, i64)> = w
                .tx
                .query_row(
                    "SELECT c.id, q.id FROM comparisons c
                     JOIN queue q ON q.sample_a = c.sample_a AND q.sample_b = c.sample_b
                     WHERE c.labeler = ?1 AND c.retracted = 0
                     ORDER BY c.id DESC LIMIT 1",
                    [user],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| w.err(e))?;
            let Some((comparison, pair)) = last else {
                return Ok(None);
            };
            w.tx.execute(
                "UPDATE comparisons SET retracted = 1 WHERE id = ?1",
                [comparison],
            )
            .map_err(|e| w.err(e))?;
            w.tx.execute(
                "INSERT INTO history (at, event, comparison_id, detail) VALUES (?1, 'undo', ?2, ?3)",
                params![now_ms(), comparison, user],
            )
            .map_err(|e| w.err(e))?;
            Ok(Some(pair))
        })
    }

    pub fn progress(&self, user: &str) -> Result<HumanProgress> {
        let count = |sql: &str| -> Result<usize> {
            self.conn
                .query_row(sql, [user], |r| r.get::<_, i64>(0))
                .map(|n| n as usize)
                .map_err(|e| self.err(e))
        };
        let queued = self.queued()?;
        let labelled = count(
            "SELECT COUNT(*) FROM queue q WHERE q.retired = 0 AND EXISTS (SELECT 1 FROM comparisons c
             WHERE c.sample_a = q.sample_a AND c.sample_b = q.sample_b AND c.labeler = ?1 AND c.retracted = 0)",
        )?;
        let since = now_ms() - 10 * 60 * 1000;
        let (n, first, last): (i64, Option<i64>, Option<i64>) = self
            .conn
            .query_row(
                "SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM comparisons
                 WHERE labeler = ?1 AND retracted = 0 AND created_at >= ?2",
                params![user, since],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(|e| self.err(e))?;
        // n labels span n - 1 intervals.
        let per_minute = match (first, last) {
            (Some(f), Some(l)) if n >= 2 && l > f => {
                Some((n - 1) as f64 * 60_000.0 / (l - f) as f64)
            }
            _ => None,
        };
        Ok(HumanProgress {
            labelled,
            queued,
            per_minute,
        })
    }

    /// Live labels from people in `batch` (an online run waits on these).
    pub fn human_labels_in_batch(&self, batch: &str) -> Result<usize> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM comparisons WHERE batch = ?1 AND retracted = 0
                 AND labeler IN (SELECT name FROM users)",
                [batch],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// Pairs in the queue.
    pub fn queued(&self) -> Result<usize> {
        self.conn
            .query_row("SELECT COUNT(*) FROM queue WHERE retired = 0", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// Counts, agreement with other labelers on the same pairs, agreement with
    /// gold (where `gold(task, prompt, completion)` gives it) and median seconds,
    /// per labeler and the assistant it was shown, ordered by name.
    pub fn labeler_stats(
        &self,
        gold: &dyn Fn(&str, &str, &str) -> Option<f64>,
    ) -> Result<Vec<LabelerStats>> {
        struct Row {
            labeler: String,
            assistant: Option<String>,
            pair: (i64, i64),
            answer: Answer,
            seconds: Option<f64>,
            gold: Option<(f64, f64)>,
        }
        let users: Vec<String> = self.users()?;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.labeler, c.sample_a, c.sample_b, c.answer, c.seconds, p.task, p.text,
                        sa.completion, sb.completion, ls.assistant
                 FROM comparisons c
                 LEFT JOIN labels_shown ls ON ls.comparison_id = c.id
                 JOIN samples sa ON sa.id = c.sample_a
                 JOIN samples sb ON sb.id = c.sample_b
                 JOIN prompts p ON p.id = sa.prompt_id
                 WHERE c.retracted = 0 ORDER BY c.id",
            )
            .map_err(|e| self.err(e))?;
        let raw = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get::<_, i64>(1)?, r.get::<_, i64>(2)?),
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<f64>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, Option<String>>(9)?,
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut rows = vec![];
        for row in raw {
            let (labeler, pair, answer, seconds, task, prompt, a, b, assistant) =
                row.map_err(|e| self.err(e))?;
            let answer = Answer::parse(&answer).ok_or_else(|| Error::Store {
                path: self.path.clone(),
                message: format!("a comparison has an unknown answer {answer:?}"),
            })?;
            let gold = gold(&task, &prompt, &a).zip(gold(&task, &prompt, &b));
            rows.push(Row {
                labeler,
                assistant,
                pair,
                answer,
                seconds,
                gold,
            });
        }
        let mut by_pair: HashMap<(i64, i64), Vec<usize>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            by_pair.entry(r.pair).or_default().push(i);
        }
        type Key = (String, Option<String>);
        let mut out: BTreeMap<Key, LabelerStats> = BTreeMap::new();
        let mut seconds: HashMap<Key, Vec<f64>> = HashMap::new();
        for r in &rows {
            let key = (r.labeler.clone(), r.assistant.clone());
            let s = out.entry(key.clone()).or_insert_with(|| LabelerStats {
                labeler: r.labeler.clone(),
                person: users.contains(&r.labeler),
                assistant: r.assistant.clone(),
                comparisons: 0,
                answers: AnswerCounts::default(),
                agreement: Tally::default(),
                gold_agreement: Tally::default(),
                median_seconds: None,
            });
            s.comparisons += 1;
            s.answers.add(r.answer);
            if r.answer != Answer::CantTell {
                for &j in &by_pair[&r.pair] {
                    let o = &rows[j];
                    if o.labeler != r.labeler && o.answer != Answer::CantTell {
                        s.agreement.add(o.answer == r.answer);
                    }
                }
            }
            if let (Some((ga, gb)), Answer::A | Answer::B) = (r.gold, r.answer) {
                if ga != gb {
                    s.gold_agreement.add((ga > gb) == (r.answer == Answer::A));
                }
            }
            if let Some(t) = r.seconds {
                seconds.entry(key).or_default().push(t);
            }
        }
        for (name, mut ts) in seconds {
            ts.sort_by(f64::total_cmp);
            let m = ts.len() / 2;
            let median = if ts.len() % 2 == 1 {
                ts[m]
            } else {
                (ts[m - 1] + ts[m]) / 2.0
            };
            if let Some(s) = out.get_mut(&name) {
                s.median_seconds = Some(median);
            }
        }
        Ok(out.into_values().collect())
    }
}

#[cfg(test)]
mod tests;
