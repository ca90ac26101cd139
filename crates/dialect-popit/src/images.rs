//! Uploaded images: POST a file onto a document, PUT a new file over one,
//! DELETE one or all, and serve the bytes.

use crate::auth::{may_change, Deleter, Popit};
use crate::docs::{load, release, respond, update};
use crate::error::{PopitError, PopitResult};
use crate::wire::{self, collection, entry_file, entry_id, images_of, FILE_FIELD};
use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use tintype_engine::core::{CoreError, Image, Principal, Refusal, Scope, UserId};
use tintype_engine::{Accept, BlobRef, IngestOptions, Staged};
use tintype_http::auth::Caller;
use tintype_http::extract::{media_type, multipart, Params};
use tintype_http::limits::{read_text_field, ReadError};
use tintype_http::serve::{serve_blob, Caching};
use tintype_http::AppState;

/// Largest text field of an upload form.
const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Most parts in one upload form.
const MAX_PARTS: usize = 64;
/// Form fields that are never copied onto an image entry.
const NOT_COPIED: [&str; 10] = [
    "filename", "name", "content", "id", "_id", "index", "apikey", "url", "image", FILE_FIELD,
];

fn no_doc() -> PopitError {
    PopitError::bad_request("No doc found")
}

fn no_image_sent() -> PopitError {
    PopitError::bad_request("No image sent")
}

/// Where the file of an upload goes.
enum Target {
    /// A new tintype image owned by `owner`.
    New {
        owner: UserId,
        metadata: Map<String, Value>,
    },
    /// Over the bytes of this existing image (same id).
    Replace(String),
}

/// The file of an upload once stored.
struct Stored {
    image: Image,
    /// Whether a new image was made (to delete it if the request fails).
    created: bool,
}

/// An upload form, its file already stored.
struct Upload {
    file: Option<Stored>,
    fields: Map<String, Value>,
    index: Option<String>,
}

fn upload_error(e: CoreError, received: u64, mime: &str) -> PopitError {
    match e {
        CoreError::Invalid(_) | CoreError::Refused(Refusal::Empty | Refusal::BodyUnreadable(_))
            if received == 0 =>
        {
            no_image_sent()
        }
        CoreError::Refused(r) if r.code() == "unsupported_media" => PopitError::bad_request(
            format!("The uploaded image was of non-permitted type: {mime}"),
        ),
        CoreError::TooLarge { limit } => PopitError::Status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The uploaded image is larger than {limit} bytes"),
        ),
        CoreError::Refused(r) if r.code() == "rejected" => {
            PopitError::bad_request(format!("The uploaded image was rejected: {r}"))
        }
        other => other.into(),
    }
}

async fn field_text(mut f: Field<'_>) -> PopitResult<String> {
    read_text_field(&mut f, MAX_FIELD_BYTES)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { limit } => PopitError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a form field is larger than {limit} bytes"),
            ),
            ReadError::Malformed(m) => {
                PopitError::bad_request(format!("invalid multipart body: {m}"))
            }
        })
}

/// The file part of a form, staged (nothing stored yet).
struct StagedFile {
    staged: Staged,
    name: Option<String>,
}

async fn stage_file(st: &AppState, field: Field<'_>) -> PopitResult<StagedFile> {
    let mime = field
        .content_type()
        .unwrap_or("application/octet-stream")
        .to_string();
    let name = field.file_name().map(str::to_string);
    let received = AtomicU64::new(0);
    let body = field.inspect(|c| {
        if let Ok(b) = c {
            received.fetch_add(b.len() as u64, Ordering::Relaxed);
        }
    });
    match st.engine.stage_body(body, &Accept::Pictures, None).await {
        Ok(staged) => Ok(StagedFile { staged, name }),
        Err(e) => Err(upload_error(e, received.load(Ordering::Relaxed), &mime)),
    }
}

/// Stores a staged file where the upload goes.
async fn store_file(st: &AppState, file: StagedFile, target: &Target) -> PopitResult<Stored> {
    let result = match target {
        Target::New { owner, metadata } => {
            let mut opts = IngestOptions::new(*owner);
            opts.accept = Accept::Pictures;
            opts.name = file.name;
            opts.metadata = metadata.clone();
            st.engine
                .commit(file.staged, opts)
                .await
                .map(|image| Stored {
                    image,
                    created: true,
                })
        }
        Target::Replace(id) => st
            .engine
            .replace_with(id, file.staged)
            .await
            .map(|image| Stored {
                image,
                created: false,
            }),
    };
    // The bytes were checked while staging: what fails now (quota, space,
    // storage) is no refusal of the file.
    result.map_err(PopitError::from)
}

async fn read_form(
    mp: &mut Multipart,
    st: &AppState,
    file: &mut Option<StagedFile>,
    up: &mut Upload,
) -> PopitResult<()> {
    let mut parts = 0usize;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => {
                return Err(PopitError::bad_request(format!(
                    "invalid multipart body: {}",
                    e.body_text()
                )))
            }
        };
        parts += 1;
        if parts > MAX_PARTS {
            return Err(PopitError::bad_request(format!(
                "the form has more than {MAX_PARTS} parts"
            )));
        }
        let name = field.name().unwrap_or("").to_string();
        if name == "image" {
            if file.is_some() {
                return Err(PopitError::bad_request("only one image may be sent"));
            }
            *file = Some(stage_file(st, field).await?);
        } else if name == "index" {
            up.index = Some(field_text(field).await?);
        } else if NOT_COPIED.contains(&name.as_str()) || name.is_empty() {
            field_text(field).await?;
        } else {
            let v = field_text(field).await?;
            up.fields.insert(name, Value::String(v));
        }
    }
}

/// Reads an upload form, staging its `image` part as it streams past,
/// and stores the file once the whole form is read. On error nothing new
/// is left behind.
async fn read_upload(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    target: Target,
) -> PopitResult<Upload> {
    if !media_type(headers).starts_with("multipart/form-data") {
        return Err(no_image_sent());
    }
    let mut mp = multipart(headers, body)
        .await
        .map_err(|_| no_image_sent())?;
    let mut up = Upload {
        file: None,
        fields: Map::new(),
        index: None,
    };
    let mut file = None;
    read_form(&mut mp, st, &mut file, &mut up).await?;
    if let Some(f) = file {
        up.file = Some(store_file(st, f, &target).await?);
    }
    Ok(up)
}

/// Deletes the image an upload made, when the request fails after it.
async fn discard(st: &AppState, up: &Upload) {
    if let Some(f) = &up.file {
        if f.created {
            release(st, std::slice::from_ref(&f.image.id)).await;
        }
    }
}

/// Where `index` puts an entry in a list of `len` entries.
fn position(index: Option<&str>, len: usize) -> PopitResult<usize> {
    match index.map(str::trim) {
        None | Some("") | Some("last") => Ok(len),
        Some("first") => Ok(0),
        Some(n) => n
            .parse::<i64>()
            .map(|i| i.clamp(0, len as i64) as usize)
            .map_err(|_| PopitError::bad_request("index must be 'first', 'last' or a number")),
    }
}

fn iso_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn set_images(doc: &mut Map<String, Value>, images: Vec<Value>) {
    if images.is_empty() {
        doc.insert("image".into(), Value::Null);
    }
    doc.insert("images".into(), Value::Array(images));
}

/// POST `/api/v0.1/{collection}/{id}/image`
pub async fn upload(
    State(st): State<AppState>,
    Path((coll, id)): Path<(String, String)>,
    caller: Caller<Popit>,
    query: Params,
    headers: HeaderMap,
    body: Body,
) -> PopitResult<Response> {
    let coll = collection(&coll)?;
    let p = caller.require(Scope::ImageWrite)?;
    let stored = load(&st, coll, &id).await?.ok_or_else(no_doc)?;
    may_change(&p, &stored.record)?;
    let mut metadata = Map::new();
    metadata.insert("popit".into(), json!({"collection": coll, "document": id}));
    let up = read_upload(
        &st,
        &headers,
        body,
        Target::New {
            owner: p.user.id,
            metadata,
        },
    )
    .await?;
    let result = attach(&st, coll, &id, &p, &up).await;
    if result.is_err() {
        discard(&st, &up).await;
    }
    let doc = result?;
    Ok(respond(&st, coll, &doc, &query))
}

async fn attach(
    st: &AppState,
    coll: &str,
    id: &str,
    who: &Principal,
    up: &Upload,
) -> PopitResult<Map<String, Value>> {
    let file = up.file.as_ref().ok_or_else(no_image_sent)?;
    let entry_id = wire::new_id();
    let created = iso_now();
    update(st, coll, id, who, |mut doc| {
        let mut images = images_of(&doc);
        let at = position(up.index.as_deref(), images.len())?;
        let mut entry = Map::new();
        entry.insert("_id".into(), Value::String(entry_id.clone()));
        entry.insert("created".into(), Value::String(created.clone()));
        entry.insert(
            "mime_type".into(),
            Value::String(file.image.content.content_type.clone()),
        );
        for (k, v) in &up.fields {
            entry.insert(k.clone(), v.clone());
        }
        entry.insert(FILE_FIELD.into(), Value::String(file.image.id.clone()));
        images.insert(at, Value::Object(entry));
        set_images(&mut doc, images);
        Ok((doc, Vec::new()))
    })
    .await?
    .ok_or_else(no_doc)
}

/// PUT `/api/v0.1/{collection}/{id}/image/{image_id}`
pub async fn replace(
    State(st): State<AppState>,
    Path((coll, id, image_id)): Path<(String, String, String)>,
    caller: Caller<Popit>,
    query: Params,
    headers: HeaderMap,
    body: Body,
) -> PopitResult<Response> {
    let coll = collection(&coll)?;
    let p = caller.require(Scope::ImageWrite)?;
    let stored = load(&st, coll, &id).await?.ok_or_else(no_doc)?;
    may_change(&p, &stored.record)?;
    let images = images_of(&stored.doc);
    if images.is_empty() {
        return Err(PopitError::bad_request("Doc has no images"));
    }
    let entry = images
        .iter()
        .find(|e| entry_id(e) == Some(image_id.as_str()))
        .ok_or_else(|| PopitError::bad_request("No image with that id found"))?;
    // Replace the bytes in place when the entry has a file that still
    // exists; otherwise the new file is a new image.
    let existing = match entry_file(entry) {
        Some(f) => st.engine.image(f).await.ok().map(|i| i.id),
        None => None,
    };
    let target = match existing {
        Some(f) => Target::Replace(f),
        None => {
            let mut metadata = Map::new();
            metadata.insert("popit".into(), json!({"collection": coll, "document": id}));
            Target::New {
                owner: p.user.id,
                metadata,
            }
        }
    };
    let up = read_upload(&st, &headers, body, target).await?;
    let result = update_entry(&st, coll, &id, &p, &image_id, &up).await;
    if result.is_err() {
        discard(&st, &up).await;
    }
    Ok(respond(&st, coll, &result?, &query))
}

async fn update_entry(
    st: &AppState,
    coll: &str,
    id: &str,
    who: &Principal,
    image_id: &str,
    up: &Upload,
) -> PopitResult<Map<String, Value>> {
    if up.file.is_none() && up.fields.is_empty() && up.index.is_none() {
        return Err(no_image_sent());
    }
    update(st, coll, id, who, |doc| edit_entry(doc, image_id, up))
        .await?
        .ok_or_else(no_doc)
}

/// The document with one image entry changed by an upload, and the files
/// the change leaves unreferenced.
fn edit_entry(
    doc: Map<String, Value>,
    image_id: &str,
    up: &Upload,
) -> PopitResult<(Map<String, Value>, Vec<String>)> {
    let mut images = images_of(&doc);
    let at = images
        .iter()
        .position(|e| entry_id(e) == Some(image_id))
        .ok_or_else(|| PopitError::bad_request("No image with that id found"))?;
    let mut entry = match images.remove(at) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut released = Vec::new();
    if let Some(file) = &up.file {
        if let Some(Value::String(old)) = entry.get(FILE_FIELD) {
            if *old != file.image.id {
                released.push(old.clone());
            }
        }
        entry.remove("url");
        entry.insert(
            "mime_type".into(),
            Value::String(file.image.content.content_type.clone()),
        );
        if !entry.contains_key("created") {
            entry.insert("created".into(), Value::String(iso_now()));
        }
        entry.insert(FILE_FIELD.into(), Value::String(file.image.id.clone()));
    }
    for (k, v) in &up.fields {
        entry.insert(k.clone(), v.clone());
    }
    entry.insert("_id".into(), Value::String(image_id.to_string()));
    let to = match &up.index {
        Some(_) => position(up.index.as_deref(), images.len())?,
        None => at,
    };
    images.insert(to, Value::Object(entry));
    let mut doc = doc;
    set_images(&mut doc, images);
    Ok((doc, released))
}

/// DELETE `/api/v0.1/{collection}/{id}/image/{image_id}`
pub async fn remove_one(
    State(st): State<AppState>,
    Path((coll, id, image_id)): Path<(String, String, String)>,
    query: Params,
    Deleter(p): Deleter,
) -> PopitResult<Response> {
    let coll = collection(&coll)?;
    let doc = update(&st, coll, &id, &p, |mut doc| {
        let mut images = images_of(&doc);
        if images.is_empty() {
            return Err(PopitError::bad_request("Doc has no images"));
        }
        let at = images
            .iter()
            .position(|e| entry_id(e) == Some(image_id.as_str()))
            .ok_or_else(|| PopitError::bad_request("No image with that id found"))?;
        let gone = images.remove(at);
        set_images(&mut doc, images);
        Ok((
            doc,
            entry_file(&gone).map(str::to_string).into_iter().collect(),
        ))
    })
    .await?;
    Ok(deleted(&st, coll, doc.as_ref(), &query))
}

/// The answer to a delete: the document as it is now, or 204 when it is
/// gone.
fn deleted(
    st: &AppState,
    coll: &str,
    doc: Option<&Map<String, Value>>,
    query: &Params,
) -> Response {
    match doc {
        Some(doc) => respond(st, coll, doc, query),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// DELETE `/api/v0.1/{collection}/{id}/image`
pub async fn remove_all(
    State(st): State<AppState>,
    Path((coll, id)): Path<(String, String)>,
    query: Params,
    Deleter(p): Deleter,
) -> PopitResult<Response> {
    let coll = collection(&coll)?;
    let doc = update(&st, coll, &id, &p, |mut doc| {
        let files = wire::files_of(&doc);
        set_images(&mut doc, Vec::new());
        Ok((doc, files))
    })
    .await?;
    Ok(deleted(&st, coll, doc.as_ref(), &query))
}

/// GET `/{collection}/{id}/image/{image_id}`: the uploaded bytes, public.
pub async fn serve(
    coll: &'static str,
    st: AppState,
    id: String,
    image_id: String,
    headers: HeaderMap,
) -> PopitResult<Response> {
    let not_found = || PopitError::not_found("image not found");
    let stored = load(&st, coll, &id).await?.ok_or_else(not_found)?;
    let images = images_of(&stored.doc);
    let file = images
        .iter()
        .find(|e| entry_id(e) == Some(image_id.as_str()))
        .and_then(entry_file)
        .ok_or_else(not_found)?;
    let image = match st.engine.image(file).await {
        Ok(i) => i,
        Err(CoreError::NotFound) => return Err(not_found()),
        Err(e) => return Err(e.into()),
    };
    Ok(serve_blob(
        &st,
        &headers,
        &BlobRef::of_image(&image),
        Caching::Public,
        None,
    )
    .await)
}
