//! Softmax over the last dimension, plain or with the causal mask applied in
//! the kernel, and its backward `y * (grad - sum(grad * y))`.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::{exp_nonpositive, f32_slice, fused, lane_dot, lane_sum, ROWS_PER_TASK};

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Softmax { causal: false })
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

/// Softmax over the last dimension of `[.., t, t]` attention scores with a causal
/// mask applied in the kernel (query i sees keys 0..=i): no bias tensor, no extra node.
pub fn causal_softmax(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Softmax { causal: true })
    } else {
        let t = x.dim(D::Minus1)?;
        let mask: Vec<f32> = (0..t)
            .flat_map(|q| (0..t).map(move |k| if k <= q { 0.0 } else { -1e9 }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), x.device())?;
        candle_nn::ops::softmax(&x.broadcast_add(&mask)?, D::Minus1)
    }
}

struct Softmax {
    /// Row `r` of each `[t, t]` block sees only its first `r % t + 1` entries; the rest are 0.
    causal: bool,
}

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l)?;
        let d = l.dims().last().copied().unwrap_or(1).max(1);
        let mut y = vec![0f32; x.len()];
        let causal = self.causal;
        y.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .enumerate()
            .for_each(|(c, (y, x))| {
                for (i, (y, x)) in y.chunks_mut(d).zip(x.chunks(d)).enumerate() {
                    let n = if causal {
                        (c * ROWS_PER_TASK + i) % d + 1
                    } else {
                        d
                    };
                    let (y, x) = (&mut y[..n], &x[..n]);
                    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    for (y, &x) in y.iter_mut().zip(x) {
                        *y = exp_nonpositive(x - max);
                    }
                    let inv = 1.0 / lane_sum(y);
                    y.iter_mut().for_each(|y| *y *= inv);
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            y.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxBackward)?,
        ))
    }
}

/// `y * (grad - sum(grad * y))` per row.
struct SoftmaxBackward;

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "fused-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let d = l1.dims().last().copied().unwrap_or(1).max(1);
        let mut dx = vec![0f32; y.len()];
        dx.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(
                y.par_chunks(d * ROWS_PER_TASK)
                    .zip(g.par_chunks(d * ROWS_PER_TASK)),
            )
            .for_each(|(dx, (y, g))| {
                for ((dx, y), g) in dx.chunks_mut(d).zip(y.chunks(d)).zip(g.chunks(d)) {
                    let dot = lane_dot(y, g);
                    for ((dx, &y), &g) in dx.iter_mut().zip(y).zip(g) {
                        *dx = y * (g - dot);
                    }
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
