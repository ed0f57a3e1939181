//! The policy network and everything that runs it: the transformer, its KV
//! cache, batched sampling, teacher-forced scoring and checkpoints.

pub mod batch;
pub mod cache;
pub mod checkpoint;
pub mod config;
pub mod environment;
pub mod ops;
pub mod rope;
pub mod sample;
pub mod transformer;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand_distr::{Distribution, Normal};

pub use batch::SequenceBatch;
pub use candle_core::Device;
pub use config::{Arch, ModelConfig, RopeScaling};
pub use environment::Environment;
pub use transformer::{Mask, Transformer};

use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tokenize::Tokenizer;
use transformer::{parameter_specs, Init, ParamSpec};

/// A transformer with its tokenizer: a policy, a reference policy or a reward model.
pub struct Model {
    config: ModelConfig,
    tokenizer: Arc<dyn Tokenizer>,
    /// Train only the last this-many blocks (and the final norm and scalar head); `None`: everything.
    train_last: Option<usize>,
    /// Owns the trainable variables (empty for a frozen model).
    varmap: VarMap,
    /// The weights that are not variables (all of a frozen model's).
    frozen: HashMap<String, Tensor>,
    /// Tracks gradients through the variables (same as `eval_net` when frozen).
    train_net: Transformer,
    /// The same weights outside the autograd graph, for sampling and scoring.
    eval_net: Transformer,
    /// The environment that writes into completions as they are sampled, if any.
    environment: Option<Arc<dyn Environment>>,
    /// The tokens only that environment writes (none without one).
    observed: Vec<u32>,
}

impl Model {
    /// Fresh weights drawn from `rng` (never candle's unseeded generator).
    pub fn init(
        config: &ModelConfig,
        tokenizer: Arc<dyn Tokenizer>,
        rng: &mut Rng,
        device: &Device,
    ) -> Result<Self> {
        let config = config.resolved(tokenizer.vocab_size())?;
        let mut tensors = HashMap::new();
        for ParamSpec { name, shape, init } in parameter_specs(&config) {
            let n: usize = shape.iter().product();
            let values: Vec<f32> = match init {
                Init::Const(c) => vec![c as f32; n],
                Init::Normal(std) => {
                    let normal = Normal::new(0.0f32, std as f32)
                        .map_err(|e| Error::invalid("model.init_std", e.to_string()))?;
                    (0..n).map(|_| normal.sample(rng)).collect()
                }
            };
            tensors.insert(name, Tensor::from_vec(values, shape, device)?);
        }
        Self::from_tensors(&config, tokenizer, tensors, true)
    }

    /// Build from named tensors (a checkpoint), checking every name and shape.
    /// `trainable` makes the weights variables an optimiser can update.
    pub fn from_tensors(
        config: &ModelConfig,
        tokenizer: Arc<dyn Tokenizer>,
        tensors: HashMap<String, Tensor>,
        trainable: bool,
    ) -> Result<Self> {
        Self::build(config, tokenizer, tensors, trainable, None, None)
    }

    /// Build the network over `tensors`; when `trainable`, the parameters
    /// `train_last` selects become variables and the rest stay plain tensors
    /// (no gradients, no optimiser state).
    fn build(
        config: &ModelConfig,
        tokenizer: Arc<dyn Tokenizer>,
        mut tensors: HashMap<String, Tensor>,
        trainable: bool,
        train_last: Option<usize>,
        environment: Option<Arc<dyn Environment>>,
    ) -> Result<Self> {
        // Every process that builds a model does tensor work: keep its freed buffers.
        crate::runtime::keep_freed_memory();
        config.validate()?;
        if tokenizer.vocab_size() > config.vocab_size {
            return Err(Error::Mismatch(format!(
                "tokenizer has {} tokens but the model's vocabulary has {}",
                tokenizer.vocab_size(),
                config.vocab_size
            )));
        }
        let device = tensors
            .values()
            .next()
            .map(|t| t.device().clone())
            .unwrap_or(Device::Cpu);
        let varmap = VarMap::new();
        let mut plain = HashMap::new();
        // What the network reads: variables' own tensors (so gradients reach them) and plain ones.
        let mut net = HashMap::new();
        for ParamSpec { name, shape, .. } in parameter_specs(config) {
            let t = tensors
                .remove(&name)
                .ok_or_else(|| Error::Mismatch(format!("tensor `{name}` is missing")))?;
            if t.dims() != shape.as_slice() {
                return Err(Error::Mismatch(format!(
                    "tensor `{name}` has shape {:?}, the config expects {shape:?}",
                    t.dims()
                )));
            }
            let t = t.to_dtype(transformer::dtype())?;
            if trainable && is_trained(config, train_last, &name) {
                let var = Var::from_tensor(&t)?;
                net.insert(name.clone(), var.as_tensor().clone());
                varmap
                    .data()
                    .lock()
                    .expect("fresh varmap")
                    .insert(name, var);
            } else {
                net.insert(name.clone(), t.clone());
                plain.insert(name, t);
            }
        }
        let vb = VarBuilder::from_tensors(net, transformer::dtype(), &device);
        let mut train_net = Transformer::new(config, vb)?;
        let observed = environment
            .as_ref()
            .map(|env| env.observed_tokens())
            .unwrap_or_default();
        train_net.observe(&observed)?;
        train_net.never_emit(&[tokenizer.never_sampled(), observed.clone()].concat())?;
        let eval_net = train_net.detached();
        Ok(Self {
            config: config.clone(),
            tokenizer,
            train_last,
            varmap,
            frozen: plain,
            train_net,
            eval_net,
            environment,
            observed,
        })
    }

    /// The same weights (shared, not copied) run in closed loop with `environment`:
    /// sampling writes what it observes into each completion, the policy never
    /// emits those tokens, and they carry no log-probability. Copies keep it.
    pub fn with_environment(self, environment: Arc<dyn Environment>) -> Result<Model> {
        let (tokenizer, train_last) = (self.tokenizer.clone(), self.train_last);
        self.rebuilt(tokenizer, train_last, Some(environment))
    }

    /// The same weights (shared), trainable as before, rebuilt with these settings.
    fn rebuilt(
        self,
        tokenizer: Arc<dyn Tokenizer>,
        train_last: Option<usize>,
        environment: Option<Arc<dyn Environment>>,
    ) -> Result<Model> {
        let trainable = !self.vars().is_empty();
        let tensors = self.tensors()?.into_iter().collect();
        Self::build(
            &self.config,
            tokenizer,
            tensors,
            trainable,
            train_last,
            environment,
        )
    }

    /// How many of `completion`'s tokens the policy chose (the rest its environment wrote).
    pub fn chosen_tokens(&self, completion: &[u32]) -> usize {
        completion
            .iter()
            .filter(|t| !self.observed.contains(t))
            .count()
    }

    /// The tokens only this policy's environment writes: it never emits them
    /// (empty without an environment).
    pub fn observed_tokens(&self) -> &[u32] {
        &self.observed
    }

    /// The environment that writes into this policy's completions, if any.
    pub fn environment(&self) -> Option<&dyn Environment> {
        self.environment.as_deref()
    }

    /// The same weights (shared, not copied) behind another tokenizer with the same ids,
    /// e.g. one that renders prompts through the model's chat template.
    pub fn with_tokenizer(self, tokenizer: Arc<dyn Tokenizer>) -> Result<Model> {
        let (train_last, environment) = (self.train_last, self.environment.clone());
        self.rebuilt(tokenizer, train_last, environment)
    }

    /// The same weights, training only the last `k` blocks, the final layer
    /// norm and the scalar head from now on (GPT-2's LM head is the token
    /// embedding, which stays frozen); copies made with [`Model::deep_copy`]
    /// keep the choice. Frozen weights are shared with every copy, not duplicated.
    pub fn train_last_blocks(self, k: usize) -> Result<Model> {
        if k > self.config.n_layer {
            return Err(Error::invalid(
                "train_last_blocks",
                format!(
                    "{k} is more than the model's {} blocks",
                    self.config.n_layer
                ),
            ));
        }
        let (tokenizer, environment) = (self.tokenizer.clone(), self.environment.clone());
        self.rebuilt(tokenizer, Some(k), environment)
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub fn tokenizer(&self) -> &dyn Tokenizer {
        self.tokenizer.as_ref()
    }

    pub fn tokenizer_arc(&self) -> Arc<dyn Tokenizer> {
        self.tokenizer.clone()
    }

    pub fn device(&self) -> &Device {
        self.eval_net.device()
    }

    /// The network that records gradients (for training).
    pub fn train_net(&self) -> &Transformer {
        &self.train_net
    }

    /// The network outside the autograd graph (for sampling and scoring).
    pub fn eval_net(&self) -> &Transformer {
        &self.eval_net
    }

    /// Trainable variables, sorted by name.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let data = self.varmap.data().lock().expect("varmap lock");
        let mut vars: Vec<_> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }

    /// Current weights by name, in a stable order (detached, sharing storage).
    pub fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        let vars = self.varmap.data().lock().expect("varmap lock");
        parameter_specs(&self.config)
            .into_iter()
            .map(|ParamSpec { name, .. }| {
                let t = vars
                    .get(&name)
                    .map(|v| v.as_tensor().detach())
                    .or_else(|| self.frozen.get(&name).cloned())
                    .ok_or_else(|| Error::Mismatch(format!("tensor `{name}` is missing")))?;
                Ok((name, t))
            })
            .collect()
    }

    /// An independent copy of the weights (a reference policy, a fork to train).
    /// Weights frozen by [`Model::train_last_blocks`] never change, so the copy
    /// shares them instead of holding a second copy.
    pub fn deep_copy(&self, trainable: bool) -> Result<Model> {
        let tensors = self
            .tensors()?
            .into_iter()
            .map(|(n, t)| {
                let shared =
                    self.train_last.is_some() && !is_trained(&self.config, self.train_last, &n);
                Ok((n, if shared { t } else { t.copy()? }))
            })
            .collect::<Result<HashMap<_, _>>>()?;
        Self::build(
            &self.config,
            self.tokenizer.clone(),
            tensors,
            trainable,
            self.train_last,
            self.environment.clone(),
        )
    }

    /// Teacher-forced log-probabilities `[b, t]` of each target token; multiply by
    /// `batch.completion_mask` to keep the completion's.
    pub fn target_logprobs(&self, net: &Transformer, batch: &SequenceBatch) -> Result<Tensor> {
        let hidden = net.hidden(&batch.input, &batch.positions, Mask::Causal, None)?;
        target_logprobs(net, &hidden, &batch.target)
    }

    /// Per-token log-probabilities of each completion under this model (no gradient).
    pub fn score_completions(&self, batch: &SequenceBatch) -> Result<Vec<Vec<f32>>> {
        let lp = self.target_logprobs(&self.eval_net, batch)?;
        Ok(batch.completion_values(&lp)?)
    }
}

/// Whether parameter `name` is trained when only the last `train_last` blocks are.
fn is_trained(config: &ModelConfig, train_last: Option<usize>, name: &str) -> bool {
    let Some(k) = train_last else { return true };
    if let Some(rest) = name
        .strip_prefix("h.")
        .or_else(|| name.strip_prefix("layers."))
    {
        let block: usize = rest
            .split('.')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        return block + k >= config.n_layer;
    }
    // The final norm, the scalar head, and an untied LM head.
    ["ln_f.", "norm.", "scalar_head.", "lm_head."]
        .iter()
        .any(|p| name.starts_with(p))
}

/// `log p(target_t | input_<=t)` `[b, t]` from hidden states `[b, t, d]`;
/// 0 where an environment wrote the target (see [`Environment`]).
pub fn target_logprobs(net: &Transformer, hidden: &Tensor, target: &Tensor) -> Result<Tensor> {
    let (b, t, _) = hidden.dims3()?;
    let logits = net.policy_logits_2d(&hidden.flatten_to(1)?)?; // [b*t, v]
    let mut lp = ops::target_logprobs(&logits, &target.flatten_all()?)?; // [b*t]
    if let Some(chosen) = net.chosen(target)? {
        lp = (lp * chosen)?;
    }
    Ok(lp.reshape((b, t))?)
}

#[cfg(test)]
mod bf16_tests;
#[cfg(test)]
pub(crate) mod tests;
