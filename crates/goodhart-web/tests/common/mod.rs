//! Shared fixtures: a label store with gridworld pairs (and reviews) queued,
//! signed-in people, and a server's answer to one request.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use goodhart_data::feedback::{LabelStore, NewSample};
use goodhart_data::task::{self, Split};
use goodhart_web::{router, App, ServeOptions};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A store with pairs queued, a server over it, and alice signed in.
pub struct Fixture {
    pub _dir: Option<tempfile::TempDir>,
    pub store: PathBuf,
    pub app: Arc<App>,
    pub cookie: String,
    pub csrf: String,
}

impl Fixture {
    pub fn new(pairs: usize, options: ServeOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let fixture = Self::in_dir(dir.path(), pairs, options);
        Self {
            _dir: Some(dir),
            ..fixture
        }
    }

    /// The same in a directory the caller keeps.
    pub fn in_dir(dir: &Path, pairs: usize, options: ServeOptions) -> Self {
        let store = queued_store(dir, pairs);
        let (cookie, csrf) = signed_in(&store, "alice");
        let app = App::open_with(&store, options).unwrap();
        Self {
            _dir: None,
            store,
            app,
            cookie,
            csrf,
        }
    }

    /// The server's answer: status, JSON body (or the text as a string), any cookie set.
    pub async fn respond(&self, req: Request<Body>) -> (StatusCode, Value, Option<String>) {
        let res = router(self.app.clone()).oneshot(req).await.unwrap();
        let status = res.status();
        let cookie = res
            .headers()
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value, cookie)
    }
}

/// Moves for the two sides of queued pair `i`.
fn moves(i: usize) -> (String, String) {
    let a = ["RRDD", "DDRR", "RDRD", "RRRD"][i % 4];
    let b = ["DRDR", "RRRR", "DDDD", "URDL"][i % 4];
    (a.to_string(), format!("{b}{}", "R".repeat(i / 4 % 3)))
}

/// Record a test policy's completion of prompt `p`.
fn sample(
    w: &mut goodhart_data::feedback::store::Writer,
    p: i64,
    completion: &str,
) -> goodhart_data::Result<i64> {
    w.sample(&NewSample {
        prompt_id: p,
        completion,
        policy: "test",
        step: None,
        logprob: None,
        finished: None,
    })
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
                let (sa, sb) = (sample(w, p, &a)?, sample(w, p, &b)?);
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

/// Queue `n` reviews of gridworld goals in `store`: the goal under review and
/// two alternatives, two rollouts each (moves that reach the goal or not).
pub fn queue_reviews(store: &Path, n: usize) {
    let grid = task::by_name("gridworld").unwrap().build(0).unwrap();
    let prompts = grid.prompts(Split::Train);
    let mut store = LabelStore::open_existing(store).unwrap();
    store
        .write(|w| {
            for i in 0..n {
                let p = w.prompt("gridworld", "train", &prompts[i % prompts.len()])?;
                let mut rollouts = |moves: [&str; 2]| {
                    moves
                        .iter()
                        .map(|m| {
                            w.sample(&NewSample {
                                prompt_id: p,
                                completion: m,
                                policy: "test",
                                step: None,
                                logprob: None,
                                finished: Some(true),
                            })
                        })
                        .collect::<goodhart_data::Result<Vec<i64>>>()
                };
                let candidates = [
                    ("F at_goal", rollouts(["RRDD", "DDRR"])?),
                    ("F at_goal & G !vase_broken", rollouts(["RDRD", "RRRD"])?),
                    ("G !button_pressed", rollouts(["DDDD", "URDL"])?),
                ];
                w.queue_review("gridworld", "review", &candidates)?;
            }
            Ok(())
        })
        .unwrap();
}

/// 345 + 97 = 442, answered with working: right, and wrong in its second column.
pub const RIGHT: &str = "5+7=12,4+9+1=14,3+0+1=4 so 442.";
pub const WRONG: &str = "5+7=12,4+9+1=13,3+0+1=4 so 432.";

/// A store with two answers pairs (wrong vs right) queued for people: the
/// first with a perfect scripted critic's pointers (labeler "critic-10"), the
/// second with a two-turn debate's (labeler "debate-2").
pub fn assisted_store(dir: &Path) -> PathBuf {
    use goodhart_data::feedback::{
        Assist, AssistantConfig, Labeler, LabelerConfig, PairSide, Pointer,
    };
    let path = dir.join("labels.sqlite");
    let answers = task::by_name("answers").unwrap().build(0).unwrap();
    let prompt = goodhart_data::task::answers::Question { a: 345, b: 97 }.prompt();
    let critic = Labeler::new(
        LabelerConfig {
            name: "critic-10".into(),
            assistant: Some(AssistantConfig::scripted(1.0)),
            ..Default::default()
        },
        answers.as_ref(),
    )
    .unwrap();
    let mut rng = goodhart_data::rng::stream(0, "test");
    let pointed = Assist::of(&critic, answers.as_ref(), &prompt, WRONG, RIGHT, &mut rng)
        .unwrap()
        .unwrap();
    let spans = |text: &str| answers.step_spans(&prompt, text);
    let pointer = |side, turn, step: usize| {
        let span = spans(if side == PairSide::A { WRONG } else { RIGHT })[step].clone();
        Pointer {
            side,
            turn,
            step,
            start: span.start,
            end: span.end,
        }
    };
    let debate = Assist {
        assistant: "debate-2".into(),
        turns: Some(2),
        pointers: vec![
            pointer(PairSide::A, 0, 1),
            pointer(PairSide::B, 0, 3),
            pointer(PairSide::A, 1, 3),
            pointer(PairSide::B, 1, 0),
        ],
    };
    let mut store = LabelStore::open(&path).unwrap();
    store
        .write(|w| {
            let p = w.prompt("answers", "train", &prompt)?;
            for assist in [&pointed, &debate] {
                let (a, b) = (sample(w, p, WRONG)?, sample(w, p, RIGHT)?);
                let queued = w.queue(a, b, "people")?;
                w.assist(queued, assist)?;
            }
            Ok(())
        })
        .unwrap();
    path
}
