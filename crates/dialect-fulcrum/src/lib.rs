//! tintype-fulcrum: the Fulcrum Photos API (`/api/v2/photos…`).
//!
//! A photo is a tintype image plus a dialect record (scope
//! `fulcrum.photo`, key `{user_id}:{access_key}`) holding the client-chosen
//! access key, the optional record and form ids and who uploaded it. Access
//! keys are therefore per user: one user can never see, or learn of,
//! another's photo. The `thumbnail` and `large` versions are the core's
//! `thumbnail` and `large1080` presets, rendered by the job queue after the
//! upload; a photo is `processed` once the core has rendered them all.
//!
//! Every path answers with and without its `.json` suffix (the official
//! clients leave it out). axum cannot match `{key}.json` inside one
//! segment, so the handlers take the whole segment and split the suffix.

mod error;
mod photos;
mod upload;
mod wire;

pub use error::{FieldErrors, FulcrumError};

use axum::routing::get;
use axum::Router;
use tintype_engine::core::Scope;
use tintype_http::auth::{CallerRules, TokenSource};
use tintype_http::AppState;

/// The routes of the dialect, with full paths.
pub fn router() -> Router<AppState> {
    let collection = get(photos::list)
        .post(upload::create)
        .fallback(|| async { FulcrumError::MethodNotAllowed("GET, HEAD, POST") });
    Router::new()
        .route("/api/v2/photos", collection.clone())
        .route("/api/v2/photos.json", collection)
        .route(
            "/api/v2/photos/{file}",
            get(photos::show).fallback(|| async { FulcrumError::MethodNotAllowed("GET, HEAD") }),
        )
        .route(
            "/api/v2/photos/{key}/{file}",
            get(photos::show_version)
                .fallback(|| async { FulcrumError::MethodNotAllowed("GET, HEAD") }),
        )
}

/// Fulcrum's callers: `X-ApiToken` or `?token=`; refusals in its error
/// bodies (401, 403).
pub struct Fulcrum;

impl CallerRules for Fulcrum {
    const SOURCES: &'static [TokenSource] = &[TokenSource::XApiToken, TokenSource::QueryToken];
    type Rejection = FulcrumError;

    fn missing() -> FulcrumError {
        FulcrumError::Unauthorized
    }

    fn lacks(_: &[Scope]) -> FulcrumError {
        FulcrumError::Forbidden
    }
}

/// Longest access key, record id or form id accepted.
pub(crate) const MAX_ID_LEN: usize = 255;

/// Access keys appear in URL paths, where a dot would be taken for a
/// suffix: letters, digits, `-` and `_` only.
pub(crate) fn valid_access_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_ID_LEN
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_keys_are_url_safe() {
        assert!(valid_access_key("5b8d16c7-4203-487f-862d-bf454f3de6e1"));
        assert!(valid_access_key("A_b-9"));
        assert!(!valid_access_key(""));
        assert!(!valid_access_key("a.jpg"));
        assert!(!valid_access_key("a/b"));
        assert!(!valid_access_key(&"x".repeat(MAX_ID_LEN + 1)));
    }
}
