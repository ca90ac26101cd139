//! Secrets never reach a log: the request span shows the URI with the
//! values of token-carrying query parameters replaced by [`MARKER`], and at
//! trace level the headers with token-carrying ones replaced the same way.

use axum::http::{HeaderMap, Request, Uri};
use std::borrow::Cow;
use tracing::Span;

/// What a secret is replaced with.
pub const MARKER: &str = "[redacted]";

/// Query parameters that carry secrets (compared without case, `-` and `_`).
const SECRET_PARAMS: &[&str] = &[
    "accesstoken",
    "token",
    "apikey",
    "apitoken",
    "key",
    "secret",
    "password",
    "auth",
    "authorization",
    "signature",
    "xamzsignature",
    "xamzcredential",
    "xamzsecuritytoken",
];

/// Headers that carry secrets.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "apikey",
    "x-apitoken",
    "x-api-key",
    "x-api-token",
    "x-auth-token",
];

fn is_secret_param(raw_key: &str) -> bool {
    let decoded: Cow<'_, str> = url::form_urlencoded::parse(raw_key.as_bytes())
        .next()
        .map(|(k, _)| Cow::Owned(k.into_owned()))
        .unwrap_or(Cow::Borrowed(raw_key));
    let norm: String = decoded
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_PARAMS.contains(&norm.as_str())
        // `user[api_key]`, `photo[token]` and the like.
        || norm
            .rsplit_once('[')
            .is_some_and(|(_, inner)| SECRET_PARAMS.contains(&inner.trim_end_matches(']')))
}

/// A query string with the values of secret parameters replaced.
pub fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_param(k) => format!("{k}={MARKER}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// The path and query of a URI, secrets replaced.
pub fn redact_uri(uri: &Uri) -> String {
    match uri.query() {
        Some(q) => format!("{}?{}", uri.path(), redact_query(q)),
        None => uri.path().to_string(),
    }
}

/// The headers as `name: value` pairs, secret values replaced.
pub fn redact_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let n = name.as_str();
            let v = if SECRET_HEADERS.contains(&n) {
                MARKER.to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes()).into_owned()
            };
            (n.to_string(), v)
        })
        .collect()
}

/// The span of one request: at info level its request id `id`, so that
/// every line logged for the request names it; at debug also the method
/// and the redacted URI (and at trace the redacted headers). Nothing is
/// formatted for a level that is off.
pub(crate) fn make_span<B>(req: &Request<B>, id: &str) -> Span {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return tracing::info_span!("request", request_id = %id);
    }
    let uri = redact_uri(req.uri());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        uri = %uri,
        version = ?req.version(),
        headers = tracing::field::Empty,
    );
    if tracing::enabled!(tracing::Level::TRACE) {
        span.record(
            "headers",
            tracing::field::debug(redact_headers(req.headers())),
        );
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_parameters_are_redacted_and_others_kept() {
        let q =
            "limit=5&access_token=s3cret&Apikey=abc&api_key=x&token=t&photo%5Btoken%5D=p&name=ok";
        let r = redact_query(q);
        for secret in ["s3cret", "=abc", "=x&", "token=t", "=p&"] {
            assert!(!r.contains(secret), "{secret} kept in {r}");
        }
        assert!(r.contains("limit=5") && r.contains("name=ok"), "{r}");
        assert_eq!(r.matches(MARKER).count(), 5, "{r}");
    }

    #[test]
    fn secret_headers_are_redacted() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        h.insert("x-apitoken", "s3cret".parse().unwrap());
        h.insert("cookie", "session=s3cret".parse().unwrap());
        h.insert("apikey", "s3cret".parse().unwrap());
        h.insert("accept", "image/png".parse().unwrap());
        let r = format!("{:?}", redact_headers(&h));
        assert!(!r.contains("s3cret"), "{r}");
        assert!(r.contains("image/png"), "{r}");
    }
}
