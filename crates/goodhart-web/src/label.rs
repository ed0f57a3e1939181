//! Labeling: the next queued pair for the signed-in person, their answer
//! committed as a comparison, and withdrawing their last one.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use goodhart_data::feedback::{Answer, HumanLabel, HumanProgress};
use serde::{Deserialize, Serialize};

use crate::app::{blocking, App};
use crate::body;
use crate::error::ApiError;
use crate::session::{session, writer};
use crate::view::{view, PairView};

#[derive(Serialize)]
pub(crate) struct NextResponse {
    pair: Option<PairView>,
    progress: HumanProgress,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NextQuery {
    pair: Option<i64>,
}

pub(crate) async fn next(
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
pub(crate) struct LabelRequest {
    pair: i64,
    answer: Answer,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    seconds: Option<f64>,
}

#[derive(Serialize)]
pub(crate) struct LabelResponse {
    comparison: i64,
    progress: HumanProgress,
}

pub(crate) async fn label(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: body::Object,
) -> Result<Json<LabelResponse>, ApiError> {
    // Who asks comes first: without a session the answer is 401, whatever the body.
    let s = blocking(&app, move |app| writer(app, &headers)).await?;
    let req: LabelRequest = body::read(body)?;
    blocking(&app, move |app| {
        let comparison = app.write(|store| {
            Ok(store.submit(
                &s.user,
                &HumanLabel {
                    pair: req.pair,
                    answer: req.answer,
                    reason: req.reason.as_deref(),
                    seconds: req.seconds,
                },
            )??)
        })?;
        Ok(Json(LabelResponse {
            comparison,
            progress: app.store()?.progress(&s.user)?,
        }))
    })
    .await
}

#[derive(Serialize)]
pub(crate) struct UndoResponse {
    /// The pair whose label was withdrawn; `null` when there was none.
    pair: Option<i64>,
}

pub(crate) async fn undo(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
) -> Result<Json<UndoResponse>, ApiError> {
    blocking(&app, move |app| {
        let s = writer(app, &headers)?;
        let pair = app.write(|store| Ok(store.undo(&s.user)?))?;
        Ok(Json(UndoResponse { pair }))
    })
    .await
}
