//! The PopIt dialect over a real server: every example of the seed
//! document, every error of the spec, and an image lifecycle.

use reqwest::multipart::{Form, Part};
use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use tintype_testkit::TestServer;

const DOC: &str = "50d1f2e1c03858f9f6000006";

struct Popit {
    server: TestServer,
    client: Client,
    key: String,
}

async fn start() -> Popit {
    let server = TestServer::start(vec![tintype_popit::router()]).await;
    let key = server.user_token("alice", &[]).await;
    Popit {
        server,
        client: Client::new(),
        key,
    }
}

impl Popit {
    fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    fn api(&self, path: &str) -> String {
        self.server.url(&format!("/api/v0.1{path}"))
    }

    async fn put_doc(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .client
            .put(self.api(path))
            .header("Apikey", &self.key)
            .header("Accept", "application/json")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let r = self.client.get(self.api(path)).send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    async fn upload(&self, path: &str, form: Form) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.api(path))
            .header("apikey", &self.key)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    async fn fetch(&self, url: &str) -> (StatusCode, Option<String>, Vec<u8>) {
        let r = self.client.get(url).send().await.unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (status, ct, r.bytes().await.unwrap().to_vec())
    }

    /// How many images the native API lists for alice.
    async fn native_count(&self) -> usize {
        let r = self
            .client
            .get(self.url("/v1/images"))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        v.as_array().map(Vec::len).unwrap_or(usize::MAX)
    }
}

fn picture(rgb: [u8; 3], format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(8, 6, image::Rgb(rgb));
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, format)
        .unwrap();
    out.into_inner()
}

fn jpeg(rgb: [u8; 3]) -> Vec<u8> {
    picture(rgb, image::ImageFormat::Jpeg)
}

fn png(rgb: [u8; 3]) -> Vec<u8> {
    picture(rgb, image::ImageFormat::Png)
}

fn file_part(bytes: Vec<u8>, name: &str, mime: &str) -> Part {
    Part::bytes(bytes)
        .file_name(name.to_string())
        .mime_str(mime)
        .unwrap()
}

fn portrait_form(notes: &str, source: &str, bytes: Vec<u8>) -> Form {
    Form::new()
        .text("notes", notes.to_string())
        .text("source", source.to_string())
        .part("image", file_part(bytes, "portrait.jpg", "image/jpeg"))
}

fn is_object_id(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        s.len() == 24
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

async fn joe(p: &Popit) {
    let (s, _) = p
        .put_doc(&format!("/persons/{DOC}"), json!({"name": "Joe Bloggs"}))
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn seed_put_remote_image() {
    let p = start().await;
    let r = p
        .client
        .put(p.api(&format!("/persons/{DOC}")))
        .header("Apikey", &p.key)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(
            r#"{ "name": "Joe Bloggs",
              "image": "http://example.org/image.jpg" }"#,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let doc = &v["result"];
    assert_eq!(keys(&v), vec!["result"]);
    assert_eq!(keys(doc), vec!["id", "image", "images", "name"]);
    assert_eq!(doc["id"], DOC);
    assert_eq!(doc["name"], "Joe Bloggs");
    assert_eq!(doc["image"], "http://example.org/image.jpg");
    assert_eq!(doc["images"].as_array().map(Vec::len), Some(1));
    assert_eq!(doc["images"][0]["url"], "http://example.org/image.jpg");
    assert_eq!(keys(&doc["images"][0]), vec!["_id", "url"]);
    // Stored as shown.
    let (s, got) = p.get_json(&format!("/persons/{DOC}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(got, v);
}

#[tokio::test]
async fn seed_put_images_with_notes_as_written() {
    let p = start().await;
    // The seed's body lacks a comma after "Joe Bloggs"; it is sent as written.
    let body = r#"{ "name": "Joe Bloggs"
              "images": [
                {
                  "url": "http://example.org/image.jpg",
                  "notes": "Official publicity shot",
                  "source": "Example.org PR office"
                }
              ]
            }"#;
    let r = p
        .client
        .put(p.api(&format!("/persons/{DOC}")))
        .header("Apikey", &p.key)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let doc = &v["result"];
    assert_eq!(doc["id"], DOC);
    assert_eq!(doc["name"], "Joe Bloggs");
    assert_eq!(doc["image"], "http://example.org/image.jpg");
    let e = &doc["images"][0];
    assert_eq!(keys(e), vec!["_id", "notes", "source", "url"]);
    assert_eq!(e["url"], "http://example.org/image.jpg");
    assert_eq!(e["notes"], "Official publicity shot");
    assert_eq!(e["source"], "Example.org PR office");

    // Preserving the `_id` on the next PUT keeps the entry's id.
    let id = e["_id"].clone();
    let mut again = doc.clone();
    again["images"][0]["notes"] = json!("Newer shot");
    let (s, v2) = p.put_doc(&format!("/persons/{DOC}"), again).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v2["result"]["images"][0]["_id"], id);
    assert_eq!(v2["result"]["images"][0]["notes"], "Newer shot");
}

#[tokio::test]
async fn seed_upload_then_serve() {
    let p = start().await;
    joe(&p).await;
    let bytes = jpeg([200, 30, 30]);
    let (s, v) = p
        .upload(
            &format!("/persons/{DOC}/image"),
            portrait_form("Official Portrait", "PR office", bytes.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let doc = &v["result"];
    assert_eq!(doc["id"], DOC);
    assert_eq!(doc["name"], "Joe Bloggs");
    let e = &doc["images"][0];
    assert_eq!(
        keys(e),
        vec!["_id", "created", "mime_type", "notes", "source", "url"]
    );
    assert!(is_object_id(&e["_id"]), "{e}");
    let iid = e["_id"].as_str().unwrap();
    let url = p.url(&format!("/persons/{DOC}/image/{iid}"));
    assert_eq!(e["url"], url.as_str());
    assert_eq!(doc["image"], url.as_str());
    assert_eq!(e["notes"], "Official Portrait");
    assert_eq!(e["source"], "PR office");
    assert_eq!(e["mime_type"], "image/jpeg");
    let created = e["created"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(created).is_ok(),
        "{created}"
    );

    // Served anonymously with the stored type and public caching.
    let r = p.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.headers()["cache-control"], "public, max-age=86400");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap().to_vec(), bytes);
    let r = p
        .client
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    // The same image in the native API, owned by the key's user.
    assert_eq!(p.native_count().await, 1);
}

#[tokio::test]
async fn seed_upload_after_existing_image() {
    let p = start().await;
    let (s, _) = p
        .put_doc(
            &format!("/persons/{DOC}"),
            json!({"name": "Joe Bloggs", "images": [{
                "url": "http://example.org/image.jpg",
                "notes": "Official publicity shot",
                "source": "Example.org PR office"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = p
        .upload(
            &format!("/persons/{DOC}/image"),
            portrait_form("Official Portrait", "PR office", jpeg([1, 2, 3])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let doc = &v["result"];
    assert_eq!(doc["image"], "http://example.org/image.jpg");
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["url"], "http://example.org/image.jpg");
    assert_eq!(images[0]["notes"], "Official publicity shot");
    assert_eq!(images[0]["source"], "Example.org PR office");
    let iid = images[1]["_id"].as_str().unwrap();
    assert_eq!(
        images[1]["url"],
        p.url(&format!("/persons/{DOC}/image/{iid}")).as_str()
    );
    assert_eq!(images[1]["notes"], "Official Portrait");
    assert_eq!(images[1]["mime_type"], "image/jpeg");
}

#[tokio::test]
async fn seed_replace_uploaded_image() {
    let p = start().await;
    joe(&p).await;
    let (_, v) = p
        .upload(
            &format!("/persons/{DOC}/image"),
            portrait_form("Official Portrait", "PR office", jpeg([10, 10, 10])),
        )
        .await;
    let first = v["result"]["images"][0].clone();
    let iid = first["_id"].as_str().unwrap().to_string();
    let second = jpeg([250, 250, 10]);
    let r = p
        .client
        .put(p.api(&format!("/persons/{DOC}/image/{iid}")))
        .header("apikey", &p.key)
        .multipart(portrait_form(
            "Unofficial Portrait",
            "Paparazzi",
            second.clone(),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let doc = &v["result"];
    let url = p.url(&format!("/persons/{DOC}/image/{iid}"));
    assert_eq!(doc["image"], url.as_str());
    let images = doc["images"].as_array().unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["_id"], iid.as_str());
    assert_eq!(images[0]["url"], url.as_str());
    assert_eq!(images[0]["created"], first["created"]);
    assert_eq!(images[0]["mime_type"], "image/jpeg");
    assert_eq!(images[0]["notes"], "Unofficial Portrait");
    assert_eq!(images[0]["source"], "Paparazzi");
    let (s, ct, body) = p.fetch(&url).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("image/jpeg"));
    assert_eq!(body, second);
    // Replaced in place: still one image for the user.
    assert_eq!(p.native_count().await, 1);
}

#[tokio::test]
async fn seed_delete_one_image() {
    let p = start().await;
    joe(&p).await;
    let (_, v) = p
        .upload(
            &format!("/persons/{DOC}/image"),
            portrait_form("Official Portrait", "PR office", jpeg([5, 5, 5])),
        )
        .await;
    let iid = v["result"]["images"][0]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = p
        .client
        .delete(p.api(&format!("/persons/{DOC}/image/{iid}")))
        .header("Apikey", &p.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"result": {"id": DOC, "name": "Joe Bloggs", "images": [], "image": null}})
    );
    let (s, _, _) = p
        .fetch(&p.url(&format!("/persons/{DOC}/image/{iid}")))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(p.native_count().await, 0);
}

#[tokio::test]
async fn seed_delete_all_images() {
    let p = start().await;
    joe(&p).await;
    for c in [[1, 1, 1], [2, 2, 2]] {
        let (s, _) = p
            .upload(
                &format!("/persons/{DOC}/image"),
                portrait_form("n", "s", jpeg(c)),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    assert_eq!(p.native_count().await, 2);
    let r = p
        .client
        .delete(p.api(&format!("/persons/{DOC}/image")))
        .header("Apikey", &p.key)
        .header("Accept", "application/json")
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"result": {"id": DOC, "name": "Joe Bloggs", "images": [], "image": null}})
    );
    assert_eq!(p.native_count().await, 0);
}

#[tokio::test]
async fn three_images_reordered_removed_replaced_deleted() {
    let p = start().await;
    joe(&p).await;
    let colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255]];
    let mut ids = Vec::new();
    for (i, c) in colours.iter().enumerate() {
        let form = Form::new()
            .text("notes", format!("picture {i}"))
            .text("license", "CC-BY")
            .part("image", file_part(png(*c), "p.png", "image/png"));
        let (s, v) = p.upload(&format!("/persons/{DOC}/image"), form).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let images = v["result"]["images"].as_array().unwrap();
        assert_eq!(images.len(), i + 1);
        assert_eq!(images[i]["license"], "CC-BY");
        assert_eq!(images[i]["mime_type"], "image/png");
        ids.push(images[i]["_id"].as_str().unwrap().to_string());
    }
    let file_url = |id: &str| p.url(&format!("/persons/{DOC}/image/{id}"));

    // Reorder: PUT the document back with its images reversed.
    let (_, v) = p.get_json(&format!("/persons/{DOC}")).await;
    let mut doc = v["result"].clone();
    let mut images = doc["images"].as_array().unwrap().clone();
    images.reverse();
    doc["images"] = json!(images);
    let (s, v) = p.put_doc(&format!("/persons/{DOC}"), doc).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let order: Vec<&str> = v["result"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![ids[2].as_str(), ids[1].as_str(), ids[0].as_str()]
    );
    assert_eq!(v["result"]["image"], file_url(&ids[2]).as_str());
    assert_eq!(v["result"]["images"][0]["notes"], "picture 2");
    for (i, id) in ids.iter().enumerate() {
        let (s, ct, body) = p.fetch(&file_url(id)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("image/png"));
        assert_eq!(body, png(colours[i]));
    }
    assert_eq!(p.native_count().await, 3);

    // Remove the middle one by leaving it out of a PUT.
    let mut doc = v["result"].clone();
    let kept: Vec<Value> = doc["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["_id"] != ids[1].as_str())
        .cloned()
        .collect();
    doc["images"] = json!(kept);
    let (s, v) = p.put_doc(&format!("/persons/{DOC}"), doc).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["result"]["images"].as_array().map(Vec::len), Some(2));
    let (s, _, _) = p.fetch(&file_url(&ids[1])).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(p.native_count().await, 2);

    // Replace the first by a multipart PUT.
    let form = Form::new()
        .text("notes", "replaced")
        .part("image", file_part(jpeg([9, 9, 9]), "new.jpg", "image/jpeg"));
    let r = p
        .client
        .put(p.api(&format!("/persons/{DOC}/image/{}", ids[2])))
        .header("Apikey", &p.key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["images"][0]["_id"], ids[2].as_str());
    assert_eq!(v["result"]["images"][0]["notes"], "replaced");
    assert_eq!(v["result"]["images"][0]["license"], "CC-BY");
    assert_eq!(v["result"]["images"][0]["mime_type"], "image/jpeg");
    let (s, ct, body) = p.fetch(&file_url(&ids[2])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some("image/jpeg"));
    assert_eq!(body, jpeg([9, 9, 9]));
    assert_eq!(p.native_count().await, 2);

    // Delete them all.
    let r = p
        .client
        .delete(p.api(&format!("/persons/{DOC}/image")))
        .header("Apikey", &p.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["images"], json!([]));
    assert_eq!(v["result"]["image"], Value::Null);
    for id in &ids {
        let (s, _, _) = p.fetch(&file_url(id)).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    assert_eq!(p.native_count().await, 0);
}

#[tokio::test]
async fn upload_index_places_the_entry() {
    let p = start().await;
    let (s, _) = p
        .put_doc(
            "/organizations/org1",
            json!({"name": "Org", "images": ["http://a/1.jpg", "http://a/2.jpg"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let form = Form::new()
        .text("index", "first")
        .text("filename", "not copied")
        .part("image", file_part(png([1, 2, 3]), "x.png", "image/png"));
    let (s, v) = p.upload("/organizations/org1/image", form).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let images = v["result"]["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    assert!(images[0].get("index").is_none());
    assert!(images[0].get("filename").is_none());
    assert_eq!(v["result"]["image"], images[0]["url"]);
    assert!(images[0]["url"]
        .as_str()
        .unwrap()
        .starts_with(&p.url("/organizations/org1/image/")));
    let form = Form::new()
        .text("index", "1")
        .part("image", file_part(png([3, 2, 1]), "y.png", "image/png"));
    let (_, v) = p.upload("/organizations/org1/image", form).await;
    let images = v["result"]["images"].as_array().unwrap();
    assert_eq!(images.len(), 4);
    assert_eq!(images[1]["mime_type"], "image/png");
    assert_eq!(images[2]["url"], "http://a/1.jpg");

    // A bad index is refused and leaves no image behind.
    let form = Form::new()
        .part("image", file_part(png([9, 8, 7]), "z.png", "image/png"))
        .text("index", "middle");
    let (s, v) = p.upload("/organizations/org1/image", form).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v,
        json!({"errors": ["index must be 'first', 'last' or a number"]})
    );
    assert_eq!(p.native_count().await, 2);
    let (_, v) = p.get_json("/organizations/org1").await;
    assert_eq!(v["result"]["images"].as_array().map(Vec::len), Some(4));
}

#[tokio::test]
async fn documents_create_read_list_delete() {
    let p = start().await;
    // POST generates an id and keeps free-form fields.
    let r = p
        .client
        .post(p.api("/organizations"))
        .header("APIKEY", &p.key)
        .json(&json!({"name": "Acme", "classification": "party", "other_names": [{"name": "A"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert!(is_object_id(&v["result"]["id"]), "{v}");
    assert_eq!(v["result"]["classification"], "party");
    assert_eq!(v["result"]["other_names"][0]["name"], "A");
    assert!(v["result"].get("image").is_none());
    let id = v["result"]["id"].as_str().unwrap().to_string();

    // include_root=false gives the bare document.
    let (s, bare) = p
        .get_json(&format!("/organizations/{id}?include_root=false"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(bare, v["result"]);

    // POST with an existing id conflicts.
    let r = p
        .client
        .post(p.api("/organizations"))
        .header("Apikey", &p.key)
        .json(&json!({"id": id, "name": "Again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let e: Value = r.json().await.unwrap();
    assert_eq!(
        e["errors"][0],
        format!("a document with id '{id}' already exists")
    );

    // Memberships and posts are collections too.
    for c in ["memberships", "posts"] {
        let (s, v) = p.put_doc(&format!("/{c}/x1"), json!({"label": c})).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(v["result"], json!({"id": "x1", "label": c}));
    }

    // DELETE: 204, then 404 on read, and 204 again.
    for _ in 0..2 {
        let r = p
            .client
            .delete(p.api(&format!("/organizations/{id}")))
            .header("Apikey", &p.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let (s, e) = p.get_json(&format!("/organizations/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(e, json!({"errors": [format!("id '{id}' not found")]}));
}

#[tokio::test]
async fn listing_paginates() {
    let p = start().await;
    for i in 0..5 {
        let (s, _) = p
            .put_doc(&format!("/persons/p{i}"), json!({"name": format!("P{i}")}))
            .await;
        assert_eq!(s, StatusCode::OK);
    }
    let (s, v) = p.get_json("/persons").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["total"], 5);
    assert_eq!(v["page"], 1);
    assert_eq!(v["per_page"], 30);
    assert_eq!(v["has_more"], false);
    assert!(v.get("next_url").is_none());
    assert!(v.get("prev_url").is_none());
    assert_eq!(v["result"].as_array().map(Vec::len), Some(5));

    let (_, v) = p.get_json("/persons?page=2&per_page=2").await;
    assert_eq!(v["has_more"], true);
    let names: Vec<&str> = v["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["P2", "P3"]);
    assert_eq!(v["next_url"], p.api("/persons?page=3&per_page=2").as_str());
    assert_eq!(v["prev_url"], p.api("/persons?page=1&per_page=2").as_str());

    let (_, v) = p.get_json("/persons?page=3&per_page=2").await;
    assert_eq!(v["has_more"], false);
    assert!(v.get("next_url").is_none());
    assert_eq!(v["result"].as_array().map(Vec::len), Some(1));

    // Out-of-range values fall back to the defaults.
    let (_, v) = p.get_json("/persons?page=0&per_page=500").await;
    assert_eq!(v["page"], 1);
    assert_eq!(v["per_page"], 30);
    let (_, v) = p.get_json("/persons?page=1001&per_page=abc").await;
    assert_eq!(v["page"], 1);
    assert_eq!(v["per_page"], 30);
}

#[tokio::test]
async fn keys_from_query_and_body_field() {
    let p = start().await;
    let r = p
        .client
        .put(p.api(&format!("/persons/q1?apikey={}", p.key)))
        .json(&json!({"name": "Q"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = p
        .client
        .put(p.api("/persons/b1"))
        .json(&json!({"name": "B", "apikey": p.key}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"], json!({"id": "b1", "name": "B"}));
    let (_, stored) = p.get_json("/persons/b1").await;
    assert!(stored["result"].get("apikey").is_none());
}

async fn expect_error(resp: reqwest::Response, status: StatusCode, body: Value) {
    assert_eq!(resp.status(), status);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, body);
}

#[tokio::test]
async fn errors_of_the_spec() {
    let p = start().await;
    joe(&p).await;
    let c = &p.client;

    // Unknown collection.
    expect_error(
        c.get(p.api("/people")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        json!({"errors": ["collection 'people' not found"]}),
    )
    .await;
    expect_error(
        c.get(p.api("/people/1")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        json!({"errors": ["collection 'people' not found"]}),
    )
    .await;
    // Unknown paths under the API answer in the envelope too.
    for path in [
        "/persons/a/b",
        "/persons/a/b/c/d",
        "/persons/a/image/b/c",
        "/persons/a/imagex/b",
    ] {
        expect_error(
            c.get(p.api(path)).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            json!({"errors": ["not found"]}),
        )
        .await;
    }
    // Unknown document.
    expect_error(
        c.get(p.api("/persons/nope")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        json!({"errors": ["id 'nope' not found"]}),
    )
    .await;
    // Ids differ.
    expect_error(
        c.put(p.api(&format!("/persons/{DOC}")))
            .header("Apikey", &p.key)
            .json(&json!({"id": "other"}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        json!({"errors": ["URL id and document id are different"]}),
    )
    .await;
    // Unsupported methods.
    expect_error(
        c.patch(p.api(&format!("/persons/{DOC}")))
            .header("Apikey", &p.key)
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"errors": ["unsupported method"]}),
    )
    .await;
    expect_error(
        c.put(p.api(&format!("/persons/{DOC}/image")))
            .header("Apikey", &p.key)
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"errors": ["unsupported method"]}),
    )
    .await;
    expect_error(
        c.post(p.api(&format!("/persons/{DOC}")))
            .header("Apikey", &p.key)
            .send()
            .await
            .unwrap(),
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"errors": ["unsupported method"]}),
    )
    .await;
    // No key, a wrong key: on every write, whatever the Accept header.
    let unauthorized = json!({"message": "Unauthorized"});
    for req in [
        c.post(p.api("/persons")).json(&json!({"name": "x"})),
        c.put(p.api(&format!("/persons/{DOC}")))
            .header("Accept", "text/html")
            .json(&json!({"name": "x"})),
        c.delete(p.api(&format!("/persons/{DOC}"))),
        c.put(p.api(&format!("/persons/{DOC}")))
            .header("Apikey", "wrong")
            .json(&json!({"name": "x"})),
        c.put(p.api(&format!("/persons/{DOC}?apikey=wrong")))
            .json(&json!({"name": "x"})),
        c.put(p.api(&format!("/persons/{DOC}")))
            .json(&json!({"name": "x", "apikey": "wrong"})),
        c.post(p.api(&format!("/persons/{DOC}/image")))
            .multipart(portrait_form("n", "s", jpeg([1, 1, 1]))),
        c.delete(p.api(&format!("/persons/{DOC}/image"))),
        c.delete(p.api(&format!("/persons/{DOC}/image/abc"))),
    ] {
        expect_error(
            req.send().await.unwrap(),
            StatusCode::UNAUTHORIZED,
            unauthorized.clone(),
        )
        .await;
    }
    // The document was not changed by any of them.
    let (_, v) = p.get_json(&format!("/persons/{DOC}")).await;
    assert_eq!(v["result"], json!({"id": DOC, "name": "Joe Bloggs"}));

    let upload = |path: String, form: Form| {
        c.post(p.api(&path))
            .header("Apikey", &p.key)
            .multipart(form)
    };
    // No file, an empty file, no multipart at all.
    expect_error(
        upload(
            format!("/persons/{DOC}/image"),
            Form::new().text("notes", "n"),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
        json!({"errors": ["No image sent"]}),
    )
    .await;
    expect_error(
        upload(
            format!("/persons/{DOC}/image"),
            Form::new().part("image", file_part(Vec::new(), "e.jpg", "image/jpeg")),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
        json!({"errors": ["No image sent"]}),
    )
    .await;
    expect_error(
        c.post(p.api(&format!("/persons/{DOC}/image")))
            .header("Apikey", &p.key)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        json!({"errors": ["No image sent"]}),
    )
    .await;
    // Unknown document.
    expect_error(
        upload(
            "/persons/missing/image".into(),
            portrait_form("n", "s", jpeg([1, 1, 1])),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
        json!({"errors": ["No doc found"]}),
    )
    .await;
    // Not an image.
    expect_error(
        upload(
            format!("/persons/{DOC}/image"),
            Form::new().part(
                "image",
                file_part(b"just some words".to_vec(), "a.txt", "text/plain"),
            ),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
        json!({"errors": ["The uploaded image was of non-permitted type: text/plain"]}),
    )
    .await;
    assert_eq!(p.native_count().await, 0);
    // The document is untouched by the failed uploads.
    let (_, v) = p.get_json(&format!("/persons/{DOC}")).await;
    assert_eq!(v["result"], json!({"id": DOC, "name": "Joe Bloggs"}));

    // PUT on an image of a document without images, or an unknown image.
    let put_image = |id: &str| {
        c.put(p.api(&format!("/persons/{DOC}/image/{id}")))
            .header("Apikey", &p.key)
            .multipart(portrait_form("n", "s", jpeg([1, 1, 1])))
    };
    expect_error(
        put_image("53b14f5bb4f7834e56083bb7").send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        json!({"errors": ["Doc has no images"]}),
    )
    .await;
    let (s, _) = p
        .upload(
            &format!("/persons/{DOC}/image"),
            portrait_form("n", "s", jpeg([7, 7, 7])),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    expect_error(
        put_image("53b14f5bb4f7834e56083bb7").send().await.unwrap(),
        StatusCode::BAD_REQUEST,
        json!({"errors": ["No image with that id found"]}),
    )
    .await;
    // No stray image was left by the refused PUT.
    assert_eq!(p.native_count().await, 1);

    // Deleting images of an unknown document: 204.
    for path in ["/persons/missing/image", "/persons/missing/image/abc"] {
        let r = c
            .delete(p.api(path))
            .header("Apikey", &p.key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    // Serving an unknown image: 404.
    let r = c
        .get(p.url(&format!("/persons/{DOC}/image/53b14f5bb4f7834e56083bb7")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c
        .get(p.url("/posts/none/image/53b14f5bb4f7834e56083bb7"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Malformed JSON.
    let r = c
        .put(p.api(&format!("/persons/{DOC}")))
        .header("Apikey", &p.key)
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.unwrap();
    assert!(v["errors"][0]
        .as_str()
        .unwrap()
        .starts_with("invalid JSON body"));
}

#[tokio::test]
async fn scopes_and_other_users() {
    let p = start().await;
    joe(&p).await;
    let read_only = p
        .server
        .user_token("alice", &[tintype_engine::core::Scope::ImageRead])
        .await;
    let r = p
        .client
        .put(p.api(&format!("/persons/{DOC}")))
        .header("Apikey", &read_only)
        .json(&json!({"name": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errors"][0], "the API key lacks the scope image:write");

    // A delete-only key may delete.
    let deleter = p
        .server
        .user_token("alice", &[tintype_engine::core::Scope::ImageDelete])
        .await;
    let (s, _) = p.put_doc("/persons/gone", json!({"name": "G"})).await;
    assert_eq!(s, StatusCode::OK);
    let r = p
        .client
        .delete(p.api("/persons/gone"))
        .header("Apikey", &deleter)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);

    // Bob may read alice's document but not change it.
    let bob = p.server.user_token("bob", &[]).await;
    let r = p
        .client
        .put(p.api(&format!("/persons/{DOC}")))
        .header("Apikey", &bob)
        .json(&json!({"name": "Bob's now"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = p
        .client
        .delete(p.api(&format!("/persons/{DOC}")))
        .header("Apikey", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, v) = p.get_json(&format!("/persons/{DOC}")).await;
    assert_eq!(v["result"]["name"], "Joe Bloggs");
}

#[tokio::test]
async fn deleting_a_document_releases_its_files() {
    let p = start().await;
    joe(&p).await;
    let (_, v) = p
        .upload(
            &format!("/persons/{DOC}/image"),
            portrait_form("n", "s", jpeg([3, 3, 3])),
        )
        .await;
    let url = v["result"]["image"].as_str().unwrap().to_string();
    assert_eq!(p.native_count().await, 1);
    let r = p
        .client
        .delete(p.api(&format!("/persons/{DOC}")))
        .header("Apikey", &p.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(p.native_count().await, 0);
    let (s, _, _) = p.fetch(&url).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

/// The entry point's `meta`, checked for its keys; returns it.
async fn entry_point(c: &Client, url: &str) -> Value {
    let r = c.get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(keys(&v), ["meta", "note"], "{v}");
    assert_eq!(
        v["note"],
        "This is the API entry point - use a '*_api_url' link in 'meta' to search a collection."
    );
    assert_eq!(
        keys(&v["meta"]),
        [
            "image_proxy_url",
            "memberships_api_url",
            "organizations_api_url",
            "persons_api_url",
            "posts_api_url"
        ],
        "{v}"
    );
    assert_eq!(v["meta"]["image_proxy_url"], "");
    v["meta"].clone()
}

#[tokio::test]
async fn api_root_names_each_collection_by_absolute_url() {
    let p = start().await;
    joe(&p).await;
    let c = &p.client;
    for root in [p.api(""), p.api("/")] {
        let meta = entry_point(c, &root).await;
        for coll in ["persons", "organizations", "memberships", "posts"] {
            let url = meta[format!("{coll}_api_url")]
                .as_str()
                .unwrap()
                .to_string();
            assert_eq!(url, format!("{}/api/v0.1/{coll}", p.server.base));
            // Each URL is the collection itself.
            let r = c.get(&url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{url}");
            let list: Value = r.json().await.unwrap();
            let want = if coll == "persons" { 1 } else { 0 };
            assert_eq!(list["total"], want, "{url}: {list}");
        }
        let (s, listed) = p.get_json("/persons").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(listed["result"][0]["name"], "Joe Bloggs");
        // Only GET (and HEAD) is served there.
        expect_error(
            c.post(&root)
                .header("Apikey", &p.key)
                .json(&json!({"name": "x"}))
                .send()
                .await
                .unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"errors": ["unsupported method"]}),
        )
        .await;
        let head = c.head(&root).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn api_root_urls_are_built_from_the_public_url() {
    // The same engine served a second time, as if behind a proxy whose
    // public URL has a path and a trailing slash.
    let p = start().await;
    let public = "https://popit.example.org/behind/proxy/";
    let state = tintype_http::AppState::new(p.server.engine.clone(), public);
    let app = tintype_http::app(state, vec![tintype_popit::router()]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(tintype_http::serve(listener, app, async move {
        let _ = rx.await;
    }));
    for path in ["/api/v0.1", "/api/v0.1/"] {
        let meta = entry_point(&p.client, &format!("http://{addr}{path}")).await;
        for coll in ["persons", "organizations", "memberships", "posts"] {
            assert_eq!(
                meta[format!("{coll}_api_url")],
                format!("https://popit.example.org/behind/proxy/api/v0.1/{coll}")
            );
        }
    }
    // The directly served instance still names its own address.
    let meta = entry_point(&p.client, &p.api("")).await;
    assert_eq!(
        meta["posts_api_url"],
        format!("{}/api/v0.1/posts", p.server.base)
    );
    let _ = tx.send(());
    served.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_trailing_slash_is_the_same_route() {
    // PopIt's routing (Express) ignored a trailing slash.
    let p = start().await;
    joe(&p).await;
    let (s, plain) = p.get_json("/persons").await;
    assert_eq!(s, StatusCode::OK);
    let (s, slashed) = p.get_json("/persons/").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(slashed, plain);
    assert_eq!(slashed["total"], 1);
    let (s, doc) = p.get_json(&format!("/persons/{DOC}/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(doc["result"]["name"], "Joe Bloggs");
    // Writes too: an upload, then its replacement and deletion.
    let (s, v) = p
        .upload(
            &format!("/persons/{DOC}/image/"),
            portrait_form("Official Portrait", "PR office", jpeg([9, 9, 9])),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let iid = v["result"]["images"][0]["_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = p
        .client
        .delete(p.api(&format!("/persons/{DOC}/image/{iid}/")))
        .header("Apikey", &p.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["result"]["images"], json!([]));
    // Anything else under the prefix answers in PopIt's envelope.
    for path in [
        format!("/persons/{DOC}/x/"),
        format!("/persons/{DOC}/x/y/"),
        format!("/persons/{DOC}/image/{iid}/z"),
    ] {
        expect_error(
            p.client.get(p.api(&path)).send().await.unwrap(),
            StatusCode::NOT_FOUND,
            json!({"errors": ["not found"]}),
        )
        .await;
    }
    expect_error(
        p.client.get(p.api("/people/")).send().await.unwrap(),
        StatusCode::NOT_FOUND,
        json!({"errors": ["collection 'people' not found"]}),
    )
    .await;
}

/// Two nodes over one catalog: images uploaded at once into one document
/// through either node all end up in it. Writes to a document compare and
/// swap its version (no lock that only one process would see), so a
/// concurrent update is redone, never lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uploads_through_two_nodes_lose_nothing() {
    let p = start().await;
    let second = p.server.start_beside(vec![tintype_popit::router()]).await;
    joe(&p).await;
    const N: usize = 10;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let base = if i % 2 == 0 {
                p.server.base.clone()
            } else {
                second.base.clone()
            };
            let (client, key) = (p.client.clone(), p.key.clone());
            tokio::spawn(async move {
                let r = client
                    .post(format!("{base}/api/v0.1/persons/{DOC}/image"))
                    .header("apikey", key)
                    .multipart(portrait_form(
                        &format!("note {i}"),
                        "s",
                        jpeg([i as u8 * 20, 2, 3]),
                    ))
                    .send()
                    .await
                    .unwrap();
                r.status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    // Read through both nodes: each sees every image.
    for base in [&p.server.base, &second.base] {
        let r = p
            .client
            .get(format!("{base}/api/v0.1/persons/{DOC}"))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let mut notes: Vec<String> = v["result"]["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["notes"].as_str().map(str::to_string))
            .collect();
        notes.sort();
        let mut want: Vec<String> = (0..N).map(|i| format!("note {i}")).collect();
        want.sort();
        assert_eq!(notes, want, "through {base}");
    }
    assert_eq!(p.native_count().await, N);
}
