//! Rotary positions applied to heads in one pass ("rotate half", as Llama and
//! transformers do), optionally scaled; the backward pass is the inverse rotation.

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, fused};

/// `x: [b, h, t, dh]` rotated by `cos`, `sin`: `[b, 1, t, dh / 2]` (each
/// position's angles), times `scale`: `[x1 c - x2 s, x2 c + x1 s] * scale`.
pub fn rotary(x: &Tensor, cos: &Tensor, sin: &Tensor, scale: f64) -> Result<Tensor> {
    if fused(x) && x.rank() == 4 {
        let op = Rotary {
            scale: scale as f32,
            inverse: false,
        };
        x.contiguous()?
            .apply_op3(&cos.contiguous()?, &sin.contiguous()?, op)
    } else {
        let half = x.dim(3)? / 2;
        let (x1, x2) = (x.narrow(3, 0, half)?, x.narrow(3, half, half)?);
        let first = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
        let second = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
        Tensor::cat(&[first, second], 3)? * scale
    }
}

struct Rotary {
    scale: f32,
    /// Rotate by minus the angle (the backward pass: the rotation's transpose).
    inverse: bool,
}

impl CustomOp3 for Rotary {
    fn name(&self) -> &'static str {
        "fused-rotary"
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
        let (x, cos, sin) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let (b, h, t, dh) = l1.shape().dims4()?;
        let half = dh / 2;
        if cos.len() != b * t * half || sin.len() != cos.len() {
            candle_core::bail!(
                "rotary: tables of {} values for [{b}, {h}, {t}, {dh}]",
                cos.len()
            );
        }
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let mut y = vec![0f32; x.len()];
        // One task per (batch, head): t rows of dh.
        y.par_chunks_mut(t * dh)
            .zip(x.par_chunks(t * dh))
            .enumerate()
            .for_each(|(bh, (y, x))| {
                let bi = bh / h;
                for ti in 0..t {
                    let row = (bi * t + ti) * half;
                    let (c, s) = (&cos[row..row + half], &sin[row..row + half]);
                    let (x, y) = (&x[ti * dh..(ti + 1) * dh], &mut y[ti * dh..(ti + 1) * dh]);
                    let (x1, x2) = x.split_at(half);
                    let (y1, y2) = y.split_at_mut(half);
                    for i in 0..half {
                        let s = sign * s[i];
                        y1[i] = (x1[i] * c[i] - x2[i] * s) * self.scale;
                        y2[i] = (x2[i] * c[i] + x1[i] * s) * self.scale;
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let op = Rotary {
            scale: self.scale,
            inverse: !self.inverse,
        };
        let dx = grad.contiguous()?.apply_op3_no_bwd(cos, sin, &op)?;
        Ok((Some(dx), None, None))
    }
}
