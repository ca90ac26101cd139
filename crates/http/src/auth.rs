//! Where a token may come from. Each dialect picks the places it honours
//! and words its own refusal.

use crate::AppState;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use tintype_engine::core::{CoreError, Principal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>`
    Bearer,
    /// `Apikey: <token>` (any case)
    ApikeyHeader,
    /// `X-ApiToken: <token>`
    XApiToken,
    /// `?access_token=`
    QueryAccessToken,
    /// `?token=`
    QueryToken,
    /// `?apikey=`
    QueryApikey,
}

pub const ALL: &[TokenSource] = &[
    TokenSource::Bearer,
    TokenSource::ApikeyHeader,
    TokenSource::XApiToken,
    TokenSource::QueryAccessToken,
    TokenSource::QueryToken,
    TokenSource::QueryApikey,
];

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    let q = query?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|s| !s.is_empty())
}

/// The first token found in the given places, in their order.
pub fn token_from(
    headers: &HeaderMap,
    query: Option<&str>,
    sources: &[TokenSource],
) -> Option<String> {
    for s in sources {
        let found = match s {
            TokenSource::Bearer => header(headers, "authorization").and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| rest.trim().to_string())
            }),
            TokenSource::ApikeyHeader => header(headers, "apikey"),
            TokenSource::XApiToken => header(headers, "x-apitoken"),
            TokenSource::QueryAccessToken => query_param(query, "access_token"),
            TokenSource::QueryToken => query_param(query, "token"),
            TokenSource::QueryApikey => query_param(query, "apikey"),
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The principal behind the request's token, if it carries a valid one.
pub async fn principal(
    state: &AppState,
    parts: &Parts,
    sources: &[TokenSource],
) -> Result<Option<Principal>, CoreError> {
    principal_from(state, &parts.headers, parts.uri.query(), sources).await
}

pub async fn principal_from(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
    sources: &[TokenSource],
) -> Result<Option<Principal>, CoreError> {
    match token_from(headers, query, sources) {
        None => Ok(None),
        Some(t) => state.engine.authenticate(&t).await,
    }
}
