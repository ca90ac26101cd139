//! PopIt's API key: the `Apikey` header (any case), the `apikey` query
//! parameter, or an `apikey` field of a JSON body. It is a tintype token
//! secret.

use crate::error::{PopitError, PopitResult};
use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Map, Value};
use tintype_engine::core::{Principal, Record, Scope};
use tintype_http::auth::{token_from, Caller, CallerRules, TokenSource};
use tintype_http::limits::read_body;
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

/// PopIt's callers: the API key in the `Apikey` header or `?apikey=`
/// (or a JSON body's `apikey`, found by the handler); refusals in its
/// error bodies.
pub struct Popit;

impl CallerRules for Popit {
    const SOURCES: &'static [TokenSource] = SOURCES;
    type Rejection = PopitError;

    fn missing() -> PopitError {
        PopitError::Unauthorized
    }

    fn lacks(scopes: &[Scope]) -> PopitError {
        let names: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        PopitError::Status(
            StatusCode::FORBIDDEN,
            format!("the API key lacks the scope {}", names.join(" or ")),
        )
    }
}

/// The principal behind `key`, allowed to do `need`.
pub async fn writer(st: &AppState, key: Option<String>, need: Need) -> PopitResult<Principal> {
    let scopes: &[Scope] = match need {
        Need::Write => &[Scope::ImageWrite],
        Need::Delete => &[Scope::ImageWrite, Scope::ImageDelete],
    };
    Caller::<Popit>::with_token(st, key)
        .await?
        .require_any(scopes)
}

/// The caller of a DELETE, allowed to delete: the key from the header or
/// query, else from an `apikey` field of a small JSON body (the body is
/// read for that alone).
pub struct Deleter(pub Principal);

impl FromRequest<AppState> for Deleter {
    type Rejection = PopitError;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, PopitError> {
        let (parts, body) = req.into_parts();
        let key = match request_key(&parts.headers, parts.uri.query()) {
            Some(k) => Some(k),
            None => body_key(&parts.headers, body).await,
        };
        Ok(Deleter(writer(st, key, Need::Delete).await?))
    }
}

/// An `apikey` field of a small JSON body.
async fn body_key(headers: &HeaderMap, body: Body) -> Option<String> {
    let bytes = read_body(headers, body, 64 * 1024).await.ok()?;
    match crate::wire::parse_json(&bytes).ok()? {
        Value::Object(mut m) => take_apikey(&mut m),
        _ => None,
    }
}

/// Removes a JSON body's `apikey` field; its value when it is a string.
pub fn take_apikey(body: &mut Map<String, Value>) -> Option<String> {
    match body.remove("apikey") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
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
