//! Atomic writes: a reader (or a resumed run) sees the old file or the new
//! one, never half of either.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Write `bytes` to `path` atomically: temp file beside it, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).at(&dir)?;
    let tmp = temp_sibling(path);
    {
        let mut f = fs::File::create(&tmp).at(&tmp)?;
        f.write_all(bytes).at(&tmp)?;
        f.sync_all().at(&tmp)?;
    }
    fs::rename(&tmp, path).at(path)?;
    sync_dir(&dir)
}

/// Build a directory under a temporary name with `fill`, then move it to `dir`.
/// An existing `dir` is replaced only when `replace` is true; otherwise it is an error
/// and nothing on disk changes.
pub fn write_dir_atomic(
    dir: &Path,
    replace: bool,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    if dir.exists() && !replace {
        return Err(Error::io(
            dir,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists (not overwritten)",
            ),
        ));
    }
    let parent = parent_dir(dir);
    fs::create_dir_all(&parent).at(&parent)?;
    let tmp = temp_sibling(dir);
    if tmp.exists() {
        fs::remove_dir_all(&tmp).at(&tmp)?;
    }
    fs::create_dir(&tmp).at(&tmp)?;
    if let Err(e) = fill(&tmp) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    sync_dir(&tmp)?;
    if dir.exists() {
        let old = dir.with_extension(format!("old-{}", std::process::id()));
        fs::rename(dir, &old).at(dir)?;
        fs::rename(&tmp, dir).at(dir)?;
        fs::remove_dir_all(&old).at(&old)?;
    } else {
        fs::rename(&tmp, dir).at(dir)?;
    }
    sync_dir(&parent)
}

/// Write a file inside a directory being filled by `write_dir_atomic` (fsynced, no rename needed).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).at(path)?;
    f.write_all(bytes).at(path)?;
    f.sync_all().at(path)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_dir(path).join(format!(".{name}.tmp-{}", std::process::id()))
}

fn sync_dir(dir: &Path) -> Result<()> {
    // Directory fsync makes the rename durable; some filesystems refuse it, which is harmless.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_dir_refuses_to_overwrite_without_replace() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ckpt");
        write_dir_atomic(&dir, false, |d| write_synced(&d.join("a"), b"one")).unwrap();
        let err = write_dir_atomic(&dir, false, |d| write_synced(&d.join("a"), b"two"));
        assert!(err.is_err());
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"one");
        write_dir_atomic(&dir, true, |d| write_synced(&d.join("a"), b"two")).unwrap();
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"two");
    }

    #[test]
    fn failed_fill_leaves_old_dir_untouched() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ckpt");
        write_dir_atomic(&dir, false, |d| write_synced(&d.join("a"), b"one")).unwrap();
        let r = write_dir_atomic(&dir, true, |_| Err(Error::invalid("x", "boom")));
        assert!(r.is_err());
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"one");
        let leftovers: Vec<_> = fs::read_dir(root.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp dir cleaned up");
    }
}
