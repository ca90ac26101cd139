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
    inm.split(',').any(|t| {
        let t = t.trim();
        t == "*" || is_etag_of(t.trim_start_matches("W/"), sha256)
    })
}

/// The header values that depend only on the blob: Content-Type (when
/// valid), ETag and Last-Modified.
#[derive(Clone)]
struct Validators {
    content_type: Option<HeaderValue>,
    etag: Option<HeaderValue>,
    last_modified: Option<HeaderValue>,
}

/// The validators of a recently served blob, with what they were made of.
struct Kept {
    sha256: String,
    modified: tintype_engine::core::Timestamp,
    content_type: String,
    values: Validators,
}

/// Slots of the per-thread memo of validators.
const KEPT_SLOTS: usize = 64;

thread_local! {
    /// Each worker thread keeps the validators of the blobs it served last
    /// (one per slot, chosen by the SHA-256's first digits): a hot blob's
    /// header values are built once, not formatted on every request.
    static KEPT: std::cell::RefCell<Vec<Option<Kept>>> =
        std::cell::RefCell::new((0..KEPT_SLOTS).map(|_| None).collect());
}

fn build_validators(blob: &BlobRef, content_type: &str) -> Validators {
    let mut etag = String::with_capacity(blob.sha256.len() + 2);
    etag.push('"');
    etag.push_str(&blob.sha256);
    etag.push('"');
    let last_modified = httpdate::fmt_http_date(std::time::SystemTime::from(blob.modified));
    Validators {
        content_type: HeaderValue::from_str(content_type).ok(),
        etag: HeaderValue::from_str(&etag).ok(),
        last_modified: HeaderValue::from_str(&last_modified).ok(),
    }
}

fn validators(blob: &BlobRef, content_type: &str) -> Validators {
    let b = blob.sha256.as_bytes();
    let slot = match (b.first(), b.get(1)) {
        (Some(x), Some(y)) => (usize::from(*x) * 31 + usize::from(*y)) % KEPT_SLOTS,
        _ => 0,
    };
    KEPT.with(|kept| {
        let mut kept = kept.borrow_mut();
        let Some(entry) = kept.get_mut(slot) else {
            return build_validators(blob, content_type);
        };
        if let Some(k) = entry {
            if k.sha256 == blob.sha256
                && k.modified == blob.modified
                && k.content_type == content_type
            {
                return k.values.clone();
            }
        }
        let values = build_validators(blob, content_type);
        *entry = Some(Kept {
            sha256: blob.sha256.clone(),
            modified: blob.modified,
            content_type: content_type.to_string(),
            values: values.clone(),
        });
        values
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
    let v = validators(blob, ct);
    let mut headers = HeaderMap::with_capacity(12);
    if let Some(v) = v.content_type {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Some(v) = v.etag {
        headers.insert(header::ETAG, v);
    }
    if let Some(v) = v.last_modified {
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
        return respond(StatusCode::NOT_MODIFIED, headers, Body::empty());
    }

    // If-Range: only honour the range when the validator still matches.
    let range_header = match req.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        Some(ir) if !is_etag_of(ir.trim(), &blob.sha256) => None,
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

    #[test]
    fn kept_validators_are_those_of_the_blob_asked_for() {
        // Same first digits: the same slot of the memo, one after another.
        let a = blob(&format!("aa{}", "1".repeat(62)), 0, "image/png");
        let b = blob(&format!("aa{}", "2".repeat(62)), 86_400, "image/jpeg");
        for _ in 0..2 {
            for (x, etag, date, ct) in [
                (&a, &a.sha256, "Thu, 01 Jan 1970 00:00:00 GMT", "image/png"),
                (&b, &b.sha256, "Fri, 02 Jan 1970 00:00:00 GMT", "image/jpeg"),
            ] {
                let v = validators(x, &x.content_type);
                assert_eq!(v.etag.unwrap(), format!("\"{etag}\"").as_str());
                assert_eq!(v.last_modified.unwrap(), date);
                assert_eq!(v.content_type.unwrap(), ct);
            }
        }
        // The same blob served with another type, or modified since.
        assert_eq!(validators(&a, "image/webp").content_type.unwrap(), "image/webp");
        let later = blob(&a.sha256, 60, "image/png");
        assert_eq!(
            validators(&later, "image/png").last_modified.unwrap(),
            "Thu, 01 Jan 1970 00:01:00 GMT"
        );
    }
}
