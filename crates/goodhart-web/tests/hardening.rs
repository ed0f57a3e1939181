//! What abuse testing of the label server found, each a test: sessions that
//! end on the server, a store that vanishes, is cut short, overwritten,
//! replaced, made read-only or fills its disk, foreign hosts, sign-in floods,
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

/// The fixture's app served on a loopback port: its address, the sender that
/// stops it, and the server's task.
async fn serving(
    f: &Fixture,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(goodhart_web::serve(listener, f.app.clone(), async {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

#[tokio::test]
async fn a_stalled_client_is_cut_off_and_shutdown_does_not_wait_for_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture(ServeOptions::default());
    let (addr, stop, server) = serving(&f).await;
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

/// Run a command of this machine's (as another process would act on the store).
fn sh(program: &str, args: &[&str]) {
    let status = std::process::Command::new(program)
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "{program} {args:?}: {status}");
}

fn inode(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

impl Fixture {
    async fn label_status(&self) -> StatusCode {
        self.label().await.0
    }

    async fn health(&self) -> StatusCode {
        self.send(request(HOST, "GET", "/healthz", None, None))
            .await
            .0
    }
}

#[tokio::test]
async fn a_store_cut_short_in_place_acknowledges_nothing_more() {
    for size in ["0", "4096"] {
        let f = fixture(ServeOptions::default());
        assert_eq!(f.label_status().await, StatusCode::OK);
        let before = inode(&f.store);
        sh("truncate", &["-s", size, f.store.to_str().unwrap()]);
        assert_eq!(inode(&f.store), before, "truncated in place");
        assert_eq!(
            f.label_status().await,
            StatusCode::SERVICE_UNAVAILABLE,
            "size {size}"
        );
        assert_eq!(f.health().await, StatusCode::SERVICE_UNAVAILABLE);
        // Sign-ins write too.
        let token = "whatever";
        let body = json!({"name": "alice", "token": token}).to_string();
        let (status, _, _) = f
            .send(request(HOST, "POST", "/api/signin", None, Some(&body)))
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    }
}

#[tokio::test]
async fn a_store_overwritten_or_replaced_acknowledges_nothing_more() {
    let other_dir = tempfile::tempdir().unwrap();
    let other = common::queued_store(other_dir.path(), 2);
    // Another store that a server has stamped, and one it has not.
    let stamped_dir = tempfile::tempdir().unwrap();
    let stamped = common::queued_store(stamped_dir.path(), 2);
    drop(goodhart_web::App::open(&stamped).unwrap());
    for (source, how) in [(&other, "cp"), (&stamped, "cp"), (&other, "mv")] {
        let f = fixture(ServeOptions::default());
        assert_eq!(f.label_status().await, StatusCode::OK);
        let before = inode(&f.store);
        let copy = f.store.with_extension("copy");
        std::fs::copy(source, &copy).unwrap();
        sh(how, &[copy.to_str().unwrap(), f.store.to_str().unwrap()]);
        assert_eq!(inode(&f.store) == before, how == "cp");
        assert_eq!(
            f.label_status().await,
            StatusCode::SERVICE_UNAVAILABLE,
            "{how} {}",
            source.display()
        );
        assert_eq!(f.health().await, StatusCode::SERVICE_UNAVAILABLE);
    }
}

#[tokio::test]
async fn a_store_made_read_only_refuses_labels_until_it_is_writable_again() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture(ServeOptions::default());
    let mode = |m| std::fs::set_permissions(&f.store, std::fs::Permissions::from_mode(m)).unwrap();
    mode(0o444);
    assert_eq!(f.label_status().await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(f.health().await, StatusCode::SERVICE_UNAVAILABLE);
    mode(0o644);
    assert_eq!(f.label_status().await, StatusCode::OK);
    assert_eq!(f.health().await, StatusCode::OK);
}

/// A small tmpfs, unmounted when dropped (mounting needs root, as in CI).
struct Tmpfs {
    disk: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("disk");
        std::fs::create_dir(&disk).unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&disk)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self { disk, _dir: dir })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.disk)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_acknowledges_no_label_a_fresh_connection_cannot_read() {
    let Some(tmpfs) = Tmpfs::mount("1m") else {
        // CI runs as root; elsewhere this needs `sudo`.
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let f = Fixture::in_dir(&tmpfs.disk, 400, ServeOptions::default());
    // Fill the disk.
    let mut filler = std::fs::File::create(tmpfs.disk.join("filler")).unwrap();
    let block = vec![7u8; 4096];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    let mut acknowledged = vec![];
    let mut refused = 0;
    for _ in 0..400 {
        let (status, body) = f.label().await;
        match status {
            StatusCode::OK => acknowledged.push(body["comparison"].as_i64().unwrap()),
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("{other}: {body}"),
        }
        if refused >= 3 {
            break;
        }
    }
    assert!(
        refused >= 3,
        "a full disk took {} labels",
        acknowledged.len()
    );
    let store = f.store.clone();
    drop(f);
    let fresh = LabelStore::open_existing(&store).unwrap();
    let stored: Vec<i64> = fresh
        .comparisons(&goodhart_data::feedback::Filter::default())
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    for id in &acknowledged {
        assert!(
            stored.contains(id),
            "acknowledged comparison {id} is not in the store"
        );
    }
}

#[tokio::test]
async fn two_hosts_an_absolute_target_and_a_body_that_is_not_an_object_are_refused() {
    let f = fixture(ServeOptions {
        hosts: vec![HOST.into()],
        ..ServeOptions::default()
    });
    let mut twice = request(HOST, "GET", "/api/me", f.me(), None);
    twice
        .headers_mut()
        .append(header::HOST, "evil.example".parse().unwrap());
    assert_eq!(f.send(twice).await.0, StatusCode::BAD_REQUEST);
    let absolute = request(HOST, "GET", "http://evil.example/api/me", f.me(), None);
    assert_eq!(f.send(absolute).await.0, StatusCode::MISDIRECTED_REQUEST);
    let ours = request(HOST, "GET", &format!("http://{HOST}/api/me"), f.me(), None);
    assert_eq!(f.send(ours).await.0, StatusCode::OK);

    // A struct from an array of its fields: not a label.
    let (status, body, _) = f
        .send(request(
            HOST,
            "POST",
            "/api/label",
            f.me(),
            Some("[1, \"b\"]"),
        ))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let stored = LabelStore::open_existing(&f.store)
        .unwrap()
        .comparisons(&goodhart_data::feedback::Filter::default())
        .unwrap();
    assert!(stored.is_empty(), "{stored:?}");
    let signin = request(
        HOST,
        "POST",
        "/api/signin",
        None,
        Some("[\"alice\", \"x\"]"),
    );
    assert_eq!(f.send(signin).await.0, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_oversized_body_is_refused_at_once_and_one_client_cannot_take_every_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture(ServeOptions::default());
    let (addr, stop, server) = serving(&f).await;
    let start = std::time::Instant::now();
    let mut big = tokio::net::TcpStream::connect(addr).await.unwrap();
    big.write_all(
        format!(
            "POST /api/label HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), big.read(&mut buf))
        .await
        .expect("no answer within 5 s")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    drop(big);
    // Its connection is closed on the server's side before the count below.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    // One address announcing bodies it never sends: it gets its share of the
    // slots, and the rest of its connections are closed.
    let mut held = vec![];
    for _ in 0..goodhart_web::MAX_CONNECTIONS_PER_CLIENT + 8 {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = c
            .write_all(
                format!("POST /api/signin HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
                    .as_bytes(),
            )
            .await;
        held.push(c);
    }
    // A refused connection reads end-of-stream (or a reset) at once; the
    // others wait for the body they announced.
    let mut reads = tokio::task::JoinSet::new();
    for mut c in held {
        reads.spawn(async move {
            let mut byte = [0u8; 1];
            let wait = std::time::Duration::from_millis(500);
            matches!(
                tokio::time::timeout(wait, c.read(&mut byte)).await,
                Ok(Ok(0) | Err(_))
            )
        });
    }
    let closed = reads.join_all().await.into_iter().filter(|&c| c).count();
    assert_eq!(closed, 8, "connections over the per-client cap");
    stop.send(()).unwrap();
    let _ = tokio::time::timeout(
        goodhart_web::SHUTDOWN_DEADLINE + std::time::Duration::from_secs(5),
        server,
    )
    .await;
}
