//! The hot-path caches: what this node changes is seen at once, and the
//! caches stay within their bounds.

use crate::harness::*;
use reqwest::blocking::multipart;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tintype_engine::cache::{BlobCache, TtlCache};
use tintype_engine::{Engine, EngineConfig};

struct Fixture {
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

async fn engine() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog = tintype_store::open_catalog(&db).await.expect("catalog");
    let blobs = tintype_store::open_blob_store(&dir.path().join("blobs").display().to_string())
        .await
        .expect("blobs");
    let mut cfg = EngineConfig::new(dir.path().join("tmp"));
    cfg.workers = 0;
    let engine = Engine::new(catalog, blobs, cfg).expect("engine");
    Fixture { engine, _dir: dir }
}

#[tokio::test]
async fn a_revoked_token_never_works_again_on_the_node_that_revoked_it() {
    let f = engine().await;
    let e = &f.engine;
    e.create_user("rita", None).await.unwrap();
    let t = e.create_token("rita", &[]).await.unwrap();
    let other = e.create_token("rita", &[]).await.unwrap();
    // Warm: the principal is now cached.
    for _ in 0..3 {
        let p = e
            .authenticate(&t.secret)
            .await
            .unwrap()
            .expect("valid token");
        assert_eq!(p.token_id, t.token.id);
    }
    assert!(e.authenticate(&other.secret).await.unwrap().is_some());
    assert!(e.caches().tokens.len() >= 2, "tokens were not cached");

    e.revoke_token(&t.token.id).await.unwrap();
    // The very next lookup refuses it, and so do all after it.
    for _ in 0..3 {
        assert!(e.authenticate(&t.secret).await.unwrap().is_none());
    }
    // The user's other token still works.
    assert!(e.authenticate(&other.secret).await.unwrap().is_some());
}

#[tokio::test]
async fn a_quota_change_is_seen_at_once_on_the_same_node() {
    let f = engine().await;
    let e = &f.engine;
    e.create_user("quinn", None).await.unwrap();
    let t = e.create_token("quinn", &[]).await.unwrap();
    let p = e.authenticate(&t.secret).await.unwrap().unwrap();
    assert_eq!(p.user.images_per_day, 0);
    e.set_quota("quinn", 7).await.unwrap();
    let p = e.authenticate(&t.secret).await.unwrap().unwrap();
    assert_eq!(p.user.images_per_day, 7);
}

fn upload(s: &Server, token: &str) -> Value {
    let c = reqwest::blocking::Client::new();
    let r = c
        .post(s.url("/v1/images"))
        .bearer_auth(token)
        .body(jpeg(320, 240, 9))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    r.json().unwrap()
}

fn status(c: &reqwest::blocking::Client, url: &str, token: Option<&str>) -> u16 {
    let mut rq = c.get(url);
    if let Some(t) = token {
        rq = rq.bearer_auth(t);
    }
    rq.send().unwrap().status().as_u16()
}

#[test]
fn a_deleted_image_is_404_at_once_on_the_same_node() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "dora", &[]);
    let c = reqwest::blocking::Client::new();

    let img = upload(&s, &token);
    let id = img["id"].as_str().unwrap().to_string();
    let original = s.url(&format!("/v1/images/{id}/original"));
    let thumb = s.url(&format!("/v1/images/{id}/variants/thumbnail"));
    let json = s.url(&format!("/v1/images/{id}"));
    // Warm every cache on the way (token, image, variant, small blobs).
    for _ in 0..3 {
        assert_eq!(status(&c, &original, Some(&token)), 200);
        assert_eq!(status(&c, &thumb, Some(&token)), 200);
        assert_eq!(status(&c, &json, Some(&token)), 200);
    }
    let body = c
        .get(&original)
        .bearer_auth(&token)
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert_eq!(body.as_ref(), jpeg(320, 240, 9).as_slice());

    let r = c.delete(&json).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(status(&c, &original, Some(&token)), 404);
    assert_eq!(status(&c, &thumb, Some(&token)), 404);
    assert_eq!(status(&c, &json, Some(&token)), 404);

    // The anonymous diaspora size URLs too.
    let part = multipart::Part::bytes(jpeg(200, 100, 4)).file_name("p.jpg");
    let r = c
        .post(s.url("/api/v1/photos"))
        .bearer_auth(&token)
        .multipart(multipart::Form::new().part("image", part))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "diaspora upload: {}", r.status());
    let photo: Value = r.json().unwrap();
    let guid = photo["guid"].as_str().expect("guid").to_string();
    let raw = s.url(&format!("/api/v1/photos/{guid}/sizes/raw"));
    let small = s.url(&format!("/api/v1/photos/{guid}/sizes/small"));
    for _ in 0..3 {
        assert_eq!(status(&c, &raw, None), 200);
        assert_eq!(status(&c, &small, None), 200);
    }
    let r = c
        .delete(s.url(&format!("/api/v1/photos/{guid}")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(status(&c, &raw, None), 404);
    assert_eq!(status(&c, &small, None), 404);
}

#[test]
fn ranges_and_304_from_the_small_blob_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "rob", &[]);
    let c = reqwest::blocking::Client::new();
    let img = upload(&s, &token);
    let bytes = jpeg(320, 240, 9);
    let url = s.url(&format!(
        "/v1/images/{}/original",
        img["id"].as_str().unwrap()
    ));
    for _ in 0..2 {
        let r = c
            .get(&url)
            .bearer_auth(&token)
            .header("Range", "bytes=10-19")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 206);
        assert_eq!(r.bytes().unwrap().as_ref(), &bytes[10..20]);
        let r = c
            .get(&url)
            .bearer_auth(&token)
            .header("Range", "bytes=-5")
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 206);
        assert_eq!(r.bytes().unwrap().as_ref(), &bytes[bytes.len() - 5..]);
    }
    let etag = format!("\"{}\"", img["sha256"].as_str().unwrap());
    let r = c
        .get(&url)
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 304);
}

#[test]
fn caches_never_hold_more_than_their_cap() {
    let c: TtlCache<String, u64> = TtlCache::new(64, Duration::from_secs(3600));
    for i in 0..1000u64 {
        let g = c.generation();
        c.insert(g, format!("k{i}"), i);
        assert!(
            c.len() <= c.cap(),
            "{} entries over a cap of {}",
            c.len(),
            c.cap()
        );
    }
    assert_eq!(c.len(), 64);
    assert_eq!(c.get("k999"), Some(999));

    let b = BlobCache::new(4096, 10_000);
    for i in 0..100u32 {
        b.insert(&format!("{i:064x}"), bytes_of(1000 + i));
        let (_, used) = b.usage();
        assert!(used <= b.total(), "{used} bytes over {}", b.total());
    }
    // Over the per-blob limit: not kept.
    b.insert("big", bytes_of(4097));
    assert!(b.get("big").is_none());
}

#[tokio::test]
async fn the_engine_caches_stay_within_their_bounds() {
    let f = engine().await;
    let e = &f.engine;
    e.create_user("ivy", None).await.unwrap();
    let mut secrets = Vec::new();
    for _ in 0..50 {
        secrets.push(e.create_token("ivy", &[]).await.unwrap().secret);
    }
    for s in &secrets {
        assert!(e.authenticate(s).await.unwrap().is_some());
    }
    let t = &e.caches().tokens;
    assert!(t.len() <= t.cap());
    assert_eq!(t.len(), 50.min(t.cap()));
    let (_, used) = e.caches().blobs.usage();
    assert!(used <= e.caches().blobs.total());
}

fn bytes_of(n: u32) -> Vec<u8> {
    vec![7u8; n as usize]
}
