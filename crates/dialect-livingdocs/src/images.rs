//! `GET /api/v1/images/{mediaId}`: anonymous serving of imported images;
//! `?format=auto` negotiates the encoding from `Accept` as the native
//! variant URL does (AVIF, then WebP, then the original).

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

/// An `Accept` header without its `image/avif` ranges.
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
    // The negotiation of the native variant URL: AVIF, then WebP, else the
    // original's own format. Animated GIFs and SVGs keep their own format.
    let convertible = matches!(image.content.format.as_str(), "png" | "jpeg");
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let formats = if auto && convertible {
        tintype_engine::accepted_encodings(accept)
    } else {
        Vec::new()
    };
    let mut blob = BlobRef::of_image(&image);
    for f in formats {
        // Converted once through the engine (single flight, decode budget)
        // and kept as a variant per encoding, so its bytes, ETag and ranges
        // are served like any other.
        match state.engine.conversion(&image, f).await {
            Ok(v) => {
                blob = BlobRef::of_variant(&v);
                break;
            }
            // A picture too large to encode within the decode budget (AVIF
            // needs the most): the next encoding the client accepts, at
            // last the original, rather than no picture.
            Err(CoreError::OverBudget { needed, budget }) => {
                tracing::debug!(
                    "{} of {} needs {needed} bytes, over the budget of {budget}",
                    f.name(),
                    image.id
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
    let mut resp = serve_blob(&state, headers, &blob, Caching::Public, None).await;
    if auto {
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use tintype_engine::media::OutputFormat;

    #[test]
    fn avif_ranges_are_taken_out() {
        // After AVIF (in any case, at any q above 0) comes WebP, then the
        // original; a client naming AVIF alone falls back to the original.
        assert_eq!(
            tintype_engine::accepted_encodings(Some(
                "image/avif,image/webp;q=0.9, IMAGE/AVIF;q=0.5,*/*"
            )),
            vec![OutputFormat::Avif, OutputFormat::Webp]
        );
        assert_eq!(
            tintype_engine::accepted_encodings(Some("image/avif")),
            vec![OutputFormat::Avif]
        );
    }
}
