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
//! Every write needs a session and the session's CSRF token in the
//! `x-goodhart-csrf` header, is refused if the browser says it comes from
//! another origin, is validated, and is committed in one transaction before it
//! is acknowledged. Bad requests get a 4xx with `{"error": "..."}`.

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use goodhart::feedback::{
    Answer, HumanLabel, HumanProgress, LabelStore, QueuedPair, Refusal, Session,
};
use goodhart::task::{self, Task};
use serde::{Deserialize, Serialize};

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");

/// The session cookie's name.
pub const COOKIE: &str = "goodhart_session";
/// The header that carries the session's CSRF token on every write.
pub const CSRF_HEADER: &str = "x-goodhart-csrf";
/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// The server's state: the store (one connection; SQLite has one writer at a
/// time anyway) and the tasks that render pairs, built on first use.
pub struct App {
    store: Mutex<LabelStore>,
    tasks: Mutex<HashMap<String, Option<Arc<dyn Task>>>>,
}

impl App {
    pub fn open(store: &Path) -> goodhart::Result<Arc<Self>> {
        Ok(Arc::new(Self {
            store: Mutex::new(LabelStore::open_existing(store)?),
            tasks: Mutex::new(HashMap::new()),
        }))
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
        .route("/app.js", get(script))
        .route("/app.css", get(style))
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/signin", post(sign_in))
        .route("/api/signout", post(sign_out))
        .route("/api/me", get(me))
        .route("/api/next", get(next))
        .route("/api/label", post(label))
        .route("/api/undo", post(undo))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page") })
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Serve until `shutdown` resolves; requests in flight are finished first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

/// A refused request: its status and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<goodhart::Error> for ApiError {
    fn from(e: goodhart::Error) -> Self {
        tracing::error!(error = %e, "store error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store failed: {e}"),
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::new(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(r.status(), r.body_text())
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        let status = match r {
            Refusal::UnknownPair(_) => StatusCode::NOT_FOUND,
            Refusal::AlreadyLabelled(_) => StatusCode::CONFLICT,
            Refusal::ReasonTooLong(_) | Refusal::BadSeconds => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, r.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
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

/// The signed-in person, or 401.
fn session(app: &App, headers: &HeaderMap) -> Result<Session, ApiError> {
    let unauthorised = || ApiError::new(StatusCode::UNAUTHORIZED, "sign in first");
    let cookie = cookie(headers).ok_or_else(unauthorised)?;
    app.store()?.session(&cookie)?.ok_or_else(unauthorised)
}

/// The signed-in person, for a write: the CSRF token must come with it.
fn writer(app: &App, headers: &HeaderMap) -> Result<Session, ApiError> {
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

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
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
    let signed = blocking(&app, move |app| Ok(app.store()?.sign_in(&name, &token)?)).await?;
    let Some((secret, session)) = signed else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown name or token (a token works once: ask for a new one, `goodhart label add-user NAME`)",
        ));
    };
    let cookie = format!("{COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age=2592000");
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

/// One completion as the labeler sees it.
#[derive(Serialize)]
struct Side {
    text: String,
    /// The task's picture of it (gridworld: the camera's frames), if any.
    svg: Option<String>,
}

#[derive(Serialize)]
struct PairView {
    id: i64,
    task: String,
    prompt: String,
    a: Side,
    b: Side,
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

fn view(app: &App, p: QueuedPair) -> PairView {
    let task = app.task(&p.task);
    let render = |c: &str| {
        task.as_ref()
            .and_then(|t| t.render_for_labeler(&p.prompt, c))
    };
    PairView {
        id: p.id,
        a: Side {
            svg: render(&p.a),
            text: p.a.clone(),
        },
        b: Side {
            svg: render(&p.b),
            text: p.b.clone(),
        },
        task: p.task,
        prompt: p.prompt,
    }
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
    let Json(req) = body?;
    blocking(&app, move |app| {
        let s = writer(app, &headers)?;
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
