//! The Llama family (Llama, Qwen2, Qwen3, SmolLM, Mistral): rotary positions,
//! RMSNorm, grouped-query attention (heads of any width; Qwen3's query/key
//! norms), SwiGLU MLP, `[out, in]` weights, a tied or untied LM head.
//!
//! Parameter names are Hugging Face's without the `model.` prefix
//! (`embed_tokens`, `layers.0.self_attn.q_proj`, ...), written once, here.

use std::sync::{Arc, OnceLock};

use candle_core::{Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::{attend, normal, one, zero, AnyBlock, LayerMask, Norm, Parts, Positions};
use crate::model::cache::LayerCache;
use crate::model::config::ModelConfig;
use crate::model::ops;
use crate::model::rope::{inverse_frequencies, RopeScaling};

/// The network's parts, asking `vb` for each parameter in the order of the
/// network (which is the order fresh weights are drawn in).
pub(super) fn parts(c: &ModelConfig, vb: &VarBuilder) -> Result<Parts> {
    let (d, v) = (c.d_model, c.vocab_size);
    let wte = vb.get_with_hints((v, d), "embed_tokens.weight", normal(c.init_std))?;
    Ok(Parts {
        positions: Positions::Rotary(Rope::new(c, wte.device())),
        wte,
        blocks: (0..c.n_layer)
            .map(|i| Block::new(c, vb.pp(format!("layers.{i}"))).map(AnyBlock::Llama))
            .collect::<Result<_>>()?,
        ln_f: Norm::Rms(RmsNorm::new(d, c.layer_norm_eps, vb.pp("norm"))?),
        lm_head: if c.tie_embeddings {
            None
        } else {
            Some(vb.get_with_hints((v, d), "lm_head.weight", normal(c.init_std))?)
        },
    })
}

/// `y = x W^T (+ b)` with `W: [out, in]` (torch's Linear).
#[derive(Clone, Debug)]
struct Linear {
    weight: Tensor,       // [out, in]
    bias: Option<Tensor>, // [out]
}

impl Linear {
    fn new(n_in: usize, n_out: usize, bias: bool, std: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints((n_out, n_in), "weight", normal(std))?,
            bias: if bias {
                Some(vb.get_with_hints(n_out, "bias", zero())?)
            } else {
                None
            },
        })
    }

    /// `x: [n, in]` -> `[n, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = ops::matmul(x, &self.weight.t()?)?;
        match &self.bias {
            Some(b) => ops::add_bias(&y, b),
            None => Ok(y),
        }
    }

    fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.as_ref().map(Tensor::detach),
        }
    }
}

/// Root-mean-square norm: `x / sqrt(mean(x^2) + eps) * w`.
#[derive(Clone, Debug)]
pub(super) struct RmsNorm {
    weight: Tensor, // [d]
    eps: f64,
}

impl RmsNorm {
    fn new(d: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(d, "weight", one())?,
            eps,
        })
    }

    /// `x: [n, d]`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::rms_norm(x, &self.weight, self.eps)
    }

    pub(super) fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            eps: self.eps,
        }
    }
}

/// Rotary position tables (Llama): `cos`, `sin` `[n_ctx, head_dim / 2]`,
/// computed when first used (never for a network built only to list its
/// parameters) and shared by every copy of the network.
#[derive(Clone, Debug)]
pub(super) struct Rope {
    config: ModelConfig,
    device: Device,
    tables: Arc<OnceLock<(Tensor, Tensor)>>,
}

impl Rope {
    fn new(c: &ModelConfig, device: &Device) -> Self {
        Self {
            config: c.clone(),
            device: device.clone(),
            tables: Arc::new(OnceLock::new()),
        }
    }

    fn tables(&self) -> Result<&(Tensor, Tensor)> {
        if let Some(t) = self.tables.get() {
            return Ok(t);
        }
        let c = &self.config;
        let half = c.head_dim() / 2;
        let mut cos = Vec::with_capacity(c.n_ctx * half);
        let mut sin = Vec::with_capacity(c.n_ctx * half);
        let inv = inverse_frequencies(c.rope_theta, c.head_dim(), c.rope_scaling.as_ref());
        let scale = c
            .rope_scaling
            .as_ref()
            .map_or(1.0, RopeScaling::attention_factor);
        for p in 0..c.n_ctx {
            for &inv in &inv {
                // As transformers computes it: float32 frequencies times float32 positions.
                let angle = p as f32 * inv;
                cos.push(angle.cos() * scale);
                sin.push(angle.sin() * scale);
            }
        }
        let tables = (
            Tensor::from_vec(cos, (c.n_ctx, half), &self.device)?,
            Tensor::from_vec(sin, (c.n_ctx, half), &self.device)?,
        );
        Ok(self.tables.get_or_init(|| tables))
    }

    /// The tables at `positions: [b, t]`, as `[b, 1, t, half]` to broadcast over heads.
    pub(super) fn at(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let (cos, sin) = self.tables()?;
        let (b, t) = positions.dims2()?;
        let half = cos.dim(1)?;
        let flat = positions.flatten_all()?;
        let pick = |table: &Tensor| table.index_select(&flat, 0)?.reshape((b, 1, t, half));
        Ok((pick(cos)?, pick(sin)?))
    }
}

/// A block: RMSNorm, rotary grouped-query attention, SwiGLU MLP.
#[derive(Clone, Debug)]
pub(super) struct Block {
    input_norm: RmsNorm,
    q: Linear, // [h * dh, d]
    k: Linear, // [hk * dh, d]
    v: Linear, // [hk * dh, d]
    o: Linear, // [d, h * dh]
    /// Qwen3: RMSNorms `[dh]` over each query and each key head, before the rotation.
    q_norm: Option<RmsNorm>,
    k_norm: Option<RmsNorm>,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    n_head: usize,
    n_kv_head: usize,
    head_dim: usize,
}

impl Block {
    fn new(c: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (d, f, dh) = (c.d_model, c.ff_dim(), c.head_dim());
        let (q, kv) = (c.attention_width(), c.kv_heads() * dh);
        let std = c.init_std;
        let head_norm = |name: &str| -> Result<Option<RmsNorm>> {
            c.qk_norm
                .then(|| RmsNorm::new(dh, c.layer_norm_eps, vb.pp(name)))
                .transpose()
        };
        Ok(Self {
            input_norm: RmsNorm::new(d, c.layer_norm_eps, vb.pp("input_layernorm"))?,
            q: Linear::new(d, q, c.qkv_bias, std, vb.pp("self_attn.q_proj"))?,
            k: Linear::new(d, kv, c.qkv_bias, std, vb.pp("self_attn.k_proj"))?,
            v: Linear::new(d, kv, c.qkv_bias, std, vb.pp("self_attn.v_proj"))?,
            o: Linear::new(q, d, c.o_bias, std, vb.pp("self_attn.o_proj"))?,
            q_norm: head_norm("self_attn.q_norm")?,
            k_norm: head_norm("self_attn.k_norm")?,
            post_norm: RmsNorm::new(d, c.layer_norm_eps, vb.pp("post_attention_layernorm"))?,
            gate: Linear::new(d, f, false, std, vb.pp("mlp.gate_proj"))?,
            up: Linear::new(d, f, false, std, vb.pp("mlp.up_proj"))?,
            down: Linear::new(f, d, false, std, vb.pp("mlp.down_proj"))?,
            n_head: c.n_head,
            n_kv_head: c.kv_heads(),
            head_dim: dh,
        })
    }

    /// Project `h: [b*t, d]` and split into `heads` heads `[b, heads, t, dh]`,
    /// each normed by `norm` first when there is one (Qwen3).
    fn heads(
        &self,
        proj: &Linear,
        norm: Option<&RmsNorm>,
        h: &Tensor,
        b: usize,
        heads: usize,
    ) -> Result<Tensor> {
        let mut x = proj.forward(h)?; // [b*t, heads * dh]
        if let Some(norm) = norm {
            let bt = x.dim(0)?;
            x = norm
                .forward(&x.reshape((bt * heads, self.head_dim))?)? // one row per head
                .reshape((bt, heads * self.head_dim))?;
        }
        ops::split_heads(&x, b, heads)
    }

    /// `x: [b*t, d]`; `rope`: the tables at these tokens' positions.
    pub(super) fn forward(
        &self,
        x: &Tensor,
        b: usize,
        mask: &LayerMask,
        cache: Option<&mut LayerCache>,
        (cos, sin): &(Tensor, Tensor),
    ) -> Result<Tensor> {
        let h = self.input_norm.forward(x)?;
        let q = self.heads(&self.q, self.q_norm.as_ref(), &h, b, self.n_head)?;
        let k = self.heads(&self.k, self.k_norm.as_ref(), &h, b, self.n_kv_head)?;
        let v = self.heads(&self.v, None, &h, b, self.n_kv_head)?;
        let q = ops::rotary(&q, cos, sin, 1.0 / (self.head_dim as f64).sqrt())?;
        let k = ops::rotary(&k, cos, sin, 1.0)?;
        // Grouped-query attention: the cache holds the n_kv_head key/value heads,
        // each serving n_head / n_kv_head query heads inside `attend`.
        let (k, v) = match cache {
            Some(c) => c.append(&k, &v)?, // [b, n_kv_head, s, dh]
            None => (k, v),
        };
        let y = attend(&q, &k, &v, mask, b)?;
        let x = (x + self.o.forward(&ops::merge_heads(&y)?)?)?;
        let h = self.post_norm.forward(&x)?;
        let m = ops::swiglu(&self.gate.forward(&h)?, &self.up.forward(&h)?)?;
        &x + self.down.forward(&m)?
    }

    pub(super) fn detached(&self) -> Self {
        Self {
            input_norm: self.input_norm.detached(),
            q: self.q.detached(),
            k: self.k.detached(),
            v: self.v.detached(),
            o: self.o.detached(),
            q_norm: self.q_norm.as_ref().map(RmsNorm::detached),
            k_norm: self.k_norm.as_ref().map(RmsNorm::detached),
            post_norm: self.post_norm.detached(),
            gate: self.gate.detached(),
            up: self.up.detached(),
            down: self.down.detached(),
            n_head: self.n_head,
            n_kv_head: self.n_kv_head,
            head_dim: self.head_dim,
        }
    }
}
