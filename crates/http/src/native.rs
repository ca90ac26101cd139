//! The native API under /v1, health checks and metrics, and the OpenAPI
//! document that describes them (`GET /v1/openapi.json`), generated from
//! the handlers' own request and response types.

use crate::auth::{Caller, CallerRules, TokenSource};
use crate::extract::{media_type, multipart};
use crate::limits::{
    read_json, read_text_field, ReadError, MAX_JSON_BYTES, MAX_METADATA_BYTES, MAX_NAME_BYTES,
};
use crate::problem::ProblemBody;
use crate::serve::{serve_blob, Caching};
use crate::{AppState, Problem};
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tintype_engine::core::{CoreError, Image, Scope, Variant};
use tintype_engine::{BlobRef, IngestOptions};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, OpenApi, ToSchema};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/openapi.json", get(openapi_json))
        .route("/v1/user", get(me))
        .route("/v1/images", get(list).post(upload))
        .route("/v1/images/{id}", get(show).patch(patch).delete(remove))
        .route("/v1/images/{id}/original", get(original))
        .route("/v1/images/{id}/variants/{preset}", get(variant))
}

/// The OpenAPI 3.1 document of everything [`router`] serves.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "tintype native API",
        description = "The native API of tintype, a self-hosted image service. Errors are \
            `application/problem+json` (RFC 9457) with a stable `type` \
            (`urn:tintype:problem:CODE`) and the request's id. Any response may also be a \
            500 or, under load, a 503 with `Retry-After`.",
        license(name = "AGPL-3.0-or-later", identifier = "AGPL-3.0-or-later"),
    ),
    paths(healthz, readyz, metrics, openapi_json, me, list, upload, show, patch, remove, original, variant),
    components(schemas(
        ProblemBody, ImageBody, ImageUrls, VariantBody, UserBody, Health, PatchBody, UploadForm,
        FormatName,
    )),
    modifiers(&Security),
    tags(
        (name = "images", description = "Pictures and disk images of the caller's"),
        (name = "user", description = "Who is calling"),
        (name = "service", description = "Health, readiness, metrics and this document"),
    )
)]
pub struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("`Authorization: Bearer TOKEN`"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "api_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-ApiToken"))),
        );
        c.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("access_token"))),
        );
    }
}

/// The document with this server's public URL as its server.
pub fn openapi(public_url: &str) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.servers = Some(vec![utoipa::openapi::Server::new(public_url)]);
    doc
}

type ApiResult<T> = Result<T, Problem>;

/// A health or readiness answer.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Health {
    /// `ok` (healthz), `ready` or `unavailable` (readyz).
    #[schema(value_type = String)]
    status: &'static str,
}

#[utoipa::path(
    get, path = "/healthz", tag = "service", operation_id = "healthz",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "Alive", body = Health)),
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[utoipa::path(
    get, path = "/readyz", tag = "service", operation_id = "readyz",
    summary = "Readiness: the catalog and blob store answer",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready", body = Health,
            headers(("Retry-After" = i64))),
    ),
)]
async fn readyz(State(st): State<AppState>) -> Response {
    match st.engine.ready().await {
        Ok(()) => Json(Health { status: "ready" }).into_response(),
        Err(e) => {
            tracing::warn!("not ready: {e:?}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Health {
                    status: "unavailable",
                }),
            )
                .into_response()
        }
    }
}

#[utoipa::path(
    get, path = "/metrics", tag = "service", operation_id = "metrics",
    summary = "Prometheus metrics, in the text format",
    responses((status = 200, description = "The metrics", body = String,
        content_type = "text/plain; version=0.0.4")),
)]
async fn metrics(State(st): State<AppState>) -> Response {
    let body = crate::metrics::render(&st).await;
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

#[utoipa::path(
    get, path = "/v1/openapi.json", tag = "service", operation_id = "openapi",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
async fn openapi_json(State(st): State<AppState>) -> Response {
    match openapi(&st.public_url).to_json() {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => Problem::from(CoreError::internal(e)).into_response(),
    }
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

/// One rendered variant of a picture.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VariantBody {
    content_type: String,
    height: i64,
    preset: String,
    size: i64,
    /// Where its bytes are served.
    url: String,
    width: i64,
}

impl VariantBody {
    fn of(st: &AppState, image: &Image, v: &Variant) -> Self {
        VariantBody {
            content_type: v.content_type.clone(),
            height: v.height,
            preset: v.preset.clone(),
            size: v.size,
            url: st.url(&format!("/v1/images/{}/variants/{}", image.id, v.preset)),
            width: v.width,
        }
    }
}

/// An image's links: itself, its original bytes, and each preset's
/// variant (pictures only; empty for disk images).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImageUrls {
    original: String,
    #[serde(rename = "self")]
    this: String,
    /// Preset name to variant URL.
    variants: BTreeMap<String, String>,
}

/// What an image is: a picture (with variants) or a disk image.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum ImageKindName {
    Picture,
    Disk,
}

/// A stored image. Fields are in alphabetical order, as served.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImageBody {
    content_type: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// EXIF tags read from the upload, by name.
    #[schema(required = true, value_type = Option<Object>)]
    exif: Option<Map<String, Value>>,
    /// jpeg, png, gif, webp, heic, avif, svg or qcow2.
    format: String,
    #[schema(required = true)]
    height: Option<i64>,
    id: String,
    #[schema(value_type = ImageKindName)]
    kind: &'static str,
    #[schema(required = true)]
    latitude: Option<f64>,
    #[schema(required = true)]
    longitude: Option<f64>,
    /// The caller's own JSON object.
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
    #[schema(required = true)]
    name: Option<String>,
    /// The EXIF orientation (1..=8), if any.
    #[schema(required = true)]
    orientation: Option<i64>,
    /// When every preset variant had been rendered.
    #[schema(required = true, format = DateTime)]
    processed_at: Option<String>,
    /// Hex SHA-256 of the original bytes.
    sha256: String,
    /// Bytes of the original.
    size: i64,
    /// A ThumbHash placeholder (base64), for pictures.
    #[schema(required = true)]
    thumbhash: Option<String>,
    #[schema(format = DateTime)]
    updated_at: String,
    urls: ImageUrls,
    /// The variants rendered so far.
    variants: Vec<VariantBody>,
    #[schema(required = true)]
    width: Option<i64>,
}

fn millis(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn image_json(st: &AppState, image: &Image) -> ApiResult<ImageBody> {
    let variants = st.engine.variants(&image.id).await?;
    let thumbhash = st.engine.thumbhash(image).await?;
    Ok(image_json_with(st, image, &variants, thumbhash))
}

/// An image's JSON with its variants and ThumbHash (looked up by the
/// caller, the variants for a whole page at once).
fn image_json_with(
    st: &AppState,
    image: &Image,
    variants: &[Variant],
    thumbhash: Option<String>,
) -> ImageBody {
    let mut preset_urls = BTreeMap::new();
    if image.content.kind == tintype_engine::core::ImageKind::Picture {
        for p in st.engine.config().presets.all() {
            preset_urls.insert(
                p.name.clone(),
                st.url(&format!("/v1/images/{}/variants/{}", image.id, p.name)),
            );
        }
    }
    let c = &image.content;
    ImageBody {
        content_type: c.content_type.clone(),
        created_at: millis(&image.created_at),
        exif: c.exif.clone(),
        format: c.format.clone(),
        height: c.height,
        id: image.id.clone(),
        kind: c.kind.as_str(),
        latitude: c.latitude,
        longitude: c.longitude,
        metadata: image.metadata.clone(),
        name: image.name.clone(),
        orientation: c.orientation,
        processed_at: image.processed_at.as_ref().map(millis),
        sha256: c.sha256.clone(),
        size: c.size,
        thumbhash,
        updated_at: millis(&image.updated_at),
        urls: ImageUrls {
            original: st.url(&format!("/v1/images/{}/original", image.id)),
            this: st.url(&format!("/v1/images/{}", image.id)),
            variants: preset_urls,
        },
        variants: variants
            .iter()
            .map(|v| VariantBody::of(st, image, v))
            .collect(),
        width: c.width,
    }
}

/// A scope a token may hold.
#[derive(ToSchema)]
#[allow(dead_code)]
enum ScopeName {
    #[schema(rename = "image:read")]
    ImageRead,
    #[schema(rename = "image:write")]
    ImageWrite,
    #[schema(rename = "image:delete")]
    ImageDelete,
    #[schema(rename = "admin")]
    Admin,
}

/// The calling token's user and scopes.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(required = true)]
    email: Option<String>,
    id: i64,
    /// Images per 24 hours; 0 means unlimited.
    images_per_day: i64,
    name: String,
    #[schema(required = true)]
    profile_image_id: Option<String>,
    #[schema(required = true)]
    profile_image_url: Option<String>,
    /// The scopes of the token used.
    #[schema(value_type = Vec<ScopeName>)]
    scopes: Vec<Scope>,
}

#[utoipa::path(
    get, path = "/v1/user", tag = "user", operation_id = "getUser",
    summary = "The calling token's user",
    responses(
        (status = 200, description = "The user and the token's scopes", body = UserBody),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ProblemBody,
            content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tintype\"`"))),
        (status = 403, description = "The token lacks image:read", body = ProblemBody,
            content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_token" = []), ("access_token" = []))
)]
async fn me(State(st): State<AppState>, caller: Caller<Native>) -> ApiResult<Json<UserBody>> {
    let p = caller.require(Scope::ImageRead)?;
    let u = p.user;
    Ok(Json(UserBody {
        created_at: millis(&u.created_at),
        email: u.email,
        id: u.id,
        images_per_day: u.images_per_day,
        profile_image_url: u
            .profile_image_id
            .as_ref()
            .map(|id| st.url(&format!("/v1/images/{id}/original"))),
        profile_image_id: u.profile_image_id,
        name: u.name,
        scopes: p.scopes,
    }))
}

/// The query of `GET /v1/images`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Images per page, 1..=1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The cursor of the next page, from the previous page's `Link`.
    cursor: Option<String>,
}

/// A query string that did not parse: the same 400 problem everywhere.
fn bad_query(e: QueryRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "invalid", e.body_text())
}

#[utoipa::path(
    get, path = "/v1/images", tag = "images", operation_id = "listImages",
    summary = "The caller's images, newest first, a page at a time",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of images", body = [ImageBody],
            headers(("Link" = String,
                description = "`<URL>; rel=\"next\"` when there is a next page"))),
        (status = 400, description = "A query parameter is malformed or out of range", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ProblemBody,
            content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tintype\"`"))),
        (status = 403, description = "The token lacks image:read", body = ProblemBody,
            content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_token" = []), ("access_token" = []))
)]
async fn list(
    State(st): State<AppState>,
    caller: Caller<Native>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageRead)?;
    let Query(q) = q.map_err(bad_query)?;
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
    // And one query for their ThumbHashes.
    let thumbhashes = st.engine.thumbhashes(&page.images).await?;
    let out: Vec<ImageBody> = page
        .images
        .iter()
        .zip(variants.iter())
        .zip(thumbhashes)
        .map(|((i, (_, v)), t)| image_json_with(&st, i, v, t))
        .collect();
    let mut resp = Json(out).into_response();
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

/// The query of a raw-body `POST /v1/images`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct RawQuery {
    /// The image's name (raw bodies only; a multipart upload sends a
    /// `name` part), at most 1024 bytes.
    name: Option<String>,
}

/// Raw bytes: an upload's body, an original's or a variant's.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
struct Binary(Vec<u8>);

/// A multipart upload's parts; unknown parts are ignored.
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The picture or disk image.
    #[schema(value_type = String, format = Binary, content_media_type = "application/octet-stream")]
    file: Vec<u8>,
    /// The image's name, at most 1024 bytes.
    name: Option<String>,
    /// A JSON object (as text), at most 64 KiB.
    metadata: Option<String>,
}

#[utoipa::path(
    post, path = "/v1/images", tag = "images", operation_id = "uploadImage",
    summary = "Upload a picture or disk image",
    description = "Either `multipart/form-data` with a `file` part (and optional `name` and `metadata` \
        parts), or the raw bytes as the body with any other content type and `?name=`. The upload \
        streams; nothing is stored unless it is accepted whole.",
    params(RawQuery),
    request_body(content(
        (UploadForm = "multipart/form-data"),
        (Binary = "application/octet-stream"),
        (Binary = "image/*"),
    )),
    responses(
        (status = 201, description = "Stored", body = ImageBody,
            headers(("Location" = String, description = "The image's URL"))),
        (status = 400, description = "Empty or unreadable body, no `file` part, metadata that is not a JSON object, or a malformed query", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ProblemBody,
            content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tintype\"`"))),
        (status = 403, description = "The token lacks image:write", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 413, description = "The upload, its name or its metadata is over its limit", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 415, description = "Not a picture or disk image of an accepted format, or one that cannot be decoded", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 422, description = "Refused: too many pixels, or over the decode budget", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 429, description = "The user's daily image quota is used up", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 503, description = "The server is busy; retry after `Retry-After` seconds", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 507, description = "No space left to store it", body = ProblemBody,
            content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_token" = []), ("access_token" = []))
)]
async fn upload(
    State(st): State<AppState>,
    caller: Caller<Native>,
    raw_query: Result<Query<RawQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageWrite)?;
    let image = if media_type(&headers).starts_with("multipart/form-data") {
        let mp = multipart(&headers, body)
            .await
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "invalid", e.body_text()))?;
        upload_parts(&st, p.user.id, mp).await?
    } else {
        let Query(q) = raw_query.map_err(bad_query)?;
        if q.name.as_ref().is_some_and(|n| n.len() > MAX_NAME_BYTES) {
            return Err(field_problem(
                "the name",
                ReadError::TooLarge {
                    limit: MAX_NAME_BYTES,
                },
            ));
        }
        let mut opts = IngestOptions::new(p.user.id);
        opts.name = q.name;
        // The body streams into the engine, never held whole.
        st.engine.ingest(opts, body.into_data_stream()).await?
    };
    let body = image_json(&st, &image).await?;
    let mut resp = (StatusCode::CREATED, Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&st.url(&format!("/v1/images/{}", image.id))) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[utoipa::path(
    get, path = "/v1/images/{id}", tag = "images", operation_id = "getImage",
    summary = "One image",
    params(
        ("id" = String, Path, description = "The image id"),
    ),
    responses(
        (status = 200, description = "The image", body = ImageBody),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ProblemBody,
            content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tintype\"`"))),
        (status = 403, description = "The token lacks image:read", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 404, description = "No such image of the caller's", body = ProblemBody,
            content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_token" = []), ("access_token" = []))
)]
async fn show(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller<Native>,
) -> ApiResult<Json<ImageBody>> {
    let p = caller.require(Scope::ImageRead)?;
    let image = st.engine.owned_image(&p, &id).await?;
    Ok(Json(image_json(&st, &image).await?))
}

/// The fields of `PATCH /v1/images/{id}`; a field left out is unchanged.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    /// The new name, at most 1024 bytes; `null` removes it.
    #[serde(default, with = "double_option")]
    #[schema(value_type = Option<String>)]
    name: Option<Option<String>>,
    /// Replaces the metadata (a JSON object, at most 64 KiB as JSON).
    #[schema(value_type = Option<Object>)]
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

#[utoipa::path(
    patch, path = "/v1/images/{id}", tag = "images", operation_id = "updateImage",
    summary = "Rename an image or replace its metadata",
    params(
        ("id" = String, Path, description = "The image id"),
    ),
    request_body(content = PatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The updated image", body = ImageBody),
        (status = 400, description = "The body is not JSON of this shape (unknown fields are refused)", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ProblemBody,
            content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tintype\"`"))),
        (status = 403, description = "The token lacks image:write", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 404, description = "No such image of the caller's", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 413, description = "The body, the name or the metadata is over its limit", body = ProblemBody,
            content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_token" = []), ("access_token" = []))
)]
async fn patch(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller<Native>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ImageBody>> {
    let p = caller.require(Scope::ImageWrite)?;
    let image = st.engine.owned_image(&p, &id).await?;
    let body: PatchBody = read_json(&headers, body, MAX_JSON_BYTES)
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

#[utoipa::path(
    delete, path = "/v1/images/{id}", tag = "images", operation_id = "deleteImage",
    summary = "Delete an image and its variants",
    params(
        ("id" = String, Path, description = "The image id"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ProblemBody,
            content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tintype\"`"))),
        (status = 403, description = "The token lacks image:delete", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 404, description = "No such image of the caller's", body = ProblemBody,
            content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_token" = []), ("access_token" = []))
)]
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

#[utoipa::path(
    get, path = "/v1/images/{id}/original", tag = "images", operation_id = "getOriginal",
    summary = "The uploaded bytes",
    params(
        ("id" = String, Path, description = "The image id"),
        ("Range" = Option<String>, Header, description = "`bytes=FIRST-LAST`: one byte range"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier response"),
        ("If-Modified-Since" = Option<String>, Header),
        ("If-Range" = Option<String>, Header),
    ),
    responses(
        (status = 200, description = "The bytes, with the content type they were stored with",
            content((Binary = "application/octet-stream"), (Binary = "*/*")),
            headers(
                ("ETag" = String, description = "The strong entity tag (the content hash)"),
                ("Last-Modified" = String),
                ("Cache-Control" = String),
                ("Accept-Ranges" = String, description = "`bytes`"),
                ("Content-Length" = i64),
            )),
        (status = 206, description = "The requested byte range",
            content((Binary = "application/octet-stream"), (Binary = "*/*")),
            headers(
                ("Content-Range" = String, description = "`bytes FIRST-LAST/SIZE`"),
                ("ETag" = String),
                ("Content-Length" = i64),
            )),
        (status = 304, description = "Not modified (If-None-Match or If-Modified-Since matched)",
            headers(("ETag" = String))),
        (status = 416, description = "The range cannot be satisfied",
            headers(("Content-Range" = String, description = "`bytes */SIZE`"))),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ProblemBody,
            content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tintype\"`"))),
        (status = 403, description = "The token lacks image:read", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 404, description = "No such image of the caller's", body = ProblemBody,
            content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_token" = []), ("access_token" = []))
)]
async fn original(
    State(st): State<AppState>,
    Path(id): Path<String>,
    caller: Caller<Native>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageRead)?;
    let image = st.engine.owned_image(&p, &id).await?;
    Ok(serve_blob(
        &st,
        &headers,
        &BlobRef::of_image(&image),
        Caching::Private,
        None,
    )
    .await)
}

/// An encoding to ask a variant in.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum FormatName {
    Auto,
    Jpeg,
    Png,
    Webp,
    Avif,
}

/// The query of a variant request.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct VariantQuery {
    /// The encoding (any case); `auto`, or no format for a preset whose
    /// format is auto, chooses from `Accept` (AVIF, then WebP, else the
    /// preset's own).
    #[param(value_type = Option<FormatName>)]
    format: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/images/{id}/variants/{preset}", tag = "images", operation_id = "getVariant",
    summary = "A picture's variant, rendered on first request",
    params(
        ("id" = String, Path, description = "The image id"),
        ("preset" = String, Path, description = "A preset name from the configuration"),
        VariantQuery,
        ("Accept" = Option<String>, Header, description = "Chooses the encoding when the format is auto"),
        ("Range" = Option<String>, Header, description = "`bytes=FIRST-LAST`: one byte range"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag from an earlier response"),
        ("If-Modified-Since" = Option<String>, Header),
        ("If-Range" = Option<String>, Header),
    ),
    responses(
        (status = 200, description = "The variant's bytes; `Vary: Accept` when the encoding was negotiated", body = Binary, content_type = "image/*",
            headers(
                ("ETag" = String, description = "The strong entity tag (the content hash)"),
                ("Last-Modified" = String),
                ("Cache-Control" = String),
                ("Accept-Ranges" = String, description = "`bytes`"),
                ("Content-Length" = i64),
            )),
        (status = 206, description = "The requested byte range", body = Binary, content_type = "image/*",
            headers(
                ("Content-Range" = String, description = "`bytes FIRST-LAST/SIZE`"),
                ("ETag" = String),
                ("Content-Length" = i64),
            )),
        (status = 304, description = "Not modified (If-None-Match or If-Modified-Since matched)",
            headers(("ETag" = String))),
        (status = 416, description = "The range cannot be satisfied",
            headers(("Content-Range" = String, description = "`bytes */SIZE`"))),
        (status = 400, description = "An unknown `format`, or a malformed query", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 401, description = "No token, or an unknown, expired or revoked one", body = ProblemBody,
            content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"tintype\"`"))),
        (status = 403, description = "The token lacks image:read", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 404, description = "No such image of the caller's, or no such preset", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 415, description = "A disk image: it has no variants", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 422, description = "Rendering it would pass the decode budget", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 503, description = "The server is busy; retry after `Retry-After` seconds", body = ProblemBody,
            content_type = "application/problem+json"),
    ),
    security(("bearer" = []), ("api_token" = []), ("access_token" = []))
)]
async fn variant(
    State(st): State<AppState>,
    Path((id, preset)): Path<(String, String)>,
    caller: Caller<Native>,
    q: Result<Query<VariantQuery>, QueryRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageRead)?;
    let image = st.engine.owned_image(&p, &id).await?;
    let Query(q) = q.map_err(bad_query)?;
    // `?format=jpeg|png|webp|avif` asks for an encoding; `auto` (or no
    // format, for a preset whose format is auto) negotiates from Accept.
    let asked = q.format.map(|f| f.to_ascii_lowercase());
    let Some(preset_def) = st.engine.config().presets.get(&preset) else {
        return Err(CoreError::NotFound.into());
    };
    let negotiate = match asked.as_deref() {
        None => preset_def.negotiates(),
        Some("auto") => true,
        Some(_) => false,
    };
    let format = if negotiate {
        let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
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
    let mut resp = serve_blob(&st, &headers, &blob, Caching::Private, None).await;
    if negotiate {
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    Ok(resp)
}
