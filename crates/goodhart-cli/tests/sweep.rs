//! `goodhart sweep`: a grid of tiny runs on the local process pool and as a
//! Slurm job array (on the one-node cluster `.ci/slurm-up` starts), which
//! must aggregate to the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

/// A one-task experiment and a sweep over its label budget, in `dir`.
fn sweep_file(dir: &Path, seeds: &str, pairs: &str) -> PathBuf {
    std::fs::write(
        dir.join("tiny.toml"),
        r#"
name = "tiny"
[[task]]
kind = "answers"
[task.answers]
max_digits = 2
shift_digits = 3
[[task.strategies.rl]]
name = "ppo-kl"
iterations = 2
"#,
    )
    .unwrap();
    let path = dir.join("sweep.toml");
    std::fs::write(
        &path,
        format!(
            r#"
name = "label budget"
experiments = ["tiny.toml"]
quick = true
seeds = {seeds}
threads = 1
[[grid]]
key = "task.answers.labels.pairs"
values = {pairs}
"#
        ),
    )
    .unwrap();
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_local_sweep_runs_every_point_and_seed_aggregates_them_and_never_redoes_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = sweep_file(dir.path(), "[3, 4]", "[40, 80]");
    let out = dir.path().join("out");
    let (file, out_s) = (file.to_str().unwrap(), out.to_str().unwrap());
    let printed = common::ok(1, &["sweep", file, "--out", out_s, "--parallel", "2"]);
    assert!(printed.contains("2 points x 2 seeds = 4 runs"), "{printed}");
    let csv = read(&out.join("sweep.csv"));
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    assert_eq!(
        &header[..4],
        ["point", "task.answers.labels.pairs", "task", "strategy"]
    );
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    for point in ["p00-pairs-40", "p01-pairs-80"] {
        let ppo = rows
            .iter()
            .find(|r| r[0] == point && r[col("strategy")] == "ppo-kl")
            .unwrap_or_else(|| panic!("no ppo-kl row for {point}:\n{csv}"));
        assert_eq!(ppo[col("seeds")], "2");
        // Two seeds: a finite interval across them.
        assert!(
            ppo[col("gold_ci")].parse::<f64>().unwrap().is_finite(),
            "{csv}"
        );
        for seed in [3, 4] {
            let run = out.join(point).join(format!("seed-{seed}"));
            assert!(read(&run.join("experiment.toml")).contains(&format!("seed = {seed}")));
        }
        // Each point is an ordinary several-seed run with its own report.
        assert!(read(&out.join(point).join("report.html")).contains("over 2 seeds"));
    }
    let run0 = out.join("p00-pairs-40/seed-3/experiment.toml");
    assert!(read(&run0).contains("pairs = 40") && read(&run0).contains("threads = 1"));
    let html = read(&out.join("report.html"));
    assert!(
        html.contains("Against pairs") && html.contains("<svg"),
        "the sweep report plots against the swept key"
    );
    // Run again: nothing to run, the same aggregate.
    let stamp = std::fs::metadata(&run0).unwrap().modified().unwrap();
    let again = common::ok(1, &["sweep", file, "--out", out_s]);
    assert!(again.contains("(0 to run)"), "{again}");
    assert_eq!(std::fs::metadata(&run0).unwrap().modified().unwrap(), stamp);
    assert_eq!(read(&out.join("sweep.csv")), csv);
    let status = common::ok(1, &["sweep", "status", out_s]);
    assert!(status.contains("4 runs: 4 finished"), "{status}");
    // A different sweep in the same directory is refused, and nothing there is lost.
    let other = sweep_file(dir.path(), "[3, 4]", "[40, 120]");
    let err = common::fail(1, &["sweep", other.to_str().unwrap(), "--out", out_s]);
    assert!(err.contains("holds a different sweep"), "{err}");
    assert_eq!(read(&out.join("sweep.csv")), csv);
}

#[test]
fn bad_sweeps_are_refused_with_the_field_and_runs_out_of_range_too() {
    let dir = tempfile::tempdir().unwrap();
    let file = sweep_file(dir.path(), "[0]", "[40]");
    let text = read(&file).replace("task.answers.labels.pairs", "task.answers.label.pairs");
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");
    let err = common::fail(
        1,
        &[
            "sweep",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("task.answers.label") && err.contains("labels"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "nothing is written for a sweep that does not plan"
    );
    let file = sweep_file(dir.path(), "[0]", "[40]");
    common::ok(
        1,
        &[
            "sweep",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let err = common::fail(1, &["sweep", "run-one", out.to_str().unwrap(), "5"]);
    assert!(
        err.contains("out of range") && err.contains("1 runs"),
        "{err}"
    );
    let err = common::fail(1, &["sweep", "report", dir.path().to_str().unwrap()]);
    assert!(err.contains("not a sweep directory"), "{err}");
}

/// The Slurm backend submits the same runs as a job array on the cluster
/// `.ci/slurm-up` starts, and its aggregate equals the local backend's bit for bit.
#[test]
fn a_slurm_sweep_aggregates_to_the_same_bytes_as_the_local_one() {
    let up = Command::new("sinfo").args(["-h", "-o", "%t"]).output();
    let states = up
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    assert!(
        states.lines().any(|s| ["idle", "mix", "alloc"].contains(&s.trim())),
        "the Slurm test needs a running Slurm cluster (none answers sinfo: {up:?}); start a one-node one with `sudo .ci/slurm-up` (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = sweep_file(dir.path(), "[3]", "[40, 60, 80]");
    let file = file.to_str().unwrap();
    let (local, slurm) = (dir.path().join("local"), dir.path().join("slurm"));
    common::ok(1, &["sweep", file, "--out", local.to_str().unwrap()]);
    let printed = common::ok(
        1,
        &[
            "sweep",
            file,
            "--out",
            slurm.to_str().unwrap(),
            "--backend",
            "slurm",
            "--wait",
        ],
    );
    assert!(printed.contains("submitted Slurm job"), "{printed}");
    let script = read(&slurm.join("slurm/sweep.sbatch"));
    assert!(
        script.contains("#SBATCH --cpus-per-task=1") && script.contains("sweep run-one"),
        "{script}"
    );
    assert!(read(&slurm.join("logs/run-2.log")).contains("run 2"));
    let mut compared = 0;
    for point in ["p00-pairs-40", "p01-pairs-60", "p02-pairs-80"] {
        for file in [
            "curves.csv",
            "fits.json",
            "summary.txt",
            "seed-3/curves.csv",
            "seed-3/metrics.jsonl",
        ] {
            let (a, b) = (local.join(point).join(file), slurm.join(point).join(file));
            assert!(
                read(&a) == read(&b),
                "{point}/{file} differs between the backends"
            );
            compared += 1;
        }
    }
    assert_eq!(
        read(&local.join("sweep.csv")),
        read(&slurm.join("sweep.csv"))
    );
    assert_eq!(compared, 15);
    let status = common::ok(1, &["sweep", "status", slurm.to_str().unwrap()]);
    assert!(status.contains("3 runs: 3 finished"), "{status}");
}
