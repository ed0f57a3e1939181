//! Tests of `mod`.

use super::sample::{sample, SamplingConfig};
use super::*;
use crate::rng;
use crate::tokenize::CharTokenizer;
use candle_core::Device;

/// A model of `cfg` with the ASCII tokenizer, initialised from `seed`.
fn tiny(cfg: ModelConfig, seed: u64) -> Model {
    Model::init(
        &cfg,
        Arc::new(CharTokenizer::ascii()),
        &mut rng::stream(seed, "init"),
        &Device::Cpu,
    )
    .unwrap()
}

/// The tiny models' shape: 2 blocks of width 32, 4 heads, 40 positions.
fn tiny_config() -> ModelConfig {
    ModelConfig {
        n_layer: 2,
        d_model: 32,
        n_head: 4,
        n_ctx: 40,
        ..Default::default()
    }
}

/// A tiny Llama whose 4 query heads share `kv_heads` key/value heads.
pub(crate) fn tiny_llama(kv_heads: usize, seed: u64) -> Model {
    let cfg = ModelConfig {
        arch: Arch::Llama,
        n_kv_head: kv_heads,
        ..tiny_config()
    };
    tiny(cfg, seed)
}

pub(crate) fn tiny_model(seed: u64) -> Model {
    tiny(tiny_config(), seed)
}

/// (prompt, completion) texts as one padded batch of `model`'s tokens.
pub(crate) fn text_batch(model: &Model, texts: &[(&str, &str)]) -> SequenceBatch {
    let tok = model.tokenizer();
    let seqs: Vec<(Vec<u32>, Vec<u32>)> = texts
        .iter()
        .map(|(p, c)| {
            (
                tok.encode_prompt(p).unwrap(),
                tok.encode_completion(c).unwrap(),
            )
        })
        .collect();
    let pairs: Vec<(&[u32], &[u32])> = seqs
        .iter()
        .map(|(p, c)| (p.as_slice(), c.as_slice()))
        .collect();
    SequenceBatch::new(&pairs, tok.pad_id(), &Device::Cpu).unwrap()
}

/// Three prompts of different lengths: they exercise the left padding and per-row positions.
fn three_prompts(model: &Model) -> Vec<Vec<u32>> {
    ["Q: 1+1", "Q: 12+345=?", "x"]
        .iter()
        .map(|p| model.tokenizer().encode_prompt(p).unwrap())
        .collect()
}

/// Score `samples` teacher-forced, check every token's log-probability is the
/// one sampling recorded, and give back the batch.
fn assert_scored_as_sampled(
    model: &Model,
    prompts: &[Vec<u32>],
    samples: &[sample::Sample],
) -> SequenceBatch {
    let pairs: Vec<(&[u32], &[u32])> = samples
        .iter()
        .map(|s| (prompts[s.prompt_index].as_slice(), s.tokens.as_slice()))
        .collect();
    let batch = SequenceBatch::new(&pairs, model.tokenizer().pad_id(), &Device::Cpu).unwrap();
    for (s, lp) in samples.iter().zip(model.score_completions(&batch).unwrap()) {
        assert_eq!(s.tokens.len(), lp.len());
        for (a, b) in s.logprobs.iter().zip(&lp) {
            assert!((a - b).abs() < 1e-4, "sampled {a} vs scored {b}");
        }
    }
    batch
}

#[test]
fn cached_sampling_agrees_with_teacher_forced_scoring() {
    let model = tiny_model(1);
    let prompts = three_prompts(&model);
    let cfg = SamplingConfig {
        max_new_tokens: 12,
        batch_size: 4,
        ..Default::default()
    };
    let samples = sample(&model, &prompts, 3, &cfg, &mut rng::stream(0, "s")).unwrap();
    assert_eq!(samples.len(), 9);
    assert_eq!(
        samples.iter().map(|s| s.prompt_index).collect::<Vec<_>>(),
        vec![0, 0, 0, 1, 1, 1, 2, 2, 2]
    );
    assert_scored_as_sampled(&model, &prompts, &samples);
    assert!(samples.iter().all(|s| s.tokens.len() == 12 || s.finished()));
}

#[test]
fn multi_query_llama_caches_one_kv_head_and_samples_what_it_scores() {
    // 4 query heads share 1 key/value head: the cache holds only that head,
    // and the cached decoding path must agree with teacher forcing (which repeats it).
    let model = tiny_llama(1, 4);
    let cache = model.eval_net().new_cache(3, 16).unwrap();
    assert_eq!(
        cache.key_shape(),
        (3, 1, 16, 8),
        "one key/value head cached"
    );
    let tok = model.tokenizer();
    let prompts: Vec<Vec<u32>> = ["Q: 1+1", "Q: 12+345=?"]
        .iter()
        .map(|p| tok.encode_prompt(p).unwrap())
        .collect();
    let samples = sample(
        &model,
        &prompts,
        2,
        &SamplingConfig {
            max_new_tokens: 10,
            ..Default::default()
        },
        &mut rng::stream(0, "s"),
    )
    .unwrap();
    assert_scored_as_sampled(&model, &prompts, &samples);
}

/// A character tokenizer whose padding token is its EOS, as GPT-2's often is.
struct PadIsEos(CharTokenizer);

impl Tokenizer for PadIsEos {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.0.encode(text)
    }
    fn decode(&self, ids: &[u32]) -> String {
        self.0.decode(ids)
    }
    fn vocab_size(&self) -> usize {
        self.0.vocab_size()
    }
    fn bos_id(&self) -> u32 {
        self.0.bos_id()
    }
    fn eos_id(&self) -> u32 {
        self.0.eos_id()
    }
    fn pad_id(&self) -> u32 {
        self.0.eos_id()
    }
    fn spec(&self) -> crate::tokenize::TokenizerSpec {
        self.0.spec()
    }
}

#[test]
fn the_scored_distribution_is_the_sampled_one_and_sums_to_one() {
    // One-token completions: exp(score) over every token the sampler may pick must sum to 1.
    // Scoring with the full softmax (pad and BOS keeping their mass) sums to less.
    let model = tiny_model(5);
    let tok = model.tokenizer();
    let banned = tok.never_sampled();
    assert_eq!(banned.len(), 2, "pad and BOS are never sampled");
    let prompt = tok.encode_prompt("Q: 1+1").unwrap();
    let singles: Vec<Vec<u32>> = (0..tok.vocab_size() as u32)
        .filter(|t| !banned.contains(t))
        .map(|t| vec![t])
        .collect();
    let pairs: Vec<(&[u32], &[u32])> = singles
        .iter()
        .map(|c| (prompt.as_slice(), c.as_slice()))
        .collect();
    let batch = SequenceBatch::new(&pairs, tok.pad_id(), &Device::Cpu).unwrap();
    let total: f64 = model
        .score_completions(&batch)
        .unwrap()
        .iter()
        .map(|lp| (lp[0] as f64).exp())
        .sum();
    assert!(
        (total - 1.0).abs() < 1e-5,
        "mass over sampleable tokens {total}"
    );
}

#[test]
fn eos_is_sampled_when_it_doubles_as_padding() {
    let base = tiny_model(6);
    let tensors = base.tensors().unwrap().into_iter().collect();
    let tok: Arc<dyn Tokenizer> = Arc::new(PadIsEos(CharTokenizer::ascii()));
    assert_eq!(tok.never_sampled(), vec![tok.bos_id()]);
    let model = Model::from_tensors(base.config(), tok.clone(), tensors, false).unwrap();
    let prompt = vec![tok.encode_prompt("Q: 2+2").unwrap()];
    let cfg = SamplingConfig {
        max_new_tokens: 30,
        ..Default::default()
    };
    let samples = sample(&model, &prompt, 200, &cfg, &mut rng::stream(1, "s")).unwrap();
    let finished = samples.iter().filter(|s| s.finished()).count();
    assert!(finished > 10, "{finished} of 200 samples ended with EOS");
    assert!(samples.iter().all(|s| !s.tokens.contains(&tok.bos_id())));
}

#[test]
fn training_the_last_blocks_leaves_the_rest_untouched_and_shared() {
    use crate::train::{OptimConfig, Trainer};
    let model = tiny_model(3).train_last_blocks(1).unwrap();
    let names: Vec<String> = model.vars().into_iter().map(|(n, _)| n).collect();
    assert!(names
        .iter()
        .all(|n| n.starts_with("h.1.") || n.starts_with("ln_f.") || n.starts_with("scalar_head.")));
    assert!(names.iter().any(|n| n.starts_with("h.1.")));
    assert!(tiny_model(3).train_last_blocks(3).is_err());

    let before: HashMap<String, Vec<f32>> = model
        .tensors()
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    let tok = model.tokenizer();
    let seq = (
        tok.encode_prompt("Q: 1+1").unwrap(),
        tok.encode_completion("2.").unwrap(),
    );
    let batch = SequenceBatch::new(
        &[(seq.0.as_slice(), seq.1.as_slice())],
        tok.pad_id(),
        &Device::Cpu,
    )
    .unwrap();
    let mut trainer = Trainer::new(model.vars(), &OptimConfig::default(), 10, "test").unwrap();
    for _ in 0..3 {
        let lp = model.target_logprobs(model.train_net(), &batch).unwrap();
        let loss = (lp * &batch.completion_mask)
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap();
        trainer.step(&loss).unwrap();
    }
    for (name, t) in model.tensors().unwrap() {
        let moved = before[&name] != t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let trained = names.contains(&name);
        // Matrices the LM loss reaches must move (the scalar head is not on its path).
        if trained && t.rank() >= 2 && !name.starts_with("scalar_head") {
            assert!(moved, "{name} was not trained");
        }
        if !trained {
            assert!(!moved, "{name} is frozen but changed");
        }
    }
    // A reference copy shares the frozen weights and copies the trained ones; a fork keeps the choice.
    let reference = model.deep_copy(false).unwrap();
    let id = |m: &Model, n: &str| {
        m.tensors()
            .unwrap()
            .into_iter()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .id()
    };
    assert_eq!(id(&reference, "wte.weight"), id(&model, "wte.weight"));
    assert_ne!(
        id(&reference, "h.1.mlp.c_fc.weight"),
        id(&model, "h.1.mlp.c_fc.weight")
    );
    assert_eq!(model.deep_copy(true).unwrap().vars().len(), names.len());
}

#[test]
fn sampling_is_reproducible_from_the_seed() {
    let model = tiny_model(2);
    let prompts = vec![model.tokenizer().encode_prompt("abc").unwrap()];
    let cfg = SamplingConfig {
        max_new_tokens: 10,
        ..Default::default()
    };
    let a = sample(&model, &prompts, 5, &cfg, &mut rng::stream(9, "s")).unwrap();
    let b = sample(&model, &prompts, 5, &cfg, &mut rng::stream(9, "s")).unwrap();
    let c = sample(&model, &prompts, 5, &cfg, &mut rng::stream(10, "s")).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn backward_through_the_whole_model_matches_finite_differences() {
    check_gradients(&tiny_model(4));
}

#[test]
fn backward_through_a_llama_model_matches_finite_differences() {
    // RMSNorm, rotary positions, SwiGLU (fused kernels on the CPU), grouped-query
    // attention, query/key/value biases and an untied head.
    let cfg = ModelConfig {
        arch: crate::model::Arch::Llama,
        n_layer: 2,
        d_model: 32,
        n_head: 4,
        n_kv_head: 2,
        n_ctx: 40,
        d_ff: 48,
        qkv_bias: true,
        tie_embeddings: false,
        init_std: 0.2,
        ..Default::default()
    };
    let model = Model::init(
        &cfg,
        Arc::new(CharTokenizer::ascii()),
        &mut rng::stream(4, "init"),
        &Device::Cpu,
    )
    .unwrap();
    check_gradients(&model);
}

/// The largest gradient entry of every parameter against a central difference of the SFT loss.
fn check_gradients(model: &Model) {
    let batch = text_batch(
        model,
        &[("Q: 1+2", "3."), ("Q: 40+5", "maybe 45."), ("x", "y")],
    );
    let loss = |m: &Model| crate::train::sft::completion_nll(m, &batch).unwrap();
    let grads = loss(model).backward().unwrap();
    let mut checked = 0;
    for (name, var) in model.vars() {
        let Some(g) = grads.get(var.as_tensor()) else {
            // Only the scalar head is off the LM loss's path; anything else means a cut graph.
            assert!(
                name.starts_with("scalar_head"),
                "no gradient reached {name}"
            );
            continue;
        };
        let g = g.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // The largest gradient entry of each parameter, against a central difference.
        let (i, &gi) = g
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .unwrap();
        if gi.abs() < 1e-3 {
            continue;
        }
        let orig = var
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let eps = 1e-2f32;
        let at = |delta: f32| {
            let mut v = orig.clone();
            v[i] += delta;
            var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            loss(model).to_scalar::<f32>().unwrap()
        };
        let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
        at(0.0);
        assert!(
            (numeric - gi).abs() < 0.05 * gi.abs() + 1e-3,
            "{name}[{i}]: backward {gi}, finite difference {numeric}"
        );
        checked += 1;
    }
    assert!(checked > 20, "checked {checked} parameters");
}

#[test]
fn deep_copy_is_independent_and_frozen_models_have_no_vars() {
    let model = tiny_model(3);
    let frozen = model.deep_copy(false).unwrap();
    assert!(frozen.vars().is_empty());
    let (name, var) = model
        .vars()
        .into_iter()
        .find(|(n, _)| n == "wte.weight")
        .unwrap();
    var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
    let copy = frozen
        .tensors()
        .unwrap()
        .into_iter()
        .find(|(n, _)| *n == name)
        .unwrap()
        .1;
    assert!(
        copy.abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 0.0
    );
}

/// A training step cut into shards gives the same bits at any thread count,
/// and the same loss and update (to rounding) as the step in one piece.
#[test]
fn a_step_cut_by_batch_is_the_same_at_any_thread_count() {
    use crate::train::{sft::completion_nll, sft::sft_step, OptimConfig, Trainer};
    let (one, start) = (tiny_model(4), tiny_model(4));
    let tok = one.tokenizer();
    let encoded: Vec<(Vec<u32>, Vec<u32>)> = (0..20)
        .map(|i| {
            let p = format!("{}+{}", i * 7 % 13, "9".repeat(i % 3 + 1));
            let c = format!("={}", "7".repeat(i % 5 + 1));
            (
                tok.encode_prompt(&p).unwrap(),
                tok.encode_completion(&c).unwrap(),
            )
        })
        .collect();
    let pairs: Vec<(&[u32], &[u32])> = encoded
        .iter()
        .map(|(p, c)| (p.as_slice(), c.as_slice()))
        .collect();
    assert_eq!(crate::runtime::shards(pairs.len()).len(), 3);
    let cfg = OptimConfig {
        warmup_steps: 0,
        ..Default::default()
    };
    let trainer = |m: &Model| Trainer::new(m.vars(), &cfg, 10, "sft").unwrap();
    let weights = |m: &Model| -> Vec<Vec<f32>> {
        m.vars()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    let mut cut = vec![];
    for threads in [1, 2, 3] {
        let m = tiny_model(4);
        let stats = crate::runtime::pool(threads)
            .unwrap()
            .install(|| sft_step(&m, &mut trainer(&m), &pairs, tok.pad_id(), &Device::Cpu))
            .unwrap();
        cut.push((stats.loss, stats.grad_norm, weights(&m)));
    }
    assert!(
        cut[0] == cut[1] && cut[1] == cut[2],
        "thread count changed a step's bits"
    );
    let batch = crate::model::SequenceBatch::new(&pairs, tok.pad_id(), &Device::Cpu).unwrap();
    let whole = trainer(&one)
        .step(&completion_nll(&one, &batch).unwrap())
        .unwrap();
    let (loss, grad_norm, _) = &cut[0];
    assert!((whole.loss - loss).abs() < 1e-5, "{} vs {loss}", whole.loss);
    assert!((whole.grad_norm - grad_norm).abs() < 1e-4 * grad_norm);
    let (mut apart, mut moved) = (0f32, 0f32);
    for ((w1, wc), w0) in weights(&one).iter().zip(&cut[0].2).zip(&weights(&start)) {
        for ((a, c), z) in w1.iter().zip(wc).zip(w0) {
            apart = apart.max((a - c).abs());
            moved = moved.max((a - z).abs());
        }
    }
    assert!(moved > 1e-3, "the step moved the weights ({moved})");
    assert!(apart < 1e-5, "cut and whole steps differ by {apart}");
}

/// Sampling cut by batch keeps prompt order, and the same seed draws the same samples.
#[test]
fn sampling_cut_by_batch_is_reproducible_and_in_prompt_order() {
    let model = tiny_model(2);
    let prompts = three_prompts(&model);
    // 33 rows in one batch: two shards of a sampling batch.
    let cfg = SamplingConfig {
        max_new_tokens: 10,
        batch_size: 33,
        ..Default::default()
    };
    assert_eq!(
        crate::runtime::shards_of(33, crate::runtime::SAMPLE_SHARD_ROWS).len(),
        2
    );
    let run = |seed, threads| {
        crate::runtime::pool(threads)
            .unwrap()
            .install(|| sample(&model, &prompts, 11, &cfg, &mut rng::stream(seed, "s")).unwrap())
    };
    let (x, y, z) = (run(5, 2), run(5, 1), run(6, 2));
    let order: Vec<usize> = x.iter().map(|s| s.prompt_index).collect();
    let expected: Vec<usize> = (0..3).flat_map(|p| [p; 11]).collect();
    assert_eq!(order, expected);
    let tokens = |s: &[sample::Sample]| s.iter().map(|s| s.tokens.clone()).collect::<Vec<_>>();
    assert_eq!(tokens(&x), tokens(&y), "one thread and two draw the same");
    let logprobs = |s: &[sample::Sample]| s.iter().map(|s| s.logprobs.clone()).collect::<Vec<_>>();
    assert_eq!(logprobs(&x), logprobs(&y));
    assert_ne!(tokens(&x), tokens(&z));
    assert!(x.iter().all(|s| s.logprobs.len() == s.tokens.len()));
}

/// Writes `!` and the completion's length so far (a digit) before the first
/// token and after every token the policy picks.
struct Echo(Arc<dyn Tokenizer>);

impl Environment for Echo {
    fn observed_tokens(&self) -> Vec<u32> {
        self.0.encode("!0123456789").unwrap()
    }

    fn observe(&self, prompt: &[u32], completion: &[u32]) -> Vec<u32> {
        assert_eq!(prompt[0], self.0.bos_id());
        let written = format!("!{}", completion.len() % 10);
        self.0.encode(&written).unwrap()
    }
}

#[test]
fn an_environment_writes_between_the_policys_tokens_and_they_carry_no_logprob() {
    let plain = tiny_model(8);
    let tok = plain.tokenizer_arc();
    let model = plain
        .deep_copy(false)
        .unwrap()
        .with_environment(Arc::new(Echo(tok.clone())))
        .unwrap();
    let copy = model.deep_copy(true).unwrap();
    assert!(
        copy.environment().is_some(),
        "copies act in the same environment"
    );
    let prompts = three_prompts(&model);
    let cfg = SamplingConfig {
        max_new_tokens: 13,
        batch_size: 4,
        ..Default::default()
    };
    let samples = sample(&model, &prompts, 3, &cfg, &mut rng::stream(2, "s")).unwrap();
    let observed = tok.encode("!0123456789").unwrap();
    for s in &samples {
        // `!0`, then each picked token followed by `!n` (n: the completion's length before `!`).
        let mut expect = tok.encode("!0").unwrap();
        for &t in s.tokens.iter().skip(2).step_by(3) {
            assert!(!observed.contains(&t), "the policy never emits them");
            expect.push(t);
            if t != tok.eos_id() {
                expect.extend(tok.encode(&format!("!{}", expect.len() % 10)).unwrap());
            }
        }
        expect.truncate(s.tokens.len());
        assert_eq!(s.tokens, expect, "{:?}", tok.decode(&s.tokens));
        for (t, lp) in s.tokens.iter().zip(&s.logprobs) {
            assert_eq!(observed.contains(t), *lp == 0.0, "{t}: {lp}");
        }
        let written = s.tokens.iter().filter(|t| observed.contains(t)).count();
        assert_eq!(s.observed, written);
    }
    // Teacher-forced scoring agrees: 0 where the environment wrote, the sampled value elsewhere.
    let batch = assert_scored_as_sampled(&model, &prompts, &samples);
    for s in &samples {
        assert_eq!(
            model.chosen_tokens(&s.tokens),
            s.tokens.iter().filter(|t| !observed.contains(t)).count()
        );
    }
    // Without the environment the same weights give those tokens their own mass.
    let plain_lp = plain.score_completions(&batch).unwrap();
    assert!(plain_lp.iter().flatten().all(|&lp| lp < 0.0));
}
