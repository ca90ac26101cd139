//! Reading photos: the list, one photo, its bytes, and its versions.

use crate::error::FulcrumError;
use crate::wire::{self, record_key, SCOPE};
use crate::{valid_access_key, Fulcrum};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use tintype_engine::core::{
    Image, Principal, Record, RecordFilter, RecordOrder, RecordQuery, Scope, UserId,
};
use tintype_engine::BlobRef;
use tintype_http::auth::Caller;
use tintype_http::extract::Params;
use tintype_http::serve::{serve_blob, Caching};
use tintype_http::AppState;

/// Default and largest page size of the list.
pub const MAX_PER_PAGE: i64 = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suffix {
    Json,
    Jpg,
}

/// `name.json` / `name.jpg` / `name` -> the name and what is asked for.
fn split_suffix(segment: &str) -> (&str, Suffix) {
    if let Some(name) = segment.strip_suffix(".json") {
        (name, Suffix::Json)
    } else if let Some(name) = segment.strip_suffix(".jpg") {
        (name, Suffix::Jpg)
    } else {
        (segment, Suffix::Json)
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
struct ListQuery {
    record_id: Option<String>,
    form_id: Option<String>,
    processed: Option<bool>,
    stored: Option<bool>,
    uploaded: Option<bool>,
    newest_first: bool,
    page: i64,
    per_page: i64,
}

fn parse_bool(name: &str, v: &str) -> Result<bool, FulcrumError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "1" | "yes" => Ok(true),
        "false" | "f" | "0" | "no" => Ok(false),
        _ => Err(FulcrumError::BadRequest(format!(
            "{name} must be true or false"
        ))),
    }
}

fn parse_count(name: &str, v: &str, max: i64) -> Result<i64, FulcrumError> {
    match v.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n.min(max)),
        _ => Err(FulcrumError::BadRequest(format!(
            "{name} must be a positive integer"
        ))),
    }
}

fn parse_list_query(query: &Params) -> Result<ListQuery, FulcrumError> {
    let mut q = ListQuery {
        page: 1,
        per_page: MAX_PER_PAGE,
        ..ListQuery::default()
    };
    let non_empty = |v: &str| Some(v.to_string()).filter(|s| !s.is_empty());
    for (k, v) in query.pairs() {
        let v = v.as_str();
        match k.as_str() {
            "record_id" => q.record_id = non_empty(v),
            "form_id" => q.form_id = non_empty(v),
            "processed" => q.processed = Some(parse_bool("processed", v)?),
            "stored" => q.stored = Some(parse_bool("stored", v)?),
            "uploaded" => q.uploaded = Some(parse_bool("uploaded", v)?),
            "newest_first" => q.newest_first = v.is_empty() || parse_bool("newest_first", v)?,
            "page" => q.page = parse_count("page", v, 1_000_000)?,
            "per_page" => q.per_page = parse_count("per_page", v, MAX_PER_PAGE)?,
            _ => {}
        }
    }
    Ok(q)
}

impl ListQuery {
    fn filtered(&self) -> bool {
        self.record_id.is_some()
            || self.form_id.is_some()
            || self.processed.is_some()
            || self.stored.is_some()
            || self.uploaded.is_some()
    }

    /// The catalog filter: the record's typed keys hold its record and
    /// form ids (`skey`, `skey2`); `processed` looks at the image. A visible
    /// photo is always uploaded and stored (see wire::photo), so asking
    /// for one that is not selects nothing.
    fn filter(&self, owner: UserId) -> Option<RecordFilter> {
        if self.stored == Some(false) || self.uploaded == Some(false) {
            return None;
        }
        Some(RecordFilter {
            scope: SCOPE.into(),
            owner: Some(owner),
            skey: self.record_id.clone(),
            skey2: self.form_id.clone(),
            image_processed: self.processed,
            with_image: true,
            ..RecordFilter::default()
        })
    }
}

/// The image behind a record; `None` when it was deleted meanwhile.
async fn image_of(state: &AppState, record: &Record) -> Result<Option<Image>, FulcrumError> {
    let Some(id) = record.image_id.as_deref() else {
        return Ok(None);
    };
    match state.engine.image(id).await {
        Ok(i) => Ok(Some(i)),
        Err(tintype_engine::core::CoreError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `GET /api/v2/photos(.json)`
pub async fn list(
    State(state): State<AppState>,
    caller: Caller<Fulcrum>,
    query: Params,
) -> Result<Response, FulcrumError> {
    let who = caller.require(Scope::ImageRead)?;
    let q = parse_list_query(&query)?;
    let skip = (q.page - 1).saturating_mul(q.per_page);
    let order = if q.newest_first {
        RecordOrder::SeqDesc
    } else {
        RecordOrder::SeqAsc
    };
    let filter = if q.filtered() {
        q.filter(who.user.id)
    } else {
        Some(RecordFilter {
            scope: SCOPE.into(),
            owner: Some(who.user.id),
            ..RecordFilter::default()
        })
    };
    let mut photos = Vec::new();
    let mut total: i64 = 0;
    if let Some(filter) = filter {
        total = state.engine.count_matching(&filter).await?;
        if skip < total {
            let rows = state
                .engine
                .query_records(&RecordQuery {
                    filter,
                    order,
                    after: None,
                    offset: skip,
                    limit: q.per_page,
                })
                .await?;
            for row in rows {
                if let Some(image) = &row.image {
                    photos.push(wire::photo(&state, &row.record, image));
                }
            }
        }
    }
    let total_pages = (total + q.per_page - 1) / q.per_page;
    Ok(Json(json!({
        "photos": photos,
        "current_page": q.page,
        "total_pages": total_pages,
        "total_count": total,
        "per_page": q.per_page,
    }))
    .into_response())
}

/// The caller's photo with this access key, or 404.
async fn find(
    state: &AppState,
    who: &Principal,
    access_key: &str,
) -> Result<(Record, Image), FulcrumError> {
    if !valid_access_key(access_key) {
        return Err(FulcrumError::NotFound);
    }
    let record = state
        .engine
        .record(SCOPE, &record_key(who.user.id, access_key))
        .await?
        .ok_or(FulcrumError::NotFound)?;
    let image = image_of(state, &record)
        .await?
        .ok_or(FulcrumError::NotFound)?;
    Ok((record, image))
}

/// `GET /api/v2/photos/{key}(.json|.jpg)`
pub async fn show(
    State(state): State<AppState>,
    caller: Caller<Fulcrum>,
    headers: HeaderMap,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, FulcrumError> {
    let who = caller.require(Scope::ImageRead)?;
    let Ok(Path(segment)) = path else {
        return Err(FulcrumError::NotFound);
    };
    let (key, suffix) = split_suffix(&segment);
    let (record, image) = find(&state, &who, key).await?;
    Ok(match suffix {
        Suffix::Json => photo_response(&state, &record, &image),
        Suffix::Jpg => {
            serve_blob(
                &state,
                &headers,
                &BlobRef::of_image(&image),
                Caching::Private,
                None,
            )
            .await
        }
    })
}

/// `GET /api/v2/photos/{key}/{thumbnail|large}(.json|.jpg)`
pub async fn show_version(
    State(state): State<AppState>,
    caller: Caller<Fulcrum>,
    headers: HeaderMap,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Response, FulcrumError> {
    let who = caller.require(Scope::ImageRead)?;
    let Ok(Path((key, segment))) = path else {
        return Err(FulcrumError::NotFound);
    };
    let (version, suffix) = split_suffix(&segment);
    let preset = wire::preset_of(version).ok_or(FulcrumError::NotFound)?;
    let (_record, image) = find(&state, &who, &key).await?;
    // Versions exist once processing made them; they are not rendered on
    // request here.
    let variant = state
        .engine
        .variants(&image.id)
        .await?
        .into_iter()
        .find(|v| v.preset == preset)
        .ok_or(FulcrumError::NotFound)?;
    Ok(match suffix {
        Suffix::Json => Json(wire::version(&state, &key, version, &variant)).into_response(),
        Suffix::Jpg => {
            let blob = BlobRef::of_variant(&variant);
            serve_blob(&state, &headers, &blob, Caching::Private, None).await
        }
    })
}

/// `{"photo": …}`: the answer of `show` and of the upload.
pub fn photo_response(state: &AppState, record: &Record, image: &Image) -> Response {
    Json(json!({ "photo": wire::photo(state, record, image) })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(raw: Option<&str>) -> Result<ListQuery, FulcrumError> {
        parse_list_query(&Params::parse(raw))
    }

    #[test]
    fn suffixes_split() {
        assert_eq!(split_suffix("abc.json"), ("abc", Suffix::Json));
        assert_eq!(split_suffix("abc.jpg"), ("abc", Suffix::Jpg));
        assert_eq!(split_suffix("abc"), ("abc", Suffix::Json));
        assert_eq!(split_suffix("thumbnail.jpg"), ("thumbnail", Suffix::Jpg));
    }

    #[test]
    fn list_query_defaults_and_limits() {
        let q = parse_list_query(&Params::parse(None)).unwrap();
        assert_eq!((q.page, q.per_page, q.newest_first), (1, 20_000, false));
        let q = query(Some(
            "record_id=r1&processed=false&per_page=50000&page=3&newest_first=true",
        ))
        .unwrap();
        assert_eq!(q.record_id.as_deref(), Some("r1"));
        assert_eq!(q.processed, Some(false));
        assert_eq!((q.page, q.per_page, q.newest_first), (3, 20_000, true));
        assert!(q.filtered());
        assert!(query(Some("processed=maybe")).is_err());
        assert!(query(Some("page=0")).is_err());
        assert!(query(Some("per_page=x")).is_err());
    }
}
