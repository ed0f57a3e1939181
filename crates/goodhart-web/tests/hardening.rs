//! What abuse testing of the label server found, each a test: sessions that
//! end on the server, a store that vanishes, foreign hosts, sign-in floods,
//! and the order and shape of refusals.

mod common;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use goodhart_data::feedback::{LabelStore, SessionLimits};
use goodhart_web::{ServeOptions, COOKIE, CSRF_HEADER, SIGN_IN_FAILURES_PER_MINUTE};
use serde_json::{json, Value};

const HOST: &str = "127.0.0.1:8080";

use common::Fixture;

fn fixture(options: ServeOptions) -> Fixture {
    Fixture::new(2, options)
}

fn request(
    host: &str,
    method: &str,
    uri: &str,
    cookie: Option<(&str, &str)>,
    body: Option<&str>,
) -> Request<Body> {
    let mut r = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::HOST, host)
        .header(header::ORIGIN, format!("http://{host}"));
    if let Some((cookie, csrf)) = cookie {
        r = r
            .header(header::COOKIE, format!("{COOKIE}={cookie}"))
            .header(CSRF_HEADER, csrf);
    }
    match body {
        Some(b) => r
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => r.body(Body::empty()).unwrap(),
    }
}

impl Fixture {
    fn me(&self) -> Option<(&str, &str)> {
        Some((&self.cookie, &self.csrf))
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value, Option<String>) {
        self.respond(req).await
    }

    async fn label(&self) -> (StatusCode, Value) {
        let (_, next, _) = self
            .send(request(HOST, "GET", "/api/next", self.me(), None))
            .await;
        let pair = next["pair"]["id"].as_i64().unwrap_or(1);
        let body = json!({"pair": pair, "answer": "a"}).to_string();
        let (status, value, _) = self
            .send(request(HOST, "POST", "/api/label", self.me(), Some(&body)))
            .await;
        (status, value)
    }
}

#[tokio::test]
async fn sessions_end_on_the_server_when_idle_on_a_new_token_and_when_revoked() {
    let f = fixture(ServeOptions::default());
    assert_eq!(f.label().await.0, StatusCode::OK);
    // A new token for alice ends the session her old one began.
    LabelStore::open_existing(&f.store)
        .unwrap()
        .add_user("alice")
        .unwrap();
    let (status, _, _) = f.send(request(HOST, "GET", "/api/me", f.me(), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (cookie, csrf) = common::signed_in(&f.store, "alice");
    let ok = request(HOST, "GET", "/api/me", Some((&cookie, &csrf)), None);
    assert_eq!(f.send(ok).await.0, StatusCode::OK);
    assert!(LabelStore::open_existing(&f.store)
        .unwrap()
        .revoke_user("alice")
        .unwrap());
    let gone = request(HOST, "GET", "/api/me", Some((&cookie, &csrf)), None);
    assert_eq!(f.send(gone).await.0, StatusCode::UNAUTHORIZED);

    // Idle past the server's limit: the cookie alone does not keep it alive.
    let strict = fixture(ServeOptions {
        sessions: SessionLimits {
            idle_ms: 1,
            ..SessionLimits::default()
        },
        ..ServeOptions::default()
    });
    std::thread::sleep(std::time::Duration::from_millis(10));
    let (status, _, _) = strict
        .send(request(HOST, "GET", "/api/me", strict.me(), None))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_removed_store_acknowledges_nothing_and_fails_its_health_check() {
    let f = fixture(ServeOptions::default());
    assert_eq!(
        f.send(request(HOST, "GET", "/healthz", None, None)).await.0,
        StatusCode::OK
    );
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", f.store.display()));
    }
    let (status, body) = f.label().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        !message.contains(f.store.to_str().unwrap()),
        "the path leaks: {message}"
    );
    assert_eq!(
        f.send(request(HOST, "GET", "/healthz", None, None)).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn only_named_hosts_are_served() {
    let f = fixture(ServeOptions {
        hosts: vec![HOST.into(), "labels.example.org".into()],
        ..ServeOptions::default()
    });
    assert_eq!(
        f.send(request(HOST, "GET", "/api/me", f.me(), None))
            .await
            .0,
        StatusCode::OK
    );
    let named = request("labels.example.org", "GET", "/api/me", f.me(), None);
    assert_eq!(f.send(named).await.0, StatusCode::OK);
    // DNS rebinding: Host and Origin agree, but name somewhere else.
    let (status, body, _) = f
        .send(request("evil.example:8080", "GET", "/api/me", f.me(), None))
        .await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(body["error"], "unknown host");
    let post = request("evil.example:8080", "POST", "/api/undo", f.me(), None);
    assert_eq!(f.send(post).await.0, StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn sign_in_floods_are_cut_off_and_the_cookie_can_be_secure() {
    let f = fixture(ServeOptions {
        secure_cookie: true,
        ..ServeOptions::default()
    });
    let bogus = json!({"name": "alice", "token": "nope"}).to_string();
    for _ in 0..SIGN_IN_FAILURES_PER_MINUTE {
        let (status, _, _) = f
            .send(request(HOST, "POST", "/api/signin", None, Some(&bogus)))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body, _) = f
        .send(request(HOST, "POST", "/api/signin", None, Some(&bogus)))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    let g = fixture(ServeOptions {
        secure_cookie: true,
        ..ServeOptions::default()
    });
    let token = LabelStore::open_existing(&g.store)
        .unwrap()
        .add_user("bob")
        .unwrap();
    let good = json!({"name": "bob", "token": token}).to_string();
    let (status, _, cookie) = g
        .send(request(HOST, "POST", "/api/signin", None, Some(&good)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(cookie.unwrap().contains("; Secure"));
}

#[tokio::test]
async fn refusals_are_json_and_a_missing_session_comes_before_a_bad_body() {
    let f = fixture(ServeOptions::default());
    let (status, body, _) = f
        .send(request(HOST, "DELETE", "/api/label", f.me(), None))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(body["error"].is_string(), "{body}");
    // No session: 401, whatever is wrong with the body.
    for body in [Some("{not json"), Some("{\"pair\": \"x\"}"), None] {
        let (status, value, _) = f
            .send(request(HOST, "POST", "/api/label", None, body))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body:?}: {value}");
    }
}

#[tokio::test]
async fn a_stalled_client_is_cut_off_and_shutdown_does_not_wait_for_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture(ServeOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(goodhart_web::serve(listener, f.app.clone(), async {
        let _ = stopped.await;
    }));
    // Half a request's headers, then nothing.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    stalled
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: ")
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let mut buf = vec![0u8; 1024];
    let closed = tokio::time::timeout(
        goodhart_web::HEADER_TIMEOUT + std::time::Duration::from_secs(5),
        stalled.read(&mut buf),
    )
    .await;
    assert!(
        closed.is_ok(),
        "the connection is still open after {:?}",
        start.elapsed()
    );
    assert!(start.elapsed() >= goodhart_web::HEADER_TIMEOUT / 2);

    // A second stalled client does not hold up shutdown.
    let mut other = tokio::net::TcpStream::connect(addr).await.unwrap();
    other
        .write_all(b"POST /api/label HTTP/1.1\r\n")
        .await
        .unwrap();
    stop.send(()).unwrap();
    let done = tokio::time::timeout(
        goodhart_web::SHUTDOWN_DEADLINE + std::time::Duration::from_secs(5),
        server,
    )
    .await;
    assert!(done.is_ok(), "the server did not stop");
}
