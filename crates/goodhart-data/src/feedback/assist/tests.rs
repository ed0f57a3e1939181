//! Tests of `assist`: what a queued pair's assistant shows, what a person's
//! label records of it, and statistics by assistance.

use super::*;
use crate::feedback::{Answer, AssistantConfig, HumanLabel, LabelerConfig, NewSample};
use crate::rng;
use crate::task::answers::Question;
use crate::task::{Answers, AnswersConfig};

fn task() -> Answers {
    Answers::new(AnswersConfig::default(), 0).unwrap()
}

fn scripted(accuracy: f64) -> LabelerConfig {
    LabelerConfig {
        name: format!("critic-{accuracy}"),
        assistant: Some(AssistantConfig::scripted(accuracy)),
        ..Default::default()
    }
}

// 345 + 97 = 442: the second column of `wrong` is wrong (4+9+1 = 14, not 13).
const RIGHT: &str = "5+7=12,4+9+1=14,3+0+1=4 so 442.";
const WRONG: &str = "5+7=12,4+9+1=13,3+0+1=4 so 432.";

/// The prompt of 345 + 97 and what a perfect scripted critic shows beside (WRONG, RIGHT).
fn pointed(t: &Answers) -> (String, Assist) {
    let p = Question { a: 345, b: 97 }.prompt();
    let l = Labeler::new(scripted(1.0), t).unwrap();
    let assist = Assist::of(&l, t, &p, WRONG, RIGHT, &mut rng::stream(0, "t"))
        .unwrap()
        .unwrap();
    (p, assist)
}

#[test]
fn a_perfect_critic_points_at_the_first_wrong_step_and_says_where_it_is() {
    let t = task();
    let (p, assist) = pointed(&t);
    assert_eq!(assist.assistant, "critic-1");
    assert_eq!(assist.turns, None);
    let a = &assist.pointers[0];
    assert_eq!((a.side, a.turn, a.step), (PairSide::A, 0, 1));
    assert_eq!(&WRONG[a.start..a.end], "4+9+1=13");
    // The right answer has no wrong step: the critic points somewhere at random, on B.
    assert_eq!(assist.pointers.len(), 2);
    assert_eq!(assist.pointers[1].side, PairSide::B);
    // No assistant, nothing shown.
    let plain = Labeler::new(LabelerConfig::default(), &t).unwrap();
    assert!(
        Assist::of(&plain, &t, &p, WRONG, RIGHT, &mut rng::stream(0, "t"))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_label_records_the_assistance_it_was_made_with_and_stats_split_by_it() {
    let t = task();
    let (p, assist) = pointed(&t);
    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::open(&dir.path().join("l.sqlite")).unwrap();
    // The same pair queued twice: once with the critic, once without.
    let (assisted, plain) = store
        .write(|w| {
            let pid = w.prompt("answers", "train", &p)?;
            let mut s = |c: &str| {
                w.sample(&NewSample {
                    prompt_id: pid,
                    completion: c,
                    policy: "base",
                    step: None,
                    logprob: None,
                    finished: Some(true),
                })
            };
            let (a, b) = (s(WRONG)?, s(RIGHT)?);
            let (c, d) = (s(WRONG)?, s(RIGHT)?);
            let assisted = w.queue(a, b, "people")?;
            w.assist(assisted, &assist)?;
            Ok((assisted, w.queue(c, d, "people")?))
        })
        .unwrap();
    assert_eq!(store.assist(assisted).unwrap().as_ref(), Some(&assist));
    assert_eq!(store.assist(plain).unwrap(), None);
    for name in ["alice", "bob"] {
        store.add_user(name).unwrap();
    }
    // alice is shown the critic's pointer; bob labels the pair without one.
    let next = store.queued_pair("alice", assisted).unwrap().unwrap();
    assert_eq!(next.assist.as_ref(), Some(&assist));
    let answer = |pair, answer| HumanLabel {
        pair,
        answer,
        reason: None,
        seconds: Some(3.0),
    };
    let by_alice = store
        .submit("alice", &answer(assisted, Answer::B))
        .unwrap()
        .unwrap();
    let by_bob = store
        .submit("bob", &answer(plain, Answer::A))
        .unwrap()
        .unwrap();
    assert_eq!(
        store.shown_with(by_alice).unwrap(),
        Some((assisted, Some("critic-1".to_string())))
    );
    assert_eq!(store.shown_with(by_bob).unwrap(), Some((plain, None)));

    let gold = |_: &str, p: &str, c: &str| t.gold(p, c).ok();
    let stats = store.labeler_stats(&gold).unwrap();
    let rows: Vec<(&str, Option<&str>, Tally)> = stats
        .iter()
        .map(|s| (s.labeler.as_str(), s.assistant.as_deref(), s.gold_agreement))
        .collect();
    assert_eq!(
        rows,
        [
            ("alice", Some("critic-1"), Tally::new(1, 1)),
            ("bob", None, Tally::new(0, 1))
        ]
    );
    let pooled = people_by_assistant(&stats);
    assert_eq!(pooled.len(), 2);
    assert_eq!(
        (pooled[0].assistant.as_deref(), pooled[0].gold_agreement),
        (None, Tally::new(0, 1))
    );
    assert_eq!(
        (
            pooled[1].assistant.as_deref(),
            pooled[1].people,
            pooled[1].labels
        ),
        (Some("critic-1"), 1, 1)
    );
}
