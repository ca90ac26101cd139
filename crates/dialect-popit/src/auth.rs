//! PopIt's API key: the `Apikey` header (any case), the `apikey` query
//! parameter, or an `apikey` field of a JSON body. It is a tintype token
//! secret.

use crate::error::{PopitError, PopitResult};
use axum::http::{HeaderMap, StatusCode};
use tintype_engine::core::{Principal, Record, Scope};
use tintype_http::auth::{token_from, TokenSource};
use tintype_http::AppState;

const SOURCES: &[TokenSource] = &[TokenSource::ApikeyHeader, TokenSource::QueryApikey];

/// What a write needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Create or change documents and images: `image:write`.
    Write,
    /// Delete documents or images: `image:write` or `image:delete`.
    Delete,
}

/// The key from the header or query, if any.
pub fn request_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    token_from(headers, query, SOURCES)
}

/// The principal behind `key`, allowed to do `need`.
pub async fn writer(st: &AppState, key: Option<String>, need: Need) -> PopitResult<Principal> {
    let key = key.ok_or(PopitError::Unauthorized)?;
    let p = st
        .engine
        .authenticate(&key)
        .await?
        .ok_or(PopitError::Unauthorized)?;
    let ok = match need {
        Need::Write => p.has(Scope::ImageWrite),
        Need::Delete => p.has(Scope::ImageWrite) || p.has(Scope::ImageDelete),
    };
    if !ok {
        let scope = match need {
            Need::Write => "image:write",
            Need::Delete => "image:write or image:delete",
        };
        return Err(PopitError::Status(
            StatusCode::FORBIDDEN,
            format!("the API key lacks the scope {scope}"),
        ));
    }
    Ok(p)
}

/// Refuses changes to a document another user created (admins excepted).
pub fn may_change(p: &Principal, record: &Record) -> PopitResult<()> {
    if record.owner_id == Some(p.user.id) || p.has(Scope::Admin) {
        Ok(())
    } else {
        Err(PopitError::Status(
            StatusCode::FORBIDDEN,
            "this document belongs to another user".into(),
        ))
    }
}
