//! The native API under /v1, health checks and metrics.

use crate::auth::{Caller, CallerRules, TokenSource};
use crate::limits::{
    read_json, read_text_field, ReadError, MAX_JSON_BYTES, MAX_METADATA_BYTES, MAX_NAME_BYTES,
};
use crate::serve::{serve_blob, Caching};
use crate::{AppState, Problem};
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tintype_engine::core::{CoreError, Image, Scope, Variant};
use tintype_engine::{BlobRef, IngestOptions};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/user", get(me))
        .route("/v1/images", get(list).post(upload))
        .route("/v1/images/{id}", get(show).patch(patch).delete(remove))
        .route("/v1/images/{id}/original", get(original))
        .route("/v1/images/{id}/variants/{preset}", get(variant))
}

type ApiResult<T> = Result<T, Problem>;

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(st): State<AppState>) -> Response {
    match st.engine.ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!("not ready: {e:?}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let body = crate::metrics::render(&st).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The native API's callers: a Bearer token, `X-ApiToken` or
/// `?access_token=`; refusals are problem+json 401 and 403.
pub struct Native;

impl CallerRules for Native {
    const SOURCES: &'static [TokenSource] = &[
        TokenSource::Bearer,
        TokenSource::XApiToken,
        TokenSource::QueryAccessToken,
    ];
    type Rejection = Problem;

    fn missing() -> Problem {
        CoreError::Unauthorized.into()
    }

    fn lacks(scopes: &[Scope]) -> Problem {
        let names: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        CoreError::Forbidden(names.join(" or ")).into()
    }
}

fn variant_json(st: &AppState, image: &Image, v: &Variant) -> Value {
    json!({
        "preset": v.preset,
        "width": v.width,
        "height": v.height,
        "content_type": v.content_type,
        "size": v.size,
        "url": st.url(&format!("/v1/images/{}/variants/{}", image.id, v.preset)),
    })
}

async fn image_json(st: &AppState, image: &Image) -> ApiResult<Value> {
    let variants = st.engine.variants(&image.id).await?;
    let thumbhash = st.engine.thumbhash(image).await?;
    Ok(image_json_with(st, image, &variants, thumbhash.as_deref()))
}

/// An image's JSON with its variants and ThumbHash (looked up by the
/// caller, the variants for a whole page at once).
fn image_json_with(
    st: &AppState,
    image: &Image,
    variants: &[Variant],
    thumbhash: Option<&str>,
) -> Value {
    let mut preset_urls = Map::new();
    if image.content.kind == tintype_engine::core::ImageKind::Picture {
        for p in st.engine.config().presets.all() {
            preset_urls.insert(
                p.name.clone(),
                json!(st.url(&format!("/v1/images/{}/variants/{}", image.id, p.name))),
            );
        }
    }
    json!({
        "id": image.id,
        "name": image.name,
        "kind": image.content.kind.as_str(),
        "format": image.content.format,
        "thumbhash": thumbhash,
        "content_type": image.content.content_type,
        "size": image.content.size,
        "sha256": image.content.sha256,
        "width": image.content.width,
        "height": image.content.height,
        "orientation": image.content.orientation,
        "latitude": image.content.latitude,
        "longitude": image.content.longitude,
        "exif": image.content.exif,
        "created_at": image.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "updated_at": image.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "processed_at": image.processed_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        "metadata": image.metadata,
        "urls": {
            "self": st.url(&format!("/v1/images/{}", image.id)),
            "original": st.url(&format!("/v1/images/{}/original", image.id)),
            "variants": preset_urls,
        },
        "variants": variants.iter().map(|v| variant_json(st, image, v)).collect::<Vec<_>>(),
    })
}

async fn me(State(st): State<AppState>, caller: Caller<Native>) -> ApiResult<Json<Value>> {
    let p = caller.require(Scope::ImageRead)?;
    let u = p.user;
    Ok(Json(json!({
        "id": u.id,
        "name": u.name,
        "email": u.email,
        "created_at": u.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "images_per_day": u.images_per_day,
        "profile_image_id": u.profile_image_id,
        "profile_image_url": u.profile_image_id.as_ref().map(|id| st.url(&format!("/v1/images/{id}/original"))),
        "scopes": p.scopes,
    })))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

async fn list(
    State(st): State<AppState>,
    caller: Caller<Native>,
    req: Request,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageRead)?;
    let q: Query<ListQuery> = Query::try_from_uri(req.uri())
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "limit must be within 1..=1000",
        ));
    }
    let page = st
        .engine
        .list_images(p.user.id, q.cursor.as_deref(), limit)
        .await?;
    // One variants query for the whole page, not one per image.
    let ids: Vec<String> = page.images.iter().map(|i| i.id.clone()).collect();
    let variants = st.engine.variants_of(&ids).await?;
    // ThumbHashes one by one (the engine's record cache keeps them).
    let mut thumbhashes = Vec::with_capacity(page.images.len());
    for image in &page.images {
        thumbhashes.push(st.engine.thumbhash(image).await?);
    }
    let out: Vec<Value> = page
        .images
        .iter()
        .zip(variants.iter())
        .zip(thumbhashes.iter())
        .map(|((i, (_, v)), t)| image_json_with(&st, i, v, t.as_deref()))
        .collect();
    let mut resp = Json(Value::Array(out)).into_response();
    if let Some(next) = page.next {
        let next = st.url(&format!("/v1/images?limit={limit}&cursor={next}"));
        crate::wire::set_links(&mut resp, &[(&next, "next")]);
    }
    Ok(resp)
}

fn parse_metadata(s: &str) -> ApiResult<Map<String, Value>> {
    match serde_json::from_str::<Value>(s) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "metadata must be a JSON object",
        )),
    }
}

fn field_problem(what: &str, e: ReadError) -> Problem {
    let status = if e.is_too_large() {
        StatusCode::PAYLOAD_TOO_LARGE
    } else {
        StatusCode::BAD_REQUEST
    };
    let code = if e.is_too_large() {
        "too_large"
    } else {
        "invalid"
    };
    Problem::new(status, code, e.message(what))
}

/// Reads the parts of a multipart upload, staging the `file` part as it
/// streams, and commits it once every part is read and valid: a refused
/// request stores nothing.
async fn upload_parts(
    st: &AppState,
    owner: tintype_engine::core::UserId,
    mut mp: Multipart,
) -> ApiResult<Image> {
    let mut opts = IngestOptions::new(owner);
    let mut staged = None;
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    e.body_text(),
                ))
            }
        };
        match field.name().unwrap_or("") {
            "file" if staged.is_none() => {
                staged = Some(st.engine.stage(field, &opts).await?);
            }
            "name" => {
                let v = read_text_field(&mut field, MAX_NAME_BYTES)
                    .await
                    .map_err(|e| field_problem("the name", e))?;
                opts.name = Some(v);
            }
            "metadata" => {
                let v = read_text_field(&mut field, MAX_METADATA_BYTES)
                    .await
                    .map_err(|e| field_problem("the metadata", e))?;
                opts.metadata = parse_metadata(&v)?;
            }
            _ => {
                // Unknown parts are drained and ignored.
                while let Ok(Some(_)) = field.chunk().await {}
            }
        }
    }
    let Some(staged) = staged else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the multipart body has no 'file' part",
        ));
    };
    Ok(st.engine.commit(staged, opts).await?)
}

#[derive(Deserialize)]
struct RawQuery {
    name: Option<String>,
}

async fn upload(
    State(st): State<AppState>,
    caller: Caller<Native>,
    req: Request,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageWrite)?;
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("multipart/form-data"));
    let image = if is_multipart {
        let mp = Multipart::from_request(req, &st)
            .await
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
        upload_parts(&st, p.user.id, mp).await?
    } else {
        let q: Query<RawQuery> = Query::try_from_uri(req.uri())
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
        if q.name.as_ref().is_some_and(|n| n.len() > MAX_NAME_BYTES) {
            return Err(field_problem(
                "the name",
                ReadError::TooLarge {
                    limit: MAX_NAME_BYTES,
                },
            ));
        }
        let mut opts = IngestOptions::new(p.user.id);
        opts.name = q.0.name;
        let body = req.into_body().into_data_stream();
        st.engine.ingest(opts, body).await?
    };
    let body = image_json(&st, &image).await?;
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&st.url(&format!("/v1/images/{}", image.id))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn show(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller<Native>,
) -> ApiResult<Json<Value>> {
    let p = caller.require(Scope::ImageRead)?;
    let image = st.engine.owned_image(&p, &id).await?;
    Ok(Json(image_json(&st, &image).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default, with = "double_option")]
    name: Option<Option<String>>,
    metadata: Option<Map<String, Value>>,
}

mod double_option {
    use serde::{Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Ok(Some(Option::<String>::deserialize(d)?))
    }
}

async fn patch(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller<Native>,
    req: Request,
) -> ApiResult<Json<Value>> {
    let p = caller.require(Scope::ImageWrite)?;
    let image = st.engine.owned_image(&p, &id).await?;
    let (parts, body) = req.into_parts();
    let body: PatchBody = read_json(&parts.headers, body, MAX_JSON_BYTES)
        .await
        .map_err(|e| field_problem("the JSON body", e))?;
    if body
        .name
        .as_ref()
        .and_then(|n| n.as_ref())
        .is_some_and(|n| n.len() > MAX_NAME_BYTES)
    {
        return Err(field_problem(
            "the name",
            ReadError::TooLarge {
                limit: MAX_NAME_BYTES,
            },
        ));
    }
    if let Some(m) = &body.metadata {
        let len = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
        if len > MAX_METADATA_BYTES {
            return Err(field_problem(
                "the metadata",
                ReadError::TooLarge {
                    limit: MAX_METADATA_BYTES,
                },
            ));
        }
    }
    let updated = st
        .engine
        .update_image(
            &image.id,
            body.name.as_ref().map(|n| n.as_deref()),
            body.metadata.as_ref(),
        )
        .await?;
    Ok(Json(image_json(&st, &updated).await?))
}

async fn remove(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller<Native>,
) -> ApiResult<StatusCode> {
    let p = caller.require(Scope::ImageDelete)?;
    let image = st.engine.owned_image(&p, &id).await?;
    st.engine.delete_image(&image.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn original(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller<Native>,
    req: Request,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageRead)?;
    let image = st.engine.owned_image(&p, &id).await?;
    Ok(serve_blob(
        &st,
        req.headers(),
        &BlobRef::of_image(&image),
        Caching::Private,
        None,
    )
    .await)
}

async fn variant(
    State(st): State<AppState>,
    Path((id, preset)): Path<(String, String)>,
    caller: Caller<Native>,
    req: Request,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageRead)?;
    let image = st.engine.owned_image(&p, &id).await?;
    // `?format=jpeg|png|webp|avif` asks for an encoding; `auto` (or no
    // format, for a preset whose format is auto) negotiates from Accept.
    let asked = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("format="))
        .map(str::to_ascii_lowercase);
    let Some(preset_def) = st.engine.config().presets.get(&preset) else {
        return Err(CoreError::NotFound.into());
    };
    let negotiate = match asked.as_deref() {
        None => preset_def.negotiates(),
        Some("auto") => true,
        Some(_) => false,
    };
    let format = if negotiate {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        tintype_engine::negotiate(accept)
    } else {
        match asked.as_deref() {
            Some(f) => Some(
                f.parse::<tintype_engine::media::OutputFormat>()
                    .map_err(|e| CoreError::Invalid(e.to_string()))?,
            ),
            None => None,
        }
    };
    let v = st.engine.variant_as(&image, &preset, format).await?;
    let blob = BlobRef::of_variant(&v);
    let mut resp = serve_blob(&st, req.headers(), &blob, Caching::Private, None).await;
    if negotiate {
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    Ok(resp)
}
