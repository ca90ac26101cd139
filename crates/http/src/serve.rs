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

/// Whether `tag` (one entity tag of a request header, trimmed) is the
/// strong ETag of the blob with this SHA-256, i.e. `"<sha256>"`.
fn is_etag_of(tag: &str, sha256: &str) -> bool {
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .is_some_and(|t| t == sha256)
}

fn etag_matches(inm: &str, sha256: &str) -> bool {
    // The common case first: the one tag a client cached.
    if is_etag_of(inm.trim(), sha256) {
        return true;
    }
    inm.split(',').any(|t| {
        let t = t.trim();
        t == "*" || is_etag_of(t.trim_start_matches("W/"), sha256)
    })
}

/// The response headers that depend only on the blob and how it is
/// served: `base` (Content-Type when valid, ETag, Last-Modified,
/// Cache-Control, Accept-Ranges, nosniff, and for SVG a CSP), as a 304
/// carries them, and `whole`, the same with the Content-Length of the
/// whole blob.
struct Heads {
    base: HeaderMap,
    whole: HeaderMap,
}

/// The headers of a recently served blob, with what they were made of.
struct Kept {
    sha256: String,
    size: u64,
    modified: tintype_engine::core::Timestamp,
    content_type: String,
    caching: Caching,
    heads: Heads,
}

/// Slots of the per-thread memo of response headers.
const KEPT_SLOTS: usize = 64;

thread_local! {
    /// Each worker thread keeps the headers of the blobs it served last
    /// (one per slot, chosen by the SHA-256's first digits): a hot blob's
    /// headers are built once, not formatted and inserted one by one on
    /// every request.
    static KEPT: std::cell::RefCell<Vec<Option<Kept>>> =
        std::cell::RefCell::new((0..KEPT_SLOTS).map(|_| None).collect());
}

fn build_heads(blob: &BlobRef, content_type: &str, caching: Caching) -> Heads {
    let mut etag = String::with_capacity(blob.sha256.len() + 2);
    etag.push('"');
    etag.push_str(&blob.sha256);
    etag.push('"');
    let last_modified = httpdate::fmt_http_date(std::time::SystemTime::from(blob.modified));
    let mut base = HeaderMap::with_capacity(12);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        base.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        base.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        base.insert(header::LAST_MODIFIED, v);
    }
    base.insert(header::CACHE_CONTROL, caching.header());
    base.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    base.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if content_type.starts_with("image/svg") {
        base.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
        );
    }
    let mut whole = base.clone();
    whole.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.size));
    // A place for the request id, which every response gets (see
    // `respond`): set in place, the map does not grow for it.
    base.insert(crate::request_id::HEADER, HeaderValue::from_static(""));
    whole.insert(crate::request_id::HEADER, HeaderValue::from_static(""));
    Heads { base, whole }
}

/// `pick` applied to the blob's headers (kept, or built and kept now).
fn with_heads<T>(
    blob: &BlobRef,
    content_type: &str,
    caching: Caching,
    pick: impl Fn(&Heads) -> T,
) -> T {
    let b = blob.sha256.as_bytes();
    let slot = match (b.first(), b.get(1)) {
        (Some(x), Some(y)) => (usize::from(*x) * 31 + usize::from(*y)) % KEPT_SLOTS,
        _ => 0,
    };
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let Some(entry) = kept.get_mut(slot) else {
            return pick(&build_heads(blob, content_type, caching));
        };
        if let Some(k) = entry {
            if k.sha256 == blob.sha256
                && k.size == blob.size
                && k.modified == blob.modified
                && k.content_type == content_type
                && k.caching == caching
            {
                return pick(&k.heads);
            }
        }
        let heads = build_heads(blob, content_type, caching);
        let picked = pick(&heads);
        *entry = Some(Kept {
            sha256: blob.sha256.clone(),
            size: blob.size,
            modified: blob.modified,
            content_type: content_type.to_string(),
            caching,
            heads,
        });
        picked
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
    let ct = content_type.unwrap_or(&blob.content_type);
    let base = || with_heads(blob, ct, caching, |h| h.base.clone());

    let not_modified = match req.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        Some(inm) => etag_matches(inm, &blob.sha256),
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
        return respond(StatusCode::NOT_MODIFIED, base(), Body::empty());
    }

    // If-Range: only honour the range when the validator still matches.
    let range_header = match req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(ir) if !is_etag_of(ir.trim(), &blob.sha256) => None,
        _ => req.get(header::RANGE),
    };
    let range = match parse_range(range_header, blob.size) {
        Ok(r) => r,
        Err(Unsatisfiable) => {
            let mut headers = base();
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
    match range {
        Some(r) => {
            let mut headers = base();
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end, blob.size))
            {
                headers.insert(header::CONTENT_RANGE, v);
            }
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(r.len()));
            respond(StatusCode::PARTIAL_CONTENT, headers, body)
        }
        None => respond(
            StatusCode::OK,
            with_heads(blob, ct, caching, |h| h.whole.clone()),
            body,
        ),
    }
}

/// A response with exactly these headers (moved in whole, not merged one
/// by one into an empty map). The place kept for the request id is left
/// for the app to fill, or removed when no request is being handled.
fn respond(status: StatusCode, mut headers: HeaderMap, body: Body) -> Response {
    if !crate::request_id::in_scope() {
        headers.remove(crate::request_id::HEADER);
    }
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

    #[test]
    fn entity_tags_match_the_sha256_only() {
        let sha = "ab".repeat(32);
        assert!(etag_matches(&format!("\"{sha}\""), &sha));
        assert!(etag_matches(&format!("\"x\", W/\"{sha}\""), &sha));
        assert!(etag_matches("*", &sha));
        assert!(!etag_matches(&sha, &sha));
        assert!(!etag_matches(&format!("\"{sha}"), &sha));
        assert!(!etag_matches("\"ab\"", &sha));
        assert!(is_etag_of(&format!("\"{sha}\""), &sha));
        assert!(!is_etag_of(&format!("W/\"{sha}\""), &sha));
    }

    fn blob(sha: &str, secs: i64, ct: &str) -> BlobRef {
        BlobRef {
            sha256: sha.to_string(),
            size: 1,
            content_type: ct.to_string(),
            modified: chrono::DateTime::from_timestamp(secs, 0).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_response_keeps_a_place_for_the_request_id_only_within_a_request() {
        let a = blob(&"cd".repeat(32), 0, "image/png");
        let whole = || with_heads(&a, "image/png", Caching::Private, |h| h.whole.clone());
        let outside = respond(StatusCode::OK, whole(), Body::empty());
        assert!(!m_has_id(outside.headers()));
        let id = std::sync::Arc::from("r-7");
        let mut inside = crate::request_id::scope(id, async {
            respond(StatusCode::OK, whole(), Body::empty())
        })
        .await;
        assert!(m_has_id(inside.headers()));
        // As the app then sets it: one value, the id.
        let h = inside.headers_mut();
        h.insert(crate::request_id::HEADER, HeaderValue::from_static("r-7"));
        assert_eq!(h.get_all(crate::request_id::HEADER).iter().count(), 1);
        assert_eq!(h.get(crate::request_id::HEADER).unwrap(), "r-7");
    }

    fn m_has_id(h: &HeaderMap) -> bool {
        h.contains_key(crate::request_id::HEADER)
    }

    #[test]
    fn kept_headers_are_those_of_the_blob_asked_for() {
        // Same first digits: the same slot of the memo, one after another.
        let a = blob(&format!("aa{}", "1".repeat(62)), 0, "image/png");
        let b = blob(&format!("aa{}", "2".repeat(62)), 86_400, "image/svg+xml");
        let get = |h: &HeaderMap, n: header::HeaderName| {
            h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string)
        };
        for _ in 0..2 {
            for (x, date, caching, cc, csp) in [
                (
                    &a,
                    "Thu, 01 Jan 1970 00:00:00 GMT",
                    Caching::Private,
                    "private, max-age=86400",
                    false,
                ),
                (
                    &b,
                    "Fri, 02 Jan 1970 00:00:00 GMT",
                    Caching::Public,
                    "public, max-age=86400",
                    true,
                ),
            ] {
                let (base, whole) = with_heads(x, &x.content_type, caching, |h| {
                    (h.base.clone(), h.whole.clone())
                });
                for m in [&base, &whole] {
                    assert_eq!(get(m, header::ETAG), Some(format!("\"{}\"", x.sha256)));
                    assert_eq!(get(m, header::LAST_MODIFIED).as_deref(), Some(date));
                    assert_eq!(get(m, header::CONTENT_TYPE), Some(x.content_type.clone()));
                    assert_eq!(get(m, header::CACHE_CONTROL).as_deref(), Some(cc));
                    assert_eq!(m.contains_key(header::CONTENT_SECURITY_POLICY), csp);
                }
                assert_eq!(get(&whole, header::CONTENT_LENGTH).as_deref(), Some("1"));
                assert!(m_has_id(&base) && m_has_id(&whole));
                assert!(!base.contains_key(header::CONTENT_LENGTH));
            }
        }
        // The same blob served with another type or caching, or modified
        // since.
        let whole = |b: &BlobRef, ct: &str, c: Caching| with_heads(b, ct, c, |h| h.whole.clone());
        let h = whole(&a, "image/webp", Caching::Private);
        assert_eq!(get(&h, header::CONTENT_TYPE).as_deref(), Some("image/webp"));
        let h = whole(&a, "image/png", Caching::Public);
        assert_eq!(
            get(&h, header::CACHE_CONTROL).as_deref(),
            Some("public, max-age=86400")
        );
        let later = blob(&a.sha256, 60, "image/png");
        let h = whole(&later, "image/png", Caching::Private);
        assert_eq!(
            get(&h, header::LAST_MODIFIED).as_deref(),
            Some("Thu, 01 Jan 1970 00:01:00 GMT")
        );
    }
}
