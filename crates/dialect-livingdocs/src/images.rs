//! `GET /api/v1/images/{mediaId}`: anonymous serving of imported images;
//! `?format=auto` answers WebP to clients that accept it.

use crate::error::ApiError;
use crate::{settings, EXT_SCOPE};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};
use tintype_engine::core::{CoreError, Image};
use tintype_engine::BlobRef;
use tintype_http::serve::{serve_blob, Caching};
use tintype_http::AppState;

/// Converted WebP bytes by source SHA-256, oldest evicted first.
#[derive(Default)]
struct WebpCache {
    map: HashMap<String, Bytes>,
    order: VecDeque<String>,
    bytes: usize,
}

impl WebpCache {
    fn get(&self, sha: &str) -> Option<Bytes> {
        self.map.get(sha).cloned()
    }

    fn put(&mut self, sha: &str, b: Bytes, cap: usize) {
        if b.len() > cap || self.map.contains_key(sha) {
            return;
        }
        while self.bytes + b.len() > cap {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(v) = self.map.remove(&old) {
                self.bytes -= v.len();
            }
        }
        self.bytes += b.len();
        self.order.push_back(sha.to_string());
        self.map.insert(sha.to_string(), b);
    }
}

fn cache() -> &'static Mutex<WebpCache> {
    static CACHE: OnceLock<Mutex<WebpCache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(WebpCache::default()))
}

/// Whether the `Accept` header names `image/webp` with a non-zero quality.
pub(crate) fn accepts_webp(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim();
            if !media.eq_ignore_ascii_case("image/webp") {
                return false;
            }
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .filter_map(|q| q.trim().parse::<f32>().ok())
                .next()
                .unwrap_or(1.0);
            q > 0.0
        })
}

fn not_found() -> ApiError {
    ApiError::NotFound("there is no image with this id".into())
}

async fn imported_image(state: &AppState, id: &str) -> Result<Image, ApiError> {
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let image = match state.engine.image(id).await {
        Ok(i) => i,
        Err(CoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    // Only images that came in through the import are served here.
    let imported = state
        .engine
        .records_for_image(&image.id)
        .await?
        .iter()
        .any(|r| r.scope == EXT_SCOPE);
    if !imported {
        return Err(not_found());
    }
    Ok(image)
}

async fn webp_bytes(state: &AppState, image: &Image) -> Result<Bytes, CoreError> {
    let sha = &image.content.sha256;
    if let Some(b) = cache().lock().ok().and_then(|c| c.get(sha)) {
        return Ok(b);
    }
    let engine = &state.engine;
    let local = engine
        .blobs()
        .local_file(sha, &engine.config().tmp_dir)
        .await?;
    let limits = engine.config().limits.clone();
    let rendered = tokio::task::spawn_blocking(move || {
        let probe = tintype_engine::media::probe_file(local.path(), &limits)?;
        let out = tintype_engine::media::to_webp(local.path(), &probe, &limits);
        drop(local);
        out
    })
    .await
    .map_err(CoreError::internal)?
    .map_err(|e| CoreError::Internal(format!("converting {} to WebP: {e}", image.id)))?;
    let b = Bytes::from(rendered.bytes);
    if let Ok(mut c) = cache().lock() {
        c.put(sha, b.clone(), settings().webp_cache_bytes);
    }
    Ok(b)
}

fn vary(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
}

/// `GET /api/v1/images/{mediaId}[?format=auto]`
pub(crate) async fn serve(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    req: Request,
) -> Result<Response, ApiError> {
    let Ok(Path(id)) = path else {
        return Err(not_found());
    };
    let format = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "format")
            .map(|(_, v)| v.into_owned())
    });
    let auto = match format.as_deref() {
        None | Some("") | Some("original") => false,
        Some("auto") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be auto")),
    };
    let image = imported_image(&state, &id).await?;
    let headers = req.headers();
    // Animated GIFs and SVGs keep their own format.
    let convertible = matches!(image.content.format.as_str(), "png" | "jpeg");
    if !(auto && convertible && accepts_webp(headers)) {
        let mut resp = serve_blob(
            &state,
            headers,
            &BlobRef::of_image(&image),
            Caching::Public,
            None,
        )
        .await;
        if auto {
            vary(&mut resp);
        }
        return Ok(resp);
    }

    let etag = format!("\"{}-webp\"", image.content.sha256);
    let mut out = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, v);
    }
    out.insert(header::VARY, HeaderValue::from_static("Accept"));
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let last_modified = httpdate_of(&image);
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        out.insert(header::LAST_MODIFIED, v);
    }
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|inm| {
            inm.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.trim_start_matches("W/") == etag
            })
        });
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }
    let bytes = webp_bytes(&state, &image).await?;
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/webp"));
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok((StatusCode::OK, out, Body::from(bytes)).into_response())
}

fn httpdate_of(image: &Image) -> String {
    image
        .updated_at
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        m
    }

    #[test]
    fn webp_is_negotiated_from_accept() {
        assert!(accepts_webp(&h("image/avif,image/webp,*/*")));
        assert!(accepts_webp(&h("image/webp;q=0.8")));
        assert!(!accepts_webp(&h("image/webp;q=0")));
        assert!(!accepts_webp(&h("image/png,image/*;q=0.8")));
        assert!(!accepts_webp(&HeaderMap::new()));
    }

    #[test]
    fn the_cache_stays_under_its_cap() {
        let mut c = WebpCache::default();
        c.put("a", Bytes::from(vec![0u8; 6]), 10);
        c.put("b", Bytes::from(vec![0u8; 6]), 10);
        assert!(c.get("a").is_none());
        assert_eq!(c.get("b").map(|b| b.len()), Some(6));
        c.put("c", Bytes::from(vec![0u8; 11]), 10);
        assert!(c.get("c").is_none());
        assert_eq!(c.bytes, 6);
    }
}
