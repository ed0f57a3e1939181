//! The transformer's shape. Defaults are the "default model size" the
//! benchmarks and the bundled experiments use.

use serde::{Deserialize, Serialize};

pub use super::rope::RopeScaling;
use crate::error::{Error, Result};

/// The most weights a model may have (f32: 32 GB): a bound that turns a typo
/// into an error instead of an allocation that takes the machine down.
pub const MAX_PARAMS: u128 = 8_000_000_000;

/// The memory assumed where the machine's cannot be read (`/proc/meminfo`).
pub const ASSUMED_MEMORY_BYTES: u128 = 64 << 30;

/// The machine's memory: what one batch's activations may need at most (by
/// [`ModelConfig::batch_bytes`]), so a typo is refused before training starts.
pub fn machine_memory() -> u128 {
    static MEMORY: std::sync::OnceLock<u128> = std::sync::OnceLock::new();
    *MEMORY.get_or_init(|| {
        let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        info.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u128>().ok())
            .map_or(ASSUMED_MEMORY_BYTES, |kib| kib * 1024)
    })
}

/// Which family of weights and names the network follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// GPT-2: learned positions, LayerNorm, GELU MLP, fused QKV with `[in, out]` weights.
    #[default]
    Gpt2,
    /// Llama family (Llama, Qwen2, SmolLM): rotary positions, RMSNorm, grouped-query
    /// attention, SwiGLU MLP, `[out, in]` weights, tied or untied LM head.
    Llama,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Weight layout and parameter names (`gpt2`).
    pub arch: Arch,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads; `d_model` must be a multiple of it.
    pub n_head: usize,
    /// Longest sequence (BOS + prompt + completion + EOS) in tokens.
    pub n_ctx: usize,
    /// Hidden width of the MLP; 0 means 4 x `d_model`.
    pub d_ff: usize,
    /// Vocabulary size; 0 means "take it from the tokenizer".
    pub vocab_size: usize,
    /// Epsilon of the layer norms.
    pub layer_norm_eps: f64,
    /// Standard deviation of the initial weights (GPT-2: 0.02).
    pub init_std: f64,
    /// Llama: key/value heads (grouped-query attention); 0 means `n_head`.
    pub n_kv_head: usize,
    /// Llama: base of the rotary position frequencies.
    pub rope_theta: f64,
    /// Llama: how the rotary frequencies are scaled for long contexts (none: unscaled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    /// The LM head is the token embedding (GPT-2 always; Llama when its config ties them).
    pub tie_embeddings: bool,
    /// Llama: biases on the query/key/value projections (Qwen2; Llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Llama: a bias on the attention's output projection (Llama's `attention_bias`).
    pub o_bias: bool,
    /// Llama: the width of one attention head; 0 means `d_model / n_head`
    /// (Qwen3 and Mistral-Nemo set it so that `head_dim * n_head != d_model`).
    #[serde(skip_serializing_if = "is_zero")]
    pub head_dim: usize,
    /// Llama: an RMSNorm over each query and key head before the rotation (Qwen3).
    #[serde(skip_serializing_if = "is_false")]
    pub qk_norm: bool,
    /// GPT-2: attention scores divided by `sqrt(head_dim)` (`scale_attn_weights`,
    /// true in every released GPT-2).
    #[serde(skip_serializing_if = "is_true")]
    pub scale_attn: bool,
    /// Llama: a sliding attention window shorter than the model's positions; 0: none.
    /// `n_ctx` is then the window, within which sliding attention is full attention,
    /// and sampling refuses what would run past it.
    #[serde(skip_serializing_if = "is_zero")]
    pub sliding_window: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            arch: Arch::Gpt2,
            n_layer: 3,
            d_model: 128,
            n_head: 4,
            n_ctx: 128,
            d_ff: 0,
            vocab_size: 0,
            layer_norm_eps: 1e-5,
            init_std: 0.02,
            n_kv_head: 0,
            rope_theta: 10000.0,
            rope_scaling: None,
            tie_embeddings: true,
            qkv_bias: false,
            o_bias: false,
            head_dim: 0,
            qk_norm: false,
            scale_attn: true,
            sliding_window: 0,
        }
    }
}

impl ModelConfig {
    /// The width of one attention head: `head_dim`, or `d_model / n_head` when it is 0.
    pub fn head_dim(&self) -> usize {
        if self.head_dim == 0 {
            self.d_model / self.n_head
        } else {
            self.head_dim
        }
    }

    /// The width of all query heads together (`d_model` unless `head_dim` says otherwise).
    pub fn attention_width(&self) -> usize {
        self.n_head * self.head_dim()
    }

    /// Key/value heads: `n_kv_head`, or `n_head` when it is 0.
    pub fn kv_heads(&self) -> usize {
        if self.n_kv_head == 0 {
            self.n_head
        } else {
            self.n_kv_head
        }
    }

    pub fn ff_dim(&self) -> usize {
        if self.d_ff == 0 {
            4 * self.d_model
        } else {
            self.d_ff
        }
    }

    /// Fill in the vocabulary size from a tokenizer and check the shape makes sense.
    pub fn resolved(&self, vocab_size: usize) -> Result<Self> {
        let mut c = self.clone();
        if c.vocab_size == 0 {
            c.vocab_size = vocab_size;
        } else if c.vocab_size < vocab_size {
            return Err(Error::invalid(
                "model.vocab_size",
                format!(
                    "{} is smaller than the tokenizer's vocabulary ({vocab_size})",
                    c.vocab_size
                ),
            ));
        }
        c.validate()?;
        Ok(c)
    }

    /// Check a complete config (vocabulary size known).
    /// (The largest model accepted is [`MAX_PARAMS`] weights.)
    pub fn validate(&self) -> Result<()> {
        if self.vocab_size == 0 {
            return Err(Error::invalid("model.vocab_size", "must be at least 1"));
        }
        self.validate_shape()
    }

    /// Bytes of activations a batch of `batch` full-length sequences needs, at
    /// least: per token, every block's residual, attention and MLP values (about
    /// 16 x `d_model` floats) and the logits, in f32. (A vocabulary still to
    /// come from the tokenizer counts as 256.)
    pub fn batch_bytes(&self, batch: usize) -> u128 {
        let per_token =
            self.n_layer as u128 * 16 * self.d_model as u128 + self.vocab_size.max(256) as u128;
        batch as u128 * self.n_ctx as u128 * per_token * 4
    }

    /// Refuse a batch size (the key `field`) whose activations would need more
    /// than the machine's memory ([`machine_memory`]).
    pub fn check_batch(&self, field: &str, batch: usize) -> Result<()> {
        let bytes = self.batch_bytes(batch);
        let memory = machine_memory();
        if bytes > memory {
            let gib = |b: u128| b as f64 / f64::from(1u32 << 30);
            return Err(Error::invalid(
                field,
                format!(
                    "{batch} sequences of {} tokens need about {:.1} GiB of activations with this model; this machine has {:.1} GiB",
                    self.n_ctx,
                    gib(bytes),
                    gib(memory)
                ),
            ));
        }
        Ok(())
    }

    /// Check everything but the vocabulary size (which may still come from the tokenizer).
    pub fn validate_shape(&self) -> Result<()> {
        let positive = [
            ("model.n_layer", self.n_layer),
            ("model.d_model", self.d_model),
            ("model.n_head", self.n_head),
            ("model.n_ctx", self.n_ctx),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(Error::invalid(field, "must be at least 1"));
            }
        }
        // Bounds far above any model this program trains, checked before anything is allocated.
        let bounded = [
            ("model.n_layer", self.n_layer, 1 << 10),
            ("model.d_model", self.d_model, 1 << 16),
            ("model.n_head", self.n_head, 1 << 10),
            ("model.n_ctx", self.n_ctx, 1 << 20),
            ("model.d_ff", self.d_ff, 1 << 18),
            ("model.head_dim", self.head_dim, 1 << 12),
            ("model.vocab_size", self.vocab_size, 1 << 22),
        ];
        for (field, v, max) in bounded {
            if v > max {
                return Err(Error::invalid(field, format!("{v} is more than {max}")));
            }
        }
        // Weights: embeddings (and positions) plus, per layer, attention and MLP.
        let (d, f, v, l, t) = (
            self.d_model as u128,
            self.ff_dim() as u128,
            self.vocab_size as u128,
            self.n_layer as u128,
            self.n_ctx as u128,
        );
        let params = 2 * v * d + t * d + l * (4 * d * d + 3 * d * f);
        if params > MAX_PARAMS {
            return Err(Error::invalid(
                "model",
                format!("about {params} parameters, more than the {MAX_PARAMS} this program will allocate"),
            ));
        }
        if self.head_dim == 0 && self.d_model % self.n_head != 0 {
            return Err(Error::invalid(
                "model.n_head",
                format!(
                    "d_model ({}) is not a multiple of n_head ({})",
                    self.d_model, self.n_head
                ),
            ));
        }
        if let Some(s) = &self.rope_scaling {
            s.validate()?;
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps.is_finite()) {
            return Err(Error::invalid(
                "model.layer_norm_eps",
                "must be a positive number",
            ));
        }
        if !(self.init_std > 0.0 && self.init_std.is_finite()) {
            return Err(Error::invalid(
                "model.init_std",
                format!("{}: must be a positive number", self.init_std),
            ));
        }
        if self.n_head % self.kv_heads() != 0 {
            return Err(Error::invalid(
                "model.n_kv_head",
                format!(
                    "n_head ({}) is not a multiple of n_kv_head ({})",
                    self.n_head,
                    self.kv_heads()
                ),
            ));
        }
        match self.arch {
            Arch::Gpt2
                if self.kv_heads() != self.n_head
                    || !self.tie_embeddings
                    || self.qkv_bias
                    || self.o_bias
                    || self.head_dim != 0
                    || self.qk_norm =>
            {
                Err(Error::invalid(
                    "model.arch",
                    "gpt2 has as many key/value heads as heads of d_model / n_head, a tied LM head, fused QKV biases and no query/key norms",
                ))
            }
            Arch::Llama if !self.scale_attn => Err(Error::invalid(
                "model.scale_attn",
                "llama always scales attention scores",
            )),
            Arch::Llama if self.head_dim() % 2 != 0 || !(self.rope_theta > 0.0) => Err(Error::invalid(
                "model.arch",
                "llama needs an even head dimension and a positive rope_theta",
            )),
            _ => Ok(()),
        }
    }

    /// Forward-pass FLOPs for `tokens` tokens attending over `context` keys each
    /// (matmuls only, 2 FLOPs per multiply-add; the usual convention).
    pub fn forward_flops(&self, tokens: usize, context: usize) -> f64 {
        let (d, f, v, l) = (
            self.d_model as f64,
            self.ff_dim() as f64,
            self.vocab_size as f64,
            self.n_layer as f64,
        );
        let kv = (self.kv_heads() * self.head_dim()) as f64;
        let q = self.attention_width() as f64;
        let per_token_weights = match self.arch {
            Arch::Gpt2 => l * (3.0 * d * d + d * d + 2.0 * d * f) + d * v,
            Arch::Llama => l * (2.0 * d * q + 2.0 * d * kv + 3.0 * d * f) + d * v,
        };
        let per_token_attention = l * 2.0 * context as f64 * d;
        2.0 * tokens as f64 * (per_token_weights + per_token_attention)
    }
}
