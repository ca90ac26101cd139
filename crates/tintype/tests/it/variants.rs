//! Variants rendered on demand, once, at the right size; SVG served safely.

use crate::harness::*;
use std::sync::{Arc, Barrier};

#[test]
fn on_demand_variant_asked_by_20_clients_at_once_is_rendered_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // No job workers: nothing renders the variants but the requests.
    let s = Server::start(&data, Opts::default().env("TINTYPE_WORKERS", "0"));
    let token = user_with_token(&data, "vera", &[]);
    let c = client();
    let img = upload_raw(&c, &s, &token, "wide.png", png(1600, 1200, 4));
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(
        img["variants"],
        serde_json::json!([]),
        "rendered without workers?"
    );
    let before = s.metric("tintype_variant_renders_total");

    let url = s.url(&format!("/v1/images/{id}/variants/large1080"));
    let barrier = Arc::new(Barrier::new(20));
    let handles: Vec<_> = (0..20)
        .map(|_| {
            let (url, token, barrier) = (url.clone(), token.clone(), barrier.clone());
            std::thread::spawn(move || {
                let c = client();
                barrier.wait();
                let r = c.get(&url).bearer_auth(&token).send().unwrap();
                let status = r.status().as_u16();
                let etag = r
                    .headers()
                    .get("etag")
                    .map(|v| v.to_str().unwrap().to_string());
                let ct = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string());
                (status, etag, ct, r.bytes().unwrap().to_vec())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (status, _, _, body) in &results {
        assert_eq!(*status, 200, "{}", String::from_utf8_lossy(body));
    }
    let first = &results[0];
    for r in &results {
        assert_eq!(r.1, first.1, "clients got different variants");
        assert_eq!(r.3, first.3, "clients got different bytes");
    }
    // large1080 is a JPEG preset (Fulcrum's versions), even from a PNG.
    assert_eq!(first.2.as_deref(), Some("image/jpeg"));
    assert_eq!(
        first.1.as_deref(),
        Some(format!("\"{}\"", sha256_hex(&first.3)).as_str())
    );
    let after = s.metric("tintype_variant_renders_total");
    assert_eq!(
        after - before,
        1.0,
        "20 concurrent requests rendered {} times",
        after - before
    );

    // 1600x1200 within 1080x1080: 1080x810.
    let decoded = image::load_from_memory(&first.3).expect("the variant decodes");
    assert_eq!((decoded.width(), decoded.height()), (1080, 810));

    // Asked again: served from the catalog, not rendered.
    let r = c.get(&url).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.metric("tintype_variant_renders_total"), after);
    // The image now lists it.
    let v: serde_json::Value = c
        .get(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let vs = v["variants"].as_array().unwrap();
    assert_eq!(vs.len(), 1);
    assert_eq!(vs[0]["preset"], "large1080");
    assert_eq!(
        (vs[0]["width"].as_i64(), vs[0]["height"].as_i64()),
        (Some(1080), Some(810))
    );

    // The other presets have the right sizes too (fill crops, fit never enlarges).
    for (preset, w, h) in [
        ("small", 50, 50),
        ("medium", 100, 75),
        ("thumbnail", 200, 150),
        ("large", 700, 525),
    ] {
        let r = c
            .get(s.url(&format!("/v1/images/{id}/variants/{preset}")))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{preset}");
        let d = image::load_from_memory(&r.bytes().unwrap()).unwrap();
        assert_eq!((d.width(), d.height()), (w, h), "{preset}");
    }
    // An unknown preset is a 404 problem.
    let r = c
        .get(s.url(&format!("/v1/images/{id}/variants/huge")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[test]
fn a_small_picture_is_never_enlarged_and_jpeg_stays_jpeg() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default().env("TINTYPE_WORKERS", "0"));
    let token = user_with_token(&data, "vera", &[]);
    let c = client();
    let img = upload_raw(&c, &s, &token, "tiny.jpg", jpeg(60, 40, 4));
    let r = c
        .get(s.url(&format!(
            "/v1/images/{}/variants/thumbnail",
            img["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let d = image::load_from_memory(&r.bytes().unwrap()).unwrap();
    assert_eq!((d.width(), d.height()), (60, 40));
}

#[test]
fn svg_original_is_served_with_a_restrictive_csp_and_nosniff() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "sam", &[]);
    let c = client();
    let svg = br##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="120" height="80" viewBox="0 0 120 80">
  <script>alert(document.cookie)</script>
  <rect width="120" height="80" fill="#c33"/>
</svg>
"##;
    let img = upload_raw(&c, &s, &token, "x.svg", svg.to_vec());
    assert_eq!(img["content_type"], "image/svg+xml");
    let r = c
        .get(s.url(&format!(
            "/v1/images/{}/original",
            img["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers();
    assert_eq!(h["content-type"], "image/svg+xml");
    assert_eq!(
        h["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().unwrap().as_ref(), &svg[..]);
}
