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

/// Import `file`'s comparisons into `store` as the answers task's.
fn import(store: &Path, file: &Path) {
    ok(&[
        "labels",
        "import",
        "--store",
        s(store),
        s(file),
        "--task",
        "answers",
    ]);
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
    import(&store, &file);
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

/// What forges a log line or clears a terminal: ESC, then a newline and a fake line.
const FORGERY: &str = "\u{1b}[2J\nINFO sign_in name=admin";

/// No raw control character and no line that starts as the forged one.
fn assert_unforged(text: &str, what: &str) {
    assert!(!text.contains('\u{1b}'), "{what} holds a raw ESC: {text:?}");
    assert!(
        !text.lines().any(|l| l.starts_with("INFO sign_in")),
        "{what} holds a forged line: {text:?}"
    );
}

#[test]
fn control_characters_from_input_reach_no_log_line_or_table() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("labels.sqlite");
    let file = dir.path().join("evil.jsonl");
    let line = serde_line(FORGERY);
    std::fs::write(&file, format!("{line}\n")).unwrap();
    import(&store, &file);
    let table = ok(&["label", "stats", "--store", s(&store)]);
    assert_unforged(&table, "label stats");
    assert!(table.contains("\\u{1b}[2J\\nINFO"), "{table}");

    // A sign-in with the forgery as its name, before anyone is signed in.
    let mut server = Command::new(env!("CARGO_BIN_EXE_goodhart"))
        .args([
            "--quiet",
            "label",
            "serve",
            "--store",
            s(&store),
            "--bind",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let addr = first
        .trim()
        .strip_prefix("serving http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("{first:?}"))
        .to_string();
    let body = format!("{{\"name\": {}, \"token\": \"x\"}}", json_string(FORGERY));
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        conn,
        "POST /api/signin HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    server.kill().unwrap();
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    server.wait().unwrap();
    assert!(log.contains("failed sign-in"), "{log}");
    assert_unforged(&log, "the server's log");
}

/// A preference line whose labeler is `name`.
fn serde_line(name: &str) -> String {
    format!(
        "{{\"prompt\": \"1+1=\", \"chosen\": \"2\", \"rejected\": \"3\", \"labeler\": {}}}",
        json_string(name)
    )
}

/// `text` as a JSON string literal (control characters as \u escapes).
fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn huge_seed_ranges_and_bad_settings_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    for seeds in [
        "0..18446744073709551615",
        "0..1099511627776",
        "0..1000000000",
    ] {
        let out = dir.path().join("r");
        let err = fail(&["run", "--quick", "--seeds", seeds, "--out", s(&out)]);
        assert!(
            err.contains("more than 1000 seeds") && err.lines().count() == 1,
            "{seeds}: {err}"
        );
        let sweep = dir.path().join("s.toml");
        std::fs::write(&sweep, "name = \"s\"\n").unwrap();
        let err = fail(&[
            "sweep",
            s(&sweep),
            "--seeds",
            seeds,
            "--out",
            s(&dir.path().join("sw")),
        ]);
        assert!(err.contains("more than 1000 seeds"), "{seeds}: {err}");
    }
    let exp = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    for (path, key) in [
        (
            exp("b.toml", "[[task]]\n[task.sft]\nbatch_size = 1000000000\n"),
            "sft.batch_size",
        ),
        (
            exp("i.toml", "[[task]]\n[task.model]\ninit_std = inf\n"),
            "init_std",
        ),
        (
            exp("n.toml", "[[task]]\n[task.model]\ninit_std = nan\n"),
            "init_std",
        ),
        (
            exp("w.toml", "[[task]]\n[task.sft.optim]\nweight_decay = nan\n"),
            "weight_decay",
        ),
        (
            exp("l.toml", "[[task]]\ntrain_last_blocks = 100\n"),
            "train_last_blocks",
        ),
    ] {
        let err = fail(&["config", s(&path)]);
        assert!(
            err.contains(key) && err.lines().count() == 1,
            "{key}: {err}"
        );
    }
    for args in [
        &[
            "label",
            "serve",
            "--store",
            "x.sqlite",
            "--idle-minutes",
            "0",
        ][..],
        &[
            "label",
            "serve",
            "--store",
            "x.sqlite",
            "--session-hours",
            "0",
        ],
        &["eval", "--checkpoint", "nowhere", "-n", "0"],
    ] {
        let err = fail(args);
        assert!(
            err.contains("'0'") && err.contains("1.."),
            "{args:?}: {err}"
        );
    }
    assert!(start.elapsed().as_secs() < 20, "{:?}", start.elapsed());
}
