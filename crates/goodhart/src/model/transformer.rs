//! A decoder-only transformer (GPT-2 layout) with an LM head tied to the token
//! embedding and a scalar head (value head for PPO, reward head for reward models).
//!
//! Parameter names follow Hugging Face GPT-2 (`wte`, `h.0.attn.c_attn`, ...), and
//! linear weights are stored `[in, out]` like GPT-2's Conv1D, so a GPT-2 checkpoint
//! maps onto this module by name with no transposition.

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use super::cache::{KvCache, LayerCache};
use super::config::{Arch, ModelConfig};
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
    if c.arch == Arch::Llama {
        return llama_specs(c);
    }
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

/// Llama-family parameters, named as in Hugging Face checkpoints without the `model.` prefix.
fn llama_specs(c: &ModelConfig) -> Vec<(String, Vec<usize>, Init)> {
    let (d, f, v) = (c.d_model, c.ff_dim(), c.vocab_size);
    let kv = c.kv_heads() * c.head_dim();
    let std = c.init_std;
    let mut specs = vec![(
        "embed_tokens.weight".to_string(),
        vec![v, d],
        Init::Normal(std),
    )];
    for i in 0..c.n_layer {
        let p = |s: &str| format!("layers.{i}.{s}");
        specs.extend([
            (p("input_layernorm.weight"), vec![d], Init::Const(1.0)),
            (p("self_attn.q_proj.weight"), vec![d, d], Init::Normal(std)),
            (p("self_attn.k_proj.weight"), vec![kv, d], Init::Normal(std)),
            (p("self_attn.v_proj.weight"), vec![kv, d], Init::Normal(std)),
            (p("self_attn.o_proj.weight"), vec![d, d], Init::Normal(std)),
            (
                p("post_attention_layernorm.weight"),
                vec![d],
                Init::Const(1.0),
            ),
            (p("mlp.gate_proj.weight"), vec![f, d], Init::Normal(std)),
            (p("mlp.up_proj.weight"), vec![f, d], Init::Normal(std)),
            (p("mlp.down_proj.weight"), vec![d, f], Init::Normal(std)),
        ]);
        if c.qkv_bias {
            specs.extend([
                (p("self_attn.q_proj.bias"), vec![d], Init::Const(0.0)),
                (p("self_attn.k_proj.bias"), vec![kv], Init::Const(0.0)),
                (p("self_attn.v_proj.bias"), vec![kv], Init::Const(0.0)),
            ]);
        }
    }
    specs.push(("norm.weight".to_string(), vec![d], Init::Const(1.0)));
    if !c.tie_embeddings {
        specs.push(("lm_head.weight".to_string(), vec![v, d], Init::Normal(std)));
    }
    specs.extend([
        (
            "scalar_head.weight".to_string(),
            vec![d, 1],
            Init::Normal(1.0 / (d as f64 + 1.0).sqrt()),
        ),
        ("scalar_head.bias".to_string(), vec![1], Init::Const(0.0)),
    ]);
    specs
}

/// `y = x W^T (+ b)` with `W: [out, in]` (torch's Linear, Llama's projections).
#[derive(Clone, Debug)]
struct Linear {
    weight: Tensor,       // [out, in]
    bias: Option<Tensor>, // [out]
}

impl Linear {
    fn new(n_in: usize, n_out: usize, bias: bool, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get((n_out, n_in), "weight")?,
            bias: if bias {
                Some(vb.get(n_out, "bias")?)
            } else {
                None
            },
        })
    }

    /// `x: [n, in]` -> `[n, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight.t()?)?;
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

/// Root-mean-square norm (Llama): `x / sqrt(mean(x^2) + eps) * w`.
#[derive(Clone, Debug)]
struct RmsNorm {
    weight: Tensor, // [d]
    eps: f64,
}

impl RmsNorm {
    fn new(d: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(d, "weight")?,
            eps,
        })
    }

    /// `x: [n, d]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let rms = (x.sqr()?.mean_keepdim(1)? + self.eps)?.sqrt()?;
        x.broadcast_div(&rms)?.broadcast_mul(&self.weight)
    }

    fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            eps: self.eps,
        }
    }
}

/// The final norm of either family.
#[derive(Clone, Debug)]
enum Norm {
    Layer(LayerNorm),
    Rms(RmsNorm),
}

impl Norm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer(n) => n.forward(x),
            Norm::Rms(n) => n.forward(x),
        }
    }

    fn detached(&self) -> Self {
        match self {
            Norm::Layer(n) => Norm::Layer(n.detached()),
            Norm::Rms(n) => Norm::Rms(n.detached()),
        }
    }
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
        let y = attend(&q, &k, &v, mask, b)?; // [b, h, t, dh]
        self.c_proj.forward(&ops::merge_heads(&y)?)
    }
}

/// Attention of scaled queries `q: [b, h, t, dh]` over `k, v: [b, hk, s, dh]`
/// under `mask`, where each of the `hk` key/value heads serves `h / hk` query
/// heads (grouped-query attention; `hk = h` otherwise). The decoding kernel reads
/// the shared heads in place; the other paths repeat them first.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, mask: &LayerMask, b: usize) -> Result<Tensor> {
    if let LayerMask::Decode(pads) = mask {
        if ops::fused(q) && !q.track_op() {
            return ops::decode_attention(q, k, v, pads);
        }
    }
    let rep = q.dim(1)? / k.dim(1)?;
    let (k, v) = (repeat_kv(k, rep)?, repeat_kv(v, rep)?);
    let (k, v) = (&k, &v);
    match mask {
        LayerMask::None => ops::softmax_last_dim(&q.matmul(&k.t()?)?)?.matmul(v),
        LayerMask::Causal => ops::causal_softmax(&q.matmul(&k.t()?)?)?.matmul(v),
        LayerMask::Bias(m) => attention(q, k, v, m),
        LayerMask::Decode(pads) => {
            let s = k.dim(2)?;
            attention(q, k, v, &bias(b, 1, s, s - 1, pads, q.device())?)
        }
    }
}

/// Rotary position tables (Llama): `cos`, `sin` `[n_ctx, head_dim / 2]`.
#[derive(Clone, Debug)]
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    fn new(c: &ModelConfig, device: &Device) -> Result<Self> {
        let half = c.head_dim() / 2;
        let mut cos = Vec::with_capacity(c.n_ctx * half);
        let mut sin = Vec::with_capacity(c.n_ctx * half);
        for p in 0..c.n_ctx {
            for i in 0..half {
                // As transformers computes it: float32 frequencies times float32 positions.
                let inv = (1.0 / c.rope_theta.powf((2 * i) as f64 / c.head_dim() as f64)) as f32;
                let angle = p as f32 * inv;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (c.n_ctx, half), device)?,
            sin: Tensor::from_vec(sin, (c.n_ctx, half), device)?,
        })
    }

    /// The tables at `positions: [b, t]`, as `[b, 1, t, half]` to broadcast over heads.
    fn at(&self, positions: &Tensor) -> Result<(Tensor, Tensor)> {
        let (b, t) = positions.dims2()?;
        let half = self.cos.dim(1)?;
        let flat = positions.flatten_all()?;
        let pick = |table: &Tensor| table.index_select(&flat, 0)?.reshape((b, 1, t, half));
        Ok((pick(&self.cos)?, pick(&self.sin)?))
    }
}

/// Rotate `x: [b, h, t, dh]` by its positions' angles (the "rotate half" convention).
fn apply_rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(3)? / 2;
    let (x1, x2) = (x.narrow(3, 0, half)?, x.narrow(3, half, half)?);
    let first = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let second = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Tensor::cat(&[first, second], 3)
}

/// A Llama-family block: RMSNorm, rotary grouped-query attention, SwiGLU MLP.
#[derive(Clone, Debug)]
struct LlamaBlock {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
    n_head: usize,
    n_kv_head: usize,
}

impl LlamaBlock {
    fn new(c: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (d, f) = (c.d_model, c.ff_dim());
        let kv = c.kv_heads() * c.head_dim();
        Ok(Self {
            input_norm: RmsNorm::new(d, c.layer_norm_eps, vb.pp("input_layernorm"))?,
            q: Linear::new(d, d, c.qkv_bias, vb.pp("self_attn.q_proj"))?,
            k: Linear::new(d, kv, c.qkv_bias, vb.pp("self_attn.k_proj"))?,
            v: Linear::new(d, kv, c.qkv_bias, vb.pp("self_attn.v_proj"))?,
            o: Linear::new(d, d, false, vb.pp("self_attn.o_proj"))?,
            post_norm: RmsNorm::new(d, c.layer_norm_eps, vb.pp("post_attention_layernorm"))?,
            gate: Linear::new(d, f, false, vb.pp("mlp.gate_proj"))?,
            up: Linear::new(d, f, false, vb.pp("mlp.up_proj"))?,
            down: Linear::new(f, d, false, vb.pp("mlp.down_proj"))?,
            n_head: c.n_head,
            n_kv_head: c.kv_heads(),
        })
    }

    /// `x: [b*t, d]`; `rope`: the tables at these tokens' positions.
    fn forward(
        &self,
        x: &Tensor,
        b: usize,
        mask: &LayerMask,
        cache: Option<&mut LayerCache>,
        (cos, sin): &(Tensor, Tensor),
    ) -> Result<Tensor> {
        let h = self.input_norm.forward(x)?;
        let dh = x.dim(1)? / self.n_head;
        let q = ops::split_heads(&self.q.forward(&h)?, b, self.n_head)?;
        let k = ops::split_heads(&self.k.forward(&h)?, b, self.n_kv_head)?;
        let v = ops::split_heads(&self.v.forward(&h)?, b, self.n_kv_head)?;
        let q = (apply_rope(&q, cos, sin)? * (1.0 / (dh as f64).sqrt()))?;
        let k = apply_rope(&k, cos, sin)?;
        // Grouped-query attention: the cache holds the n_kv_head key/value heads,
        // each serving n_head / n_kv_head query heads inside `attend`.
        let (k, v) = match cache {
            Some(c) => c.append(&k, &v)?, // [b, n_kv_head, s, dh]
            None => (k, v),
        };
        let y = attend(&q, &k, &v, mask, b)?;
        let x = (x + self.o.forward(&ops::merge_heads(&y)?)?)?;
        let h = self.post_norm.forward(&x)?;
        let m = (self.gate.forward(&h)?.silu()? * self.up.forward(&h)?)?;
        &x + self.down.forward(&m)?
    }

    fn detached(&self) -> Self {
        Self {
            input_norm: self.input_norm.detached(),
            q: self.q.detached(),
            k: self.k.detached(),
            v: self.v.detached(),
            o: self.o.detached(),
            post_norm: self.post_norm.detached(),
            gate: self.gate.detached(),
            up: self.up.detached(),
            down: self.down.detached(),
            n_head: self.n_head,
            n_kv_head: self.n_kv_head,
        }
    }
}

/// A block of either family.
#[derive(Clone, Debug)]
enum AnyBlock {
    Gpt2(Block),
    Llama(LlamaBlock),
}

/// `[b, hk, s, dh]` -> `[b, hk * rep, s, dh]`, each head repeated `rep` times in place.
fn repeat_kv(x: &Tensor, rep: usize) -> Result<Tensor> {
    if rep == 1 {
        return Ok(x.clone());
    }
    let (b, hk, s, dh) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, hk, rep, s, dh))?
        .reshape((b, hk * rep, s, dh))
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
    wte: Tensor,         // [vocab, d]; also the LM head when tied
    wpe: Option<Tensor>, // [n_ctx, d]: GPT-2's learned positions
    rope: Option<Rope>,  // Llama's rotary positions
    blocks: Vec<AnyBlock>,
    ln_f: Norm,
    lm_head: Option<Tensor>, // [vocab, d] when untied
    scalar_head: Conv1D,     // [d, 1]
    /// `[vocab]`: 0, or -1e30 (no mass) for tokens the policy never emits (see [`Transformer::never_emit`]).
    never_emitted: Option<Tensor>,
}

impl Transformer {
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let (d, v) = (config.d_model, config.vocab_size);
        let scalar_head = Conv1D::new(d, 1, vb.pp("scalar_head"))?;
        if config.arch == Arch::Llama {
            let blocks = (0..config.n_layer)
                .map(|i| LlamaBlock::new(config, vb.pp(format!("layers.{i}"))).map(AnyBlock::Llama))
                .collect::<Result<Vec<_>>>()?;
            let wte = vb.get((v, d), "embed_tokens.weight")?;
            return Ok(Self {
                config: config.clone(),
                rope: Some(Rope::new(config, wte.device())?),
                wte,
                wpe: None,
                blocks,
                ln_f: Norm::Rms(RmsNorm::new(d, config.layer_norm_eps, vb.pp("norm"))?),
                lm_head: if config.tie_embeddings {
                    None
                } else {
                    Some(vb.get((v, d), "lm_head.weight")?)
                },
                scalar_head,
                never_emitted: None,
            });
        }
        let blocks = (0..config.n_layer)
            .map(|i| Block::new(config, vb.pp(format!("h.{i}"))).map(AnyBlock::Gpt2))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            config: config.clone(),
            wte: vb.get((v, d), "wte.weight")?,
            wpe: Some(vb.get((config.n_ctx, d), "wpe.weight")?),
            rope: None,
            blocks,
            ln_f: Norm::Layer(LayerNorm::new(d, config.layer_norm_eps, vb.pp("ln_f"))?),
            lm_head: None,
            scalar_head,
            never_emitted: None,
        })
    }

    /// Take `ids` out of the policy's distribution: [`Transformer::policy_logits_2d`]
    /// gives them -1e30 (no mass), so sampling and teacher-forced log-probabilities are one
    /// distribution (the softmax over the other tokens).
    pub fn never_emit(&mut self, ids: &[u32]) -> Result<()> {
        let v = self.config.vocab_size;
        let mut mask = vec![0f32; v];
        for &id in ids.iter().filter(|&&id| (id as usize) < v) {
            // Not -inf: positions outside a completion are multiplied by a 0 mask, and -inf * 0 is NaN.
            mask[id as usize] = -1e30;
        }
        self.never_emitted = (!ids.is_empty())
            .then(|| Tensor::from_vec(mask, v, self.device()))
            .transpose()?;
        Ok(())
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
            wpe: self.wpe.as_ref().map(Tensor::detach),
            rope: self.rope.clone(),
            blocks: self
                .blocks
                .iter()
                .map(|b| match b {
                    AnyBlock::Gpt2(b) => AnyBlock::Gpt2(b.detached()),
                    AnyBlock::Llama(b) => AnyBlock::Llama(b.detached()),
                })
                .collect(),
            ln_f: self.ln_f.detached(),
            lm_head: self.lm_head.as_ref().map(Tensor::detach),
            scalar_head: self.scalar_head.detached(),
            never_emitted: self.never_emitted.clone(),
        }
    }

    /// An empty KV cache for `batch` sequences of up to `capacity` tokens.
    pub fn new_cache(&self, batch: usize, capacity: usize) -> Result<KvCache> {
        let c = &self.config;
        KvCache::new(
            c.n_layer,
            (batch, c.kv_heads(), capacity, c.head_dim()), // only the key/value heads
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
        let mut x = self.wte.index_select(&tokens.flatten_all()?, 0)?; // [b*t, d]
        if let Some(wpe) = &self.wpe {
            x = (x + wpe.index_select(&positions.flatten_all()?, 0)?)?;
        }
        let rope = self.rope.as_ref().map(|r| r.at(positions)).transpose()?;
        for (i, block) in self.blocks.iter().enumerate() {
            let layer_cache = cache.as_deref_mut().map(|c| c.layer(i));
            x = match (block, &rope) {
                (AnyBlock::Gpt2(block), _) => block.forward(&x, b, &layer_mask, layer_cache)?,
                (AnyBlock::Llama(block), Some(rope)) => {
                    block.forward(&x, b, &layer_mask, layer_cache, rope)?
                }
                (AnyBlock::Llama(_), None) => unreachable!("llama blocks come with rotary tables"),
            };
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

    /// Next-token logits `[n, vocab]` from hidden states `[n, d]` (the raw head, as in transformers).
    pub fn lm_logits_2d(&self, hidden: &Tensor) -> Result<Tensor> {
        hidden.matmul(&self.lm_head.as_ref().unwrap_or(&self.wte).t()?)
    }

    /// The policy's next-token logits `[n, vocab]`: the raw head with the
    /// tokens it never emits at -1e30. Sampling, scoring and training all read these.
    pub fn policy_logits_2d(&self, hidden: &Tensor) -> Result<Tensor> {
        let logits = self.lm_logits_2d(hidden)?;
        match &self.never_emitted {
            Some(mask) => logits.broadcast_add(mask),
            None => Ok(logits),
        }
    }

    /// [`Transformer::policy_logits_2d`] for hidden states `[b, t, d]` -> `[b, t, vocab]`.
    pub fn policy_logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.policy_logits_2d(&hidden.flatten_to(1)?)?.reshape((
            hidden.dim(0)?,
            hidden.dim(1)?,
            self.config.vocab_size,
        ))
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
