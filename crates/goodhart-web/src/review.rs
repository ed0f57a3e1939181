//! The review page: a signed-in person looks at rollouts of each candidate
//! goal's policy, drawn on the full state (not the labeler's camera: what
//! happened is what a reviewer judges), and keeps the goal under review or
//! chooses another. Choices are written to the same store as labels.
//!
//! | route                   | what                                                 |
//! |-------------------------|------------------------------------------------------|
//! | `GET /review`           | the page                                             |
//! | `GET /api/review/next`  | the next review for this person (`?item=ID`: that one) |
//! | `POST /api/review`      | `{"item","chosen","reason"?,"seconds"?}`             |

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::IntoResponse;
use axum::Json;
use goodhart_data::feedback::{QueuedReview, ReviewAnswer, ReviewProgress};
use serde::{Deserialize, Serialize};

use crate::app::{blocking, App};
use crate::body;
use crate::error::ApiError;
use crate::session::{session, writer};

pub(crate) const PAGE: &str = include_str!("../assets/review.html");
pub(crate) const SCRIPT: &str = include_str!("../assets/review.js");

pub(crate) async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

/// One rollout as the reviewer sees it.
#[derive(Serialize)]
struct RolloutView {
    prompt: String,
    text: String,
    /// The full state, drawn by the task, where it has a picture.
    svg: Option<String>,
}

#[derive(Serialize)]
struct CandidateView {
    position: usize,
    goal: String,
    rollouts: Vec<RolloutView>,
}

#[derive(Serialize)]
struct ReviewView {
    id: i64,
    task: String,
    candidates: Vec<CandidateView>,
}

#[derive(Serialize)]
pub(crate) struct NextReview {
    review: Option<ReviewView>,
    progress: ReviewProgress,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NextQuery {
    item: Option<i64>,
}

fn view(app: &App, r: QueuedReview) -> ReviewView {
    let task = app.task(&r.task);
    ReviewView {
        id: r.id,
        candidates: r
            .candidates
            .into_iter()
            .map(|c| CandidateView {
                position: c.position,
                goal: c.goal,
                rollouts: c
                    .rollouts
                    .into_iter()
                    .map(|o| RolloutView {
                        svg: task
                            .as_ref()
                            .and_then(|t| t.render_svg(&o.prompt, &o.completion)),
                        prompt: o.prompt,
                        text: o.completion,
                    })
                    .collect(),
            })
            .collect(),
        task: r.task,
    }
}

pub(crate) async fn next(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Result<Json<NextReview>, ApiError> {
    let Query(q) = query?;
    blocking(&app, move |app| {
        let s = session(app, &headers)?;
        let (review, progress) = {
            let store = app.store()?;
            let review = match q.item {
                Some(id) => store.queued_review(&s.user, id)?,
                None => store.next_review(&s.user)?,
            };
            (review, store.review_progress(&s.user)?)
        };
        Ok(Json(NextReview {
            review: review.map(|r| view(app, r)),
            progress,
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewRequest {
    item: i64,
    chosen: usize,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    seconds: Option<f64>,
}

#[derive(Serialize)]
pub(crate) struct ReviewResponse {
    review: i64,
    progress: ReviewProgress,
}

pub(crate) async fn submit(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: body::Object,
) -> Result<Json<ReviewResponse>, ApiError> {
    // Who asks comes first: without a session the answer is 401, whatever the body.
    let s = blocking(&app, move |app| writer(app, &headers)).await?;
    let req: ReviewRequest = body::read(body)?;
    blocking(&app, move |app| {
        let review = app.write(|store| {
            Ok(store.submit_review(
                &s.user,
                &ReviewAnswer {
                    item: req.item,
                    chosen: req.chosen,
                    reason: req.reason.as_deref(),
                    seconds: req.seconds,
                },
            )??)
        })?;
        Ok(Json(ReviewResponse {
            review,
            progress: app.store()?.review_progress(&s.user)?,
        }))
    })
    .await
}
