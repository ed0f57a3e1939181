//! The label store's file as the server found it, checked before and after
//! every write: still at its path (same device and inode), still a SQLite
//! file of the same page size, still this store (its stamp in the header),
//! not cut short, and still writable. A label is acknowledged only when the
//! check after its commit passes.
//!
//! The header is read through a descriptor opened once and kept for the
//! server's life: closing any descriptor of a file drops every POSIX lock the
//! process holds on it, SQLite's included.

use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use goodhart_data::feedback::store::STAMP_BYTES;

/// Every SQLite file starts so.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The header: the first 100 bytes of page 1.
const HEADER: usize = 100;

/// What went wrong with the store's file.
#[derive(Debug)]
pub(crate) enum Fault {
    Removed,
    Replaced,
    ReadOnly,
    /// Shorter than its header says (or than a header).
    Truncated {
        bytes: u64,
        needed: u64,
    },
    /// Overwritten: not a SQLite file, or another one than the store opened.
    Overwritten(&'static str),
    Unreadable(std::io::Error),
}

impl Fault {
    /// Whether the file may come right again by itself (made writable again);
    /// anything else refuses writes until the server is restarted.
    pub(crate) fn passing(&self) -> bool {
        matches!(self, Fault::ReadOnly)
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Removed => write!(f, "the file was removed"),
            Fault::Replaced => write!(f, "another file was put in its place"),
            Fault::ReadOnly => write!(f, "the file was made read-only"),
            Fault::Truncated { bytes, needed } => write!(
                f,
                "the file was cut short: {bytes} bytes where its header needs {needed}"
            ),
            Fault::Overwritten(why) => write!(f, "the file was overwritten: {why}"),
            Fault::Unreadable(e) => write!(f, "the file cannot be read: {e}"),
        }
    }
}

/// The store's file and what it must keep being.
pub(crate) struct StoreFile {
    path: PathBuf,
    file: File,
    identity: (u64, u64),
    page_size: u32,
    stamp: u32,
}

/// Fields of a SQLite header.
struct Header([u8; HEADER]);

impl Header {
    fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }

    fn page_size(&self) -> u32 {
        // Stored in two bytes; 1 means 65536.
        match u16::from_be_bytes([self.0[16], self.0[17]]) {
            1 => 65536,
            n => u32::from(n),
        }
    }

    fn stamp(&self) -> u32 {
        self.u32_at(STAMP_BYTES.start)
    }

    /// Pages the file holds by its header, when the header's count is current
    /// (its change counter matches the "valid for" number).
    fn pages(&self) -> Option<u32> {
        (self.u32_at(24) == self.u32_at(92)).then(|| self.u32_at(28))
    }
}

impl StoreFile {
    /// The file at `path`, whose header must carry `stamp`.
    pub(crate) fn open(path: &Path, stamp: u32) -> Result<Self, Fault> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(Fault::Unreadable)?;
        let meta = file.metadata().map_err(Fault::Unreadable)?;
        let mut store = Self {
            path: path.to_path_buf(),
            file,
            identity: (meta.dev(), meta.ino()),
            page_size: 0,
            stamp,
        };
        store.page_size = store.header()?.page_size();
        store.check()?;
        Ok(store)
    }

    fn header(&self) -> Result<Header, Fault> {
        let mut h = [0u8; HEADER];
        match self.file.read_exact_at(&mut h, 0) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                let bytes = self.file.metadata().map_or(0, |m| m.len());
                return Err(Fault::Truncated {
                    bytes,
                    needed: HEADER as u64,
                });
            }
            Err(e) => return Err(Fault::Unreadable(e)),
        }
        if &h[..16] != MAGIC {
            return Err(Fault::Overwritten("it is no longer a SQLite file"));
        }
        Ok(Header(h))
    }

    /// Whether the file is still the store the server opened, and writable.
    pub(crate) fn check(&self) -> Result<(), Fault> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Fault::Removed),
            Err(e) => return Err(Fault::Unreadable(e)),
        };
        if (meta.dev(), meta.ino()) != self.identity {
            return Err(Fault::Replaced);
        }
        if meta.permissions().readonly() {
            return Err(Fault::ReadOnly);
        }
        // A checkpoint by another process writes page 1 (the new size) before
        // the pages after it: a short file is looked at again before it counts.
        let mut tries = 0;
        loop {
            match self.contents() {
                Err(Fault::Truncated { .. }) if tries < 10 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    fn contents(&self) -> Result<(), Fault> {
        let header = self.header()?;
        if header.page_size() != self.page_size {
            return Err(Fault::Overwritten("its page size changed"));
        }
        if header.stamp() != self.stamp {
            return Err(Fault::Overwritten(
                "its header lacks this store's stamp (another store was copied over it)",
            ));
        }
        let bytes = self.file.metadata().map_err(Fault::Unreadable)?.len();
        let page = u64::from(self.page_size);
        let needed = header.pages().map_or(page, |n| u64::from(n) * page);
        if bytes < needed || bytes % page != 0 {
            return Err(Fault::Truncated { bytes, needed });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goodhart_data::feedback::LabelStore;

    #[test]
    fn the_check_costs_microseconds_and_sees_a_foreign_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("labels.sqlite");
        let mut store = LabelStore::open(&path).unwrap();
        let stamp = store.stamp().unwrap();
        assert_ne!(stamp, 0);
        assert_eq!(store.stamp().unwrap(), stamp, "set once");
        let file = StoreFile::open(&path, stamp).unwrap();
        let checks = 2000;
        let start = std::time::Instant::now();
        for _ in 0..checks {
            file.check().unwrap();
        }
        let each = start.elapsed() / checks;
        // `cargo test -p goodhart-web --lib -- --nocapture the_check_costs` prints it.
        eprintln!("one store check: {each:?}");
        assert!(each < Duration::from_millis(1), "{each:?}");
        let other = StoreFile::open(&path, stamp ^ 1).map(|_| ()).unwrap_err();
        assert!(matches!(other, Fault::Overwritten(_)), "{other}");
    }
}
