//! The label store: every prompt, sample and comparison, and who made it, in
//! one SQLite file (WAL mode). Every write happens in a transaction, so a killed
//! writer leaves each comparison either wholly there or not at all; an
//! append-only history (enforced by triggers) records every label given or withdrawn.

mod schema;
mod stamp;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OptionalExtension, Transaction, TransactionBehavior};

use super::labeler::Answer;
use crate::error::{Error, Result};
use crate::formats::parse_jsonl;
pub use crate::formats::PreferenceLine;
use schema::SCHEMA;
pub use stamp::STAMP_BYTES;

const FORMAT: &str = "goodhart-labels";
const VERSION: i64 = 1;

pub struct LabelStore {
    pub(super) conn: Connection,
    pub(super) path: PathBuf,
}

/// A sample to record.
#[derive(Clone, Debug)]
pub struct NewSample<'a> {
    pub prompt_id: i64,
    pub completion: &'a str,
    pub policy: &'a str,
    pub step: Option<i64>,
    pub logprob: Option<f64>,
    /// Ended with EOS (`false`: cut at the length limit); `None` when not known.
    pub finished: Option<bool>,
}

/// A comparison to record.
#[derive(Clone, Debug)]
pub struct NewComparison<'a> {
    pub sample_a: i64,
    pub sample_b: i64,
    pub labeler: &'a str,
    pub answer: Answer,
    pub reason: Option<&'a str>,
    pub batch: Option<&'a str>,
    pub seconds: Option<f64>,
}

/// A stored comparison with its texts.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub id: i64,
    pub task: String,
    pub prompt: String,
    pub a: String,
    pub b: String,
    pub policy_a: String,
    pub policy_b: String,
    pub labeler: String,
    pub answer: Answer,
    pub batch: Option<String>,
    /// Whether each completion ended with EOS (true when not recorded: imported text is complete).
    pub a_finished: bool,
    pub b_finished: bool,
}

/// Which comparisons to read.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub task: Option<String>,
    /// Only these labelers (empty: all).
    pub labelers: Vec<String>,
    /// Only comparisons from these batches (empty: all).
    pub batches: Vec<String>,
}

/// What to do with a bad JSONL line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnBadLine {
    /// Stop at the first bad line; nothing is imported.
    Stop,
    /// Skip bad lines (each reported) and import the rest.
    Skip,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImportReport {
    pub imported: usize,
    /// (line number, problem) of every skipped line.
    pub skipped: Vec<(usize, String)>,
}

pub(super) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl LabelStore {
    /// Open a store, creating it if the file does not exist. A file that is not a
    /// goodhart label store is an error, and is left untouched.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let fresh = !path.exists()
            || std::fs::metadata(path)
                .map(|m| m.len() == 0)
                .unwrap_or(false);
        let conn = Connection::open(path).map_err(|e| store_error(path, e))?;
        let store = Self {
            conn,
            path: path.to_path_buf(),
        };
        if fresh {
            store.init()?;
        } else {
            store.check_format()?;
        }
        store.configure()?;
        Ok(store)
    }

    /// Open a store that must already exist.
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.is_file() {
            return Err(Error::Store {
                path: path.to_path_buf(),
                message: "no such label store".into(),
            });
        }
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn err(&self, e: rusqlite::Error) -> Error {
        store_error(&self.path, e)
    }

    fn configure(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.err(e))
    }

    fn init(&self) -> Result<()> {
        self.conn
            .execute_batch("PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;")
            .map_err(|e| self.err(e))?;
        let tx = self.conn.unchecked_transaction().map_err(|e| self.err(e))?;
        tx.execute_batch(SCHEMA).map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('format', ?1), ('version', ?2)",
            params![FORMAT, VERSION.to_string()],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn check_format(&self) -> Result<()> {
        let not_ours = |why: String| Error::Store {
            path: self.path.clone(),
            message: format!("not a goodhart label store ({why})"),
        };
        let format: Option<String> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'format'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| not_ours(e.to_string()))?;
        match format.as_deref() {
            Some(FORMAT) => {}
            Some(other) => return Err(not_ours(format!("its format is {other:?}"))),
            None => return Err(not_ours("no format record".into())),
        }
        let version: String = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'version'", [], |r| {
                r.get(0)
            })
            .map_err(|e| not_ours(e.to_string()))?;
        if version != VERSION.to_string() {
            return Err(not_ours(format!(
                "version {version}; this build reads version {VERSION}"
            )));
        }
        // Schema additions of later issues are created idempotently.
        self.conn.execute_batch(SCHEMA).map_err(|e| self.err(e))?;
        let has_finished: bool = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('samples') WHERE name = 'finished'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.err(e))?
            > 0;
        if !has_finished {
            self.conn
                .execute_batch("ALTER TABLE samples ADD COLUMN finished INTEGER")
                .map_err(|e| self.err(e))?;
        }
        // Sessions expire when idle: a store written before that keeps its
        // sessions, seen last when they began.
        let has_last_seen = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('sessions') WHERE name = 'last_seen'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.err(e))?
            > 0;
        if !has_last_seen {
            self.conn
                .execute_batch(
                    "ALTER TABLE sessions ADD COLUMN last_seen INTEGER;
                     UPDATE sessions SET last_seen = created_at;",
                )
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Run `f` in one transaction: all its writes land together, or none do.
    pub fn write<T>(&mut self, f: impl FnOnce(&mut Writer) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        // IMMEDIATE: take the write lock up front, so a check-then-insert inside
        // `f` is atomic even against another process writing the same file.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| store_error(&path, e))?;
        let mut w = Writer {
            tx,
            path: path.clone(),
        };
        let out = f(&mut w)?;
        w.tx.commit().map_err(|e| store_error(&path, e))?;
        Ok(out)
    }

    /// Comparisons matching `filter`, oldest first (withdrawn ones left out).
    pub fn comparisons(&self, filter: &Filter) -> Result<Vec<Comparison>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.id, p.task, p.text, sa.completion, sb.completion, sa.policy, sb.policy, c.labeler, c.answer, c.batch,
                        COALESCE(sa.finished, 1), COALESCE(sb.finished, 1)
                 FROM comparisons c
                 JOIN samples sa ON sa.id = c.sample_a
                 JOIN samples sb ON sb.id = c.sample_b
                 JOIN prompts p ON p.id = sa.prompt_id
                 WHERE c.retracted = 0
                 ORDER BY c.id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                let answer: String = r.get(8)?;
                // The schema's CHECK admits only known answers; a file edited by hand may not.
                let answer = Answer::parse(&answer).ok_or_else(|| {
                    rusqlite::Error::FromSqlConversionFailure(
                        8,
                        rusqlite::types::Type::Text,
                        format!(
                            "comparison {} has an unknown answer {answer:?}",
                            r.get::<_, i64>(0).unwrap_or(-1)
                        )
                        .into(),
                    )
                })?;
                Ok(Comparison {
                    id: r.get(0)?,
                    task: r.get(1)?,
                    prompt: r.get(2)?,
                    a: r.get(3)?,
                    b: r.get(4)?,
                    policy_a: r.get(5)?,
                    policy_b: r.get(6)?,
                    labeler: r.get(7)?,
                    answer,
                    batch: r.get(9)?,
                    a_finished: r.get(10)?,
                    b_finished: r.get(11)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut out = vec![];
        for row in rows {
            let c = row.map_err(|e| self.err(e))?;
            let keep = filter.task.as_ref().is_none_or(|t| *t == c.task)
                && (filter.labelers.is_empty() || filter.labelers.contains(&c.labeler))
                && (filter.batches.is_empty()
                    || c.batch.as_ref().is_some_and(|b| filter.batches.contains(b)));
            if keep {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Withdraw every live comparison whose batch is `batch` or starts with
    /// `batch` + "/" (a resumed run redoing an interrupted stage), and retire its
    /// queued pairs. The rows stay on disk, marked retracted, and each withdrawal
    /// is recorded in the history.
    pub fn retract_batch(&mut self, batch: &str) -> Result<usize> {
        let prefix = format!("{batch}/%");
        self.write(|w| {
            let at = now_ms();
            w.tx.execute(
                "INSERT INTO history (at, event, comparison_id, detail)
                 SELECT ?1, 'retract', id, 'batch ' || batch || ' redone' FROM comparisons
                 WHERE retracted = 0 AND (batch = ?2 OR batch LIKE ?3)",
                params![at, batch, prefix],
            )
            .map_err(|e| w.err(e))?;
            w.tx.execute(
                "UPDATE queue SET retired = 1 WHERE batch = ?1 OR batch LIKE ?2",
                params![batch, prefix],
            )
            .map_err(|e| w.err(e))?;
            w.tx.execute("UPDATE comparisons SET retracted = 1 WHERE retracted = 0 AND (batch = ?1 OR batch LIKE ?2)", params![batch, prefix])
                .map_err(|e| w.err(e))
        })
    }

    pub fn count_comparisons(&self) -> Result<usize> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM comparisons WHERE retracted = 0",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as usize)
            .map_err(|e| self.err(e))
    }

    /// The store's own consistency check (SQLite integrity and foreign keys).
    pub fn check_integrity(&self) -> Result<()> {
        let ok: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        let dangling: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))?;
        if ok != "ok" || dangling != 0 {
            return Err(Error::Store {
                path: self.path.clone(),
                message: format!("integrity check failed: {ok}; {dangling} dangling references"),
            });
        }
        Ok(())
    }

    /// Write comparisons as preference JSONL; "can't tell" answers have no preference and are left out.
    pub fn export_jsonl(&self, filter: &Filter, out: &mut dyn Write) -> Result<usize> {
        let mut n = 0;
        for c in self.comparisons(filter)? {
            let (chosen, rejected, tie) = match c.answer {
                Answer::A => (c.a, c.b, false),
                Answer::B => (c.b, c.a, false),
                Answer::Tie => (c.a, c.b, true),
                Answer::CantTell => continue,
            };
            let line = PreferenceLine {
                prompt: c.prompt,
                chosen,
                rejected,
                labeler: Some(c.labeler),
                tie,
                task: Some(c.task),
                chosen_gold: None,
                rejected_gold: None,
            };
            serde_json::to_writer(&mut *out, &line).map_err(|e| Error::io(&self.path, e.into()))?;
            out.write_all(b"\n").map_err(|e| Error::io(&self.path, e))?;
            n += 1;
        }
        Ok(n)
    }

    /// Import preference JSONL from `path` as comparisons of batch `batch`, in
    /// one transaction. `task` is the task of every line (a line may repeat it,
    /// never name another); `labeler` applies to lines that name none. A
    /// labeler must have a name, and never a person's: people's labels come
    /// only from the labeling app, so an import cannot forge them.
    pub fn import_jsonl(
        &mut self,
        path: &Path,
        task: &str,
        labeler: &str,
        on_bad: OnBadLine,
        batch: &str,
    ) -> Result<ImportReport> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let people = self.users()?;
        let check = |p: PreferenceLine| -> std::result::Result<PreferenceLine, String> {
            if let Some(t) = p.task.as_deref().filter(|t| *t != task) {
                return Err(format!("task `{t}` is not this import's task `{task}`"));
            }
            let name = p.labeler.as_deref().unwrap_or(labeler);
            if name.trim().is_empty() {
                return Err("the labeler's name is empty".into());
            }
            if people.iter().any(|person| person == name) {
                return Err(format!(
                    "`{name}` is a person who labels in the app; an import cannot add their labels"
                ));
            }
            Ok(p)
        };
        let mut lines = vec![];
        let mut report = ImportReport::default();
        for (n, parsed) in parse_jsonl::<PreferenceLine>(std::io::BufReader::new(file), path)? {
            match parsed.and_then(check) {
                Ok(p) => lines.push(p),
                Err(problem) => match on_bad {
                    OnBadLine::Stop => {
                        return Err(Error::Data {
                            path: path.to_path_buf(),
                            line: n,
                            message: problem,
                        })
                    }
                    OnBadLine::Skip => report.skipped.push((n, problem)),
                },
            }
        }
        let source = format!("import:{}", path.display());
        self.write(|w| {
            for (i, p) in lines.iter().enumerate() {
                let task = p.task.as_deref().unwrap_or(task);
                let prompt_id = w.prompt(task, "import", &p.prompt)?;
                let sample = |w: &mut Writer, text: &str| {
                    w.sample(&NewSample {
                        prompt_id,
                        completion: text,
                        policy: &source,
                        step: None,
                        logprob: None,
                        finished: None,
                    })
                };
                // Every other pair is stored the other way round, so the store holds
                // both answers (a reward model learns from content, never position).
                let swap = i % 2 == 1 && !p.tie;
                let (first, second) = if swap {
                    (&p.rejected, &p.chosen)
                } else {
                    (&p.chosen, &p.rejected)
                };
                let (a, b) = (sample(w, first)?, sample(w, second)?);
                let answer = match (p.tie, swap) {
                    (true, _) => Answer::Tie,
                    (false, false) => Answer::A,
                    (false, true) => Answer::B,
                };
                w.comparison(&NewComparison {
                    sample_a: a,
                    sample_b: b,
                    labeler: p.labeler.as_deref().unwrap_or(labeler),
                    answer,
                    reason: None,
                    batch: Some(batch),
                    seconds: None,
                })?;
            }
            Ok(())
        })?;
        report.imported = lines.len();
        Ok(report)
    }
}

/// Writes inside one transaction.
pub struct Writer<'c> {
    pub(super) tx: Transaction<'c>,
    pub(super) path: PathBuf,
}

impl Writer<'_> {
    pub(super) fn err(&self, e: rusqlite::Error) -> Error {
        store_error(&self.path, e)
    }

    /// The id of a prompt, recording it if new.
    pub fn prompt(&mut self, task: &str, split: &str, text: &str) -> Result<i64> {
        self.tx
            .execute(
                "INSERT OR IGNORE INTO prompts (task, split, text) VALUES (?1, ?2, ?3)",
                params![task, split, text],
            )
            .map_err(|e| store_error(&self.path, e))?;
        self.tx
            .query_row(
                "SELECT id FROM prompts WHERE task = ?1 AND text = ?2",
                params![task, text],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))
    }

    pub fn sample(&mut self, s: &NewSample) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO samples (prompt_id, completion, policy, step, logprob, created_at, finished) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![s.prompt_id, s.completion, s.policy, s.step, s.logprob, now_ms(), s.finished],
            )
            .map_err(|e| store_error(&self.path, e))?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn comparison(&mut self, c: &NewComparison) -> Result<i64> {
        let at = now_ms();
        self.tx
            .execute(
                "INSERT INTO comparisons (sample_a, sample_b, labeler, answer, reason, batch, seconds, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![c.sample_a, c.sample_b, c.labeler, c.answer.as_str(), c.reason, c.batch, c.seconds, at],
            )
            .map_err(|e| store_error(&self.path, e))?;
        let id = self.tx.last_insert_rowid();
        self.tx
            .execute(
                "INSERT INTO history (at, event, comparison_id, detail) VALUES (?1, 'label', ?2, ?3)",
                params![at, id, format!("{} {}", c.labeler, c.answer.as_str())],
            )
            .map_err(|e| self.err(e))?;
        Ok(id)
    }
}

pub(super) fn store_error(path: &Path, e: rusqlite::Error) -> Error {
    let message = match &e {
        rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::NotADatabase => {
            "not a goodhart label store (not an SQLite database)".to_string()
        }
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen
            ) =>
        {
            "cannot be written: the file or its folder is read-only (SQLite writes the store \
             and its -wal and -shm files beside it)"
                .to_string()
        }
        other => other.to_string(),
    };
    Error::Store {
        path: path.to_path_buf(),
        message,
    }
}

#[cfg(test)]
mod tests;
