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

/// The most seeds one run or sweep takes.
pub const MAX_SEEDS: u64 = 1000;

/// Seeds from `0..4` (inclusive: 0, 1, 2, 3, 4) or a list `0,3,7`; at most
/// [`MAX_SEEDS`], counted before any list is made.
pub fn parse_seeds(spec: &str) -> Result<Vec<u64>> {
    let shown: String = spec.chars().take(60).collect();
    let bad =
        |why: &str| Error::invalid("--seeds", format!("{shown:?}: {why} (write 0..4 or 0,3,7)"));
    let too_many = || bad(&format!("more than {MAX_SEEDS} seeds"));
    let seeds: Vec<u64> = if let Some((a, b)) = spec.split_once("..") {
        let b = b.strip_prefix('=').unwrap_or(b);
        let (a, b): (u64, u64) = (
            a.trim().parse().map_err(|_| bad("not a number"))?,
            b.trim().parse().map_err(|_| bad("not a number"))?,
        );
        if a > b {
            return Err(bad("the range is empty"));
        }
        if b - a >= MAX_SEEDS {
            return Err(too_many());
        }
        (a..=b).collect()
    } else {
        if spec.split(',').count() as u64 > MAX_SEEDS {
            return Err(too_many());
        }
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

    #[test]
    fn huge_seed_ranges_are_refused_before_anything_is_allocated() {
        assert_eq!(parse_seeds("0..999").unwrap().len(), 1000);
        for spec in [
            "0..1000",
            "0..1000000000",
            "0..1099511627776",
            "0..18446744073709551615",
            "1..=18446744073709551615",
        ] {
            let err = parse_seeds(spec).unwrap_err().to_string();
            assert!(err.contains("more than 1000 seeds"), "{spec}: {err}");
        }
        let list: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
        assert!(parse_seeds(&list.join(","))
            .unwrap_err()
            .to_string()
            .contains("more than 1000"));
    }
}
