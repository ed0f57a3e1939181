//! Load on loopback: many people submitting at once, every answer sent twice
//! by racing clients. Each (person, pair) must be stored exactly once, and the
//! store's count must equal the acknowledged submissions exactly.

mod common;

use std::collections::HashSet;

use axum::body::Bytes;
use axum::http::{header, Request, StatusCode};
use goodhart_data::feedback::{Filter, LabelStore};
use goodhart_web::{serve, App, COOKIE, CSRF_HEADER};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const PEOPLE: usize = 16;
const PAIRS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submissions_are_stored_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::queued_store(dir.path(), PAIRS);
    let people: Vec<(String, String, String)> = (0..PEOPLE)
        .map(|i| {
            let name = format!("person{i}");
            let (cookie, csrf) = common::signed_in(&store, &name);
            (name, cookie, csrf)
        })
        .collect();
    // A fresh store numbers its queue from 1.
    let pair_ids: Vec<i64> = (1..=PAIRS as i64).collect();
    let s = LabelStore::open_existing(&store).unwrap();
    assert!(pair_ids
        .iter()
        .all(|&id| s.queued_pair("nobody", id).unwrap().is_some()));
    drop(s);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, App::open(&store).unwrap(), async {
        let _ = stopped.await;
    }));

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Half the server's cap on one client's connections (all of these come
    // from 127.0.0.1): a request's connection goes back to the client's pool
    // a moment after its answer, so at the cap itself one more may be opened.
    let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(
        goodhart_web::MAX_CONNECTIONS_PER_CLIENT / 2,
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for (p, (_, cookie, csrf)) in people.iter().enumerate() {
        for (k, &pair) in pair_ids.iter().enumerate() {
            // Every answer twice: two racing clients.
            for _ in 0..2 {
                let (client, limit) = (client.clone(), limit.clone());
                let answer = ["a", "b", "tie", "cant_tell"][(p + k) % 4];
                let body = format!(r#"{{"pair":{pair},"answer":"{answer}","seconds":1.5}}"#);
                let req = Request::post(format!("http://{addr}/api/label"))
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::COOKIE, format!("{COOKIE}={cookie}"))
                    .header(CSRF_HEADER, csrf.as_str())
                    .body(Full::new(Bytes::from(body)))
                    .unwrap();
                tasks.spawn(async move {
                    let _permit = limit.acquire().await.unwrap();
                    let res = client.request(req).await.expect("request");
                    let status = res.status();
                    res.into_body().collect().await.expect("body");
                    (p, pair, status)
                });
            }
        }
    }
    let mut acknowledged = HashSet::new();
    let (mut ok, mut conflict) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        let (p, pair, status) = r.unwrap();
        match status {
            StatusCode::OK => {
                ok += 1;
                assert!(acknowledged.insert((p, pair)), "acknowledged twice");
            }
            StatusCode::CONFLICT => conflict += 1,
            other => panic!("unexpected {other}"),
        }
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    assert_eq!((ok, conflict), (PEOPLE * PAIRS, PEOPLE * PAIRS));
    let s = LabelStore::open_existing(&store).unwrap();
    s.check_integrity().unwrap();
    let stored = s.comparisons(&Filter::default()).unwrap();
    assert_eq!(stored.len(), PEOPLE * PAIRS);
    let distinct: HashSet<(String, String, String)> = stored
        .iter()
        .map(|c| (c.labeler.clone(), c.a.clone(), c.b.clone() + &c.prompt))
        .collect();
    assert_eq!(
        distinct.len(),
        PEOPLE * PAIRS,
        "no person labelled a pair twice"
    );
}
