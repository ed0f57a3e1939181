//! Review and revise, by people: each queued review shows a few candidate
//! formal goals, each with rollouts of its policy (the base policy conditioned
//! on the goal: rejection sampling over a policy's samples), rendered on the
//! full state; a person keeps the goal under review (position 0) or picks an
//! alternative whose outcomes look better. Reviews are written to the same
//! store as labels, one per person and item, in one transaction each.

use rand::seq::index::sample as draw_indices;
use rand::Rng as _;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::people::{checked_note, Refusal};
use super::simulate::{record_sample, PolicyTag};
use super::store::{now_ms, LabelStore, Writer};
use crate::error::{Error, Result};
use crate::model::sample::{sample, SamplingConfig};
use crate::model::Model;
use crate::task::spec::Formula;
use crate::task::Task;

/// How reviews are queued (`goodhart label queue-review`).
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewQueueConfig {
    /// Reviews to queue.
    pub items: usize,
    /// Candidate goals per review: the goal under review and `k - 1` alternatives.
    pub k: usize,
    /// Rollouts of each candidate's policy shown.
    pub shown: usize,
    /// Prompts the policy is sampled on.
    pub prompts: usize,
    /// Samples per prompt, from which each goal's policy is drawn by rejection.
    pub per_prompt: usize,
    pub sampling: SamplingConfig,
}

/// One rollout as a person sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Rollout {
    pub prompt: String,
    pub completion: String,
}

/// A candidate goal of a queued review and its policy's rollouts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReviewCandidate {
    /// 0: the goal under review (keeping it accepts it).
    pub position: usize,
    pub goal: String,
    pub rollouts: Vec<Rollout>,
}

/// A review waiting for a person.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueuedReview {
    pub id: i64,
    pub task: String,
    pub batch: String,
    pub candidates: Vec<ReviewCandidate>,
}

/// One person's choice in one queued review.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewAnswer<'a> {
    pub item: i64,
    /// The position of the chosen candidate (0 keeps the goal under review).
    pub chosen: usize,
    pub reason: Option<&'a str>,
    pub seconds: Option<f64>,
}

/// Where one person stands with the reviews.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReviewProgress {
    pub reviewed: usize,
    pub queued: usize,
}

/// How often each goal was offered and chosen, over every person's reviews.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GoalTally {
    pub goal: String,
    /// Reviews that showed it.
    pub offered: usize,
    /// Reviews that chose it.
    pub chosen: usize,
    /// Reviews that kept it as the goal under review.
    pub kept: usize,
}

impl Writer<'_> {
    /// Queue a review: `candidates[0]` is the goal under review; each comes
    /// with the ids of the recorded samples that show its policy.
    pub fn queue_review(
        &mut self,
        task: &str,
        batch: &str,
        candidates: &[(&str, Vec<i64>)],
    ) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO review_items (task, batch, created_at) VALUES (?1, ?2, ?3)",
                params![task, batch, now_ms()],
            )
            .map_err(|e| self.err(e))?;
        let item = self.tx.last_insert_rowid();
        for (position, (goal, samples)) in candidates.iter().enumerate() {
            self.tx
                .execute(
                    "INSERT INTO review_candidates (item_id, position, goal) VALUES (?1, ?2, ?3)",
                    params![item, position as i64, goal],
                )
                .map_err(|e| self.err(e))?;
            let candidate = self.tx.last_insert_rowid();
            for (i, sample) in samples.iter().enumerate() {
                self.tx
                    .execute(
                        "INSERT INTO review_rollouts (candidate_id, sample_id, position) VALUES (?1, ?2, ?3)",
                        params![candidate, sample, i as i64],
                    )
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(item)
    }
}

impl LabelStore {
    /// The next review for `user`: one they have not done, fewest reviews first.
    pub fn next_review(&self, user: &str) -> Result<Option<QueuedReview>> {
        self.pending_review(user, None)
    }

    /// Queued review `id`, if `user` has not done it.
    pub fn queued_review(&self, user: &str, id: i64) -> Result<Option<QueuedReview>> {
        self.pending_review(user, Some(id))
    }

    fn pending_review(&self, user: &str, id: Option<i64>) -> Result<Option<QueuedReview>> {
        let item: Option<(i64, String, String)> = self
            .conn
            .query_row(
                "SELECT i.id, i.task, i.batch FROM review_items i
                 WHERE (?2 IS NULL OR i.id = ?2)
                   AND NOT EXISTS (SELECT 1 FROM reviews r WHERE r.item_id = i.id AND r.reviewer = ?1)
                 ORDER BY (SELECT COUNT(*) FROM reviews r WHERE r.item_id = i.id), i.id
                 LIMIT 1",
                params![user, id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((id, task, batch)) = item else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.position, c.goal, p.text, s.completion
                 FROM review_candidates c
                 JOIN review_rollouts o ON o.candidate_id = c.id
                 JOIN samples s ON s.id = o.sample_id
                 JOIN prompts p ON p.id = s.prompt_id
                 WHERE c.item_id = ?1 ORDER BY c.position, o.position",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok((
                    r.get::<_, i64>(0)? as usize,
                    r.get::<_, String>(1)?,
                    Rollout {
                        prompt: r.get(2)?,
                        completion: r.get(3)?,
                    },
                ))
            })
            .map_err(|e| self.err(e))?;
        let mut candidates: Vec<ReviewCandidate> = vec![];
        for row in rows {
            let (position, goal, rollout) = row.map_err(|e| self.err(e))?;
            match candidates.last_mut() {
                Some(c) if c.position == position => c.rollouts.push(rollout),
                _ => candidates.push(ReviewCandidate {
                    position,
                    goal,
                    rollouts: vec![rollout],
                }),
            }
        }
        Ok(Some(QueuedReview {
            id,
            task,
            batch,
            candidates,
        }))
    }

    /// Record `user`'s choice in a queued review, in one transaction that checks
    /// the review and the candidate exist and that `user` has not done it yet.
    pub fn submit_review(
        &mut self,
        user: &str,
        answer: &ReviewAnswer,
    ) -> Result<std::result::Result<i64, Refusal>> {
        let reason = match checked_note(answer.reason, answer.seconds) {
            Ok(reason) => reason,
            Err(refusal) => return Ok(Err(refusal)),
        };
        self.write(|w| {
            let exists: bool =
                w.tx.query_row(
                    "SELECT COUNT(*) FROM review_items WHERE id = ?1",
                    [answer.item],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| w.err(e))?
                    > 0;
            if !exists {
                return Ok(Err(Refusal::UnknownReview(answer.item)));
            }
            let candidate: Option<i64> =
                w.tx.query_row(
                    "SELECT id FROM review_candidates WHERE item_id = ?1 AND position = ?2",
                    params![answer.item, answer.chosen as i64],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| w.err(e))?;
            let Some(candidate) = candidate else {
                return Ok(Err(Refusal::NoSuchCandidate(answer.item, answer.chosen)));
            };
            let inserted =
                w.tx.execute(
                    "INSERT OR IGNORE INTO reviews (item_id, reviewer, chosen, reason, seconds, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![answer.item, user, candidate, reason, answer.seconds, now_ms()],
                )
                .map_err(|e| w.err(e))?;
            if inserted == 0 {
                return Ok(Err(Refusal::AlreadyReviewed(answer.item)));
            }
            let id = w.tx.last_insert_rowid();
            w.tx.execute(
                "INSERT INTO history (at, event, comparison_id, detail) VALUES (?1, 'review', NULL, ?2)",
                params![now_ms(), format!("{user} review {} chose position {}", answer.item, answer.chosen)],
            )
            .map_err(|e| w.err(e))?;
            Ok(Ok(id))
        })
    }

    pub fn review_progress(&self, user: &str) -> Result<ReviewProgress> {
        let reviewed: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM reviews WHERE reviewer = ?1",
                [user],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let queued: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM review_items", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(ReviewProgress {
            reviewed: reviewed as usize,
            queued: queued as usize,
        })
    }

    /// Every person's choices: (reviewer, item, chosen goal, position chosen), in order.
    pub fn reviews(&self) -> Result<Vec<(String, i64, String, usize)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT r.reviewer, r.item_id, c.goal, c.position FROM reviews r
                 JOIN review_candidates c ON c.id = r.chosen ORDER BY r.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get::<_, i64>(3)? as usize,
                ))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// How often each goal was offered, chosen and kept over the reviews done, by goal.
    pub fn goal_tally(&self) -> Result<Vec<GoalTally>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.goal,
                        COUNT(*),
                        SUM(r.chosen = c.id),
                        SUM(r.chosen = c.id AND c.position = 0)
                 FROM reviews r JOIN review_candidates c ON c.item_id = r.item_id
                 GROUP BY c.goal ORDER BY c.goal",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(GoalTally {
                    goal: r.get(0)?,
                    offered: r.get::<_, i64>(1)? as usize,
                    chosen: r.get::<_, i64>(2)? as usize,
                    kept: r.get::<_, i64>(3)? as usize,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }
}

/// Sample `model` on `cfg.prompts` of `prompts`, `cfg.per_prompt` times each,
/// and queue `cfg.items` reviews: `goals[0]` (the goal under review) and
/// `cfg.k - 1` alternatives drawn from the rest, each shown through `cfg.shown`
/// rollouts of its policy (a random prompt, then a random sample of it that
/// satisfies the goal; the base policy's where none does). Returns the reviews queued.
#[allow(clippy::too_many_arguments)]
pub fn queue_reviews(
    store: &mut LabelStore,
    model: &Model,
    policy: &PolicyTag,
    task: &dyn Task,
    prompts: &[String],
    goals: &[String],
    cfg: &ReviewQueueConfig,
    batch: &str,
    rng: &mut crate::rng::Rng,
) -> Result<usize> {
    let invalid = |field: &str, why: String| Error::invalid(format!("review.{field}"), why);
    if goals.is_empty() {
        return Err(invalid(
            "candidates",
            "no candidate goals to review (list them in [task.strategies.review] candidates)"
                .into(),
        ));
    }
    if cfg.k == 0 || cfg.k > goals.len() {
        return Err(invalid(
            "k",
            format!(
                "{}: a review shows between 1 and the {} candidates",
                cfg.k,
                goals.len()
            ),
        ));
    }
    if cfg.items == 0 || cfg.shown == 0 || cfg.prompts == 0 || cfg.per_prompt == 0 {
        return Err(invalid(
            "items",
            "items, shown, prompts and per-prompt must each be at least 1".into(),
        ));
    }
    if prompts.is_empty() {
        return Err(invalid(
            "prompts",
            "the task has no prompts to sample".into(),
        ));
    }
    let formulas = goals
        .iter()
        .map(|g| Formula::parse(g, task.goal_predicates()))
        .collect::<Result<Vec<_>>>()?;
    // The policy's samples, on prompts drawn without replacement.
    let chosen: Vec<&String> = draw_indices(rng, prompts.len(), cfg.prompts.min(prompts.len()))
        .into_iter()
        .map(|i| &prompts[i])
        .collect();
    let ids = chosen
        .iter()
        .map(|p| model.tokenizer().encode_prompt(p))
        .collect::<Result<Vec<_>>>()?;
    let samples = sample(model, &ids, cfg.per_prompt, &cfg.sampling, rng)?;
    // Which samples satisfy each goal.
    let mut satisfied = vec![vec![false; samples.len()]; goals.len()];
    for (g, formula) in formulas.iter().enumerate() {
        for (i, s) in samples.iter().enumerate() {
            let verdict = task
                .goal_satisfied(formula, chosen[s.prompt_index], &s.text)
                .ok_or_else(|| {
                    invalid(
                        "candidates",
                        format!("task {} has no formal goals", task.name()),
                    )
                })?;
            satisfied[g][i] = verdict > 0.5;
        }
    }
    let per = cfg.per_prompt;
    debug_assert_eq!(samples.len(), chosen.len() * per);
    store.write(|w| {
        let mut recorded: Vec<Option<i64>> = vec![None; samples.len()];
        for _ in 0..cfg.items {
            let mut offered = vec![0];
            offered.extend(
                draw_indices(rng, goals.len() - 1, cfg.k - 1)
                    .into_iter()
                    .map(|i| i + 1),
            );
            let mut candidates = vec![];
            for &g in &offered {
                let mut shown = vec![];
                for _ in 0..cfg.shown {
                    let i = draw_rollout(&satisfied[g], per, rng);
                    let id = match recorded[i] {
                        Some(id) => id,
                        None => {
                            let s = &samples[i];
                            let id = record_sample(w, task, policy, chosen[s.prompt_index], s)?;
                            recorded[i] = Some(id);
                            id
                        }
                    };
                    shown.push(id);
                }
                candidates.push((goals[g].as_str(), shown));
            }
            w.queue_review(task.name(), batch, &candidates)?;
        }
        Ok(cfg.items)
    })
}

/// One rollout of a goal's policy: a random prompt, then a random sample of it
/// that satisfies the goal (`satisfied`, `per_prompt` samples a prompt, in
/// order), or any of its samples where none does. The sample's index.
fn draw_rollout(satisfied: &[bool], per_prompt: usize, rng: &mut crate::rng::Rng) -> usize {
    let p = rng.random_range(0..satisfied.len() / per_prompt);
    let range = p * per_prompt..(p + 1) * per_prompt;
    let ok: Vec<usize> = range.clone().filter(|&i| satisfied[i]).collect();
    if ok.is_empty() {
        rng.random_range(range)
    } else {
        ok[rng.random_range(0..ok.len())]
    }
}

#[cfg(test)]
mod tests;
