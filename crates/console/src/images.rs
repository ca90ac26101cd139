//! The grid of a user's images, upload, the image page, delete, and the
//! bytes (original and variants) served under the session cookie.

use crate::page::{self, bytes, clip, json_text, time_el, ConsoleError};
use crate::session::{self, Page, Posted, Session, CSRF_HEADER};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use maud::{html, Markup};
use serde_json::json;
use tintype_engine::core::{CoreError, Image, ImageKind, Scope};
use tintype_engine::{BlobRef, IngestOptions};
use tintype_http::extract::Params;
use tintype_http::limits::{read_text_field, MAX_NAME_BYTES};
use tintype_http::serve::{serve_blob, Caching};
use tintype_http::AppState;

/// Images on one page of the grid.
const PAGE_SIZE: i64 = 24;
/// Most catalog pages one grid page reads while filtering (a filter that
/// matches little stops there and offers the next page).
const MAX_SCAN_PAGES: usize = 40;
/// Longest name filter.
const MAX_FILTER_CHARS: usize = 200;
/// Most files one upload request takes (the page sends one per request).
const MAX_FILES_PER_REQUEST: usize = 50;
/// Most EXIF and metadata entries shown.
const MAX_TABLE_ROWS: usize = 200;

fn require(s: &Session, scope: Scope) -> Result<(), ConsoleError> {
    if s.principal.has(scope) {
        Ok(())
    } else {
        Err(ConsoleError::new(
            StatusCode::FORBIDDEN,
            format!("Your token lacks the {scope} scope."),
        ))
    }
}

/// The preset the grid shows: `thumbnail`, else the first one.
fn thumb_preset(st: &AppState) -> Option<String> {
    let presets = st.engine.config().presets.all();
    presets
        .iter()
        .find(|p| p.name == "thumbnail")
        .or_else(|| presets.first())
        .map(|p| p.name.clone())
}

/// The preset the image page shows: `large`, else the widest one.
fn view_preset(st: &AppState) -> Option<String> {
    let presets = st.engine.config().presets.all();
    presets
        .iter()
        .find(|p| p.name == "large")
        .or_else(|| presets.iter().max_by_key(|p| p.width))
        .map(|p| p.name.clone())
}

fn display_name(i: &Image) -> String {
    match &i.name {
        Some(n) if !n.trim().is_empty() => clip(n, 120),
        _ => format!("untitled {}", &i.id.get(..8).unwrap_or(&i.id)),
    }
}

/// One tile of the grid (also sent to the page after an upload).
fn tile(st: &AppState, i: &Image) -> Markup {
    let thumb = thumb_preset(st);
    html! {
        li.tile data-name=[i.name.as_deref()] {
            a href={ "/console/images/" (i.id) } {
                @if let (ImageKind::Picture, Some(p)) = (i.content.kind, &thumb) {
                    img src={ "/console/images/" (i.id) "/variants/" (p) } alt="" loading="lazy"
                        width="200" height="200";
                } @else {
                    span.disk aria-hidden="true" { (i.content.format.to_uppercase()) }
                }
                span.name { (display_name(i)) }
            }
            span.meta { (i.content.format) " · " (bytes(i.content.size)) }
        }
    }
}

struct GridQuery {
    cursor: Option<String>,
    name: String,
    kind: ImageKind,
}

fn grid_query(p: &Params) -> GridQuery {
    GridQuery {
        cursor: p
            .non_empty("cursor")
            .filter(|c| c.len() <= 100)
            .map(str::to_string),
        name: p
            .get("name")
            .unwrap_or("")
            .trim()
            .chars()
            .take(MAX_FILTER_CHARS)
            .collect(),
        kind: p
            .get("kind")
            .and_then(ImageKind::parse)
            .unwrap_or(ImageKind::Picture),
    }
}

fn grid_href(kind: ImageKind, name: &str, cursor: Option<&str>) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    s.append_pair("kind", kind.as_str());
    if !name.is_empty() {
        s.append_pair("name", name);
    }
    if let Some(c) = cursor {
        s.append_pair("cursor", c);
    }
    format!("/?{}", s.finish())
}

/// `GET /`: the upload area and the grid, newest first, a page at a time
/// along the catalog's cursor, filtered by name (case-insensitive
/// substring) and kind.
pub async fn grid(
    State(st): State<AppState>,
    Page(s): Page,
    params: Params,
) -> Result<Response, ConsoleError> {
    require(&s, Scope::ImageRead)?;
    let q = grid_query(&params);
    let needle = q.name.to_lowercase();
    let mut shown: Vec<Image> = Vec::new();
    let mut cursor = q.cursor.clone();
    let mut next = None;
    let mut scanned = 0usize;
    for _ in 0..MAX_SCAN_PAGES {
        let need = PAGE_SIZE - shown.len() as i64;
        let page = st
            .engine
            .list_images(s.principal.user.id, cursor.as_deref(), need)
            .await?;
        scanned += page.images.len();
        shown.extend(page.images.into_iter().filter(|i| {
            i.content.kind == q.kind
                && (needle.is_empty()
                    || i.name
                        .as_deref()
                        .is_some_and(|n| n.to_lowercase().contains(&needle)))
        }));
        next = page.next;
        if shown.len() as i64 >= PAGE_SIZE || next.is_none() {
            break;
        }
        cursor = next.clone();
    }
    let can_write = s.principal.has(Scope::ImageWrite);
    let filtered = !needle.is_empty() || q.kind != ImageKind::Picture;
    let body = html! {
        @if can_write {
            section.upload aria-labelledby="upload-h" {
                h2 #upload-h { "Upload" }
                form #upload method="post" action="/console/upload" enctype="multipart/form-data"
                    data-csrf=(s.csrf) {
                    input type="hidden" name="csrf" value=(s.csrf);
                    div #drop.drop {
                        label for="files" { "Choose pictures or disk images" }
                        input #files type="file" name="file" multiple;
                        p.hint { "…or drop files here. Each file uploads on its own, with its progress below." }
                    }
                    button #upload-submit type="submit" { "Upload" }
                }
                ul #uploads.uploads aria-live="polite" {}
            }
        }
        section aria-labelledby="grid-h" {
            h2 #grid-h { "Your images" }
            nav.toggle aria-label="Kind" {
                @for (kind, label) in [(ImageKind::Picture, "Pictures"), (ImageKind::Disk, "Disk images")] {
                    @if kind == q.kind {
                        a href=(grid_href(kind, &q.name, None)) aria-current="page" { (label) }
                    } @else {
                        a href=(grid_href(kind, &q.name, None)) { (label) }
                    }
                }
            }
            form.filter method="get" action="/" role="search" {
                input type="hidden" name="kind" value=(q.kind.as_str());
                label for="name-filter" { "Filter by name" }
                input #name-filter type="search" name="name" value=(q.name) maxlength="200";
                button type="submit" { "Filter" }
                @if !q.name.is_empty() {
                    a href=(grid_href(q.kind, "", None)) { "Clear" }
                }
            }
            @if shown.is_empty() {
                p #empty {
                    @if filtered { "No image matches." } @else { "No images yet: upload some above." }
                }
            }
            ul #grid.grid data-kind=(q.kind.as_str()) {
                @for i in &shown { (tile(&st, i)) }
            }
            nav.pager aria-label="Pages" {
                @if q.cursor.is_some() {
                    a href=(grid_href(q.kind, &q.name, None)) { "Newest" }
                }
                @if let Some(n) = &next {
                    a rel="next" href=(grid_href(q.kind, &q.name, Some(n))) { "Older images" }
                    @if (shown.len() as i64) < PAGE_SIZE {
                        span.hint { "(" (scanned) " images looked through on this page)" }
                    }
                }
            }
        }
    };
    Ok(page::render(StatusCode::OK, "Images", Some(&s), body))
}

/// An upload's outcome for the page's script.
fn json_error(e: ConsoleError) -> Response {
    (e.status, Json(json!({ "detail": e.message }))).into_response()
}

/// `POST /console/upload`: multipart `file` parts, each staged and
/// committed by the engine as the native API does (same limits, same
/// refusals). From the page's script (one file, the CSRF token in the
/// `X-CSRF-Token` header) it answers JSON; from the plain form (the `csrf`
/// field first, then the files) it goes back to the grid.
pub async fn upload(State(st): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let scripted = headers.contains_key(CSRF_HEADER);
    match upload_files(&st, &headers, body, scripted).await {
        Ok(images) if scripted => {
            let first = images.first();
            (
                StatusCode::CREATED,
                Json(json!({
                    "images": images.iter().map(|i| json!({
                        "id": i.id,
                        "name": i.name,
                        "kind": i.content.kind.as_str(),
                        "url": format!("/console/images/{}", i.id),
                        "tile": tile(&st, i).into_string(),
                    })).collect::<Vec<_>>(),
                    "id": first.map(|i| i.id.clone()),
                })),
            )
                .into_response()
        }
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) if scripted => json_error(e),
        Err(e) => e.into_response(),
    }
}

async fn upload_files(
    st: &AppState,
    headers: &HeaderMap,
    body: Body,
    scripted: bool,
) -> Result<Vec<Image>, ConsoleError> {
    let Some(s) = session::session(st, headers).await? else {
        return Err(ConsoleError::new(
            StatusCode::UNAUTHORIZED,
            "You are signed out; sign in again.",
        ));
    };
    require(&s, Scope::ImageWrite)?;
    let mut csrf_checked = false;
    if scripted {
        let given = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        s.check_post(st, headers, given)?;
        csrf_checked = true;
    } else if !session::same_origin(st, headers) {
        return Err(session::foreign_origin());
    }
    let mut mp = tintype_http::extract::multipart(headers, body)
        .await
        .map_err(|e| ConsoleError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let mut images = Vec::new();
    let mut files = 0usize;
    loop {
        let mut field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return Err(ConsoleError::new(StatusCode::BAD_REQUEST, e.body_text())),
        };
        match field.name().unwrap_or("") {
            "csrf" if !csrf_checked => {
                let v = read_text_field(&mut field, 128).await.unwrap_or_default();
                if !s.csrf_matches(&v) {
                    return Err(session::stale_csrf());
                }
                csrf_checked = true;
            }
            "file" => {
                if !csrf_checked {
                    return Err(session::stale_csrf());
                }
                let name = field
                    .file_name()
                    .map(|n| clip_bytes(n, MAX_NAME_BYTES))
                    .filter(|n| !n.is_empty());
                if name.is_none() && !scripted {
                    // A form sent with no file chosen.
                    while let Ok(Some(_)) = field.chunk().await {}
                    continue;
                }
                files += 1;
                if files > MAX_FILES_PER_REQUEST {
                    return Err(ConsoleError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("at most {MAX_FILES_PER_REQUEST} files per upload"),
                    ));
                }
                let mut opts = IngestOptions::new(s.principal.user.id);
                opts.name = name;
                let staged = st.engine.stage(field, &opts).await?;
                images.push(st.engine.commit(staged, opts).await?);
            }
            _ => while let Ok(Some(_)) = field.chunk().await {},
        }
    }
    if !csrf_checked {
        return Err(session::stale_csrf());
    }
    if images.is_empty() && scripted {
        return Err(ConsoleError::new(
            StatusCode::BAD_REQUEST,
            "the upload has no file",
        ));
    }
    Ok(images)
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn clip_bytes(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Which API an image came through, from the records dialects keep about it.
fn came_through(scopes: &[String]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = scopes
        .iter()
        .filter_map(|s| match s.split('.').next().unwrap_or("") {
            "popit" => Some("PopIt"),
            "diaspora" => Some("diaspora*"),
            "livingdocs" => Some("Livingdocs"),
            "djinn" => Some("Djinn"),
            "fulcrum" => Some("Fulcrum"),
            // tintype's own records (the ThumbHash) say nothing of it.
            "tintype" => None,
            _ => Some("another API"),
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    if out.is_empty() {
        out.push("the native API (or this console)");
    }
    out
}

fn download_name(i: &Image) -> String {
    match &i.name {
        Some(n) if !n.trim().is_empty() => clip(n, 120),
        _ => format!("{}.{}", i.id, i.content.format),
    }
}

/// `GET /console/images/{id}`: the picture, its facts, variants, EXIF,
/// position, metadata, origin, download and delete.
pub async fn show(
    State(st): State<AppState>,
    Page(s): Page,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    require(&s, Scope::ImageRead)?;
    let image = st.engine.owned_image(&s.principal, &id).await?;
    let variants = st.engine.variants(&image.id).await?;
    let records = st.engine.records_for_image(&image.id).await?;
    let scopes: Vec<String> = records.iter().map(|r| r.scope.clone()).collect();
    let c = &image.content;
    let base = format!("/console/images/{}", image.id);
    let view = view_preset(&st);
    let presets = st.engine.config().presets.all();
    let title = display_name(&image);
    let body = html! {
        div.image-page {
            div.left {
            figure.picture {
                @if let (ImageKind::Picture, Some(p)) = (c.kind, &view) {
                    img #picture src={ (base) "/variants/" (p) } alt=(title);
                } @else {
                    span.disk.big aria-hidden="true" { (c.format.to_uppercase()) }
                }
            }
            div.actions {
                a.button href={ (base) "/original" } download=(download_name(&image)) { "Download original" }
                @if s.principal.has(Scope::ImageDelete) {
                    a.button.danger href={ (base) "/delete" } { "Delete…" }
                }
            }
            }
            div.right {
            section aria-labelledby="facts-h" {
                h2 #facts-h { "Facts" }
                dl #facts.facts {
                    dt { "Kind" } dd { (c.kind.as_str()) }
                    dt { "Format" } dd { (c.format) " (" (c.content_type) ")" }
                    dt { "Bytes" } dd { (c.size) " (" (bytes(c.size)) ")" }
                    @if let (Some(w), Some(h)) = (c.width, c.height) {
                        dt { "Size" } dd { (w) " × " (h) " px" }
                    }
                    @if let Some(o) = c.orientation {
                        dt { "EXIF orientation" } dd { (o) }
                    }
                    dt { "SHA-256" } dd { code.hash { (c.sha256) } }
                    dt { "Created" } dd { (time_el(image.created_at)) }
                    dt { "Updated" } dd { (time_el(image.updated_at)) }
                    dt { "Variants rendered" } dd {
                        @if let Some(t) = image.processed_at { (time_el(t)) } @else { "not all yet" }
                    }
                    dt { "Came through" } dd #origin { (came_through(&scopes).join(", ")) }
                    dt { "Id" } dd { code { (image.id) } }
                }
            }
            @if c.kind == ImageKind::Picture {
                section aria-labelledby="variants-h" {
                    h2 #variants-h { "Variants" }
                    div.scroll {
                        table #variants {
                            thead { tr { th scope="col" { "Preset" } th scope="col" { "Size" } th scope="col" { "Type" } th scope="col" { "Bytes" } } }
                            tbody {
                                @for p in presets {
                                    tr {
                                        th scope="row" { a href={ (base) "/variants/" (p.name) } { (p.name) } }
                                        @if let Some(v) = variants.iter().find(|v| v.preset == p.name) {
                                            td { (v.width) " × " (v.height) }
                                            td { (v.content_type) }
                                            td { (bytes(v.size)) }
                                        } @else {
                                            td colspan="3" { "rendered when first asked for (" (p.mode) " " (p.width) " × " (p.height) ")" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let (Some(lat), Some(lon)) = (c.latitude, c.longitude) {
                section aria-labelledby="gps-h" {
                    h2 #gps-h { "Position" }
                    p #gps {
                        "Latitude " (format!("{lat:.6}")) ", longitude " (format!("{lon:.6}")) " · "
                        a href=(format!("https://www.openstreetmap.org/?mlat={lat:.6}&mlon={lon:.6}#map=16/{lat:.6}/{lon:.6}"))
                            rel="noopener noreferrer external" { "Open in OpenStreetMap" }
                    }
                }
            }
            section aria-labelledby="exif-h" {
                h2 #exif-h { "EXIF" }
                @match &c.exif {
                    Some(m) if !m.is_empty() => {
                        div.scroll {
                            table #exif {
                                thead { tr { th scope="col" { "Tag" } th scope="col" { "Value" } } }
                                tbody {
                                    @for (k, v) in m.iter().take(MAX_TABLE_ROWS) {
                                        tr { th scope="row" { (k) } td { (json_text(v, 300)) } }
                                    }
                                }
                            }
                        }
                    }
                    _ => { p { "None." } }
                }
            }
            section aria-labelledby="meta-h" {
                h2 #meta-h { "Metadata" }
                @if image.metadata.is_empty() {
                    p { "None." }
                } @else {
                    div.scroll {
                        table #metadata {
                            thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                            tbody {
                                @for (k, v) in image.metadata.iter().take(MAX_TABLE_ROWS) {
                                    tr { th scope="row" { (k) } td { (json_text(v, 300)) } }
                                }
                            }
                        }
                    }
                }
            }
            }
        }
    };
    Ok(page::render(StatusCode::OK, &title, Some(&s), body))
}

/// `GET /console/images/{id}/delete`: the confirmation step.
pub async fn confirm_delete(
    State(st): State<AppState>,
    Page(s): Page,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    require(&s, Scope::ImageDelete)?;
    let image = st.engine.owned_image(&s.principal, &id).await?;
    let name = display_name(&image);
    let body = html! {
        p { "Delete " strong { (name) } " (" (bytes(image.content.size)) ") and all its variants? This cannot be undone." }
        form.confirm method="post" action={ "/console/images/" (image.id) "/delete" } {
            input type="hidden" name="csrf" value=(s.csrf);
            button.danger #confirm-delete type="submit" { "Delete for good" }
            a.button href={ "/console/images/" (image.id) } { "Cancel" }
        }
    };
    Ok(page::render(
        StatusCode::OK,
        "Delete this image?",
        Some(&s),
        body,
    ))
}

/// `POST /console/images/{id}/delete`: deletes, then back to the grid.
pub async fn delete(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Posted(s, _): Posted,
) -> Result<Response, ConsoleError> {
    require(&s, Scope::ImageDelete)?;
    let image = st.engine.owned_image(&s.principal, &id).await?;
    st.engine.delete_image(&image.id).await?;
    Ok(Redirect::to("/").into_response())
}

/// `GET /console/images/{id}/original`
pub async fn original(
    State(st): State<AppState>,
    Page(s): Page,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    require(&s, Scope::ImageRead)?;
    let image = st.engine.owned_image(&s.principal, &id).await?;
    let mut resp = serve_blob(
        &st,
        &headers,
        &BlobRef::of_image(&image),
        Caching::Private,
        None,
    )
    .await;
    vary_cookie(&mut resp);
    Ok(resp)
}

/// Bytes behind the session cookie: a browser's cache keeps them apart
/// per session (another user signing in on the same browser).
fn vary_cookie(resp: &mut Response) {
    resp.headers_mut()
        .append(header::VARY, HeaderValue::from_static("Cookie"));
}

/// `GET /console/images/{id}/variants/{preset}`: as the native variant
/// endpoint, the encoding negotiated from `Accept` for an `auto` preset.
pub async fn variant(
    State(st): State<AppState>,
    Page(s): Page,
    Path((id, preset)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    require(&s, Scope::ImageRead)?;
    let image = st.engine.owned_image(&s.principal, &id).await?;
    let Some(def) = st.engine.config().presets.get(&preset) else {
        return Err(CoreError::NotFound.into());
    };
    let negotiate = def.negotiates();
    let format = if negotiate {
        tintype_engine::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))
    } else {
        None
    };
    let v = st.engine.variant_as(&image, &preset, format).await?;
    let mut resp = serve_blob(
        &st,
        &headers,
        &BlobRef::of_variant(&v),
        Caching::Private,
        None,
    )
    .await;
    if negotiate {
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept"));
    }
    vary_cookie(&mut resp);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_queries_are_bounded_and_forgiving() {
        let q = grid_query(&Params::parse(Some("kind=disk&name=%20Cat%20&cursor=1.2")));
        assert_eq!(
            (q.kind, q.name.as_str(), q.cursor.as_deref()),
            (ImageKind::Disk, "Cat", Some("1.2"))
        );
        let long = "x".repeat(500);
        let q = grid_query(&Params::parse(Some(&format!(
            "kind=bogus&name={long}&cursor={long}"
        ))));
        assert_eq!(q.kind, ImageKind::Picture);
        assert_eq!(q.name.chars().count(), MAX_FILTER_CHARS);
        assert_eq!(q.cursor, None);
        assert_eq!(
            grid_href(ImageKind::Picture, "a b&c", Some("9.1")),
            "/?kind=picture&name=a+b%26c&cursor=9.1"
        );
    }

    #[test]
    fn the_origin_of_an_image_is_named() {
        assert_eq!(came_through(&[]), vec!["the native API (or this console)"]);
        assert_eq!(
            came_through(&["tintype.thumbhash".into()]),
            vec!["the native API (or this console)"]
        );
        assert_eq!(
            came_through(&[
                "popit.image".into(),
                "popit.x".into(),
                "fulcrum.photo".into()
            ]),
            vec!["Fulcrum", "PopIt"]
        );
    }

    #[test]
    fn names_are_cut_on_character_boundaries() {
        assert_eq!(clip_bytes("aé", 2), "a");
        assert_eq!(clip_bytes("abc", 10), "abc");
    }
}
