use super::*;
use crate::optimize::debate::{ArmResult, ArmSpec, Judged};
use rand::Rng as _;

/// A debate record of `n` beyond-reach answers (a share `right` of them
/// right) and arms whose per-answer probabilities `draw` makes.
fn record(
    n: usize,
    right: f64,
    rng: &mut crate::rng::Rng,
    draw: &dyn Fn(&ArmSpec, bool, &mut crate::rng::Rng) -> f64,
) -> DebateRecord {
    let cfg = crate::optimize::debate::DebateConfig {
        turns: vec![1, 2],
        budgets: vec![1],
        ..Default::default()
    };
    let answers: Vec<Judged> = (0..n)
        .map(|i| Judged {
            difficulty: 3,
            right: (i as f64) < right * n as f64,
            steps: 3,
            flawed: false,
            checked_alone: false,
        })
        .collect();
    let arms = cfg
        .arms()
        .into_iter()
        .map(|arm| ArmResult {
            p_correct: answers.iter().map(|a| draw(&arm, a.right, rng)).collect(),
            arm,
            conceded_wrong: None,
            conceded_right: None,
        })
        .collect();
    DebateRecord {
        attacker_round: 2,
        check_noise: 0.1,
        answers,
        arms,
        defender: Default::default(),
    }
}

fn run(seeds: Vec<DebateRecord>) -> DebateFinding {
    let per_seed: Vec<Vec<TaskRecords>> = seeds
        .into_iter()
        .map(|d| {
            vec![TaskRecords {
                task: "answers".into(),
                records: vec![("debate".into(), Record::Debate(d))],
            }]
        })
        .collect();
    debate(&per_seed, "answers").unwrap()
}

#[test]
fn the_defender_and_honesty_rules_find_planted_effects() {
    let mut rng = crate::rng::stream(1, "planted");
    // The defender finds more flaws and costs right answers; honesty wins without it.
    let draw = |arm: &ArmSpec, right: bool, rng: &mut crate::rng::Rng| {
        let p = match (arm.turns, arm.defender.is_some(), right) {
            (0, _, true) => 1.0,
            (0, _, false) => 0.0,
            (_, false, true) => 0.9,
            (_, false, false) => 0.7,
            (_, true, true) => 0.6,
            (_, true, false) => 0.9,
        };
        f64::from(u8::from(rng.random::<f64>() < p))
    };
    let f = run((0..3).map(|_| record(300, 0.3, &mut rng, &draw)).collect());
    assert_eq!((f.seeds, f.right, f.wrong), (3, 270, 630));
    assert_eq!(f.honesty.len(), 2, "{:?}", f.honesty);
    assert!(
        f.honesty.iter().all(|h| h.p_wins <= LEVEL),
        "{:?}",
        f.honesty
    );
    assert!(f
        .defender
        .iter()
        .all(|d| d.wrong.lo > 0.0 && d.right.hi < 0.0));
    assert!(f.verdict.contains("honesty wins 2 of 2"), "{}", f.verdict);
    assert!(f.verdict.contains("rejected in 2 of 2"), "{}", f.verdict);
}

#[test]
fn under_the_null_the_rules_claim_at_most_their_level() {
    // Each rule's false-positive rate, measured: (a) both sides equally
    // likely to win on both classes, and a defender that changes nothing;
    // (b) the hardest null for "honesty wins": wrong answers rejected
    // 0.8 of the time, right ones accepted exactly half, with few right
    // answers and seeds of very different counts (6, 15, 40 of 200), as
    // in the runs.
    let sims = 400;
    let (mut wins, mut loses, mut defender, mut wins_hard) = (0, 0, 0, 0);
    let mut rng = crate::rng::stream(2, "null");
    let coin = |p: f64, rng: &mut crate::rng::Rng| f64::from(u8::from(rng.random::<f64>() < p));
    for _ in 0..sims {
        let draw = |arm: &ArmSpec, _right: bool, rng: &mut crate::rng::Rng| {
            if arm.turns == 0 {
                0.5
            } else {
                coin(0.5, rng)
            }
        };
        let f = run((0..3).map(|_| record(60, 0.5, &mut rng, &draw)).collect());
        wins += usize::from(f.honesty.iter().any(|h| h.p_wins <= LEVEL));
        loses += usize::from(
            f.honesty
                .iter()
                .any(|h| h.p_loses_right <= LEVEL || h.p_loses_wrong <= LEVEL),
        );
        defender += usize::from(
            f.defender
                .iter()
                .any(|d| d.p_right <= LEVEL || d.p_wrong <= LEVEL),
        );
        let hard = |arm: &ArmSpec, right: bool, rng: &mut crate::rng::Rng| match (arm.turns, right)
        {
            (0, r) => f64::from(u8::from(r)),
            (_, true) => coin(0.5, rng),
            (_, false) => coin(0.8, rng),
        };
        let seeds = [0.03, 0.075, 0.2]
            .iter()
            .map(|&share| record(200, share, &mut rng, &hard))
            .collect();
        wins_hard += usize::from(run(seeds).honesty.iter().any(|h| h.p_wins <= LEVEL));
    }
    let rate = |k: usize| k as f64 / sims as f64;
    eprintln!(
        "claimed under the null: honesty wins {} (with few right answers: {}), the dishonest side wins {}, the defender changes {}",
        rate(wins),
        rate(wins_hard),
        rate(loses),
        rate(defender)
    );
    // Each within 5% (at a true 2.5%, 400 simulations have a standard error under 1%).
    for (rule, k) in [
        ("honesty wins", wins),
        ("honesty wins, few right answers", wins_hard),
        ("the dishonest side wins", loses),
        ("the defender changes something", defender),
    ] {
        assert!(rate(k) <= 0.05, "{rule}: claimed {}", rate(k));
    }
}
