//! PopIt's error envelope: `{"errors": ["..."]}` for everything except the
//! authentication refusal, which is `{"message": "Unauthorized"}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tintype_engine::core::CoreError;

#[derive(Debug)]
pub enum PopitError {
    /// Missing or wrong API key: `401 {"message":"Unauthorized"}`.
    Unauthorized,
    /// A client-facing error with its status and message.
    Status(StatusCode, String),
    /// Something unexpected; the detail is logged, not sent.
    Internal(String),
}

pub type PopitResult<T> = Result<T, PopitError>;

impl PopitError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        PopitError::Status(StatusCode::BAD_REQUEST, msg.into())
    }

    pub fn not_found(msg: impl Into<String>) -> Self {
        PopitError::Status(StatusCode::NOT_FOUND, msg.into())
    }

    pub fn collection_not_found(name: &str) -> Self {
        Self::not_found(format!("collection '{name}' not found"))
    }

    pub fn method() -> Self {
        PopitError::Status(StatusCode::METHOD_NOT_ALLOWED, "unsupported method".into())
    }
}

/// A JSON response with the given status.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

impl IntoResponse for PopitError {
    fn into_response(self) -> Response {
        match self {
            PopitError::Unauthorized => json_response(
                StatusCode::UNAUTHORIZED,
                &json!({"message": "Unauthorized"}),
            ),
            PopitError::Status(status, msg) => json_response(status, &json!({"errors": [msg]})),
            PopitError::Internal(detail) => {
                tracing::error!("popit: {detail}");
                json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"errors": ["Something went wrong", "the details are in the server log"]}),
                )
            }
        }
    }
}

impl From<CoreError> for PopitError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::Unauthorized => PopitError::Unauthorized,
            CoreError::Internal(d) => PopitError::Internal(d),
            CoreError::Forbidden(scope) => PopitError::Status(
                StatusCode::FORBIDDEN,
                format!("the API key lacks the scope {scope}"),
            ),
            other => PopitError::Status(tintype_http::status_of(&other), other.to_string()),
        }
    }
}

/// The 405 answer for a method a known route does not serve.
pub async fn method_not_allowed() -> PopitError {
    PopitError::method()
}

/// The 404 answer for an unknown path under the API prefix.
pub async fn no_route() -> PopitError {
    PopitError::not_found("not found")
}
