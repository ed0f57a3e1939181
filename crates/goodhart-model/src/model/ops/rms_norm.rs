//! RMSNorm over the last dimension, forward and backward in one pass per row;
//! the weight gradient sums fixed chunks of rows in order.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, D};
use rayon::prelude::*;

use super::{f32_slice, fused, lane_dot, norm_backward, ROWS_PER_TASK};

/// `x / sqrt(mean(x^2) + eps) * weight` over the last dimension (Llama's RMSNorm,
/// in f32 as transformers computes it).
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?
            .apply_op2(weight, RmsNorm { eps: eps as f32 })
    } else {
        let rms = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?.sqrt()?;
        x.broadcast_div(&rms)?.broadcast_mul(weight)
    }
}

struct RmsNorm {
    eps: f32,
}

/// 1 / sqrt(mean(x^2) + eps) of one row.
fn rstd(x: &[f32], eps: f32) -> f32 {
    1.0 / (lane_dot(x, x) / x.len() as f32 + eps).sqrt()
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let d = w.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
                    let r = rstd(x, self.eps);
                    for i in 0..d {
                        y[i] = x[i] * r * w[i];
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let shape = x.shape().clone();
        let d = w.dim(0)?;
        let rows = shape.elem_count() / d;
        // One pass yields both gradients, packed as rows: dx (rows of them), then dw.
        let packed =
            x.apply_op3_no_bwd(w, &grad.contiguous()?, &RmsNormBackward { eps: self.eps })?;
        let dx = packed.narrow(0, 0, rows)?.reshape(shape)?;
        let dw = packed.get(rows)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// Inputs: `x`, the weight and the gradient; output: `[rows + 1, d]`.
struct RmsNormBackward {
    eps: f32,
}

impl CustomOp3 for RmsNormBackward {
    fn name(&self) -> &'static str {
        "fused-rms-norm-backward"
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
        let (x, w, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let d = w.len();
        Ok(norm_backward(x, g, d, |dx, x, g, [dw]| {
            let r = rstd(x, self.eps);
            let mut mean_gw_xhat = 0f32;
            for i in 0..d {
                let xhat = x[i] * r;
                mean_gw_xhat += g[i] * w[i] * xhat;
                dw[i] += g[i] * xhat;
            }
            mean_gw_xhat /= d as f32;
            for i in 0..d {
                dx[i] = r * (g[i] * w[i] - x[i] * r * mean_gw_xhat);
            }
        }))
    }
}
