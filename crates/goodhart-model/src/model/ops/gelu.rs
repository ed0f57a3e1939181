//! GELU (tanh approximation, GPT-2's `gelu_new`) and its backward, elementwise.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{f32_slice, fused};

/// GELU, tanh approximation (GPT-2's `gelu_new`).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Gelu)
    } else {
        x.gelu()
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

const GELU_C: f32 = 0.044_715;

/// tanh as a branch-free rational function (Eigen's float `ptanh`, also PyTorch's
/// vectorised CPU tanh): within a few ulp, and the compiler vectorises it.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the reference approximation's coefficients, as published
pub(super) fn tanh(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let mut p = x2 * -2.760_768_5e-16 + 2.000_187_9e-13;
    p = x2 * p + -8.604_671_5e-11;
    p = x2 * p + 5.122_297e-8;
    p = x2 * p + 1.485_722_4e-5;
    p = x2 * p + 6.372_619_3e-4;
    p = x2 * p + 4.893_524_6e-3;
    p *= x;
    let mut q = x2 * 1.198_258_4e-6 + 1.185_347_1e-4;
    q = x2 * q + 2.268_434_6e-3;
    q = x2 * q + 4.893_525_2e-3;
    p / q
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32_slice(s, l)?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(4096)
            .zip(x.par_chunks(4096))
            .for_each(|(y, x)| {
                for (y, &x) in y.iter_mut().zip(x) {
                    let t = tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
                    *y = 0.5 * x * (1.0 + t);
                }
            });
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            x.apply_op2_no_bwd(&grad.contiguous()?, &GeluBackward)?,
        ))
    }
}

/// `grad * gelu'(x)`.
struct GeluBackward;

impl CustomOp2 for GeluBackward {
    fn name(&self) -> &'static str {
        "fused-gelu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, g) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(4096)
            .zip(x.par_chunks(4096).zip(g.par_chunks(4096)))
            .for_each(|(dx, (x, g))| {
                for ((dx, &x), &g) in dx.iter_mut().zip(x).zip(g) {
                    let t = tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x));
                    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
                    *dx = g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du);
                }
            });
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}
