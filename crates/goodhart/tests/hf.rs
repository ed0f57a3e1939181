//! Hugging Face checkpoints against the reference implementation: tiny random
//! models and a byte-level BPE tokenizer made by `transformers` with
//! tests/fixtures/make_hf_fixtures.py (committed, so no Python is needed here).
//! Logits must match transformers' within 1e-4, greedy generation token for
//! token, and tokenization id for id on tricky strings.

mod hf_common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use goodhart::hf::{self, HfTokenizer};
use goodhart::model::checkpoint::{self, CheckpointInfo, ModelKind};
use goodhart::model::sample::{sample, SamplingConfig};
use goodhart::model::{Model, SequenceBatch};
use goodhart::tokenize::Tokenizer;
use goodhart::train::{OptimConfig, Trainer};
use hf_common::{logits, max_abs_diff, rewrite_config};
use serde::Deserialize;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf")
}

#[derive(Deserialize)]
struct Probe {
    ids: Vec<u32>,
    logits: Vec<Vec<f32>>,
    greedy_prompt: Vec<u32>,
    greedy: Vec<u32>,
}

#[derive(Deserialize)]
struct Expected {
    tokenizer: HashMap<String, Vec<u32>>,
    gpt2: Probe,
    llama: Probe,
    chat: HashMap<String, Vec<u32>>,
}

fn expected() -> Expected {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("expected.json")).unwrap())
        .unwrap()
}

#[test]
fn tokenization_matches_the_tokenizers_library_on_tricky_strings() {
    let e = expected();
    let tok = HfTokenizer::from_file(&fixtures().join("gpt2/tokenizer.json"), 0, 0, 0).unwrap();
    assert!(e.tokenizer.len() >= 10);
    for (text, ids) in &e.tokenizer {
        assert_eq!(&tok.encode(text).unwrap(), ids, "{text:?}");
        if !text.contains("<|endoftext|>") {
            assert_eq!(&tok.decode(ids), text, "round trip of {text:?}");
        }
    }
}

/// Logits within 1e-4 of transformers' and the same greedy tokens.
fn check_parity(name: &str, e: &Probe) {
    let model = hf::load(&fixtures().join(name), &Device::Cpu, false).unwrap();
    let diff = max_abs_diff(&logits(&model, &e.ids), &e.logits);
    eprintln!("{name} fixture: max |logit difference| vs transformers {diff:e}");
    assert!(diff < 1e-4, "{name}: max |logit difference| {diff}");

    let cfg = SamplingConfig {
        top_k: 1,
        max_new_tokens: e.greedy.len(),
        ..Default::default()
    };
    let mut rng = goodhart::rng::stream(0, "greedy");
    let s = sample(
        &model,
        std::slice::from_ref(&e.greedy_prompt),
        1,
        &cfg,
        &mut rng,
    )
    .unwrap();
    assert_eq!(s[0].tokens, e.greedy, "{name}: greedy tokens");
}

#[test]
fn gpt2_logits_and_greedy_tokens_match_transformers() {
    check_parity("gpt2", &expected().gpt2);
}

#[test]
fn llama_logits_and_greedy_tokens_match_transformers() {
    // Grouped-query attention (4 heads, 2 key/value heads), rotary positions, RMSNorm,
    // SwiGLU and an untied LM head; greedy decoding runs through the KV cache.
    check_parity("llama", &expected().llama);
}

#[test]
fn a_loaded_gpt2_saves_as_a_goodhart_checkpoint_with_its_tokenizer() {
    let e = expected().gpt2;
    let model = hf::load(&fixtures().join("gpt2"), &Device::Cpu, true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = saved(&model, dir.path());
    assert!(out.join("tokenizer.json").is_file());
    let (back, _) = checkpoint::load(&out, &Device::Cpu, false).unwrap();
    assert_eq!(logits(&back, &e.ids), logits(&model, &e.ids));
    assert_eq!(
        back.tokenizer().encode("The quick").unwrap(),
        model.tokenizer().encode("The quick").unwrap()
    );
    // A different tokenizer.json under the same name is refused.
    std::fs::copy(
        fixtures().join("gpt2/config.json"),
        out.join("tokenizer.json"),
    )
    .unwrap();
    let err = checkpoint::load(&out, &Device::Cpu, false)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

/// `model` saved as a goodhart checkpoint under `dir`; returns its directory.
fn saved(model: &Model, dir: &Path) -> PathBuf {
    let out = dir.join("ckpt");
    checkpoint::save(
        model,
        &CheckpointInfo::new(model, ModelKind::Policy),
        &out,
        false,
    )
    .unwrap();
    out
}

/// A copy of the GPT-2 fixture to break.
fn broken_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let gpt2 = dir.path().join("gpt2");
    std::fs::create_dir(&gpt2).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(fixtures().join("gpt2").join(f), gpt2.join(f)).unwrap();
    }
    (dir, gpt2)
}

fn load_error(dir: &Path) -> String {
    hf::load(dir, &Device::Cpu, false)
        .err()
        .expect("must fail")
        .to_string()
}

fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut HashMap<String, Tensor>)) {
    let path = dir.join("model.safetensors");
    let mut t = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    edit(&mut t);
    candle_core::safetensors::save(&t, &path).unwrap();
}

fn edit_config(dir: &Path, key: &str, value: serde_json::Value) {
    rewrite_config(dir, |c| c[key] = value);
}

#[test]
fn chat_templates_render_prompts_as_transformers_does_when_asked() {
    let e = expected();
    let model = hf::load(&fixtures().join("llama"), &Device::Cpu, false).unwrap();
    let plain = model.tokenizer();
    assert_eq!(
        plain.encode_prompt("hi").unwrap()[0],
        plain.bos_id(),
        "plain: BOS, then the text"
    );
    let chat = plain.with_chat_template().unwrap();
    assert_eq!(e.chat.len(), 3);
    for (prompt, ids) in &e.chat {
        assert_eq!(&chat.encode_prompt(prompt).unwrap(), ids, "{prompt:?}");
    }
    // A checkpoint of the chatting model keeps its template.
    let model = model.with_tokenizer(chat).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = saved(&model, dir.path());
    let (back, _) = checkpoint::load(&out, &Device::Cpu, false).unwrap();
    let (prompt, ids) = e.chat.iter().next().unwrap();
    assert_eq!(&back.tokenizer().encode_prompt(prompt).unwrap(), ids);
    // GPT-2's fixture has no template: asking for one is a clear error.
    let gpt2 = hf::load(&fixtures().join("gpt2"), &Device::Cpu, false).unwrap();
    let err = gpt2
        .tokenizer()
        .with_chat_template()
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("chat_template"), "{err}");
}

#[test]
fn sharded_weights_load_through_their_index() {
    let e = expected().gpt2;
    let (_d, dir) = broken_copy();
    let all = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let (mut first, mut second) = (HashMap::new(), HashMap::new());
    let mut weight_map = serde_json::Map::new();
    for (name, t) in all {
        let shard = if name.contains(".h.1.") { 2 } else { 1 };
        let file = format!("model-0000{shard}-of-00002.safetensors");
        weight_map.insert(name.clone(), file.into());
        if shard == 1 { &mut first } else { &mut second }.insert(name, t);
    }
    candle_core::safetensors::save(&first, dir.join("model-00001-of-00002.safetensors")).unwrap();
    candle_core::safetensors::save(&second, dir.join("model-00002-of-00002.safetensors")).unwrap();
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::json!({"metadata": {}, "weight_map": weight_map}).to_string(),
    )
    .unwrap();
    let model = hf::load(&dir, &Device::Cpu, false).unwrap();
    assert!(max_abs_diff(&logits(&model, &e.ids), &e.logits) < 1e-4);

    std::fs::remove_file(dir.join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("model-00002-of-00002.safetensors"), "{err}");
}

#[test]
fn bad_checkpoints_get_one_clear_error_naming_the_file_and_tensor() {
    let (_d, dir) = broken_copy();
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("config.json") && err.contains("cannot read"),
        "{err}"
    );

    let (_d, dir) = broken_copy();
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let err = load_error(&dir);
    assert!(err.contains("model.safetensors"), "{err}");

    let (_d, dir) = broken_copy();
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let err = load_error(&dir);
    assert!(
        err.contains("tokenizer.json") && err.contains("missing"),
        "{err}"
    );

    let (_d, dir) = broken_copy();
    edit_config(&dir, "model_type", "bert".into());
    let err = load_error(&dir);
    assert!(err.contains("unsupported model_type \"bert\""), "{err}");

    let (_d, dir) = broken_copy();
    rewrite_weights(&dir, |t| {
        let w = t["transformer.h.1.mlp.c_fc.weight"]
            .t()
            .unwrap()
            .contiguous()
            .unwrap();
        t.insert("transformer.h.1.mlp.c_fc.weight".into(), w);
    });
    let err = load_error(&dir);
    assert!(
        err.contains("model.safetensors")
            && err.contains("`h.1.mlp.c_fc.weight` has shape [128, 32]"),
        "{err}"
    );

    let (_d, dir) = broken_copy();
    rewrite_weights(&dir, |t| {
        t.insert(
            "transformer.h.0.ln_1.weight".into(),
            Tensor::zeros(32, candle_core::DType::I64, &Device::Cpu).unwrap(),
        );
    });
    let err = load_error(&dir);
    assert!(
        err.contains("`transformer.h.0.ln_1.weight` has dtype I64"),
        "{err}"
    );

    let (_d, dir) = broken_copy();
    edit_config(&dir, "vocab_size", 100.into());
    let err = load_error(&dir);
    assert!(
        err.contains("tokenizer.json")
            && err.contains("400 tokens")
            && err.contains("vocab_size is 100"),
        "{err}"
    );
}

#[test]
fn a_loaded_llama_trains_only_its_last_block_when_asked() {
    let model = hf::load(&fixtures().join("llama"), &Device::Cpu, true)
        .unwrap()
        .train_last_blocks(1)
        .unwrap();
    let names: Vec<String> = model.vars().into_iter().map(|(n, _)| n).collect();
    assert!(
        names.iter().any(|n| n.starts_with("layers.1.")),
        "{names:?}"
    );
    assert!(
        names.contains(&"lm_head.weight".to_string()),
        "the untied head trains"
    );
    assert!(!names
        .iter()
        .any(|n| n.starts_with("layers.0.") || n == "embed_tokens.weight"));

    // It learns: the NLL of one completion falls under a few optimiser steps.
    let tok = model.tokenizer();
    let (p, c) = (
        tok.encode_prompt("Q: 12+30=?\nA:").unwrap(),
        tok.encode_completion(" 42").unwrap(),
    );
    let batch =
        SequenceBatch::new(&[(p.as_slice(), c.as_slice())], tok.pad_id(), &Device::Cpu).unwrap();
    let optim = OptimConfig {
        lr: 1e-2,
        warmup_steps: 0,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model.vars(), &optim, 20, "test").unwrap();
    let mut losses = vec![];
    for _ in 0..20 {
        let lp = model.target_logprobs(model.train_net(), &batch).unwrap();
        let loss = (lp * &batch.completion_mask)
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap();
        losses.push(loss.to_scalar::<f32>().unwrap());
        trainer.step(&loss).unwrap();
    }
    assert!(losses[19] < 0.5 * losses[0], "{losses:?}");
}
