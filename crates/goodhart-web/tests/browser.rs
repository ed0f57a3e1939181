//! The page in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`, installed by `.ci/run`). Sign in
//! from the link `goodhart label add-user` prints, label three gridworld pairs
//! with the keyboard, undo the last, and check the store; then review candidate
//! goals on the review page, with a key and a click.
//!
//! `GOODHART_SCREENSHOT=path.png` also saves a screenshot of the page.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use goodhart_data::feedback::{Answer, Filter, LabelStore};
use goodhart_web::{serve, App};
use hyper_util::client::legacy::connect::HttpConnector;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, killed when dropped.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> Driver {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "the browser test needs {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver (.ci/run does)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    Driver(child, port)
}

async fn connect(port: u16) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1200,900"],
        }),
    );
    let started = Instant::now();
    loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return c,
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot start a WebDriver session: {e}"),
        }
    }
}

/// Poll a JavaScript expression until `ok` holds of its value.
async fn wait_for(
    c: &Client,
    expr: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = Instant::now();
    loop {
        let v = c.execute(&format!("return {expr};"), vec![]).await.unwrap();
        if ok(&v) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {expr} (last {v})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The labeling server on a free loopback port.
struct Server {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(store: &std::path::Path) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, App::open(store).unwrap(), async {
            let _ = stopped.await;
        }));
        Self { addr, stop, task }
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        self.task.await.unwrap().unwrap();
    }
}

/// The id on screen in `document.body.dataset[key]` ("pair" or "review"), once it is not `not`.
async fn on_screen(c: &Client, key: &str, not: Option<i64>) -> i64 {
    let v = wait_for(c, &format!("document.body.dataset.{key} || null"), |v| {
        v.as_str()
            .and_then(|s| s.parse::<i64>().ok())
            .is_some_and(|p| Some(p) != not)
    })
    .await;
    v.as_str().unwrap().parse().unwrap()
}

/// A server over `store` and a browser signed in as `name` (a new person)
/// through the link `label add-user` prints.
async fn signed_in(driver: &Driver, store: &std::path::Path, name: &str) -> (Server, Client) {
    let token = LabelStore::open_existing(store)
        .unwrap()
        .add_user(name)
        .unwrap();
    let server = Server::start(store).await;
    let c = connect(driver.1).await;
    c.goto(&format!("http://{}/#signin={name}:{token}", server.addr))
        .await
        .unwrap();
    (server, c)
}

async fn pair_on_screen(c: &Client, not: Option<i64>) -> i64 {
    on_screen(c, "pair", not).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_three_pairs_with_the_keyboard_and_undo_one() {
    let driver = chromedriver();
    let dir = tempfile::tempdir().unwrap();
    let store = common::queued_store(dir.path(), 5);
    let (server, c) = signed_in(&driver, &store, "alice").await;
    let first = pair_on_screen(&c, None).await;
    // The gridworld pair is shown as the camera's frames, with a step slider.
    let frames = wait_for(
        &c,
        "document.querySelectorAll('#side-a g.frame').length",
        |v| v.as_u64().is_some_and(|n| n > 1),
    )
    .await;
    assert!(frames.as_u64().unwrap() > 1);
    if let Ok(path) = std::env::var("GOODHART_SCREENSHOT") {
        std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
    }
    let body = c.find(Locator::Css("body")).await.unwrap();

    body.send_keys("1").await.unwrap(); // A is better
    let second = pair_on_screen(&c, Some(first)).await;
    body.send_keys(&char::from(Key::Right).to_string())
        .await
        .unwrap(); // B is better
    let third = pair_on_screen(&c, Some(second)).await;
    body.send_keys("3").await.unwrap(); // tie
    pair_on_screen(&c, Some(third)).await;
    body.send_keys("u").await.unwrap(); // undo the tie: the third pair is back
    wait_for(&c, "document.getElementById('status').textContent", |v| {
        v.as_str().is_some_and(|s| s.contains("Undone"))
    })
    .await;
    assert_eq!(pair_on_screen(&c, None).await, third);
    let progress = c
        .find(Locator::Id("progress"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(progress.starts_with("2 / 5 labelled"), "{progress}");
    c.close().await.unwrap();
    server.stop().await;

    let s = LabelStore::open_existing(&store).unwrap();
    let labels = s.comparisons(&Filter::default()).unwrap();
    let got: Vec<(&str, Answer)> = labels
        .iter()
        .map(|c| (c.labeler.as_str(), c.answer))
        .collect();
    assert_eq!(got, [("alice", Answer::A), ("alice", Answer::B)]);
    assert!(
        s.queued_pair("alice", third).unwrap().is_some(),
        "undone pair is queued again"
    );
    assert!(s.queued_pair("alice", first).unwrap().is_none());
}

async fn review_on_screen(c: &Client, not: Option<i64>) -> i64 {
    on_screen(c, "review", not).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_candidate_goals_with_a_key_and_a_click() {
    let driver = chromedriver();
    let dir = tempfile::tempdir().unwrap();
    let store = common::queued_store(dir.path(), 1);
    common::queue_reviews(&store, 2);
    let token = LabelStore::open_existing(&store)
        .unwrap()
        .add_user("carol")
        .unwrap();
    let server = Server::start(&store).await;
    let addr = server.addr;

    let c = connect(driver.1).await;
    // Signed out, the review page sends people to sign in.
    c.goto(&format!("http://{addr}/review")).await.unwrap();
    wait_for(&c, "!document.getElementById('signin').hidden", |v| {
        v.as_bool() == Some(true)
    })
    .await;
    c.goto(&format!("http://{addr}/#signin=carol:{token}"))
        .await
        .unwrap();
    pair_on_screen(&c, None).await;
    c.goto(&format!("http://{addr}/review")).await.unwrap();
    let first = review_on_screen(&c, None).await;
    // Three candidate goals, two rollouts each, each drawn on the full state.
    let drawn = wait_for(
        &c,
        "document.querySelectorAll('#candidates .candidate .rollout svg').length",
        |v| v.as_u64().is_some_and(|n| n > 0),
    )
    .await;
    assert_eq!(drawn.as_u64(), Some(6));
    if let Ok(path) = std::env::var("GOODHART_REVIEW_SCREENSHOT") {
        std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
    }
    let body = c.find(Locator::Css("body")).await.unwrap();
    body.send_keys("3").await.unwrap(); // the second alternative
    let second = review_on_screen(&c, Some(first)).await;
    c.find(Locator::Css(".candidate[data-position='0'] .choose"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap(); // keep the goal under review
    wait_for(&c, "!document.getElementById('done').hidden", |v| {
        v.as_bool() == Some(true)
    })
    .await;
    let progress = c
        .find(Locator::Id("progress"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(progress, "2 / 2 reviewed");
    c.close().await.unwrap();
    server.stop().await;

    let s = LabelStore::open_existing(&store).unwrap();
    assert_eq!(
        s.reviews().unwrap(),
        [
            (
                "carol".to_string(),
                first,
                "G !button_pressed".to_string(),
                2
            ),
            ("carol".to_string(), second, "F at_goal".to_string(), 0),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_a_pair_with_the_critics_pointer_and_one_with_a_debate_shown() {
    let driver = chromedriver();
    let dir = tempfile::tempdir().unwrap();
    let store = common::assisted_store(dir.path());
    let (server, c) = signed_in(&driver, &store, "dana").await;
    let first = pair_on_screen(&c, None).await;
    // The critic's pointer: A's wrong column is marked, and the box says which step to check.
    let marked = wait_for(
        &c,
        "[...document.querySelectorAll('#side-a mark.pointed')].map(m => m.textContent)",
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert_eq!(marked, serde_json::json!(["4+9+1=13"]));
    let said = c
        .find(Locator::Id("assist"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        said.contains("Check A's step 2: ") && said.contains("4+9+1=13"),
        "{said}"
    );
    let body = c.find(Locator::Css("body")).await.unwrap();
    body.send_keys("2").await.unwrap(); // B is better
    pair_on_screen(&c, Some(first)).await;
    // The debate: two turns, each side's debater pointing at the other's steps.
    let turns = wait_for(
        &c,
        "[...document.querySelectorAll('#assist-turns li')].map(l => l.textContent)",
        |v| v.as_array().is_some_and(|a| a.len() == 2),
    )
    .await;
    let first_turn = turns[0].as_str().unwrap();
    assert!(
        first_turn.starts_with("B's debater says A's step 2 is wrong")
            && first_turn.contains("A's debater says B's step 4 is wrong"),
        "{turns}"
    );
    let marks = c
        .execute(
            "return document.querySelectorAll('#side-a mark.pointed, #side-b mark.pointed').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(marks, serde_json::json!(4));
    if let Ok(path) = std::env::var("GOODHART_ASSIST_SCREENSHOT") {
        std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
    }
    body.send_keys("1").await.unwrap(); // A is better (wrongly)
    wait_for(&c, "!document.getElementById('done').hidden", |v| {
        v.as_bool() == Some(true)
    })
    .await;
    c.close().await.unwrap();
    server.stop().await;

    // The store says what each label was shown.
    let s = LabelStore::open_existing(&store).unwrap();
    let labels = s.comparisons(&Filter::default()).unwrap();
    let shown: Vec<(Answer, Option<String>)> = labels
        .iter()
        .map(|l| (l.answer, s.shown_with(l.id).unwrap().unwrap().1))
        .collect();
    assert_eq!(
        shown,
        [
            (Answer::B, Some("critic-10".to_string())),
            (Answer::A, Some("debate-2".to_string()))
        ]
    );
}
