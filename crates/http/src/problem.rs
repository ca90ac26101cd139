//! The native API's error body: `application/problem+json` (RFC 9457).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tintype_engine::core::CoreError;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub title: String,
    pub detail: String,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            detail: detail.into(),
        }
    }
}

/// The HTTP status that fits each core error; dialects may use it too.
pub fn status_of(e: &CoreError) -> StatusCode {
    match e {
        CoreError::NotFound => StatusCode::NOT_FOUND,
        CoreError::Unauthorized => StatusCode::UNAUTHORIZED,
        CoreError::Forbidden(_) => StatusCode::FORBIDDEN,
        CoreError::Invalid(_) => StatusCode::BAD_REQUEST,
        CoreError::Conflict(_) => StatusCode::CONFLICT,
        CoreError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        CoreError::Refused(r) => match r.code() {
            "invalid" => StatusCode::BAD_REQUEST,
            "rejected" => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        },
        CoreError::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        CoreError::Unavailable(_) | CoreError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
        CoreError::OverBudget { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        CoreError::NoSpace(_) => StatusCode::INSUFFICIENT_STORAGE,
        CoreError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<CoreError> for Problem {
    fn from(e: CoreError) -> Self {
        let status = status_of(&e);
        let detail = match &e {
            CoreError::Internal(d) => {
                tracing::error!("internal error: {d}");
                "something went wrong; the details are in the server log".to_string()
            }
            CoreError::NoSpace(d) => {
                tracing::warn!("no space left: {d}");
                e.to_string()
            }
            other => other.to_string(),
        };
        Problem::new(status, e.code(), detail)
    }
}

/// A problem as served (RFC 9457), fields in alphabetical order.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProblemBody {
    /// What went wrong, for a person.
    pub detail: String,
    /// The request's id (the `X-Request-Id` response header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The HTTP status.
    pub status: u16,
    /// The status's reason phrase.
    pub title: String,
    /// `urn:tintype:problem:CODE`, CODE one of the native API's stable
    /// codes (not_found, unauthorized, forbidden, invalid, too_large,
    /// unsupported_media, rejected, quota_exceeded, busy, over_budget,
    /// no_space, unavailable, conflict, internal).
    #[serde(rename = "type")]
    #[schema(pattern = "^urn:tintype:problem:[a-z_]+$")]
    pub kind: String,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = ProblemBody {
            detail: self.detail,
            request_id: crate::request_id::current(),
            status: self.status.as_u16(),
            title: self.title,
            kind: format!("urn:tintype:problem:{}", self.code),
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut resp = (self.status, text).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tintype\""),
            );
        }
        resp
    }
}

pub(crate) fn panic_response(
    panics: &prometheus::IntCounter,
    _: Box<dyn std::any::Any + Send + 'static>,
) -> Response {
    panics.inc();
    tracing::error!("a request handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "something went wrong; the details are in the server log",
    )
    .into_response()
}
