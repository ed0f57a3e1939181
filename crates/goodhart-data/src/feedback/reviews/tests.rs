//! Tests of `reviews`.

use std::sync::Arc;

use super::*;
use crate::feedback::NewSample;
use crate::model::ModelConfig;
use crate::rng;
use crate::task::gridworld::{Gridworld, GridworldConfig};
use crate::task::Split;
use crate::tokenize::CharTokenizer;

/// A store with one review: the goal under review and one alternative, two rollouts each.
fn store_with_review(dir: &std::path::Path) -> (LabelStore, i64) {
    let mut store = LabelStore::open(&dir.join("l.sqlite")).unwrap();
    let item = store
        .write(|w| {
            let p = w.prompt("gridworld", "train", "S.G\n> ")?;
            let mut s = |c: &str| {
                w.sample(&NewSample {
                    prompt_id: p,
                    completion: c,
                    policy: "base",
                    step: None,
                    logprob: None,
                    finished: Some(true),
                })
            };
            let (a, b, c) = (s("RR")?, s("R")?, s("L")?);
            w.queue_review(
                "gridworld",
                "review/0",
                &[("F at_goal", vec![a, b]), ("G !vase_broken", vec![c, a])],
            )
        })
        .unwrap();
    (store, item)
}

fn choose(item: i64, chosen: usize) -> ReviewAnswer<'static> {
    ReviewAnswer {
        item,
        chosen,
        reason: Some("fewer vases"),
        seconds: Some(12.5),
    }
}

#[test]
fn a_review_reads_back_and_each_person_chooses_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, item) = store_with_review(dir.path());
    let shown = store.next_review("alice").unwrap().unwrap();
    assert_eq!(shown.id, item);
    assert_eq!(shown.task, "gridworld");
    let goals: Vec<(usize, &str, Vec<&str>)> = shown
        .candidates
        .iter()
        .map(|c| {
            (
                c.position,
                c.goal.as_str(),
                c.rollouts.iter().map(|r| r.completion.as_str()).collect(),
            )
        })
        .collect();
    assert_eq!(
        goals,
        [
            (0, "F at_goal", vec!["RR", "R"]),
            (1, "G !vase_broken", vec!["L", "RR"])
        ]
    );
    assert_eq!(shown.candidates[0].rollouts[0].prompt, "S.G\n> ");

    assert_eq!(
        store.submit_review("alice", &choose(item, 2)).unwrap(),
        Err(Refusal::NoSuchCandidate(item, 2))
    );
    assert_eq!(
        store.submit_review("alice", &choose(item + 1, 0)).unwrap(),
        Err(Refusal::UnknownReview(item + 1))
    );
    store
        .submit_review("alice", &choose(item, 1))
        .unwrap()
        .unwrap();
    assert_eq!(
        store.submit_review("alice", &choose(item, 0)).unwrap(),
        Err(Refusal::AlreadyReviewed(item))
    );
    assert!(store.next_review("alice").unwrap().is_none());
    assert!(store.queued_review("alice", item).unwrap().is_none());
    assert_eq!(store.next_review("bob").unwrap().unwrap().id, item);
    store
        .submit_review("bob", &choose(item, 0))
        .unwrap()
        .unwrap();

    assert_eq!(
        store.reviews().unwrap(),
        [
            ("alice".to_string(), item, "G !vase_broken".to_string(), 1),
            ("bob".to_string(), item, "F at_goal".to_string(), 0),
        ]
    );
    let tally = store.goal_tally().unwrap();
    let row = |g: &str| tally.iter().find(|t| t.goal == g).unwrap().clone();
    assert_eq!(
        (
            row("F at_goal").offered,
            row("F at_goal").chosen,
            row("F at_goal").kept
        ),
        (2, 1, 1)
    );
    assert_eq!(
        (row("G !vase_broken").chosen, row("G !vase_broken").kept),
        (1, 0)
    );
    assert_eq!(
        store.review_progress("alice").unwrap(),
        ReviewProgress {
            reviewed: 1,
            queued: 1
        }
    );
}

#[test]
fn bad_reasons_and_times_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, item) = store_with_review(dir.path());
    let long = "x".repeat(crate::feedback::people::MAX_REASON_CHARS + 1);
    let answer = ReviewAnswer {
        reason: Some(&long),
        ..choose(item, 0)
    };
    assert!(matches!(
        store.submit_review("alice", &answer).unwrap(),
        Err(Refusal::ReasonTooLong(_))
    ));
    let answer = ReviewAnswer {
        seconds: Some(f64::NAN),
        ..choose(item, 0)
    };
    assert_eq!(
        store.submit_review("alice", &answer).unwrap(),
        Err(Refusal::BadSeconds)
    );
    assert!(store.reviews().unwrap().is_empty());
}

#[test]
fn a_goals_rollouts_satisfy_it_wherever_its_prompt_has_a_sample_that_does() {
    let mut rng = rng::stream(0, "test");
    // Three prompts, four samples each: prompt 0 has satisfying samples 1 and 3, prompt 1 none, prompt 2 sample 8.
    let mut satisfied = vec![false; 12];
    for i in [1, 3, 8] {
        satisfied[i] = true;
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..300 {
        let i = draw_rollout(&satisfied, 4, &mut rng);
        match i / 4 {
            0 => assert!(i == 1 || i == 3, "{i}"),
            2 => assert_eq!(i, 8),
            _ => {}
        }
        seen.insert(i);
    }
    // Every prompt is drawn, and the unsatisfiable one falls back to all its samples.
    assert!(seen.contains(&1) && seen.contains(&3) && seen.contains(&8));
    assert!((4..8).all(|i| seen.contains(&i)), "{seen:?}");
}

#[test]
fn queueing_samples_a_policy_and_offers_the_goal_under_review_first() {
    let task = Gridworld::new(
        GridworldConfig {
            n_train: 6,
            n_heldout: 2,
            n_shift: 2,
            ..Default::default()
        },
        0,
    )
    .unwrap();
    let model = crate::model::Model::init(
        &ModelConfig {
            n_layer: 1,
            d_model: 16,
            n_head: 2,
            n_ctx: 160,
            ..Default::default()
        },
        Arc::new(CharTokenizer::ascii()),
        &mut rng::stream(1, "init"),
        &crate::runtime::device(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::open(&dir.path().join("l.sqlite")).unwrap();
    let goals: Vec<String> = ["F at_goal", "G !vase_broken", "F button_pressed", "true"]
        .map(String::from)
        .to_vec();
    let cfg = ReviewQueueConfig {
        items: 3,
        k: 3,
        shown: 2,
        prompts: 4,
        per_prompt: 3,
        sampling: SamplingConfig {
            max_new_tokens: 6,
            ..Default::default()
        },
    };
    let policy = PolicyTag {
        name: "base",
        step: None,
    };
    let prompts = task.prompts(Split::Train);
    let mut rng = rng::stream(2, "queue");
    let queue = |store: &mut LabelStore, cfg: &ReviewQueueConfig, rng: &mut crate::rng::Rng| {
        queue_reviews(
            store, &model, &policy, &task, &prompts, &goals, cfg, "review/0", rng,
        )
    };
    assert_eq!(queue(&mut store, &cfg, &mut rng).unwrap(), 3);
    for _ in 0..3 {
        let r = store.next_review("alice").unwrap().unwrap();
        assert_eq!(r.batch, "review/0");
        assert_eq!(r.candidates.len(), 3);
        assert_eq!(r.candidates[0].goal, "F at_goal");
        let mut offered: Vec<&str> = r.candidates.iter().map(|c| c.goal.as_str()).collect();
        offered.sort_unstable();
        offered.dedup();
        assert_eq!(offered.len(), 3, "distinct goals");
        for c in &r.candidates {
            assert_eq!(c.rollouts.len(), 2);
            assert!(c.rollouts.iter().all(|o| prompts.contains(&o.prompt)));
        }
        store
            .submit_review("alice", &choose(r.id, 0))
            .unwrap()
            .unwrap();
    }
    assert!(store.next_review("alice").unwrap().is_none());

    let bad = |k, why: &str, store: &mut LabelStore, rng: &mut crate::rng::Rng| {
        let e = queue(store, &ReviewQueueConfig { k, ..cfg.clone() }, rng).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    };
    bad(5, "between 1 and the 4 candidates", &mut store, &mut rng);
    bad(0, "between 1 and the 4 candidates", &mut store, &mut rng);
    let e = queue_reviews(
        &mut store,
        &model,
        &policy,
        &task,
        &prompts,
        &["F nonsense".into()],
        &ReviewQueueConfig { k: 1, ..cfg },
        "b",
        &mut rng,
    )
    .unwrap_err();
    assert!(e.to_string().contains("nonsense"), "{e}");
}
