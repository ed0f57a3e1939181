//! Log-probability scoring: what a policy (or its reference) assigns to
//! completions already sampled, and the per-sample log-ratio that estimates KL.

use crate::error::Result;
use crate::model::sample::Sample;
use crate::model::{Model, SequenceBatch};

/// A sample's tokens as the model saw them: a completion that hit the length
/// limit has no EOS, and is scored as it stands.
pub fn completion_tokens(s: &Sample) -> &[u32] {
    &s.tokens
}

/// Per-token log-probabilities of each sample's completion under `model` (no gradient).
pub fn completion_logprobs(
    model: &Model,
    prompt_tokens: &[Vec<u32>],
    samples: &[Sample],
) -> Result<Vec<Vec<f32>>> {
    crate::runtime::map_pieces(samples.len(), 64, |r| {
        let pairs: Vec<(&[u32], &[u32])> = samples[r]
            .iter()
            .map(|s| {
                (
                    prompt_tokens[s.prompt_index].as_slice(),
                    completion_tokens(s),
                )
            })
            .collect();
        let batch = SequenceBatch::new(&pairs, model.tokenizer().pad_id(), model.device())?;
        model.score_completions(&batch)
    })
}

/// `log pi(x) - log pi_ref(x)` per sample: averaged over samples from pi, an
/// unbiased estimate of KL(pi || pi_ref).
pub fn sequence_log_ratios(policy_logprobs: &[Vec<f32>], ref_logprobs: &[Vec<f32>]) -> Vec<f64> {
    policy_logprobs
        .iter()
        .zip(ref_logprobs)
        .map(|(p, r)| p.iter().zip(r).map(|(a, b)| (*a - *b) as f64).sum())
        .collect()
}
