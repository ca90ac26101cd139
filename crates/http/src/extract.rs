//! Typed request pieces every API shares, as axum extractors.
//!
//! # Design choices
//!
//! - [`Params`] is the query string decoded once into its pairs, in order.
//!   The original APIs are lenient in their own ways (the first of a
//!   repeated key wins, a page number that does not parse falls back to the
//!   first page, unknown keys are ignored), which a `serde` struct would
//!   turn into 400s; so each handler reads the named parameters it knows
//!   from one parsed value instead of parsing the URI itself.
//! - Uploads keep the body as a stream ([`axum::body::Body`]), and a handler
//!   that accepts several encodings reads the `Content-Type` from the
//!   headers and opens a multipart reader with [`multipart`]: nothing needs
//!   the raw request.

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Multipart};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Request};
use std::convert::Infallible;

/// The request's query string, decoded into its pairs (in order).
#[derive(Debug, Clone, Default)]
pub struct Params {
    raw: Option<String>,
    pairs: Vec<(String, String)>,
}

impl Params {
    /// The pairs of a raw query string (`None`: no query).
    pub fn parse(query: Option<&str>) -> Params {
        Params {
            raw: query.map(str::to_string),
            pairs: query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .into_owned()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, when it is not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The query string as received (still encoded).
    pub fn raw(&self) -> Option<&str> {
        self.raw.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Params::parse(parts.uri.query()))
    }
}

/// The request's `Content-Type` media type, lower case, without
/// parameters (empty when there is none).
pub fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A multipart reader over `body`, for a handler that chose multipart by
/// its `Content-Type` (in `headers`).
pub async fn multipart(headers: &HeaderMap, body: Body) -> Result<Multipart, MultipartRejection> {
    let mut req = Request::new(body);
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        req.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
    }
    // As for every request (see `App`): the engine caps the file while it
    // streams and each text field has its own cap, so axum's default 2 MB
    // limit must not cut the form.
    DefaultBodyLimit::disable().apply(&mut req);
    Multipart::from_request(req, &()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_keep_order_decode_and_take_the_first_of_a_repeated_key() {
        let p = Params::parse(Some("a=1&b=x%20y&a=2&c=&d"));
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), Some("x y"));
        assert_eq!(p.get("c"), Some(""));
        assert_eq!(p.non_empty("c"), None);
        assert_eq!(p.get("d"), Some(""));
        assert_eq!(p.get("e"), None);
        assert_eq!(p.pairs().len(), 5);
        assert_eq!(p.raw(), Some("a=1&b=x%20y&a=2&c=&d"));
        assert!(Params::parse(None).pairs().is_empty());
    }

    /// A form larger than axum's default body limit (2 MB) is read whole:
    /// the engine caps uploads itself.
    #[tokio::test]
    async fn a_multipart_form_is_not_cut_at_axums_default_limit() {
        let file = vec![b'x'; 3 * 1024 * 1024];
        let mut body =
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n"
                .to_vec();
        body.extend_from_slice(&file);
        body.extend_from_slice(b"\r\n--B--\r\n");
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=B".parse().unwrap(),
        );
        let mut mp = multipart(&h, Body::from(body)).await.unwrap();
        let mut field = mp.next_field().await.unwrap().unwrap();
        let mut n = 0;
        while let Some(chunk) = field.chunk().await.unwrap() {
            n += chunk.len();
        }
        assert_eq!(n, file.len());
    }

    #[test]
    fn media_type_drops_parameters_and_case() {
        let mut h = HeaderMap::new();
        assert_eq!(media_type(&h), "");
        h.insert(
            header::CONTENT_TYPE,
            "Multipart/Form-Data; boundary=x".parse().unwrap(),
        );
        assert_eq!(media_type(&h), "multipart/form-data");
    }
}
