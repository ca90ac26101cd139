//! The public-API error envelope:
//! `{"status":400,"error":"Bad Request","error_details":{...}}`, and for the
//! usage limit the same object inside an array, with `Retry-After`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tintype_engine::core::CoreError;

/// An error answered in the Livingdocs public-API envelope.
#[derive(Debug)]
pub enum ApiError {
    /// 400 with one message per JSON path.
    Validation(Map<String, Value>),
    /// 401: no token, or one that is unknown or revoked.
    Unauthorized(&'static str),
    /// 403: the token lacks the scope.
    Forbidden(String),
    NotFound(String),
    /// 429: the account's images-per-day limit.
    Usage {
        limit: i64,
        used: i64,
        requested: i64,
        retry_after: u64,
    },
    /// 413: the request body is over the limit.
    TooLarge(u64),
    Unavailable(String),
    /// 507: the server has no space left to store the upload.
    NoSpace,
    /// 500; the detail is logged, never sent.
    Internal(String),
}

impl ApiError {
    pub fn invalid(path: &str, message: impl Into<String>) -> Self {
        let mut m = Map::new();
        m.insert(path.to_string(), Value::String(message.into()));
        ApiError::Validation(m)
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound => ApiError::NotFound("not found".into()),
            CoreError::Unauthorized => ApiError::Unauthorized("a valid access token is required"),
            CoreError::Forbidden(s) => ApiError::Forbidden(s),
            CoreError::Invalid(m) | CoreError::Conflict(m) => ApiError::invalid("body", m),
            CoreError::Refused(r) => ApiError::invalid("body", r.to_string()),
            CoreError::TooLarge { limit } => ApiError::TooLarge(limit),
            CoreError::QuotaExceeded {
                limit,
                used,
                requested,
            } => ApiError::Usage {
                limit,
                used,
                requested,
                retry_after: 3600,
            },
            CoreError::Unavailable(m) => ApiError::Unavailable(m),
            e @ CoreError::Busy { .. } => ApiError::Unavailable(e.to_string()),
            e @ CoreError::OverBudget { .. } => ApiError::invalid("format", e.to_string()),
            CoreError::NoSpace(m) => {
                tracing::warn!("livingdocs: no space left: {m}");
                ApiError::NoSpace
            }
            CoreError::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// The usage-limit message, worded as the original system words it.
pub fn usage_message(limit: i64, used: i64, requested: i64) -> String {
    format!(
        "Your plan does not allow you to upload more than {limit} per day.\n      You already uploaded {used} in the last 24 hours and are trying to upload {requested} more.\n      Please try again later."
    )
}

fn envelope(status: StatusCode, details: Value) -> Value {
    json!({
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
        "error_details": details,
    })
}

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Validation(m) => json_response(
                StatusCode::BAD_REQUEST,
                envelope(StatusCode::BAD_REQUEST, Value::Object(m)),
            ),
            ApiError::Unauthorized(msg) => {
                let mut r = json_response(
                    StatusCode::UNAUTHORIZED,
                    envelope(StatusCode::UNAUTHORIZED, json!({ "access_token": msg })),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tintype\""),
                );
                r
            }
            ApiError::Forbidden(scope) => json_response(
                StatusCode::FORBIDDEN,
                envelope(
                    StatusCode::FORBIDDEN,
                    json!({ "access_token": format!("the token lacks the scope {scope}") }),
                ),
            ),
            ApiError::NotFound(msg) => json_response(
                StatusCode::NOT_FOUND,
                envelope(StatusCode::NOT_FOUND, json!({ "message": msg })),
            ),
            ApiError::Usage {
                limit,
                used,
                requested,
                retry_after,
            } => {
                let status = StatusCode::TOO_MANY_REQUESTS;
                let body = json!([{
                    "status": 429,
                    "error": "Usage Limit Exceeded",
                    "error_details": { "message": usage_message(limit, used, requested) },
                }]);
                let mut r = json_response(status, body);
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                r
            }
            ApiError::TooLarge(limit) => json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                envelope(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({ "body": format!("the request body is larger than {limit} bytes") }),
                ),
            ),
            ApiError::Unavailable(m) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                envelope(StatusCode::SERVICE_UNAVAILABLE, json!({ "message": m })),
            ),
            ApiError::NoSpace => json_response(
                StatusCode::INSUFFICIENT_STORAGE,
                envelope(
                    StatusCode::INSUFFICIENT_STORAGE,
                    json!({ "message": "the server has no space left to store this; try again later" }),
                ),
            ),
            ApiError::Internal(detail) => {
                tracing::error!("livingdocs: internal error: {detail}");
                json_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    envelope(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        json!({ "message": "something went wrong; the details are in the server log" }),
                    ),
                )
            }
        }
    }
}
