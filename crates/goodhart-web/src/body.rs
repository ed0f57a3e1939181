//! Request bodies: a JSON object, read as the handler's type. (serde would
//! also build a struct from an array of its fields: `[1, "a"]` is no label.)

use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON object body.
pub(crate) type Object = Result<Json<serde_json::Map<String, serde_json::Value>>, JsonRejection>;

/// The body as a `T`, or 400/415/422 saying why not.
pub(crate) fn read<T: DeserializeOwned>(body: Object) -> Result<T, ApiError> {
    let Json(object) = body.map_err(|r| match r {
        // Valid JSON that is not an object: say so, not serde's words about maps.
        JsonRejection::JsonDataError(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the body must be a JSON object",
        ),
        other => ApiError::from(other),
    })?;
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("{e}")))
}
