//! The diaspora* photos API against a real tintype server.

use reqwest::multipart::{Form, Part};
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;
use std::collections::HashSet;
use std::io::Cursor;
use std::time::Duration;
use tintype_engine::core::Scope;
use tintype_testkit::TestServer;

async fn server() -> TestServer {
    TestServer::start(vec![tintype_diaspora::router()]).await
}

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, seed])
    });
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// A JPEG whose stored pixels are `w`x`h`, with an EXIF APP1 segment
/// carrying `orientation` when given.
fn jpeg(w: u32, h: u32, orientation: Option<u16>) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x / 7 % 256) as u8, (y / 5 % 256) as u8, 128])
    });
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 80)
        .encode_image(&img)
        .expect("encode jpeg");
    let Some(o) = orientation else {
        return buf;
    };
    // TIFF, big endian, one IFD with one entry: Orientation (0x0112), SHORT.
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\x00\x2a\x00\x00\x00\x08");
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&o.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    let mut payload = b"Exif\x00\x00".to_vec();
    payload.extend_from_slice(&tiff);
    let len = (payload.len() + 2) as u16;
    let mut out = buf[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&buf[2..]);
    out
}

fn form(bytes: Vec<u8>, file_name: &str, mime: &str) -> Form {
    Form::new().part(
        "image",
        Part::bytes(bytes)
            .file_name(file_name.to_string())
            .mime_str(mime)
            .expect("mime"),
    )
}

async fn upload(s: &TestServer, token: &str, form: Form) -> Response {
    Client::new()
        .post(s.url("/api/v1/photos"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload")
}

async fn upload_ok(s: &TestServer, token: &str, form: Form) -> Value {
    let r = upload(s, token, form).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.expect("json")
}

async fn get(s: &TestServer, token: &str, path: &str) -> Response {
    Client::new()
        .get(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
}

async fn get_url(token: &str, url: &str) -> Response {
    Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("get")
}

async fn delete(s: &TestServer, token: &str, path: &str) -> Response {
    Client::new()
        .delete(s.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("delete")
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or_default()
}

/// Checks the photo JSON has exactly the keys the spec gives it.
fn assert_photo_shape(s: &TestServer, p: &Value) {
    let obj = p.as_object().expect("photo object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "dimensions", "guid", "sizes"]);
    let guid = str_of(p, "guid");
    assert_eq!(guid.len(), 32);
    assert!(guid
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    let created = str_of(p, "created_at");
    // 2016-11-06T03:43:03.382Z
    assert_eq!(created.len(), 24, "{created}");
    assert!(created.ends_with('Z'));
    assert_eq!(&created[19..20], ".");
    assert!(chrono::DateTime::parse_from_rfc3339(created).is_ok());
    let dims = p["dimensions"].as_object().expect("dimensions");
    assert_eq!(dims.len(), 2);
    assert!(p["dimensions"]["width"].as_i64().is_some());
    assert!(p["dimensions"]["height"].as_i64().is_some());
    let sizes = p["sizes"].as_object().expect("sizes");
    let mut names: Vec<&str> = sizes.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["large", "medium", "raw", "small"]);
    for (name, url) in sizes {
        assert_eq!(
            url.as_str(),
            Some(
                s.url(&format!("/api/v1/photos/{guid}/sizes/{name}"))
                    .as_str()
            )
        );
    }
}

async fn error_body(r: Response, status: StatusCode, message: &str) {
    assert_eq!(r.status(), status);
    let v: Value = r.json().await.expect("json error");
    assert_eq!(
        v,
        serde_json::json!({"code": status.as_u16(), "message": message})
    );
}

const NOT_FOUND: &str = "Photo with provided guid could not be found";
const CREATE_FAILED: &str = "Failed to create the photo";

#[tokio::test]
async fn seed_requests_upload_list_show_delete() {
    let s = server().await;
    let token = s.user_token("alice", &[]).await;

    // POST /api/v1/photos
    let first = upload_ok(&s, &token, form(png(160, 120, 1), "a.png", "image/png")).await;
    assert_photo_shape(&s, &first);
    assert_eq!(
        first["dimensions"],
        serde_json::json!({"height": 120, "width": 160})
    );
    let second = upload_ok(
        &s,
        &token,
        form(png(30, 40, 2), "b.png", "application/octet-stream"),
    )
    .await;
    assert_photo_shape(&s, &second);
    assert_eq!(
        second["dimensions"],
        serde_json::json!({"height": 40, "width": 30})
    );

    // GET /api/v1/photos: bare array, newest first.
    let r = get(&s, &token, "/api/v1/photos").await;
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.expect("json");
    let arr = list.as_array().expect("bare array");
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[0], second);
    assert_eq!(arr[1], first);
    for p in arr {
        assert_photo_shape(&s, p);
    }

    // GET /api/v1/photos/:guid
    let guid = str_of(&first, "guid");
    let r = get(&s, &token, &format!("/api/v1/photos/{guid}")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let shown: Value = r.json().await.expect("json");
    assert_eq!(shown, first);

    // The token may also come as ?access_token=.
    let r = Client::new()
        .get(s.url(&format!("/api/v1/photos/{guid}?access_token={token}")))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);

    // DELETE /api/v1/photos/:guid -> 204, no body; then 404.
    let r = delete(&s, &token, &format!("/api/v1/photos/{guid}")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(r.bytes().await.expect("body").is_empty());
    error_body(
        get(&s, &token, &format!("/api/v1/photos/{guid}")).await,
        StatusCode::NOT_FOUND,
        NOT_FOUND,
    )
    .await;
    error_body(
        delete(&s, &token, &format!("/api/v1/photos/{guid}")).await,
        StatusCode::NOT_FOUND,
        NOT_FOUND,
    )
    .await;
    let list: Value = get(&s, &token, "/api/v1/photos")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    // The image is gone from the engine too.
    assert!(s.engine.image(guid).await.is_err());
}

#[tokio::test]
async fn auth_errors_use_oauth_and_diaspora_bodies() {
    let s = server().await;
    let alice = s.user_token("alice", &[]).await;
    let photo = upload_ok(&s, &alice, form(png(20, 20, 3), "a.png", "image/png")).await;
    let guid = str_of(&photo, "guid").to_string();

    let expected_401 = serde_json::json!({
        "error": "invalid_token",
        "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons."
    });
    let client = Client::new();
    for req in [
        client.get(s.url("/api/v1/photos")),
        client.get(s.url(&format!("/api/v1/photos/{guid}"))),
        client.delete(s.url(&format!("/api/v1/photos/{guid}"))),
        client.post(s.url("/api/v1/photos")),
        client
            .get(s.url("/api/v1/photos"))
            .bearer_auth("not-a-token"),
        client.get(s.url("/api/v1/photos?access_token=wrong")),
    ] {
        let r = req.send().await.expect("send");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            r.headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"tintype\", error=\"invalid_token\"")
        );
        let v: Value = r.json().await.expect("json");
        assert_eq!(v, expected_401);
    }

    // A read-only token may neither upload nor delete.
    let reader = s.user_token("alice", &[Scope::ImageRead]).await;
    error_body(
        upload(&s, &reader, form(png(20, 20, 4), "a.png", "image/png")).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    error_body(
        delete(&s, &reader, &format!("/api/v1/photos/{guid}")).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    // A write-only token may not read.
    let writer = s.user_token("alice", &[Scope::ImageWrite]).await;
    error_body(
        get(&s, &writer, "/api/v1/photos").await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    error_body(
        get(&s, &writer, &format!("/api/v1/photos/{guid}")).await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    // Tokens created with diaspora's scope names work.
    let modify = s
        .user_token("alice", &Scope::parse_many("public:modify").expect("scope"))
        .await;
    let p2 = upload_ok(&s, &modify, form(png(20, 20, 5), "a.png", "image/png")).await;
    let r = delete(
        &s,
        &modify,
        &format!("/api/v1/photos/{}", str_of(&p2, "guid")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Another user's photo is not found, and not listed.
    let bob = s.user_token("bob", &[]).await;
    error_body(
        get(&s, &bob, &format!("/api/v1/photos/{guid}")).await,
        StatusCode::NOT_FOUND,
        NOT_FOUND,
    )
    .await;
    error_body(
        delete(&s, &bob, &format!("/api/v1/photos/{guid}")).await,
        StatusCode::NOT_FOUND,
        NOT_FOUND,
    )
    .await;
    let list: Value = get(&s, &bob, "/api/v1/photos")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list, serde_json::json!([]));
    assert!(s.engine.image(&guid).await.is_ok());

    // Unknown and malformed guids.
    for path in [
        "/api/v1/photos/0a992a10b9db0133e40e406c8f31e210",
        "/api/v1/photos/not-a-guid",
        "/api/v1/photos/0A992A10B9DB0133E40E406C8F31E210",
    ] {
        error_body(
            get(&s, &alice, path).await,
            StatusCode::NOT_FOUND,
            NOT_FOUND,
        )
        .await;
    }
}

#[tokio::test]
async fn failed_uploads_answer_422_and_leave_nothing() {
    let s = server().await;
    let token = s.user_token("alice", &[]).await;
    let cases: Vec<(&str, Form)> = vec![
        (
            "no image part",
            Form::new()
                .text("pending", "true")
                .part("file", Part::bytes(png(10, 10, 1)).file_name("a.png")),
        ),
        ("empty file", form(Vec::new(), "a.png", "image/png")),
        (
            "not an image",
            form(b"hello, this is text".to_vec(), "a.txt", "text/plain"),
        ),
        ("undecodable image", {
            let mut b = png(40, 40, 1);
            b.truncate(60);
            form(b, "a.png", "image/png")
        }),
        (
            "svg is not a diaspora photo",
            form(
                br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>"#
                    .to_vec(),
                "a.svg",
                "image/svg+xml",
            ),
        ),
    ];
    for (what, f) in cases {
        let r = upload(&s, &token, f).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(
            v,
            serde_json::json!({"code": 422, "message": CREATE_FAILED}),
            "{what}"
        );
    }
    // Not multipart at all.
    let r = Client::new()
        .post(s.url("/api/v1/photos"))
        .bearer_auth(&token)
        .header("content-type", "image/png")
        .body(png(10, 10, 1))
        .send()
        .await
        .expect("post");
    error_body(r, StatusCode::UNPROCESSABLE_ENTITY, CREATE_FAILED).await;

    // A bad flag after the image: the stored image is removed again.
    let f = form(png(10, 10, 9), "a.png", "image/png").text("pending", "maybe");
    let r = upload(&s, &token, f).await;
    error_body(
        r,
        StatusCode::BAD_REQUEST,
        "pending must be true, false, 1 or 0",
    )
    .await;

    let user = s.engine.user("alice").await.expect("user");
    let page = s
        .engine
        .list_images(user.id, None, 100)
        .await
        .expect("list");
    assert!(page.images.is_empty(), "{:?}", page.images);
    let list: Value = get(&s, &token, "/api/v1/photos")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list, serde_json::json!([]));
}

/// Follows `rel` in a Link header.
fn link(r: &Response, rel: &str) -> Option<String> {
    let h = r.headers().get("link")?.to_str().ok()?;
    h.split(',').find_map(|part| {
        let (url, params) = part.trim().split_once(';')?;
        (params.trim() == format!("rel=\"{rel}\"")).then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[tokio::test]
async fn pagination_follows_link_across_40_photos() {
    let s = server().await;
    let token = s.user_token("alice", &[]).await;
    // Uploaded eight at a time, so that several share a millisecond.
    let mut uploaded = Vec::new();
    for batch in 0..5u8 {
        let reqs = (0..8u8).map(|n| {
            upload_ok(
                &s,
                &token,
                form(png(8, 8, batch * 8 + n), "p.png", "image/png"),
            )
        });
        for p in futures::future::join_all(reqs).await {
            uploaded.push(str_of(&p, "guid").to_string());
        }
    }
    // Some of another user's photos and a native upload are never listed.
    let bob = s.user_token("bob", &[]).await;
    upload_ok(&s, &bob, form(png(8, 8, 99), "p.png", "image/png")).await;

    let mut seen: Vec<String> = Vec::new();
    let mut sizes = Vec::new();
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut url = s.url("/api/v1/photos?per_page=15");
    let mut last_times: Vec<String> = Vec::new();
    loop {
        let r = get_url(&token, &url).await;
        assert_eq!(r.status(), StatusCode::OK);
        let next = link(&r, "next");
        let prev = link(&r, "previous");
        let arr: Vec<Value> = r.json().await.expect("json");
        sizes.push(arr.len());
        if arr.is_empty() {
            assert_eq!(next, None);
            assert_eq!(prev, None);
            break;
        }
        let guids: Vec<String> = arr.iter().map(|p| str_of(p, "guid").to_string()).collect();
        for p in &arr {
            last_times.push(str_of(p, "created_at").to_string());
        }
        seen.extend(guids.iter().cloned());
        pages.push(guids);
        assert!(prev.is_some());
        url = next.expect("a non-empty page links to the next");
        assert!(url.contains("before="), "{url}");
        assert!(sizes.len() < 10, "pagination does not end");
    }
    assert_eq!(sizes, [15, 15, 10, 0]);
    assert_eq!(seen.len(), 40);
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), 40, "a photo was repeated");
    let all: HashSet<&String> = uploaded.iter().collect();
    assert_eq!(distinct, all);
    // created_at never increases along the pages.
    assert!(last_times.windows(2).all(|w| w[0] >= w[1]));

    // A plain time as `before` (no tie-breaker): strictly older than it.
    let r = get(
        &s,
        &token,
        "/api/v1/photos?per_page=15&before=2999-01-01T00:00:00.000Z",
    )
    .await;
    let first_page: Vec<Value> = r.json().await.expect("json");
    let first_page: Vec<String> = first_page
        .iter()
        .map(|p| str_of(p, "guid").to_string())
        .collect();
    assert_eq!(first_page, pages[0]);

    // The previous link of the third page gives back the second.
    let mut url = s.url("/api/v1/photos?per_page=15");
    for _ in 0..2 {
        let r = get_url(&token, &url).await;
        url = link(&r, "next").expect("next");
    }
    let r = get_url(&token, &url).await;
    let prev = link(&r, "previous").expect("previous");
    assert!(prev.contains("after="));
    let r = get_url(&token, &prev).await;
    let back: Vec<Value> = r.json().await.expect("json");
    let back: Vec<String> = back.iter().map(|p| str_of(p, "guid").to_string()).collect();
    assert_eq!(back, pages[1]);

    // per_page is capped at 100 and defaults to 15.
    let r = get(&s, &token, "/api/v1/photos").await;
    let all: Vec<Value> = r.json().await.expect("json");
    assert_eq!(all.len(), 15);
    let r = get(&s, &token, "/api/v1/photos?per_page=1000").await;
    let all: Vec<Value> = r.json().await.expect("json");
    assert_eq!(all.len(), 40);
    error_body(
        get(&s, &token, "/api/v1/photos?per_page=zero").await,
        StatusCode::BAD_REQUEST,
        "per_page must be a positive integer",
    )
    .await;
    error_body(
        get(&s, &token, "/api/v1/photos?before=last-week").await,
        StatusCode::BAD_REQUEST,
        "before must be an ISO 8601 time",
    )
    .await;
}

async fn decoded_size(url: &str) -> (u32, u32) {
    let r = Client::new().get(url).send().await.expect("get size");
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    let bytes = r.bytes().await.expect("bytes");
    let img = image::load_from_memory(&bytes).expect("decode");
    (img.width(), img.height())
}

#[tokio::test]
async fn sizes_have_the_right_pixels_landscape_and_exif_portrait() {
    let s = server().await;
    let token = s.user_token("alice", &[]).await;

    let landscape = upload_ok(
        &s,
        &token,
        form(jpeg(1600, 1200, None), "l.jpg", "image/jpeg"),
    )
    .await;
    assert_eq!(
        landscape["dimensions"],
        serde_json::json!({"height": 1200, "width": 1600})
    );
    // Stored 1600x1200, orientation 6: shown rotated, 1200 wide, 1600 high.
    let portrait = upload_ok(
        &s,
        &token,
        form(jpeg(1600, 1200, Some(6)), "p.jpg", "image/jpeg"),
    )
    .await;
    assert_eq!(
        portrait["dimensions"],
        serde_json::json!({"height": 1600, "width": 1200})
    );

    let cases = [
        (
            &landscape,
            [
                ("small", (50, 50)),
                ("medium", (100, 75)),
                ("large", (700, 525)),
            ],
        ),
        (
            &portrait,
            [
                ("small", (50, 50)),
                ("medium", (75, 100)),
                ("large", (700, 933)),
            ],
        ),
    ];
    for (photo, sizes) in cases {
        for (name, want) in sizes {
            let url = str_of(&photo["sizes"], name);
            // Anonymous: no token needed, like diaspora's public uploads.
            assert_eq!(decoded_size(url).await, want, "{name} of {}", photo["guid"]);
        }
    }
    // raw is the original bytes.
    let raw = Client::new()
        .get(str_of(&portrait["sizes"], "raw"))
        .send()
        .await
        .expect("raw");
    assert_eq!(raw.status(), StatusCode::OK);
    assert_eq!(
        raw.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("image/jpeg")
    );
    assert_eq!(
        raw.bytes().await.expect("bytes").to_vec(),
        jpeg(1600, 1200, Some(6))
    );

    // Unknown sizes and guids, and a deleted photo's sizes, are 404.
    let guid = str_of(&landscape, "guid");
    let r = Client::new()
        .get(s.url(&format!("/api/v1/photos/{guid}/sizes/huge")))
        .send()
        .await
        .expect("get");
    error_body(r, StatusCode::NOT_FOUND, NOT_FOUND).await;
    let small_url = str_of(&landscape["sizes"], "small").to_string();
    let r = delete(&s, &token, &format!("/api/v1/photos/{guid}")).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = Client::new().get(&small_url).send().await.expect("get");
    error_body(r, StatusCode::NOT_FOUND, NOT_FOUND).await;
}

async fn profile_image_id(s: &TestServer, token: &str) -> Value {
    let r = get(s, token, "/v1/user").await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    v["profile_image_id"].clone()
}

#[tokio::test]
async fn profile_picture_is_set_by_either_name_and_cleared_on_delete() {
    let s = server().await;
    let token = s.user_token("alice", &[]).await;
    assert_eq!(profile_image_id(&s, &token).await, Value::Null);

    let a = upload_ok(
        &s,
        &token,
        form(png(20, 20, 1), "a.png", "image/png").text("set_profile_picture", "true"),
    )
    .await;
    assert_eq!(profile_image_id(&s, &token).await, a["guid"]);

    // The later name, as a query parameter, with 1 for true.
    let r = Client::new()
        .post(s.url("/api/v1/photos?set_profile_photo=1"))
        .bearer_auth(&token)
        .multipart(form(png(20, 20, 2), "b.png", "image/png"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    let b: Value = r.json().await.expect("json");
    assert_eq!(profile_image_id(&s, &token).await, b["guid"]);

    // set_profile_photo=false leaves it alone.
    upload_ok(
        &s,
        &token,
        form(png(20, 20, 3), "c.png", "image/png").text("set_profile_photo", "false"),
    )
    .await;
    assert_eq!(profile_image_id(&s, &token).await, b["guid"]);

    // Deleting another photo keeps it; deleting the profile photo clears it.
    let r = delete(
        &s,
        &token,
        &format!("/api/v1/photos/{}", str_of(&a, "guid")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(profile_image_id(&s, &token).await, b["guid"]);
    let r = delete(
        &s,
        &token,
        &format!("/api/v1/photos/{}", str_of(&b, "guid")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(profile_image_id(&s, &token).await, Value::Null);
}

#[tokio::test]
async fn native_uploads_are_not_diaspora_photos() {
    let s = server().await;
    let token = s.user_token("alice", &[]).await;
    let r = Client::new()
        .post(s.url("/v1/images"))
        .bearer_auth(&token)
        .multipart(Form::new().part("file", Part::bytes(png(12, 12, 7)).file_name("n.png")))
        .send()
        .await
        .expect("native upload");
    assert_eq!(r.status(), StatusCode::CREATED);
    let native: Value = r.json().await.expect("json");
    let id = str_of(&native, "id");
    let photo = upload_ok(&s, &token, form(png(12, 12, 8), "d.png", "image/png")).await;

    let list: Vec<Value> = get(&s, &token, "/api/v1/photos")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(list, vec![photo]);
    error_body(
        get(&s, &token, &format!("/api/v1/photos/{id}")).await,
        StatusCode::NOT_FOUND,
        NOT_FOUND,
    )
    .await;
    let r = Client::new()
        .get(s.url(&format!("/api/v1/photos/{id}/sizes/raw")))
        .send()
        .await
        .expect("get");
    error_body(r, StatusCode::NOT_FOUND, NOT_FOUND).await;
    error_body(
        delete(&s, &token, &format!("/api/v1/photos/{id}")).await,
        StatusCode::NOT_FOUND,
        NOT_FOUND,
    )
    .await;
    assert!(s.engine.image(id).await.is_ok());
}

#[tokio::test]
async fn pending_photos_are_listed_then_swept_by_the_periodic_job() {
    let s = server().await;
    let token = s.user_token("alice", &[]).await;
    let pending = upload_ok(
        &s,
        &token,
        form(png(20, 20, 1), "p.png", "image/png").text("pending", "true"),
    )
    .await;
    let pending_guid = str_of(&pending, "guid").to_string();
    let published = upload_ok(
        &s,
        &token,
        form(png(20, 20, 2), "q.png", "image/png").text("pending", "false"),
    )
    .await;
    let profile = upload_ok(
        &s,
        &token,
        form(png(20, 20, 3), "r.png", "image/png")
            .text("pending", "1")
            .text("set_profile_picture", "1"),
    )
    .await;

    // Listed for their owner.
    let list: Vec<Value> = get(&s, &token, "/api/v1/photos")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        list,
        vec![profile.clone(), published.clone(), pending.clone()]
    );

    // A sweep with a long time to live removes nothing.
    let removed = tintype_diaspora::sweep_pending(&s.engine, Duration::from_secs(3600))
        .await
        .expect("sweep");
    assert_eq!(removed, 0);

    // The periodic job with a zero time to live removes the unused one.
    tintype_diaspora::install(
        &s.engine,
        tintype_diaspora::Settings {
            pending_ttl: Duration::ZERO,
            sweep_interval: Duration::from_millis(50),
        },
    );
    // One sweep removes the unused photo, then publishes the profile
    // picture: wait until both are done (nothing pending is left).
    let mut gone = false;
    for _ in 0..600 {
        let r = get(&s, &token, &format!("/api/v1/photos/{pending_guid}")).await;
        let pending_left = s
            .engine
            .count_records(tintype_diaspora::PENDING_SCOPE, None)
            .await
            .expect("count");
        if r.status() == StatusCode::NOT_FOUND && pending_left == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the pending photos were never swept");
    assert!(s.engine.image(&pending_guid).await.is_err());
    let list: Vec<Value> = get(&s, &token, "/api/v1/photos")
        .await
        .json()
        .await
        .expect("json");
    // The published photo and the pending profile picture (in use) stay.
    assert_eq!(list, vec![profile.clone(), published]);
    assert_eq!(profile_image_id(&s, &token).await, profile["guid"]);
}

#[tokio::test]
async fn other_methods_answer_in_the_diaspora_envelope() {
    let s = server().await;
    let token = s.user_token("alice", &[]).await;
    let r = Client::new()
        .put(s.url("/api/v1/photos"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("put");
    error_body(r, StatusCode::METHOD_NOT_ALLOWED, "Method not allowed").await;
}

#[tokio::test]
async fn too_large_and_over_quota_uploads_are_refused_and_leave_nothing() {
    let s = TestServer::start_with(vec![tintype_diaspora::router()], |c| {
        c.max_upload_bytes = 2_000;
    })
    .await;
    let token = s.user_token("alice", &[]).await;
    let big = jpeg(300, 300, None);
    assert!(big.len() > 2_000);
    let r = upload(&s, &token, form(big, "big.jpg", "image/jpeg")).await;
    error_body(
        r,
        StatusCode::PAYLOAD_TOO_LARGE,
        "Failed to create the photo: the file is larger than 2000 bytes",
    )
    .await;

    s.engine.set_quota("alice", 1).await.expect("quota");
    upload_ok(&s, &token, form(png(4, 4, 1), "a.png", "image/png")).await;
    let r = upload(&s, &token, form(png(4, 4, 2), "b.png", "image/png")).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["code"], 429);
    assert!(str_of(&v, "message").starts_with("quota exceeded"), "{v}");

    let user = s.engine.user("alice").await.expect("user");
    let page = s.engine.list_images(user.id, None, 10).await.expect("list");
    assert_eq!(page.images.len(), 1);
    // A time to live beyond the calendar sweeps nothing (and does not panic).
    assert_eq!(
        tintype_diaspora::sweep_pending(&s.engine, Duration::MAX)
            .await
            .expect("sweep"),
        0
    );
}
