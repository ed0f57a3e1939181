//! Signing in and out: a one-time token for a session cookie and a CSRF
//! token, failed attempts throttled; `GET /api/me` says who is signed in.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use goodhart_data::feedback::Session;
use serde::Deserialize;

use crate::app::{blocking, App};
use crate::body;
use crate::error::ApiError;
use crate::session::{cookie, expired_cookie, session, set_cookie, writer};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SignIn {
    name: String,
    token: String,
}

pub(crate) async fn sign_in(
    State(app): State<Arc<App>>,
    body: body::Object,
) -> Result<Response, ApiError> {
    let SignIn { name, token } = body::read(body)?;
    if name.len() > 100 || token.len() > 200 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "name or token too long",
        ));
    }
    if app.sign_ins_throttled() {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed sign-ins: wait a minute",
        ));
    }
    let who = name.clone();
    let signed = blocking(&app, move |app| {
        app.write(|store| Ok(store.sign_in(&name, &token)?))
    })
    .await?;
    let Some((secret, session)) = signed else {
        tracing::warn!(name = ?who, "failed sign-in");
        app.note_failed_sign_in();
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unknown name or token (a token works once: ask for a new one, `goodhart label add-user NAME`)",
        ));
    };
    let cookie = set_cookie(&app, &secret);
    Ok(([(header::SET_COOKIE, cookie)], Json(session)).into_response())
}

pub(crate) async fn sign_out(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let secret = cookie(&headers);
    blocking(&app, move |app| {
        writer(app, &headers)?;
        match secret {
            Some(secret) => app.write(|store| Ok(store.sign_out(&secret)?)),
            None => Ok(()),
        }
    })
    .await?;
    Ok((
        [(header::SET_COOKIE, expired_cookie())],
        Json(serde_json::json!({})),
    )
        .into_response())
}

pub(crate) async fn me(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<Session>, ApiError> {
    blocking(&app, move |app| session(app, &headers))
        .await
        .map(Json)
}
