//! What abuse testing of the CLI found, each a test: outputs never replaced
//! without `--force`, sizes bounded before any work, imports that cannot forge
//! or mislabel, broken pipes, one-line errors, plain-text logs.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

fn ok(args: &[&str]) -> String {
    common::ok(1, args)
}

fn fail(args: &[&str]) -> String {
    common::fail(1, args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A store with one imported comparison, and the file it came from.
fn store_with_a_comparison(dir: &Path) -> std::path::PathBuf {
    let store = dir.join("labels.sqlite");
    let file = dir.join("one.jsonl");
    std::fs::write(
        &file,
        "{\"prompt\": \"1+1=\", \"chosen\": \"2\", \"rejected\": \"3\"}\n",
    )
    .unwrap();
    ok(&[
        "labels",
        "import",
        "--store",
        s(&store),
        s(&file),
        "--task",
        "answers",
    ]);
    store
}

#[test]
fn outputs_are_never_replaced_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_comparison(dir.path());
    let precious = dir.path().join("precious.txt");
    for args in [
        vec![
            "labels",
            "export",
            "--store",
            s(&store),
            "--out",
            s(&precious),
        ],
        vec![
            "label",
            "stats",
            "--store",
            s(&store),
            "--json",
            s(&precious),
        ],
    ] {
        std::fs::write(&precious, "keep me").unwrap();
        let err = fail(&args);
        assert!(
            err.contains("already exists") && err.contains("--force"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
        let mut forced = args.clone();
        forced.push("--force");
        ok(&forced);
        assert_ne!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    }
    // sample --out and eval --json refuse before loading anything.
    std::fs::write(&precious, "keep me").unwrap();
    let err = fail(&["sample", "--checkpoint", "nowhere", "--out", s(&precious)]);
    assert!(err.contains("already exists"), "{err}");
    let err = fail(&["eval", "--checkpoint", "nowhere", "--json", s(&precious)]);
    assert!(err.contains("already exists"), "{err}");
    // A checkpoint directory is never written over a plain file, --force or not.
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    let err = fail(&["sft", "--out", s(&precious), "--force"]);
    assert!(err.contains("is a file"), "{err}");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert_eq!(listing(), before, "nothing renamed aside");
}

#[test]
fn sizes_and_thread_counts_are_bounded_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let exp = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cases = [
        (
            exp(
                "d.toml",
                "[[task]]\n[task.model]\nd_model = 9223372036854775807\n",
            ),
            "model.d_model",
        ),
        (
            exp(
                "v.toml",
                "[[task]]\n[task.model]\nvocab_size = 4000000\nn_layer = 1000\nd_model = 4096\n",
            ),
            "parameters",
        ),
        (
            exp("h.toml", "[[task]]\n[task.answers]\nn_heldout = 0\n"),
            "n_heldout",
        ),
        (exp("t.toml", "threads = 100000\n[[task]]\n"), "threads"),
    ];
    for (path, key) in &cases {
        let start = std::time::Instant::now();
        let err = fail(&["sft", s(path), "--out", s(&dir.path().join("ck"))]);
        assert!(
            err.contains(key) && err.lines().count() == 1,
            "{key}: {err}"
        );
        assert!(
            start.elapsed().as_secs() < 10,
            "{key}: refused only after {:?}",
            start.elapsed()
        );
    }
    let err = common::fail(100_000, &["task", "show", "answers"]);
    assert!(err.contains("threads"), "{err}");
    assert!(!dir.path().join("ck").exists());
}

#[test]
fn imports_refuse_what_they_would_mislabel_or_forge() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_a_comparison(dir.path());
    ok(&["label", "add-user", "alice", "--store", s(&store)]);
    let good = "{\"prompt\": \"2+2=\", \"chosen\": \"4\", \"rejected\": \"5\"}";
    let bad_lines = [
        ("[\"2+2=\", \"4\", \"5\"]", "not a JSON object"),
        (
            "{\"prompt\": \"2+2=\", \"chosen\": \"4\", \"rejected\": \"5\", \"task\": \"gridworld\"}",
            "not this import's task",
        ),
        (
            "{\"prompt\": \"2+2=\", \"chosen\": \"4\", \"rejected\": \"5\", \"labeler\": \"\"}",
            "name is empty",
        ),
        (
            "{\"prompt\": \"2+2=\", \"chosen\": \"4\", \"rejected\": \"5\", \"labeler\": \"alice\"}",
            "is a person",
        ),
    ];
    let before = ok(&["labels", "export", "--store", s(&store)]);
    for (line, why) in bad_lines {
        let file = dir.path().join("in.jsonl");
        std::fs::write(&file, format!("{good}\n{line}\n")).unwrap();
        let err = fail(&[
            "labels",
            "import",
            "--store",
            s(&store),
            s(&file),
            "--task",
            "answers",
        ]);
        assert!(
            err.contains("in.jsonl:2") && err.contains(why),
            "{why}: {err}"
        );
        assert_eq!(
            ok(&["labels", "export", "--store", s(&store)]),
            before,
            "nothing imported"
        );
    }
    // A line that is not UTF-8 is a numbered bad line, skipped with --skip-bad.
    let file = dir.path().join("bytes.jsonl");
    let mut bytes = format!("{good}\n").into_bytes();
    bytes.extend(b"{\"prompt\": \"\xff\"}\n");
    std::fs::write(&file, bytes).unwrap();
    let out = common::goodhart(
        1,
        &[
            "labels",
            "import",
            "--store",
            s(&store),
            s(&file),
            "--task",
            "answers",
            "--skip-bad",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("bytes.jsonl:2: skipped: not UTF-8"), "{err}");
    assert!(err.contains("imported 1 comparisons"), "{err}");
}

#[test]
fn a_closed_pipe_ends_quietly_and_errors_say_each_cause_once() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_goodhart"))
        .args(["--quiet", "task", "show", "gridworld", "--n", "50"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // The reader goes away, like `| head -1`.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(first.starts_with("task gridworld"), "{first}");
    assert!(out.status.success() && !err.contains("panicked"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let err = fail(&[
        "labels",
        "import",
        "--store",
        s(&dir.path().join("l.sqlite")),
        "missing.jsonl",
        "--task",
        "answers",
    ]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let spec = dir.path().join("spec.toml");
    std::fs::write(
        &spec,
        "[[task]]\nkind = \"gridworld\"\n[task.gridworld]\nspec = \"F at_gaol\"\n",
    )
    .unwrap();
    let err = fail(&["config", s(&spec)]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("column 3") && err.contains("at_gaol"), "{err}");
}

#[test]
fn logs_written_to_a_file_are_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("tiny.toml");
    std::fs::write(
        &exp,
        "[[task]]\n[task.answers]\nmax_digits = 1\nshift_digits = 2\nn_train = 64\nn_heldout = 8\n\
         [task.model]\nn_layer = 1\nd_model = 16\nn_head = 2\nn_ctx = 40\n\
         [task.sft]\nsteps = 2\nbatch_size = 4\neval_every = 2\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_goodhart"))
        .args([
            "--threads",
            "1",
            "sft",
            s(&exp),
            "--out",
            s(&dir.path().join("ck")),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("INFO") && err.contains("sft"),
        "a log was written: {err:?}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a log that is not a terminal: {err:?}"
    );
}
