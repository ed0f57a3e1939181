use rand::Rng as _;

use super::*;
use crate::model::ModelConfig;
use crate::progress::Silent;
use crate::task::answers::{Question, Reply};
use crate::task::{Answers, AnswersConfig};

/// Worked answers, half of them with one column's sum written as 0 (a flaw
/// a judge finds only at that column: the answer assembles the columns).
fn completions(n: usize, seed: u64) -> Vec<(String, String)> {
    let mut rng = crate::rng::stream(seed, "completions");
    (0..n)
        .map(|_| {
            let q = Question {
                a: rng.random_range(10..1000),
                b: rng.random_range(10..1000),
            };
            let mut working = q.columns();
            if rng.random_bool(0.5) {
                let i = rng.random_range(0..working.len());
                if working[i].sum != 0 {
                    working[i].sum = 0;
                }
            }
            let mut digits: Vec<u8> = working.iter().map(|c| c.sum % 10).collect();
            if working.last().is_some_and(|c| c.sum >= 10) {
                digits.push(1);
            }
            let answer = digits.iter().rev().map(|d| char::from(b'0' + d)).collect();
            let reply = Reply::Answer {
                working,
                hedged: false,
                answer,
            };
            (q.prompt(), reply.write())
        })
        .collect()
}

/// A fresh one-block model on the ASCII tokenizer: the critic's starting trunk.
fn tiny_base(d_model: usize, n_ctx: usize) -> Model {
    let shape = ModelConfig {
        n_layer: 1,
        d_model,
        n_head: 2,
        n_ctx,
        ..Default::default()
    };
    Model::init(
        &shape,
        std::sync::Arc::new(crate::tokenize::CharTokenizer::ascii()),
        &mut crate::rng::stream(1, "init"),
        &candle_core::Device::Cpu,
    )
    .unwrap()
}

/// The task, a base trunk, `rounds` of critic settings, and completions to train on and hold out.
#[allow(clippy::type_complexity)]
fn setup(
    rounds: usize,
) -> (
    Answers,
    Model,
    CriticConfig,
    Vec<(String, String)>,
    Vec<(String, String)>,
) {
    let task = Answers::new(
        AnswersConfig {
            n_train: 10,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let cfg = CriticConfig {
        rounds,
        checks: 600,
        steps: 150,
        batch_size: 32,
        heldout: 200,
        ..Default::default()
    };
    (
        task,
        tiny_base(32, 64),
        cfg,
        completions(400, 2),
        completions(200, 3),
    )
}

#[test]
fn a_critic_learns_from_checked_pointers_alone_to_point_at_wrong_steps() {
    let (task, base, cfg, train, heldout) = setup(2);
    let critics = train_critics(
        &base,
        &task,
        &cfg,
        &train,
        &heldout,
        &mut crate::rng::stream(4, "critic"),
        &Silent,
    )
    .unwrap();
    assert_eq!(critics.len(), 2);
    let (first, second) = (&critics[0].1, &critics[1].1);
    // Round 1 points at random: about a quarter of checks on a flawed
    // completion's 3-4 steps, half of them flawed, find the flaw.
    assert!(first.confirmed.mean < 0.25, "{:?}", first.confirmed);
    // Round 2's checks are pointed by round 1's critic, and find far more.
    assert!(
        second.confirmed.mean > 2.0 * first.confirmed.mean,
        "{:?} then {:?}",
        first.confirmed,
        second.confirmed
    );
    for r in [first, second] {
        assert!(r.overall.flawed > 50, "{:?}", r.overall);
        assert!(
            r.overall.hit.mean > 0.8,
            "round {}: {:?}",
            r.round,
            r.overall
        );
        assert!(r.overall.precision.mean > 0.8, "{:?}", r.overall);
        assert!(!r.by_difficulty.is_empty());
    }
    // Labelers use it through the `Critic` trait: the pointer is the likeliest step.
    let (p, c) = heldout
        .iter()
        .find(|(p, c)| task.first_wrong_step(p, c).is_some())
        .unwrap();
    let ranked = critics[1].0.rank(p, c, &task.step_ends(p, c)).unwrap();
    assert_eq!(ranked.len(), task.n_steps(p, c));
    assert_eq!(ranked.first().copied(), task.first_wrong_step(p, c));
}

#[test]
fn with_no_answer_to_check_a_critic_stays_untrained_and_says_so() {
    let task = Answers::new(AnswersConfig::default(), 0).unwrap();
    let base = tiny_base(16, 32);
    let terse = vec![(Question { a: 12, b: 30 }.prompt(), "42.".to_string())];
    let critics = train_critics(
        &base,
        &task,
        &CriticConfig {
            rounds: 2,
            ..Default::default()
        },
        &terse,
        &terse,
        &mut crate::rng::stream(0, "c"),
        &Silent,
    )
    .unwrap();
    assert_eq!(critics.len(), 2);
    for (_, r) in &critics {
        assert_eq!((r.checks, r.overall.completions), (0, 0));
        assert!(r.train_loss.is_empty() && r.confirmed.n == 0);
    }
}

#[test]
fn a_defender_trained_against_a_fixed_attacker_learns_which_pointed_steps_to_concede() {
    let (task, base, cfg, train, heldout) = setup(1);
    let mut rng = crate::rng::stream(4, "critic");
    let (attacker, _) = train_critics(&base, &task, &cfg, &train, &heldout, &mut rng, &Silent)
        .unwrap()
        .remove(0);
    // The judge's checks are misread one time in ten: the defender learns from them anyway.
    let (defender, report) = train_defender(
        &base, &task, &cfg, &attacker, 2, 0.1, &train, &heldout, &mut rng, &Silent,
    )
    .unwrap();
    assert_eq!(report.checks, 600);
    let losses: Vec<f64> = report.train_loss.iter().map(|l| l.loss).collect();
    let (head, tail) = (
        losses[..20].iter().sum::<f64>(),
        losses[losses.len() - 20..].iter().sum::<f64>(),
    );
    assert!(
        tail < 0.7 * head,
        "the defender's loss falls: {head} then {tail}"
    );
    // On held-out answers, at the attacker's two pointers: it concedes wrong steps, contests right ones.
    let (mut wrong, mut right) = (vec![], vec![]);
    for (p, c) in &heldout {
        let ends = task.step_ends(p, c);
        let beliefs = defender.beliefs(p, c, &ends).unwrap();
        for k in attacker.rank(p, c, &ends).unwrap().into_iter().take(2) {
            let conceded = f64::from(u8::from(beliefs[k] >= 0.5));
            if task.step_is_wrong(p, c, k) {
                wrong.push(conceded)
            } else {
                right.push(conceded)
            }
        }
    }
    let share = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    assert!(wrong.len() > 50 && right.len() > 50);
    assert!(
        share(&wrong) > 0.6,
        "concedes {} of wrong pointed steps",
        share(&wrong)
    );
    assert!(
        share(&right) < 0.2,
        "concedes {} of right pointed steps",
        share(&right)
    );
}
