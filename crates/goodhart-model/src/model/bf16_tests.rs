//! bf16 matrix products (`bf16 = true`) against f32 through a whole model.

use super::tests::{text_batch, tiny_llama, tiny_model};
use super::*;

/// bf16 products (what `bf16 = true` does on a GPU, here on the CPU's bf16
/// matmul): log-probabilities within 5e-3 of f32's on a GPT-2 and a Llama
/// model, the gradient reaching every parameter as f32 and pointing the same
/// way as f32's.
#[test]
fn bf16_products_stay_near_f32_and_train_f32_weights() {
    for model in [tiny_model(4), tiny_llama(2, 5)] {
        let batch = text_batch(&model, &[("Q: 1+2", "3."), ("Q: 40+5", "maybe 45.")]);
        let f32_lp = model.score_completions(&batch).unwrap();
        let bf16_lp = ops::with_bf16(|| model.score_completions(&batch).unwrap());
        let worst = f32_lp
            .iter()
            .flatten()
            .zip(bf16_lp.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        eprintln!(
            "{:?}: bf16 log-probs within {worst:.1e} of f32",
            model.config().arch
        );
        assert!(worst > 0.0, "bf16 rounding changes something");
        assert!(worst < 5e-3, "bf16 log-probs differ from f32 by {worst}");

        let loss = |m: &Model| crate::train::sft::completion_nll(m, &batch).unwrap();
        let g32 = loss(&model).backward().unwrap();
        let g16 = ops::with_bf16(|| loss(&model).backward().unwrap());
        let mut lowest = 1f32;
        for (name, var) in model.vars() {
            let (Some(a), Some(b)) = (g32.get(var.as_tensor()), g16.get(var.as_tensor())) else {
                assert!(
                    name.starts_with("scalar_head"),
                    "no gradient reached {name}"
                );
                continue;
            };
            assert_eq!(b.dtype(), candle_core::DType::F32, "{name}");
            let (a, b) = (
                a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            );
            let dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            let cosine = dot / (norm(&a) * norm(&b)).max(f32::MIN_POSITIVE);
            lowest = lowest.min(cosine);
            assert!(
                cosine > 0.99,
                "{name}: cosine {cosine} between bf16 and f32 gradients"
            );
        }
        eprintln!("lowest gradient cosine {lowest:.5}");
    }
}
