//! Who is calling: the one place a request's token is found and checked.
//!
//! Each API describes its rules once, as a [`CallerRules`] type (which
//! token places it honours, how it words a missing or unknown token and a
//! missing scope), and its handlers take a [`Caller`] of those rules as an
//! extractor, then [`Caller::require`] the scope an operation needs.

use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName};
use axum::response::IntoResponse;
use std::borrow::Cow;
use std::marker::PhantomData;
use tintype_engine::core::{CoreError, Principal, Scope};

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

const APIKEY: HeaderName = HeaderName::from_static("apikey");
const X_APITOKEN: HeaderName = HeaderName::from_static("x-apitoken");

fn header<'a>(h: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<Cow<'a, str>> {
    let q = query?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .filter(|s| !s.is_empty())
}

/// The first token found in the given places, in their order (borrowed
/// from the request where it can be).
pub fn token_in<'a>(
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    sources: &[TokenSource],
) -> Option<Cow<'a, str>> {
    for s in sources {
        let found = match s {
            TokenSource::Bearer => header(headers, &AUTHORIZATION)
                .and_then(|v| {
                    let (scheme, rest) = v.split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
                })
                .map(Cow::Borrowed),
            TokenSource::ApikeyHeader => header(headers, &APIKEY).map(Cow::Borrowed),
            TokenSource::XApiToken => header(headers, &X_APITOKEN).map(Cow::Borrowed),
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

/// The first token found in the given places, in their order.
pub fn token_from(
    headers: &HeaderMap,
    query: Option<&str>,
    sources: &[TokenSource],
) -> Option<String> {
    token_in(headers, query, sources).map(Cow::into_owned)
}

/// How one API finds its caller and words refusals.
pub trait CallerRules: Send + Sync + 'static {
    /// Where the API's token may come from, in order.
    const SOURCES: &'static [TokenSource];
    /// The API's error type.
    type Rejection: IntoResponse + From<CoreError> + Send;
    /// No token was given where one is needed.
    fn missing() -> Self::Rejection;
    /// A token was given that is unknown, expired or revoked (by default
    /// worded as a missing one).
    fn invalid() -> Self::Rejection {
        Self::missing()
    }
    /// The token holds none of `scopes`.
    fn lacks(scopes: &[Scope]) -> Self::Rejection;
}

/// The caller of a request as the API `R` finds it: no principal when the
/// request carries no token; an unknown token is refused with
/// [`CallerRules::invalid`] while extracting.
pub struct Caller<R> {
    principal: Option<Principal>,
    rules: PhantomData<R>,
}

impl<R: CallerRules> Caller<R> {
    /// The caller of a request with these headers and query (for code that
    /// has them at hand rather than as an extractor).
    pub async fn of(
        state: &AppState,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Self, R::Rejection> {
        Self::with_secret(state, token_in(headers, query, R::SOURCES).as_deref()).await
    }

    /// The caller holding `token` (found by the API itself, e.g. in a body).
    pub async fn with_token(state: &AppState, token: Option<String>) -> Result<Self, R::Rejection> {
        Self::with_secret(state, token.as_deref()).await
    }

    async fn with_secret(state: &AppState, token: Option<&str>) -> Result<Self, R::Rejection> {
        let principal = match token {
            None => None,
            Some(t) => Some(state.engine.authenticate(t).await?.ok_or_else(R::invalid)?),
        };
        Ok(Caller {
            principal,
            rules: PhantomData,
        })
    }

    /// The signed-in principal, whatever it may do.
    pub fn signed_in(self) -> Result<Principal, R::Rejection> {
        self.principal.ok_or_else(R::missing)
    }

    /// The principal, holding `scope`.
    pub fn require(self, scope: Scope) -> Result<Principal, R::Rejection> {
        self.require_any(&[scope])
    }

    /// The principal, holding at least one of `scopes`.
    pub fn require_any(self, scopes: &[Scope]) -> Result<Principal, R::Rejection> {
        let p = self.signed_in()?;
        if scopes.iter().any(|s| p.has(*s)) {
            Ok(p)
        } else {
            Err(R::lacks(scopes))
        }
    }

    /// No principal for an anonymous request; else the principal, holding
    /// `scope`.
    pub fn optional(self, scope: Scope) -> Result<Option<Principal>, R::Rejection> {
        match self.principal {
            None => Ok(None),
            Some(_) => self.require(scope).map(Some),
        }
    }

    /// The principal if the request carried a valid token.
    pub fn principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }
}

impl<R: CallerRules> FromRequestParts<AppState> for Caller<R> {
    type Rejection = R::Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Self::of(state, &parts.headers, parts.uri.query()).await
    }
}
