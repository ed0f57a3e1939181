//! Killing the server mid-load loses nothing it acknowledged: the server runs
//! in a child process (this test binary again), is SIGKILLed while clients are
//! submitting, and every acknowledged label must be in the store.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use goodhart_data::feedback::{Filter, LabelStore};
use goodhart_web::{serve, App, COOKIE, CSRF_HEADER};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const PEOPLE: usize = 8;
const PAIRS: usize = 100;
const KILL_AFTER: usize = 300;
const CHILD_ENV: &str = "GOODHART_WEB_KILL_CHILD";

/// The child: serve `$CHILD_ENV/labels.sqlite`, writing the address to `$CHILD_ENV/addr`.
#[tokio::test]
#[ignore = "run by killing_the_server_loses_no_acknowledged_label"]
async fn child_server() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    std::fs::write(dir.join("addr.tmp"), addr.to_string()).unwrap();
    std::fs::rename(dir.join("addr.tmp"), dir.join("addr")).unwrap();
    let app = App::open(&dir.join("labels.sqlite")).unwrap();
    serve(listener, app, std::future::pending()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_server_loses_no_acknowledged_label() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::queued_store(dir.path(), PAIRS);
    let people: Vec<(String, String)> = (0..PEOPLE)
        .map(|i| common::signed_in(&store, &format!("person{i}")))
        .collect();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["child_server", "--exact", "--ignored", "--quiet"])
        .env(CHILD_ENV, dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(dir.path().join("addr")) {
            break a;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let acked = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    // One client per person, each submitting its pairs in order.
    for (p, (cookie, csrf)) in people.into_iter().enumerate() {
        let (client, acked, addr) = (client.clone(), acked.clone(), addr.clone());
        tasks.spawn(async move {
            let mut mine = vec![];
            for pair in 1..=PAIRS as i64 {
                let req = Request::post(format!("http://{addr}/api/label"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::COOKIE, format!("{COOKIE}={cookie}"))
                    .header(CSRF_HEADER, csrf.as_str())
                    .body(Full::new(Bytes::from(format!(
                        r#"{{"pair":{pair},"answer":"a"}}"#
                    ))))
                    .unwrap();
                let Ok(res) = client.request(req).await else {
                    break; // the server is gone
                };
                let status = res.status();
                if res.into_body().collect().await.is_err() {
                    break;
                }
                assert_eq!(status, StatusCode::OK);
                mine.push((format!("person{p}"), pair));
                acked.fetch_add(1, Ordering::SeqCst);
            }
            mine
        });
    }
    while acked.load(Ordering::SeqCst) < KILL_AFTER {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    child.kill().unwrap(); // SIGKILL: no shutdown, no flush
    child.wait().unwrap();
    let mut acknowledged = HashSet::new();
    while let Some(r) = tasks.join_next().await {
        acknowledged.extend(r.unwrap());
    }
    assert!(
        acknowledged.len() >= KILL_AFTER && acknowledged.len() < PEOPLE * PAIRS,
        "killed mid-load: {} acknowledged",
        acknowledged.len()
    );

    let s = LabelStore::open_existing(&store).unwrap();
    s.check_integrity().unwrap();
    let stored = s.comparisons(&Filter::default()).unwrap();
    let stored_people: Vec<String> = stored.iter().map(|c| c.labeler.clone()).collect();
    // Every acknowledged label is there; beyond them, at most the one request
    // per client that was committed as the server died.
    for (person, _) in &acknowledged {
        assert!(stored_people.contains(person));
    }
    for i in 0..PEOPLE {
        let name = format!("person{i}");
        let acked = acknowledged.iter().filter(|(p, _)| *p == name).count();
        let kept = stored_people.iter().filter(|p| **p == name).count();
        assert!(
            kept == acked || kept == acked + 1,
            "{name}: {acked} acknowledged, {kept} stored"
        );
        for pair in 1..=acked as i64 {
            assert!(
                s.queued_pair(&name, pair).unwrap().is_none(),
                "{name} lost pair {pair}"
            );
        }
    }
}
