//! The store's stamp: a random number in its file's header that tells this
//! store's file from a copy of another store's, for a server that must not
//! acknowledge a label into a file that was overwritten under it.

use rusqlite::Connection;

use super::LabelStore;
use crate::error::{Error, Result};

/// Where [`LabelStore::stamp`] sits in the file: the header's `user_version`
/// (a big-endian 32-bit number).
pub const STAMP_BYTES: std::ops::Range<usize> = 60..64;

impl LabelStore {
    /// The store's stamp: a random number kept in its file's header (SQLite's
    /// `user_version`, bytes [`STAMP_BYTES`]), set the first time it is asked
    /// for, so a copy of another store does not carry it. A server reads the
    /// header itself before acknowledging a label, so the stamp is also
    /// checkpointed into the main file here; an error when that cannot be done.
    pub fn stamp(&mut self) -> Result<u32> {
        let read =
            |conn: &Connection| conn.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0));
        let mut stamp = read(&self.conn).map_err(|e| self.err(e))?;
        if stamp == 0 {
            // Positive, nonzero: SQLite keeps it as a signed 32-bit number.
            let fresh = (rand::random::<u32>() >> 1) | 1;
            self.conn
                .execute_batch(&format!("PRAGMA user_version = {fresh}"))
                .map_err(|e| self.err(e))?;
            stamp = read(&self.conn).map_err(|e| self.err(e))?;
        }
        // FULL waits (up to the busy timeout) for readers of older pages.
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(FULL)", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if busy != 0 {
            return Err(Error::Store {
                path: self.path.clone(),
                message: "another process kept the store busy: its header could not be written; try again".into(),
            });
        }
        u32::try_from(stamp).map_err(|_| Error::Store {
            path: self.path.clone(),
            message: format!("its header's user_version is {stamp}, not a goodhart stamp"),
        })
    }
}
