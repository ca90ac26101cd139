//! The Livingdocs image import against a real tintype server and a loopback
//! HTTP server the test starts (image sources and a webhook receiver).

use axum::body::Bytes;
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tintype_engine::core::Scope;
use tintype_testkit::TestServer;

// ---------------------------------------------------------------- sources

fn png(w: u32, h: u32, rgb: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode png");
    out.into_inner()
}

/// A photograph-like JPEG: a smooth gradient.
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 120])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encode jpeg");
    out.into_inner()
}

/// A GIF of two frames.
fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite)
            .expect("repeat");
        for c in [[255u8, 0, 0, 255], [0, 0, 255, 255]] {
            let frame = image::Frame::new(image::RgbaImage::from_pixel(4, 4, image::Rgba(c)));
            enc.encode_frame(frame).expect("frame");
        }
    }
    out
}

const SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10" fill="red"/></svg>"#;

#[derive(Default)]
struct Source {
    /// Serve other bytes at /b.png.
    changed: AtomicBool,
    /// /gated.png answers only once this is set.
    open: AtomicBool,
    gate: tokio::sync::Notify,
    /// Answer the webhook with 500 this many times first.
    hook_failures: AtomicUsize,
    hooks: Mutex<Vec<(HeaderMap, Bytes, u16)>>,
    hits: Mutex<HashMap<String, usize>>,
    addr: Mutex<Option<SocketAddr>>,
}

impl Source {
    fn hits(&self, name: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(name)
            .copied()
            .unwrap_or(0)
    }
}

async fn serve_file(State(src): State<Arc<Source>>, AxPath(name): AxPath<String>) -> Response {
    *src.hits
        .lock()
        .expect("hits")
        .entry(name.clone())
        .or_default() += 1;
    let image_png = [("content-type", "image/png")];
    match name.as_str() {
        "a.png" => (image_png, png(3, 2, [200, 10, 10])).into_response(),
        "b.png" if src.changed.load(Ordering::SeqCst) => {
            (image_png, png(5, 4, [10, 10, 200])).into_response()
        }
        "b.png" => (image_png, png(4, 4, [10, 200, 10])).into_response(),
        "c.png" => (image_png, png(8, 6, [50, 60, 70])).into_response(),
        "photo.jpg" => ([("content-type", "image/jpeg")], jpeg(40, 30)).into_response(),
        "anim.gif" => ([("content-type", "image/gif")], animated_gif()).into_response(),
        "art.svg" => ([("content-type", "image/svg+xml")], SVG).into_response(),
        "gated.png" => {
            while !src.open.load(Ordering::SeqCst) {
                let _ = tokio::time::timeout(Duration::from_millis(50), src.gate.notified()).await;
            }
            (image_png, png(6, 6, [1, 2, 3])).into_response()
        }
        "slow.png" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            (image_png, png(3, 3, [0, 0, 0])).into_response()
        }
        "big.png" => {
            let mut body = png(3, 3, [9, 9, 9]);
            body.resize(300_000, 0);
            (image_png, body).into_response()
        }
        // Says it is a PNG; the bytes say otherwise.
        "text.png" => (image_png, "just some text, not a picture").into_response(),
        "redirect.png" => {
            let addr = src
                .addr
                .lock()
                .expect("addr")
                .unwrap_or(([127, 0, 0, 1], 9).into());
            (
                StatusCode::FOUND,
                [("location", format!("http://{addr}/files/a.png"))],
            )
                .into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn hook(State(src): State<Arc<Source>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let fail = src
        .hook_failures
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let status = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    src.hooks
        .lock()
        .expect("hooks")
        .push((headers, body, status.as_u16()));
    status
}

async fn start_source() -> (Arc<Source>, String) {
    let src = Arc::new(Source::default());
    let app = Router::new()
        .route("/files/{name}", get(serve_file))
        .route("/hook", post(hook))
        .with_state(src.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    *src.addr.lock().expect("addr") = Some(addr);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (src, format!("http://{addr}"))
}

// ---------------------------------------------------------------- server

async fn server() -> TestServer {
    server_with(|_| {}).await
}

async fn server_with(adjust: impl FnOnce(&mut tintype_engine::EngineConfig)) -> TestServer {
    let s = TestServer::start_with(
        vec![tintype_livingdocs::router(
            tintype_livingdocs::Settings::default(),
        )],
        |c| {
            c.fetch.timeout = Duration::from_millis(1500);
            c.fetch.max_bytes = 100_000;
            c.job_backoff = Duration::from_millis(100);
            adjust(c);
        },
    )
    .await;
    tintype_livingdocs::install(&s.engine, &tintype_livingdocs::Settings::default());
    s
}

async fn post_import(s: &TestServer, token: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(s.url("/api/v1/import/images"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("post")
}

async fn import_id(s: &TestServer, token: &str, body: &Value) -> String {
    let r = post_import(s, token, body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    v["id"].as_str().expect("id").to_string()
}

async fn status(s: &TestServer, token: &str, id: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(s.url(&format!("/api/v1/import/images/status?id={id}")))
        .bearer_auth(token)
        .send()
        .await
        .expect("status");
    let code = r.status().as_u16();
    (code, r.json().await.expect("json"))
}

/// Polls the status until the import is finished (bounded by a generous
/// number of rounds, not asserted on time).
async fn finished(s: &TestServer, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let (code, v) = status(s, token, id).await;
        assert_eq!(code, 200, "{v}");
        if v["finished"] == true {
            return v;
        }
        assert_eq!(v["state"], "started");
        assert_eq!(v["id"], id);
        assert!(
            v["startedAt"].as_str().is_some_and(|t| t.len() == 19),
            "{v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("import {id} did not finish");
}

fn item(url: String, id: &str, title: &str) -> Value {
    json!({ "url": url, "id": id, "fileName": title, "metadata": { "caption": title } })
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn import_reports_every_item_and_signs_the_webhook_after_a_failed_delivery() {
    let (src, base) = start_source().await;
    src.hook_failures.store(1, Ordering::SeqCst);
    let s = server().await;
    let token = s
        .user_token("alice", &[Scope::ImageWrite, Scope::ImageRead])
        .await;
    let body = json!({
        "systemName": "archive",
        "webhook": format!("{base}/hook"),
        "context": { "myIdentifier": "batch-7" },
        "images": [
            item(format!("{base}/files/a.png"), "good", "Good one"),
            item(format!("{base}/files/nope.png"), "missing", "Missing"),
            item(format!("{base}/files/slow.png"), "slow", "Slow"),
            item(format!("{base}/files/big.png"), "big", "Big"),
            item(format!("{base}/files/text.png"), "text", "Text"),
            item(format!("{base}/files/redirect.png"), "redirected", "Redirected"),
        ]
    });
    let id = import_id(&s, &token, &body).await;
    let v = finished(&s, &token, &id).await;
    assert_eq!(v["state"], "success");
    assert_eq!(v["id"], id.as_str());
    let items = v["images"].as_array().expect("images");
    assert_eq!(items.len(), 6);
    let by_id =
        |ext: &str| -> &Value { items.iter().find(|i| i["externalId"] == ext).expect("item") };

    let good = by_id("good");
    assert_eq!(good["status"], "success");
    assert_eq!(good["state"], "success");
    assert_eq!(good["title"], "Good one");
    assert_eq!(good["systemName"], "archive");
    let img = &good["image"];
    let media_id = img["mediaId"].as_str().expect("mediaId");
    assert_eq!(img["width"], 3);
    assert_eq!(img["height"], 2);
    assert_eq!(img["mimeType"], "image/png");
    assert_eq!(img["imageService"], "tintype");
    assert_eq!(
        img["originalUrl"],
        s.url(&format!("/api/v1/images/{media_id}"))
    );
    assert_eq!(
        img["url"],
        s.url(&format!("/api/v1/images/{media_id}?format=auto"))
    );
    let stored = s.engine.image(media_id).await.expect("image");
    assert_eq!(stored.name.as_deref(), Some("Good one"));
    assert_eq!(stored.metadata["caption"], "Good one");

    let reason = |ext: &str| by_id(ext)["reason"].as_str().unwrap_or("").to_string();
    for ext in ["missing", "slow", "big", "text"] {
        assert_eq!(by_id(ext)["status"], "failed", "{ext}");
        assert!(by_id(ext).get("image").is_none(), "{ext}");
    }
    assert_eq!(reason("missing"), "could not fetch the image: HTTP 404");
    assert!(reason("slow").contains("timed out"), "{}", reason("slow"));
    assert!(
        reason("big").contains("exceeds 100000 bytes"),
        "{}",
        reason("big")
    );
    assert!(
        reason("text").contains("not an image"),
        "{}",
        reason("text")
    );
    // The guard is off in this server: the redirect is followed.
    assert_eq!(by_id("redirected")["status"], "success");
    let user = s.engine.user("alice").await.expect("user");
    let page = s
        .engine
        .list_images(user.id, None, 100)
        .await
        .expect("list");
    assert_eq!(page.images.len(), 2, "only the good items are stored");

    // The webhook: first answered 500, then delivered once more.
    for _ in 0..600 {
        let done = src.hooks.lock().expect("hooks").iter().any(|h| h.2 == 200);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..600 {
        let c = s.engine.job_counts().await.expect("counts");
        if c.queued == 0 && c.running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hooks = src.hooks.lock().expect("hooks").clone();
    assert_eq!(
        hooks.iter().map(|h| h.2).collect::<Vec<_>>(),
        vec![500, 200],
        "one failed and one successful delivery"
    );
    let (headers, raw, _) = &hooks[1];
    assert_eq!(raw, &hooks[0].1, "the retry sends the same body");
    let sent: Value = serde_json::from_slice(raw).expect("webhook json");
    assert_eq!(
        sent,
        json!({
            "source": "livingdocs-image-import",
            "id": id,
            "state": "success",
            "overview": { "total": 6, "details": { "success": 2, "skipped": 0, "failed": 4 } },
            "context": { "myIdentifier": "batch-7" },
        })
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(user.webhook_secret.as_bytes()).expect("mac");
    mac.update(raw);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        headers
            .get("x-tintype-signature")
            .and_then(|v| v.to_str().ok()),
        Some(expected.as_str())
    );
}

#[tokio::test]
async fn reimport_skips_same_bytes_and_updates_changed_bytes_in_place() {
    let (src, base) = start_source().await;
    let s = server().await;
    let token = s.user_token("bob", &[]).await;
    let batch = |title: &str| json!({ "systemName": "archive", "images": [item(format!("{base}/files/b.png"), "b-1", title)] });
    let first = finished(&s, &token, &import_id(&s, &token, &batch("B")).await).await;
    assert_eq!(first["images"][0]["status"], "success");
    let media_id = first["images"][0]["image"]["mediaId"]
        .as_str()
        .expect("mediaId")
        .to_string();
    let sha_before = s
        .engine
        .image(&media_id)
        .await
        .expect("image")
        .content
        .sha256;

    let again = finished(&s, &token, &import_id(&s, &token, &batch("B")).await).await;
    assert_eq!(again["images"][0]["status"], "skipped");
    assert_eq!(again["images"][0]["reason"], "already exists");
    assert_eq!(again["images"][0]["image"]["mediaId"], media_id.as_str());

    // Same pair in another system is another image.
    let other = json!({ "systemName": "other", "images": [item(format!("{base}/files/b.png"), "b-1", "B")] });
    let other = finished(&s, &token, &import_id(&s, &token, &other).await).await;
    assert_eq!(other["images"][0]["status"], "success");
    assert_ne!(other["images"][0]["image"]["mediaId"], media_id.as_str());

    src.changed.store(true, Ordering::SeqCst);
    let changed = finished(&s, &token, &import_id(&s, &token, &batch("B")).await).await;
    assert_eq!(changed["images"][0]["status"], "success");
    assert_eq!(changed["images"][0]["image"]["mediaId"], media_id.as_str());
    assert_eq!(changed["images"][0]["image"]["width"], 5);
    let after = s.engine.image(&media_id).await.expect("image");
    assert_ne!(after.content.sha256, sha_before);

    // Same bytes, new title: updated in place.
    let renamed = finished(
        &s,
        &token,
        &import_id(&s, &token, &batch("B renamed")).await,
    )
    .await;
    assert_eq!(renamed["images"][0]["status"], "success");
    assert_eq!(renamed["images"][0]["image"]["mediaId"], media_id.as_str());
    let after = s.engine.image(&media_id).await.expect("image");
    assert_eq!(after.name.as_deref(), Some("B renamed"));
    assert_eq!(after.metadata["caption"], "B renamed");

    let user = s.engine.user("bob").await.expect("user");
    let page = s
        .engine
        .list_images(user.id, None, 100)
        .await
        .expect("list");
    assert_eq!(page.images.len(), 2);
}

#[tokio::test]
async fn an_invalid_batch_is_refused_whole_in_the_public_api_envelope() {
    let (_src, base) = start_source().await;
    let s = server().await;
    let token = s.user_token("carol", &[]).await;
    let r = post_import(
        &s,
        &token,
        &json!({
            "systemName": "archive",
            "images": [
                item(format!("{base}/files/a.png"), "ok", "fine"),
                { "url": "data:image/png;base64,AAAA", "id": "d" },
                { "url": "ftp://example.com/x.png", "id": "ok" },
            ]
        }),
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v,
        json!({
            "status": 400,
            "error": "Bad Request",
            "error_details": {
                "images[1].url": "data URLs are not allowed",
                "images[2].url": "must be an http or https URL",
                "images[2].id": "must be unique within the batch",
            }
        })
    );
    let r = reqwest::Client::new()
        .post(s.url("/api/v1/import/images"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert!(v["error_details"]["body"]
        .as_str()
        .is_some_and(|m| m.starts_with("must be valid JSON")));
    // Nothing was queued or stored.
    let user = s.engine.user("carol").await.expect("user");
    assert!(s
        .engine
        .list_images(user.id, None, 10)
        .await
        .expect("list")
        .images
        .is_empty());
    assert_eq!(
        s.engine
            .count_records(tintype_livingdocs::IMPORT_SCOPE, Some(user.id))
            .await
            .expect("count"),
        0
    );

    let r = reqwest::Client::new()
        .post(s.url("/api/v1/import/images"))
        .json(&json!({}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["status"], 401);
    assert_eq!(v["error"], "Unauthorized");
    assert!(v["error_details"]["access_token"].is_string());

    let read_only = s.user_token("carol", &[Scope::ImageRead]).await;
    let r = post_import(&s, &read_only, &json!({})).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"], "Forbidden");
}

#[tokio::test]
async fn the_usage_limit_refuses_the_whole_batch_with_429() {
    let (_src, base) = start_source().await;
    let s = server().await;
    let token = s.user_token("dave", &[]).await;
    s.engine.set_quota("dave", 3).await.expect("quota");
    let one =
        json!({ "systemName": "a", "images": [item(format!("{base}/files/a.png"), "1", "one")] });
    let done = finished(&s, &token, &import_id(&s, &token, &one).await).await;
    assert_eq!(done["images"][0]["status"], "success");

    let three: Vec<Value> = (0..3)
        .map(|i| item(format!("{base}/files/c.png"), &format!("c{i}"), "c"))
        .collect();
    let r = post_import(&s, &token, &json!({ "systemName": "a", "images": three })).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("3600")
    );
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v,
        json!([{
            "status": 429,
            "error": "Usage Limit Exceeded",
            "error_details": {
                "message": "Your plan does not allow you to upload more than 3 per day.\n      You already uploaded 1 in the last 24 hours and are trying to upload 3 more.\n      Please try again later."
            }
        }])
    );
    let user = s.engine.user("dave").await.expect("user");
    assert_eq!(
        s.engine.images_last_day(user.id).await.expect("count"),
        1,
        "nothing of the refused batch was imported"
    );
}

#[tokio::test]
async fn the_fetch_guard_refuses_loopback_when_private_addresses_are_not_allowed() {
    let (src, base) = start_source().await;
    let s = server_with(|c| c.fetch.allow_private = false).await;
    let token = s.user_token("erin", &[]).await;
    // The webhook is checked when the batch is posted.
    let r = post_import(
        &s,
        &token,
        &json!({ "systemName": "a", "webhook": format!("{base}/hook"),
                 "images": [item(format!("{base}/files/a.png"), "1", "one")] }),
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v["error_details"]["webhook"],
        "address 127.0.0.1 is not public"
    );

    let body = json!({ "systemName": "a", "images": [
        item(format!("{base}/files/a.png"), "1", "one"),
        item(format!("{base}/files/redirect.png"), "2", "two"),
        item("http://[::1]:9/x.png".to_string(), "3", "three"),
    ]});
    let v = finished(&s, &token, &import_id(&s, &token, &body).await).await;
    for i in 0..3 {
        assert_eq!(v["images"][i]["status"], "failed");
        let reason = v["images"][i]["reason"].as_str().expect("reason");
        assert!(reason.contains("is not public"), "{reason}");
    }
    assert_eq!(
        src.hits("a.png") + src.hits("redirect.png"),
        0,
        "nothing was fetched"
    );
}

#[tokio::test]
async fn format_auto_answers_webp_to_clients_that_accept_it() {
    let (_src, base) = start_source().await;
    let s = server().await;
    let token = s.user_token("frank", &[]).await;
    let body =
        json!({ "systemName": "a", "images": [item(format!("{base}/files/c.png"), "c", "C")] });
    let v = finished(&s, &token, &import_id(&s, &token, &body).await).await;
    let url = v["images"][0]["image"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    let original = v["images"][0]["image"]["originalUrl"]
        .as_str()
        .expect("originalUrl")
        .to_string();
    let client = reqwest::Client::new();

    let r = client
        .get(&url)
        .header("accept", "image/webp,*/*;q=0.8")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/webp");
    assert_eq!(r.headers()["vary"], "Accept");
    let etag = r.headers()["etag"].to_str().expect("etag").to_string();
    let bytes = r.bytes().await.expect("body");
    let decoded = image::load_from_memory_with_format(&bytes, image::ImageFormat::WebP)
        .expect("webp decodes");
    assert_eq!((decoded.width(), decoded.height()), (8, 6));

    let r = client
        .get(&url)
        .header("accept", "image/webp")
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 304);

    let r = client
        .get(&url)
        .header("accept", "image/png,image/*")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["vary"], "Accept");
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        png(8, 6, [50, 60, 70]).as_slice()
    );

    let r = client
        .get(&original)
        .header("accept", "image/webp")
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["content-type"], "image/png");

    let r = client
        .get(s.url("/api/v1/images/0123456789abcdef0123456789abcdef"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["status"], 404);
}

/// Waits until the upload's own variants are rendered: only conversions
/// count after it.
async fn jobs_idle(s: &TestServer) {
    for _ in 0..200 {
        let c = s.engine.job_counts().await.expect("counts");
        if c.queued + c.running == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the queue did not empty");
}

#[tokio::test]
async fn format_auto_negotiates_avif_then_webp_then_the_original() {
    use tintype_engine::media::{sniff, Format};
    let (_src, base) = start_source().await;
    let s = server().await;
    let token = s.user_token("ines", &[]).await;
    let body = json!({ "systemName": "a", "images": [
        item(format!("{base}/files/photo.jpg"), "photo", "Photo"),
        item(format!("{base}/files/anim.gif"), "anim", "Anim"),
        item(format!("{base}/files/art.svg"), "art", "Art"),
    ] });
    let v = finished(&s, &token, &import_id(&s, &token, &body).await).await;
    let url_of = |external: &str| {
        v["images"]
            .as_array()
            .expect("images")
            .iter()
            .find(|i| i["externalId"] == external)
            .and_then(|i| i["image"]["url"].as_str())
            .unwrap_or_else(|| panic!("no url for {external}: {v}"))
            .to_string()
    };
    jobs_idle(&s).await;
    let client = reqwest::Client::new();
    let get = |url: String, accept: Option<&'static str>| {
        let client = client.clone();
        async move {
            let mut req = client.get(&url);
            if let Some(a) = accept {
                req = req.header("accept", a);
            }
            let r = req.send().await.expect("get");
            assert_eq!(r.status(), 200, "{url} with {accept:?}");
            assert_eq!(r.headers()["vary"], "Accept", "{url} with {accept:?}");
            let ct = r.headers()["content-type"]
                .to_str()
                .expect("content-type")
                .to_string();
            (ct, r.bytes().await.expect("body").to_vec())
        }
    };

    let photo = url_of("photo");
    let before = s.engine.metrics.renders.get();
    let (ct, avif) = get(photo.clone(), Some("image/avif,image/webp")).await;
    assert_eq!(ct, "image/avif");
    assert_eq!(sniff(&avif), Some(Format::Avif));
    let p = tintype_engine::media::probe_bytes(&avif, &Default::default()).expect("avif probes");
    assert_eq!((p.width, p.height), (Some(40), Some(30)));
    let (ct, webp) = get(photo.clone(), Some("image/webp")).await;
    assert_eq!(ct, "image/webp");
    let decoded =
        image::load_from_memory_with_format(&webp, image::ImageFormat::WebP).expect("webp decodes");
    assert_eq!((decoded.width(), decoded.height()), (40, 30));
    for accept in [None, Some("image/png,image/*;q=0.8,*/*;q=0.5")] {
        let (ct, bytes) = get(photo.clone(), accept).await;
        assert_eq!(ct, "image/jpeg", "{accept:?}");
        assert_eq!(bytes, jpeg(40, 30), "{accept:?}: the original bytes");
    }
    // Each encoding is its own variant, made once.
    assert_eq!(get(photo.clone(), Some("image/avif")).await.1, avif);
    assert_eq!(get(photo.clone(), Some("image/webp;q=0.9")).await.1, webp);
    assert_eq!(s.engine.metrics.renders.get() - before, 2);

    // Animated GIFs and SVGs keep their format.
    let anim = url_of("anim");
    let (ct, bytes) = get(anim, Some("image/avif,image/webp,*/*")).await;
    assert_eq!(ct, "image/gif");
    assert_eq!(bytes, animated_gif());
    let art = url_of("art");
    let (ct, bytes) = get(art, Some("image/avif,image/webp,*/*")).await;
    assert!(ct.starts_with("image/svg+xml"), "{ct}");
    assert_eq!(bytes, SVG.as_bytes());
}

#[tokio::test]
async fn format_auto_over_the_decode_budget_falls_back_to_webp_then_the_original() {
    let (_src, base) = start_source().await;
    // Room for a small WebP, not for libaom's fixed buffers.
    let s = server_with(|c| c.decode_budget.max_bytes = 16 << 20).await;
    let token = s.user_token("jon", &[]).await;
    let body =
        json!({ "systemName": "a", "images": [item(format!("{base}/files/photo.jpg"), "p", "P")] });
    let v = finished(&s, &token, &import_id(&s, &token, &body).await).await;
    let url = v["images"][0]["image"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no url: {v}"))
        .to_string();
    jobs_idle(&s).await;
    let client = reqwest::Client::new();
    for (accept, want) in [
        ("image/avif,image/webp", "image/webp"),
        ("image/avif", "image/jpeg"),
    ] {
        let r = client
            .get(&url)
            .header("accept", accept)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{accept}");
        assert_eq!(r.headers()["content-type"], want, "{accept}");
        assert_eq!(r.headers()["vary"], "Accept");
    }
}

#[tokio::test]
async fn format_auto_asked_by_8_clients_at_once_converts_once() {
    let (_src, base) = start_source().await;
    let s = server().await;
    let token = s.user_token("hana", &[]).await;
    let body =
        json!({ "systemName": "a", "images": [item(format!("{base}/files/c.png"), "c", "C")] });
    let v = finished(&s, &token, &import_id(&s, &token, &body).await).await;
    let url = v["images"][0]["image"]["url"]
        .as_str()
        .expect("url")
        .to_string();
    // Let the upload's own variants finish first: only conversions count.
    for _ in 0..200 {
        let c = s.engine.job_counts().await.expect("counts");
        if c.queued + c.running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = s.engine.metrics.renders.get();
    let gets = (0..8).map(|_| {
        let url = url.clone();
        async move {
            let r = reqwest::Client::new()
                .get(&url)
                .header("accept", "image/webp")
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "image/webp");
            r.bytes().await.expect("body").to_vec()
        }
    });
    let bodies = futures::future::join_all(gets).await;
    assert!(
        bodies.iter().all(|b| b == &bodies[0]),
        "clients got different bytes"
    );
    let after = s.engine.metrics.renders.get();
    assert_eq!(after - before, 1, "one picture must be converted once");
}

#[tokio::test]
async fn status_of_an_unknown_or_foreign_import_is_404() {
    let (_src, base) = start_source().await;
    let s = server().await;
    let alice = s.user_token("gina", &[]).await;
    let mallory = s.user_token("mallory", &[]).await;
    let body =
        json!({ "systemName": "a", "images": [item(format!("{base}/files/a.png"), "1", "one")] });
    let id = import_id(&s, &alice, &body).await;
    let (code, v) = status(&s, &mallory, &id).await;
    assert_eq!(code, 404);
    assert_eq!(v["error"], "Not Found");
    let (code, _) = status(&s, &alice, "nope").await;
    assert_eq!(code, 404);
    let r = reqwest::Client::new()
        .get(s.url("/api/v1/import/images/status"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error_details"]["id"], "is required");
    finished(&s, &alice, &id).await;
}

// ---------------------------------------------------------------- restart

/// A tintype node over a data directory that outlives it.
async fn start_node(dir: &std::path::Path) -> (Arc<tintype_engine::Engine>, String) {
    let catalog =
        tintype_store::open_catalog(&format!("sqlite://{}", dir.join("catalog.db").display()))
            .await
            .expect("catalog");
    let blobs = tintype_store::open_blob_store(&dir.join("blobs").display().to_string())
        .await
        .expect("blobs");
    let mut config = tintype_engine::EngineConfig::new(dir.join("tmp"));
    config.fetch.allow_private = true;
    config.poll_interval = Duration::from_millis(50);
    config.job_backoff = Duration::from_millis(100);
    config.job_lease = Duration::from_secs(1);
    config.workers = 1;
    let engine = tintype_engine::Engine::new(catalog, blobs, config).expect("engine");
    tintype_livingdocs::install(&engine, &tintype_livingdocs::Settings::default());
    engine.start_workers();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = tintype_http::app(
        tintype_http::AppState::new(engine.clone(), &base),
        vec![tintype_livingdocs::router(
            tintype_livingdocs::Settings::default(),
        )],
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (engine, base)
}

#[tokio::test]
async fn a_job_killed_mid_batch_is_finished_after_restart_without_importing_an_item_twice() {
    let (src, base) = start_source().await;
    let dir = tempfile::tempdir().expect("dir");

    // Node A runs in its own runtime, so that dropping the runtime kills
    // its workers and server mid-job, as a killed process would.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<(String, String)>();
    let (kill_tx, kill_rx) = tokio::sync::oneshot::channel::<()>();
    let dir_a = dir.path().to_path_buf();
    let node_a = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (engine, base) = start_node(&dir_a).await;
            engine.create_user("hank", None).await.expect("user");
            let token = engine
                .create_token("hank", &[])
                .await
                .expect("token")
                .secret;
            let _ = ready_tx.send((base, token));
            let _ = kill_rx.await;
        });
        rt.shutdown_background();
    });
    let (base_a, token) = ready_rx.await.expect("node A");
    let r = reqwest::Client::new()
        .post(format!("{base_a}/api/v1/import/images"))
        .bearer_auth(&token)
        .json(&json!({ "systemName": "archive", "images": [
            item(format!("{base}/files/a.png"), "first", "First"),
            item(format!("{base}/files/gated.png"), "second", "Second"),
        ]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.expect("json")["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Wait until the first item is recorded and the second is being fetched.
    let observer = tintype_store::open_catalog(&format!(
        "sqlite://{}",
        dir.path().join("catalog.db").display()
    ))
    .await
    .expect("catalog");
    let scope = tintype_livingdocs::item_scope(&id);
    let mut first = None;
    for _ in 0..600 {
        first = observer.record(&scope, "0").await.expect("record");
        if first.is_some() && src.hits("gated.png") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = first.expect("the first item was done before the kill");
    assert_eq!(first.data["status"], "success");
    let first_media = first.data["image_id"].as_str().expect("image").to_string();
    assert!(observer
        .record(&scope, "1")
        .await
        .expect("record")
        .is_none());

    let _ = kill_tx.send(());
    tokio::task::spawn_blocking(move || node_a.join())
        .await
        .expect("join")
        .expect("node A stopped");

    // Node B over the same data takes the job over once A's lease is out.
    src.open.store(true, Ordering::SeqCst);
    src.gate.notify_waiters();
    let (engine_b, base_b) = start_node(dir.path()).await;
    let mut done = Value::Null;
    for _ in 0..600 {
        let v: Value = reqwest::Client::new()
            .get(format!("{base_b}/api/v1/import/images/status?id={id}"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("status")
            .json()
            .await
            .expect("json");
        if v["finished"] == true {
            done = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(done["state"], "success", "{done}");
    assert_eq!(done["images"][0]["status"], "success");
    assert_eq!(done["images"][0]["image"]["mediaId"], first_media.as_str());
    assert_eq!(done["images"][1]["status"], "success");
    assert_eq!(done["images"][1]["image"]["width"], 6);
    assert_eq!(
        src.hits("a.png"),
        1,
        "the finished item was not fetched again"
    );
    let user = engine_b.user("hank").await.expect("user");
    let page = engine_b
        .list_images(user.id, None, 100)
        .await
        .expect("list");
    assert_eq!(page.images.len(), 2, "no item imported twice");
}
