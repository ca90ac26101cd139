//! diaspora*'s error envelope: `{"code": <status>, "message": "<text>"}`,
//! and the OAuth-style body of a 401.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tintype_engine::core::CoreError;

pub(crate) const NOT_FOUND: &str = "Photo with provided guid could not be found";
pub(crate) const CREATE_FAILED: &str = "Failed to create the photo";
const INVALID_TOKEN: &str =
    "The access token provided is expired, revoked, malformed or invalid for other reasons.";

/// Everything a diaspora handler may answer instead of a success.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// No token, or one that is unknown or revoked.
    InvalidToken,
    /// A valid token without the needed scope.
    InsufficientScope,
    /// Unknown guid, or a photo of another user.
    NotFound,
    /// The upload could not be made into a photo.
    CreateFailed,
    /// Any other status with its message.
    Status(StatusCode, String),
    /// Logged; the body says nothing internal.
    Internal(String),
}

impl ApiError {
    pub(crate) fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::Status(StatusCode::BAD_REQUEST, msg.into())
    }

    /// How an engine error reads on an upload.
    pub(crate) fn on_create(e: CoreError) -> Self {
        match e {
            CoreError::Invalid(_) | CoreError::Refused(_) => ApiError::CreateFailed,
            CoreError::TooLarge { limit } => ApiError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{CREATE_FAILED}: the file is larger than {limit} bytes"),
            ),
            other => other.into(),
        }
    }
}

impl From<CoreError> for ApiError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::NotFound => ApiError::NotFound,
            CoreError::Unauthorized => ApiError::InvalidToken,
            CoreError::Forbidden(_) => ApiError::InsufficientScope,
            CoreError::Internal(d) => ApiError::Internal(d),
            other => ApiError::Status(tintype_http::status_of(&other), other.to_string()),
        }
    }
}

fn envelope(status: StatusCode, message: &str) -> Response {
    let body = json!({"code": status.as_u16(), "message": message});
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::InvalidToken => {
                let body = json!({"error": "invalid_token", "error_description": INVALID_TOKEN});
                let mut resp = (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tintype\", error=\"invalid_token\""),
                );
                resp
            }
            ApiError::InsufficientScope => envelope(StatusCode::FORBIDDEN, "insufficient_scope"),
            ApiError::NotFound => envelope(StatusCode::NOT_FOUND, NOT_FOUND),
            ApiError::CreateFailed => envelope(StatusCode::UNPROCESSABLE_ENTITY, CREATE_FAILED),
            ApiError::Status(s, m) => envelope(s, &m),
            ApiError::Internal(detail) => {
                tracing::error!("diaspora: internal error: {detail}");
                envelope(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Internal server error; the details are in the server log",
                )
            }
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;
