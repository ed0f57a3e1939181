//! Attention of one new token per row over the KV cache (decoding, no gradient).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{exp_nonpositive, f32_slice, lane_dot, lane_sum};

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
