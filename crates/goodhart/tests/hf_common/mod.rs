//! What the Hugging Face parity tests (`hf.rs`, `hf_matrix.rs`) share.

use std::path::Path;

use candle_core::Tensor;
use goodhart::model::transformer::arange_positions;
use goodhart::model::{Mask, Model};

/// The LM logits `[t, vocab]` of one sequence, positions 0..t.
pub fn logits(model: &Model, ids: &[u32]) -> Vec<Vec<f32>> {
    let net = model.eval_net();
    let tokens = Tensor::new(ids, model.device())
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let positions = arange_positions(1, ids.len(), model.device()).unwrap();
    let hidden = net.hidden(&tokens, &positions, Mask::Causal, None).unwrap();
    net.lm_logits(&hidden)
        .unwrap()
        .squeeze(0)
        .unwrap()
        .to_vec2()
        .unwrap()
}

pub fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

/// Rewrite the `config.json` of the checkpoint directory `dir` with `edit`.
pub fn rewrite_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
}
