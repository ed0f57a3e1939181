//! `goodhart run --quick`: the whole pipeline on both bundled tasks in seconds.
//! Its files are complete and sane, two runs are bit-identical, and a run
//! killed part-way and resumed ends with the same numbers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

/// Threads every command of this file runs with.
const THREADS: usize = 2;

fn ok(args: &[&str]) -> String {
    common::ok(THREADS, args)
}

fn fail(args: &[&str]) -> String {
    common::fail(THREADS, args)
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
}

#[test]
fn a_quick_run_writes_every_output_and_repeats_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let summary = ok(&["run", "--quick", "--out", a.to_str().unwrap()]);
    for line in [
        "answers",
        "gridworld",
        "bon",
        "bon-labeler",
        "bon-gold",
        "conditioning",
        "quantiliser",
        "ppo-kl",
        "ppo-adaptive",
        "ppo-nokl",
        "rloo",
        "ppo-online",
        "ppo-spec",
        "dpo",
    ] {
        assert!(
            summary.contains(line),
            "the summary names {line}:\n{summary}"
        );
    }
    for file in [
        "experiment.toml",
        "metrics.jsonl",
        "curves.csv",
        "fits.json",
        "report.html",
        "answers/labels.sqlite",
        "gridworld/reward_model/reward_model.json",
    ] {
        assert!(a.join(file).is_file(), "{file} is written");
    }

    // answers-careful has answers' base policy: the same settings and seed make the same weights.
    let weights = |task: &str| std::fs::read(a.join(task).join("base/model.safetensors")).unwrap();
    assert!(weights("answers") == weights("answers-careful"));

    // Every curve point of every strategy, on held-out and shifted prompts, with finite measurements.
    let csv = read(&a, "curves.csv");
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("column {name}"))
    };
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    for (task, strategy) in [
        ("answers", "bon"),
        ("answers", "ppo-kl"),
        ("answers", "dpo"),
        ("gridworld", "ppo-spec"),
        ("gridworld", "quantiliser"),
        ("gridworld", "bon-gold"),
        ("answers", "bon-labeler"),
    ] {
        for split in ["heldout", "shift"] {
            let mine: Vec<&Vec<&str>> = rows
                .iter()
                .filter(|r| r[0] == task && r[1] == strategy && r[2] == split)
                .collect();
            assert!(mine.len() >= 2, "{task}/{strategy}/{split} has a curve");
            for r in mine {
                for c in [
                    "kl",
                    "proxy",
                    "gold",
                    "gold_win_rate",
                    "entropy",
                    "truncated",
                ] {
                    let v: f64 = r[col(c)].parse().unwrap_or_else(|_| panic!("{c} of {r:?}"));
                    assert!(v.is_finite());
                }
            }
        }
    }
    let spec_rows = rows
        .iter()
        .filter(|r| r[0] == "gridworld" && !r[col("spec")].is_empty())
        .count();
    assert!(spec_rows > 0, "gridworld reports spec satisfaction");

    // Fits: both forms, finite where they exist.
    let fits: serde_json::Value = serde_json::from_str(&read(&a, "fits.json")).unwrap();
    let fits = fits.as_array().unwrap();
    assert!(
        fits.iter().any(|f| f["form"] == "d (alpha - beta d)")
            && fits.iter().any(|f| f["form"] == "d (alpha - beta ln d)")
    );
    let fitted: Vec<&serde_json::Value> = fits.iter().filter(|f| !f["fit"].is_null()).collect();
    // Best-of-n on the gridworld raises gold even in a quick run: its curves
    // (held-out and shifted prompts) are fitted.
    let bon_fits = fitted
        .iter()
        .filter(|f| f["task"] == "gridworld" && f["strategy"] == "bon")
        .count();
    assert_eq!(bon_fits, 2, "gridworld's best-of-n curves are fitted");
    for f in fitted {
        assert!(
            f["fit"]["alpha"].as_f64().unwrap().is_finite()
                && f["fit"]["beta"].as_f64().unwrap().is_finite(),
            "{f}"
        );
    }

    // The report stands alone: inline SVG, nothing fetched.
    let html = read(&a, "report.html");
    assert!(html.matches("<svg").count() > 10 && html.contains("Gold at matched KL"));
    let external = html.matches("src=\"http").count()
        + html.matches("href=\"http").count()
        + html.matches("<script src").count();
    assert_eq!(external, 0, "no network references");

    // Same command, same machine: the same numbers, bit for bit, even on
    // another number of threads.
    common::ok(1, &["run", "--quick", "--out", b.to_str().unwrap()]);
    for file in RESULTS {
        assert!(
            read(&a, file) == read(&b, file),
            "{file} differs between a run on {THREADS} threads and one on 1"
        );
    }
    // `goodhart report` rebuilds the same report from the run's files.
    std::fs::remove_file(a.join("report.html")).unwrap();
    ok(&["report", a.to_str().unwrap()]);
    assert!(read(&a, "report.html") == html);
}

/// The files that hold a run's numbers.
const RESULTS: [&str; 5] = [
    "metrics.jsonl",
    "curves.csv",
    "fits.json",
    "findings.json",
    "summary.txt",
];

/// The thread count is a speed knob: a batch is cut into shards by its size,
/// not by the pool, so one thread, two and three write the same bytes. This
/// experiment has one task, so every thread works inside its stages' batches
/// (the default's quick run deals its tasks to threads and would not show it).
#[test]
fn the_thread_count_never_changes_a_result() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../experiments/filtering-vs-rl.toml"
    );
    let runs: Vec<_> = [1, 2, 3]
        .iter()
        .map(|&threads| {
            let out = tmp.path().join(format!("t{threads}"));
            common::ok(
                threads,
                &["run", exp, "--quick", "--out", out.to_str().unwrap()],
            );
            out
        })
        .collect();
    for file in RESULTS {
        for other in &runs[1..] {
            assert!(
                read(&runs[0], file) == read(other, file),
                "{file}: {} differs from one thread",
                other.display()
            );
        }
    }
}

#[test]
fn a_killed_run_resumes_to_the_same_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, killed) = (tmp.path().join("whole"), tmp.path().join("killed"));
    ok(&["run", "--quick", "--out", whole.to_str().unwrap()]);

    // SIGKILL the run once answers' RLOO stage has finished: on two threads
    // two stages run at once (answers' online PPO, which labels as it goes,
    // and other tasks' stages), so the kill lands in the middle of both.
    let mut child = Command::new(env!("CARGO_BIN_EXE_goodhart"))
        .args([
            "--quiet",
            "--threads",
            "2",
            "run",
            "--quick",
            "--out",
            killed.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let marker = killed.join("answers/stages/rl.rloo.json");
    let start = Instant::now();
    while !marker.exists() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !killed.join("metrics.jsonl").exists(),
        "the run was stopped before its end"
    );

    // A second run may not start over it; resuming finishes it.
    let err = fail(&["run", "--quick", "--out", killed.to_str().unwrap()]);
    assert!(
        err.contains("already exists") && err.contains("--resume"),
        "{err}"
    );
    ok(&["run", "--resume", killed.to_str().unwrap()]);
    for file in RESULTS {
        assert!(
            read(&whole, file) == read(&killed, file),
            "{file}: the resumed run differs from the uninterrupted one"
        );
    }
}

#[test]
fn run_directories_are_never_clobbered() {
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "keep me").unwrap();
    let err = fail(&["run", "--quick", "--out", mine.to_str().unwrap()]);
    assert!(err.contains("already exists"), "{err}");
    let err = fail(&["run", "--quick", "--force", "--out", mine.to_str().unwrap()]);
    assert!(err.contains("not a goodhart run directory"), "{err}");
    let err = fail(&["run", "--resume", mine.to_str().unwrap()]);
    assert!(err.contains("not a run directory"), "{err}");
    assert_eq!(
        std::fs::read_to_string(mine.join("notes.txt")).unwrap(),
        "keep me"
    );
    let err = fail(&[
        "optimize",
        "no-such-strategy",
        "--quick",
        "--out",
        tmp.path().join("o").to_str().unwrap(),
    ]);
    assert!(
        err.contains("no strategy named \"no-such-strategy\""),
        "{err}"
    );
}

#[test]
fn several_seeds_run_as_sub_runs_and_aggregate_the_same_way_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let summary = ok(&[
        "run",
        "--quick",
        "--seeds",
        "0..1",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert!(summary.contains("2 seeds"), "{summary}");
    assert!(
        summary.contains("in 2/2 seeds") || summary.contains("/2 seeds"),
        "{summary}"
    );
    for file in [
        "seeds.json",
        "curves.csv",
        "fits.json",
        "summary.txt",
        "report.html",
        "seed-0/report.html",
        "seed-1/curves.csv",
    ] {
        assert!(a.join(file).is_file(), "{file} is written");
    }
    // The seeds differ: each sub-run carries its own seed.
    assert!(read(&a, "seed-1/experiment.toml").contains("seed = 1"));
    assert_ne!(read(&a, "seed-0/curves.csv"), read(&a, "seed-1/curves.csv"));
    // Across-seed intervals on every row that two seeds share.
    let csv = read(&a, "curves.csv");
    let row = csv
        .lines()
        .find(|l| l.starts_with("answers,bon,heldout,n,8,"))
        .expect("a best-of-8 row");
    let ci: f64 = row.split(',').nth(11).unwrap().parse().unwrap();
    assert!(ci.is_finite() && ci >= 0.0, "{row}");

    ok(&[
        "run",
        "--quick",
        "--seeds",
        "0..1",
        "--out",
        b.to_str().unwrap(),
    ]);
    for file in ["curves.csv", "fits.json", "summary.txt", "report.html"] {
        assert_eq!(read(&a, file), read(&b, file), "{file} repeats bit for bit");
    }
    assert!(read(&a, "report.html").contains("95% Student-t intervals across seeds"));
    // Resuming a finished several-seed run redoes nothing and rewrites the same aggregate; so does `report`.
    ok(&["run", "--resume", a.to_str().unwrap()]);
    assert_eq!(read(&a, "fits.json"), read(&b, "fits.json"));
    std::fs::remove_file(a.join("report.html")).unwrap();
    ok(&["report", a.to_str().unwrap()]);
    assert_eq!(read(&a, "report.html"), read(&b, "report.html"));
    let err = fail(&[
        "run",
        "--quick",
        "--seeds",
        "3..1",
        "--out",
        tmp.path().join("c").to_str().unwrap(),
    ]);
    assert!(err.contains("--seeds"), "{err}");
}
