//! How the API refuses: a status and `{"error": "..."}` for people, the
//! detail (paths, SQLite's words) only in the server's log.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use goodhart_data::feedback::Refusal;

/// A refused request: its status and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl From<goodhart_data::Error> for ApiError {
    fn from(e: goodhart_data::Error) -> Self {
        // The detail (paths, SQLite's words) is for the log, not for whoever asked.
        tracing::error!(error = %e, "store error");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the label store failed (the server's log says why)",
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
            Refusal::UnknownPair(_) | Refusal::UnknownReview(_) => StatusCode::NOT_FOUND,
            Refusal::AlreadyLabelled(_) | Refusal::AlreadyReviewed(_) => StatusCode::CONFLICT,
            Refusal::ReasonTooLong(_) | Refusal::BadSeconds | Refusal::NoSuchCandidate(..) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
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
