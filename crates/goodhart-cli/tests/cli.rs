//! The `goodhart` binary end to end, on tiny configs that run in seconds.

use std::path::{Path, PathBuf};

mod common;

/// Threads every command of this file runs with.
const THREADS: usize = 1;

fn ok(args: &[&str]) -> String {
    common::ok(THREADS, args)
}

fn fail(args: &[&str]) -> String {
    common::fail(THREADS, args)
}

/// A tiny answers experiment: a 1-layer model, short SFT.
fn tiny_experiment(dir: &Path, steps: usize) -> PathBuf {
    let path = dir.join("tiny.toml");
    std::fs::write(
        &path,
        format!(
            r#"
seed = 7
[[task]]
kind = "answers"
[task.answers]
max_digits = 2
shift_digits = 3
n_train = 2000
n_heldout = 128
[task.model]
n_layer = 1
d_model = 48
n_head = 4
n_ctx = 48
[task.sft]
steps = {steps}
batch_size = 32
eval_every = {steps}
[task.sft.optim]
lr = 6e-3
warmup_steps = 10
[task.labels]
pairs = 100000
commit_every = 8
"#
        ),
    )
    .unwrap();
    path
}

fn sft_report(ckpt: &Path) -> (f64, f64) {
    let info: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt.join("checkpoint.json")).unwrap()).unwrap();
    let sft = &info["meta"]["sft"];
    let heldout = sft["heldout_loss"].as_array().unwrap().last().unwrap()["loss"]
        .as_f64()
        .unwrap();
    (heldout, sft["unigram_loss"].as_f64().unwrap())
}

#[test]
fn sft_learns_and_repeats_bit_for_bit_and_so_does_sampling() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny_experiment(dir.path(), 120);
    let exp = exp.to_str().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&["sft", exp, "--out", a.to_str().unwrap()]);
    ok(&["sft", exp, "--out", b.to_str().unwrap()]);

    let (heldout, unigram) = sft_report(&a);
    println!("held-out loss {heldout:.3} nats/token vs unigram baseline {unigram:.3}");
    assert!(
        heldout < 0.6 * unigram,
        "held-out loss {heldout} is not well below the unigram baseline {unigram}"
    );

    let weights = |d: &Path| std::fs::read(d.join("model.safetensors")).unwrap();
    assert_eq!(
        weights(&a),
        weights(&b),
        "same seed, same thread count: identical checkpoints"
    );

    let sample = |d: &Path| {
        ok(&[
            "sample",
            "--checkpoint",
            d.to_str().unwrap(),
            "--n-prompts",
            "6",
            "-n",
            "3",
        ])
    };
    let (sa, sb) = (sample(&a), sample(&b));
    assert_eq!(sa, sb, "identical samples");
    assert_eq!(sa.lines().count(), 18);
    let first: serde_json::Value = serde_json::from_str(sa.lines().next().unwrap()).unwrap();
    assert!(first["gold"].is_number() && first["logprob"].as_f64().unwrap() < 0.0);

    // Greedy, token by token: every sample of a prompt is the same, and the
    // per-token log-probabilities add up to the completion's.
    let greedy = ok(&[
        "sample",
        "--checkpoint",
        a.to_str().unwrap(),
        "--n-prompts",
        "2",
        "-n",
        "2",
        "--temperature",
        "0",
        "--per-token",
    ]);
    let lines: Vec<serde_json::Value> = greedy
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["tokens"], lines[1]["tokens"],
        "greedy repeats itself"
    );
    for l in &lines {
        let lps: Vec<f64> = l["token_logprobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(lps.len(), l["tokens"].as_array().unwrap().len());
        assert_eq!(lps.len(), l["token_strings"].as_array().unwrap().len());
        assert!((lps.iter().sum::<f64>() - l["logprob"].as_f64().unwrap()).abs() < 1e-3);
        assert!(l["prompt_tokens"].as_array().unwrap().len() > 1);
    }
}

#[test]
fn a_bad_config_names_file_line_and_key_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exp = dir.path().join("bad.toml");
    std::fs::write(
        &exp,
        "seed = 1\n[[task]]\nkind = \"answers\"\n[task.sft]\nsteps = 10\nlearning_rate = 0.1\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let err = fail(&["sft", exp.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("bad.toml:6:1")
            && err.contains("task[0].sft")
            && err.contains("learning_rate"),
        "{err}"
    );
    assert!(!out.exists());

    std::fs::write(
        &exp,
        "[[task]]\nkind = \"answers\"\n[task.model]\nn_layer = \"two\"\n",
    )
    .unwrap();
    let err = fail(&["sft", exp.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(
        err.contains("bad.toml:4:11")
            && err.contains("task[0].model.n_layer")
            && err.contains("invalid type"),
        "{err}"
    );
}

#[test]
fn existing_output_is_not_overwritten_and_bad_checkpoints_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny_experiment(dir.path(), 2);
    let out = dir.path().join("ck");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("precious.txt"), "keep me").unwrap();
    let err = fail(&["sft", exp.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("precious.txt")).unwrap(),
        "keep me"
    );

    let ck = dir.path().join("real");
    ok(&["sft", exp.to_str().unwrap(), "--out", ck.to_str().unwrap()]);
    let weights = ck.join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 100]).unwrap();
    let err = fail(&["sample", "--checkpoint", ck.to_str().unwrap()]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("model.safetensors") && err.contains("truncated or corrupt"),
        "{err}"
    );
    let err = fail(&[
        "sample",
        "--checkpoint",
        dir.path().join("nowhere").to_str().unwrap(),
    ]);
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn a_killed_label_simulation_keeps_every_committed_comparison() {
    let dir = tempfile::tempdir().unwrap();
    let exp = tiny_experiment(dir.path(), 2);
    let ck = dir.path().join("ck");
    ok(&["sft", exp.to_str().unwrap(), "--out", ck.to_str().unwrap()]);
    let store = dir.path().join("labels.sqlite");
    // 100000 pairs in chunks of 8: far more than it can finish before it is killed.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_goodhart"))
        .args([
            "--quiet",
            "--threads",
            "1",
            "label",
            "simulate",
            exp.to_str().unwrap(),
        ])
        .args([
            "--checkpoint",
            ck.to_str().unwrap(),
            "--store",
            store.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wal = dir.path().join("labels.sqlite-wal");
    let start = std::time::Instant::now();
    while std::fs::metadata(&wal).map_or(0, |m| m.len()) < 200_000 && start.elapsed().as_secs() < 60
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let exported = ok(&["labels", "export", "--store", store.to_str().unwrap()]);
    let n = exported.lines().count();
    assert!(
        n > 8,
        "the committed chunks survive the kill: {n} comparisons"
    );
    for line in exported.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(
            v["prompt"].is_string() && v["chosen"].is_string() && v["rejected"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn task_show_shows_a_task_as_the_experiment_sets_it_up() {
    let out = ok(&["task", "show", "answers-careful", "--n", "1"]);
    assert!(
        out.contains("as experiment") && out.contains("--- gold:"),
        "{out}"
    );
    let kind = ok(&[
        "task",
        "show",
        "gridworld",
        "--n",
        "1",
        "--split",
        "heldout",
    ]);
    assert!(kind.contains("heldout split"), "{kind}");
    let err = fail(&["task", "show", "no-such-task"]);
    assert!(
        err.contains("no-such-task") && err.contains("answers-careful"),
        "names the experiment's tasks: {err}"
    );
}
