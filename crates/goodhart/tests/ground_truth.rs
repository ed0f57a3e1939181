//! Ground truth on an output space small enough to list: completions of at
//! most two tokens from a tiny transformer. Every completion and its exact
//! probability are enumerated by teacher forcing, so the estimators the
//! experiments use (KL from samples, best-of-n and conditioning from a pool)
//! are checked against exact values, not against themselves.

use std::sync::Arc;

use goodhart::model::sample::{sample, Sample, SamplingConfig};
use goodhart::model::{Device, Model, ModelConfig, SequenceBatch};
use goodhart::optimize::bon::{self, BonConfig};
use goodhart::optimize::condition::{self, ConditionConfig};
use goodhart::optimize::pool::Pool;
use goodhart::rng;
use goodhart::score::{completion_logprobs, sequence_log_ratios, Scored};
use goodhart::task::Split;
use goodhart::tokenize::{CharTokenizer, Tokenizer};

const MAX_NEW: usize = 2;

fn model(seed: u64, init_std: f64) -> Model {
    let cfg = ModelConfig {
        n_layer: 1,
        d_model: 32,
        n_head: 2,
        n_ctx: 16,
        init_std,
        ..Default::default()
    };
    Model::init(
        &cfg,
        Arc::new(CharTokenizer::ascii()),
        &mut rng::stream(seed, "init"),
        &Device::Cpu,
    )
    .unwrap()
}

/// Every completion the sampler can produce with at most two new tokens.
fn all_completions(tok: &dyn Tokenizer) -> Vec<Vec<u32>> {
    let eos = tok.eos_id();
    let banned = tok.never_sampled();
    let content: Vec<u32> = (0..tok.vocab_size() as u32)
        .filter(|t| *t != eos && !banned.contains(t))
        .collect();
    let mut out = vec![vec![eos]];
    for &a in &content {
        out.push(vec![a, eos]);
        for &b in &content {
            out.push(vec![a, b]);
        }
    }
    out
}

/// log pi(completion | prompt) of each completion, by teacher forcing.
fn exact_logprobs(m: &Model, prompt: &[u32], completions: &[Vec<u32>]) -> Vec<f64> {
    let mut out = vec![];
    for chunk in completions.chunks(512) {
        let pairs: Vec<(&[u32], &[u32])> = chunk.iter().map(|c| (prompt, c.as_slice())).collect();
        let batch = SequenceBatch::new(&pairs, m.tokenizer().pad_id(), &Device::Cpu).unwrap();
        out.extend(
            m.score_completions(&batch)
                .unwrap()
                .iter()
                .map(|lp| lp.iter().map(|&x| x as f64).sum::<f64>()),
        );
    }
    out
}

/// A reward with no ties: a fixed pseudo-random value in [0, 1) per completion.
fn reward(tokens: &[u32]) -> f64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for &t in tokens {
        h = (h ^ t as u64).wrapping_mul(0x0000_0100_0000_01b3);
        h ^= h >> 29;
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

struct Space {
    completions: Vec<Vec<u32>>,
    logp: Vec<f64>,
}

impl Space {
    fn of(m: &Model, prompt: &[u32]) -> Self {
        let completions = all_completions(m.tokenizer());
        let logp = exact_logprobs(m, prompt, &completions);
        Space { completions, logp }
    }
}

fn draw(m: &Model, prompt: &[u32], n: usize, seed: u64) -> Vec<Sample> {
    let cfg = SamplingConfig {
        max_new_tokens: MAX_NEW,
        ..Default::default()
    };
    sample(
        m,
        &[prompt.to_vec()],
        n,
        &cfg,
        &mut rng::stream(seed, "draw"),
    )
    .unwrap()
}

#[test]
fn the_enumerated_space_holds_all_the_mass_the_sampler_draws_from() {
    let m = model(1, 0.3);
    let prompt = m.tokenizer().encode_prompt("Q").unwrap();
    let space = Space::of(&m, &prompt);
    let total: f64 = space.logp.iter().map(|l| l.exp()).sum();
    assert!((total - 1.0).abs() < 1e-4, "total mass {total}");
}

#[test]
fn the_sample_kl_estimate_covers_the_exact_kl() {
    // pi: a peaked random model; pi_ref: a near-uniform one.
    let (pi, base) = (model(2, 0.4), model(3, 0.02));
    let prompt = pi.tokenizer().encode_prompt("Q").unwrap();
    let (sp, sb) = (Space::of(&pi, &prompt), Space::of(&base, &prompt));
    let exact: f64 = sp
        .logp
        .iter()
        .zip(&sb.logp)
        .map(|(p, b)| p.exp() * (p - b))
        .sum();
    assert!(exact > 0.1, "a KL worth estimating: {exact}");
    let prompts = vec![prompt.clone()];
    let mut covered = 0;
    let repeats = 20;
    for r in 0..repeats {
        let samples = draw(&pi, &prompt, 64, r);
        let lp = completion_logprobs(&pi, &prompts, &samples).unwrap();
        let lb = completion_logprobs(&base, &prompts, &samples).unwrap();
        let ratios = sequence_log_ratios(&lp, &lb);
        let s = goodhart::stats::Stat::of(&ratios);
        if (s.mean - exact).abs() <= 1.96 * s.stderr {
            covered += 1;
        }
    }
    // 95% intervals: about 19 of 20; a sign error or a missing normaliser covers none.
    assert!(
        covered >= 15,
        "covered the exact KL {exact:.4} in {covered} of {repeats}"
    );
}

/// A pool of `per_prompt` base samples for each of `n_prompts` (identical) prompts, rewarded by [`reward`].
fn pool(base: &Model, prompt: &[u32], n_prompts: usize, per_prompt: usize) -> Pool {
    let mut scored = vec![];
    let mut rewards = vec![];
    for p in 0..n_prompts {
        for s in draw(base, prompt, per_prompt, 100 + p as u64) {
            let r = reward(&s.tokens);
            scored.push(Scored {
                prompt_index: p,
                completion: format!("{:?}", s.tokens),
                gold: r,
                labeler: vec![],
                features: vec![],
                difficulty: 1,
                spec: None,
                logprob: s.logprob(),
                proxy: Some(r),
                truncated: !s.finished(),
                stop: Some(s.stop),
                n_tokens: s.tokens.len(),
                flaw_found: None,
            });
            rewards.push(r);
        }
    }
    Pool {
        task: "enumerable".into(),
        split: Split::Heldout,
        prompts: (0..n_prompts).map(|p| p.to_string()).collect(),
        per_prompt,
        scored,
        reward: rewards,
        reward_name: "proxy".into(),
        labeler_names: vec![],
        feature_names: vec![],
        examples: 0,
        labelled_chars: None,
    }
}

#[test]
fn best_of_n_from_a_pool_matches_the_exact_best_of_n_distribution() {
    let base = model(4, 0.3);
    let prompt = base.tokenizer().encode_prompt("Q").unwrap();
    let space = Space::of(&base, &prompt);
    // Exact best-of-n: P(pick x) = F(x)^n - F(x-)^n over completions sorted by reward.
    let mut order: Vec<usize> = (0..space.completions.len()).collect();
    order.sort_by(|&a, &b| reward(&space.completions[a]).total_cmp(&reward(&space.completions[b])));
    let exact = |n: i32| -> (f64, f64) {
        let (mut below, mut expected, mut kl) = (0.0f64, 0.0, 0.0);
        for &i in &order {
            let p0 = space.logp[i].exp();
            let q = (below + p0).powi(n) - below.powi(n);
            expected += q * reward(&space.completions[i]);
            if q > 0.0 && p0 > 0.0 {
                kl += q * (q / p0).ln();
            }
            below += p0;
        }
        (expected, kl)
    };
    let pool = pool(&base, &prompt, 48, 64);
    let points = bon::run(
        &pool,
        &BonConfig {
            n: vec![1, 4, 16],
            oracles: false,
        },
        "bon",
    )
    .unwrap();
    for p in &points {
        let (expected, kl) = exact(p.value as i32);
        assert!(
            (p.gold.mean - expected).abs() <= 3.0 * p.gold.stderr + 1e-3,
            "best-of-{}: pool {:.4} ± {:.4}, exact {expected:.4}",
            p.value,
            p.gold.mean,
            p.gold.stderr
        );
        // Rewards without ties: the exact KL is the closed form.
        assert!(
            (kl - bon::analytic_kl(p.value as usize)).abs() < 0.02,
            "n = {}: {kl}",
            p.value
        );
        assert!(
            (p.kl.mean - kl).abs() <= 3.0 * p.kl.stderr + 0.05,
            "best-of-{} KL: pool {:.4} ± {:.4}, exact {kl:.4}",
            p.value,
            p.kl.mean,
            p.kl.stderr
        );
    }

    // Entropy per token of the base policy (n = 1): exact sequence entropy over exact mean length.
    let (h, len): (f64, f64) = space
        .logp
        .iter()
        .zip(&space.completions)
        .map(|(lp, c)| (-lp.exp() * lp, lp.exp() * c.len() as f64))
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let base_entropy = points[0].entropy.unwrap();
    assert!(
        (base_entropy - h / len).abs() < 0.05 * h / len,
        "entropy per token: pool {base_entropy:.4}, exact {:.4}",
        h / len
    );
    assert!(
        points[2].entropy.unwrap() < base_entropy,
        "selection lowers entropy"
    );
}

#[test]
fn conditioning_from_a_pool_matches_the_exact_tilted_distribution() {
    let base = model(5, 0.3);
    let prompt = base.tokenizer().encode_prompt("Q").unwrap();
    let space = Space::of(&base, &prompt);
    let outputs: Vec<(f64, f64)> = space
        .logp
        .iter()
        .zip(&space.completions)
        .map(|(lp, c)| (*lp, reward(c)))
        .collect();
    let pool = pool(&base, &prompt, 48, 64);
    let cfg = ConditionConfig {
        beta: vec![1.0, 0.25],
        ..Default::default()
    };
    for p in condition::run(&pool, &cfg, "conditioning").unwrap() {
        let (_, kl, expected) = condition::exact(&outputs, p.value);
        assert!(
            (p.gold.mean - expected).abs() <= 3.0 * p.gold.stderr + 0.01,
            "beta {}: pool {:.4} ± {:.4}, exact E[r] {expected:.4}",
            p.value,
            p.gold.mean,
            p.gold.stderr
        );
        assert!(
            (p.kl.mean - kl).abs() <= 3.0 * p.kl.stderr + 0.03,
            "beta {}: pool KL {:.4} ± {:.4}, exact {kl:.4}",
            p.value,
            p.kl.mean,
            p.kl.stderr
        );
    }
}

/// Reward 1 on completions that are a digit, 0 otherwise.
struct DigitReward;

impl goodhart::score::RewardSource for DigitReward {
    fn name(&self) -> &str {
        "digit"
    }

    fn rewards(
        &self,
        _prompts: &[String],
        _tokens: &[Vec<u32>],
        samples: &[Sample],
    ) -> goodhart::Result<Vec<f64>> {
        Ok(samples.iter().map(|s| digit_reward(&s.text)).collect())
    }
}

fn digit_reward(text: &str) -> f64 {
    f64::from(text.len() == 1 && text.chars().all(|c| c.is_ascii_digit()))
}

/// Adam from `lr` down a cosine to 5% of it, with no warm-up or weight decay.
/// At a constant rate the last iterate jitters around the optimum (Adam's step
/// does not shrink with the gradient's noise), and where it stops is luck.
fn decaying_lr(lr: f64) -> goodhart::train::OptimConfig {
    goodhart::train::OptimConfig {
        lr,
        warmup_steps: 0,
        min_lr_ratio: 0.05,
        weight_decay: 0.0,
        ..Default::default()
    }
}

struct NoHooks;

impl goodhart::optimize::rl::Hooks for NoHooks {
    fn checkpoint(&mut self, _: usize, _: &Model) -> goodhart::Result<()> {
        Ok(())
    }
}

/// The exact one-token distribution of `m` after `prompt`: (completion, log-prob).
fn one_token_space(m: &Model, prompt: &[u32]) -> Vec<(Vec<u32>, f64)> {
    let tok = m.tokenizer();
    let banned = tok.never_sampled();
    let singles: Vec<Vec<u32>> = (0..tok.vocab_size() as u32)
        .filter(|t| !banned.contains(t))
        .map(|t| vec![t])
        .collect();
    let logp = exact_logprobs(m, prompt, &singles);
    singles.into_iter().zip(logp).collect()
}

/// The exact one-token objective `E_pi[r] - beta KL(pi || base)` with
/// `r = scale * 1[digit]`: (objective, P_pi(digit), KL).
fn objective(pi: &Model, base: &Model, prompt: &[u32], beta: f64, scale: f64) -> (f64, f64, f64) {
    let tok = pi.tokenizer();
    let (p, b) = (one_token_space(pi, prompt), one_token_space(base, prompt));
    let (mut p_digit, mut kl) = (0.0, 0.0);
    for ((c, lp), (_, lb)) in p.iter().zip(&b) {
        p_digit += lp.exp() * digit_reward(&tok.decode(c));
        kl += lp.exp() * (lp - lb);
    }
    (scale * p_digit - beta * kl, p_digit, kl)
}

/// Where a policy trained from `base` on `E[r] - beta KL` with `r = scale * 1[digit]`
/// ended, against the exact optimum `pi* ∝ pi_ref exp(r / beta)`.
struct Reached {
    /// Share of the objective's gap from the base policy to the optimum still open.
    gap_left: f64,
    p_digit: f64,
    p_digit_star: f64,
    kl: f64,
    kl_star: f64,
}

impl Reached {
    fn of(policy: &Model, base: &Model, prompt: &[u32], beta: f64, scale: f64) -> Self {
        let tok = base.tokenizer();
        let outputs: Vec<(f64, f64)> = one_token_space(base, prompt)
            .iter()
            .map(|(c, lp)| (*lp, scale * digit_reward(&tok.decode(c))))
            .collect();
        let (_, kl_star, er_star) = condition::exact(&outputs, beta);
        let optimum = er_star - beta * kl_star;
        let (start, _, _) = objective(base, base, prompt, beta, scale);
        assert!(
            optimum - start > 0.05,
            "room to improve: {start} -> {optimum}"
        );
        let (end, p_digit, kl) = objective(policy, base, prompt, beta, scale);
        Reached {
            gap_left: (optimum - end) / (optimum - start),
            p_digit,
            p_digit_star: er_star / scale,
            kl,
            kl_star,
        }
    }

    /// Near the optimum on both sides: a KL past the optimum's would mean the
    /// penalty is not the one the optimum assumes.
    fn assert_within(&self, what: &str, gap_left: f64, p_digit: f64, kl: f64) {
        println!("{what}: {self}");
        assert!(self.gap_left < gap_left, "{what}: {self}");
        assert!(
            (self.p_digit - self.p_digit_star).abs() < p_digit,
            "{what}: {self}"
        );
        assert!((self.kl - self.kl_star).abs() < kl, "{what}: {self}");
    }
}

impl std::fmt::Display for Reached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gap left {:.2}%; P(digit) {:.3} (optimum {:.3}); KL {:.3} (optimum {:.3})",
            100.0 * self.gap_left,
            self.p_digit,
            self.p_digit_star,
            self.kl,
            self.kl_star
        )
    }
}

/// PPO or RLOO on one-token completions, rewarded 1 for a digit, with a KL
/// penalty of `beta = 0.25` against the base policy of `seed`.
fn rl_to_the_kl_regularised_optimum(
    algorithm: goodhart::optimize::rl::Algorithm,
    seed: u64,
) -> Reached {
    use goodhart::optimize::rl::{self, Algorithm, KlConfig, KlMode, RlConfig, Update};
    let beta = 0.25;
    let base = model(seed, 0.3);
    let policy = base.deep_copy(true).unwrap();
    let prompt_text = "Q".to_string();
    let prompt = base.tokenizer().encode_prompt(&prompt_text).unwrap();
    let cfg = RlConfig {
        name: "exact".into(),
        algorithm,
        // PPO takes four Adam steps per rollout (2 epochs of 2 minibatches), RLOO
        // one, so RLOO gets more rollouts (and still runs in about half the time).
        iterations: if algorithm == Algorithm::Rloo {
            400
        } else {
            300
        },
        prompts_per_iteration: 16,
        samples_per_prompt: 4,
        max_new_tokens: 1,
        kl: KlConfig {
            mode: KlMode::PerToken,
            coef: beta,
            ..Default::default()
        },
        optim: decaying_lr(1e-2),
        checkpoint_every: 1000,
        ..Default::default()
    };
    let mut algo: Box<dyn Update> = match algorithm {
        Algorithm::Ppo => Box::new(goodhart::optimize::ppo::Ppo::new(&policy, &cfg).unwrap()),
        Algorithm::Rloo => Box::new(goodhart::optimize::rloo::Rloo::new(&policy, &cfg).unwrap()),
        Algorithm::ExpertIteration => {
            panic!("expert iteration has no KL-regularised optimum to compare with")
        }
    };
    rl::train(
        &policy,
        &base,
        &DigitReward,
        &[prompt_text],
        &cfg,
        algo.as_mut(),
        &mut NoHooks,
        &mut rng::stream(seed, "rl"),
        &goodhart::progress::Silent,
    )
    .unwrap();
    Reached::of(&policy, &base, &prompt, beta, 1.0)
}

/// DPO on preferences where every digit is compared with every other one-token
/// completion and preferred in 3 of 4 comparisons: Bradley-Terry preferences
/// with r(digit) - r(other) = logit(0.75). DPO's optimum is then
/// pi* ∝ pi_ref exp(r / beta) on the whole (enumerated) space.
fn dpo_to_the_optimum_its_preferences_imply(seed: u64) -> Reached {
    use goodhart::feedback::{Answer, Comparison};
    use goodhart::optimize::dpo::{train_dpo, DpoConfig};
    let beta = 0.5;
    let base = model(seed, 0.3);
    let policy = base.deep_copy(true).unwrap();
    let tok = base.tokenizer();
    let prompt = tok.encode_prompt("Q").unwrap();
    let space = one_token_space(&base, &prompt);
    let text = |c: &Vec<u32>| tok.decode(c);
    let finished = |c: &Vec<u32>| c[0] == tok.eos_id();
    let (digits, others): (Vec<&Vec<u32>>, Vec<&Vec<u32>>) = space
        .iter()
        .map(|(c, _)| c)
        .partition(|c| digit_reward(&text(c)) == 1.0);
    let mut data = vec![];
    for d in &digits {
        for o in &others {
            for answer in [Answer::A, Answer::A, Answer::A, Answer::B] {
                data.push(Comparison {
                    id: 0,
                    task: "enumerable".into(),
                    prompt: "Q".into(),
                    a: text(d),
                    b: text(o),
                    policy_a: "base".into(),
                    policy_b: "base".into(),
                    labeler: "bt".into(),
                    answer,
                    batch: None,
                    a_finished: finished(d),
                    b_finished: finished(o),
                });
            }
        }
    }
    let cfg = DpoConfig {
        beta,
        epochs: 8,
        batch_size: 64,
        optim: decaying_lr(1e-2),
        checkpoint_every: 100_000,
        ..Default::default()
    };
    train_dpo(
        &policy,
        &base,
        &data,
        &cfg,
        &mut NoHooks,
        &mut rng::stream(seed, "dpo"),
        &goodhart::progress::Silent,
    )
    .unwrap();
    Reached::of(&policy, &base, &prompt, beta, (0.75f64 / 0.25).ln())
}

// RL and DPO must reach the exact optimum of E[r] - beta KL, which
// pi* ∝ pi_ref exp(r / beta) attains with value beta log Z. Each bound is two to
// three times the worst of seeds 1 to 16, which
// `cargo test -p goodhart --test ground_truth -- --ignored --nocapture` prints:
// gap left 2.26% (PPO), 0.56% (RLOO), 1.59% (DPO); P(digit) off by 0.007, 0.003,
// 0.012; KL off by 0.032, 0.015, 0.030.

#[test]
fn ppo_converges_to_the_exact_kl_regularised_optimum() {
    let reached = rl_to_the_kl_regularised_optimum(goodhart::optimize::rl::Algorithm::Ppo, 7);
    reached.assert_within("PPO", 0.05, 0.02, 0.07);
}

#[test]
fn rloo_converges_to_the_exact_kl_regularised_optimum() {
    let reached = rl_to_the_kl_regularised_optimum(goodhart::optimize::rl::Algorithm::Rloo, 7);
    reached.assert_within("RLOO", 0.015, 0.01, 0.03);
}

#[test]
fn dpo_converges_to_the_exact_optimum_its_preferences_imply() {
    dpo_to_the_optimum_its_preferences_imply(9).assert_within("DPO", 0.04, 0.03, 0.07);
}

#[test]
#[ignore = "the seed sweep behind the bounds above: about two minutes"]
fn rl_and_dpo_reach_the_optimum_over_seeds() {
    use goodhart::optimize::rl::Algorithm;
    for seed in 1..=16 {
        for (what, reached) in [
            (
                "PPO",
                rl_to_the_kl_regularised_optimum(Algorithm::Ppo, seed),
            ),
            (
                "RLOO",
                rl_to_the_kl_regularised_optimum(Algorithm::Rloo, seed),
            ),
            ("DPO", dpo_to_the_optimum_its_preferences_imply(seed)),
        ] {
            println!("seed {seed:2} {what:4}: {reached}");
        }
    }
}
