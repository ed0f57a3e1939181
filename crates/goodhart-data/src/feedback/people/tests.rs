//! Tests of `people`.

use super::*;
use crate::feedback::sessions::SessionLimits;
use crate::feedback::NewSample;

/// A store with `n` queued pairs of answers completions ("4." vs "5.").
fn queued_store(dir: &std::path::Path, n: usize) -> (LabelStore, Vec<i64>) {
    let mut store = LabelStore::open(&dir.join("l.sqlite")).unwrap();
    let ids = store
        .write(|w| {
            (0..n)
                .map(|i| {
                    let p = w.prompt("answers", "train", &format!("Q: {i}+4\nA: "))?;
                    let mut s = |c: &str| {
                        w.sample(&NewSample {
                            prompt_id: p,
                            completion: c,
                            policy: "base",
                            step: None,
                            logprob: None,
                            finished: None,
                        })
                    };
                    let (a, b) = (s(&format!("{}.", i + 4))?, s("wrong.")?);
                    w.queue(a, b, "people/0")
                })
                .collect::<Result<Vec<_>>>()
        })
        .unwrap();
    (store, ids)
}

fn label(pair: i64, answer: Answer) -> HumanLabel<'static> {
    HumanLabel {
        pair,
        answer,
        reason: None,
        seconds: Some(2.0),
    }
}

#[test]
fn tokens_sign_in_once_and_sessions_identify_the_person() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = queued_store(dir.path(), 1);
    let token = store.add_user("alice").unwrap();
    assert_eq!(token.len(), 64);
    assert!(store.sign_in("alice", "0000").unwrap().is_none());
    assert!(store.sign_in("bob", &token).unwrap().is_none());
    let (cookie, session) = store.sign_in("alice", &token).unwrap().unwrap();
    assert_eq!(session.user, "alice");
    assert!(
        store.sign_in("alice", &token).unwrap().is_none(),
        "the token is one-time"
    );
    assert_eq!(
        store.session(&cookie, &SessionLimits::default()).unwrap(),
        Some(session)
    );
    assert_eq!(
        store.session("forged", &SessionLimits::default()).unwrap(),
        None
    );
    store.sign_out(&cookie).unwrap();
    assert_eq!(
        store.session(&cookie, &SessionLimits::default()).unwrap(),
        None
    );
    assert!(store.add_user("al ice").is_err());
    assert!(store.add_user("").is_err());
}

#[test]
fn sessions_end_when_idle_or_old_on_a_new_token_and_on_revocation() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = queued_store(dir.path(), 1);
    let limits = SessionLimits::default();
    let sign_in = |store: &mut LabelStore| {
        let token = store.add_user("alice").unwrap();
        store.sign_in("alice", &token).unwrap().unwrap().0
    };
    // Idle: no request for longer than the limit (here: 0 ms allowed, after a pause).
    let cookie = sign_in(&mut store);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let strict = SessionLimits {
        idle_ms: 1,
        ..limits
    };
    assert_eq!(store.session(&cookie, &strict).unwrap(), None);
    assert_eq!(
        store.session(&cookie, &limits).unwrap(),
        None,
        "ended for good"
    );
    // Old: past the absolute age, however busy.
    let cookie = sign_in(&mut store);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let short = SessionLimits {
        max_age_ms: 1,
        ..limits
    };
    assert_eq!(store.session(&cookie, &short).unwrap(), None);
    // A new token ends the sessions of the old one.
    let cookie = sign_in(&mut store);
    assert!(store.session(&cookie, &limits).unwrap().is_some());
    store.add_user("alice").unwrap();
    assert_eq!(store.session(&cookie, &limits).unwrap(), None);
    // Revoking ends the sessions...
    let cookie = sign_in(&mut store);
    assert!(store.revoke_user("alice").unwrap());
    assert_eq!(store.session(&cookie, &limits).unwrap(), None);
    // ...and the token not yet used.
    let token = store.add_user("alice").unwrap();
    assert!(store.revoke_user("alice").unwrap());
    assert!(store.sign_in("alice", &token).unwrap().is_none());
    assert!(!store.revoke_user("nobody").unwrap());
}

#[test]
fn each_person_sees_each_pair_once_and_labels_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, ids) = queued_store(dir.path(), 3);
    let first = store.next_pair("alice").unwrap().unwrap();
    assert_eq!((first.id, first.a.as_str()), (ids[0], "4."));
    store
        .submit("alice", &label(ids[0], Answer::A))
        .unwrap()
        .unwrap();
    assert_eq!(
        store.submit("alice", &label(ids[0], Answer::B)).unwrap(),
        Err(Refusal::AlreadyLabelled(ids[0]))
    );
    assert_eq!(
        store.submit("alice", &label(999, Answer::B)).unwrap(),
        Err(Refusal::UnknownPair(999))
    );
    let long = "x".repeat(MAX_REASON_CHARS + 1);
    let bad = HumanLabel {
        reason: Some(&long),
        ..label(ids[1], Answer::A)
    };
    assert_eq!(
        store.submit("alice", &bad).unwrap(),
        Err(Refusal::ReasonTooLong(MAX_REASON_CHARS + 1))
    );
    // Bob gets the pairs nobody labelled first.
    assert_eq!(store.next_pair("bob").unwrap().unwrap().id, ids[1]);
    assert_eq!(store.next_pair("alice").unwrap().unwrap().id, ids[1]);
    store
        .submit("alice", &label(ids[1], Answer::B))
        .unwrap()
        .unwrap();
    assert_eq!(store.undo("alice").unwrap(), Some(ids[1]));
    assert_eq!(store.next_pair("alice").unwrap().unwrap().id, ids[1]);
    assert_eq!(
        store.queued_pair("alice", ids[2]).unwrap().unwrap().id,
        ids[2]
    );
    assert_eq!(
        store.queued_pair("alice", ids[0]).unwrap(),
        None,
        "labelled"
    );
    let p = store.progress("alice").unwrap();
    assert_eq!((p.labelled, p.queued), (1, 3));
    for id in &ids[1..] {
        store
            .submit("alice", &label(*id, Answer::A))
            .unwrap()
            .unwrap();
    }
    assert_eq!(store.next_pair("alice").unwrap(), None);
    assert_eq!(
        store.human_labels_in_batch("people/0").unwrap(),
        0,
        "alice is not a user yet"
    );
    assert!(
        store.add_user("alice").is_err(),
        "a name already labelling without an account belongs to a simulated labeler"
    );
    store.add_user("carol").unwrap();
    store
        .submit("carol", &label(ids[0], Answer::Tie))
        .unwrap()
        .unwrap();
    assert_eq!(store.human_labels_in_batch("people/0").unwrap(), 1);
    // A withdrawn batch's pairs are shown to nobody and take no labels.
    store.retract_batch("people").unwrap();
    assert_eq!(store.queued().unwrap(), 0);
    assert_eq!(store.next_pair("dave").unwrap(), None);
    assert_eq!(
        store.submit("dave", &label(ids[0], Answer::A)).unwrap(),
        Err(Refusal::UnknownPair(ids[0]))
    );
    // Undo leaves the row and logs it.
    let (rows, undos): (i64, i64) = store
        .conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM comparisons), (SELECT COUNT(*) FROM history WHERE event = 'undo')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, undos), (5, 1));
}

#[test]
fn stats_count_agreement_between_people_and_with_gold() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, ids) = queued_store(dir.path(), 4);
    for (i, id) in ids.iter().enumerate() {
        store
            .submit("alice", &label(*id, Answer::A))
            .unwrap()
            .unwrap();
        let bob = if i == 0 { Answer::B } else { Answer::A };
        store.submit("bob", &label(*id, bob)).unwrap().unwrap();
    }
    // Gold: the first completion ("N.") is right.
    let gold = |_: &str, _: &str, c: &str| Some(if c == "wrong." { -1.0 } else { 1.0 });
    let stats = store.labeler_stats(&gold).unwrap();
    assert_eq!(stats.len(), 2);
    let (a, b) = (&stats[0], &stats[1]);
    assert_eq!(
        (a.labeler.as_str(), a.comparisons, a.answers),
        (
            "alice",
            4,
            crate::feedback::AnswerCounts {
                a: 4,
                ..Default::default()
            }
        )
    );
    assert_eq!(a.agreement, Tally::new(3, 4));
    assert_eq!(b.agreement, Tally::new(3, 4));
    assert_eq!(a.gold_agreement, Tally::new(4, 4));
    assert_eq!(b.gold_agreement, Tally::new(3, 4));
    assert_eq!(a.median_seconds, Some(2.0));
}
