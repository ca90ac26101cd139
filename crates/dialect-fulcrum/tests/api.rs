//! The Fulcrum Photos API against a real tintype server.

mod common;

use common::*;
use serde_json::{json, Value};

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

#[tokio::test]
async fn seed_example_photo_has_every_property() {
    let server = server_without_workers().await;
    let token = server.user_token("bryan", &[]).await;
    let user = server.engine.user("bryan").await.unwrap();
    let bytes = seed_example_jpeg();
    let key = "5b8d16c7-4203-487f-862d-bf454f3de6e1";
    let form = form(Some(key), Some((&bytes, "image/jpeg")))
        .text("photo[record_id]", "9028ec24-fa06-4355-861b-78544299d766")
        .text("photo[form_id]", "7a0c3378-b63a-4707-b459-df499698f23c");
    let (status, created) = post(&server, &token, form).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["photo"]["processed"], json!(false));
    server.drain_jobs().await;

    let (status, body) = get_json(&server, &token, &format!("/api/v2/photos/{key}.json")).await;
    assert_eq!(status, 200);
    let p = &body["photo"];
    let mut expected_keys: Vec<String> = [
        "access_key",
        "created_at",
        "updated_at",
        "uploaded",
        "stored",
        "processed",
        "record_id",
        "form_id",
        "file_size",
        "content_type",
        "latitude",
        "longitude",
        "url",
        "created_by",
        "created_by_id",
        "updated_by",
        "updated_by_id",
        "thumbnail",
        "large",
        "original",
        "exif",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected_keys.sort();
    assert_eq!(keys(p), expected_keys);
    assert_eq!(p["access_key"], key);
    assert_eq!(p["uploaded"], true);
    assert_eq!(p["stored"], true);
    assert_eq!(p["processed"], true);
    assert_eq!(p["record_id"], "9028ec24-fa06-4355-861b-78544299d766");
    assert_eq!(p["form_id"], "7a0c3378-b63a-4707-b459-df499698f23c");
    assert_eq!(p["file_size"], json!(bytes.len()));
    assert_eq!(p["content_type"], "image/jpeg");
    assert_eq!(p["created_by"], "bryan");
    assert_eq!(p["created_by_id"], user.id.to_string());
    assert_eq!(p["updated_by"], "bryan");
    assert_eq!(p["updated_by_id"], user.id.to_string());
    let base = server.url(&format!("/api/v2/photos/{key}"));
    assert_eq!(p["url"], json!(base));
    assert_eq!(p["original"], json!(format!("{base}.jpg")));
    assert_eq!(p["thumbnail"], json!(format!("{base}/thumbnail.jpg")));
    assert_eq!(p["large"], json!(format!("{base}/large.jpg")));
    for t in ["created_at", "updated_at"] {
        let s = p[t].as_str().unwrap();
        assert!(s.ends_with('Z') && s.len() == 20, "{t}: {s}");
        assert!(chrono::DateTime::parse_from_rfc3339(s).is_ok());
    }
    assert!(p["updated_at"].as_str() >= p["created_at"].as_str());
    assert!(close(&p["latitude"], 42.0 + 49.0 / 60.0 + 30.8953 / 3600.0));
    assert!(close(
        &p["longitude"],
        -(73.0 + 53.0 / 60.0 + 46.2451 / 3600.0)
    ));
    assert_eq!(
        (p["latitude"].as_f64().unwrap() * 1e5).round() / 1e5,
        42.82525
    );
    assert_eq!(
        p["exif"],
        json!({
            "make": "samsung",
            "model": "SM-G900V",
            "x_resolution": "72.0",
            "y_resolution": "72.0",
            "resolution_unit": 2,
            "software": "G900VVRU1BOC4",
            "date_time": "2015-06-06T12:00:08.000+00:00",
            "ycb_cr_positioning": 1,
            "exposure_time": "0.0027397260273972603",
            "f_number": "2.2",
            "exposure_program": 2,
            "iso_speed_ratings": 40,
            "date_time_original": "2015-06-06T12:00:08.000+00:00",
            "date_time_digitized": "2015-06-06T12:00:08.000+00:00",
            "metering_mode": 2,
            "flash": 0,
            "focal_length": "4.8",
            "subsec_time": "943",
            "color_space": 1,
            "image_unique_id": "F16QLHF01S",
            "gps_latitude_ref": "N",
            "gps_latitude": ["42.0", "49.0", "30.8953"],
            "gps_longitude_ref": "W",
            "gps_longitude": ["73.0", "53.0", "46.2451"],
            "gps_altitude_ref": "\u{0000}",
            "gps_altitude": "107.0",
            "gps_time_stamp": ["16.0", "0.0", "5.0"],
            "gps_date_stamp": "2015:06:06"
        })
    );
}

#[tokio::test]
async fn gps_signs_follow_the_hemisphere() {
    let server = server_without_workers().await;
    let token = server.user_token("alice", &[]).await;
    // Paris: north and east.
    let ne = with_exif(
        &jpeg(64, 48),
        &tiff(
            vec![],
            vec![],
            gps("N", dms(48, 51, 296_000), "E", dms(2, 17, 402_000)),
        ),
    );
    // Rio de Janeiro: south and west.
    let sw = with_exif(
        &jpeg(64, 48),
        &tiff(
            vec![(0x010F, Val::Ascii("tintype"))],
            vec![],
            gps("S", dms(22, 57, 77_500), "W", dms(43, 12, 396_000)),
        ),
    );
    let p = upload(&server, &token, "north-east", &ne).await;
    assert!(
        close(&p["latitude"], 48.0 + 51.0 / 60.0 + 29.6 / 3600.0),
        "{p}"
    );
    assert!(
        close(&p["longitude"], 2.0 + 17.0 / 60.0 + 40.2 / 3600.0),
        "{p}"
    );
    assert_eq!(p["exif"]["gps_latitude_ref"], "N");
    assert_eq!(p["exif"]["gps_longitude_ref"], "E");
    assert_eq!(p["exif"]["gps_longitude"], json!(["2.0", "17.0", "40.2"]));

    let p = upload(&server, &token, "south-west", &sw).await;
    assert!(
        close(&p["latitude"], -(22.0 + 57.0 / 60.0 + 7.75 / 3600.0)),
        "{p}"
    );
    assert!(
        close(&p["longitude"], -(43.0 + 12.0 / 60.0 + 39.6 / 3600.0)),
        "{p}"
    );
    assert_eq!(p["exif"]["make"], "tintype");
    assert_eq!(p["exif"]["gps_latitude"], json!(["22.0", "57.0", "7.75"]));

    // The same facts come back from a later read.
    let (_, again) = get_json(&server, &token, "/api/v2/photos/south-west").await;
    assert_eq!(again["photo"]["latitude"], p["latitude"]);
}

#[tokio::test]
async fn photo_without_exif_has_empty_exif_object() {
    let server = server_without_workers().await;
    let token = server.user_token("alice", &[]).await;
    let p = upload(&server, &token, "plain", &jpeg(120, 80)).await;
    assert_eq!(p["exif"], json!({}));
    assert_eq!(p["latitude"], Value::Null);
    assert_eq!(p["longitude"], Value::Null);
    assert_eq!(p["record_id"], Value::Null);
    assert_eq!(p["form_id"], Value::Null);

    // A PNG is accepted too and keeps its own type.
    let bytes = png(30, 20);
    let (status, body) = post(
        &server,
        &token,
        form(Some("png"), Some((&bytes, "image/png"))),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["photo"]["content_type"], "image/png");
    assert_eq!(body["photo"]["exif"], json!({}));
}

#[tokio::test]
async fn processed_flips_when_the_versions_are_made() {
    let server = server_without_workers().await;
    let token = server.user_token("alice", &[]).await;
    let bytes = with_exif(
        &jpeg(1600, 1200),
        &tiff(vec![(0x010F, Val::Ascii("cam"))], vec![], vec![]),
    );
    let p = upload(&server, &token, "k1", &bytes).await;
    assert_eq!(p["processed"], false);
    assert_eq!(p["uploaded"], true);
    assert_eq!(p["stored"], true);

    // Before processing: no versions, the original is there.
    for path in [
        "/api/v2/photos/k1/thumbnail.jpg",
        "/api/v2/photos/k1/thumbnail.json",
        "/api/v2/photos/k1/large.jpg",
        "/api/v2/photos/k1/large",
    ] {
        assert_eq!(get(&server, &token, path).await.status(), 404, "{path}");
    }
    let original = get(&server, &token, "/api/v2/photos/k1.jpg").await;
    assert_eq!(original.status(), 200);
    assert_eq!(original.headers()["content-type"], "image/jpeg");
    assert_eq!(original.bytes().await.unwrap().as_ref(), bytes.as_slice());
    let (_, unprocessed) = get_json(&server, &token, "/api/v2/photos.json?processed=false").await;
    assert_eq!(unprocessed["total_count"], 1);
    let (_, done) = get_json(&server, &token, "/api/v2/photos.json?processed=true").await;
    assert_eq!(done["total_count"], 0);

    server.drain_jobs().await;

    let (_, body) = get_json(&server, &token, "/api/v2/photos/k1.json").await;
    assert_eq!(body["photo"]["processed"], true);
    let (_, done) = get_json(&server, &token, "/api/v2/photos.json?processed=true").await;
    assert_eq!(done["total_count"], 1);
    assert_eq!(done["photos"][0]["access_key"], "k1");

    for (version, w, h) in [("thumbnail", 200, 150), ("large", 1080, 810)] {
        let (status, meta) = get_json(
            &server,
            &token,
            &format!("/api/v2/photos/k1/{version}.json"),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            keys(&meta["photo"]),
            [
                "access_key",
                "content_type",
                "file_size",
                "height",
                "url",
                "version",
                "width"
            ]
        );
        assert_eq!(meta["photo"]["version"], version);
        assert_eq!(meta["photo"]["access_key"], "k1");
        assert_eq!(meta["photo"]["width"], w);
        assert_eq!(meta["photo"]["height"], h);
        assert_eq!(meta["photo"]["content_type"], "image/jpeg");
        assert_eq!(
            meta["photo"]["url"],
            json!(server.url(&format!("/api/v2/photos/k1/{version}.jpg")))
        );
        let resp = get(&server, &token, &format!("/api/v2/photos/k1/{version}.jpg")).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "image/jpeg");
        let got = resp.bytes().await.unwrap();
        assert_eq!(meta["photo"]["file_size"], json!(got.len()));
        let img = image::load_from_memory(&got).unwrap();
        assert_eq!((img.width(), img.height()), (w, h));
    }
}

#[tokio::test]
async fn validation_errors_answer_422_with_every_failure() {
    let server = server_without_workers().await;
    let token = server.user_token("alice", &[]).await;
    let photo = jpeg(40, 30);
    let errors = |v: Value| json!({ "photo": { "errors": v } });

    // The seed's example: access_key missing.
    let (s, b) = post(&server, &token, form(None, Some((&photo, "image/jpeg")))).await;
    assert_eq!(
        (s, b),
        (422, errors(json!({"access_key": ["must be provided"]})))
    );

    let (s, b) = post(&server, &token, form(Some("k"), None)).await;
    assert_eq!((s, b), (422, errors(json!({"file": ["must be provided"]}))));

    let (s, b) = post(&server, &token, form(None, None)).await;
    assert_eq!(
        (s, b),
        (
            422,
            errors(json!({"access_key": ["must be provided"], "file": ["must be provided"]}))
        )
    );

    let text = b"just some words, not a picture".to_vec();
    let (s, b) = post(
        &server,
        &token,
        form(Some("k"), Some((&text, "image/jpeg"))),
    )
    .await;
    assert_eq!((s, b), (422, errors(json!({"file": ["is not an image"]}))));

    let (s, b) = post(
        &server,
        &token,
        form(Some("a.b"), Some((&photo, "image/jpeg"))),
    )
    .await;
    assert_eq!((s, b), (422, errors(json!({"access_key": ["is invalid"]}))));

    upload(&server, &token, "taken", &photo).await;
    let (s, b) = post(
        &server,
        &token,
        form(Some("taken"), Some((&photo, "image/jpeg"))),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            422,
            errors(json!({"access_key": ["has already been taken"]}))
        )
    );

    // Two failures at once.
    let (s, b) = post(
        &server,
        &token,
        form(Some("taken"), Some((&text, "image/jpeg"))),
    )
    .await;
    assert_eq!(
        (s, b),
        (
            422,
            errors(json!({"access_key": ["has already been taken"], "file": ["is not an image"]}))
        )
    );

    // A body that is not a form at all.
    let resp = reqwest::Client::new()
        .post(server.url("/api/v2/photos.json"))
        .header("X-ApiToken", &token)
        .json(&json!({"photo": {"access_key": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        errors(json!({"access_key": ["must be provided"], "file": ["must be provided"]}))
    );

    // A broken multipart body answers in the dialect's envelope.
    let resp = reqwest::Client::new()
        .post(server.url("/api/v2/photos.json"))
        .header("X-ApiToken", &token)
        .header("Content-Type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"photo[access_key]\"\r\n\r\nabc")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.json::<Value>().await.unwrap()["error"].is_string());

    // Only the one good upload left an image behind.
    let user = server.engine.user("alice").await.unwrap();
    let page = server.engine.list_images(user.id, None, 100).await.unwrap();
    assert_eq!(page.images.len(), 1);
    let (_, list) = get_json(&server, &token, "/api/v2/photos.json").await;
    assert_eq!(list["total_count"], 1);
}

#[tokio::test]
async fn tokens_come_from_the_header_or_the_query() {
    let server = server_without_workers().await;
    let token = server.user_token("alice", &[]).await;
    let reader = server
        .user_token("alice", &[tintype_engine::core::Scope::ImageRead])
        .await;
    let client = reqwest::Client::new();
    for (path, method) in [
        ("/api/v2/photos.json", "GET"),
        ("/api/v2/photos.json", "POST"),
        ("/api/v2/photos/abc.json", "GET"),
        ("/api/v2/photos/abc/thumbnail.jpg", "GET"),
    ] {
        let req = match method {
            "POST" => client.post(server.url(path)),
            _ => client.get(server.url(path)),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{method} {path}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"error": "Unauthorized"})
        );
    }
    let resp = get(&server, "not-a-token", "/api/v2/photos.json").await;
    assert_eq!(resp.status(), 401);

    let resp = client
        .get(server.url(&format!("/api/v2/photos.json?token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // A read-only token may not upload.
    let photo = jpeg(10, 10);
    let (s, b) = post(
        &server,
        &reader,
        form(Some("k"), Some((&photo, "image/jpeg"))),
    )
    .await;
    assert_eq!((s, b), (403, json!({"error": "Forbidden"})));
}

#[tokio::test]
async fn paths_work_without_json_and_there_is_no_delete() {
    let server = server_without_workers().await;
    let token = server.user_token("alice", &[]).await;
    let photo = jpeg(50, 40);
    let resp = reqwest::Client::new()
        .post(server.url("/api/v2/photos"))
        .header("X-ApiToken", &token)
        .multipart(form(Some("nosuffix"), Some((&photo, "image/jpeg"))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let (s, one) = get_json(&server, &token, "/api/v2/photos/nosuffix").await;
    assert_eq!(s, 200);
    assert_eq!(one["photo"]["access_key"], "nosuffix");
    let (s, list) = get_json(&server, &token, "/api/v2/photos").await;
    assert_eq!(s, 200);
    assert_eq!(list["photos"][0]["access_key"], "nosuffix");

    let (s, missing) = get_json(&server, &token, "/api/v2/photos/unknown.json").await;
    assert_eq!((s, missing), (404, json!({"error": "Not Found"})));
    let (s, _) = get_json(&server, &token, "/api/v2/photos/nosuffix/medium.json").await;
    assert_eq!(s, 404);

    let client = reqwest::Client::new();
    for path in [
        "/api/v2/photos/nosuffix.json",
        "/api/v2/photos/nosuffix",
        "/api/v2/photos.json",
    ] {
        let resp = client
            .delete(server.url(path))
            .header("X-ApiToken", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 405, "{path}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"error": "Method Not Allowed"})
        );
    }
    let resp = client
        .put(server.url("/api/v2/photos/nosuffix.json"))
        .header("X-ApiToken", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    // Still there.
    let (s, _) = get_json(&server, &token, "/api/v2/photos/nosuffix.json").await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn list_filters_paginates_and_keeps_users_apart() {
    let server = server_without_workers().await;
    let alice = server.user_token("alice", &[]).await;
    let bob = server.user_token("bob", &[]).await;
    let photo = jpeg(20, 20);
    for (key, record, form_id) in [("p1", "r1", "f1"), ("p2", "r1", "f2"), ("p3", "r2", "f1")] {
        let f = form(Some(key), Some((&photo, "image/jpeg")))
            .text("photo[record_id]", record)
            .text("photo[form_id]", form_id);
        let (s, b) = post(&server, &alice, f).await;
        assert_eq!(s, 200, "{b}");
    }
    // Bob may use the same access key: keys belong to their user.
    upload(&server, &bob, "p1", &photo).await;

    let access_keys = |v: &Value| -> Vec<String> {
        v["photos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["access_key"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, all) = get_json(&server, &alice, "/api/v2/photos.json").await;
    assert_eq!(access_keys(&all), ["p1", "p2", "p3"]);
    assert_eq!(
        (
            &all["current_page"],
            &all["total_pages"],
            &all["total_count"],
            &all["per_page"]
        ),
        (&json!(1), &json!(1), &json!(3), &json!(20000))
    );
    let (_, newest) = get_json(&server, &alice, "/api/v2/photos.json?newest_first=true").await;
    assert_eq!(access_keys(&newest), ["p3", "p2", "p1"]);
    let (_, r1) = get_json(&server, &alice, "/api/v2/photos.json?record_id=r1").await;
    assert_eq!(access_keys(&r1), ["p1", "p2"]);
    assert_eq!(r1["total_count"], 2);
    let (_, f1) = get_json(
        &server,
        &alice,
        "/api/v2/photos.json?form_id=f1&record_id=r2",
    )
    .await;
    assert_eq!(access_keys(&f1), ["p3"]);
    let (_, stored) = get_json(
        &server,
        &alice,
        "/api/v2/photos.json?stored=true&uploaded=true",
    )
    .await;
    assert_eq!(stored["total_count"], 3);
    let (_, none) = get_json(&server, &alice, "/api/v2/photos.json?stored=false").await;
    assert_eq!(
        (none["total_count"].clone(), access_keys(&none).len()),
        (json!(0), 0)
    );

    let (_, page2) = get_json(&server, &alice, "/api/v2/photos.json?per_page=2&page=2").await;
    assert_eq!(access_keys(&page2), ["p3"]);
    assert_eq!(
        (
            &page2["current_page"],
            &page2["total_pages"],
            &page2["total_count"],
            &page2["per_page"]
        ),
        (&json!(2), &json!(2), &json!(3), &json!(2))
    );
    let (_, fpage) = get_json(
        &server,
        &alice,
        "/api/v2/photos.json?record_id=r1&per_page=1&page=2",
    )
    .await;
    assert_eq!(access_keys(&fpage), ["p2"]);
    assert_eq!(fpage["total_pages"], 2);

    let (s, bad) = get_json(&server, &alice, "/api/v2/photos.json?processed=maybe").await;
    assert_eq!(s, 400);
    assert_eq!(bad["error"], "processed must be true or false");

    // Bob sees only his own photo, and not Alice's p2 at all.
    let (_, bobs) = get_json(&server, &bob, "/api/v2/photos.json").await;
    assert_eq!(access_keys(&bobs), ["p1"]);
    let (s, _) = get_json(&server, &bob, "/api/v2/photos/p2.json").await;
    assert_eq!(s, 404);
    assert_eq!(
        get(&server, &bob, "/api/v2/photos/p2.jpg").await.status(),
        404
    );
}
