//! `GET /api/v1/images/{mediaId}`: anonymous serving of imported images;
//! `?format=auto` answers WebP to clients that accept it.

use crate::error::ApiError;
use crate::EXT_SCOPE;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;
use tintype_engine::core::{CoreError, Image};
use tintype_engine::BlobRef;
use tintype_http::extract::Params;
use tintype_http::serve::{serve_blob, Caching};
use tintype_http::AppState;

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

fn vary(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
}

/// `GET /api/v1/images/{mediaId}[?format=auto]`
pub(crate) async fn serve(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Ok(Path(id)) = path else {
        return Err(not_found());
    };
    let auto = match query.get("format") {
        None | Some("") | Some("original") => false,
        Some("auto") => true,
        Some(_) => return Err(ApiError::invalid("format", "must be auto")),
    };
    let image = imported_image(&state, &id).await?;
    let headers = &headers;
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

    // Converted once through the engine (single flight, decode budget)
    // and kept as a variant, so its bytes, ETag and ranges are served like
    // any other.
    let webp = state
        .engine
        .conversion(&image, tintype_engine::media::OutputFormat::Webp)
        .await?;
    let mut resp = serve_blob(
        &state,
        headers,
        &BlobRef::of_variant(&webp),
        Caching::Public,
        None,
    )
    .await;
    vary(&mut resp);
    Ok(resp)
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
}
