//! Tests of `findings`: the sentences follow the numbers.

use super::*;
use crate::experiment::config::GoodhartKind;
use crate::stats::Stat;

/// A stat with the given mean and standard error.
fn stat(mean: f64, stderr: f64) -> Stat {
    Stat {
        mean,
        stderr,
        n: 64,
    }
}

/// A held-out curve of `strategy` on task "t": (KL, proxy, labeler, gold) per point, gold's standard error 0.02.
fn curve(strategy: &str, points: &[(f64, f64, f64, f64)]) -> StrategyAnalysis {
    let points: Vec<CurvePoint> = points
        .iter()
        .enumerate()
        .map(|(i, &(kl, proxy, labeler, gold))| {
            let mut p = CurvePoint::new("t", strategy, "heldout", "n", i as f64, vec![kl; 4]);
            p.proxy = stat(proxy, 0.02);
            p.gold = stat(gold, 0.02);
            p.labelers = vec![("quick".into(), stat(labeler, 0.02))];
            p
        })
        .collect();
    let peak = points
        .iter()
        .max_by(|a, b| a.gold.mean.total_cmp(&b.gold.mean))
        .map(|p| (p.kl.mean, p.gold.mean))
        .unwrap();
    StrategyAnalysis {
        task: "t".into(),
        strategy: strategy.into(),
        split: "heldout".into(),
        family: "pool".into(),
        reference_gold: points[0].gold.mean,
        observed_peak: peak,
        points,
        ..Default::default()
    }
}

/// Findings of runs given as one list of analyses per seed.
fn of(per_seed: &[Vec<StrategyAnalysis>]) -> Vec<TaskFindings> {
    findings(&per_seed.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

fn sentence(per_seed: &[Vec<StrategyAnalysis>], strategy: &str) -> (Shape, String) {
    let f = of(per_seed);
    let s = f[0]
        .strategies
        .iter()
        .find(|s| s.strategy == strategy)
        .unwrap();
    (s.shape, s.sentence.clone())
}

#[test]
fn a_rise_then_a_fall_is_named_with_its_peak_and_a_change_in_a_number_changes_the_sentence() {
    let overoptimised = curve(
        "bon",
        &[
            (0.0, 0.0, 0.1, -0.30),
            (1.0, 0.8, 0.4, -0.10),
            (3.0, 1.4, 0.7, -0.45),
        ],
    );
    let (shape, s) = sentence(&[vec![overoptimised.clone()]], "bon");
    assert_eq!(shape, Shape::RoseThenFell);
    assert!(
        s.starts_with("bon: proxy rose from 0.000 to 1.400 ±0.039, the labeler's score rose from 0.100 to 0.700"),
        "{s}"
    );
    assert!(
        s.contains("gold rose, then fell from -0.300 ±0.039 to -0.450 ±0.039 at KL 3.000"),
        "{s}"
    );
    assert!(s.contains("gold peaked at -0.100 at KL 1.000"), "{s}");
    assert!(!s.contains("within noise"), "{s}");

    // The same run with gold at the last point back near the peak: it rose.
    let mut kept = overoptimised.clone();
    kept.points[2].gold.mean = -0.11;
    let (shape, s) = sentence(&[vec![kept]], "bon");
    assert_eq!(shape, Shape::Rose);
    assert!(s.contains("gold rose from -0.300 ±0.039 to -0.110"), "{s}");

    // And with every change inside two standard errors: within noise.
    let mut flat = overoptimised;
    flat.points[1].gold.mean = -0.29;
    flat.points[2].gold.mean = -0.31;
    flat.observed_peak = (1.0, -0.29);
    let (shape, s) = sentence(&[vec![flat]], "bon");
    assert_eq!(shape, Shape::Flat);
    assert!(
        s.contains("gold did not move beyond noise from -0.300"),
        "{s}"
    );
}

#[test]
fn across_seeds_each_seeds_verdict_is_counted_and_figures_carry_t_intervals() {
    let fell = |g: f64| curve("ppo", &[(0.0, 0.0, 0.1, -0.3), (2.0, 1.0, 0.6, -0.3 - g)]);
    let seeds = vec![vec![fell(0.3)], vec![fell(0.25)], vec![fell(0.28)]];
    let (shape, s) = sentence(&seeds, "ppo");
    assert_eq!(shape, Shape::Fell);
    assert!(s.contains(": it fell in 3/3 seeds"), "{s}");
    // Gold at the largest KL: the mean of -0.6, -0.55 and -0.58 with its t-interval.
    let gold = AcrossSeeds::of(&[-0.6, -0.55, -0.58]);
    assert!(
        s.contains(&format!("to {:.3} ±{:.3}", gold.mean, gold.half_width)),
        "{s}"
    );
    assert!(!s.contains("within noise"), "{s}");
    let f = of(&seeds);
    assert_eq!(f[0].headline, "t: gold fell under 1 of 1 strategies (ppo).");

    // Two seeds fall and one stays within its noise: counted, and with three
    // seeds the change's t-interval spans 0.
    let seeds = vec![vec![fell(0.3)], vec![fell(0.25)], vec![fell(0.01)]];
    let (shape, s) = sentence(&seeds, "ppo");
    assert_eq!(shape, Shape::Fell);
    assert!(
        s.contains("it fell in 2/3 seeds, did not move beyond noise in 1/3 seeds"),
        "{s}"
    );
    assert!(s.contains("within noise"), "{s}");

    // A fall in one seed and a rise in two others: the change's interval spans 0.
    let mixed = vec![vec![fell(0.3)], vec![fell(-0.2)], vec![fell(-0.15)]];
    let (_, s) = sentence(&mixed, "ppo");
    assert!(s.contains("within noise"), "{s}");
    assert!(
        s.contains("rose in 2/3 seeds") && s.contains("fell in 1/3 seeds"),
        "{s}"
    );
}

#[test]
fn flagged_points_are_not_read_as_the_largest_kl() {
    let mut a = curve(
        "bon",
        &[
            (0.0, 0.0, 0.1, -0.3),
            (1.0, 0.5, 0.3, -0.1),
            (5.0, 2.0, 0.9, 0.9),
        ],
    );
    a.points[2].flag = Some("effective sample size 1.2".into());
    a.observed_peak = (1.0, -0.1);
    let (shape, s) = sentence(&[vec![a]], "bon");
    assert_eq!(shape, Shape::Rose);
    assert!(s.contains("at KL 1.000"), "{s}");
}

#[test]
fn each_kind_is_judged_by_what_it_predicts_and_the_verdict_follows_the_numbers() {
    use kinds::{verdict, Target};
    // bon on the proxy and bon-spec on the formal goal, with button presses at each point.
    let with_button = |strategy: &str, pressed: [f64; 2]| {
        let mut a = curve(
            strategy,
            &[
                (0.0, 0.0, 0.1, -0.3),
                (1.0, 0.5, 0.6, -0.3),
                (2.0, 1.0, 0.9, -0.35),
            ],
        );
        a.points[0].features = vec![("button_pressed".into(), pressed[0])];
        a.points[1].features = vec![("button_pressed".into(), pressed[1])];
        a.points[2].features = vec![("button_pressed".into(), pressed[1])];
        a
    };
    let judged = |proxy_pressed: f64, kind| {
        let mut f = of(&[vec![
            with_button("bon", [0.1, proxy_pressed]),
            with_button("bon-spec", [0.1, 0.1]),
        ]]);
        f[0].strategies[0].target = Some(Target::Proxy);
        f[0].strategies[1].target = Some(Target::Spec);
        verdict(kind, &f[0].strategies)
    };
    // 64 episodes: from 0.1 to 0.5 is far beyond noise, to 0.12 is not.
    let v = judged(0.5, GoodhartKind::Adversarial);
    assert!(
        v.starts_with("Button presses rose beyond noise under 1 of the 1 strategies")
            && v.contains("(bon)")
            && v.ends_with("under 0 of the 1 that optimise the formal goal: as predicted."),
        "{v}"
    );
    let v = judged(0.12, GoodhartKind::Adversarial);
    assert!(
        v.contains("under 0 of the 1") && v.ends_with("not seen beyond noise."),
        "{v}"
    );
    // The labeler's score rose (0.1 to 0.9) and gold did not: what causal Goodhart predicts.
    let v = judged(0.5, GoodhartKind::Causal);
    assert!(
        v.contains("did not rise under 1 (bon)") && v.ends_with("is seen."),
        "{v}"
    );
    let v = judged(0.5, GoodhartKind::Regressional);
    assert!(v.ends_with("not seen beyond noise."), "{v}");
}
