//! `log softmax(logits)[target]` per row, and its one-pass backward.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::{exp_nonpositive, f32_slice, fused, ROWS_PER_TASK};

/// `log softmax(logits)[target]` per row: `logits: [n, v]`, `targets: [n]` (u32) -> `[n]`.
/// Fused so the backward pass is one `onehot - softmax` pass instead of a dozen ops.
pub fn target_logprobs(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    if fused(logits) && logits.rank() == 2 {
        let targets = targets.to_dtype(DType::F32)?; // ids < 2^24 are exact
        logits.contiguous()?.apply_op2(&targets, TargetLogprobs)
    } else {
        let picked = logits.gather(&targets.unsqueeze(1)?, 1)?.squeeze(1)?;
        picked - logits.log_sum_exp(D::Minus1)?
    }
}

struct TargetLogprobs;

impl CustomOp2 for TargetLogprobs {
    fn name(&self) -> &'static str {
        "target-logprobs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (z, t) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let (n, v) = l1.shape().dims2()?;
        let mut out = vec![0f32; n];
        out.par_chunks_mut(ROWS_PER_TASK)
            .zip(z.par_chunks(v * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(c, (out, z))| {
                for (i, (o, z)) in out.iter_mut().zip(z.chunks(v)).enumerate() {
                    let target = t[c * ROWS_PER_TASK + i] as usize;
                    *o = z[target.min(v - 1)] - log_sum_exp(z);
                }
            });
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = logits.apply_op3_no_bwd(targets, &grad.contiguous()?, &TargetLogprobsBackward)?;
        Ok((Some(g), None))
    }
}

fn log_sum_exp(z: &[f32]) -> f32 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut acc = [0f32; 8];
    let chunks = z.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|&x| exp_nonpositive(x - max))
        .sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += exp_nonpositive(c[i] - max);
        }
    }
    max + (acc.iter().sum::<f32>() + tail).ln()
}

/// d/dlogits of `g * log softmax(logits)[target]` = `g * (onehot(target) - softmax(logits))`.
struct TargetLogprobsBackward;

impl CustomOp3 for TargetLogprobsBackward {
    fn name(&self) -> &'static str {
        "target-logprobs-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (z, t, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let (_, v) = l1.shape().dims2()?;
        let mut dz = vec![0f32; z.len()];
        dz.par_chunks_mut(v * ROWS_PER_TASK)
            .zip(z.par_chunks(v * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(c, (dz, z))| {
                for (i, (dz, z)) in dz.chunks_mut(v).zip(z.chunks(v)).enumerate() {
                    let row = c * ROWS_PER_TASK + i;
                    let lse = log_sum_exp(z);
                    let g = g[row];
                    for (d, &x) in dz.iter_mut().zip(z) {
                        *d = -g * (x - lse).exp();
                    }
                    dz[(t[row] as usize).min(v - 1)] += g;
                }
            });
        Ok((CpuStorage::F32(dz), l1.shape().clone()))
    }
}
