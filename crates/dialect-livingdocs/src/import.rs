//! `POST /api/v1/import/images` and `GET /api/v1/import/images/status`.

use crate::error::ApiError;
use crate::wire::{self, ItemSpec};
use crate::{item_scope, Settings, IMPORT_SCOPE, JOB_KIND, JOB_SCOPE};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tintype_engine::core::{CoreError, Image, JobState, NewRecord, Scope};
use tintype_http::auth::{Caller, CallerRules, TokenSource};
use tintype_http::extract::Params;
use tintype_http::limits::{read_body, ReadError};
use tintype_http::AppState;

/// What an import record holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImportData {
    #[serde(rename = "systemName")]
    pub system_name: String,
    #[serde(default)]
    pub webhook: Option<String>,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    pub items: Vec<ItemSpec>,
    /// `started`, `success` or `failed`.
    pub state: String,
    #[serde(rename = "startedAt")]
    pub started_at: String,
    #[serde(default, rename = "finishedAt")]
    pub finished_at: Option<String>,
    #[serde(default)]
    pub webhook_queued: bool,
}

/// What an item record holds: the outcome of one image of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ItemResult {
    /// `success`, `skipped` or `failed`.
    pub status: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub image_id: Option<String>,
}

impl ItemResult {
    pub fn success(image_id: &str) -> Self {
        ItemResult {
            status: "success".into(),
            reason: None,
            image_id: Some(image_id.to_string()),
        }
    }
    pub fn skipped(image_id: &str) -> Self {
        ItemResult {
            status: "skipped".into(),
            reason: Some("already exists".into()),
            image_id: Some(image_id.to_string()),
        }
    }
    pub fn failed(reason: impl Into<String>) -> Self {
        ItemResult {
            status: "failed".into(),
            reason: Some(reason.into()),
            image_id: None,
        }
    }
}

/// The time format the original uses for `startedAt`.
pub(crate) fn timestamp_now() -> String {
    chrono::Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Livingdocs' callers: a Bearer token or `?access_token=`; refusals in
/// its error bodies.
pub(crate) struct Livingdocs;

impl CallerRules for Livingdocs {
    const SOURCES: &'static [TokenSource] = &[TokenSource::Bearer, TokenSource::QueryAccessToken];
    type Rejection = ApiError;

    fn missing() -> ApiError {
        ApiError::Unauthorized("an access token is required")
    }

    fn invalid() -> ApiError {
        ApiError::Unauthorized("the access token is invalid or revoked")
    }

    fn lacks(scopes: &[Scope]) -> ApiError {
        let first = scopes.first().copied().unwrap_or(Scope::ImageRead);
        ApiError::Forbidden(first.to_string())
    }
}

fn random_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..10)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

fn json_ok(body: Value) -> Response {
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// `POST /api/v1/import/images`
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(settings): Extension<Arc<Settings>>,
    caller: Caller<Livingdocs>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let who = caller.require(Scope::ImageWrite)?;
    let limit = settings.max_body_bytes;
    let bytes = read_body(&headers, body, limit)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { limit } => ApiError::TooLarge(limit as u64),
            ReadError::Malformed(m) => ApiError::invalid("body", m),
        })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("body", format!("must be valid JSON: {e}")))?;
    let request = wire::parse(&value, settings.max_images).map_err(ApiError::Validation)?;
    if let Some(hook) = &request.webhook {
        if let Err(e) = state.engine.fetcher().check_url(hook) {
            return Err(ApiError::invalid("webhook", e.to_string()));
        }
    }
    let owner = who.user.id;
    let n = i64::try_from(request.images.len()).unwrap_or(i64::MAX);
    match state.engine.check_quota(owner, n).await {
        Ok(()) => {}
        Err(CoreError::QuotaExceeded {
            limit,
            used,
            requested,
        }) => {
            return Err(ApiError::Usage {
                limit,
                used,
                requested,
                retry_after: settings.retry_after_secs,
            })
        }
        Err(e) => return Err(e.into()),
    }

    let data = ImportData {
        system_name: request.system_name,
        webhook: request.webhook,
        context: request.context,
        items: request.images,
        state: "started".into(),
        started_at: timestamp_now(),
        finished_at: None,
        webhook_queued: false,
    };
    let data_value = serde_json::to_value(&data).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut id = random_id();
    let mut inserted = false;
    for _ in 0..5 {
        let rec = NewRecord {
            scope: IMPORT_SCOPE.into(),
            key: id.clone(),
            owner_id: Some(owner),
            image_id: None,
            data: data_value.clone(),
            ..NewRecord::default()
        };
        if state.engine.insert_record(&rec).await?.is_ok() {
            inserted = true;
            break;
        }
        id = random_id();
    }
    if !inserted {
        return Err(ApiError::Internal("no free import id".into()));
    }
    let job = match state
        .engine
        .enqueue(
            JOB_KIND,
            json!({ "import": id }),
            None,
            Some(format!("{JOB_KIND}:{id}")),
        )
        .await
    {
        Ok(j) => j,
        Err(e) => {
            let _ = state.engine.delete_record(IMPORT_SCOPE, &id).await;
            return Err(e.into());
        }
    };
    // The job id goes to a record of its own: the job may already be
    // rewriting the import record.
    state
        .engine
        .put_record(&NewRecord {
            scope: JOB_SCOPE.into(),
            key: id.clone(),
            owner_id: Some(owner),
            image_id: None,
            data: json!({ "job_id": job }),
            ..NewRecord::default()
        })
        .await?;
    tracing::info!(import = %id, job, images = n, "livingdocs import queued");
    Ok(json_ok(json!({ "id": id })))
}

/// The `image` object of an item.
pub(crate) fn image_json(state: &AppState, image: &Image) -> Value {
    let original = state.url(&format!("/api/v1/images/{}", image.id));
    json!({
        "mediaId": image.id,
        "originalUrl": original,
        "url": format!("{original}?format=auto"),
        "width": image.content.width,
        "height": image.content.height,
        "mimeType": image.content.content_type,
        "imageService": "tintype",
    })
}

/// `GET /api/v1/import/images/status?id=`
pub(crate) async fn status(
    State(state): State<AppState>,
    caller: Caller<Livingdocs>,
    query: Params,
) -> Result<Response, ApiError> {
    let who = caller.require_any(&[Scope::ImageRead, Scope::ImageWrite])?;
    let id = query
        .get("id")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid("id", "is required"))?
        .to_string();
    let not_found = || ApiError::NotFound(format!("there is no import with the id {id}"));
    let Some(rec) = state.engine.record(IMPORT_SCOPE, &id).await? else {
        return Err(not_found());
    };
    if rec.owner_id != Some(who.user.id) && !who.has(Scope::Admin) {
        return Err(not_found());
    }
    let data: ImportData = serde_json::from_value(rec.data)
        .map_err(|e| ApiError::Internal(format!("import {id}: {e}")))?;
    let failed = json!({ "finished": true, "state": "failed", "id": id });
    match data.state.as_str() {
        "success" => {}
        "failed" => return Ok(json_ok(failed)),
        _ => {
            // A job the engine gave up on without the handler finishing it.
            let job = state
                .engine
                .record(JOB_SCOPE, &id)
                .await?
                .and_then(|r| r.data.get("job_id").and_then(Value::as_i64));
            if let Some(job) = job {
                if let Some(j) = state.engine.job(job).await? {
                    if j.state == JobState::Failed {
                        return Ok(json_ok(failed));
                    }
                }
            }
            return Ok(json_ok(json!({
                "finished": false,
                "state": "started",
                "id": id,
                "startedAt": data.started_at,
            })));
        }
    }
    let results = state
        .engine
        .list_records(
            &item_scope(&id),
            None,
            false,
            0,
            data.items.len() as i64 + 1,
        )
        .await?;
    let mut by_index: std::collections::HashMap<usize, ItemResult> =
        std::collections::HashMap::new();
    for r in results {
        if let (Ok(i), Ok(res)) = (
            r.key.parse::<usize>(),
            serde_json::from_value::<ItemResult>(r.data),
        ) {
            by_index.insert(i, res);
        }
    }
    let mut images = Vec::with_capacity(data.items.len());
    for (i, item) in data.items.iter().enumerate() {
        let res = by_index
            .remove(&i)
            .unwrap_or_else(|| ItemResult::failed("Could not upload image"));
        let mut o = Map::new();
        o.insert("status".into(), res.status.clone().into());
        o.insert("state".into(), res.status.clone().into());
        o.insert("externalId".into(), item.external_id.clone().into());
        o.insert("systemName".into(), data.system_name.clone().into());
        o.insert(
            "title".into(),
            item.title.clone().map(Value::String).unwrap_or(Value::Null),
        );
        if let Some(reason) = &res.reason {
            o.insert("reason".into(), reason.clone().into());
        }
        if let Some(image_id) = &res.image_id {
            match state.engine.image(image_id).await {
                Ok(img) => {
                    o.insert("image".into(), image_json(&state, &img));
                }
                Err(CoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        images.push(Value::Object(o));
    }
    Ok(json_ok(json!({
        "finished": true,
        "state": "success",
        "id": id,
        "images": images,
    })))
}
