//! The parity matrix: one tiny random checkpoint per configuration real models
//! use, saved by transformers 5.x (`tests/fixtures/make_hf_fixtures.py matrix`;
//! committed, so no Python is needed here). For every row goodhart must give
//! transformers' logits (within 1e-4), its per-token log-probabilities of a
//! batch of prompts left-padded there and right-padded here, and its greedy
//! tokens through the KV cache, stopping where it does (at any EOS id; under a
//! short context, each prompt of a batch at its own budget) for the same reason.
//! `config_keys.json` lists every key of transformers' configs of these
//! architectures: each must be read by goodhart or listed as without effect.
//! The whole matrix runs twice: through the fused CPU kernels, and through
//! the composite ops a GPU runs (`GOODHART_COMPOSITE_OPS=1`, in a process of its own).

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
    /// Why each stopped: "eos", "max_new_tokens" or "context".
    stops: Vec<String>,
}

fn rows() -> BTreeMap<String, Row> {
    let text = std::fs::read_to_string(matrix().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// What one row measured: max |logit difference|, max |log-prob difference|,
/// greedy sequences and their stop reasons identical, of them how many stopped
/// at EOS and how many at the context.
struct Figures {
    logits: f32,
    logprobs: f32,
    greedy_same: bool,
    eos_stops: usize,
    context_stops: usize,
}

fn measure(dir: &Path, row: &Row) -> Figures {
    // The process's device: a `--features cuda` run on a GPU machine measures the GPU.
    let model = hf::load(dir, &goodhart::runtime::device(), false).unwrap();
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
    let batch = SequenceBatch::new(&pairs, tok.pad_id(), model.device()).unwrap();
    let scored = model.score_completions(&batch).unwrap();

    let cfg = SamplingConfig {
        temperature: 0.0,
        max_new_tokens: 12,
        ..Default::default()
    };
    let mut rng = goodhart::rng::stream(0, "greedy");
    let greedy = sample(&model, &row.greedy.prompts, 1, &cfg, &mut rng).unwrap();
    let tokens: Vec<Vec<u32>> = greedy.iter().map(|s| s.tokens.clone()).collect();
    let stops: Vec<&str> = greedy.iter().map(|s| s.stop.as_str()).collect();
    for s in &greedy {
        assert_eq!(
            s.finished(),
            s.tokens.last().is_some_and(|t| tok.stop_ids().contains(t)),
            "finished exactly when the last token is a stop token"
        );
        assert_eq!(
            s.stop_token(),
            s.tokens.last().copied().filter(|_| s.finished())
        );
    }
    Figures {
        logits: max_abs_diff(&logits(&model, &row.ids), &row.logits),
        logprobs: max_abs_diff(&scored, &row.batch.logprobs),
        greedy_same: tokens == row.greedy.tokens && stops == row.greedy.stops,
        eos_stops: greedy.iter().filter(|s| s.finished()).count(),
        context_stops: stops.iter().filter(|&&s| s == "context").count(),
    }
}

#[test]
fn every_row_of_the_matrix_matches_transformers() {
    let rows = rows();
    assert!(rows.len() >= 16, "{} rows", rows.len());
    let mut failures = vec![];
    let mut stops = 0;
    eprintln!(
        "device {}, ops on the CPU: {}",
        goodhart::runtime::device_name(&goodhart::runtime::device()),
        goodhart::runtime::cpu_ops_path().unwrap().name()
    );
    eprintln!("row | max |logit diff| | max |log-prob diff| | greedy and stops | EOS stops | context stops");
    for (name, row) in &rows {
        let f = measure(&matrix().join(name), row);
        eprintln!(
            "{name} | {:.1e} | {:.1e} | {} | {}/{} | {}   ({})",
            f.logits,
            f.logprobs,
            if f.greedy_same { "same" } else { "DIFFERENT" },
            f.eos_stops,
            row.greedy.prompts.len(),
            f.context_stops,
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
    // The EOS-list row stops at its second id; the short-context row stops
    // two prompts of one batch at the context, each at its own length.
    let config = std::fs::read_to_string(matrix().join("llama-eos-list/config.json")).unwrap();
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    let second = config["eos_token_id"][1].as_u64().unwrap() as u32;
    let ends = &rows["llama-eos-list"].greedy.tokens;
    assert!(
        ends.iter().any(|t| t.last() == Some(&second)),
        "no greedy sequence ends at the second EOS id {second}: {ends:?}"
    );
    let budget = &rows["gpt2-context-budget"].greedy;
    assert_eq!(budget.stops.iter().filter(|s| *s == "context").count(), 2);
    let lengths: Vec<usize> = budget.tokens.iter().map(Vec::len).collect();
    assert!(
        lengths[0] > lengths[1] && lengths[1] > lengths[2],
        "{lengths:?}"
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

/// The same matrix with every fused op on its composite branch, the path other
/// devices take: this test binary again, running the test above alone with
/// the switch on (read once per process, so not in this one).
#[test]
fn every_row_matches_transformers_through_the_composite_ops() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "every_row_of_the_matrix_matches_transformers",
            "--nocapture",
        ])
        .env(goodhart::model::ops::COMPOSITE_OPS_ENV, "1")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the matrix through the composite ops:\n{stdout}\n{stderr}"
    );
    assert!(stderr.contains("ops on the CPU: composite"), "{stderr}");
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
    // loads with that context and refuses, naming the window, what would run
    // past it instead of approximating or cutting it short.
    let dir = edited("mistral", |c| c["sliding_window"] = 16.into());
    let model = hf::load(dir.path(), &Device::Cpu, false).unwrap();
    assert_eq!(model.config().n_ctx, 16);
    let prompt = vec![5u32; 10];
    let run = |max_new_tokens| {
        let cfg = SamplingConfig {
            temperature: 0.0,
            max_new_tokens,
            ..Default::default()
        };
        sample(
            &model,
            std::slice::from_ref(&prompt),
            1,
            &cfg,
            &mut goodhart::rng::stream(0, "t"),
        )
    };
    let err = run(12).err().unwrap().to_string();
    assert!(
        err.contains("sliding_window of 16") && err.contains("max_new_tokens is 12"),
        "{err}"
    );
    assert!(run(6).is_ok(), "10 + 6 tokens fit the window");

    // Qwen2 slides only where its layer_types say so.
    let dir = edited("qwen2-tied-bias-vocab512", |c| {
        c["use_sliding_window"] = true.into();
        c["sliding_window"] = 16.into();
    });
    let model = hf::load(dir.path(), &Device::Cpu, false).unwrap();
    assert_eq!(model.config().n_ctx, 64, "no layer slides");

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

#[test]
fn every_config_key_of_transformers_is_read_or_without_effect() {
    // `config_keys.json`: every key transformers' GPT-2, Llama, Qwen2, Qwen3 and
    // Mistral configs define, with its default. A key goodhart ignores must be
    // one that cannot change the logits (hf::KEYS_WITHOUT_EFFECT says why).
    let text = std::fs::read_to_string(matrix().join("config_keys.json")).unwrap();
    let configs: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    assert!(configs.len() >= 5, "{:?}", configs.keys());
    let mut ignored = vec![];
    for (model_type, config) in &configs {
        let keys = config.as_object().unwrap().len();
        assert!(keys > 20, "{model_type}: {keys} keys");
        for key in hf::unread_keys(&config.to_string()).unwrap() {
            ignored.push(format!("{model_type}.{key}"));
        }
    }
    assert!(
        ignored.is_empty(),
        "keys neither read nor without effect: {ignored:?}"
    );
    // And the walk sees a key that is not read.
    let unknown = hf::unread_keys(r#"{"model_type": "llama", "new_knob": 1}"#).unwrap();
    assert_eq!(unknown, ["new_knob"]);
}

#[test]
fn keys_and_architectures_goodhart_cannot_compute_are_refused_by_name() {
    let refused = |name: &str, key: &str, edit: &dyn Fn(&mut serde_json::Value)| {
        let dir = edited(name, edit);
        let err = hf::load(dir.path(), &Device::Cpu, false)
            .err()
            .unwrap_or_else(|| panic!("{name} with {key} loaded"))
            .to_string();
        assert!(err.contains("config.json") && err.contains(key), "{err}");
    };
    for arch in ["gemma", "gemma2", "phi3", "olmo2"] {
        refused("llama-mqa-bf16", arch, &|c| c["model_type"] = arch.into());
    }
    refused("gpt2-fp16-sharded", "add_cross_attention", &|c| {
        c["add_cross_attention"] = true.into()
    });
    refused(
        "gpt2-fp16-sharded",
        "scale_attn_by_inverse_layer_idx",
        &|c| c["scale_attn_by_inverse_layer_idx"] = true.into(),
    );
    refused("qwen3", "quantization_config", &|c| {
        c["quantization_config"] = serde_json::json!({"quant_method": "gptq", "bits": 4})
    });
    refused("llama-mqa-bf16", "mlp_bias", &|c| {
        c["mlp_bias"] = true.into()
    });
    refused("qwen3", "hidden_act", &|c| c["hidden_act"] = "gelu".into());
}
