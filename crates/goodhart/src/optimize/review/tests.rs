//! Tests of `review`.

use super::*;
use crate::optimize::pool::synthetic;
use crate::rng;

/// 4 prompts x 4 samples with gold 0.0, 0.25, 0.5, 1.0 each.
fn pool() -> Pool {
    let group: Vec<(String, f64)> = [0.0, 0.25, 0.5, 1.0]
        .iter()
        .enumerate()
        .map(|(i, &g)| (format!("s{i}"), g))
        .collect();
    synthetic(vec![group; 4])
}

/// A goal satisfied by the samples whose index is in `which`, on every prompt.
fn goal(which: &[usize]) -> Vec<f64> {
    (0..16)
        .map(|i| f64::from(which.contains(&(i % 4))))
        .collect()
}

#[test]
fn conditioning_on_a_goal_is_rejection_sampling_with_its_kl() {
    let pool = pool();
    let c = condition_on(&pool, &goal(&[2, 3]));
    assert_eq!(c.weights[0], vec![0.0, 0.0, 0.5, 0.5]);
    assert!((c.kl[0] - 2f64.ln()).abs() < 1e-12);
    assert!((c.gold - 0.75).abs() < 1e-12);
    // A goal no sample meets leaves the base policy as it is.
    let none = condition_on(&pool, &goal(&[]));
    assert_eq!(none.weights[0], vec![0.25; 4]);
    assert_eq!(none.kl[0], 0.0);
}

#[test]
fn an_attentive_exact_reviewer_finds_the_best_goal_and_searching_more_helps() {
    let pool = pool();
    let candidates: Vec<Candidate> = [vec![0], vec![1], vec![2], vec![3]]
        .iter()
        .map(|w| condition_on(&pool, &goal(w)))
        .collect();
    let cfg = ReviewConfig {
        candidates: vec!["a".into(); 4],
        k: vec![1, 4],
        shown: 5,
        noise: 0.0,
        reviews: 200,
    };
    let (points, rows) = run(&pool, &candidates, &cfg, "review", &mut rng::stream(0, "t")).unwrap();
    // K = 1 takes a candidate at random: gold near their mean (0.4375).
    assert!(
        (rows[0].gold.mean - 0.4375).abs() < 0.06,
        "{:?}",
        rows[0].gold
    );
    // K = 4 with no noise and deterministic policies always picks the best.
    assert_eq!(rows[1].chosen, vec![0, 0, 0, 200]);
    assert_eq!(rows[1].gold.mean, 1.0);
    assert_eq!(rows[1].gap.mean, 0.0);
    // The curve point is the chosen policy: gold 1, KL log 4 on every prompt.
    assert!((points[1].gold.mean - 1.0).abs() < 1e-9);
    assert!((points[1].kl.mean - 4f64.ln()).abs() < 1e-9);
    assert_eq!((points[1].knob.as_str(), points[1].value), ("K", 4.0));
}

#[test]
fn a_noisy_reviewer_that_searches_more_goals_overstates_its_choice_more() {
    let pool = pool();
    // Eight goals with equal gold (each keeps every sample): any gap is the reviewer's error.
    let candidates: Vec<Candidate> = (0..8)
        .map(|_| condition_on(&pool, &goal(&[0, 1, 2, 3])))
        .collect();
    let cfg = ReviewConfig {
        candidates: vec!["a".into(); 8],
        k: vec![1, 8],
        shown: 1,
        noise: 0.5,
        reviews: 400,
    };
    let (_, rows) = run(&pool, &candidates, &cfg, "review", &mut rng::stream(1, "t")).unwrap();
    // K = 1: no selection, the judgement is unbiased.
    assert!(
        rows[0].gap.mean.abs() < 3.0 * rows[0].gap.stderr + 0.02,
        "{:?}",
        rows[0].gap
    );
    // K = 8: the best-looking of eight is chosen for its luck.
    assert!(
        rows[1].gap.mean > rows[0].gap.mean + 0.3,
        "{:?} vs {:?}",
        rows[1].gap,
        rows[0].gap
    );
    assert!(rows.iter().all(|r| (r.gold.mean - 0.4375).abs() < 1e-12));
}

#[test]
fn a_review_of_more_goals_than_there_are_is_refused() {
    let cfg = ReviewConfig {
        candidates: vec!["F at_goal".into(); 2],
        k: vec![1, 4],
        ..Default::default()
    };
    let err = cfg.validate("task.review").unwrap_err().to_string();
    assert!(
        err.contains("task.review.k") && err.contains("K = 4"),
        "{err}"
    );
}
