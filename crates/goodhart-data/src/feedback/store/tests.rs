//! Tests of `store`.

use super::*;

fn fill(store: &mut LabelStore) -> (i64, i64) {
    store
        .write(|w| {
            let p = w.prompt("answers", "train", "Q: 1+1\nA: ")?;
            let a = w.sample(&NewSample {
                prompt_id: p,
                completion: "2.",
                policy: "base",
                step: None,
                logprob: Some(-1.0),
                finished: None,
            })?;
            let b = w.sample(&NewSample {
                prompt_id: p,
                completion: "3.",
                policy: "base",
                step: None,
                logprob: None,
                finished: None,
            })?;
            for (labeler, answer) in [
                ("quick", Answer::A),
                ("careful", Answer::B),
                ("quick", Answer::Tie),
                ("quick", Answer::CantTell),
            ] {
                w.comparison(&NewComparison {
                    sample_a: a,
                    sample_b: b,
                    labeler,
                    answer,
                    reason: None,
                    batch: Some("0"),
                    seconds: None,
                })?;
            }
            Ok((a, b))
        })
        .unwrap()
}

#[test]
fn stores_reads_and_filters_comparisons() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels.sqlite");
    let mut store = LabelStore::open(&path).unwrap();
    fill(&mut store);
    assert_eq!(store.count_comparisons().unwrap(), 4);
    let quick = store
        .comparisons(&Filter {
            labelers: vec!["quick".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(quick.len(), 3);
    assert_eq!(
        (quick[0].a.as_str(), quick[0].b.as_str(), quick[0].answer),
        ("2.", "3.", Answer::A)
    );
    drop(store);
    let store = LabelStore::open_existing(&path).unwrap();
    store.check_integrity().unwrap();
    assert_eq!(store.count_comparisons().unwrap(), 4);
}

#[test]
fn whether_a_completion_finished_is_kept_and_read_back_as_the_sampled_tokens() {
    use crate::tokenize::{CharTokenizer, Tokenizer};
    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::open(&dir.path().join("l.sqlite")).unwrap();
    store
        .write(|w| {
            let p = w.prompt("answers", "train", "Q: 7+8\nA: ")?;
            let mut add = |text, finished| {
                w.sample(&NewSample {
                    prompt_id: p,
                    completion: text,
                    policy: "base",
                    step: None,
                    logprob: None,
                    finished,
                })
            };
            let cut = add("1 + 1 + 1 + 1", Some(false))?;
            let done = add("15.", Some(true))?;
            let imported = add("16.", None)?;
            for (a, b) in [(cut, done), (done, imported)] {
                w.comparison(&NewComparison {
                    sample_a: a,
                    sample_b: b,
                    labeler: "quick",
                    answer: Answer::B,
                    reason: None,
                    batch: None,
                    seconds: None,
                })?;
            }
            Ok(())
        })
        .unwrap();
    let c = store.comparisons(&Filter::default()).unwrap();
    assert_eq!(
        (c[0].a_finished, c[0].b_finished, c[1].b_finished),
        (false, true, true),
        "unknown (imported) completions count as finished"
    );
    // The reward model learns a cut completion without the EOS it never had.
    let tok = CharTokenizer::ascii();
    let cut = tok.encode_completion_as(&c[0].a, c[0].a_finished).unwrap();
    assert_eq!(cut, tok.encode("1 + 1 + 1 + 1").unwrap());
    let done = tok.encode_completion_as(&c[0].b, c[0].b_finished).unwrap();
    assert_eq!(done.last(), Some(&tok.eos_id()));
}

#[test]
fn a_store_written_before_samples_recorded_finishing_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        let store = LabelStore::open(&path).unwrap();
        // An older store: the samples table without the `finished` column.
        store
            .conn
            .execute_batch(
                "PRAGMA foreign_keys = OFF;
                 CREATE TABLE s2 (id INTEGER PRIMARY KEY, prompt_id INTEGER NOT NULL REFERENCES prompts(id),
                    completion TEXT NOT NULL, policy TEXT NOT NULL, step INTEGER, logprob REAL,
                    created_at INTEGER NOT NULL);
                 DROP TABLE samples; ALTER TABLE s2 RENAME TO samples;",
            )
            .unwrap();
    }
    let mut store = LabelStore::open(&path).unwrap();
    fill(&mut store);
    assert!(store.comparisons(&Filter::default()).unwrap()[0].a_finished);
}

#[test]
fn a_failed_transaction_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::open(&dir.path().join("l.sqlite")).unwrap();
    let r: Result<()> = store.write(|w| {
        let p = w.prompt("answers", "train", "Q: 1+1\nA: ")?;
        w.sample(&NewSample {
            prompt_id: p,
            completion: "2.",
            policy: "base",
            step: None,
            logprob: None,
            finished: None,
        })?;
        Err(Error::invalid("test", "abort"))
    });
    assert!(r.is_err());
    let n: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM samples", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn retracting_a_batch_hides_it_and_its_sub_batches_but_keeps_the_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::open(&dir.path().join("l.sqlite")).unwrap();
    fill(&mut store); // batch "0"
    store
        .write(|w| {
            let p = w.prompt("answers", "train", "Q: 2+2\nA: ")?;
            let a = w.sample(&NewSample {
                prompt_id: p,
                completion: "4.",
                policy: "x",
                step: None,
                logprob: None,
                finished: None,
            })?;
            let b = w.sample(&NewSample {
                prompt_id: p,
                completion: "5.",
                policy: "x",
                step: None,
                logprob: None,
                finished: None,
            })?;
            for batch in ["online/ppo/5", "online/ppo2/5"] {
                w.comparison(&NewComparison {
                    sample_a: a,
                    sample_b: b,
                    labeler: "quick",
                    answer: Answer::A,
                    reason: None,
                    batch: Some(batch),
                    seconds: None,
                })?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(store.retract_batch("online/ppo").unwrap(), 1);
    assert_eq!(
        store.retract_batch("online/ppo").unwrap(),
        0,
        "already withdrawn"
    );
    let live: Vec<_> = store
        .comparisons(&Filter::default())
        .unwrap()
        .into_iter()
        .filter_map(|c| c.batch)
        .collect();
    assert_eq!(live, ["0", "0", "0", "0", "online/ppo2/5"]);
    let rows: i64 = store
        .conn
        .query_row("SELECT COUNT(*) FROM comparisons", [], |r| r.get(0))
        .unwrap();
    let logged: i64 = store
        .conn
        .query_row(
            "SELECT COUNT(*) FROM history WHERE event = 'retract'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((rows, logged), (6, 1));
}

#[test]
fn history_is_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::open(&dir.path().join("l.sqlite")).unwrap();
    fill(&mut store);
    let err = store
        .conn
        .execute("DELETE FROM history", [])
        .unwrap_err()
        .to_string();
    assert!(err.contains("append-only"), "{err}");
    assert!(store
        .conn
        .execute("UPDATE history SET event = 'x'", [])
        .is_err());
}

#[test]
fn rejects_files_that_are_not_label_stores_and_leaves_them_alone() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.sqlite");
    std::fs::write(
        &text,
        b"these are my notes, not a database, and long enough to matter........",
    )
    .unwrap();
    let err = LabelStore::open(&text).err().unwrap().to_string();
    assert!(err.contains("not a goodhart label store"), "{err}");
    assert!(std::fs::read(&text)
        .unwrap()
        .starts_with(b"these are my notes"));
    let other = dir.path().join("other.sqlite");
    Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER);")
        .unwrap();
    let err = LabelStore::open(&other).err().unwrap().to_string();
    assert!(err.contains("not a goodhart label store"), "{err}");
    assert!(LabelStore::open_existing(&dir.path().join("missing.sqlite")).is_err());
}

#[test]
fn jsonl_round_trip_and_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = LabelStore::open(&dir.path().join("a.sqlite")).unwrap();
    fill(&mut store);
    let mut out = vec![];
    let n = store.export_jsonl(&Filter::default(), &mut out).unwrap();
    assert_eq!(n, 3, "can't-tell has no preference to export");
    let text = String::from_utf8(out).unwrap();
    let first: PreferenceLine = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(
        (first.chosen.as_str(), first.rejected.as_str()),
        ("2.", "3.")
    );
    let second: PreferenceLine = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    assert_eq!(
        (second.chosen.as_str(), second.labeler.as_deref()),
        ("3.", Some("careful"))
    );

    let file = dir.path().join("prefs.jsonl");
    std::fs::write(&file, &text).unwrap();
    let mut other = LabelStore::open(&dir.path().join("b.sqlite")).unwrap();
    let r = other
        .import_jsonl(&file, "answers", "imported", OnBadLine::Stop, "import")
        .unwrap();
    assert_eq!(r.imported, 3);
    let back = other.comparisons(&Filter::default()).unwrap();
    assert_eq!(back.iter().filter(|c| c.answer == Answer::Tie).count(), 1);
    assert_eq!(back[1].labeler, "careful");

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        format!(
            "{}\n{{\"prompt\": \"p\", \"chosen\": \"x\"}}\nnot json\n",
            text.lines().next().unwrap()
        ),
    )
    .unwrap();
    let before = other.count_comparisons().unwrap();
    let err = other
        .import_jsonl(&bad, "answers", "x", OnBadLine::Stop, "import")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.jsonl:2:") && err.contains("missing field `rejected`"),
        "{err}"
    );
    assert_eq!(
        other.count_comparisons().unwrap(),
        before,
        "stopping imports nothing"
    );
    let r = other
        .import_jsonl(&bad, "answers", "x", OnBadLine::Skip, "import")
        .unwrap();
    assert_eq!(r.imported, 1);
    assert_eq!(
        r.skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![2, 3]
    );
}
