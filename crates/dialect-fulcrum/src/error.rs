//! The Fulcrum error envelope.
//!
//! Validation failures answer `422 {"photo":{"errors":{field:[message]}}}`;
//! everything else answers `{"error": message}` with the fitting status
//! (`401 {"error":"Unauthorized"}` for a missing or bad token).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tintype_engine::core::CoreError;

pub use tintype_http::wire::FieldErrors;

/// Fulcrum's validation body.
fn field_body(errors: &FieldErrors) -> Value {
    json!({ "photo": { "errors": errors.to_map() } })
}

#[derive(Debug)]
pub enum FulcrumError {
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed(&'static str),
    BadRequest(String),
    Validation(FieldErrors),
    /// The file is larger than the configured upload limit.
    TooLarge(u64),
    /// A text field of the form is larger than its cap (bytes).
    FieldTooLarge(&'static str, u64),
    Core(CoreError),
}

impl From<CoreError> for FulcrumError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound => FulcrumError::NotFound,
            CoreError::Unauthorized => FulcrumError::Unauthorized,
            CoreError::Forbidden(_) => FulcrumError::Forbidden,
            CoreError::TooLarge { limit } => FulcrumError::TooLarge(limit),
            other => FulcrumError::Core(other),
        }
    }
}

fn error_body(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

impl IntoResponse for FulcrumError {
    fn into_response(self) -> Response {
        match self {
            FulcrumError::Unauthorized => error_body(StatusCode::UNAUTHORIZED, "Unauthorized"),
            FulcrumError::Forbidden => error_body(StatusCode::FORBIDDEN, "Forbidden"),
            FulcrumError::NotFound => error_body(StatusCode::NOT_FOUND, "Not Found"),
            FulcrumError::MethodNotAllowed(allow) => {
                let mut resp = error_body(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                resp
            }
            FulcrumError::BadRequest(m) => error_body(StatusCode::BAD_REQUEST, &m),
            FulcrumError::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                axum::Json(field_body(&errors)),
            )
                .into_response(),
            FulcrumError::TooLarge(limit) => {
                let mut errors = FieldErrors::default();
                errors.add("file", format!("is too large (the limit is {limit} bytes)"));
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    axum::Json(field_body(&errors)),
                )
                    .into_response()
            }
            FulcrumError::FieldTooLarge(field, limit) => {
                let mut errors = FieldErrors::default();
                errors.add(field, format!("is too large (the limit is {limit} bytes)"));
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    axum::Json(field_body(&errors)),
                )
                    .into_response()
            }
            FulcrumError::Core(CoreError::NoSpace(detail)) => {
                tracing::warn!("fulcrum: no space left: {detail}");
                error_body(StatusCode::INSUFFICIENT_STORAGE, "Insufficient Storage")
            }
            FulcrumError::Core(e) => {
                let status = tintype_http::status_of(&e);
                if status.is_server_error() {
                    tracing::error!("fulcrum: {e:?}");
                    error_body(status, "Internal Server Error")
                } else {
                    error_body(status, &e.to_string())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_field_errors_share_one_envelope() {
        let mut e = FieldErrors::default();
        e.add("access_key", "must be provided");
        e.add("file", "must be provided");
        e.add("file", "must be provided");
        assert_eq!(
            field_body(&e),
            json!({"photo":{"errors":{"access_key":["must be provided"],"file":["must be provided"]}}})
        );
    }
}
