//! A decoder-only transformer of either family, GPT-2 ([`gpt2`]) or Llama
//! ([`llama`]), each in its own file, with an LM head and a scalar head (the
//! value head for PPO, the reward head for reward models).
//!
//! Parameter names, shapes and initialisations are written once, where each
//! layer asks its `VarBuilder` for a weight; [`parameter_specs`] lists them by
//! building the network over a backend that only writes down what it is asked.

mod gpt2;
mod llama;

use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use super::cache::KvCache;
use super::config::{Arch, ModelConfig};
use super::ops;

/// How a parameter starts out before training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Normal(f64),
    Const(f64),
}

/// One parameter of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// Its name in checkpoints (Hugging Face's, for either family).
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// Every parameter of the network, in the order fresh weights are drawn: the
/// single source of truth for init, loading and checkpoint validation.
pub fn parameter_specs(c: &ModelConfig) -> Vec<ParamSpec> {
    let recorder = Recorder::default();
    let vb = VarBuilder::from_backend(Box::new(recorder.clone()), dtype(), Device::Cpu);
    // Placeholders are zero-stride views of one scalar: this allocates nothing
    // the size of a weight, and no step can fail for a validated config.
    Transformer::new(c, vb).expect("building over placeholders cannot fail");
    let specs = recorder.0.lock().expect("recorder lock").clone();
    specs
}

impl ModelConfig {
    /// Number of parameters (a tied LM head counted once), counted from
    /// [`parameter_specs`]; here rather than in `config.rs` so the config
    /// stays below the network that reads it.
    pub fn n_params(&self) -> usize {
        parameter_specs(self)
            .iter()
            .map(|p| p.shape.iter().product::<usize>())
            .sum()
    }
}

/// A backend that hands out placeholders and writes down every parameter asked for.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<ParamSpec>>>);

impl SimpleBackend for Recorder {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        hint: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let init = match hint {
            candle_nn::Init::Const(c) => Init::Const(c),
            candle_nn::Init::Randn { stdev, .. } => Init::Normal(stdev),
            other => candle_core::bail!("parameter {name}: unsupported initialisation {other:?}"),
        };
        self.0.lock().expect("recorder lock").push(ParamSpec {
            name: name.to_string(),
            shape: shape.dims().to_vec(),
            init,
        });
        Tensor::zeros((), dtype, dev)?.broadcast_as(shape)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("parameter {name}: asked for without a shape")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

fn normal(std: f64) -> candle_nn::Init {
    candle_nn::Init::Randn {
        mean: 0.0,
        stdev: std,
    }
}

fn one() -> candle_nn::Init {
    candle_nn::Init::Const(1.0)
}

fn zero() -> candle_nn::Init {
    candle_nn::Init::Const(0.0)
}

/// What each family builds; the scalar head is added by [`Transformer::new`].
struct Parts {
    wte: Tensor, // [vocab, d]; also the LM head when tied
    positions: Positions,
    blocks: Vec<AnyBlock>,
    ln_f: Norm,
    lm_head: Option<Tensor>, // [vocab, d] when untied
}

/// How a family encodes positions.
#[derive(Clone, Debug)]
enum Positions {
    /// GPT-2's learned table `[n_ctx, d]`, added to the embeddings.
    Learned(Tensor),
    /// Llama's rotary tables, applied to queries and keys in every block.
    Rotary(llama::Rope),
}

/// `y = x W + b` with `W: [in, out]` (GPT-2's Conv1D).
#[derive(Clone, Debug)]
struct Conv1D {
    weight: Tensor, // [in, out]
    bias: Tensor,   // [out]
}

impl Conv1D {
    fn new(n_in: usize, n_out: usize, std: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints((n_in, n_out), "weight", normal(std))?,
            bias: vb.get_with_hints(n_out, "bias", zero())?,
        })
    }

    /// `x: [n, in]` -> `[n, out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        ops::add_bias(&ops::matmul(x, &self.weight)?, &self.bias)
    }

    fn detached(&self) -> Self {
        Self {
            weight: self.weight.detach(),
            bias: self.bias.detach(),
        }
    }
}

/// The final norm of either family.
#[derive(Clone, Debug)]
enum Norm {
    Layer(gpt2::LayerNorm),
    Rms(llama::RmsNorm),
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
        LayerMask::None => ops::matmul(&ops::softmax_last_dim(&ops::matmul(q, &k.t()?)?)?, v),
        LayerMask::Causal => ops::matmul(&ops::causal_softmax(&ops::matmul(q, &k.t()?)?)?, v),
        LayerMask::Bias(m) => attention(q, k, v, m),
        LayerMask::Decode(pads) => {
            let s = k.dim(2)?;
            attention(q, k, v, &bias(b, 1, s, s - 1, pads, q.device())?)
        }
    }
}

/// A block of either family.
#[derive(Clone, Debug)]
enum AnyBlock {
    Gpt2(gpt2::Block),
    Llama(llama::Block),
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
    let scores = ops::matmul(q, &k.t()?)?.broadcast_add(bias)?; // [b, h, t, s]
    ops::matmul(&ops::softmax_last_dim(&scores)?, v)
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
pub struct Transformer {
    config: ModelConfig,
    wte: Tensor, // [vocab, d]; also the LM head when tied
    positions: Positions,
    blocks: Vec<AnyBlock>,
    ln_f: Norm,
    lm_head: Option<Tensor>, // [vocab, d] when untied
    scalar_head: Conv1D,     // [d, 1]
    /// `[vocab]`: 0, or -1e30 (no mass) for tokens the policy never emits (see [`Transformer::never_emit`]).
    never_emitted: Option<Tensor>,
    /// `[vocab]`: 1, or 0 for tokens only an environment writes (see [`Transformer::observe`]).
    chosen: Option<Tensor>,
}

impl Transformer {
    pub fn new(config: &ModelConfig, vb: VarBuilder) -> Result<Self> {
        let parts = match config.arch {
            Arch::Gpt2 => gpt2::parts(config, &vb)?,
            Arch::Llama => llama::parts(config, &vb)?,
        };
        let d = config.d_model;
        let head_std = 1.0 / (d as f64 + 1.0).sqrt();
        Ok(Self {
            config: config.clone(),
            wte: parts.wte,
            positions: parts.positions,
            blocks: parts.blocks,
            ln_f: parts.ln_f,
            lm_head: parts.lm_head,
            scalar_head: Conv1D::new(d, 1, head_std, vb.pp("scalar_head"))?,
            never_emitted: None,
            chosen: None,
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

    /// Tokens only an environment writes into a completion (see `model::Environment`):
    /// their teacher-forced log-probability is 0, as sampling records it, so
    /// every loss, ratio and KL is over the tokens the policy chose.
    pub fn observe(&mut self, ids: &[u32]) -> Result<()> {
        let v = self.config.vocab_size;
        let mut chosen = vec![1f32; v];
        for &id in ids.iter().filter(|&&id| (id as usize) < v) {
            chosen[id as usize] = 0.0;
        }
        self.chosen = (!ids.is_empty())
            .then(|| Tensor::from_vec(chosen, v, self.device()))
            .transpose()?;
        Ok(())
    }

    /// `[n]`: 1 where the target token is the policy's choice, 0 where an
    /// environment wrote it; `None` when no token is written by one.
    pub fn chosen(&self, targets: &Tensor) -> Result<Option<Tensor>> {
        self.chosen
            .as_ref()
            .map(|c| c.index_select(&targets.flatten_all()?, 0))
            .transpose()
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
            positions: match &self.positions {
                Positions::Learned(wpe) => Positions::Learned(wpe.detach()),
                Positions::Rotary(rope) => Positions::Rotary(rope.clone()),
            },
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
            chosen: self.chosen.clone(),
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
        // Each row is held to the context by its own positions: a left-padded
        // row is shorter than the batch by its padding.
        let last = match positions.elem_count() {
            0 => 0,
            _ => positions.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize,
        };
        if last >= self.config.n_ctx {
            candle_core::bail!(
                "position {last} is past the model's context of {}",
                self.config.n_ctx
            );
        }
        let layer_mask = layer_mask(mask, b, t, offset, self.device())?;
        // The residual stream stays [b*t, d] throughout: every reshape would be a
        // graph node, and each node costs two full passes in candle's backward.
        let mut x = self.wte.index_select(&tokens.flatten_all()?, 0)?; // [b*t, d]
        let rope = match &self.positions {
            Positions::Learned(wpe) => {
                x = (x + wpe.index_select(&positions.flatten_all()?, 0)?)?;
                None
            }
            Positions::Rotary(rope) => Some(rope.at(positions)?),
        };
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
        ops::matmul(hidden, &self.lm_head.as_ref().unwrap_or(&self.wte).t()?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ops::{with_path, OpsPath};

    /// Decoding attention over a cache, each query head group sharing a
    /// key/value head, through the fused kernel and through the composite path
    /// (repeated heads, an additive mask, softmax, matmul) other devices take.
    #[test]
    fn decode_attention_gives_the_same_through_the_composite_path() {
        let (b, h, hk, s, dh) = (3, 4, 2, 6, 8);
        let values = |n: usize, f: f32| {
            Tensor::arange(0f32, n as f32, &Device::Cpu)
                .unwrap()
                .affine(f as f64, 0.1)
                .unwrap()
                .sin()
                .unwrap()
        };
        let q = values(b * h * dh, 0.37).reshape((b, h, 1, dh)).unwrap();
        // Views into a longer cache, as sampling hands them over.
        let cache = |f| {
            values(b * hk * (s + 2) * dh, f)
                .reshape((b, hk, s + 2, dh))
                .unwrap()
                .narrow(2, 0, s)
                .unwrap()
        };
        let (k, v) = (cache(0.53), cache(0.71));
        let pads = [0, 2, 5];
        let [fused, composite] = [OpsPath::Fused, OpsPath::Composite].map(|path| {
            with_path(path, || {
                attend(&q, &k, &v, &LayerMask::Decode(pads.to_vec()), b).unwrap()
            })
        });
        assert_eq!(fused.dims(), [b, h, 1, dh]);
        assert_eq!(composite.dims(), [b, h, 1, dh]);
        let d = (fused - composite)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "decode attention differs by {d}");
    }
}
