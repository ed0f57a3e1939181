//! Throughput of the two hot paths, printed as figures:
//!   cargo bench -p goodhart --bench throughput [-- sft|sample|ppo|ppo-update|bon|dpo|rloo] [--threads N] [--small]
//! - one SFT step (batch 32 x 64 tokens), as steps/s and achieved GFLOP/s;
//! - KV-cache sampling (batch 64, 16-token prompts, 64 new tokens), as new tokens/s and GFLOP/s;
//! - one PPO iteration (rollout of 32 prompts x 2 samples, 48 new tokens, plus the update: 2 epochs
//!   of minibatches of 32), as seconds per iteration;
//! - `ppo-update`: the update alone on a fixed rollout of 64 sequences of 64 tokens (2 epochs of
//!   minibatches of 32, policy and value losses), as ms per update (benches/torch_baseline.py
//!   runs the same update in PyTorch);
//! - best-of-n scoring: reward-model scores of 64-token sequences, as sequences/s;
//! - DPO: 2 epochs over 256 preference pairs (16-character prompts, 48-character completions),
//!   16 pairs a step, the reference's log-probabilities computed once, as ms per step
//!   (benches/trl_baseline.py runs TRL's DPOTrainer on the same shapes);
//! - one RLOO iteration (32 prompts x 2 samples, up to 48 new tokens, one gradient step), as
//!   seconds per iteration (benches/trl_baseline.py: TRL's RLOOTrainer).
//!
//! `--small` uses the default experiment's 2-layer, 64-wide network instead of the default model.
//! `--layers N --d-model D --heads H` set any other size; `--llama` runs the Llama path
//! (RMSNorm, rotary positions, SwiGLU, grouped-query attention) at that size.
//! `gpt2` samples from a 124M-parameter GPT-2 configuration (random weights; batch 8, 16-token
//! prompts, 64 new tokens), the figure benches/hf_generate.py measures for transformers' `generate`.
//! FLOPs count the matrix products (2 per multiply-add), forward x3 for a training step.

use std::sync::Arc;
use std::time::Instant;

use goodhart::model::sample::{sample, Sample, SamplingConfig};
use goodhart::model::{Model, ModelConfig};
use goodhart::optimize::ppo::Ppo;
use goodhart::optimize::rl::{self, Hooks, RlConfig, Rollout, Update};
use goodhart::progress::Silent;
use goodhart::reward::raw_scores;
use goodhart::score::{completion_logprobs, RewardSource};
use goodhart::tokenize::{CharTokenizer, Tokenizer};
use goodhart::train::{sft::sft_step, OptimConfig, Trainer};
use goodhart::{rng, runtime};

const SEQ: usize = 64;
const PROMPT: usize = 16;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let threads = runtime::set_threads(threads).expect("a thread count");
    let which = |name: &str| {
        !args.iter().any(|a| {
            [
                "sft",
                "sample",
                "ppo",
                "ppo-update",
                "bon",
                "dpo",
                "rloo",
                "gpt2",
            ]
            .contains(&a.as_str())
        }) || args.iter().any(|a| a == name)
    };
    let number = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|s| s.parse::<usize>().expect("a number after the flag"))
    };
    let mut base = if args.iter().any(|a| a == "--small") {
        ModelConfig {
            n_layer: 2,
            d_model: 64,
            n_head: 4,
            ..ModelConfig::default()
        }
    } else {
        ModelConfig::default()
    };
    base.n_layer = number("--layers").unwrap_or(base.n_layer);
    base.d_model = number("--d-model").unwrap_or(base.d_model);
    base.n_head = number("--heads").unwrap_or(base.n_head);
    if args.iter().any(|a| a == "--llama") {
        // The Llama path at the same width: RMSNorm, rotary, SwiGLU (d_ff 8/3 d for the
        // same MLP FLOPs as GPT-2's 4d) and grouped-query attention with half the KV heads.
        base.arch = goodhart::model::Arch::Llama;
        base.n_kv_head = (base.n_head / 2).max(1);
        base.d_ff = base.d_model * 8 / 3;
    }
    let cfg = base.resolved(CharTokenizer::ascii().vocab_size()).unwrap();
    println!(
        "model: {:?}, {} layers, d_model {}, {} heads, {} parameters; {threads} threads",
        cfg.arch,
        cfg.n_layer,
        cfg.d_model,
        cfg.n_head,
        cfg.n_params()
    );
    // As `goodhart` runs its work: on the pool's threads.
    runtime::on_workers(|| {
        if which("sft") {
            bench_sft(&cfg);
        }
        if which("sample") {
            bench_sample(&cfg);
        }
        if which("ppo") {
            bench_ppo(&cfg);
        }
        if which("ppo-update") {
            bench_ppo_update(&cfg);
        }
        if which("bon") {
            bench_bon(&cfg);
        }
        if which("dpo") {
            bench_dpo(&cfg);
        }
        if which("rloo") {
            bench_rloo(&cfg);
        }
        if args.iter().any(|a| a == "gpt2") {
            bench_gpt2_sampling();
        }
    });
}

/// New tokens drawn and seconds taken over three sampling runs, after one warm-up run.
fn timed_sampling(m: &Model, prompts: &[Vec<u32>], sc: &SamplingConfig) -> (usize, f64) {
    let run = |seed: u64| -> (usize, f64) {
        let start = Instant::now();
        let s = sample(m, prompts, 1, sc, &mut rng::stream(seed, "bench")).unwrap();
        let secs = start.elapsed().as_secs_f64();
        (s.iter().map(|x| x.tokens.len()).sum(), secs)
    };
    run(0);
    (1..=3)
        .map(run)
        .fold((0, 0.0), |(t, s), (t1, s1)| (t + t1, s + s1))
}

/// Sampling from GPT-2 small's shape: 12 layers, d_model 768, 12 heads, 1024 positions, 50,257 tokens.
fn bench_gpt2_sampling() {
    let cfg = ModelConfig {
        n_layer: 12,
        d_model: 768,
        n_head: 12,
        n_ctx: 1024,
        vocab_size: 50257,
        ..ModelConfig::default()
    };
    let m = model(&cfg);
    println!("gpt2 124M configuration: {} parameters", cfg.n_params());
    let (batch, new_tokens) = (8, 64);
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|i| {
            (0..PROMPT)
                .map(|j| 3 + ((i * 7919 + j * 104_729) % 50_000) as u32)
                .collect()
        })
        .collect();
    let sc = SamplingConfig {
        max_new_tokens: new_tokens,
        batch_size: batch,
        ..Default::default()
    };
    let (tokens, secs) = timed_sampling(&m, &prompts, &sc);
    println!(
        "gpt2 124M sampling (batch {batch}, {PROMPT}-token prompts, up to {new_tokens} new tokens): {:.1} new tokens/s",
        tokens as f64 / secs
    );
}

/// A cheap reward (completion length) so the figure is the policy's own work.
struct Length;

impl RewardSource for Length {
    fn name(&self) -> &str {
        "length"
    }

    fn rewards(
        &self,
        _: &[String],
        _: &[Vec<u32>],
        samples: &[Sample],
    ) -> goodhart::Result<Vec<f64>> {
        Ok(samples
            .iter()
            .map(|s| s.tokens.len() as f64 / 48.0)
            .collect())
    }
}

struct NoHooks;

impl Hooks for NoHooks {
    fn checkpoint(&mut self, _: usize, _: &Model) -> goodhart::Result<()> {
        Ok(())
    }
}

/// Seconds per iteration of `rl` (with its update `algo`) from a fresh policy of shape `cfg`.
fn seconds_per_rl_iteration(
    cfg: &ModelConfig,
    rl: &RlConfig,
    algo: impl FnOnce(&Model) -> Box<dyn rl::Update>,
) -> f64 {
    let policy = model(cfg);
    let reference = policy.deep_copy(false).unwrap();
    let mut algo = algo(&policy);
    let start = Instant::now();
    rl::train(
        &policy,
        &reference,
        &Length,
        &rl_prompts(),
        rl,
        algo.as_mut(),
        &mut NoHooks,
        &mut rng::stream(0, "bench"),
        &Silent,
    )
    .unwrap();
    start.elapsed().as_secs_f64() / rl.iterations as f64
}

fn bench_rloo(cfg: &ModelConfig) {
    let rl = RlConfig {
        name: "rloo".into(),
        algorithm: goodhart::optimize::rl::Algorithm::Rloo,
        iterations: 8,
        max_new_tokens: 48,
        checkpoint_every: 1000,
        ..RlConfig::default()
    };
    let secs = seconds_per_rl_iteration(cfg, &rl, |p| {
        Box::new(goodhart::optimize::rloo::Rloo::new(p, &rl).unwrap())
    });
    println!(
        "rloo iteration ({} prompts x {} samples, up to 48 new tokens, one gradient step): {:.3} s/iteration",
        rl.prompts_per_iteration, rl.samples_per_prompt, secs
    );
}

/// The prompts RL iterations draw from.
fn rl_prompts() -> Vec<String> {
    (0..64)
        .map(|i| format!("Q: {}+{}\nA: ", i * 37 % 1000, i * 91 % 1000))
        .collect()
}

fn bench_ppo(cfg: &ModelConfig) {
    let rl = RlConfig {
        iterations: 4,
        max_new_tokens: 48,
        checkpoint_every: 1000,
        ..RlConfig::default()
    };
    let secs = seconds_per_rl_iteration(cfg, &rl, |p| Box::new(Ppo::new(p, &rl).unwrap()));
    println!(
        "ppo iteration ({} prompts x {} samples, up to 48 new tokens, rollout + {} epochs of updates): {:.2} s/iteration",
        rl.prompts_per_iteration, rl.samples_per_prompt, rl.ppo().epochs, secs
    );
}

/// One PPO update on a fixed rollout of 64 sequences (16-token prompts, 48-token
/// completions): 2 epochs of minibatches of 32, policy and value losses, as ms per update.
fn bench_ppo_update(cfg: &ModelConfig) {
    let policy = model(cfg);
    let rl = RlConfig {
        iterations: 1000,
        ..RlConfig::default()
    };
    let mut ppo = Ppo::new(&policy, &rl).unwrap();
    let seqs = sequences(64);
    let prompt_tokens: Vec<Vec<u32>> = seqs.iter().map(|(p, _)| p.clone()).collect();
    let samples: Vec<Sample> = seqs
        .iter()
        .enumerate()
        .map(|(i, (_, c))| Sample::new(i, c.clone()))
        .collect();
    let logprobs = completion_logprobs(&policy, &prompt_tokens, &samples).unwrap();
    let ro = Rollout {
        prompts: vec![String::new(); samples.len()],
        rewards: (0..samples.len()).map(|i| (i % 7) as f64 / 7.0).collect(),
        earned: None,
        ref_logprobs: logprobs.clone(),
        values: logprobs.iter().map(|l| vec![0.0; l.len()]).collect(),
        logprobs,
        prompt_tokens,
        samples,
    };
    let mut r = rng::stream(0, "bench");
    ppo.update(&policy, &ro, 0.05, &mut r).unwrap();
    let n = 5;
    let start = Instant::now();
    for _ in 0..n {
        ppo.update(&policy, &ro, 0.05, &mut r).unwrap();
    }
    let secs = start.elapsed().as_secs_f64() / n as f64;
    println!(
        "ppo update (64 sequences of {SEQ} tokens, 2 epochs of minibatches of 32): {:.1} ms/update",
        secs * 1e3
    );
}

fn bench_bon(cfg: &ModelConfig) {
    let rm = model(cfg);
    let seqs = sequences(512);
    let pairs: Vec<(&[u32], &[u32])> = seqs
        .iter()
        .map(|(p, c)| (p.as_slice(), c.as_slice()))
        .collect();
    raw_scores(&rm, &pairs[..64]).unwrap();
    let start = Instant::now();
    let scores = raw_scores(&rm, &pairs).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let flops = cfg.forward_flops(pairs.len() * SEQ, SEQ / 2);
    println!(
        "best-of-n scoring ({} sequences of {SEQ} tokens by a reward model of this size): {:.0} sequences/s, {:.1} GFLOP/s",
        scores.len(),
        scores.len() as f64 / secs,
        flops / secs / 1e9
    );
}

fn model(cfg: &ModelConfig) -> Model {
    Model::init(
        cfg,
        Arc::new(CharTokenizer::ascii()),
        &mut rng::stream(0, "bench"),
        &runtime::device(),
    )
    .unwrap()
}

/// `n` synthetic sequences: a BOS and PROMPT - 1 prompt tokens, then SEQ - PROMPT completion tokens.
fn sequences(n: usize) -> Vec<(Vec<u32>, Vec<u32>)> {
    (0..n)
        .map(|i| {
            let p = std::iter::once(1)
                .chain((0..PROMPT - 1).map(|j| 3 + ((i + j) % 90) as u32))
                .collect();
            let c = (0..SEQ - PROMPT)
                .map(|j| 3 + ((i * 7 + j) % 90) as u32)
                .collect();
            (p, c)
        })
        .collect()
}

fn bench_sft(cfg: &ModelConfig) {
    let m = model(cfg);
    let batch_size = 32;
    let seqs = sequences(batch_size);
    let pairs: Vec<(&[u32], &[u32])> = seqs
        .iter()
        .map(|(p, c)| (p.as_slice(), c.as_slice()))
        .collect();
    let mut trainer = Trainer::new(m.vars(), &OptimConfig::default(), 1000, "bench").unwrap();
    let step = |t: &mut Trainer| {
        sft_step(&m, t, &pairs, 0, m.device()).unwrap();
    };
    for _ in 0..3 {
        step(&mut trainer);
    }
    let n = 20;
    let start = Instant::now();
    for _ in 0..n {
        step(&mut trainer);
    }
    let secs = start.elapsed().as_secs_f64() / n as f64;
    // Causal attention: each query attends to half the keys on average.
    let flops = 3.0 * cfg.forward_flops(batch_size * SEQ, SEQ / 2);
    println!(
        "sft step (batch {batch_size} x {SEQ} tokens): {:.1} ms/step, {:.1} steps/s, {:.1} GFLOP/s",
        secs * 1e3,
        1.0 / secs,
        flops / secs / 1e9
    );
}

fn bench_sample(cfg: &ModelConfig) {
    let m = model(cfg);
    let batch = 64;
    let new_tokens = 64;
    let prompts: Vec<Vec<u32>> = (0..batch)
        .map(|i| {
            std::iter::once(1)
                .chain((0..PROMPT - 1).map(|j| 3 + ((i + j) % 90) as u32))
                .collect()
        })
        .collect();
    // Sampling never stops early here: EOS is banned by sampling from a config with no stop token reachable?
    // Instead we count the tokens actually generated.
    let sc = SamplingConfig {
        max_new_tokens: new_tokens,
        batch_size: batch,
        ..Default::default()
    };
    let (tokens, secs) = timed_sampling(&m, &prompts, &sc);
    let steps = tokens as f64 / batch as f64;
    let flops = cfg.forward_flops(tokens, PROMPT + (steps / 3.0) as usize / 2)
        + 3.0 * cfg.forward_flops(batch * PROMPT, PROMPT / 2);
    println!(
        "sampling (batch {batch}, {PROMPT}-token prompts, up to {new_tokens} new tokens): {:.0} new tokens/s, {:.1} GFLOP/s",
        tokens as f64 / secs,
        flops / secs / 1e9
    );
}

/// `i`-th of the synthetic texts DPO trains on: `len` printable characters.
fn text(i: usize, len: usize) -> String {
    (0..len)
        .map(|j| (b'a' + ((i * 31 + j * 7) % 26) as u8) as char)
        .collect()
}

fn bench_dpo(cfg: &ModelConfig) {
    use goodhart::feedback::{Answer, Comparison};
    use goodhart::optimize::dpo::{train_dpo, DpoConfig};
    let policy = model(cfg);
    let reference = policy.deep_copy(false).unwrap();
    let comparisons: Vec<Comparison> = (0..256)
        .map(|i| Comparison {
            id: i as i64,
            task: "bench".into(),
            prompt: text(i, 15),
            a: text(i + 1000, 48),
            b: text(i + 2000, 48),
            policy_a: "bench".into(),
            policy_b: "bench".into(),
            labeler: "bench".into(),
            answer: Answer::A,
            batch: None,
            a_finished: false,
            b_finished: false,
        })
        .collect();
    let dpo = DpoConfig {
        epochs: 2,
        batch_size: 16,
        checkpoint_every: 1000,
        ..DpoConfig::default()
    };
    let start = Instant::now();
    let logs = train_dpo(
        &policy,
        &reference,
        &comparisons,
        &dpo,
        &mut NoHooks,
        &mut rng::stream(0, "bench"),
        &Silent,
    )
    .unwrap();
    let secs = start.elapsed().as_secs_f64();
    let steps = 2 * 256 / 16;
    assert!(!logs.is_empty());
    println!(
        "dpo ({} pairs x 2 epochs, 16 a step, reference once): {:.1} ms/step",
        comparisons.len(),
        secs * 1e3 / steps as f64
    );
}
