//! SwiGLU's gate, `silu(gate) * up`, and its backward in one elementwise pass.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, fused};

const CHUNK: usize = 4096;

/// `silu(gate) * up` (Llama's MLP before its down projection).
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    if fused(gate) && gate.shape() == up.shape() {
        gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
    } else {
        gate.silu()? * up
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

struct SwiGlu;

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let mut y = vec![0f32; g.len()];
        y.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
            .for_each(|(y, (g, u))| {
                for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
                    *y = g * sigmoid(g) * u;
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let n = gate.elem_count();
        // d gate and d up in one pass, packed one after the other.
        let packed = gate.apply_op3_no_bwd(up, &grad.contiguous()?, &SwiGluBackward)?;
        let dgate = packed.narrow(0, 0, n)?.reshape(gate.shape())?;
        let dup = packed.narrow(0, n, n)?.reshape(up.shape())?;
        Ok((Some(dgate), Some(dup)))
    }
}

/// Inputs: `gate`, `up` and the gradient; output: d gate then d up.
struct SwiGluBackward;

impl CustomOp3 for SwiGluBackward {
    fn name(&self) -> &'static str {
        "fused-swiglu-backward"
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
        let (g, u, grad) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let n = g.len();
        let mut out = vec![0f32; 2 * n];
        let (dg, du) = out.split_at_mut(n);
        dg.par_chunks_mut(CHUNK)
            .zip(du.par_chunks_mut(CHUNK))
            .zip(
                g.par_chunks(CHUNK)
                    .zip(u.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK))),
            )
            .for_each(|((dg, du), (g, (u, grad)))| {
                for i in 0..g.len() {
                    let s = sigmoid(g[i]);
                    let silu = g[i] * s;
                    du[i] = grad[i] * silu;
                    dg[i] = grad[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                }
            });
        Ok((CpuStorage::F32(out), Shape::from(2 * n)))
    }
}
