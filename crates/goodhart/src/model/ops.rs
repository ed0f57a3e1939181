//! Fused LayerNorm, GELU and softmax with their backward passes.
//!
//! candle builds these from many elementwise ops (its GELU backward alone is a
//! dozen full passes, two of them `powf`), and candle-nn's fused kernels have
//! no backward pass at all: used on a tensor that tracks gradients they would
//! silently cut the graph. On the CPU these are single passes over each row,
//! parallel over rows; row reductions (LayerNorm's weight gradients) sum
//! fixed-size chunks in order, so results do not depend on the thread count.
//! Other devices take the composite path, which candle runs natively.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor, D,
};
use rayon::prelude::*;

/// Rows per parallel task, and the fixed chunking of cross-row reductions.
const ROWS_PER_TASK: usize = 32;

/// LayerNorm over the last dimension: `(x - mean) / sqrt(var + eps) * weight + bias`.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?
            .apply_op3(weight, bias, LayerNorm { eps: eps as f32 })
    } else {
        let d = x.dim(D::Minus1)? as f64;
        let mean = (x.sum_keepdim(D::Minus1)? / d)?;
        let centred = x.broadcast_sub(&mean)?;
        let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / d)?;
        let normed = centred.broadcast_div(&(var + eps)?.sqrt()?)?;
        normed.broadcast_mul(weight)?.broadcast_add(bias)
    }
}

/// GELU, tanh approximation (GPT-2's `gelu_new`).
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Gelu)
    } else {
        x.gelu()
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        x.contiguous()?.apply_op1(Softmax { causal: false })
    } else {
        candle_nn::ops::softmax(x, D::Minus1)
    }
}

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

/// Does the fused CPU path apply to this tensor?
pub(crate) fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// Attention of one new token per row over cached keys, for decoding:
/// `q: [b, h, 1, dh]`, `k, v: [b, hk, s, dh]` (views into the cache; `hk`
/// divides `h`, each key/value head serving `h / hk` query heads), the first
/// `pads[row]` keys of each row masked. No gradient. One pass per (row, head)
/// instead of `b * h` tiny matrix products.
pub fn decode_attention(q: &Tensor, k: &Tensor, v: &Tensor, pads: &[usize]) -> Result<Tensor> {
    q.contiguous()?.apply_op3_no_bwd(
        k,
        v,
        &DecodeAttention {
            pads: pads.to_vec(),
        },
    )
}

struct DecodeAttention {
    pads: Vec<usize>,
}

impl CustomOp3 for DecodeAttention {
    fn name(&self) -> &'static str {
        "decode-attention"
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
        let q = f32_slice(s1, l1)?;
        let (k, v) = (s2.as_slice::<f32>()?, s3.as_slice::<f32>()?);
        let (b, hk, s, dh) = l2.shape().dims4()?;
        let h = l1.shape().dims4()?.1;
        if l1.shape().dims4()? != (b, h, 1, dh)
            || l3.shape().dims4()? != (b, hk, s, dh)
            || hk == 0
            || h % hk != 0
            || self.pads.len() != b
        {
            candle_core::bail!(
                "decode-attention: q {:?}, k {:?}, v {:?}, {} pads",
                l1.dims(),
                l2.dims(),
                l3.dims(),
                self.pads.len()
            );
        }
        let (ks, vs) = (l2.stride(), l3.stride());
        if ks[3] != 1 || vs[3] != 1 {
            candle_core::bail!(
                "decode-attention: the head dimension of the cache must be contiguous"
            );
        }
        let (ko, vo) = (l2.start_offset(), l3.start_offset());
        let mut out = vec![0f32; b * h * dh];
        const ROWS: usize = 8;
        out.par_chunks_mut(dh * ROWS)
            .enumerate()
            .for_each(|(chunk, out)| {
                let mut p = vec![0f32; s];
                for (i, y) in out.chunks_mut(dh).enumerate() {
                    let row = chunk * ROWS + i;
                    // Query head hi reads key/value head hi / (h / hk) (grouped-query attention).
                    let (bi, hi) = (row / h, row % h);
                    let hi = hi / (h / hk);
                    let pad = self.pads[bi].min(s - 1);
                    let q = &q[row * dh..(row + 1) * dh];
                    let (kb, vb) = (ko + bi * ks[0] + hi * ks[1], vo + bi * vs[0] + hi * vs[1]);
                    for j in pad..s {
                        p[j] = lane_dot(q, &k[kb + j * ks[2]..kb + j * ks[2] + dh]);
                    }
                    let max = p[pad..s].iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    for pj in &mut p[pad..s] {
                        *pj = exp_nonpositive(*pj - max);
                    }
                    let inv = 1.0 / lane_sum(&p[pad..s]);
                    y.fill(0.0);
                    for j in pad..s {
                        let w = p[j] * inv;
                        let v = &v[vb + j * vs[2]..vb + j * vs[2] + dh];
                        for (y, &v) in y.iter_mut().zip(v) {
                            *y += w * v;
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((b, h, 1, dh))))
    }
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (start, end) = l
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("fused op needs a contiguous tensor".into()))?;
    Ok(&s.as_slice::<f32>()?[start..end])
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const GELU_C: f32 = 0.044_715;

/// tanh as a branch-free rational function (Eigen's float `ptanh`, also PyTorch's
/// vectorised CPU tanh): within a few ulp, and the compiler vectorises it.
#[inline(always)]
#[allow(clippy::excessive_precision)] // the reference approximation's coefficients, as published
fn tanh(x: f32) -> f32 {
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

struct LayerNorm {
    eps: f32,
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

/// Mean and 1/std of one row.
fn moments(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = lane_sum(x) / n;
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail: f32 = chunks
        .remainder()
        .iter()
        .map(|v| (v - mean) * (v - mean))
        .sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += (c[i] - mean) * (c[i] - mean);
        }
    }
    let var = (acc.iter().sum::<f32>() + tail) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
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
        let (x, w, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let d = w.len();
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(d * ROWS_PER_TASK)
            .zip(x.par_chunks(d * ROWS_PER_TASK))
            .for_each(|(y, x)| {
                for (y, x) in y.chunks_mut(d).zip(x.chunks(d)) {
                    let (mean, rstd) = moments(x, self.eps);
                    for i in 0..d {
                        y[i] = (x[i] - mean) * rstd * w[i] + b[i];
                    }
                }
            });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let shape = x.shape().clone();
        let d = w.dim(0)?;
        let rows = shape.elem_count() / d;
        // One pass yields all three gradients, packed as rows: dx (rows of them), then dw, then db.
        let packed =
            x.apply_op3_no_bwd(w, &grad.contiguous()?, &LayerNormBackward { eps: self.eps })?;
        let dx = packed.narrow(0, 0, rows)?.reshape(shape)?;
        let dw = packed.get(rows)?;
        let db = packed.get(rows + 1)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

struct LayerNormBackward {
    eps: f32,
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "fused-layer-norm-backward"
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
        let rows = x.len() / d;
        let mut out = vec![0f32; (rows + 2) * d];
        let (dx, _) = out.split_at_mut(rows * d);
        // Each task returns its partial (dw, db); partials are summed in chunk order below.
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(d * ROWS_PER_TASK)
            .zip(
                x.par_chunks(d * ROWS_PER_TASK)
                    .zip(g.par_chunks(d * ROWS_PER_TASK)),
            )
            .map(|(dx, (x, g))| {
                let (mut dw, mut db) = (vec![0f32; d], vec![0f32; d]);
                for ((dx, x), g) in dx.chunks_mut(d).zip(x.chunks(d)).zip(g.chunks(d)) {
                    let (mean, rstd) = moments(x, self.eps);
                    let (mut mean_gw, mut mean_gw_xhat) = (0f32, 0f32);
                    for i in 0..d {
                        let xhat = (x[i] - mean) * rstd;
                        let gw = g[i] * w[i];
                        mean_gw += gw;
                        mean_gw_xhat += gw * xhat;
                        dw[i] += g[i] * xhat;
                        db[i] += g[i];
                    }
                    mean_gw /= d as f32;
                    mean_gw_xhat /= d as f32;
                    for i in 0..d {
                        let xhat = (x[i] - mean) * rstd;
                        dx[i] = rstd * (g[i] * w[i] - mean_gw - xhat * mean_gw_xhat);
                    }
                }
                (dw, db)
            })
            .collect();
        let (dw, db) = out[rows * d..].split_at_mut(d);
        for (pw, pb) in &partials {
            for i in 0..d {
                dw[i] += pw[i];
                db[i] += pb[i];
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows + 2, d))))
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn input() -> Tensor {
        let x = Tensor::arange(0f32, 3. * 5. * 8., &Device::Cpu)
            .unwrap()
            .reshape((3, 5, 8))
            .unwrap();
        ((x * 0.37).unwrap().sin().unwrap() * 2.5).unwrap()
    }

    /// Gradient of sum(f(x) * r) for a fixed random-ish r, through the fused op and the composite one.
    fn grads(
        f: impl Fn(&Tensor) -> Tensor,
        composite: impl Fn(&Tensor) -> Tensor,
    ) -> (Tensor, Tensor, Tensor, Tensor) {
        let x = Var::from_tensor(&input()).unwrap();
        let r = (input().cos().unwrap() + 0.1).unwrap();
        let y1 = f(x.as_tensor());
        let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let y2 = composite(x.as_tensor());
        let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        (
            y1,
            y2,
            g1.get(x.as_tensor()).unwrap().clone(),
            g2.get(x.as_tensor()).unwrap().clone(),
        )
    }

    #[test]
    fn fused_gelu_matches_candle_forward_and_backward() {
        let (y1, y2, g1, g2) = grads(|x| gelu(x).unwrap(), |x| x.gelu().unwrap());
        assert!(max_diff(&y1, &y2) < 1e-5);
        assert!(max_diff(&g1, &g2) < 1e-4, "{}", max_diff(&g1, &g2));
    }

    #[test]
    fn fused_softmax_matches_composite_forward_and_backward() {
        let (y1, y2, g1, g2) = grads(
            |x| softmax_last_dim(x).unwrap(),
            |x| candle_nn::ops::softmax(x, D::Minus1).unwrap(),
        );
        assert!(max_diff(&y1, &y2) < 1e-6);
        assert!(max_diff(&g1, &g2) < 1e-5);
    }

    #[test]
    fn fused_layer_norm_matches_composite_for_all_three_gradients() {
        let dev = Device::Cpu;
        let w = Var::new(&[1.0f32, 0.5, 2.0, -1.0, 0.3, 1.2, 0.9, -0.4], &dev).unwrap();
        let b = Var::new(&[0.1f32, 0.0, -0.2, 0.3, 0.05, -0.1, 0.2, 0.0], &dev).unwrap();
        let x = Var::from_tensor(&input()).unwrap();
        let r = (input().cos().unwrap() + 0.1).unwrap();
        let composite = |x: &Tensor, w: &Tensor, b: &Tensor| {
            let mean = (x.sum_keepdim(D::Minus1).unwrap() / 8.0).unwrap();
            let c = x.broadcast_sub(&mean).unwrap();
            let var = (c.sqr().unwrap().sum_keepdim(D::Minus1).unwrap() / 8.0).unwrap();
            let n = c
                .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
                .unwrap();
            n.broadcast_mul(w).unwrap().broadcast_add(b).unwrap()
        };
        let y1 = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        let y2 = composite(x.as_tensor(), w.as_tensor(), b.as_tensor());
        assert!(max_diff(&y1, &y2) < 1e-5);
        let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &w, &b] {
            let d = max_diff(
                g1.get(v.as_tensor()).unwrap(),
                g2.get(v.as_tensor()).unwrap(),
            );
            assert!(d < 1e-4, "gradient differs by {d}");
        }
    }

    #[test]
    fn fused_bias_add_and_target_logprobs_match_candle() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&input().reshape((15, 8)).unwrap()).unwrap();
        let b = Var::new(&[0.1f32, 0.0, -0.2, 0.3, 0.05, -0.1, 0.2, 0.0], &dev).unwrap();
        let r = (input().reshape((15, 8)).unwrap().cos().unwrap() + 0.1).unwrap();
        let y1 = add_bias(x.as_tensor(), b.as_tensor()).unwrap();
        let y2 = x.as_tensor().broadcast_add(b.as_tensor()).unwrap();
        assert!(max_diff(&y1, &y2) < 1e-7);
        let g1 = (&y1 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&y2 * &r).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &b] {
            assert!(
                max_diff(
                    g1.get(v.as_tensor()).unwrap(),
                    g2.get(v.as_tensor()).unwrap()
                ) < 1e-5
            );
        }

        let targets = Tensor::new(&[3u32, 0, 7, 7, 1, 2, 5, 4, 6, 0, 1, 2, 3, 4, 5], &dev).unwrap();
        let w = Tensor::arange(0f32, 15., &dev).unwrap();
        let l1 = target_logprobs(x.as_tensor(), &targets).unwrap();
        let picked = x
            .as_tensor()
            .gather(&targets.unsqueeze(1).unwrap(), 1)
            .unwrap()
            .squeeze(1)
            .unwrap();
        let l2 = (picked - x.as_tensor().log_sum_exp(D::Minus1).unwrap()).unwrap();
        assert!(max_diff(&l1, &l2) < 1e-5);
        let g1 = (&l1 * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&l2 * &w).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(
            max_diff(
                g1.get(x.as_tensor()).unwrap(),
                g2.get(x.as_tensor()).unwrap()
            ) < 1e-4
        );
    }

    #[test]
    fn head_split_merge_and_causal_softmax_match_candle() {
        let x = Var::from_tensor(&input().reshape((6, 20)).unwrap()).unwrap(); // b=2, t=3, h=4, dh=5
        let split = split_heads(x.as_tensor(), 2, 4).unwrap();
        let reference = x
            .as_tensor()
            .reshape((2, 3, 4, 5))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        assert!(max_diff(&split, &reference) < 1e-9);
        assert!(max_diff(&merge_heads(&split).unwrap(), x.as_tensor()) < 1e-9);
        let r = (input().reshape((2, 4, 3, 5)).unwrap().cos().unwrap() + 0.1).unwrap();
        let g = (&split * &r)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let expect = r.transpose(1, 2).unwrap().reshape((6, 20)).unwrap();
        assert!(max_diff(g.get(x.as_tensor()).unwrap(), &expect) < 1e-9);

        let scores = Var::from_tensor(
            &input()
                .narrow(2, 0, 5)
                .unwrap()
                .narrow(1, 0, 5)
                .unwrap()
                .contiguous()
                .unwrap(),
        )
        .unwrap(); // [3, 5, 5]
        let t = 5;
        let mask: Vec<f32> = (0..t)
            .flat_map(|q| (0..t).map(move |k| if k <= q { 0.0 } else { -1e9 }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
        let y1 = causal_softmax(scores.as_tensor()).unwrap();
        let y2 =
            candle_nn::ops::softmax(&scores.as_tensor().broadcast_add(&mask).unwrap(), D::Minus1)
                .unwrap();
        assert!(max_diff(&y1, &y2) < 1e-6);
        let w = (input()
            .narrow(2, 0, 5)
            .unwrap()
            .narrow(1, 0, 5)
            .unwrap()
            .sin()
            .unwrap()
            + 0.3)
            .unwrap();
        let g1 = (&y1 * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let g2 = (&y2 * &w).unwrap().sum_all().unwrap().backward().unwrap();
        assert!(
            max_diff(
                g1.get(scores.as_tensor()).unwrap(),
                g2.get(scores.as_tensor()).unwrap()
            ) < 1e-5
        );
    }

    #[test]
    fn fast_tanh_and_exp_are_accurate() {
        let mut worst = (0f32, 0f32);
        for i in -20_000..=20_000 {
            let x = i as f32 * 1e-3;
            worst.0 = worst.0.max((tanh(x) - x.tanh()).abs());
            if x <= 0.0 {
                let e = x * 4.0;
                worst.1 = worst
                    .1
                    .max(((exp_nonpositive(e) - e.exp()) / e.exp()).abs());
            }
        }
        assert!(worst.0 < 1e-6, "tanh error {}", worst.0);
        assert!(worst.1 < 1e-6, "exp relative error {}", worst.1);
        assert_eq!(exp_nonpositive(-200.0), 0.0f32.max(exp_nonpositive(-200.0)));
    }

    #[test]
    fn inference_path_needs_no_gradient_tracking() {
        // A plain tensor goes through the same fused kernels with no graph recorded.
        let y = softmax_last_dim(&input()).unwrap();
        assert!(!y.track_op());
        let sums: Vec<f32> = y
            .sum(D::Minus1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-6));
    }
}
