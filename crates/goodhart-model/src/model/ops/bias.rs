//! `x + bias` with a backward that sums the gradient over rows contiguously.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, fused, ROWS_PER_TASK};

/// `x + bias` for `x: [n, d]` and `bias: [d]`. The backward pass sums the
/// gradient over rows in one contiguous pass (candle's reduction over the
/// first dimension walks the tensor with a stride, an order of magnitude slower).
pub fn add_bias(x: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if fused(x) && x.rank() == 2 {
        x.contiguous()?.apply_op2(bias, AddBias)
    } else {
        x.broadcast_add(bias)
    }
}

struct AddBias;

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "fused-add-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let d = b.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
                    for i in 0..d {
                        y[i] = x[i] + b[i];
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        bias: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = bias.dim(0)?;
        Ok((
            Some(grad.clone()),
            Some(grad.contiguous()?.apply_op1_no_bwd(&SumRows { d })?),
        ))
    }
}

/// Sum of the rows of `[n, d]` -> `[d]`, over fixed chunks of rows added in order.
struct SumRows {
    d: usize,
}

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "sum-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = f32_slice(s, l)?;
        let d = self.d;
        let partials: Vec<Vec<f32>> = g
            .par_chunks(d * ROWS_PER_TASK * 4)
            .map(|rows| {
                let mut acc = vec![0f32; d];
                for row in rows.chunks(d) {
                    for i in 0..d {
                        acc[i] += row[i];
                    }
                }
                acc
            })
            .collect();
        let mut out = vec![0f32; d];
        for p in &partials {
            for i in 0..d {
                out[i] += p[i];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(d)))
    }
}
