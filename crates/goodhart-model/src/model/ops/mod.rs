//! Fused LayerNorm, GELU, softmax and Llama's RMSNorm, rotary positions and
//! SwiGLU gate, with their backward passes.
//!
//! candle builds these from many elementwise ops (its GELU backward alone is a
//! dozen full passes, two of them `powf`), and candle-nn's fused kernels have
//! no backward pass at all: used on a tensor that tracks gradients they would
//! silently cut the graph. On the CPU these are single passes over each row,
//! parallel over rows; row reductions (LayerNorm's weight gradients) sum
//! fixed-size chunks in order, so results do not depend on the thread count.
//! Other devices (and other dtypes) take the composite path: the candle ops
//! each kernel is tested against, which candle runs natively and
//! differentiates on any device. [`fused`] is the one place that chooses;
//! `GOODHART_COMPOSITE_OPS=1` ([`COMPOSITE_OPS_ENV`]) sends the CPU down the
//! composite path too, which is how the suite exercises it without a GPU.
//!
//! One kernel a file: [`layer_norm`], [`gelu`], [`softmax`] (plain and causal),
//! [`bias`], [`target_logprobs`], [`heads`], [`decode_attention`], [`rms_norm`],
//! [`rotary`] and [`swiglu`]; [`matmul`] takes every matrix product (f32, or
//! bf16 operands on a GPU when a run asks); the
//! helpers they share (fixed-order lane sums, a vectorisable exp, the norms'
//! backward pass over rows with its fixed-order parameter sums) are here.

mod bias;
mod decode_attention;
mod gelu;
mod heads;
mod layer_norm;
mod matmul;
mod rms_norm;
mod rotary;
mod softmax;
mod swiglu;
mod target_logprobs;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

pub use bias::add_bias;
pub use decode_attention::decode_attention;
pub use gelu::gelu;
pub use heads::{merge_heads, split_heads};
pub use layer_norm::layer_norm;
pub(crate) use matmul::set_bf16;
#[cfg(test)]
pub(crate) use matmul::with_bf16;
pub use matmul::{bf16, matmul};
pub use rms_norm::rms_norm;
pub use rotary::rotary;
pub use softmax::{causal_softmax, softmax_last_dim};
pub use swiglu::swiglu;
pub use target_logprobs::target_logprobs;

/// Rows per parallel task, and the fixed chunking of cross-row reductions.
const ROWS_PER_TASK: usize = 32;

/// The environment variable that sends CPU tensors down the composite path
/// (`1`; `0` or unset: the fused kernels). Read once per process.
pub const COMPOSITE_OPS_ENV: &str = "GOODHART_COMPOSITE_OPS";

/// Which implementation of these ops a tensor gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsPath {
    /// The fused CPU kernels of this module (f32 on the CPU only).
    Fused,
    /// candle's own ops, on any device and dtype.
    Composite,
}

impl OpsPath {
    pub fn name(self) -> &'static str {
        match self {
            OpsPath::Fused => "fused",
            OpsPath::Composite => "composite",
        }
    }
}

/// The path CPU f32 tensors take in this process, from [`COMPOSITE_OPS_ENV`]
/// (read once); an error names a value that is neither `0` nor `1` (the
/// kernels then stay fused: the CLI refuses such a value before any tensor work).
pub fn cpu_path() -> std::result::Result<OpsPath, String> {
    from_env().clone()
}

fn from_env() -> &'static std::result::Result<OpsPath, String> {
    static FROM_ENV: OnceLock<std::result::Result<OpsPath, String>> = OnceLock::new();
    FROM_ENV.get_or_init(|| match std::env::var(COMPOSITE_OPS_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(OpsPath::Fused),
        Ok(v) if v.is_empty() || v == "0" => Ok(OpsPath::Fused),
        Ok(v) if v == "1" => Ok(OpsPath::Composite),
        Ok(v) => Err(format!("{COMPOSITE_OPS_ENV}={v:?}: expected 1 or 0")),
        Err(e) => Err(format!("{COMPOSITE_OPS_ENV}: {e}")),
    })
}

#[cfg(test)]
thread_local! {
    /// A test's choice of path for ops called on its own thread.
    static TEST_PATH: std::cell::Cell<Option<OpsPath>> = const { std::cell::Cell::new(None) };
}

/// Run `f` with ops called on this thread taking `path` (tests of both paths in one process).
#[cfg(test)]
pub(crate) fn with_path<R>(path: OpsPath, f: impl FnOnce() -> R) -> R {
    let before = TEST_PATH.with(|p| p.replace(Some(path)));
    let out = f();
    TEST_PATH.with(|p| p.set(before));
    out
}

/// Does the fused CPU kernel apply to this tensor? The one place the path is
/// chosen: f32 on the CPU, unless the composite path is forced.
pub(crate) fn fused(x: &Tensor) -> bool {
    #[cfg(test)]
    if let Some(path) = TEST_PATH.with(|p| p.get()) {
        return path == OpsPath::Fused && x.device().is_cpu() && x.dtype() == DType::F32;
    }
    x.device().is_cpu() && x.dtype() == DType::F32 && !matches!(from_env(), Ok(OpsPath::Composite))
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused op needs a contiguous tensor".into()))?;
    Ok(&s.as_slice::<f32>()?[start..end])
}

/// The backward pass of a norm over rows of `d`, with `P` parameter gradients
/// (each `d` long): `row(dx, x, g, params)` fills one row's input gradient from
/// its input and output gradient and adds the row's share to each parameter
/// gradient. Rows run in parallel in tasks of [`ROWS_PER_TASK`]; each task's
/// parameter gradients are summed in task order, so the result does not depend
/// on the thread count. Returns `[rows + P, d]`: the rows of dx, then each
/// parameter gradient.
fn norm_backward<const P: usize>(
    x: &[f32],
    g: &[f32],
    d: usize,
    row: impl Fn(&mut [f32], &[f32], &[f32], &mut [Vec<f32>; P]) + Sync,
) -> (CpuStorage, Shape) {
    let rows = x.len() / d;
    let mut out = vec![0f32; (rows + P) * d];
    let (dx, _) = out.split_at_mut(rows * d);
    let partials: Vec<[Vec<f32>; P]> = dx
        .par_chunks_mut(d * ROWS_PER_TASK)
        .zip(
            x.par_chunks(d * ROWS_PER_TASK)
                .zip(g.par_chunks(d * ROWS_PER_TASK)),
        )
        .map(|(dx, (x, g))| {
            let mut params = std::array::from_fn(|_| vec![0f32; d]);
            for ((dx, x), g) in dx.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
                row(dx, x, g, &mut params);
            }
            params
        })
        .collect();
    for (k, total) in out[rows * d..].chunks_mut(d).enumerate() {
        for p in &partials {
            for i in 0..d {
                total[i] += p[k][i];
            }
        }
    }
    (CpuStorage::F32(out), Shape::from((rows + P, d)))
}

/// Sum in 8 independent lanes (a fixed order, so deterministic): a plain f32
/// sum is a serial chain the compiler may not reorder, 4 cycles per element.
#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn lane_dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xc.zip(yc) {
        for i in 0..8 {
            acc[i] += a[i] * b[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// exp for x <= 0 (softmax after subtracting the row max): Cephes-style range
/// reduction and a degree-6 polynomial, branch-free so it vectorises.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    let x = x.max(-87.0);
    let n = (x * std::f32::consts::LOG2_E).round_ties_even(); // vroundps; `round` is a libm call
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4; // x - n ln 2, in two parts
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}
