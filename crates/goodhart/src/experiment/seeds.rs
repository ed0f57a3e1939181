//! One experiment over several seeds, as laid out on disk: each seed is a run
//! directory of its own (`<root>/seed-<N>`, resumable like any run) under a
//! root that lists them. What is read back from them across seeds is the
//! analysis layer's (its `seeds` module).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::write_atomic;

/// Marks a directory as the root of a several-seed run, and lists its seeds.
pub const SEEDS_FILE: &str = "seeds.json";

/// The experiment of a several-seed run, kept at its root (each seed's copy differs only in `seed`).
pub const SEEDS_EXPERIMENT: &str = "experiment-all-seeds.toml";

/// Seeds from `0..4` (inclusive: 0, 1, 2, 3, 4) or a list `0,3,7`.
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>> {
    let bad =
        |why: &str| Error::invalid("--seeds", format!("{spec:?}: {why} (write 0..4 or 0,3,7)"));
    let seeds: Vec<u64> = if let Some((a, b)) = spec.split_once("..") {
        let b = b.strip_prefix('=').unwrap_or(b);
        let (a, b): (u64, u64) = (
            a.trim().parse().map_err(|_| bad("not a number"))?,
            b.trim().parse().map_err(|_| bad("not a number"))?,
        );
        if a > b {
            return Err(bad("the range is empty"));
        }
        (a..=b).collect()
    } else {
        spec.split(',')
            .map(|s| s.trim().parse().map_err(|_| bad("not a number")))
            .collect::<Result<_>>()?
    };
    let mut sorted = seeds.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() != seeds.len() {
        return Err(bad("a seed is repeated"));
    }
    if seeds.len() > 1000 {
        return Err(bad("more than 1000 seeds"));
    }
    Ok(seeds)
}

pub fn seed_dir(root: &Path, seed: u64) -> PathBuf {
    root.join(format!("seed-{seed}"))
}

/// The seeds a several-seed run directory was started with, if it is one.
pub fn read_seeds(root: &Path) -> Result<Option<Vec<u64>>> {
    let path = root.join(SEEDS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Data {
                path,
                line: e.line(),
                message: format!("not a list of seeds: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

pub fn write_seeds(root: &Path, seeds: &[u64]) -> Result<()> {
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    write_atomic(
        &root.join(SEEDS_FILE),
        serde_json::to_string(seeds)
            .expect("seeds serialise")
            .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_lists_and_ranges_parse_and_bad_ones_say_why() {
        assert_eq!(parse_seeds("0..2").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_seeds("3..=4").unwrap(), vec![3, 4]);
        assert_eq!(parse_seeds("5, 1,9").unwrap(), vec![5, 1, 9]);
        assert!(parse_seeds("2..1")
            .unwrap_err()
            .to_string()
            .contains("empty"));
        assert!(parse_seeds("1,1")
            .unwrap_err()
            .to_string()
            .contains("repeated"));
        assert!(parse_seeds("a..3")
            .unwrap_err()
            .to_string()
            .contains("--seeds"));
    }
}
