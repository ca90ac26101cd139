//! Djinn's error envelope: `{"message": "..."}` for everything but form
//! validation, which answers `400` with a map of field name to messages,
//! every failing field reported at once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tintype_engine::core::CoreError;

pub use tintype_http::wire::FieldErrors;

/// Everything a Djinn handler can answer besides success.
#[derive(Debug)]
pub enum ApiError {
    /// 404 `{"message":"Not Found"}`: no token, a missing scope, or an
    /// image the caller may not see.
    NotFound,
    /// 400 with the field-keyed body.
    Fields(FieldErrors),
    /// Any other status with a message.
    Message(StatusCode, String),
}

impl ApiError {
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut f = FieldErrors::default();
        f.add(field, message);
        ApiError::Fields(f)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::Message(StatusCode::BAD_REQUEST, message.into())
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound | CoreError::Unauthorized | CoreError::Forbidden(_) => {
                ApiError::NotFound
            }
            CoreError::NoSpace(detail) => {
                tracing::warn!("djinn: no space left: {detail}");
                ApiError::Message(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "Insufficient storage: the server has no space left".into(),
                )
            }
            CoreError::Internal(detail) => {
                tracing::error!("djinn: internal error: {detail}");
                ApiError::Message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong".into(),
                )
            }
            other => {
                let status = tintype_http::status_of(&other);
                ApiError::Message(status, capitalize(&other.to_string()))
            }
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound => (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"message": "Not Found"})),
            )
                .into_response(),
            ApiError::Fields(f) => (
                StatusCode::BAD_REQUEST,
                axum::Json(Value::Object(f.to_map())),
            )
                .into_response(),
            ApiError::Message(status, message) => {
                (status, axum::Json(json!({ "message": message }))).into_response()
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_errors_collect_per_field() {
        let mut f = FieldErrors::default();
        f.add("name", "Name field required");
        f.add("file", "File not a valid QCOW2 file format");
        f.add("name", "Name already exists");
        assert_eq!(
            Value::Object(f.to_map()),
            json!({"file": ["File not a valid QCOW2 file format"],
                   "name": ["Name field required", "Name already exists"]})
        );
    }
}
