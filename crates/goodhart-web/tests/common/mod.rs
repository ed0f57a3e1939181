//! Shared fixtures: a label store with gridworld pairs queued, and signed-in people.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use goodhart::feedback::{LabelStore, NewSample};
use goodhart::task::{self, Split};

/// Moves for the two sides of queued pair `i`.
fn moves(i: usize) -> (String, String) {
    let a = ["RRDD", "DDRR", "RDRD", "RRRD"][i % 4];
    let b = ["DRDR", "RRRR", "DDDD", "URDL"][i % 4];
    (a.to_string(), format!("{b}{}", "R".repeat(i / 4 % 3)))
}

/// A store at `dir/labels.sqlite` with `n` gridworld pairs queued in batch "people".
pub fn queued_store(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("labels.sqlite");
    let grid = task::by_name("gridworld").unwrap().build(0).unwrap();
    let prompts = grid.prompts(Split::Train);
    let mut store = LabelStore::open(&path).unwrap();
    store
        .write(|w| {
            for i in 0..n {
                let p = w.prompt("gridworld", "train", &prompts[i % prompts.len()])?;
                let (a, b) = moves(i);
                let mut s = |c: &str| {
                    w.sample(&NewSample {
                        prompt_id: p,
                        completion: c,
                        policy: "test",
                        step: None,
                        logprob: None,
                        finished: None,
                    })
                };
                let (sa, sb) = (s(&a)?, s(&b)?);
                w.queue(sa, sb, "people")?;
            }
            Ok(())
        })
        .unwrap();
    path
}

/// A signed-in person: (cookie secret, CSRF token).
pub fn signed_in(store: &Path, name: &str) -> (String, String) {
    let mut store = LabelStore::open_existing(store).unwrap();
    let token = store.add_user(name).unwrap();
    let (cookie, session) = store.sign_in(name, &token).unwrap().unwrap();
    (cookie, session.csrf)
}
