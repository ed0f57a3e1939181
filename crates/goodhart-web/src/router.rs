//! The router: every route (the pages and their embedded assets, the health
//! check, the sign-in, label and review APIs) and the middleware in front of
//! them: known hosts only, no cross-site writes, a deadline per request, a
//! cap on bodies, and the security headers on every answer.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::app::App;
use crate::error::ApiError;
use crate::{label, review, signin};

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const API_SCRIPT: &str = include_str!("../assets/api.js");
const STYLE: &str = include_str!("../assets/app.css");

/// The largest request body accepted.
pub const MAX_BODY: usize = 64 * 1024;

/// How long the whole of a request (body included) may take before it is
/// answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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
        .route("/api/signin", post(signin::sign_in))
        .route("/api/signout", post(signin::sign_out))
        .route("/api/me", get(signin::me))
        .route("/api/next", get(label::next))
        .route("/api/label", post(label::label))
        .route("/api/undo", post(label::undo))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such page") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
        })
        .layer(middleware::from_fn(same_origin))
        .layer(middleware::from_fn_with_state(app.clone(), known_host))
        .layer(middleware::from_fn(deadline))
        .layer(middleware::from_fn(announced_size))
        .layer(middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(app)
}

/// Refuse a request for a name this server was not told it has. The name is
/// the request target's when it has one (`POST http://host/...`, which then
/// stands for the `Host` header), else the one `Host` header's; two `Host`
/// headers are refused whatever they say.
async fn known_host(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let (first, second) = (hosts.next(), hosts.next());
    if second.is_some() {
        return ApiError::new(StatusCode::BAD_REQUEST, "more than one Host header").into_response();
    }
    let host = match req.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => first.and_then(|v| v.to_str().ok()),
    };
    if !app.knows_host(host) {
        tracing::warn!(host = ?host, "request for an unknown host refused");
        return ApiError::new(StatusCode::MISDIRECTED_REQUEST, "unknown host").into_response();
    }
    next.run(req).await
}

/// Refuse a body announced larger than [`MAX_BODY`] at once, before a byte of
/// it is read (and before the deadline would answer 408).
async fn announced_size(req: Request, next: Next) -> Response {
    let announced = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.parse::<u64>().unwrap_or(u64::MAX));
    if announced.is_some_and(|n| n > MAX_BODY as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a body is at most {MAX_BODY} bytes"),
        )
        .into_response();
    }
    next.run(req).await
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

/// Answer 408 to a request that takes longer than [`REQUEST_TIMEOUT`] (a body
/// announced and never sent, a client trickling bytes).
async fn deadline(req: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(res) => res,
        Err(_) => {
            ApiError::new(StatusCode::REQUEST_TIMEOUT, "the request took too long").into_response()
        }
    }
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

async fn healthz(State(app): State<Arc<App>>) -> Result<&'static str, ApiError> {
    app.check_store()?;
    Ok("ok")
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
