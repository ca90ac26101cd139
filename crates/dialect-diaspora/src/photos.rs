//! The photo endpoints: list, show, upload, delete, and the public size
//! URLs the photo JSON points at.

use crate::error::{ApiError, ApiResult};
use crate::wire::{is_guid, parse_bool, parse_time, photo_json, SIZES};
use crate::{PENDING_SCOPE, PHOTO_SCOPE};
use axum::body::Body;
use axum::extract::multipart::Field;
use axum::extract::{FromRequestParts, Multipart, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use tintype_engine::core::{
    to_millis, Image, ImageKind, NewRecord, Principal, RecordCursor, RecordFilter, RecordOrder,
    RecordQuery, Scope, UserId,
};
use tintype_engine::{Accept, BlobRef, IngestOptions, Staged};
use tintype_http::auth::{Caller, CallerRules, TokenSource};
use tintype_http::extract::{media_type, multipart, Params};
use tintype_http::limits::{read_text_field, ReadError};
use tintype_http::serve::{serve_blob, Caching};
use tintype_http::wire::set_links;
use tintype_http::AppState;

/// Where diaspora clients put their token.
const DEFAULT_PER_PAGE: i64 = 15;
const MAX_PER_PAGE: i64 = 100;
/// Longest accepted value of a form field other than the file.
const MAX_FIELD_BYTES: usize = 1024;

/// Path parameters whose rejection answers in diaspora's envelope (as a
/// 404: a path that cannot be decoded names no photo).
pub(crate) struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    Path<T>: FromRequestParts<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(PathParams(v)),
            Err(_) => Err(ApiError::NotFound),
        }
    }
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::Status(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed".into())
}

/// diaspora*'s callers: an OAuth Bearer token or `?access_token=`;
/// refusals in its OAuth error bodies.
pub(crate) struct Diaspora;

impl CallerRules for Diaspora {
    const SOURCES: &'static [TokenSource] = &[TokenSource::Bearer, TokenSource::QueryAccessToken];
    type Rejection = ApiError;

    fn missing() -> ApiError {
        ApiError::InvalidToken
    }

    fn lacks(_: &[Scope]) -> ApiError {
        ApiError::InsufficientScope
    }
}

/// The caller's photo with this guid: one of their images that was
/// uploaded as a diaspora photo. Anything else is "not found".
async fn own_photo(st: &AppState, p: &Principal, guid: &str) -> ApiResult<Image> {
    if !is_guid(guid) {
        return Err(ApiError::NotFound);
    }
    let image = st.engine.owned_image(p, guid).await?;
    if st.engine.record(PHOTO_SCOPE, guid).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    Ok(image)
}

// ---- GET /api/v1/photos -------------------------------------------------

/// A position in the newest-first order of a user's images: (created_at in
/// milliseconds, seq). `seq` breaks ties between photos created in the
/// same millisecond.
type Position = (i64, i64);

#[derive(Debug, PartialEq)]
enum Window {
    Newest,
    /// Strictly older than the position.
    Before(Position),
    /// Strictly newer than the position (the page closest to it).
    After(Position),
}

fn parse_list_query(query: &Params) -> ApiResult<(i64, Window)> {
    let mut per_page = DEFAULT_PER_PAGE;
    let (mut before, mut after, mut seq) = (None, None, None);
    for (k, v) in query.pairs() {
        match k.as_str() {
            "per_page" => {
                let n: i64 = v
                    .trim()
                    .parse()
                    .map_err(|_| ApiError::bad_request("per_page must be a positive integer"))?;
                if n < 1 {
                    return Err(ApiError::bad_request("per_page must be a positive integer"));
                }
                per_page = n.min(MAX_PER_PAGE);
            }
            "before" => {
                before = Some(
                    parse_time(v)
                        .ok_or_else(|| ApiError::bad_request("before must be an ISO 8601 time"))?,
                )
            }
            "after" => {
                after = Some(
                    parse_time(v)
                        .ok_or_else(|| ApiError::bad_request("after must be an ISO 8601 time"))?,
                )
            }
            "seq" => {
                seq = Some(
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| ApiError::bad_request("seq must be an integer"))?,
                )
            }
            _ => {}
        }
    }
    let window = match (before, after) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "give either before or after, not both",
            ))
        }
        // Without a tie-breaker, `before=T` means strictly before T and
        // `after=T` strictly after T.
        (Some(t), None) => Window::Before((t, seq.unwrap_or(0))),
        (None, Some(t)) => Window::After((t, seq.unwrap_or(i64::MAX))),
        (None, None) => Window::Newest,
    };
    Ok((per_page, window))
}

/// The catalog's page of the owner's photos after `from` in `order`:
/// the photo records carry their image's position (`sort_at` = created_at
/// in ms, `ref_id` = seq), so the page comes from one index walk.
async fn photo_page(
    st: &AppState,
    owner: UserId,
    order: RecordOrder,
    from: Option<Position>,
    per_page: usize,
) -> ApiResult<Vec<Image>> {
    let rows = st
        .engine
        .query_records(&RecordQuery {
            filter: RecordFilter {
                scope: PHOTO_SCOPE.into(),
                owner: Some(owner),
                with_image: true,
                ..RecordFilter::default()
            },
            order,
            after: from.map(|(ms, seq)| RecordCursor::Sort(ms, seq)),
            offset: 0,
            limit: i64::try_from(per_page).unwrap_or(MAX_PER_PAGE),
        })
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.image)
        .filter(|i| i.content.kind == ImageKind::Picture)
        .collect())
}

/// Up to `per_page` photos, newest first, strictly older than `from`
/// (from the newest when `None`).
async fn photos_before(
    st: &AppState,
    owner: UserId,
    from: Option<Position>,
    per_page: usize,
) -> ApiResult<Vec<Image>> {
    photo_page(st, owner, RecordOrder::SortDesc, from, per_page).await
}

/// Up to `per_page` photos strictly newer than `to`, the ones closest to
/// it, newest first.
async fn photos_after(
    st: &AppState,
    owner: UserId,
    to: Position,
    per_page: usize,
) -> ApiResult<Vec<Image>> {
    let mut page = photo_page(st, owner, RecordOrder::SortAsc, Some(to), per_page).await?;
    page.reverse();
    Ok(page)
}

fn page_link(st: &AppState, per_page: i64, dir: &str, i: &Image) -> String {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("per_page", &per_page.to_string())
        .append_pair(dir, &crate::wire::time(i.created_at))
        .append_pair("seq", &i.seq.to_string())
        .finish();
    st.url(&format!("/api/v1/photos?{q}"))
}

pub(crate) async fn list(
    State(st): State<AppState>,
    caller: Caller<Diaspora>,
    query: Params,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageRead)?;
    let (per_page, window) = parse_list_query(&query)?;
    let n = per_page as usize;
    let photos = match window {
        Window::Newest => photos_before(&st, p.user.id, None, n).await?,
        Window::Before(pos) => photos_before(&st, p.user.id, Some(pos), n).await?,
        Window::After(pos) => photos_after(&st, p.user.id, pos, n).await?,
    };
    let body: Vec<Value> = photos.iter().map(|i| photo_json(&st, i)).collect();
    let mut resp = Json(Value::Array(body)).into_response();
    if let (Some(first), Some(last)) = (photos.first(), photos.last()) {
        let next = page_link(&st, per_page, "before", last);
        let previous = page_link(&st, per_page, "after", first);
        set_links(&mut resp, &[(&next, "next"), (&previous, "previous")]);
    }
    Ok(resp)
}

// ---- GET /api/v1/photos/{guid} ------------------------------------------

pub(crate) async fn show(
    State(st): State<AppState>,
    PathParams(guid): PathParams<String>,
    caller: Caller<Diaspora>,
) -> ApiResult<Json<Value>> {
    let p = caller.require(Scope::ImageRead)?;
    let image = own_photo(&st, &p, &guid).await?;
    Ok(Json(photo_json(&st, &image)))
}

// ---- DELETE /api/v1/photos/{guid} ---------------------------------------

pub(crate) async fn destroy(
    State(st): State<AppState>,
    PathParams(guid): PathParams<String>,
    caller: Caller<Diaspora>,
) -> ApiResult<StatusCode> {
    let p = caller.require(Scope::ImageDelete)?;
    let image = own_photo(&st, &p, &guid).await?;
    // The catalog drops the photo's records and clears the owner's profile
    // picture if it was this photo.
    st.engine.delete_image(&image.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- GET /api/v1/photos/{guid}/sizes/{size} -----------------------------

/// The bytes of one size of a photo. Anonymous, like diaspora's upload
/// URLs: whoever has the URL (it holds the unguessable guid) may fetch it.
pub(crate) async fn size(
    State(st): State<AppState>,
    PathParams((guid, size)): PathParams<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    if !is_guid(&guid) || !SIZES.contains(&size.as_str()) {
        return Err(ApiError::NotFound);
    }
    if st.engine.record(PHOTO_SCOPE, &guid).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let image = st.engine.image(&guid).await?;
    let blob = if size == "raw" {
        BlobRef::of_image(&image)
    } else {
        BlobRef::of_variant(&st.engine.variant(&image, &size).await?)
    };
    Ok(serve_blob(&st, &headers, &blob, Caching::Public, None).await)
}

// ---- POST /api/v1/photos -------------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
struct Flags {
    pending: bool,
    set_profile: bool,
}

fn apply_flag(flags: &mut Flags, name: &str, value: &str) -> ApiResult<()> {
    let target = match name {
        "pending" => &mut flags.pending,
        "set_profile_picture" | "set_profile_photo" => &mut flags.set_profile,
        _ => return Ok(()),
    };
    *target = parse_bool(value)
        .ok_or_else(|| ApiError::bad_request(format!("{name} must be true, false, 1 or 0")))?;
    Ok(())
}

async fn small_text(mut field: Field<'_>) -> ApiResult<String> {
    read_text_field(&mut field, MAX_FIELD_BYTES)
        .await
        .map_err(|e| match e {
            ReadError::TooLarge { limit } => ApiError::Status(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("form fields are limited to {limit} bytes"),
            ),
            ReadError::Malformed(_) => ApiError::CreateFailed,
        })
}

/// Reads every part; the first `image` part is staged as it streams in
/// (nothing is stored until every part is read and valid).
async fn read_parts(
    st: &AppState,
    owner: UserId,
    mut mp: Multipart,
    flags: &mut Flags,
) -> ApiResult<Option<(Staged, IngestOptions)>> {
    let mut staged = None;
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(staged),
            Err(_) => return Err(ApiError::CreateFailed),
        };
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "image" if staged.is_none() => {
                let mut opts = IngestOptions::new(owner);
                opts.accept = Accept::photos();
                opts.name = field
                    .file_name()
                    .map(|n| n.chars().take(255).collect::<String>())
                    .filter(|n| !n.is_empty());
                let s = st
                    .engine
                    .stage(field, &opts)
                    .await
                    .map_err(ApiError::on_create)?;
                staged = Some((s, opts));
            }
            "pending" | "set_profile_picture" | "set_profile_photo" => {
                let v = small_text(field).await?;
                apply_flag(flags, &name, &v)?;
            }
            _ => {
                // Other parts (a second image, aspect ids) are read and dropped.
                let mut f = field;
                while let Ok(Some(_)) = f.chunk().await {}
            }
        }
    }
}

/// Makes a stored image a diaspora photo of `p`.
async fn register(st: &AppState, p: &Principal, image: &Image, flags: Flags) -> ApiResult<()> {
    let photo = NewRecord {
        scope: PHOTO_SCOPE.into(),
        key: image.id.clone(),
        owner_id: Some(p.user.id),
        image_id: Some(image.id.clone()),
        data: json!({"pending": flags.pending}),
        sort_at: Some(to_millis(image.created_at)),
        ref_id: Some(image.seq),
        ..NewRecord::default()
    };
    if st.engine.insert_record(&photo).await?.is_err() {
        return Err(ApiError::Internal(format!(
            "photo {} recorded twice",
            image.id
        )));
    }
    if flags.pending {
        let pending = NewRecord {
            scope: PENDING_SCOPE.into(),
            key: image.id.clone(),
            owner_id: Some(p.user.id),
            image_id: Some(image.id.clone()),
            data: json!({}),
            ..NewRecord::default()
        };
        st.engine.put_record(&pending).await?;
    }
    if flags.set_profile {
        st.engine
            .set_profile_image(p.user.id, Some(&image.id))
            .await?;
    }
    Ok(())
}

pub(crate) async fn create(
    State(st): State<AppState>,
    caller: Caller<Diaspora>,
    query: Params,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let p = caller.require(Scope::ImageWrite)?;
    let mut flags = Flags::default();
    for (k, v) in query.pairs() {
        apply_flag(&mut flags, k, v)?;
    }
    if !media_type(&headers).starts_with("multipart/form-data") {
        return Err(ApiError::CreateFailed);
    }
    let mp = multipart(&headers, body)
        .await
        .map_err(|_| ApiError::CreateFailed)?;
    let staged = read_parts(&st, p.user.id, mp, &mut flags).await?;
    let Some((staged, opts)) = staged else {
        return Err(ApiError::CreateFailed);
    };
    // The engine has decoded every pixel while staging; the records are
    // written once the image is committed, and a failure removes it again.
    let (image, ()) = st
        .engine
        .commit_then(staged, opts, async |image: &Image| -> ApiResult<()> {
            register(&st, &p, image, flags).await
        })
        .await?;
    Ok(Json(photo_json(&st, &image)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(query: Option<&str>) -> ApiResult<(i64, Window)> {
        parse_list_query(&Params::parse(query))
    }

    #[test]
    fn list_query_defaults_and_limits() {
        assert_eq!(q(None).ok(), Some((15, Window::Newest)));
        assert_eq!(q(Some("per_page=500")).ok(), Some((100, Window::Newest)));
        assert!(q(Some("per_page=0")).is_err());
        assert!(q(Some("per_page=abc")).is_err());
        assert!(q(Some("before=nope")).is_err());
        assert!(q(Some(
            "before=2016-11-06T03:43:03.382Z&after=2016-11-06T03:43:03.382Z"
        ))
        .is_err());
    }

    #[test]
    fn time_cursors_carry_a_tie_breaker() {
        assert_eq!(
            q(Some("before=2016-11-06T03:43:03.382Z&seq=7")).ok(),
            Some((15, Window::Before((1_478_403_783_382, 7))))
        );
        assert_eq!(
            q(Some("after=2016-11-06T03:43:03.382Z")).ok(),
            Some((15, Window::After((1_478_403_783_382, i64::MAX))))
        );
        assert_eq!(
            q(Some("before=2016-11-06T03:43:03.382Z")).ok(),
            Some((15, Window::Before((1_478_403_783_382, 0))))
        );
    }
}
