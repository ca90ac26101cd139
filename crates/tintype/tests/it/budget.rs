//! The decode memory budget: a render that can never fit is refused at
//! once (422); renders past the budget wait, then answer 503 with
//! `Retry-After`; an idle server always has room.

use crate::harness::*;
use std::sync::{Arc, Barrier};

#[test]
fn a_render_needing_more_than_the_whole_budget_answers_422_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(
        &data,
        Opts::default()
            .env("TINTYPE_WORKERS", "0")
            .env("TINTYPE_MAX_DECODE_MEMORY", &(8u64 << 20).to_string()),
    );
    let token = user_with_token(&data, "bea", &[]);
    let c = client();
    // 2000x2000 decodes to far more than 8 MiB of pixels.
    let big = upload_raw(&c, &s, &token, "big.png", png(2000, 2000, 1));
    let small = upload_raw(&c, &s, &token, "small.png", png(120, 90, 2));

    let r = c
        .get(s.url(&format!(
            "/v1/images/{}/variants/large",
            big["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(v["type"], "urn:tintype:problem:over_budget");
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains(&(8u64 << 20).to_string()),
        "the detail names the budget: {detail}"
    );

    // A picture that fits renders on the same server.
    let r = c
        .get(s.url(&format!(
            "/v1/images/{}/variants/large",
            small["id"].as_str().unwrap()
        )))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn renders_past_the_budget_answer_503_with_retry_after_and_an_idle_server_has_room() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // Room for one 1500x1500 render at a time, and no waiting.
    let s = Server::start(
        &data,
        Opts::default()
            .env("TINTYPE_WORKERS", "0")
            .env("TINTYPE_MAX_DECODE_MEMORY", &(32u64 << 20).to_string())
            .env("TINTYPE_DECODE_WAIT_SECS", "0"),
    );
    let token = user_with_token(&data, "cleo", &[]);
    let c = client();
    let ids: Vec<String> = (0..6)
        .map(|i| {
            let v = upload_raw(&c, &s, &token, "n.png", noisy_png(1500, 1500, 40 + i));
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    let barrier = Arc::new(Barrier::new(ids.len()));
    let handles: Vec<_> = ids
        .iter()
        .map(|id| {
            let url = s.url(&format!("/v1/images/{id}/variants/large"));
            let (token, barrier) = (token.clone(), barrier.clone());
            std::thread::spawn(move || {
                let c = client();
                barrier.wait();
                let r = c.get(&url).bearer_auth(&token).send().unwrap();
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                let ct = r
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string());
                (status, retry, ct)
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let busy: Vec<_> = results.iter().filter(|r| r.0 == 503).collect();
    assert!(ok >= 1, "at least one render ran: {results:?}");
    assert!(
        !busy.is_empty(),
        "renders past the budget must be refused: {results:?}"
    );
    assert_eq!(ok + busy.len(), results.len(), "{results:?}");
    for b in busy {
        assert_eq!(b.1.as_deref(), Some("1"), "503 carries Retry-After");
        assert_eq!(b.2.as_deref(), Some("application/problem+json"));
    }
    // One at a time, every one of them renders: idle never answers 503.
    for id in &ids {
        let r = c
            .get(s.url(&format!("/v1/images/{id}/variants/large")))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}
