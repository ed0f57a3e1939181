//! GPT-2: learned positions, LayerNorm, fused QKV attention, GELU MLP.
//!
//! Parameter names are Hugging Face GPT-2's (`wte`, `h.0.attn.c_attn`, ...),
//! written once, here, where each layer asks for its weights; linear weights
//! are `[in, out]` like GPT-2's Conv1D, so a checkpoint maps on by name with
//! no transposition. The layers read in the network's order.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;

use super::{attend, normal, one, zero, AnyBlock, Conv1D, LayerMask, Norm, Parts, Positions};
use crate::model::cache::LayerCache;
use crate::model::config::ModelConfig;
use crate::model::ops;

/// The network's parts, asking `vb` for each parameter in the order of the
/// network (which is the order fresh weights are drawn in).
pub(super) fn parts(c: &ModelConfig, vb: &VarBuilder) -> Result<Parts> {
    let d = c.d_model;
    Ok(Parts {
        wte: vb.get_with_hints((c.vocab_size, d), "wte.weight", normal(c.init_std))?,
        positions: Positions::Learned(vb.get_with_hints(
            (c.n_ctx, d),
            "wpe.weight",
            normal(c.init_std / 2.0),
        )?),
        blocks: (0..c.n_layer)
            .map(|i| Block::new(c, vb.pp(format!("h.{i}"))).map(AnyBlock::Gpt2))
            .collect::<Result<_>>()?,
        ln_f: Norm::Layer(LayerNorm::new(d, c.layer_norm_eps, vb.pp("ln_f"))?),
        lm_head: None,
    })
}

#[derive(Clone, Debug)]
pub(super) struct LayerNorm {
    weight: Tensor, // [d]
    bias: Tensor,   // [d]
    eps: f64,
}

impl LayerNorm {
    fn new(d: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(d, "weight", one())?,
            bias: vb.get_with_hints(d, "bias", zero())?,
            eps,
        })
    }

    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }

    pub(super) fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
            eps: self.eps,
        }
    }
}

#[derive(Clone, Debug)]
struct Attention {
    c_attn: Conv1D, // [d, 3d]: q, k, v for all heads
    c_proj: Conv1D, // [d, d]
    n_head: usize,
    /// Scores divided by `sqrt(dh)` (`scale_attn_weights`), or left as they are.
    scale: bool,
}

impl Attention {
    /// `x: [b*t, d]` (rows grouped by sequence); `mask` says which of the `s` keys
    /// (cached ones included) each query sees.
    fn forward(
        &self,
        x: &Tensor,
        b: usize,
        mask: &LayerMask,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let (_, d) = x.dims2()?;
        let (h, dh) = (self.n_head, d / self.n_head);
        // Slice the weights, not the activations: narrowing a [b*t, 3d] activation
        // would cost a zero-padded [b*t, 3d] tensor per slice in the backward pass.
        let (w, b_attn) = (&self.c_attn.weight, &self.c_attn.bias);
        let project = |i: usize, scale: f64| -> Result<Tensor> {
            let (w, b_i) = (w.narrow(1, i * d, d)?, b_attn.narrow(0, i * d, d)?);
            let (w, b_i) = if scale != 1.0 {
                ((w * scale)?, (b_i * scale)?)
            } else {
                (w, b_i)
            };
            ops::split_heads(&ops::add_bias(&ops::matmul(x, &w)?, &b_i)?, b, h) // [b, h, t, dh]
        };
        let q_scale = if self.scale {
            1.0 / (dh as f64).sqrt()
        } else {
            1.0
        };
        let q = project(0, q_scale)?; // scaled through its weights
        let (k, v) = (project(1, 1.0)?, project(2, 1.0)?);
        let (k, v) = match cache {
            Some(c) => c.append(&k, &v)?, // [b, h, s, dh]
            None => (k, v),
        };
        let y = attend(&q, &k, &v, mask, b)?; // [b, h, t, dh]
        self.c_proj.forward(&ops::merge_heads(&y)?)
    }
}

#[derive(Clone, Debug)]
struct Mlp {
    c_fc: Conv1D,   // [d, f]
    c_proj: Conv1D, // [f, d]
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // GPT-2's "gelu_new" is the tanh approximation.
        self.c_proj.forward(&ops::gelu(&self.c_fc.forward(x)?)?)
    }
}

#[derive(Clone, Debug)]
pub(super) struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(c: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (d, f) = (c.d_model, c.ff_dim());
        // GPT-2 scales the residual projections so the stream's variance does not grow with depth.
        let proj_std = c.init_std / (2.0 * c.n_layer as f64).sqrt();
        Ok(Self {
            ln_1: LayerNorm::new(d, c.layer_norm_eps, vb.pp("ln_1"))?,
            attn: Attention {
                c_attn: Conv1D::new(d, 3 * d, c.init_std, vb.pp("attn.c_attn"))?,
                c_proj: Conv1D::new(d, d, proj_std, vb.pp("attn.c_proj"))?,
                n_head: c.n_head,
                scale: c.scale_attn,
            },
            ln_2: LayerNorm::new(d, c.layer_norm_eps, vb.pp("ln_2"))?,
            mlp: Mlp {
                c_fc: Conv1D::new(d, f, c.init_std, vb.pp("mlp.c_fc"))?,
                c_proj: Conv1D::new(f, d, proj_std, vb.pp("mlp.c_proj"))?,
            },
        })
    }

    /// `x: [b*t, d]`.
    pub(super) fn forward(
        &self,
        x: &Tensor,
        b: usize,
        mask: &LayerMask,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, b, mask, cache)?)?;
        &x + self.mlp.forward(&self.ln_2.forward(&x)?)?
    }

    pub(super) fn detached(&self) -> Self {
        Self {
            ln_1: self.ln_1.detached(),
            attn: Attention {
                c_attn: self.attn.c_attn.detached(),
                c_proj: self.attn.c_proj.detached(),
                n_head: self.attn.n_head,
                scale: self.attn.scale,
            },
            ln_2: self.ln_2.detached(),
            mlp: Mlp {
                c_fc: self.mlp.c_fc.detached(),
                c_proj: self.mlp.c_proj.detached(),
            },
        }
    }
}
