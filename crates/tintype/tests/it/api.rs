//! The native API against a real `tintype serve`.

use crate::harness::*;
use reqwest::blocking::multipart;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::{Duration, Instant};

fn setup() -> (tempfile::TempDir, Server, String) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "alice", &[]);
    (tmp, s, token)
}

fn problem(r: reqwest::blocking::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status, "unexpected status");
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert_eq!(ct, "application/problem+json");
    let v: Value = r.json().unwrap();
    assert_eq!(v["status"], status);
    assert!(v["type"].is_string() && v["title"].is_string() && v["detail"].is_string());
    v
}

#[test]
fn upload_multipart_and_raw_then_get_patch_delete() {
    let (_tmp, s, token) = setup();
    let c = client();

    // Multipart with a name and metadata.
    let bytes = png(64, 48, 1);
    let form = multipart::Form::new()
        .text("name", "cat.png")
        .text("metadata", r#"{"album":"pets","n":3}"#)
        .part(
            "file",
            multipart::Part::bytes(bytes.clone()).file_name("cat.png"),
        );
    let r = c
        .post(s.url("/v1/images"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let a: Value = r.json().unwrap();
    assert_eq!(a["name"], "cat.png");
    assert_eq!(a["kind"], "picture");
    assert_eq!(a["content_type"], "image/png");
    assert_eq!(a["size"], bytes.len());
    assert_eq!(a["sha256"], sha256_hex(&bytes));
    assert_eq!(
        (a["width"].as_i64(), a["height"].as_i64()),
        (Some(64), Some(48))
    );
    assert_eq!(a["metadata"], json!({"album":"pets","n":3}));
    let id = a["id"].as_str().unwrap().to_string();
    assert_eq!(location, s.url(&format!("/v1/images/{id}")));
    assert_eq!(a["urls"]["self"], location);

    // Raw body with ?name=.
    let jb = jpeg(30, 20, 2);
    let b = upload_raw(&c, &s, &token, "photo.jpg", jb.clone());
    assert_eq!(b["name"], "photo.jpg");
    assert_eq!(b["content_type"], "image/jpeg");
    assert_eq!(b["sha256"], sha256_hex(&jb));
    assert_eq!(
        (b["width"].as_i64(), b["height"].as_i64()),
        (Some(30), Some(20))
    );
    assert_ne!(b["id"], a["id"]);

    // GET returns the same image, and the original bytes are the upload.
    let g: Value = c
        .get(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(g["id"], a["id"]);
    assert_eq!(g["sha256"], a["sha256"]);
    let orig = c
        .get(g["urls"]["original"].as_str().unwrap())
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(orig.status(), 200);
    assert_eq!(orig.bytes().unwrap().as_ref(), &bytes[..]);

    // PATCH the name and metadata; both persist.
    let r = c
        .patch(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .json(&json!({"name": "renamed.png", "metadata": {"album": "x"}}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let p: Value = r.json().unwrap();
    assert_eq!(p["name"], "renamed.png");
    assert_eq!(p["metadata"], json!({"album": "x"}));
    let g: Value = c
        .get(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(g["name"], "renamed.png");
    assert_eq!(g["metadata"], json!({"album": "x"}));
    // PATCH name: null clears the name; an unknown field is refused.
    let p: Value = c
        .patch(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .json(&json!({"name": null}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(p["name"], Value::Null);
    assert_eq!(p["metadata"], json!({"album": "x"}));
    let r = c
        .patch(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .json(&json!({"sha256": "00"}))
        .send()
        .unwrap();
    problem(r, 400);

    // DELETE: 204, then 404 everywhere, and the list no longer has it.
    let r = c
        .delete(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    for path in [
        format!("/v1/images/{id}"),
        format!("/v1/images/{id}/original"),
    ] {
        let r = c.get(s.url(&path)).bearer_auth(&token).send().unwrap();
        problem(r, 404);
    }
    let r = c
        .delete(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    problem(r, 404);
    let all = list_all(&c, &s, &token, 10);
    let ids: Vec<&str> = all.iter().map(|v| v["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![b["id"].as_str().unwrap()]);
}

#[test]
fn list_pagination_follows_link_to_the_end_without_gaps_or_repeats() {
    let (tmp, s, token) = setup();
    let c = client();
    let mut uploaded = Vec::new();
    for i in 0..23u8 {
        let v = upload_raw(&c, &s, &token, &format!("p{i}"), png(8, 8, i));
        uploaded.push(v["id"].as_str().unwrap().to_string());
    }
    // Another user's image must never show up.
    let bob = user_with_token(&tmp.path().join("data"), "bob", &[]);
    upload_raw(&c, &s, &bob, "bobs", png(8, 8, 200));

    for limit in [1usize, 5, 10, 23, 50] {
        let all = list_all(&c, &s, &token, limit);
        let ids: Vec<String> = all
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "limit {limit}: an image repeats");
        // Newest first: exactly the uploads, in reverse order.
        let mut expected = uploaded.clone();
        expected.reverse();
        assert_eq!(ids, expected, "limit {limit}");
    }
    // A bad limit or cursor is a 400 problem.
    let r = c
        .get(s.url("/v1/images?limit=0"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    problem(r, 400);
    let r = c
        .get(s.url("/v1/images?cursor=garbage"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    problem(r, 400);
}

#[test]
fn byte_serving_etag_304_range_206_416() {
    let (_tmp, s, token) = setup();
    let c = client();
    let bytes = png(120, 90, 7);
    let v = upload_raw(&c, &s, &token, "b.png", bytes.clone());
    let url = s.url(&format!(
        "/v1/images/{}/original",
        v["id"].as_str().unwrap()
    ));
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let n = bytes.len();

    let r = c.get(&url).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["etag"], etag.as_str());
    assert!(h.contains_key("last-modified"));
    assert!(h["cache-control"].to_str().unwrap().contains("max-age"));
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["content-length"], n.to_string().as_str());
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(r.bytes().unwrap().as_ref(), &bytes[..]);

    // If-None-Match with the ETag: 304 without a body.
    let r = c
        .get(&url)
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert!(r.bytes().unwrap().is_empty());
    // Another ETag: the full body.
    let r = c
        .get(&url)
        .bearer_auth(&token)
        .header("if-none-match", "\"something-else\"")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().len(), n);

    // Ranges.
    let range = |spec: &str| {
        c.get(&url)
            .bearer_auth(&token)
            .header("range", spec)
            .send()
            .unwrap()
    };
    let r = range("bytes=0-9");
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 0-9/{n}").as_str()
    );
    assert_eq!(r.bytes().unwrap().as_ref(), &bytes[0..10]);
    let r = range("bytes=10-");
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 10-{}/{n}", n - 1).as_str()
    );
    assert_eq!(r.bytes().unwrap().as_ref(), &bytes[10..]);
    let r = range("bytes=-5");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &bytes[n - 5..]);
    let r = range(&format!("bytes={n}-"));
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{n}").as_str()
    );
    let r = range(&format!("bytes={}-{}", n + 10, n + 20));
    assert_eq!(r.status(), 416);
}

#[test]
fn scopes_401_403_404_matrix_between_two_users() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let c = client();
    let alice = user_with_token(&data, "alice", &[]);
    let alice_ro = token_for(&data, "alice", &["image:read"]);
    let alice_wo = token_for(&data, "alice", &["image:write"]);
    let bob = user_with_token(&data, "bob", &[]);

    let img = upload_raw(&c, &s, &alice, "a.png", png(10, 10, 1));
    let id = img["id"].as_str().unwrap().to_string();
    let item = s.url(&format!("/v1/images/{id}"));
    let original = s.url(&format!("/v1/images/{id}/original"));

    // 401: no token, an unknown token, on every route.
    for (m, u) in [
        ("GET", s.url("/v1/images")),
        ("POST", s.url("/v1/images")),
        ("GET", item.clone()),
        ("PATCH", item.clone()),
        ("DELETE", item.clone()),
        ("GET", original.clone()),
        ("GET", s.url("/v1/user")),
    ] {
        let m = reqwest::Method::from_bytes(m.as_bytes()).unwrap();
        let r = c.request(m.clone(), &u).send().unwrap();
        let www = r.headers().get("www-authenticate").cloned();
        problem(r, 401);
        assert!(www.is_some(), "{m} {u}: 401 without WWW-Authenticate");
        let r = c
            .request(m.clone(), &u)
            .bearer_auth("tt_not_a_token")
            .send()
            .unwrap();
        problem(r, 401);
    }

    // The three ways of passing a token all work.
    let me = |r: reqwest::blocking::RequestBuilder| -> Value {
        let r = r.send().unwrap();
        assert_eq!(r.status(), 200);
        r.json().unwrap()
    };
    assert_eq!(
        me(c.get(s.url("/v1/user")).bearer_auth(&alice))["name"],
        "alice"
    );
    assert_eq!(
        me(c.get(s.url("/v1/user")).header("X-ApiToken", &alice))["name"],
        "alice"
    );
    assert_eq!(
        me(c.get(s.url(&format!("/v1/user?access_token={alice}"))))["name"],
        "alice"
    );

    // 403: a read-only token cannot write or delete; a write-only token cannot read.
    let r = c
        .post(s.url("/v1/images?name=x"))
        .bearer_auth(&alice_ro)
        .body(png(4, 4, 1))
        .send()
        .unwrap();
    problem(r, 403);
    let r = c
        .patch(&item)
        .bearer_auth(&alice_ro)
        .json(&json!({"name":"x"}))
        .send()
        .unwrap();
    problem(r, 403);
    let r = c.delete(&item).bearer_auth(&alice_ro).send().unwrap();
    problem(r, 403);
    let r = c.delete(&item).bearer_auth(&alice_wo).send().unwrap();
    problem(r, 403);
    let r = c.get(&item).bearer_auth(&alice_wo).send().unwrap();
    problem(r, 403);
    assert_eq!(
        c.get(&item).bearer_auth(&alice_ro).send().unwrap().status(),
        200
    );

    // 404: bob does not see alice's image, whatever he does with it.
    for r in [
        c.get(&item).bearer_auth(&bob).send().unwrap(),
        c.get(&original).bearer_auth(&bob).send().unwrap(),
        c.get(s.url(&format!("/v1/images/{id}/variants/small")))
            .bearer_auth(&bob)
            .send()
            .unwrap(),
        c.patch(&item)
            .bearer_auth(&bob)
            .json(&json!({"name":"pwned"}))
            .send()
            .unwrap(),
        c.delete(&item).bearer_auth(&bob).send().unwrap(),
    ] {
        problem(r, 404);
    }
    let bobs: Vec<Value> = c
        .get(s.url("/v1/images"))
        .bearer_auth(&bob)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(bobs.is_empty());
    // ... and alice's image is untouched.
    let still: Value = c
        .get(&item)
        .bearer_auth(&alice)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(still["name"], "a.png");
    // A missing image is the same 404 as another user's.
    let r = c
        .get(s.url("/v1/images/0123456789abcdef0123456789abcdef"))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    problem(r, 404);
}

/// A multipart/form-data body with one `file` part.
fn multipart_body(boundary: &str, filename: &str, bytes: &[u8]) -> Vec<u8> {
    let mut b = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    b.extend_from_slice(bytes);
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

/// Rows the catalog has for images, counted through the API of every user.
fn image_count(c: &reqwest::blocking::Client, s: &Server, token: &str) -> usize {
    list_all(c, s, token, 100).len()
}

#[test]
fn over_the_byte_limit_413_and_non_image_415_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(
        &data,
        Opts::default().env("TINTYPE_MAX_UPLOAD_BYTES", "20000"),
    );
    let c = client();
    let token = user_with_token(&data, "alice", &[]);
    let blobs_before = files_under(&data.join("blobs"));

    // A real picture over the limit, raw and multipart.
    let big = noisy_png(100, 100, 9);
    assert!(big.len() > 20000, "the test picture must exceed the limit");
    let r = c
        .post(s.url("/v1/images?name=big"))
        .bearer_auth(&token)
        .body(big.clone())
        .send()
        .unwrap();
    problem(r, 413);
    // The multipart body is built in memory: the server answers 413 before
    // reading it all, and reqwest's streamed multipart body races that answer.
    let r = c
        .post(s.url("/v1/images"))
        .bearer_auth(&token)
        .header("content-type", "multipart/form-data; boundary=XyZzY")
        .body(multipart_body("XyZzY", "big.png", &big))
        .send()
        .unwrap();
    problem(r, 413);

    // Not a picture: text, and bytes that merely start like a PNG.
    for body in [
        b"hello, this is not an image at all".to_vec(),
        [&b"\x89PNG\r\n\x1a\n"[..], &[0u8; 64]].concat(),
    ] {
        let r = c
            .post(s.url("/v1/images?name=t.txt"))
            .bearer_auth(&token)
            .body(body.clone())
            .send()
            .unwrap();
        let st = r.status().as_u16();
        assert!(st == 415, "non-image answered {st}: {}", r.text().unwrap());
        let form =
            multipart::Form::new().part("file", multipart::Part::bytes(body).file_name("t.png"));
        let r = c
            .post(s.url("/v1/images"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .unwrap();
        problem(r, 415);
    }
    // An empty body is a 400.
    let r = c
        .post(s.url("/v1/images?name=empty"))
        .bearer_auth(&token)
        .body(Vec::<u8>::new())
        .send()
        .unwrap();
    problem(r, 400);

    // Nothing left: no image row, no blob, no temp file.
    assert_eq!(image_count(&c, &s, &token), 0);
    assert_eq!(files_under(&data.join("blobs")), blobs_before);
    assert_eq!(
        files_under(&data.join("tmp")),
        Vec::<std::path::PathBuf>::new()
    );

    // Just under the limit is fine.
    let ok = png(40, 40, 1);
    assert!(ok.len() < 20000);
    upload_raw(&c, &s, &token, "ok", ok);
    assert_eq!(image_count(&c, &s, &token), 1);
}

#[test]
fn first_start_prints_the_admin_token_once_and_it_works() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let c = client();
    let mut s = Server::start(&data, Opts::default());
    let token = s.admin_token().unwrap_or_else(|| {
        panic!(
            "no admin token on first start; stdout: {:?}",
            s.stdout_lines()
        )
    });
    assert!(!token.is_empty() && !token.contains(' '));
    let me: Value = c
        .get(s.url("/v1/user"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["name"], "admin");
    assert!(me["scopes"].as_array().unwrap().contains(&json!("admin")));
    upload_raw(&c, &s, &token, "by-admin", png(5, 5, 5));
    // The token appears nowhere in the log.
    assert!(!s.stderr().contains(&token));
    s.kill9();

    let s2 = Server::start(&data, Opts::default());
    assert_eq!(s2.admin_token(), None);
    assert!(
        !s2.stdout_lines().iter().any(|l| l.contains(&token)),
        "the secret was printed again"
    );
    // The first token still works after the restart.
    assert_eq!(image_count(&c, &s2, &token), 1);
    // The admin user exists exactly once.
    let users = cli_ok(&data, &["user", "list"]);
    let admins = users
        .lines()
        .filter(|l| serde_json::from_str::<Value>(l).unwrap()["name"] == "admin")
        .count();
    assert_eq!(admins, 1);
}

#[test]
fn multipart_fields_after_the_file_apply_and_bad_metadata_leaves_no_image() {
    let (_tmp, s, token) = setup();
    let c = client();
    // The file first, then name and metadata.
    let form = multipart::Form::new()
        .part(
            "file",
            multipart::Part::bytes(png(9, 9, 1)).file_name("x.png"),
        )
        .text("name", "late.png")
        .text("metadata", r#"{"k":"v"}"#)
        .text("ignored", "whatever");
    let r = c
        .post(s.url("/v1/images"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().unwrap();
    assert_eq!(v["name"], "late.png");
    assert_eq!(v["metadata"], json!({"k": "v"}));

    // Metadata that is not a JSON object, before or after the file: 400, no image.
    for file_first in [true, false] {
        let file = multipart::Part::bytes(png(9, 9, 2)).file_name("y.png");
        let form = if file_first {
            multipart::Form::new()
                .part("file", file)
                .text("metadata", "[1,2]")
        } else {
            multipart::Form::new()
                .text("metadata", "nope")
                .part("file", file)
        };
        let r = c
            .post(s.url("/v1/images"))
            .bearer_auth(&token)
            .multipart(form)
            .send()
            .unwrap();
        problem(r, 400);
    }
    // No file part at all: 400.
    let r = c
        .post(s.url("/v1/images"))
        .bearer_auth(&token)
        .multipart(multipart::Form::new().text("name", "nothing"))
        .send()
        .unwrap();
    problem(r, 400);
    assert_eq!(image_count(&c, &s, &token), 1);
}

#[test]
fn the_same_bytes_twice_are_two_images_over_one_blob() {
    let (tmp, s, token) = setup();
    let data = tmp.path().join("data");
    let c = client();
    let bytes = png(33, 33, 3);
    let a = upload_raw(&c, &s, &token, "a", bytes.clone());
    let b = upload_raw(&c, &s, &token, "b", bytes.clone());
    assert_ne!(a["id"], b["id"]);
    assert_eq!(a["sha256"], b["sha256"]);
    let sha = a["sha256"].as_str().unwrap();
    let copies = files_under(&data.join("blobs").join("sha256"))
        .into_iter()
        .filter(|p| p.file_name().unwrap() == sha)
        .count();
    assert_eq!(copies, 1);
    // Deleting one leaves the other whole.
    delete_raw(&c, &s, &token, &a);
    let r = c
        .get(b["urls"]["original"].as_str().unwrap())
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), &bytes[..]);
    // gc (while serving) keeps the referenced blob.
    let report: Value = serde_json::from_str(cli_ok(&data, &["gc"]).trim()).unwrap();
    assert_eq!(report["removed"], 0, "{report}");
    assert!(blob_path(&data, sha).exists());
}

#[test]
fn a_delete_removes_its_blob_and_gc_keeps_young_unreferenced_blobs() {
    let (tmp, s, token) = setup();
    let data = tmp.path().join("data");
    let c = client();
    let img = upload_raw(&c, &s, &token, "gone", noisy_png(20, 20, 77));
    let sha = img["sha256"].as_str().unwrap().to_string();
    assert!(blob_path(&data, &sha).exists());
    delete_raw(&c, &s, &token, &img);
    // No image uses the bytes any more: the delete freed them at once, or,
    // when a render of the image was in flight (a small PNG's variants can
    // be the original's own bytes, pinned by that render), when it ended.
    let freed = Instant::now();
    while blob_path(&data, &sha).exists() {
        assert!(
            freed.elapsed() < Duration::from_secs(20),
            "the deleted image's blob is still there"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A young blob that nothing references (as an upload about to commit
    // leaves it) is kept by gc.
    let orphan = noisy_png(20, 20, 78);
    let orphan_sha = sha256_hex(&orphan);
    let path = blob_path(&data, &orphan_sha);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &orphan).unwrap();
    let out = cli_ok(&data, &["gc"]);
    let report: Value = serde_json::from_str(out.trim()).expect("gc prints a JSON report");
    assert!(report["blobs"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        report["removed"], 0,
        "a blob inside the grace period was removed"
    );
    assert!(report["kept_young"].as_u64().unwrap() >= 1, "{report}");
    assert!(path.exists());
}

/// Deletes racing the renders of their images' variants (each upload queues
/// one; a small PNG's variants are partly the original's own bytes, so a
/// render pins the very blob the delete frees) leave no blob behind once the
/// renders end.
#[test]
fn images_deleted_while_their_variants_render_leave_no_blob() {
    let (tmp, s, token) = setup();
    let blobs = tmp.path().join("data").join("blobs").join("sha256");
    let c = client();
    for seed in 0..24 {
        let img = upload_raw(&c, &s, &token, "racing", noisy_png(20, 20, 500 + seed));
        // Some deletes go at once, some after the render has begun.
        if seed % 3 == 1 {
            std::thread::sleep(Duration::from_millis(5 * (seed % 7)));
        }
        delete_raw(&c, &s, &token, &img);
    }
    assert_eq!(image_count(&c, &s, &token), 0);
    let since = Instant::now();
    loop {
        let left = files_under(&blobs);
        if left.is_empty() {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "blobs of deleted images stay: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_daily_quota_refuses_the_next_upload_and_stores_nothing() {
    let (tmp, s, token) = setup();
    let data = tmp.path().join("data");
    let c = client();
    cli_ok(&data, &["quota", "set", "alice", "--images-per-day", "2"]);
    upload_raw(&c, &s, &token, "1", png(5, 5, 1));
    upload_raw(&c, &s, &token, "2", png(5, 5, 2));
    let third = png(5, 5, 3);
    let r = c
        .post(s.url("/v1/images?name=3"))
        .bearer_auth(&token)
        .body(third.clone())
        .send()
        .unwrap();
    problem(r, 429);
    assert_eq!(image_count(&c, &s, &token), 2);
    assert!(!blob_path(&data, &sha256_hex(&third)).exists());
    // Another user is not limited by alice's quota.
    let bob = user_with_token(&data, "bob", &[]);
    upload_raw(&c, &s, &bob, "b", third);
}

#[test]
fn concurrent_uploads_do_not_overrun_the_daily_quota() {
    let (tmp, s, token) = setup();
    let data = tmp.path().join("data");
    cli_ok(&data, &["quota", "set", "alice", "--images-per-day", "3"]);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(12));
    let threads: Vec<_> = (0..12u64)
        .map(|i| {
            let (url, token, barrier) =
                (s.url("/v1/images?name=q"), token.clone(), barrier.clone());
            std::thread::spawn(move || {
                let body = noisy_png(200, 200, i);
                let c = client();
                barrier.wait();
                c.post(&url)
                    .bearer_auth(&token)
                    .body(body)
                    .send()
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let created = statuses.iter().filter(|s| **s == 201).count();
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 429),
        "{statuses:?}"
    );
    let c = client();
    assert_eq!(image_count(&c, &s, &token), created);
    assert!(
        created <= 3,
        "{created} uploads got through a quota of 3: {statuses:?}"
    );
}

#[test]
fn originals_answer_head_and_query_tokens_and_variants_honour_etags() {
    let (_tmp, s, token) = setup();
    let c = client();
    let bytes = png(300, 200, 5);
    let img = upload_raw(&c, &s, &token, "h.png", bytes.clone());
    let id = img["id"].as_str().unwrap();
    let original = s.url(&format!("/v1/images/{id}/original"));

    // HEAD: the headers of a GET, no body.
    let r = c.head(&original).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-length"],
        bytes.len().to_string().as_str()
    );
    assert_eq!(
        r.headers()["etag"],
        format!("\"{}\"", sha256_hex(&bytes)).as_str()
    );
    assert!(r.bytes().unwrap().is_empty());

    // ?access_token= (what an <img src> can carry) and X-ApiToken.
    let r = c
        .get(format!("{original}?access_token={token}"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().unwrap().as_ref(), &bytes[..]);
    let r = c
        .get(&original)
        .header("X-ApiToken", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // A variant has its own ETag, 304 on a match, and ranges.
    let vurl = s.url(&format!("/v1/images/{id}/variants/thumbnail"));
    let r = c.get(&vurl).bearer_auth(&token).send().unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let body = r.bytes().unwrap();
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&body)));
    assert_ne!(etag, format!("\"{}\"", sha256_hex(&bytes)));
    let r = c
        .get(&vurl)
        .bearer_auth(&token)
        .header("if-none-match", &etag)
        .send()
        .unwrap();
    assert_eq!(r.status(), 304);
    let r = c
        .get(&vurl)
        .bearer_auth(&token)
        .header("range", "bytes=0-3")
        .send()
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().unwrap().as_ref(), &body[..4]);
}
