//! Documents: list, read, create, replace, delete.

use crate::auth::{may_change, request_key, take_apikey, writer, Deleter, Need};
use crate::error::{json_response, PopitError, PopitResult};
use crate::wire::{self, collection, parse_json, prepare, render, scope_of, valid_id};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tintype_engine::core::{CoreError, NewRecord, Principal, Record, UserId};
use tintype_http::extract::Params;
use tintype_http::limits::{read_body, ReadError};
use tintype_http::AppState;

/// A stored document and its record.
pub struct Stored {
    pub record: Record,
    pub doc: Map<String, Value>,
}

pub async fn load(st: &AppState, coll: &str, id: &str) -> PopitResult<Option<Stored>> {
    if !valid_id(id) {
        return Ok(None);
    }
    let Some(record) = st.engine.record(&scope_of(coll), id).await? else {
        return Ok(None);
    };
    let doc = match &record.data {
        Value::Object(m) => m.clone(),
        _ => {
            return Err(PopitError::Internal(format!(
                "record {coll}/{id} does not hold an object"
            )))
        }
    };
    Ok(Some(Stored { record, doc }))
}

/// Most attempts of an optimistic document update before answering 409.
pub const MAX_ATTEMPTS: usize = 16;

/// The answer when a document kept changing under an update.
pub fn contended(coll: &str, id: &str) -> PopitError {
    PopitError::Status(
        StatusCode::CONFLICT,
        format!("{coll} '{id}' changed during the update, try again"),
    )
}

/// Writes a document if nobody else wrote it since it was read: `version`
/// is the version read (`None`: it did not exist). `Ok(None)` means another
/// writer (on this node or another) got there first: read it again and
/// redo the change. Documents are never locked.
pub async fn save(
    st: &AppState,
    coll: &str,
    id: &str,
    owner: Option<UserId>,
    doc: Map<String, Value>,
    version: Option<i64>,
) -> PopitResult<Option<Map<String, Value>>> {
    let rec = NewRecord {
        scope: scope_of(coll),
        key: id.to_string(),
        owner_id: owner,
        image_id: None,
        data: Value::Object(doc),
        ..NewRecord::default()
    };
    let saved = match version {
        Some(v) => st.engine.update_record_if(&rec, v).await?,
        None => st.engine.insert_record(&rec).await?.ok(),
    };
    let Some(saved) = saved else {
        st.engine.forget_record(&rec.scope, id);
        // A short, varied pause so that writers that collided do not
        // collide again in step.
        let jitter = rand::random::<u64>() % 20;
        tokio::time::sleep(std::time::Duration::from_millis(jitter + 1)).await;
        return Ok(None);
    };
    match saved.data {
        Value::Object(m) => Ok(Some(m)),
        _ => Err(PopitError::Internal(
            "stored document is not an object".into(),
        )),
    }
}

/// What an update makes of a stored document: the new document, and the
/// uploaded files it no longer references.
pub type Change = (Map<String, Value>, Vec<String>);

/// Changes an existing document for `who` (its owner or an admin) by
/// optimistic versioning: `change` makes the new document from the stored
/// one; a concurrent write (on any node) makes the save fail, and the
/// change is made again on what that write stored. The files the change
/// releases are deleted once it is saved. `None`: no such document.
pub async fn update(
    st: &AppState,
    coll: &str,
    id: &str,
    who: &Principal,
    mut change: impl FnMut(Map<String, Value>) -> PopitResult<Change>,
) -> PopitResult<Option<Map<String, Value>>> {
    for _ in 0..MAX_ATTEMPTS {
        let Some(stored) = load(st, coll, id).await? else {
            return Ok(None);
        };
        may_change(who, &stored.record)?;
        let (doc, released) = change(stored.doc)?;
        let version = Some(stored.record.version);
        if let Some(doc) = save(st, coll, id, stored.record.owner_id, doc, version).await? {
            release(st, &released).await;
            return Ok(Some(doc));
        }
    }
    Err(contended(coll, id))
}

/// Deletes uploaded files no document references any more.
pub async fn release(st: &AppState, files: &[String]) {
    for f in files {
        match st.engine.delete_image(f).await {
            Ok(()) | Err(CoreError::NotFound) => {}
            Err(e) => tracing::warn!("popit: releasing image {f}: {e}"),
        }
    }
}

/// `{"result": doc}`, or the bare document with `include_root=false`.
pub fn respond(st: &AppState, coll: &str, doc: &Map<String, Value>, query: &Params) -> Response {
    let rendered = render(&st.public_url, coll, doc);
    let bare = query
        .get("include_root")
        .is_some_and(|v| v == "false" || v == "0");
    if bare {
        json_response(StatusCode::OK, &rendered)
    } else {
        json_response(StatusCode::OK, &json!({ "result": rendered }))
    }
}

/// Reads a JSON document body (at most 1 MiB). An empty body is `{}`.
async fn json_body(headers: &HeaderMap, body: Body) -> PopitResult<Map<String, Value>> {
    let bytes = read_body(headers, body, wire::MAX_JSON_BYTES)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { .. } => PopitError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the JSON body is larger than 1 MiB".into(),
            ),
            ReadError::Malformed(m) => PopitError::bad_request(m),
        })?;
    match parse_json(&bytes)? {
        Value::Object(m) => Ok(m),
        _ => Err(PopitError::bad_request("the body must be a JSON object")),
    }
}

/// Authenticates a JSON write: the header or query key, else the body's
/// `apikey` field (removed from the body in any case).
async fn json_write(
    st: &AppState,
    query: &Params,
    headers: &HeaderMap,
    body: Body,
) -> PopitResult<(tintype_engine::core::Principal, Map<String, Value>)> {
    let key = request_key(headers, query.raw());
    if let Some(k) = key {
        let p = writer(st, Some(k), Need::Write).await?;
        let mut body = json_body(headers, body).await?;
        body.remove("apikey");
        return Ok((p, body));
    }
    let mut body = match json_body(headers, body).await {
        Ok(b) => b,
        Err(e @ PopitError::Status(StatusCode::PAYLOAD_TOO_LARGE, _)) => return Err(e),
        Err(_) => return Err(PopitError::Unauthorized),
    };
    let key = take_apikey(&mut body);
    let p = writer(st, key, Need::Write).await?;
    Ok((p, body))
}

fn page_param(query: &Params, name: &str, max: i64, default: i64) -> i64 {
    match query.get(name).and_then(|v| v.trim().parse::<i64>().ok()) {
        Some(n) if (1..=max).contains(&n) => n,
        _ => default,
    }
}

/// GET `/api/v0.1` and `/api/v0.1/`: the API entry point. `meta` holds the
/// absolute URL of each collection, under `{collection}_api_url` (clients
/// read the collection names off these keys), and `image_proxy_url`, which
/// is empty: tintype runs no image proxy, and the original API answered an
/// empty string when none was configured.
pub async fn entry_point(State(st): State<AppState>) -> Response {
    let mut meta = Map::new();
    for c in wire::COLLECTIONS {
        meta.insert(
            format!("{c}_api_url"),
            json!(st.url(&format!("{}/{c}", crate::PREFIX))),
        );
    }
    meta.insert("image_proxy_url".into(), json!(""));
    json_response(
        StatusCode::OK,
        &json!({
            "note": "This is the API entry point - use a '*_api_url' link in 'meta' to search a collection.",
            "meta": meta,
        }),
    )
}

pub async fn list(
    State(st): State<AppState>,
    Path(coll): Path<String>,
    query: Params,
) -> PopitResult<Response> {
    let coll = collection(&coll)?;
    let page = page_param(&query, "page", 1000, 1);
    let per_page = page_param(&query, "per_page", 200, 30);
    let scope = scope_of(coll);
    let total = st.engine.count_records(&scope, None).await?;
    let records = st
        .engine
        .list_records(&scope, None, false, (page - 1) * per_page, per_page)
        .await?;
    let result: Vec<Value> = records
        .iter()
        .filter_map(|r| match &r.data {
            Value::Object(m) => Some(render(&st.public_url, coll, m)),
            _ => None,
        })
        .collect();
    let has_more = page * per_page < total;
    let mut body = Map::new();
    body.insert("total".into(), json!(total));
    body.insert("page".into(), json!(page));
    body.insert("per_page".into(), json!(per_page));
    body.insert("has_more".into(), json!(has_more));
    let link = |p: i64| {
        st.url(&format!(
            "{}/{coll}?page={p}&per_page={per_page}",
            crate::PREFIX
        ))
    };
    if has_more {
        body.insert("next_url".into(), json!(link(page + 1)));
    }
    if page > 1 {
        body.insert("prev_url".into(), json!(link(page - 1)));
    }
    body.insert("result".into(), Value::Array(result));
    Ok(json_response(StatusCode::OK, &Value::Object(body)))
}

pub async fn show(
    State(st): State<AppState>,
    Path((coll, id)): Path<(String, String)>,
    query: Params,
) -> PopitResult<Response> {
    let coll = collection(&coll)?;
    let stored = load(&st, coll, &id)
        .await?
        .ok_or_else(|| PopitError::not_found(format!("id '{id}' not found")))?;
    Ok(respond(&st, coll, &stored.doc, &query))
}

pub async fn create(
    State(st): State<AppState>,
    Path(coll): Path<String>,
    query: Params,
    headers: HeaderMap,
    body: Body,
) -> PopitResult<Response> {
    let coll = collection(&coll)?;
    let (p, body) = json_write(&st, &query, &headers, body).await?;
    let id = match body.get("id") {
        None | Some(Value::Null) => wire::new_id(),
        Some(Value::String(s)) if valid_id(s) => s.clone(),
        Some(_) => {
            return Err(PopitError::bad_request(format!(
                "id must be 1-{} letters, digits, '-', '_' or '.'",
                wire::MAX_ID_LEN
            )))
        }
    };
    let prepared = prepare(body, &id, None)?;
    let inserted = st
        .engine
        .insert_record(&NewRecord {
            scope: scope_of(coll),
            key: id.clone(),
            owner_id: Some(p.user.id),
            image_id: None,
            data: Value::Object(prepared.doc),
            ..NewRecord::default()
        })
        .await?;
    match inserted {
        Ok(rec) => match rec.data {
            Value::Object(m) => Ok(respond(&st, coll, &m, &query)),
            _ => Err(PopitError::Internal(
                "stored document is not an object".into(),
            )),
        },
        Err(_) => Err(PopitError::Status(
            StatusCode::CONFLICT,
            format!("a document with id '{id}' already exists"),
        )),
    }
}

pub async fn replace(
    State(st): State<AppState>,
    Path((coll, id)): Path<(String, String)>,
    query: Params,
    headers: HeaderMap,
    body: Body,
) -> PopitResult<Response> {
    let coll = collection(&coll)?;
    let (p, body) = json_write(&st, &query, &headers, body).await?;
    match body.get("id") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if *s == id => {}
        Some(_) => {
            return Err(PopitError::bad_request(
                "URL id and document id are different",
            ))
        }
    }
    if !valid_id(&id) {
        return Err(PopitError::bad_request(format!(
            "id must be 1-{} letters, digits, '-', '_' or '.'",
            wire::MAX_ID_LEN
        )));
    }
    for _ in 0..MAX_ATTEMPTS {
        let old = load(&st, coll, &id).await?;
        if let Some(o) = &old {
            may_change(&p, &o.record)?;
        }
        let prepared = prepare(body.clone(), &id, old.as_ref().map(|o| &o.doc))?;
        let owner = old
            .as_ref()
            .and_then(|o| o.record.owner_id)
            .or(Some(p.user.id));
        let version = old.as_ref().map(|o| o.record.version);
        if let Some(doc) = save(&st, coll, &id, owner, prepared.doc, version).await? {
            release(&st, &prepared.released).await;
            return Ok(respond(&st, coll, &doc, &query));
        }
    }
    Err(contended(coll, &id))
}

pub async fn remove(
    State(st): State<AppState>,
    Path((coll, id)): Path<(String, String)>,
    Deleter(p): Deleter,
) -> PopitResult<Response> {
    let coll = collection(&coll)?;
    for _ in 0..MAX_ATTEMPTS {
        let Some(old) = load(&st, coll, &id).await? else {
            return Ok(StatusCode::NO_CONTENT.into_response());
        };
        may_change(&p, &old.record)?;
        let scope = scope_of(coll);
        if st
            .engine
            .delete_record_if(&scope, &id, old.record.version)
            .await?
        {
            release(&st, &wire::files_of(&old.doc)).await;
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        st.engine.forget_record(&scope, &id);
    }
    Err(contended(coll, &id))
}
