//! `/images`: list, create (raw QCOW2 body, multipart, or JSON with a
//! `download_url`), get (JSON or the disk itself) and delete.

use crate::error::{ApiError, ApiResult, FieldErrors};
use crate::namespace::{self, Access, Namespace};
use crate::wire::{name_key, ImageData, Renderer, IMAGE_SCOPE};
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use std::fmt::Display;
use tintype_engine::core::{
    CoreError, Image, NewRecord, Principal, RecordFilter, RecordOrder, RecordQuery, Refusal, Scope,
    UserId,
};
use tintype_engine::media::Format;
use tintype_engine::{Accept, IngestOptions, Staged};
use tintype_http::auth::{Caller, CallerRules, TokenSource};
use tintype_http::extract::{media_type, multipart, Params};
use tintype_http::limits::{read_json, read_text_field, ReadError};
use tintype_http::serve::{serve_blob, Caching};
use tintype_http::wire::set_links;
use tintype_http::AppState;

pub const PER_PAGE: usize = 25;
pub const DISK_CONTENT_TYPE: &str = "application/x-qemu-disk";
/// Largest JSON body of a create request.
pub const MAX_JSON_BYTES: usize = 64 * 1024;
/// Largest text field of a multipart create request.
pub const MAX_FIELD_BYTES: usize = 4 * 1024;
const NAME_MAX: usize = 255;

pub const NAME_REQUIRED: &str = "Name field required";
pub const NAME_PATTERN: &str = "Name does not match ^[a-zA-Z0-9_\\-]+$";
pub const NAME_EXISTS: &str = "Name already exists";
pub const NAMESPACE_DENIED: &str = "Namespace permission denied";
pub const NAMESPACE_INVALID: &str =
    "Namespace does not match ^[a-zA-Z0-9_\\-]+(/[a-zA-Z0-9_\\-]+)*(@owner)?$";
pub const FILE_INVALID: &str = "File not a valid QCOW2 file format";
pub const FILE_REQUIRED: &str = "File field required";
pub const URL_SCHEME: &str = "Download_url invalid url scheme";

// ---- request helpers -------------------------------------------------------

/// Djinn's callers: a Bearer token, or anonymous. Whatever a caller may
/// not see does not exist for them: every refusal is a 404.
pub struct Djinn;

impl CallerRules for Djinn {
    const SOURCES: &'static [TokenSource] = &[TokenSource::Bearer];
    type Rejection = ApiError;

    fn missing() -> ApiError {
        ApiError::NotFound
    }

    fn lacks(_: &[Scope]) -> ApiError {
        ApiError::NotFound
    }
}

/// The integer id in `/images/{id}`; any other segment names no image.
fn image_seq(id: Result<Path<String>, PathRejection>) -> ApiResult<i64> {
    id.ok()
        .and_then(|Path(id)| id.parse::<i64>().ok())
        .filter(|n| *n > 0)
        .ok_or(ApiError::NotFound)
}

/// The Djinn image behind an integer id with its record.
async fn djinn_image(state: &AppState, seq: i64) -> ApiResult<(Image, ImageData)> {
    let image = state.engine.image_by_seq(seq).await?;
    let record = state
        .engine
        .records_for_image(&image.id)
        .await?
        .into_iter()
        .find(|r| r.scope == IMAGE_SCOPE)
        .ok_or(ApiError::NotFound)?;
    let data = ImageData::from_record(&record)?;
    Ok((image, data))
}

// ---- GET /images -------------------------------------------------------------

/// Every image the user can list: their own (including those in their own
/// namespaces) and those in namespaces they collaborate on (the images
/// whose root is the root of one of their collaboration records), newest
/// first, optionally whose name contains `search`. The catalog answers it
/// from the records' indexes: the owner, the root (`ref_id`) and the lower
/// case name (`skey`).
fn visible(who: &Principal, search: Option<&str>) -> RecordFilter {
    RecordFilter {
        scope: IMAGE_SCOPE.into(),
        owner: Some(who.user.id),
        or_ref_of: Some((namespace::COLLAB_SCOPE.into(), who.user.id)),
        skey_contains: search.map(str::to_string),
        ..RecordFilter::default()
    }
}

fn page_url(state: &AppState, params: &Params, page: usize) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.pairs().iter().filter(|(k, _)| k != "page") {
        s.append_pair(k, v);
    }
    s.append_pair("page", &page.to_string());
    state.url(&format!("/images?{}", s.finish()))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Djinn>,
    params: Params,
) -> ApiResult<Response> {
    let who = caller.require(Scope::ImageRead)?;
    let search = params
        .get("search")
        .map(|s| s.to_lowercase())
        .filter(|s| !s.is_empty());
    let filter = visible(&who, search.as_deref());
    let total = usize::try_from(state.engine.count_matching(&filter).await?).unwrap_or(0);
    let pages = total.div_ceil(PER_PAGE).max(1);
    let page = params
        .get("page")
        .and_then(|p| p.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, pages);
    let rows = state
        .engine
        .query_records(&RecordQuery {
            filter,
            order: RecordOrder::SeqDesc,
            after: None,
            offset: i64::try_from((page - 1) * PER_PAGE).unwrap_or(i64::MAX),
            limit: PER_PAGE as i64,
        })
        .await?;
    let mut renderer = Renderer::new(&state);
    let mut items = Vec::new();
    for row in rows {
        match ImageData::from_record(&row.record) {
            Ok(d) => items.push(renderer.image(&d).await?),
            Err(e) => tracing::warn!("djinn: skipping a record: {e}"),
        }
    }
    let mut resp = (StatusCode::OK, axum::Json(Value::Array(items))).into_response();
    if pages > 1 {
        let prev = page.saturating_sub(1).max(1);
        let next = (page + 1).min(pages);
        let (prev, next) = (
            page_url(&state, &params, prev),
            page_url(&state, &params, next),
        );
        set_links(&mut resp, &[(&prev, "prev"), (&next, "next")]);
    }
    Ok(resp)
}

// ---- GET /images/{id} --------------------------------------------------------

fn wants_disk(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .any(|t| t == DISK_CONTENT_TYPE || t == "application/octet-stream")
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller<Djinn>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    // Without a token the caller is anonymous and may read public images;
    // a token must carry image:read.
    let who = caller.optional(Scope::ImageRead)?;
    let seq = image_seq(id)?;
    let (image, data) = djinn_image(&state, seq).await?;
    let access = namespace::access(&state.engine, who.as_ref(), data.user_id, data.root_id).await?;
    if access < Access::Read {
        return Err(ApiError::NotFound);
    }
    if wants_disk(&headers) {
        let blob = tintype_engine::BlobRef::of_image(&image);
        return Ok(serve_blob(
            &state,
            &headers,
            &blob,
            Caching::Private,
            Some(DISK_CONTENT_TYPE),
        )
        .await);
    }
    let body = Renderer::new(&state).image(&data).await?;
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

// ---- DELETE /images/{id} -----------------------------------------------------

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller<Djinn>,
    id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let who = caller.require(Scope::ImageDelete)?;
    let seq = image_seq(id)?;
    let (image, data) = djinn_image(&state, seq).await?;
    let access = namespace::access(&state.engine, Some(&who), data.user_id, data.root_id).await?;
    if access < Access::Manage {
        return Err(ApiError::NotFound);
    }
    state.engine.delete_image(&image.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- POST /images ------------------------------------------------------------

/// The create request's fields, from the query and then the body.
#[derive(Debug, Default, Clone)]
struct Fields {
    name: Option<String>,
    namespace: Option<String>,
}

#[derive(Debug, Clone)]
enum Target {
    None,
    Existing(Namespace),
    /// The caller's own namespace, created once the upload is stored.
    Create(String),
}

/// What a valid request will do.
#[derive(Debug, Clone)]
struct Plan {
    name: String,
    /// The image's user: the namespace owner, or the caller.
    owner: UserId,
    target: Target,
}

/// Checks name and namespace; every failure is collected.
async fn validate(
    state: &AppState,
    who: &Principal,
    params: &Fields,
) -> ApiResult<(FieldErrors, Option<Plan>)> {
    let engine = &state.engine;
    let mut errors = FieldErrors::default();
    let name = params.name.clone().unwrap_or_default();
    if name.is_empty() {
        errors.add("name", NAME_REQUIRED);
    } else if name.len() > NAME_MAX
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        errors.add("name", NAME_PATTERN);
    }

    let ns_ref = params
        .namespace
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let target = match ns_ref {
        None => Some(Target::None),
        Some(r) => {
            let (path, owner_name) = namespace::split_ref(r);
            if !namespace::valid_path(path) {
                errors.add("namespace", NAMESPACE_INVALID);
                None
            } else {
                let owner = match owner_name {
                    None => Some(who.user.clone()),
                    Some(o) if o == who.user.name => Some(who.user.clone()),
                    Some(o) => match engine.user(o).await {
                        Ok(u) => Some(u),
                        Err(CoreError::NotFound) => None,
                        Err(e) => return Err(e.into()),
                    },
                };
                match owner {
                    None => {
                        errors.add("namespace", NAMESPACE_DENIED);
                        None
                    }
                    Some(owner) => match namespace::find(engine, owner.id, path).await? {
                        Some(ns) => {
                            let root = namespace::root_of(engine, &ns).await?;
                            let allowed = owner.id == who.user.id
                                || namespace::is_collaborator(engine, root.id, who.user.id).await?;
                            if allowed {
                                Some(Target::Existing(ns))
                            } else {
                                errors.add("namespace", NAMESPACE_DENIED);
                                None
                            }
                        }
                        None if owner.id == who.user.id => Some(Target::Create(path.to_string())),
                        None => {
                            errors.add("namespace", NAMESPACE_DENIED);
                            None
                        }
                    },
                }
            }
        }
    };

    let plan = match (errors.has("name"), target) {
        (false, Some(target)) => {
            let (ns_id, owner) = match &target {
                Target::Existing(ns) => (Some(ns.id), ns.user_id),
                Target::None | Target::Create(_) => (None, who.user.id),
            };
            let taken = match &target {
                Target::Create(_) => false,
                _ => engine
                    .record(IMAGE_SCOPE, &name_key(ns_id, owner, &name))
                    .await?
                    .is_some(),
            };
            if taken {
                errors.add("name", NAME_EXISTS);
                None
            } else {
                Some(Plan {
                    name,
                    owner,
                    target,
                })
            }
        }
        _ => None,
    };
    Ok((errors, plan))
}

/// Reads the first bytes of an upload and tells whether the media crate
/// takes them for a QCOW2 disk. The bytes read are handed back to be
/// replayed.
async fn peek<S, E>(body: &mut S) -> ApiResult<(Vec<Bytes>, bool)>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    const WANT: usize = 8;
    let mut chunks = Vec::new();
    let mut head: Vec<u8> = Vec::with_capacity(WANT);
    while head.len() < WANT {
        match body.next().await {
            Some(Ok(c)) => {
                let take = (WANT - head.len()).min(c.len());
                head.extend_from_slice(c.get(..take).unwrap_or_default());
                chunks.push(c);
            }
            Some(Err(e)) => return Err(body_failed(e)),
            None => break,
        }
    }
    let ok = tintype_engine::media::sniff(&head) == Some(Format::Qcow2);
    Ok((chunks, ok))
}

fn body_failed(e: impl Display) -> ApiError {
    ApiError::bad_request(format!("Reading the request body failed: {e}"))
}

/// Stages an upload as a disk (written, hashed and checked once, by the
/// engine); `None` when it is not a QCOW2 disk the engine takes.
async fn stage_disk<S, E>(state: &AppState, body: S) -> ApiResult<Option<Staged>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
    E: Display,
{
    match state.engine.stage_body(body, &Accept::Disks, None).await {
        Ok(staged) => Ok(Some(staged)),
        Err(CoreError::Refused(Refusal::BodyUnreadable(m))) => Err(body_failed(m)),
        Err(CoreError::Refused(r)) => {
            tracing::debug!("djinn: rejected upload: {r}");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Commits a staged disk under the plan's owner and name, creates the
/// namespace if needed and records the image; the engine removes the
/// image again if recording fails.
async fn finish(
    state: &AppState,
    who: &Principal,
    plan: Plan,
    staged: Staged,
) -> ApiResult<Response> {
    let opts = IngestOptions {
        owner: plan.owner,
        name: Some(plan.name.clone()),
        metadata: Map::new(),
        accept: Accept::Disks,
        max_bytes: None,
    };
    let (_, data) = state
        .engine
        .commit_then(staged, opts, async |image: &Image| {
            record_image(state, who, &plan, image).await
        })
        .await?;
    let body = Renderer::new(state).image(&data).await?;
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

async fn record_image(
    state: &AppState,
    who: &Principal,
    plan: &Plan,
    image: &Image,
) -> ApiResult<ImageData> {
    let ns = match &plan.target {
        Target::None => None,
        Target::Existing(ns) => Some(ns.clone()),
        Target::Create(path) => {
            Some(namespace::ensure(&state.engine, who.user.id, path, None).await?)
        }
    };
    let data = ImageData {
        id: image.seq,
        name: plan.name.clone(),
        author_id: who.user.id,
        user_id: plan.owner,
        namespace_id: ns.as_ref().map(|n| n.id),
        root_id: ns.as_ref().map(|n| n.root_id),
        created_at: image.created_at,
    };
    let rec = NewRecord {
        scope: IMAGE_SCOPE.into(),
        key: name_key(data.namespace_id, plan.owner, &plan.name),
        owner_id: Some(plan.owner),
        image_id: Some(image.id.clone()),
        data: serde_json::to_value(&data).map_err(CoreError::internal)?,
        skey: Some(data.name.to_lowercase()),
        ref_id: data.root_id,
        ..NewRecord::default()
    };
    match state.engine.insert_record(&rec).await? {
        Ok(_) => Ok(data),
        Err(_) => Err(ApiError::field("name", NAME_EXISTS)),
    }
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Djinn>,
    query: Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let who = caller.require(Scope::ImageWrite)?;
    let params = Fields {
        name: query.get("name").map(str::to_string),
        namespace: query.get("namespace").map(str::to_string),
    };
    let content_type = media_type(&headers);
    if content_type.starts_with("multipart/form-data") {
        create_multipart(state, who, params, &headers, body).await
    } else if content_type.starts_with("application/json") {
        create_json(state, who, params, &headers, body).await
    } else {
        let (errors, plan) = validate(&state, &who, &params).await?;
        let body = body.into_data_stream();
        match plan {
            Some(plan) if errors.is_empty() => match stage_disk(&state, body).await? {
                Some(staged) => finish(&state, &who, plan, staged).await,
                None => Err(ApiError::field("file", FILE_INVALID)),
            },
            _ => Err(refused_with_file(errors, body).await),
        }
    }
}

/// A request refused before its file is stored: the field errors, plus
/// the file's own if its first bytes are not a disk.
async fn refused_with_file<S, E>(mut errors: FieldErrors, mut body: S) -> ApiError
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    match peek(&mut body).await {
        Ok((_, true)) => {}
        Ok((_, false)) => errors.add("file", FILE_INVALID),
        Err(e) => return e,
    }
    ApiError::Fields(errors)
}

#[derive(serde::Deserialize)]
struct JsonCreate {
    name: Option<String>,
    namespace: Option<String>,
    download_url: Option<String>,
}

async fn create_json(
    state: AppState,
    who: Principal,
    mut params: Fields,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let body: JsonCreate = read_json(headers, body, MAX_JSON_BYTES)
        .await
        .map_err(|e| too_large_or(e, "request body"))?;
    if body.name.is_some() {
        params.name = body.name;
    }
    if body.namespace.is_some() {
        params.namespace = body.namespace;
    }
    let (mut errors, plan) = validate(&state, &who, &params).await?;
    let url = body.download_url.unwrap_or_default();
    if url.trim().is_empty() {
        errors.add("download_url", "Download_url field required");
    } else {
        let scheme_ok = url::Url::parse(url.trim())
            .map(|u| matches!(u.scheme(), "http" | "https"))
            .unwrap_or(false);
        if !scheme_ok {
            errors.add("download_url", URL_SCHEME);
        }
    }
    let plan = match plan {
        Some(p) if errors.is_empty() => p,
        _ => return Err(ApiError::Fields(errors)),
    };
    let resp = match state.engine.fetch(url.trim()).await {
        Ok(r) => r,
        Err(e) => {
            return Err(ApiError::field(
                "download_url",
                format!("Download_url could not be fetched: {e}"),
            ))
        }
    };
    match stage_disk(&state, resp.body).await? {
        Some(staged) => finish(&state, &who, plan, staged).await,
        None => Err(ApiError::field("file", FILE_INVALID)),
    }
}

async fn read_text(mut field: axum::extract::multipart::Field<'_>) -> ApiResult<String> {
    read_text_field(&mut field, MAX_FIELD_BYTES)
        .await
        .map_err(|e| too_large_or(e, "Multipart field"))
}

/// A small field or body refused: over its cap answers 413, anything else
/// 400, both in Djinn's `{"message": ...}` envelope.
fn too_large_or(e: ReadError, what: &str) -> ApiError {
    match e {
        ReadError::TooLarge { limit } => ApiError::Message(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} too large (at most {limit} bytes)"),
        ),
        ReadError::Malformed(m) => ApiError::bad_request(format!("Invalid {what}: {m}")),
    }
}

async fn create_multipart(
    state: AppState,
    who: Principal,
    mut params: Fields,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let mut mp = multipart(headers, body)
        .await
        .map_err(|e| ApiError::bad_request(format!("Invalid multipart body: {e}")))?;
    // The file is staged (nothing is stored before every part is read and
    // checked); a file after `name` is checked before it is streamed.
    let mut file_seen = false;
    let mut staged: Option<Staged> = None;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid multipart body: {e}"
                )))
            }
        };
        match field.name() {
            Some("name") => params.name = Some(read_text(field).await?),
            Some("namespace") => params.namespace = Some(read_text(field).await?),
            Some("file") if !file_seen => {
                file_seen = true;
                if params.name.is_some() {
                    let (errors, plan) = validate(&state, &who, &params).await?;
                    if plan.is_none() || !errors.is_empty() {
                        // Every error at once, without storing the file.
                        return Err(refused_with_file(errors, field).await);
                    }
                }
                staged = stage_disk(&state, field).await?;
            }
            _ => {} // other parts are skipped
        }
    }
    let (mut errors, plan) = validate(&state, &who, &params).await?;
    match (&staged, file_seen) {
        (Some(_), _) => {}
        (None, true) => errors.add("file", FILE_INVALID),
        (None, false) => errors.add("file", FILE_REQUIRED),
    }
    match (plan, staged) {
        (Some(plan), Some(staged)) if errors.is_empty() => finish(&state, &who, plan, staged).await,
        _ => Err(ApiError::Fields(errors)),
    }
}

/// Answers for unsupported methods and malformed paths under `/images`.
pub async fn not_found() -> ApiError {
    ApiError::NotFound
}
