//! Bring your own model and data: a Hugging Face GPT-2 directory (the tiny
//! random one of crates/goodhart/tests/fixtures/hf) and a preference JSONL run
//! through every pipeline with the commands the README gives: SFT of the HF
//! model on the file's chosen completions, a reward model, best-of-n, PPO with
//! KL, DPO.

use std::path::{Path, PathBuf};

mod common;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../goodhart/tests/fixtures/hf/gpt2")
}

/// 120 arithmetic pairs; the data's labeler prefers a confident wrong answer on
/// every fourth one, and the gold columns say which is right.
fn preferences(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for i in 0..120u32 {
        let (a, b) = (i * 7 % 50, i * 13 % 50);
        let wrong = a + b + 1 + i % 3;
        let (chosen, rejected, cg, rg) = if i % 4 == 0 {
            (
                format!(" {wrong}, I am sure"),
                format!(" {}", a + b),
                -1.0,
                1.0,
            )
        } else {
            (format!(" {}", a + b), format!(" {wrong}"), 1.0, -1.0)
        };
        text += &serde_json::json!({
            "prompt": format!("Q: {a}+{b}=?\nA:"),
            "chosen": chosen, "rejected": rejected,
            "chosen_gold": cg, "rejected_gold": rg,
        })
        .to_string();
        text.push('\n');
    }
    let path = dir.join("prefs.jsonl");
    std::fs::write(&path, text).unwrap();
    path
}

fn experiment(dir: &Path, prefs: &Path, gold: Option<&Path>) -> PathBuf {
    let gold = gold.map_or(String::new(), |g| {
        format!("gold_model = {:?}\n", g.display().to_string())
    });
    let text = format!(
        r#"name = "byo"
[[task]]
kind = "jsonl"
base_checkpoint = {base:?}
fine_tune_base = true
[task.jsonl]
preferences = {prefs:?}
{gold}
[task.sft]
steps = 6
batch_size = 8
eval_every = 6
[task.sampling]
max_new_tokens = 8
[[task.labelers]]
name = "data"
[task.reward_model]
steps = 40
[task.evaluation]
prompts = 8
shift_prompts = 4
per_prompt = 2
[task.strategies.pool]
prompts = 8
samples = 8
[task.strategies.bon]
n = [1, 2, 4, 8]
[[task.strategies.rl]]
name = "ppo-kl"
iterations = 2
prompts_per_iteration = 8
max_new_tokens = 8
checkpoint_every = 1
[[task.strategies.dpo]]
name = "dpo"
epochs = 1
"#,
        base = fixture().display().to_string(),
        prefs = prefs.display().to_string(),
    );
    let path = dir.join(if gold.is_empty() {
        "plain.toml"
    } else {
        "byo.toml"
    });
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_hugging_face_gpt2_and_a_preference_file_go_through_every_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let prefs = preferences(dir);
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // Reward model on the file's comparisons, with the HF model as its trunk.
    let store = dir.join("labels.sqlite");
    common::ok(
        2,
        &[
            "labels",
            "import",
            "--store",
            &s(&store),
            &s(&prefs),
            "--task",
            "jsonl",
            "--labeler",
            "data",
        ],
    );
    let plain = experiment(dir, &prefs, None);
    let gold = dir.join("gold-rm");
    let out = common::ok(
        2,
        &[
            "rm",
            "train",
            "--store",
            &s(&store),
            "--base",
            &s(&fixture()),
            "--task",
            "jsonl",
            &s(&plain),
            "--labeler",
            "data",
            "--out",
            &s(&gold),
        ],
    );
    assert!(out.is_empty() || out.contains("accuracy"), "{out}");
    assert!(gold.join("reward_model.json").is_file());

    // Every strategy with that model as gold: best-of-n, PPO with KL, DPO.
    let exp = experiment(dir, &prefs, Some(&gold));
    let run = dir.join("run");
    common::ok(2, &["run", &s(&exp), "--out", &s(&run)]);
    let curves = std::fs::read_to_string(run.join("curves.csv")).unwrap();
    for strategy in ["bon", "ppo-kl", "dpo"] {
        assert!(
            curves.lines().any(|l| l.contains(strategy)),
            "no {strategy} rows:\n{curves}"
        );
    }
    assert!(
        run.join("jsonl/base/tokenizer.json").is_file(),
        "checkpoints carry the tokenizer"
    );

    // Without a gold model, new completions have no gold: a clear error, not a panic.
    let err = common::fail(2, &["run", &s(&plain), "--out", &s(&dir.join("run2"))]);
    assert!(err.contains("gold_model"), "{err}");
}

#[test]
fn sample_says_why_each_completion_stopped() {
    // A GPT-2 with 20 positions: after BOS and a 15-token prompt the context
    // leaves 4 new tokens, where a 3-token prompt gets all 12 asked for.
    let ck = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../goodhart/tests/fixtures/hf/matrix/gpt2-context-budget");
    let out = common::ok(
        1,
        &[
            "sample",
            "--checkpoint",
            ck.to_str().unwrap(),
            "--prompt",
            "The quick",
            "--prompt",
            "Q: 12+30=?\nA: 42 and the quick",
            "--temperature",
            "0",
            "--max-new-tokens",
            "12",
        ],
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let stops: Vec<&str> = lines.iter().map(|l| l["stop"].as_str().unwrap()).collect();
    assert_eq!(stops[1], "context", "{out}");
    assert!(matches!(stops[0], "max_new_tokens" | "eos"), "{out}");
    for l in &lines {
        assert_eq!(l["finished"], l["stop"] == "eos", "{l}");
        assert_eq!(l.get("stop_token").is_some(), l["stop"] == "eos", "{l}");
    }
}
