//! Splitting `[b*t, h*dh]` into attention heads `[b, h, t, dh]` and back, one copy each way.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, fused};

/// `[b*t, h*dh]` -> `[b, h, t, dh]` (one copy; its backward is [`merge_heads`]).
pub fn split_heads(x: &Tensor, b: usize, h: usize) -> Result<Tensor> {
    let (bt, d) = x.dims2()?;
    if fused(x) {
        x.contiguous()?.apply_op1(Heads {
            b,
            t: bt / b,
            h,
            dh: d / h,
            split: true,
        })
    } else {
        x.reshape((b, bt / b, h, d / h))?
            .transpose(1, 2)?
            .contiguous()
    }
}

/// `[b, h, t, dh]` -> `[b*t, h*dh]` (one copy; its backward is [`split_heads`]).
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, dh) = x.dims4()?;
    if fused(x) {
        x.contiguous()?.apply_op1(Heads {
            b,
            t,
            h,
            dh,
            split: false,
        })
    } else {
        x.transpose(1, 2)?.reshape((b * t, h * dh))
    }
}

/// Split `[b*t, h*dh]` into heads `[b, h, t, dh]`, or merge them back.
struct Heads {
    b: usize,
    t: usize,
    h: usize,
    dh: usize,
    split: bool,
}

impl CustomOp1 for Heads {
    fn name(&self) -> &'static str {
        if self.split {
            "split-heads"
        } else {
            "merge-heads"
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l)?;
        let Heads { b, t, h, dh, split } = *self;
        let mut y = vec![0f32; x.len()];
        if split {
            // One task per (batch row, head), copying t runs of dh.
            y.par_chunks_mut(t * dh).enumerate().for_each(|(bh, out)| {
                let (bi, hi) = (bh / h, bh % h);
                for ti in 0..t {
                    let src = (bi * t + ti) * h * dh + hi * dh;
                    out[ti * dh..(ti + 1) * dh].copy_from_slice(&x[src..src + dh]);
                }
            });
            Ok((CpuStorage::F32(y), Shape::from((b, h, t, dh))))
        } else {
            y.par_chunks_mut(h * dh).enumerate().for_each(|(bt, out)| {
                let (bi, ti) = (bt / t, bt % t);
                for hi in 0..h {
                    let src = ((bi * h + hi) * t + ti) * dh;
                    out[hi * dh..(hi + 1) * dh].copy_from_slice(&x[src..src + dh]);
                }
            });
            Ok((CpuStorage::F32(y), Shape::from((b * t, h * dh))))
        }
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = Heads {
            split: !self.split,
            ..*self
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&back)?))
    }
}
