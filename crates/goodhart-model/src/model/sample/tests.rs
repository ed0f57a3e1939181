//! Tests of `sample`: chunking, the picker, and per-row budgets and stop reasons.

use super::*;
use crate::model::ModelConfig;
use crate::rng;
use rand::SeedableRng;

#[test]
fn split_rows_keeps_row_order_and_cuts_a_prompt_between_parts() {
    let parts = split_rows(&[(0, 3), (1, 2), (2, 3)], &[0..4, 4..8]);
    assert_eq!(parts, vec![vec![(0, 3), (1, 1)], vec![(1, 1), (2, 3)]]);
    let one = split_rows(&[(4, 5)], &[0..2, 2..3, 3..5]);
    assert_eq!(one, vec![vec![(4, 2)], vec![(4, 1)], vec![(4, 2)]]);
}

#[test]
fn chunks_cover_every_row_once() {
    let chunks = plan_chunks(3, 5, 4);
    let total: usize = chunks.iter().flatten().map(|&(_, n)| n).sum();
    assert_eq!(total, 15);
    assert!(chunks
        .iter()
        .all(|c| c.iter().map(|&(_, n)| n).sum::<usize>() <= 4));
    let per_prompt: Vec<usize> = (0..3)
        .map(|p| {
            chunks
                .iter()
                .flatten()
                .filter(|&&(q, _)| q == p)
                .map(|&(_, n)| n)
                .sum()
        })
        .collect();
    assert_eq!(per_prompt, vec![5, 5, 5]);
}

#[test]
fn picker_respects_truncation_and_reports_both_logprobs() {
    let logits = [0.0f32, 2.0, 1.0, -1.0, 3.0];
    let mut rng = Rng::seed_from_u64(0);
    let cfg = SamplingConfig {
        top_k: 2,
        ..Default::default()
    };
    let mut picker = Picker::new(&cfg, &[0]);
    for _ in 0..200 {
        let (t, lp, slp) = picker.pick(&logits, &mut rng);
        assert!(t == 4 || t == 1, "top-2 keeps tokens 4 and 1, got {t}");
        assert!(
            slp > lp,
            "the truncated sampler puts more mass on kept tokens"
        );
    }
    let greedy = SamplingConfig {
        temperature: 0.0,
        ..Default::default()
    };
    let mut picker = Picker::new(&greedy, &[4]);
    assert_eq!(
        picker.pick(&logits, &mut rng).0,
        1,
        "banned tokens are never picked"
    );
    let nucleus = SamplingConfig {
        top_p: 0.5,
        ..Default::default()
    };
    let mut picker = Picker::new(&nucleus, &[]);
    for _ in 0..50 {
        assert_eq!(
            picker.pick(&logits, &mut rng).0,
            4,
            "token 4 alone holds over half the mass"
        );
    }
}

#[test]
fn unmodified_sampler_matches_policy_frequencies() {
    let logits = [0.0f32, 1.0, 2.0];
    let mut rng = Rng::seed_from_u64(1);
    let mut picker = Picker::new(&SamplingConfig::default(), &[]);
    let mut counts = [0usize; 3];
    let n = 20_000;
    for _ in 0..n {
        let (t, lp, slp) = picker.pick(&logits, &mut rng);
        assert!((lp - slp).abs() < 1e-5);
        counts[t as usize] += 1;
    }
    let z: f64 = logits.iter().map(|&l| (l as f64).exp()).sum();
    for t in 0..3 {
        let expected = (logits[t] as f64).exp() / z;
        let got = counts[t] as f64 / n as f64;
        assert!(
            (got - expected).abs() < 0.015,
            "token {t}: {got} vs {expected}"
        );
    }
}

#[test]
fn each_row_of_a_batch_gets_its_own_context_budget_and_says_why_it_stopped() {
    // A context of 16: prompts of 2, 7 and 11 tokens may write 12, 9 and 5
    // tokens, batched together or alone, and say when the context stopped them.
    let mut model = crate::model::tests::tiny_model(3);
    let cfg = ModelConfig {
        n_ctx: 16,
        ..model.config().clone()
    };
    let tensors = model
        .tensors()
        .unwrap()
        .into_iter()
        .map(|(n, t)| {
            (
                n.clone(),
                if n == "wpe.weight" {
                    t.narrow(0, 0, 16).unwrap()
                } else {
                    t
                },
            )
        })
        .collect();
    model = Model::from_tensors(&cfg, model.tokenizer_arc(), tensors, false).unwrap();
    let tok = model.tokenizer();
    let prompts: Vec<Vec<u32>> = ["x", "Q: 1+1", "Q: 12+345="]
        .iter()
        .map(|p| tok.encode_prompt(p).unwrap())
        .collect();
    assert_eq!(prompts.iter().map(Vec::len).collect::<Vec<_>>(), [2, 7, 11]);
    let greedy = SamplingConfig {
        temperature: 0.0,
        max_new_tokens: 12,
        ..Default::default()
    };
    let batched = sample(&model, &prompts, 1, &greedy, &mut rng::stream(0, "s")).unwrap();
    for (s, prompt) in batched.iter().zip(&prompts) {
        let alone = sample(
            &model,
            std::slice::from_ref(prompt),
            1,
            &greedy,
            &mut rng::stream(0, "s"),
        )
        .unwrap()
        .remove(0);
        assert_eq!(s.tokens, alone.tokens, "batched as alone");
        assert_eq!(s.stop, alone.stop);
        let budget = 12.min(16 - prompt.len());
        match s.stop {
            StopReason::Eos => assert!(s.tokens.len() <= budget),
            StopReason::Context => {
                assert!(budget < 12);
                assert_eq!(s.tokens.len(), budget);
            }
            StopReason::MaxNewTokens => {
                assert_eq!(budget, 12);
                assert_eq!(s.tokens.len(), 12);
            }
        }
    }
    assert!(
        batched.iter().any(|s| s.stop == StopReason::Context),
        "{:?}",
        batched.iter().map(|s| s.stop).collect::<Vec<_>>()
    );
}
