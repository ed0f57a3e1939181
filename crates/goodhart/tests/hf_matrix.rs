//! The parity matrix: one tiny random checkpoint per configuration real models
//! use, saved by transformers 5.x (`tests/fixtures/make_hf_fixtures.py matrix`;
//! committed, so no Python is needed here). For every row goodhart must give
//! transformers' logits (within 1e-4), its per-token log-probabilities of a
//! batch of prompts left-padded there and right-padded here, and its greedy
//! tokens through the KV cache, stopping at EOS where it does.

mod hf_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::Device;
use goodhart::hf;
use goodhart::model::sample::{sample, SamplingConfig};
use goodhart::model::SequenceBatch;
use hf_common::{logits, max_abs_diff, rewrite_config};
use serde::Deserialize;

const BAR: f32 = 1e-4;

fn matrix() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/matrix")
}

#[derive(Deserialize)]
struct Row {
    describe: String,
    ids: Vec<u32>,
    logits: Vec<Vec<f32>>,
    never_sampled: Vec<u32>,
    batch: Scored,
    greedy: Greedy,
}

#[derive(Deserialize)]
struct Scored {
    pairs: Vec<(Vec<u32>, Vec<u32>)>,
    logprobs: Vec<Vec<f32>>,
}

#[derive(Deserialize)]
struct Greedy {
    prompts: Vec<Vec<u32>>,
    tokens: Vec<Vec<u32>>,
}

fn rows() -> BTreeMap<String, Row> {
    let text = std::fs::read_to_string(matrix().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What one row measured: max |logit difference|, max |log-prob difference|,
/// greedy sequences identical, of them how many stopped at EOS.
struct Figures {
    logits: f32,
    logprobs: f32,
    greedy_same: bool,
    eos_stops: usize,
}

fn measure(dir: &Path, row: &Row) -> Figures {
    let model = hf::load(dir, &Device::Cpu, false).unwrap();
    let tok = model.tokenizer();
    let mut banned = tok.never_sampled();
    banned.sort();
    assert_eq!(
        banned,
        row.never_sampled,
        "{}: tokens the policy never emits",
        dir.display()
    );

    let pairs: Vec<(&[u32], &[u32])> = row
        .batch
        .pairs
        .iter()
        .map(|(p, c)| (p.as_slice(), c.as_slice()))
        .collect();
    let batch = SequenceBatch::new(&pairs, tok.pad_id(), &Device::Cpu).unwrap();
    let scored = model.score_completions(&batch).unwrap();

    let cfg = SamplingConfig {
        temperature: 0.0,
        max_new_tokens: 12,
        ..Default::default()
    };
    let mut rng = goodhart::rng::stream(0, "greedy");
    let greedy = sample(&model, &row.greedy.prompts, 1, &cfg, &mut rng).unwrap();
    let tokens: Vec<Vec<u32>> = greedy.iter().map(|s| s.tokens.clone()).collect();
    for s in &greedy {
        assert_eq!(
            s.finished,
            s.tokens.last() == Some(&tok.eos_id()),
            "finished exactly when the last token is EOS"
        );
    }
    Figures {
        logits: max_abs_diff(&logits(&model, &row.ids), &row.logits),
        logprobs: max_abs_diff(&scored, &row.batch.logprobs),
        greedy_same: tokens == row.greedy.tokens,
        eos_stops: greedy.iter().filter(|s| s.finished).count(),
    }
}

#[test]
fn every_row_of_the_matrix_matches_transformers() {
    let rows = rows();
    assert!(rows.len() >= 10, "{} rows", rows.len());
    let mut failures = vec![];
    let mut stops = 0;
    eprintln!("row | max |logit diff| | max |log-prob diff| | greedy | EOS stops");
    for (name, row) in &rows {
        let f = measure(&matrix().join(name), row);
        eprintln!(
            "{name} | {:.1e} | {:.1e} | {} | {}/{}   ({})",
            f.logits,
            f.logprobs,
            if f.greedy_same { "same" } else { "DIFFERENT" },
            f.eos_stops,
            row.greedy.prompts.len(),
            row.describe
        );
        if !(f.logits <= BAR && f.logprobs <= BAR && f.greedy_same) {
            failures.push(name.clone());
        }
        stops += f.eos_stops;
    }
    assert!(failures.is_empty(), "rows off transformers: {failures:?}");
    assert!(
        stops > 0,
        "no row stops at EOS: the matrix would not test it"
    );
    // The EOS = pad row is there to stop: transformers' greedy output ends at EOS.
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(matrix().join("gpt2-eos-pad/config.json")).unwrap())
            .unwrap();
    let eos = config["eos_token_id"].as_u64().unwrap() as u32;
    assert!(config["pad_token_id"].is_null());
    let stopped = &rows["gpt2-eos-pad"].greedy.tokens;
    assert!(
        stopped.iter().any(|t| t.last() == Some(&eos)),
        "{stopped:?}"
    );
}

/// A copy of a matrix row whose config.json is rewritten by `edit`.
fn edited(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(matrix().join(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
    }
    rewrite_config(dir.path(), edit);
    dir
}

#[test]
fn the_older_layout_of_rope_keys_loads_to_the_same_logits() {
    let rows = rows();
    // rope_theta at the top level, the scaling in rope_scaling with "type".
    for name in ["llama-mqa-bf16", "llama-rope-yarn", "llama-rope-llama3"] {
        let dir = edited(name, |c| {
            let mut params = c["rope_parameters"].take();
            let params = params.as_object_mut().unwrap();
            c["rope_theta"] = params.remove("rope_theta").unwrap();
            let kind = params.remove("rope_type").unwrap();
            if kind != "default" {
                params.insert("type".into(), kind);
                c["rope_scaling"] = serde_json::Value::Object(params.clone());
            }
            c.as_object_mut().unwrap().remove("rope_parameters");
        });
        let text = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
        assert!(!text.contains("rope_parameters"), "{text}");
        let model = hf::load(dir.path(), &Device::Cpu, false).unwrap();
        let diff = max_abs_diff(&logits(&model, &rows[name].ids), &rows[name].logits);
        assert!(diff <= BAR, "{name} in the old layout: {diff}");
    }
}

#[test]
fn a_window_shorter_than_the_context_becomes_the_context() {
    // Within its window sliding-window attention is full attention: the model
    // loads with that context and refuses longer prompts instead of approximating.
    let dir = edited("mistral", |c| c["sliding_window"] = 8.into());
    let model = hf::load(dir.path(), &Device::Cpu, false).unwrap();
    assert_eq!(model.config().n_ctx, 8);
    let long = vec![5u32; 9];
    let err = sample(
        &model,
        &[long],
        1,
        &SamplingConfig::default(),
        &mut goodhart::rng::stream(0, "t"),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("context is 8"), "{err}");

    let dir = edited("llama-mqa-bf16", |c| {
        c["layer_types"] = serde_json::json!(["full_attention", "chunked_attention"])
    });
    let err = hf::load(dir.path(), &Device::Cpu, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("chunked_attention"),
        "{err}"
    );
}

#[test]
fn longrope_is_refused_by_name() {
    let dir = edited("llama-rope-linear", |c| {
        c["rope_parameters"] = serde_json::json!({"rope_type": "longrope", "rope_theta": 10000.0,
            "short_factor": [1.0], "long_factor": [1.0]})
    });
    let err = hf::load(dir.path(), &Device::Cpu, false)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("config.json") && err.contains("rope_parameters.rope_type = \"longrope\""),
        "{err}"
    );
}
