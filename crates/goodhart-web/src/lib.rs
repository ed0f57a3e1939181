//! The labeling web app: people sign in with a one-time token, compare the
//! pairs queued in a label store, and their answers become comparisons like
//! any other (named by the person), in the same store.
//!
//! One HTML page, one script and one style sheet, all embedded in the binary
//! (no CDN, no network), over a small JSON API:
//!
//! | route              | what                                                    |
//! |--------------------|---------------------------------------------------------|
//! | `GET /`            | the page                                                |
//! | `POST /api/signin` | `{"name","token"}` → session cookie + CSRF token        |
//! | `GET /api/me`      | who is signed in                                        |
//! | `GET /api/next`    | the next pair for this person (`?pair=ID`: that one)   |
//! | `POST /api/label`  | `{"pair","answer","reason"?,"seconds"?}`                |
//! | `POST /api/undo`   | withdraw this person's last label                       |
//! | `POST /api/signout`|                                                         |
//!
//! and the review page (`GET /review`, in `review.rs`): people compare rollouts of
//! candidate formal goals' policies and keep the goal under review or choose another.
//!
//! Every write needs a session and the session's CSRF token in the
//! `x-goodhart-csrf` header, is refused if the browser says it comes from
//! another origin, is validated, and is committed in one transaction before it
//! is acknowledged. Bad requests get a 4xx with `{"error": "..."}`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use goodhart::feedback::{Answer, HumanLabel, HumanProgress, LabelStore, Session, SessionLimits};
use goodhart::task::{self, Task};
use serde::{Deserialize, Serialize};

mod error;
mod review;
mod serve;
mod view;

use view::{view, PairView};

pub use error::ApiError;

pub use serve::{
    serve, HEADER_TIMEOUT, IDLE_TIMEOUT, MAX_CONNECTIONS, REQUEST_TIMEOUT, SHUTDOWN_DEADLINE,
};

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const API_SCRIPT: &str = include_str!("../assets/api.js");
const STYLE: &str = include_str!("../assets/app.css");

/// The session cookie's name.
pub const COOKIE: &str = "goodhart_session";
/// The header that carries the session's CSRF token on every write.
pub const CSRF_HEADER: &str = "x-goodhart-csrf";
/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// Failed sign-ins allowed per minute (all names together) before the server
/// answers 429 to every sign-in until the minute has passed.
pub const SIGN_IN_FAILURES_PER_MINUTE: usize = 30;

/// How the server is exposed.
#[derive(Clone, Debug, Default)]
pub struct ServeOptions {
    /// `Host` values accepted besides the address served on (`--host`): the
    /// names people reach the server by. Any other is refused, so a foreign
    /// name that resolves here (DNS rebinding) gets nothing.
    pub hosts: Vec<String>,
    /// Mark the session cookie `Secure` (when served behind TLS).
    pub secure_cookie: bool,
    /// How long sessions last on the server.
    pub sessions: SessionLimits,
}

/// The server's state: the store (one connection; SQLite has one writer at a
/// time anyway), the tasks that render pairs (built on first use), and what
/// it needs to refuse what it must.
pub struct App {
    store: Mutex<LabelStore>,
    tasks: Mutex<HashMap<String, Option<Arc<dyn Task>>>>,
    options: ServeOptions,
    /// Accepted `Host` values; empty (a router used on its own) accepts any.
    hosts: RwLock<Vec<String>>,
    /// The store's file and its identity when opened: a label is acknowledged
    /// only while that same file is there.
    store_path: PathBuf,
    store_identity: Option<(u64, u64)>,
    /// When recent sign-ins failed.
    failed_sign_ins: Mutex<VecDeque<Instant>>,
}

/// A file's device and inode: what stays the same while it is the same file.
fn identity(path: &Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(path).ok().map(|m| (m.len(), 0))
    }
}

impl App {
    pub fn open(store: &Path) -> goodhart::Result<Arc<Self>> {
        Self::open_with(store, ServeOptions::default())
    }

    pub fn open_with(store: &Path, options: ServeOptions) -> goodhart::Result<Arc<Self>> {
        // A server that cannot write the store would refuse every label: say so now.
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(store) {
            return Err(goodhart::Error::Store {
                path: store.to_path_buf(),
                message: format!("cannot be written ({e}); the server needs to save labels"),
            });
        }
        Ok(Arc::new(Self {
            store: Mutex::new(LabelStore::open_existing(store)?),
            tasks: Mutex::new(HashMap::new()),
            hosts: RwLock::new(options.hosts.clone()),
            options,
            store_path: store.to_path_buf(),
            store_identity: identity(store),
            failed_sign_ins: Mutex::new(VecDeque::new()),
        }))
    }

    /// Accept `Host` values naming `addr` too (what [`serve`] listens on).
    fn allow_address(&self, addr: std::net::SocketAddr) {
        let mut hosts = self.hosts.write().expect("host list");
        let port = addr.port();
        hosts.push(addr.to_string());
        if addr.ip().is_loopback() {
            hosts.extend([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
    }

    /// Whether the store file is still the one opened; when it is not (removed,
    /// replaced), nothing may be acknowledged, and the log says why.
    fn check_store(&self) -> Result<(), ApiError> {
        if self.store_identity.is_some() && identity(&self.store_path) == self.store_identity {
            return Ok(());
        }
        tracing::error!(store = %self.store_path.display(), "the label store file was removed or replaced: refusing writes until the server is restarted");
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the label store is unavailable: labels are not being accepted (the server's log says why)",
        ))
    }

    fn store(&self) -> Result<MutexGuard<'_, LabelStore>, ApiError> {
        self.store.lock().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is unavailable; restart the server",
            )
        })
    }

    /// The bundled task a pair belongs to (its own rendering), if there is one.
    fn task(&self, name: &str) -> Option<Arc<dyn Task>> {
        let mut tasks = self.tasks.lock().ok()?;
        tasks
            .entry(name.to_string())
            .or_insert_with(|| {
                let built = task::by_name(name).and_then(|c| c.build(0));
                built.ok().map(Arc::from)
            })
            .clone()
    }
}

/// The router: the page, its assets and the API.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/app.js", get(|| async { javascript(SCRIPT) }))
        .route("/api.js", get(|| async { javascript(API_SCRIPT) }))
        .route("/app.css", get(style))
        .route("/review", get(review::page))
        .route("/review.js", get(|| async { javascript(review::SCRIPT) }))
        .route("/api/review/next", get(review::next))
        .route("/api/review", post(review::submit))
        .route("/healthz", get(healthz))
        .route("/api/signin", post(sign_in))
        .route("/api/signout", post(sign_out))
        .route("/api/me", get(me))
        .route("/api/next", get(next))
        .route("/api/label", post(label))
        .route("/api/undo", post(undo))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn_with_state(app.clone(), known_host))
        .layer(middleware::from_fn(serve::deadline))
        .layer(middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Run store work off the async threads.
async fn blocking<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request's worker failed",
            )
        })?
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == COOKIE).then(|| v.to_string())
        })
}

/// The signed-in person, or 401 (also once the session has expired or was revoked).
fn session(app: &App, headers: &HeaderMap) -> Result<Session, ApiError> {
    let unauthorised = || ApiError::new(StatusCode::UNAUTHORIZED, "sign in first");
    let cookie = cookie(headers).ok_or_else(unauthorised)?;
    app.store()?
        .session(&cookie, &app.options.sessions)?
        .ok_or_else(unauthorised)
}

/// The signed-in person, for a write: the CSRF token must come with it, and
/// the store must still be the file the server opened.
fn writer(app: &App, headers: &HeaderMap) -> Result<Session, ApiError> {
    app.check_store()?;
    let s = session(app, headers)?;
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    if sent != Some(s.csrf.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("missing or wrong {CSRF_HEADER} header (reload the page)"),
        ));
    }
    Ok(s)
}

/// Refuse a request for a name this server was not told it has.
async fn known_host(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok());
    let known = {
        let hosts = app.hosts.read().expect("host list");
        hosts.is_empty() || host.is_some_and(|h| hosts.iter().any(|a| a.eq_ignore_ascii_case(h)))
    };
    if !known {
        tracing::warn!(host = ?host, "request for an unknown host refused");
        return ApiError::new(StatusCode::MISDIRECTED_REQUEST, "unknown host").into_response();
    }
    next.run(req).await
}

async fn healthz(State(app): State<Arc<App>>) -> Result<&'static str, ApiError> {
    app.check_store()?;
    Ok("ok")
}

/// Refuse writes a browser marks as coming from another site.
async fn same_origin(req: Request, next: Next) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let h = req.headers();
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let cross_origin = match (origin, host) {
            (Some(o), Some(host)) => {
                o != format!("http://{host}") && o != format!("https://{host}")
            }
            (Some(_), None) => true,
            (None, _) => false,
        };
        let cross_site = h
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site");
        if cross_origin || cross_site {
            return ApiError::new(StatusCode::FORBIDDEN, "cross-site request refused")
                .into_response();
        }
    }
    next.run(req).await
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

/// One of the embedded scripts.
fn javascript(source: &'static str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        source,
    )
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    name: String,
    token: String,
}

async fn sign_in(
    State(app): State<Arc<App>>,
    body: Result<Json<SignIn>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(SignIn { name, token }) = body?;
    if name.len() > 100 || token.len() > 200 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name or token too long",
        ));
    }
    let minute = Duration::from_secs(60);
    {
        let mut failed = app.failed_sign_ins.lock().expect("sign-in log");
        while failed.front().is_some_and(|t| t.elapsed() > minute) {
            failed.pop_front();
        }
        if failed.len() >= SIGN_IN_FAILURES_PER_MINUTE {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed sign-ins: wait a minute",
            ));
        }
    }
    let who = name.clone();
    let signed = blocking(&app, move |app| {
        app.check_store()?;
        Ok(app.store()?.sign_in(&name, &token)?)
    })
    .await?;
    let Some((secret, session)) = signed else {
        tracing::warn!(name = %who, "failed sign-in");
        app.failed_sign_ins
            .lock()
            .expect("sign-in log")
            .push_back(Instant::now());
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown name or token (a token works once: ask for a new one, `goodhart label add-user NAME`)",
        ));
    };
    let max_age = app.options.sessions.max_age_ms / 1000;
    let secure = if app.options.secure_cookie {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}");
    Ok(([(header::SET_COOKIE, cookie)], Json(session)).into_response())
}

async fn sign_out(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let secret = cookie(&headers);
    blocking(&app, move |app| {
        writer(app, &headers)?;
        if let Some(secret) = secret {
            app.store()?.sign_out(&secret)?;
        }
        Ok(())
    })
    .await?;
    let expired = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    Ok(([(header::SET_COOKIE, expired)], Json(serde_json::json!({}))).into_response())
}

async fn me(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Json<Session>, ApiError> {
    blocking(&app, move |app| session(app, &headers))
        .await
        .map(Json)
}

#[derive(Serialize)]
struct NextResponse {
    pair: Option<PairView>,
    progress: HumanProgress,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NextQuery {
    pair: Option<i64>,
}

async fn next(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Result<Json<NextResponse>, ApiError> {
    let Query(q) = query?;
    blocking(&app, move |app| {
        let s = session(app, &headers)?;
        let (pair, progress) = {
            let store = app.store()?;
            let pair = match q.pair {
                Some(id) => store.queued_pair(&s.user, id)?,
                None => store.next_pair(&s.user)?,
            };
            (pair, store.progress(&s.user)?)
        };
        Ok(Json(NextResponse {
            pair: pair.map(|p| view(app, p)),
            progress,
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelRequest {
    pair: i64,
    answer: Answer,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    seconds: Option<f64>,
}

#[derive(Serialize)]
struct LabelResponse {
    comparison: i64,
    progress: HumanProgress,
}

async fn label(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Json<LabelRequest>, JsonRejection>,
) -> Result<Json<LabelResponse>, ApiError> {
    // Who asks comes first: without a session the answer is 401, whatever the body.
    let s = blocking(&app, move |app| writer(app, &headers)).await?;
    let Json(req) = body?;
    blocking(&app, move |app| {
        let mut store = app.store()?;
        let comparison = store.submit(
            &s.user,
            &HumanLabel {
                pair: req.pair,
                answer: req.answer,
                reason: req.reason.as_deref(),
                seconds: req.seconds,
            },
        )??;
        Ok(Json(LabelResponse {
            comparison,
            progress: store.progress(&s.user)?,
        }))
    })
    .await
}

#[derive(Serialize)]
struct UndoResponse {
    /// The pair whose label was withdrawn; `null` when there was none.
    pair: Option<i64>,
}

async fn undo(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<UndoResponse>, ApiError> {
    blocking(&app, move |app| {
        let s = writer(app, &headers)?;
        let pair = app.store()?.undo(&s.user)?;
        Ok(Json(UndoResponse { pair }))
    })
    .await
}
