//! Who is asking: the session cookie (read and set), the signed-in person
//! behind it, and the CSRF token every write must carry.

use axum::http::{header, HeaderMap, StatusCode};
use goodhart_data::feedback::Session;

use crate::app::App;
use crate::error::ApiError;

/// The session cookie's name.
pub const COOKIE: &str = "goodhart_session";
/// The header that carries the session's CSRF token on every write.
pub const CSRF_HEADER: &str = "x-goodhart-csrf";

/// The session secret the request's cookie carries, if any.
pub(crate) fn cookie(headers: &HeaderMap) -> Option<String> {
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

/// The `Set-Cookie` value that hands a browser its session.
pub(crate) fn set_cookie(app: &App, secret: &str) -> String {
    let max_age = app.options().sessions.max_age_ms / 1000;
    let secure = if app.options().secure_cookie {
        "; Secure"
    } else {
        ""
    };
    format!("{COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}")
}

/// The `Set-Cookie` value that makes a browser forget its session.
pub(crate) fn expired_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The signed-in person, or 401 (also once the session has expired or was revoked).
pub(crate) fn session(app: &App, headers: &HeaderMap) -> Result<Session, ApiError> {
    let unauthorised = || ApiError::new(StatusCode::UNAUTHORIZED, "sign in first");
    let cookie = cookie(headers).ok_or_else(unauthorised)?;
    app.store()?
        .session(&cookie, &app.options().sessions)?
        .ok_or_else(unauthorised)
}

/// The signed-in person, for a write: the CSRF token must come with it, and
/// the store must still be the file the server opened.
pub(crate) fn writer(app: &App, headers: &HeaderMap) -> Result<Session, ApiError> {
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
