//! Serving stored bytes: ETag (the SHA-256), Last-Modified, Cache-Control,
//! conditional requests (304) and single byte ranges (206, 416), streamed
//! from the blob store (small blobs whole from the engine's memory cache).

use crate::AppState;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tintype_engine::core::{ByteRange, CoreError};
use tintype_engine::BlobRef;

/// How a response may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Behind a token: only the caller's own cache.
    Private,
    /// Anonymous, public URLs.
    Public,
}

impl Caching {
    fn header(&self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Caching::Private => "private, max-age=86400",
            Caching::Public => "public, max-age=86400",
        })
    }
}

/// A range that starts past the end of the blob (416).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsatisfiable;

/// The requested range, if any, checked against `size`.
/// `Ok(None)`: serve everything (no header, or one we do not honour).
pub fn parse_range(h: Option<&HeaderValue>, size: u64) -> Result<Option<ByteRange>, Unsatisfiable> {
    let Some(v) = h.and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: answer with the whole body
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(Unsatisfiable);
        }
        ByteRange {
            start: size.saturating_sub(n),
            end: size - 1,
        }
    } else {
        let Ok(start) = a.parse::<u64>() else {
            return Ok(None);
        };
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            match b.parse::<u64>() {
                Ok(e) if e >= start => e.min(size.saturating_sub(1)),
                _ => return Ok(None),
            }
        };
        if start >= size {
            return Err(Unsatisfiable);
        }
        ByteRange { start, end }
    };
    Ok(Some(range))
}

fn etag_matches(inm: &str, etag: &str) -> bool {
    inm.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.trim_start_matches("W/") == etag
    })
}

/// A response with the bytes of `blob`, honouring the request's
/// conditional and range headers.
pub async fn serve_blob(
    state: &AppState,
    req: &HeaderMap,
    blob: &BlobRef,
    caching: Caching,
    content_type: Option<&str>,
) -> Response {
    let etag = format!("\"{}\"", blob.sha256);
    let last_modified = httpdate::fmt_http_date(std::time::SystemTime::from(blob.modified));
    let mut headers = HeaderMap::with_capacity(12);
    let ct = content_type.unwrap_or(&blob.content_type);
    if let Ok(v) = HeaderValue::from_str(ct) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    headers.insert(header::CACHE_CONTROL, caching.header());
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if ct.starts_with("image/svg") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
        );
    }

    let not_modified = match req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        Some(inm) => etag_matches(inm, &etag),
        None => req
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| httpdate::parse_http_date(s).ok())
            .is_some_and(|since| {
                let modified = std::time::SystemTime::from(blob.modified);
                modified
                    .duration_since(since)
                    .map(|d| d.as_secs() < 1)
                    .unwrap_or(true)
            }),
    };
    if not_modified {
        return respond(StatusCode::NOT_MODIFIED, headers, Body::empty());
    }

    // If-Range: only honour the range when the validator still matches.
    let range_header = match req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(ir) if ir.trim() != etag => None,
        _ => req.get(header::RANGE),
    };
    let range = match parse_range(range_header, blob.size) {
        Ok(r) => r,
        Err(Unsatisfiable) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", blob.size)) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            return respond(StatusCode::RANGE_NOT_SATISFIABLE, headers, Body::empty());
        }
    };
    let unavailable = |e: CoreError| {
        tracing::error!("serving blob {}: {e:?}", blob.sha256);
        crate::Problem::from(CoreError::Internal("blob unavailable".into())).into_response()
    };
    // Small blobs come whole from memory (one buffer, written with the
    // headers); larger ones are streamed from the store.
    let body = match state.engine.small_blob(&blob.sha256, blob.size).await {
        Ok(Some(bytes)) => match range {
            None => Body::from(bytes),
            Some(r) => match (usize::try_from(r.start), usize::try_from(r.end)) {
                (Ok(a), Ok(b)) if a <= b && b < bytes.len() => Body::from(bytes.slice(a..=b)),
                _ => return unavailable(CoreError::Internal("range past the blob".into())),
            },
        },
        Ok(None) => match state.engine.open_blob(&blob.sha256, range).await {
            Ok(s) => Body::from_stream(s),
            Err(e) => return unavailable(e),
        },
        Err(e) => return unavailable(e),
    };
    state
        .metrics
        .add_bytes_out(range.map(|r| r.len()).unwrap_or(blob.size));
    let status = match range {
        Some(r) => {
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end, blob.size))
            {
                headers.insert(header::CONTENT_RANGE, v);
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.len()));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
            StatusCode::OK
        }
    };
    respond(status, headers, body)
}

/// A response with exactly these headers (moved in whole, not merged one
/// by one into an empty map).
fn respond(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str, size: u64) -> Result<Option<(u64, u64)>, Unsatisfiable> {
        let v = HeaderValue::from_str(s).unwrap();
        parse_range(Some(&v), size).map(|o| o.map(|r| (r.start, r.end)))
    }

    #[test]
    fn ranges_parse_and_clamp() {
        assert_eq!(r("bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(r("bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(r("bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(r("bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(r("bytes=100-", 100), Err(Unsatisfiable));
        assert_eq!(r("bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(r("items=0-1", 100), Ok(None));
        assert_eq!(r("bytes=9-1", 100), Ok(None));
    }
}
