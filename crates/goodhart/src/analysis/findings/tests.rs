//! Tests of `findings`: the sentences follow the paired numbers, and each
//! kind's verdict says yes only for what it predicts.

use super::*;
use crate::experiment::config::{GoodhartKind, TaskSetup};
use crate::optimize::rl::{RewardChoice, RlConfig};
use crate::score::{CurvePoint, FeatureSeries, PerPrompt};
use crate::stats::Stat;

/// 32 prompts whose difficulty differs a lot: prompt i's base gold.
fn difficulty() -> Vec<f64> {
    (0..32)
        .map(|i| -0.9 + 1.8 * (i * 7 % 32) as f64 / 31.0)
        .collect()
}

/// A small, fixed wobble per (point, prompt): measurement noise.
fn wobble(k: usize, i: usize) -> f64 {
    ((k * 31 + i * 17) % 13) as f64 / 13.0 * 0.1 - 0.05
}

/// A held-out curve of `strategy` on task "t": per point (KL, gold change,
/// proxy change, labeler change, button presses), each prompt the base's value
/// plus the change plus a wobble. The base point (knob n = 1) is first.
fn curve(strategy: &str, knob: &str, points: &[(f64, f64, f64, f64, f64)]) -> StrategyAnalysis {
    let base = difficulty();
    let points = points
        .iter()
        .enumerate()
        .map(|(k, &(kl, dg, dp, dl, press))| {
            let value = match (knob, k) {
                ("n", 0) => 1.0,
                ("n", k) => (1 << k) as f64,
                (_, k) => k as f64,
            };
            let series = |d: f64| -> Vec<f64> {
                base.iter()
                    .enumerate()
                    .map(|(i, b)| b + d + if k == 0 { 0.0 } else { wobble(k, i) })
                    .collect()
            };
            let mut p = CurvePoint::new("t", strategy, "heldout", knob, value, vec![kl; 32]);
            let pp = PerPrompt {
                kl: vec![kl; 32],
                gold: series(dg),
                proxy: series(dp),
                labeler: series(dl),
                spec: series(if strategy.ends_with("spec") { dg } else { 0.0 }),
                features: vec![FeatureSeries {
                    name: EXPLOIT.into(),
                    values: (0..32)
                        .map(|i| f64::from(i as f64 / 32.0 < press))
                        .collect(),
                }],
            };
            p.gold = Stat::of(&pp.gold);
            p.per_prompt = Some(pp);
            p
        })
        .collect();
    StrategyAnalysis {
        task: "t".into(),
        strategy: strategy.into(),
        split: "heldout".into(),
        family: "pool".into(),
        points,
        ..Default::default()
    }
}

/// An experiment with one task "t" set up to show `kind`, with an RL run "ppo-spec" on the formal goal.
fn experiment(kind: GoodhartKind) -> Experiment {
    let mut exp = Experiment::default();
    let mut t = TaskSetup {
        name: Some("t".into()),
        goodhart: Some(kind),
        ..TaskSetup::default()
    };
    t.strategies.rl = vec![RlConfig {
        name: "ppo-spec".into(),
        reward: RewardChoice::Spec,
        ..RlConfig::default()
    }];
    exp.tasks = vec![t];
    exp
}

fn of(per_seed: &[Vec<StrategyAnalysis>], kind: GoodhartKind) -> Vec<TaskFindings> {
    let lists: Vec<&[StrategyAnalysis]> = per_seed.iter().map(Vec::as_slice).collect();
    findings(&lists, &experiment(kind))
}

const OVEROPTIMISED: [(f64, f64, f64, f64, f64); 4] = [
    (0.0, 0.0, 0.0, 0.0, 0.1),
    (0.5, 0.2, 0.5, 0.3, 0.1),
    (1.2, 0.25, 0.9, 0.5, 0.1),
    (2.5, -0.1, 1.4, 0.8, 0.1),
];

#[test]
fn a_rise_then_a_fall_is_named_with_its_paired_contrasts_and_a_number_changes_the_sentence() {
    let f = of(
        &[vec![curve("bon", "n", &OVEROPTIMISED)]],
        GoodhartKind::Regressional,
    );
    let bon = &f[0].strategies[0];
    assert_eq!(bon.shape, Shape::RoseThenFell, "{}", bon.sentence);
    // Prompt difficulty (from -0.9 to 0.9) cancels: the rise is 0.25 within the wobble.
    let t = bon.turn.unwrap();
    assert!((t.rise.estimate - 0.25).abs() < 0.03, "{:?}", t);
    assert!((t.fall.estimate - 0.35).abs() < 0.03, "{:?}", t);
    assert!(t.rise.lo > 0.15 && t.fall.lo > 0.25, "{:?}", t);
    assert!(
        bon.sentence.contains("gold rose by 0.2"),
        "{}",
        bon.sentence
    );
    assert!(
        bon.sentence.contains("up to KL 1.20, then fell by 0.3"),
        "{}",
        bon.sentence
    );
    assert!(
        bon.sentence.contains("paired over 32 prompts"),
        "{}",
        bon.sentence
    );
    let v = f[0].verdict.as_deref().unwrap();
    assert!(
        v.starts_with("Regressional Goodhart, as predicted: under bon gold rose by"),
        "{v}"
    );
    assert_eq!(f[0].shown, Some(true));

    // Gold kept at its peak: it rose, and regressional Goodhart is not shown.
    let mut kept = OVEROPTIMISED;
    kept[3].1 = 0.25;
    let f = of(
        &[vec![curve("bon", "n", &kept)]],
        GoodhartKind::Regressional,
    );
    assert_eq!(f[0].strategies[0].shape, Shape::Rose);
    assert!(f[0].strategies[0].sentence.contains("gold rose by 0.2"));
    assert_eq!(f[0].shown, Some(false));
    assert!(f[0]
        .verdict
        .as_deref()
        .unwrap()
        .contains("is not shown beyond noise"));

    // Every change inside the wobble: cannot tell, with what the run detects.
    let flat: Vec<_> = OVEROPTIMISED
        .iter()
        .map(|&(kl, _, p, l, b)| (kl, 0.0, p, l, b))
        .collect();
    let f = of(
        &[vec![curve("bon", "n", &flat)]],
        GoodhartKind::Regressional,
    );
    let s = &f[0].strategies[0];
    assert_eq!(s.shape, Shape::Flat);
    assert!(s.within_noise);
    assert!(
        s.sentence
            .contains("cannot tell (this run detects changes of 0.0"),
        "{}",
        s.sentence
    );
}

#[test]
fn across_seeds_the_contrast_pools_the_seeds_and_each_seed_is_counted() {
    let fell = |g: f64| {
        curve(
            "ppo",
            "iteration",
            &[
                (0.0, 0.0, 0.0, 0.0, 0.1),
                (1.0, -g / 2.0, 0.5, 0.3, 0.1),
                (2.0, -g, 1.0, 0.6, 0.1),
            ],
        )
    };
    // Two seeds fall, the third rises: the pooled contrast still falls, and each seed is counted.
    let seeds = vec![vec![fell(0.3)], vec![fell(0.25)], vec![fell(-0.2)]];
    let f = of(&seeds, GoodhartKind::Causal);
    let s = &f[0].strategies[0];
    assert_eq!(s.shape, Shape::Fell, "{}", s.sentence);
    // The mean of the seeds' changes, -0.117 (and the wobble's mean).
    assert!((s.gold.estimate + 0.117).abs() < 0.01, "{:?}", s.gold);
    assert!(
        s.sentence.contains("each seed alone: rose in 1, fell in 2"),
        "{}",
        s.sentence
    );
    // The labeler's score rose while gold fell: what causal Goodhart predicts.
    let v = f[0].verdict.as_deref().unwrap();
    assert!(
        v.starts_with(
            "Causal Goodhart, as predicted: under ppo the labeler's score changed by +0.59"
        ),
        "{v}"
    );
}

#[test]
fn causal_goodhart_needs_gold_to_fall_not_only_the_labeler_to_rise() {
    let flat_gold = curve(
        "bon",
        "n",
        &[
            (0.0, 0.0, 0.0, 0.0, 0.1),
            (1.0, 0.0, 0.5, 0.3, 0.1),
            (2.0, 0.0, 1.0, 0.6, 0.1),
        ],
    );
    let f = of(&[vec![flat_gold]], GoodhartKind::Causal);
    assert_eq!(f[0].shown, Some(false), "{:?}", f[0].verdict);
}

#[test]
fn a_flagged_point_is_not_read_as_the_largest_kl() {
    let mut a = curve("bon", "n", &OVEROPTIMISED);
    a.points[3].flag = Some("effective sample size".into());
    let f = of(&[vec![a]], GoodhartKind::Regressional);
    let s = &f[0].strategies[0];
    assert!((s.kl - 1.2).abs() < 1e-9, "{}", s.sentence);
    assert_eq!(s.shape, Shape::Rose);
}

#[test]
fn adversarial_goodhart_needs_a_formal_goal_that_moved_and_pressed_less() {
    let presses = |strategy: &str, knob: &str, to: f64, goal: f64| {
        curve(
            strategy,
            knob,
            &[
                (0.0, 0.0, 0.0, 0.0, 0.1),
                (1.0, goal / 2.0, 0.5, 0.3, to),
                (2.0, goal, 1.0, 0.6, to),
            ],
        )
    };
    let kind = GoodhartKind::Adversarial;
    // No strategy optimises the formal goal: half the prediction is untested, and the verdict says so.
    let f = of(&[vec![presses("bon", "n", 0.6, 0.0)]], kind);
    assert_eq!(f[0].shown, None);
    assert!(
        f[0].verdict.as_deref().unwrap().contains("is not tested"),
        "{:?}",
        f[0].verdict
    );
    // The goal strategy raised the goal and kept presses at the base's: as predicted.
    let f = of(
        &[vec![
            presses("bon", "n", 0.6, 0.0),
            presses("bon-spec", "n", 0.1, 0.3),
        ]],
        kind,
    );
    assert_eq!(f[0].shown, Some(true), "{:?}", f[0].verdict);
    // The goal strategy did not move the goal at all: not evidence that the goal keeps the exploit away.
    let f = of(
        &[vec![
            presses("bon", "n", 0.6, 0.0),
            presses("bon-spec", "n", 0.1, 0.0),
        ]],
        kind,
    );
    assert_eq!(f[0].shown, Some(false), "{:?}", f[0].verdict);
    // A trained policy on the goal is not paired with a pool strategy.
    let f = of(
        &[vec![
            presses("bon", "n", 0.6, 0.0),
            presses("ppo-spec", "iteration", 0.1, 0.3),
        ]],
        kind,
    );
    assert_eq!(f[0].shown, None, "{:?}", f[0].verdict);
}

#[test]
fn tasks_measured_on_the_same_prompts_are_compared_prompt_by_prompt() {
    let on = |task: &str, end_gold: f64| {
        let mut pts = OVEROPTIMISED;
        pts[3].1 = end_gold;
        let mut a = curve("bon", "n", &pts);
        a.task = task.into();
        a
    };
    let two = |u: TaskSetup| {
        let mut exp = experiment(GoodhartKind::Regressional);
        exp.tasks.push(TaskSetup {
            name: Some("u".into()),
            ..u
        });
        exp
    };
    let runs = [on("t", -0.1), on("u", 0.2)];
    let f = findings(&[&runs[..]], &two(TaskSetup::default()));
    assert!(f[0].against.is_none());
    let against = f[1].against.as_ref().expect("u has t's prompts");
    assert_eq!(against.other, "t");
    // Gains of 0.2 and -0.1 over the same base: the same wobble on both sides cancels.
    let gold = against.rows[0].gold;
    assert!(
        (gold.estimate - 0.3).abs() < 1e-9 && gold.lo > 0.29,
        "{gold:?}"
    );
    assert!(text(&f).contains("Against t (the same prompts)"));
    // Another task generator's settings draw other prompts: no comparison.
    let mut harder = TaskSetup::default();
    harder.answers.max_digits += 1;
    let exp = two(harder);
    assert_ne!(exp.tasks[0].task_config(), exp.tasks[1].task_config());
    let f = findings(&[&runs[..]], &exp);
    assert!(f[1].against.is_none(), "{:?}", f[1].against);
}

/// `a` with the share of its completions past the labelled range at each point
/// (`share[k]` of the prompts have every completion past it).
fn past_the_range(mut a: StrategyAnalysis, share: &[f64]) -> StrategyAnalysis {
    for (p, &s) in a.points.iter_mut().zip(share) {
        p.per_prompt.as_mut().unwrap().features.push(FeatureSeries {
            name: crate::score::BEYOND_LABELS.into(),
            values: (0..32)
                .map(|i| f64::from((i as f64 + 0.5) / 32.0 < s))
                .collect(),
        });
    }
    a
}

#[test]
fn extremal_goodhart_needs_a_labelled_range_and_the_policy_past_it() {
    let verdict = |a: StrategyAnalysis| {
        let f = of(&[vec![a]], GoodhartKind::Extremal);
        (f[0].shown, f[0].verdict.clone().unwrap_or_default())
    };
    let parting = || curve("bon", "n", &OVEROPTIMISED);
    // No declared range: the parting alone is not extremal.
    let (shown, sentence) = verdict(parting());
    assert_eq!(shown, None, "{sentence}");
    assert!(sentence.contains("labels.max_chars"), "{sentence}");
    // Proxy and gold part as the policy leaves the labelled range: shown.
    let (shown, sentence) = verdict(past_the_range(parting(), &[0.05, 0.1, 0.3, 0.6]));
    assert_eq!(shown, Some(true), "{sentence}");
    assert!(
        sentence.contains("past the labelled range changed by +0.5"),
        "{sentence}"
    );
    // The same parting inside the range (the share never moves): not shown.
    let (shown, sentence) = verdict(past_the_range(parting(), &[0.1; 4]));
    assert_eq!(shown, Some(false), "{sentence}");
}
