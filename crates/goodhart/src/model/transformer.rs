//! A decoder-only transformer (GPT-2 layout) with an LM head tied to the token
//! embedding and a scalar head (value head for PPO, reward head for reward models).
//!
//! Parameter names follow Hugging Face GPT-2 (`wte`, `h.0.attn.c_attn`, ...), and
//! linear weights are stored `[in, out]` like GPT-2's Conv1D, so a GPT-2 checkpoint
//! maps onto this module by name with no transposition.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::cache::{KvCache, LayerCache};
use super::config::ModelConfig;
use super::ops;

/// How a parameter starts out before training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Normal(f64),
    Const(f64),
}

/// Every parameter of the network: name, shape and initialisation.
/// The single source of truth for init, loading and checkpoint validation.
pub fn parameter_specs(c: &ModelConfig) -> Vec<(String, Vec<usize>, Init)> {
    let (d, f) = (c.d_model, c.ff_dim());
    let std = c.init_std;
    // GPT-2 scales the residual projections so the stream's variance does not grow with depth.
    let proj_std = std / (2.0 * c.n_layer as f64).sqrt();
    let mut specs = vec![
        (
            "wte.weight".to_string(),
            vec![c.vocab_size, d],
            Init::Normal(std),
        ),
        (
            "wpe.weight".to_string(),
            vec![c.n_ctx, d],
            Init::Normal(std / 2.0),
        ),
    ];
    for i in 0..c.n_layer {
        let p = |s: &str| format!("h.{i}.{s}");
        specs.extend([
            (p("ln_1.weight"), vec![d], Init::Const(1.0)),
            (p("ln_1.bias"), vec![d], Init::Const(0.0)),
            (p("attn.c_attn.weight"), vec![d, 3 * d], Init::Normal(std)),
            (p("attn.c_attn.bias"), vec![3 * d], Init::Const(0.0)),
            (p("attn.c_proj.weight"), vec![d, d], Init::Normal(proj_std)),
            (p("attn.c_proj.bias"), vec![d], Init::Const(0.0)),
            (p("ln_2.weight"), vec![d], Init::Const(1.0)),
            (p("ln_2.bias"), vec![d], Init::Const(0.0)),
            (p("mlp.c_fc.weight"), vec![d, f], Init::Normal(std)),
            (p("mlp.c_fc.bias"), vec![f], Init::Const(0.0)),
            (p("mlp.c_proj.weight"), vec![f, d], Init::Normal(proj_std)),
            (p("mlp.c_proj.bias"), vec![d], Init::Const(0.0)),
        ]);
    }
    specs.extend([
        ("ln_f.weight".to_string(), vec![d], Init::Const(1.0)),
        ("ln_f.bias".to_string(), vec![d], Init::Const(0.0)),
        (
            "scalar_head.weight".to_string(),
            vec![d, 1],
            Init::Normal(1.0 / (d as f64 + 1.0).sqrt()),
        ),
        ("scalar_head.bias".to_string(), vec![1], Init::Const(0.0)),
    ]);
    specs
}

/// `y = x W + b` with `W: [in, out]` (GPT-2's Conv1D).
#[derive(Clone, Debug)]
struct Conv1D {
    weight: Tensor, // [in, out]
    bias: Tensor,   // [out]
}

impl Conv1D {
    fn new(n_in: usize, n_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get((n_in, n_out), "weight")?,
            bias: vb.get(n_out, "bias")?,
        })
    }

    /// `x: [n, in]` -> `[n, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::add_bias(&x.matmul(&self.weight)?, &self.bias)
    }

    fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
        }
    }
}

#[derive(Clone, Debug)]
struct LayerNorm {
    weight: Tensor, // [d]
    bias: Tensor,   // [d]
    eps: f64,
}

impl LayerNorm {
    fn new(d: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(d, "weight")?,
            bias: vb.get(d, "bias")?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }

    fn detached(&self) -> Self {
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
            ops::split_heads(&ops::add_bias(&x.matmul(&w)?, &b_i)?, b, h) // [b, h, t, dh]
        };
        let q = project(0, 1.0 / (dh as f64).sqrt())?; // scaled through its weights
        let (k, v) = (project(1, 1.0)?, project(2, 1.0)?);
        let (k, v) = match cache {
            Some(c) => c.append(&k, &v)?, // [b, h, s, dh]
            None => (k, v),
        };
        let y = match mask {
            LayerMask::None => ops::softmax_last_dim(&q.matmul(&k.t()?)?)?.matmul(&v)?,
            LayerMask::Causal => ops::causal_softmax(&q.matmul(&k.t()?)?)?.matmul(&v)?,
            LayerMask::Bias(m) => attention(&q, &k, &v, m)?,
            LayerMask::Decode(pads) if ops::fused(&q) && !q.track_op() => {
                ops::decode_attention(&q, &k, &v, pads)?
            }
            LayerMask::Decode(pads) => {
                let s = k.dim(2)?;
                attention(&q, &k, &v, &bias(b, 1, s, s - 1, pads, x.device())?)?
            }
        }; // [b, h, t, dh]
        self.c_proj.forward(&ops::merge_heads(&y)?)
    }
}

/// `softmax(q k^T + bias) v` for `q: [b, h, t, dh]`, `k, v: [b, h, s, dh]`, `bias: [b|1, 1, t, s]`.
fn attention(q: &Tensor, k: &Tensor, v: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let scores = q.matmul(&k.t()?)?.broadcast_add(bias)?; // [b, h, t, s]
    ops::softmax_last_dim(&scores)?.matmul(v)
}

/// How one layer masks attention, prepared once per forward pass.
enum LayerMask {
    /// No masking needed (a single query over keys that are all visible).
    None,
    /// Causal over as many keys as queries (no cache): masked inside the softmax kernel.
    Causal,
    /// An additive bias `[b|1, 1, t, s]`.
    Bias(Tensor),
    /// One query per row over cached keys, the first `pads[row]` of them padding.
    Decode(Vec<usize>),
}

/// Which keys each query may attend to.
#[derive(Clone, Copy, Debug)]
pub enum Mask<'a> {
    /// Causal, sequences aligned on the left (right-padded batches).
    Causal,
    /// Causal, with `pads[row]` padding tokens at the start of each row (left-padded prompts).
    LeftPadded(&'a [usize]),
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
struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    mlp: Mlp,
}

impl Block {
    fn new(c: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (d, f) = (c.d_model, c.ff_dim());
        Ok(Self {
            ln_1: LayerNorm::new(d, c.layer_norm_eps, vb.pp("ln_1"))?,
            attn: Attention {
                c_attn: Conv1D::new(d, 3 * d, vb.pp("attn.c_attn"))?,
                c_proj: Conv1D::new(d, d, vb.pp("attn.c_proj"))?,
                n_head: c.n_head,
            },
            ln_2: LayerNorm::new(d, c.layer_norm_eps, vb.pp("ln_2"))?,
            mlp: Mlp {
                c_fc: Conv1D::new(d, f, vb.pp("mlp.c_fc"))?,
                c_proj: Conv1D::new(f, d, vb.pp("mlp.c_proj"))?,
            },
        })
    }

    /// `x: [b*t, d]`.
    fn forward(
        &self,
        x: &Tensor,
        b: usize,
        mask: &LayerMask,
        cache: Option<&mut LayerCache>,
    ) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, b, mask, cache)?)?;
        &x + self.mlp.forward(&self.ln_2.forward(&x)?)?
    }

    fn detached(&self) -> Self {
        Self {
            ln_1: self.ln_1.detached(),
            attn: Attention {
                c_attn: self.attn.c_attn.detached(),
                c_proj: self.attn.c_proj.detached(),
                n_head: self.attn.n_head,
            },
            ln_2: self.ln_2.detached(),
            mlp: Mlp {
                c_fc: self.mlp.c_fc.detached(),
                c_proj: self.mlp.c_proj.detached(),
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct Transformer {
    config: ModelConfig,
    wte: Tensor, // [vocab, d]; also the LM head
    wpe: Tensor, // [n_ctx, d]
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    scalar_head: Conv1D, // [d, 1]
}

impl Transformer {
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (d, v) = (config.d_model, config.vocab_size);
        let blocks = (0..config.n_layer)
            .map(|i| Block::new(config, vb.pp(format!("h.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            wte: vb.get((v, d), "wte.weight")?,
            wpe: vb.get((config.n_ctx, d), "wpe.weight")?,
            blocks,
            ln_f: LayerNorm::new(d, config.layer_norm_eps, vb.pp("ln_f"))?,
            scalar_head: Conv1D::new(d, 1, vb.pp("scalar_head"))?,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn device(&self) -> &Device {
        self.wte.device()
    }

    /// The same weights, outside the autograd graph: inference takes the fused
    /// kernels, and still sees every optimiser update (storage is shared).
    pub fn detached(&self) -> Self {
        Self {
            config: self.config.clone(),
            wte: self.wte.detach(),
            wpe: self.wpe.detach(),
            blocks: self.blocks.iter().map(Block::detached).collect(),
            ln_f: self.ln_f.detached(),
            scalar_head: self.scalar_head.detached(),
        }
    }

    /// An empty KV cache for `batch` sequences of up to `capacity` tokens.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<KvCache> {
        let c = &self.config;
        KvCache::new(
            c.n_layer,
            (batch, c.n_head, capacity, c.head_dim()),
            self.wte.dtype(),
            self.device(),
        )
    }

    /// Final hidden states `[b, t, d]` of `tokens: [b, t]` at `positions: [b, t]`.
    /// With a cache, the tokens follow the cached ones and attend to them too.
    pub fn hidden(
        &self,
        tokens: &Tensor,
        positions: &Tensor,
        mask: Mask,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        let d = self.config.d_model;
        let offset = cache.as_ref().map_or(0, |c| c.len());
        let layer_mask = layer_mask(mask, b, t, offset, self.device())?;
        // The residual stream stays [b*t, d] throughout: every reshape would be a
        // graph node, and each node costs two full passes in candle's backward.
        let tok = self.wte.index_select(&tokens.flatten_all()?, 0)?; // [b*t, d]
        let pos = self.wpe.index_select(&positions.flatten_all()?, 0)?; // [b*t, d]
        let mut x = (tok + pos)?;
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| c.layer(i));
            x = block.forward(&x, b, &layer_mask, layer_cache)?;
        }
        if let Some(c) = cache {
            c.advance(t);
        }
        self.ln_f.forward(&x)?.reshape((b, t, d))
    }

    /// Next-token logits `[b, t, vocab]` from hidden states `[b, t, d]`.
    pub fn lm_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_logits_2d(&hidden.flatten_to(1)?)?.reshape((
            hidden.dim(0)?,
            hidden.dim(1)?,
            self.config.vocab_size,
        ))
    }

    /// Next-token logits `[n, vocab]` from hidden states `[n, d]`.
    pub fn lm_logits_2d(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden.matmul(&self.wte.t()?)
    }

    /// The scalar head `[b, t]` from hidden states `[b, t, d]`.
    pub fn scalar(&self, hidden: &Tensor) -> Result<Tensor> {
        let (b, t, _) = hidden.dims3()?;
        self.scalar_head
            .forward(&hidden.flatten_to(1)?)?
            .reshape((b, t))
    }
}

/// The mask for `t` queries following `offset` cached keys.
fn layer_mask(mask: Mask, b: usize, t: usize, offset: usize, device: &Device) -> Result<LayerMask> {
    let s = offset + t;
    Ok(match mask {
        Mask::Causal if t == 1 => LayerMask::None,
        Mask::Causal if offset == 0 => LayerMask::Causal,
        Mask::Causal => LayerMask::Bias(bias(1, t, s, offset, &[0], device)?),
        Mask::LeftPadded(pads) if t == 1 => LayerMask::Decode(pads.to_vec()),
        Mask::LeftPadded(pads) => LayerMask::Bias(bias(b, t, s, offset, pads, device)?),
    })
}

/// Additive bias `[rows, 1, t, s]`: query `q` (at key position `offset + q`) sees keys
/// `pads[row] ..= offset + q`; everything else gets [`MASKED`].
fn bias(
    rows: usize,
    t: usize,
    s: usize,
    offset: usize,
    pads: &[usize],
    device: &Device,
) -> Result<Tensor> {
    let mut m = vec![MASKED; rows * t * s];
    for r in 0..rows {
        let pad = pads[r.min(pads.len() - 1)];
        for q in 0..t {
            let row = &mut m[(r * t + q) * s..(r * t + q + 1) * s];
            // A padding query sees only itself, so its softmax stays finite.
            let lo = pad.min(offset + q);
            row[lo..=offset + q].fill(0.0);
        }
    }
    Tensor::from_vec(m, (rows, 1, t, s), device)
}

/// A finite "minus infinity": a fully masked row stays finite.
pub const MASKED: f32 = -1e9;

/// `[b, t]` positions 0..t for every row.
pub fn arange_positions(b: usize, t: usize, device: &Device) -> Result<Tensor> {
    Tensor::arange(0u32, t as u32, device)?
        .unsqueeze(0)?
        .broadcast_as((b, t))?
        .contiguous()
}

pub(crate) fn dtype() -> DType {
    DType::F32
}
