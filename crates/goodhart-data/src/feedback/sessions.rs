//! Who may label in the web app: people added by the operator, one-time
//! sign-in tokens (only their hashes are stored), and sessions that end on
//! the server when idle, when old, on a new token, or on revocation.

use rand::RngCore as _;
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::store::{now_ms, LabelStore};
use crate::error::{Error, Result};

/// How long a session lasts on the server (the cookie's own age is only advice to the browser).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionLimits {
    /// A session with no request for this long ends.
    pub idle_ms: i64,
    /// A session ends this long after sign-in, however busy.
    pub max_age_ms: i64,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle_ms: 2 * 60 * 60 * 1000,
            max_age_ms: 7 * 24 * 60 * 60 * 1000,
        }
    }
}

/// How stale a session's `last_seen` may get before a request records it: a
/// session then ends after between `idle_ms` less this (at most a tenth of
/// it) and `idle_ms` without a request.
const LAST_SEEN_EVERY_MS: i64 = 60_000;

/// A signed-in person.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Session {
    pub user: String,
    /// Sent back with every write to prove it comes from our page.
    pub csrf: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh 256-bit secret from the operating system's generator.
fn secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Check a person's name: 1 to 40 letters, digits, `_`, `-` or `.`.
pub fn check_user_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "name",
            format!("{name:?}: use 1 to 40 letters, digits, '_', '-' or '.'"),
        ))
    }
}

impl LabelStore {
    /// Add a person, or issue a new token to one already there (their labels
    /// stay theirs). Returns the one-time sign-in token; only its hash is kept.
    pub fn add_user(&mut self, name: &str) -> Result<String> {
        check_user_name(name)?;
        let token = secret();
        let hash = digest(&token);
        self.write(|w| {
            let is_user: bool =
                w.tx.query_row("SELECT COUNT(*) FROM users WHERE name = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(|e| w.err(e))?
                    > 0;
            let simulated: bool =
                w.tx.query_row(
                    "SELECT COUNT(*) FROM comparisons WHERE labeler = ?1",
                    [name],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| w.err(e))?
                    > 0;
            if simulated && !is_user {
                return Err(Error::invalid(
                    "name",
                    format!("{name:?} already names a labeler in this store; choose another name"),
                ));
            }
            w.tx.execute(
                "INSERT INTO users (name, token_hash, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(name) DO UPDATE SET token_hash = excluded.token_hash",
                params![name, hash, now_ms()],
            )
            .map_err(|e| w.err(e))?;
            // A new token ends every session the old one began.
            w.tx.execute("DELETE FROM sessions WHERE user = ?1", [name])
                .map_err(|e| w.err(e))?;
            w.tx.execute(
                "INSERT INTO history (at, event, detail) VALUES (?1, 'user', ?2)",
                params![
                    now_ms(),
                    format!("{} {name}", if is_user { "token" } else { "add" })
                ],
            )
            .map_err(|e| w.err(e))?;
            Ok(token)
        })
    }

    /// The people who may label, by name.
    pub fn users(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT name FROM users ORDER BY name")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    /// Exchange a one-time token for a session. `None` when the name or token
    /// is wrong or the token was already used. Returns the session secret (the
    /// cookie) and the session.
    pub fn sign_in(&mut self, name: &str, token: &str) -> Result<Option<(String, Session)>> {
        let hash = digest(token);
        self.write(|w| {
            let stored: Option<Option<String>> =
                w.tx.query_row(
                    "SELECT token_hash FROM users WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| w.err(e))?;
            if stored.flatten().as_deref() != Some(hash.as_str()) {
                return Ok(None);
            }
            let (cookie, csrf) = (secret(), secret());
            w.tx.execute("UPDATE users SET token_hash = NULL WHERE name = ?1", [name])
                .map_err(|e| w.err(e))?;
            let now = now_ms();
            w.tx.execute(
                "INSERT INTO sessions (token_hash, user, csrf, created_at, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![digest(&cookie), name, csrf, now],
            )
            .map_err(|e| w.err(e))?;
            w.tx.execute(
                "INSERT INTO history (at, event, detail) VALUES (?1, 'sign_in', ?2)",
                params![now_ms(), name],
            )
            .map_err(|e| w.err(e))?;
            Ok(Some((
                cookie,
                Session {
                    user: name.to_string(),
                    csrf,
                },
            )))
        })
    }

    /// The live session a cookie belongs to, seen now. A session idle or old
    /// beyond `limits` is ended here and is `None`, whatever the cookie says.
    pub fn session(&mut self, cookie: &str, limits: &SessionLimits) -> Result<Option<Session>> {
        let hash = digest(cookie);
        let now = now_ms();
        // A read: most requests find a live session seen moments ago and write nothing.
        let found: Option<(String, String, i64, Option<i64>)> = self
            .conn
            .query_row(
                "SELECT user, csrf, created_at, last_seen FROM sessions WHERE token_hash = ?1",
                [&hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((user, csrf, created, last_seen)) = found else {
            return Ok(None);
        };
        let last_seen = last_seen.unwrap_or(created);
        if now - created > limits.max_age_ms || now - last_seen > limits.idle_ms {
            self.write(|w| {
                w.tx.execute("DELETE FROM sessions WHERE token_hash = ?1", [&hash])
                    .map_err(|e| w.err(e))
            })?;
            return Ok(None);
        }
        // Seen: recorded at most once a minute, so a busy page is not a write per request.
        if now - last_seen > LAST_SEEN_EVERY_MS.min(limits.idle_ms / 10) {
            self.write(|w| {
                w.tx.execute(
                    "UPDATE sessions SET last_seen = ?1 WHERE token_hash = ?2",
                    params![now, hash],
                )
                .map_err(|e| w.err(e))
            })?;
        }
        Ok(Some(Session { user, csrf }))
    }

    /// Take a person's access away: their unused token and every session end
    /// (their labels stay). `false` when nobody has that name.
    pub fn revoke_user(&mut self, name: &str) -> Result<bool> {
        self.write(|w| {
            let changed =
                w.tx.execute("UPDATE users SET token_hash = NULL WHERE name = ?1", [name])
                    .map_err(|e| w.err(e))?;
            w.tx.execute("DELETE FROM sessions WHERE user = ?1", [name])
                .map_err(|e| w.err(e))?;
            if changed > 0 {
                w.tx.execute(
                    "INSERT INTO history (at, event, detail) VALUES (?1, 'user', ?2)",
                    params![now_ms(), format!("revoke {name}")],
                )
                .map_err(|e| w.err(e))?;
            }
            Ok(changed > 0)
        })
    }

    pub fn sign_out(&mut self, cookie: &str) -> Result<()> {
        self.write(|w| {
            w.tx.execute(
                "DELETE FROM sessions WHERE token_hash = ?1",
                [digest(cookie)],
            )
            .map_err(|e| w.err(e))
            .map(drop)
        })
    }
}
