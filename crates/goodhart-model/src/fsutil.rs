//! Atomic writes: a reader (or a resumed run) sees the old file or the new
//! one, never half of either.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Write `bytes` to `path` atomically: a uniquely named temp file beside it
/// (so two writers never share one), fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_dir(path);
    fs::create_dir_all(&dir).at(&dir)?;
    let mut tmp = temp_sibling(path, ".tmp", 0o666, |b| b.tempfile_in(&dir)).at(&dir)?;
    tmp.write_all(bytes).at(tmp.path())?;
    tmp.as_file().sync_all().at(tmp.path())?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(&dir)
}

/// Build a directory under a temporary name with `fill`, then move it to `dir`.
/// An existing `dir` is replaced only when `replace` is true; otherwise it is an error
/// and nothing on disk changes. A replaced directory is swapped out in one step,
/// so a reader finds the old directory or the new one, never neither.
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
    // Removed on drop: a failed `fill` leaves nothing behind.
    let tmp = temp_sibling(dir, ".tmp", 0o777, |b| b.tempdir_in(&parent)).at(&parent)?;
    fill(tmp.path())?;
    sync_dir(tmp.path())?;
    if dir.exists() {
        swap_in(tmp.path(), dir)?;
    } else {
        fs::rename(tmp.path(), dir).at(dir)?;
    }
    sync_dir(&parent)
}

/// Put the directory `new` in the place of the existing `dir`; `new`'s path
/// ends up holding the old directory, which the caller's guard removes.
fn swap_in(new: &Path, dir: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        use rustix::io::Errno;
        match renameat_with(CWD, new, CWD, dir, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(()),
            // A filesystem without atomic exchange: fall through to two renames.
            Err(e) if e == Errno::INVAL || e == Errno::NOSYS || e == Errno::NOTSUP => {}
            Err(e) => return Err(Error::io(dir, e.into())),
        }
    }
    // Two renames through a unique name beside both: for an instant the
    // directory exists only under that name.
    let parent = parent_dir(dir);
    let aside = temp_sibling(dir, ".old", 0o777, |b| b.tempdir_in(&parent)).at(&parent)?;
    fs::rename(dir, aside.path()).at(dir)?;
    fs::rename(new, dir).at(dir)?;
    fs::rename(aside.path(), new).at(new)?;
    Ok(())
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

/// Make a hidden, uniquely named sibling of `path` with `make`, created with
/// `mode` less the umask like any other file (tempfile's own default, 0600,
/// would hide a report or a checkpoint from the rest of a team).
fn temp_sibling<T>(
    path: &Path,
    suffix: &str,
    mode: u32,
    make: impl FnOnce(&tempfile::Builder) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let prefix = format!(".{}.", file_name(path));
    let mut b = tempfile::Builder::new();
    b.prefix(&prefix).suffix(suffix);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    make(&b)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
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

    #[test]
    fn two_threads_writing_one_path_never_collide() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("record.json");
        std::thread::scope(|s| {
            for text in [b"first" as &[u8], b"second"] {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..200 {
                        write_atomic(path, text).unwrap();
                    }
                });
            }
        });
        let end = fs::read(&path).unwrap();
        assert!(end == b"first" || end == b"second");
        assert_eq!(
            fs::read_dir(root.path()).unwrap().count(),
            1,
            "no temp files left"
        );
    }

    #[test]
    fn a_replaced_directory_is_always_there_for_a_reader() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("ckpt");
        write_dir_atomic(&dir, false, |d| write_synced(&d.join("a"), b"0")).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        let missing = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if fs::read(dir.join("a")).is_err() {
                        missing.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
            for i in 1..100 {
                write_dir_atomic(&dir, true, |d| {
                    write_synced(&d.join("a"), format!("{i}").as_bytes())
                })
                .unwrap();
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(fs::read(dir.join("a")).unwrap(), b"99");
        assert_eq!(
            fs::read_dir(root.path()).unwrap().count(),
            1,
            "no old or temp dirs left"
        );
        #[cfg(target_os = "linux")]
        assert_eq!(
            missing.into_inner(),
            0,
            "a reader found no checkpoint during a swap"
        );
    }

    #[cfg(unix)]
    #[test]
    fn atomic_files_and_directories_get_the_usual_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let (file, dir) = (root.path().join("f"), root.path().join("d"));
        write_atomic(&file, b"x").unwrap();
        write_dir_atomic(&dir, false, |d| write_synced(&d.join("a"), b"y")).unwrap();
        // Whatever the umask, group and others get at least what a plain file gets.
        std::fs::write(root.path().join("plain"), b"z").unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), mode(&root.path().join("plain")));
        assert_eq!(mode(&dir) & 0o666, mode(&root.path().join("plain")) & 0o666);
    }
}
