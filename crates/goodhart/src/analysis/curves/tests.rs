//! Tests of `analysis`.

use super::*;
use crate::analysis::outputs::curves_csv;

#[test]
fn flagged_points_are_shown_but_never_fitted_peaked_or_budgeted() {
    // A curve whose last point is a low-ESS artefact: the pool's top-1 at a capped KL.
    let kl = [0.0, 0.5, 1.0, 2.0, 3.0];
    let gold = [0.0, 0.2, 0.3, 0.35, 0.9];
    let all = [true; 5];
    let trusted = [true, true, true, true, false];
    let with = derive(Form::Bon, &kl, &gold, 0, &all);
    let without = derive(Form::Bon, &kl, &gold, 0, &trusted);
    assert_eq!(with.observed_peak, (3.0, 0.9));
    assert_eq!(without.observed_peak, (2.0, 0.35));
    assert_eq!(without.gold_within[4], (8.0, Some(0.35)));
    assert_eq!(
        without.fit.as_ref().unwrap().n,
        3,
        "d = 0 and the flagged point are not fitted"
    );
    assert_ne!(with.fit.unwrap().beta, without.fit.unwrap().beta);
}

#[test]
fn a_curve_whose_first_point_is_the_base_policy_gets_no_second_copy_of_it() {
    // Best-of-1's plug-in KL is 0 up to rounding (here 1e-17): it is the origin.
    let point = |strategy: &str, n: f64, kl: f64| {
        let mut p = CurvePoint::new("t", strategy, "heldout", "n", n, vec![kl; 4]);
        p.gold = crate::stats::Stat::of(&[0.0, 1.0]);
        p
    };
    let records = TaskRecords {
        task: "t".into(),
        records: vec![(
            "pool".into(),
            Record::Pool {
                base: BaseStats::default(),
                points: vec![
                    point("base", 1.0, 0.0),
                    point("bon", 1.0, 1e-17),
                    point("bon", 2.0, 0.2),
                    point("bon", 4.0, 0.6),
                ],
                notes: vec![],
                review: vec![],
                range: vec![],
            },
        )],
    };
    let bon = &analyse(&records)[0];
    assert_eq!(
        bon.points.len(),
        3,
        "{:?}",
        bon.points.iter().map(|p| p.value).collect::<Vec<_>>()
    );
}

#[test]
fn curves_csv_survives_a_labeler_named_with_a_comma_and_a_quote() {
    let name = "camera, \"wide\"";
    let mut p = CurvePoint::new("t", "bon", "heldout", "n", 2.0, vec![0.1; 4]);
    p.labelers = vec![(name.to_string(), crate::stats::Stat::of(&[0.5, 1.0]))];
    p.flag = Some("low ESS, 3.2".into());
    let analysis = StrategyAnalysis {
        task: "t".into(),
        strategy: "bon".into(),
        split: "heldout".into(),
        points: vec![p],
        ..Default::default()
    };
    let text = curves_csv(&[analysis]);
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].len(),
        header.len(),
        "every row as wide as the header"
    );
    let col = |h: &str| header.iter().position(|x| x == h).unwrap();
    assert_eq!(rows[0][col(&format!("labeler_{name}"))], *"0.75");
    assert_eq!(rows[0][col("flag")], *"low ESS, 3.2");
    assert_eq!(rows[0][col("checkpoint")], *"");
}

#[test]
fn every_strategy_of_a_task_starts_from_the_one_base_measurement() {
    let point = |strategy: &str, knob: &str, value: f64, gold: &[f64]| {
        let mut p = CurvePoint::new("t", strategy, "heldout", knob, value, vec![0.0; gold.len()]);
        p.gold = crate::stats::Stat::of(gold);
        if let Some(pp) = p.per_prompt.as_mut() {
            pp.gold = gold.to_vec();
        }
        p
    };
    let moved = |mut p: CurvePoint| {
        p.kl = crate::stats::Stat::of(&[0.4, 0.6]);
        p
    };
    let trained = moved(point("ppo", "iteration", 5.0, &[0.5, 0.5]));
    let records = TaskRecords {
        task: "t".into(),
        records: vec![
            (
                "pool".into(),
                Record::Pool {
                    base: BaseStats::default(),
                    points: vec![
                        point("base", "n", 1.0, &[0.1, 0.3]),
                        point("bon", "n", 1.0, &[0.1, 0.3]),
                        moved(point("bon", "n", 4.0, &[0.4, 0.6])),
                    ],
                    notes: vec![],
                    review: vec![],
                    range: vec![],
                },
            ),
            (
                "rl/ppo".into(),
                Record::Rl {
                    name: "ppo".into(),
                    logs: vec![],
                    // The run's own first checkpoint, measured on fewer samples: not the base it is compared with.
                    points: vec![point("ppo", "iteration", 0.0, &[-0.5, 0.9]), trained],
                    world_model: None,
                },
            ),
        ],
    };
    let analyses = analyse(&records);
    assert_eq!(analyses.len(), 2);
    for a in &analyses {
        let base = &a.points[0];
        assert_eq!(
            base.per_prompt.as_ref().unwrap().gold,
            vec![0.1, 0.3],
            "{}",
            a.strategy
        );
        assert!((a.reference_gold - 0.2).abs() < 1e-12);
    }
    // RL keeps its own knob for the base row (iteration 0), and only one base row.
    let ppo = &analyses[1];
    assert_eq!(
        (ppo.points[0].knob.as_str(), ppo.points[0].value),
        ("iteration", 0.0)
    );
    assert_eq!(ppo.points.len(), 2);
}
