//! `POST /api/v2/photos(.json)`: a multipart upload of one photo.
//!
//! The fields may come in any order, so the file is ingested as it streams
//! by and the form is judged once the body is read. Every failed check is
//! reported at once (422); if any fails, or the request breaks off, the
//! image already ingested is deleted again, so no half photo is left.

use crate::error::{FieldErrors, FulcrumError};
use crate::photos::photo_response;
use crate::wire::{record_key, PhotoData, SCOPE};
use crate::{valid_access_key, Fulcrum, MAX_ID_LEN};
use axum::body::Body;
use axum::extract::{Multipart, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Map;
use tintype_engine::core::{CoreError, Image, NewRecord, Principal, Refusal, Scope};
use tintype_engine::{Accept, IngestOptions, Staged};
use tintype_http::auth::Caller;
use tintype_http::extract::{media_type, multipart};
use tintype_http::limits::{read_field_bytes, ReadError};
use tintype_http::AppState;

/// Most parts a form may have.
const MAX_PARTS: usize = 32;
/// Longest file name kept as the image's name.
const MAX_NAME_CHARS: usize = 255;

#[derive(Default)]
struct Form {
    access_key: Option<String>,
    record_id: Option<String>,
    form_id: Option<String>,
    /// The staged file with its options, until the photo is committed
    /// (dropped with the form otherwise: nothing is stored).
    file: Option<(Staged, IngestOptions)>,
    errors: FieldErrors,
}

enum Text {
    Value(String),
    TooLong,
    NotUtf8,
}

/// Largest text field read at all; past it the request is refused (413).
/// Fields over `MAX_ID_LEN` but within it are validation errors.
const MAX_FIELD_BYTES: usize = 64 * 1024;

async fn read_text(
    field: &mut axum::extract::multipart::Field<'_>,
    label: &'static str,
) -> Result<Text, FulcrumError> {
    let buf = match read_field_bytes(field, MAX_FIELD_BYTES).await {
        Ok(b) => b,
        Err(ReadError::TooLarge { limit }) => {
            return Err(FulcrumError::FieldTooLarge(label, limit as u64))
        }
        Err(ReadError::Malformed(m)) => {
            return Err(FulcrumError::BadRequest(format!(
                "the form cannot be read: {m}"
            )))
        }
    };
    if buf.len() > MAX_ID_LEN {
        return Ok(Text::TooLong);
    }
    Ok(match String::from_utf8(buf) {
        Ok(s) => Text::Value(s.trim().to_string()),
        Err(_) => Text::NotUtf8,
    })
}

/// The last path component of an uploaded file's name, shortened.
fn clean_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).trim();
    let short: String = base.chars().take(MAX_NAME_CHARS).collect();
    Some(short).filter(|s| !s.is_empty())
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller<Fulcrum>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, FulcrumError> {
    let who = caller.require(Scope::ImageWrite)?;
    let mut form = Form::default();
    // A body that is not a form carries neither field: the validation
    // below says so.
    if media_type(&headers).starts_with("multipart/form-data") {
        let mut multipart = multipart(&headers, body)
            .await
            .map_err(|e| FulcrumError::BadRequest(format!("the form cannot be read: {e}")))?;
        read_form(&state, &who, &mut multipart, &mut form).await?;
    }
    commit(&state, &who, form).await
}

async fn read_form(
    state: &AppState,
    who: &Principal,
    multipart: &mut Multipart,
    form: &mut Form,
) -> Result<(), FulcrumError> {
    let mut parts = 0usize;
    loop {
        let mut field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            // A form without a single part (some clients send only the
            // closing boundary) carries neither field: validation says so.
            Err(_) if parts == 0 => break,
            Err(e) => {
                return Err(FulcrumError::BadRequest(format!(
                    "the form cannot be read: {e}"
                )))
            }
        };
        parts += 1;
        if parts > MAX_PARTS {
            return Err(FulcrumError::BadRequest(format!(
                "the form has more than {MAX_PARTS} parts"
            )));
        }
        let name = field.name().unwrap_or_default().to_string();
        let (slot, label) = match name.as_str() {
            "photo[file]" => {
                if form.file.is_some() || form.errors.has("file") {
                    continue; // only the first file counts
                }
                stage_file(state, who, field, form).await?;
                continue;
            }
            "photo[access_key]" => (&mut form.access_key, "access_key"),
            "photo[record_id]" => (&mut form.record_id, "record_id"),
            "photo[form_id]" => (&mut form.form_id, "form_id"),
            _ => continue,
        };
        match read_text(&mut field, label).await? {
            Text::Value(v) => *slot = Some(v).filter(|s| !s.is_empty()),
            Text::TooLong => form.errors.add(
                label,
                format!("is too long (maximum is {MAX_ID_LEN} characters)"),
            ),
            Text::NotUtf8 => form.errors.add(label, "is invalid"),
        }
    }
    Ok(())
}

async fn stage_file(
    state: &AppState,
    who: &Principal,
    field: axum::extract::multipart::Field<'_>,
    form: &mut Form,
) -> Result<(), FulcrumError> {
    let opts = IngestOptions {
        owner: who.user.id,
        name: field.file_name().and_then(clean_name),
        metadata: Map::new(),
        // Phones' photos too: HEIC and AVIF (their versions are JPEG).
        accept: Accept::photos(),
        max_bytes: None,
    };
    match state.engine.stage(field, &opts).await {
        Ok(staged) => form.file = Some((staged, opts)),
        Err(CoreError::Refused(r)) => match r {
            Refusal::Empty => form.errors.add("file", "must be provided"),
            Refusal::TooManyPixels(m) => {
                tracing::debug!("fulcrum: upload rejected: {m}");
                form.errors.add("file", "is too large")
            }
            r if r.code() == "unsupported_media" => form.errors.add("file", "is not an image"),
            other => return Err(FulcrumError::BadRequest(other.to_string())),
        },
        Err(CoreError::Invalid(m)) => return Err(FulcrumError::BadRequest(m)),
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Judges the form; when it is valid, commits the image and ties it to
/// its access key.
async fn commit(state: &AppState, who: &Principal, form: Form) -> Result<Response, FulcrumError> {
    let mut errors = form.errors;
    let key = match form.access_key.as_deref() {
        None => {
            errors.add("access_key", "must be provided");
            None
        }
        Some(k) if !valid_access_key(k) => {
            errors.add("access_key", "is invalid");
            None
        }
        Some(k) => Some(k.to_string()),
    };
    if form.file.is_none() && !errors.has("file") {
        errors.add("file", "must be provided");
    }
    if let Some(k) = &key {
        if state
            .engine
            .record(SCOPE, &record_key(who.user.id, k))
            .await?
            .is_some()
        {
            errors.add("access_key", "has already been taken");
        }
    }
    let (Some(key), Some((staged, opts)), true) = (key, form.file, errors.is_empty()) else {
        return Err(FulcrumError::Validation(errors));
    };
    let data = PhotoData {
        access_key: key.clone(),
        record_id: form.record_id,
        form_id: form.form_id,
        created_by_id: who.user.id.to_string(),
        created_by: who.user.name.clone(),
    };
    let (image, record) = state
        .engine
        .commit_then(staged, opts, async |image: &Image| {
            let inserted = state
                .engine
                .insert_record(&NewRecord {
                    scope: SCOPE.to_string(),
                    key: record_key(who.user.id, &key),
                    owner_id: Some(who.user.id),
                    image_id: Some(image.id.clone()),
                    data: data.to_json(),
                    skey: data.record_id.clone(),
                    skey2: data.form_id.clone(),
                    ..NewRecord::default()
                })
                .await?;
            // Another upload may have taken the key since the check.
            inserted.map_err(|_already| {
                errors.add("access_key", "has already been taken");
                FulcrumError::Validation(std::mem::take(&mut errors))
            })
        })
        .await?;
    Ok(photo_response(state, &record, &image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_their_directories() {
        assert_eq!(clean_name("C:\\x\\photo.jpg").as_deref(), Some("photo.jpg"));
        assert_eq!(clean_name("/tmp/a.jpg").as_deref(), Some("a.jpg"));
        assert_eq!(clean_name("  "), None);
        assert_eq!(
            clean_name(&"é".repeat(300)).map(|s| s.chars().count()),
            Some(255)
        );
    }
}
