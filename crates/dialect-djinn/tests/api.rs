//! The Djinn images API against a real server.

mod common;

use common::*;
use serde_json::{json, Value};
use tintype_djinn::Visibility;
use tintype_engine::core::Scope;

fn id_of(v: &Value) -> i64 {
    v["id"].as_i64().expect("integer id")
}

#[tokio::test]
async fn seed_examples_round_trip() {
    let server = server().await;
    let c = Client::new(&server);
    let t = token(&server, "me").await;
    let me = server.engine.user("me").await.unwrap();

    // POST /images?name=alpine with the disk as the body.
    let disk = qcow2("alpine");
    let (status, img) = c.upload(&t, "name=alpine", disk.clone()).await;
    assert_eq!(status, 201, "{img}");
    let id = id_of(&img);
    assert_eq!(img["name"], "alpine");
    assert_eq!(img["driver"], "qemu");
    assert_eq!(img["author_id"], me.id);
    assert_eq!(img["user_id"], me.id);
    assert_eq!(img["namespace_id"], Value::Null);
    assert_eq!(img["namespace"], Value::Null);
    assert_eq!(img["url"], c.url(&format!("/images/{id}")));
    assert_eq!(img["user"]["username"], "me");
    assert_eq!(img["user"]["id"], me.id);
    assert_eq!(img["author"]["username"], "me");
    let created = img["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == 20, "{created}");

    // POST /images?name=alpine&namespace=djinn: the namespace is created.
    let (status, nsimg) = c
        .upload(&t, "name=alpine&namespace=djinn", qcow2("alpine-ns"))
        .await;
    assert_eq!(status, 201, "{nsimg}");
    let ns = &nsimg["namespace"];
    assert_eq!(ns["path"], "djinn");
    assert_eq!(ns["name"], "djinn");
    assert_eq!(ns["visibility"], "private");
    assert_eq!(ns["user_id"], me.id);
    assert_eq!(ns["root_id"], ns["id"]);
    assert_eq!(ns["parent_id"], Value::Null);
    assert_eq!(nsimg["namespace_id"], ns["id"]);
    assert_eq!(ns["url"], c.url("/n/me/djinn"));

    // GET /images and GET /images?search=go-dev
    let (status, list) = c.get(Some(&t), "/images").await;
    assert_eq!(status, 200);
    let ids: Vec<i64> = list.as_array().unwrap().iter().map(id_of).collect();
    assert_eq!(ids, vec![id_of(&nsimg), id]);
    let (status, list) = c.get(Some(&t), "/images?search=go-dev").await;
    assert_eq!((status, list), (200, json!([])));

    // GET /images/3 as JSON
    let (status, got) = c.get(Some(&t), &format!("/images/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got, img);

    // GET /images/3 with Accept: application/octet-stream
    let resp = c
        .http
        .get(c.url(&format!("/images/{id}")))
        .bearer_auth(&t)
        .header("Accept", "application/octet-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-qemu-disk");
    assert_eq!(resp.bytes().await.unwrap().as_ref(), disk.as_slice());

    // DELETE /images/3
    let (status, body) = c.delete(Some(&t), &format!("/images/{id}")).await;
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, body) = c.get(Some(&t), &format!("/images/{id}")).await;
    assert_eq!((status, body), (404, not_found()));
    let (status, _) = c.delete(Some(&t), &format!("/images/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn each_validation_error_is_reported() {
    let server = server().await;
    let c = Client::new(&server);
    let t = token(&server, "val").await;
    let _other = token(&server, "other").await;
    let ok = || qcow2("valid");

    let cases: Vec<(&str, Vec<u8>, Value)> = vec![
        ("", ok(), json!({"name": ["Name field required"]})),
        ("name=", ok(), json!({"name": ["Name field required"]})),
        (
            "name=bad%20name",
            ok(),
            json!({"name": ["Name does not match ^[a-zA-Z0-9_\\-]+$"]}),
        ),
        (
            "name=a.b",
            ok(),
            json!({"name": ["Name does not match ^[a-zA-Z0-9_\\-]+$"]}),
        ),
        (
            "name=x&namespace=team@other",
            ok(),
            json!({"namespace": ["Namespace permission denied"]}),
        ),
        (
            "name=x&namespace=team@nobody",
            ok(),
            json!({"namespace": ["Namespace permission denied"]}),
        ),
        (
            "name=png",
            b"\x89PNG\r\n\x1a\n0000000000000000".to_vec(),
            json!({"file": ["File not a valid QCOW2 file format"]}),
        ),
        (
            "name=empty",
            Vec::new(),
            json!({"file": ["File not a valid QCOW2 file format"]}),
        ),
        (
            "name=v4",
            {
                let mut f = ok();
                f[7] = 4;
                f
            },
            json!({"file": ["File not a valid QCOW2 file format"]}),
        ),
        (
            // The magic and version are right but the header is not.
            "name=corrupt",
            {
                let mut f = ok();
                f[20..24].copy_from_slice(&40u32.to_be_bytes());
                f
            },
            json!({"file": ["File not a valid QCOW2 file format"]}),
        ),
        (
            // Everything at once.
            "namespace=x@other",
            b"not a disk".to_vec(),
            json!({"name": ["Name field required"],
                   "namespace": ["Namespace permission denied"],
                   "file": ["File not a valid QCOW2 file format"]}),
        ),
    ];
    for (query, body, want) in cases {
        let (status, got) = c.upload(&t, query, body).await;
        assert_eq!((status, &got), (400, &want), "query {query:?}");
    }

    // Name already exists: per owner, and per namespace.
    let (status, _) = c.upload(&t, "name=dup", ok()).await;
    assert_eq!(status, 201);
    let (status, got) = c.upload(&t, "name=dup", qcow2("second")).await;
    assert_eq!(
        (status, got),
        (400, json!({"name": ["Name already exists"]}))
    );
    let (status, _) = c.upload(&t, "name=dup&namespace=ns1", ok()).await;
    assert_eq!(status, 201, "the same name in a namespace is another name");
    let (status, got) = c.upload(&t, "name=dup&namespace=ns1", ok()).await;
    assert_eq!(
        (status, got),
        (400, json!({"name": ["Name already exists"]}))
    );
    let (status, _) = c.upload(&t, "name=dup&namespace=ns2", ok()).await;
    assert_eq!(status, 201);

    // download_url must be http or https.
    for url in [
        "ftp://example.com/x.qcow2",
        "file:///etc/passwd",
        "not a url",
    ] {
        let resp = c
            .http
            .post(c.url("/images"))
            .bearer_auth(&t)
            .json(&json!({"name": "remote", "download_url": url}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let got: Value = resp.json().await.unwrap();
        assert_eq!(
            got,
            json!({"download_url": ["Download_url invalid url scheme"]}),
            "{url}"
        );
    }
    let resp = c
        .http
        .post(c.url("/images"))
        .bearer_auth(&t)
        .json(&json!({"name": "bad name", "namespace": "z@other", "download_url": "gopher://x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(
        got,
        json!({"name": ["Name does not match ^[a-zA-Z0-9_\\-]+$"],
               "namespace": ["Namespace permission denied"],
               "download_url": ["Download_url invalid url scheme"]})
    );

    // Malformed JSON answers in the envelope.
    let resp = c
        .http
        .post(c.url("/images"))
        .bearer_auth(&t)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let got: Value = resp.json().await.unwrap();
    assert!(
        got["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid request body"),
        "{got}"
    );

    // Nothing but the three accepted uploads was stored.
    let (_, list) = c.get(Some(&t), "/images").await;
    assert_eq!(list.as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn multipart_uploads_in_any_part_order() {
    let server = server().await;
    let c = Client::new(&server);
    let alice = token(&server, "mpalice").await;
    let bob = token(&server, "mpbob").await;
    let form = |parts: Vec<(&str, Option<Vec<u8>>, &str)>| {
        let mut f = reqwest::multipart::Form::new();
        for (name, file, text) in parts {
            f = match file {
                Some(bytes) => f.part(
                    name.to_string(),
                    reqwest::multipart::Part::bytes(bytes).file_name("disk.qcow2"),
                ),
                None => f.text(name.to_string(), text.to_string()),
            };
        }
        f
    };
    let post = |token: String, f: reqwest::multipart::Form| {
        let c = &c;
        async move {
            let resp = c
                .http
                .post(c.url("/images"))
                .bearer_auth(token)
                .multipart(f)
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap())
        }
    };

    let disk = qcow2("multipart");
    let (status, img) = post(
        alice.clone(),
        form(vec![
            ("name", None, "first"),
            ("file", Some(disk.clone()), ""),
        ]),
    )
    .await;
    assert_eq!(status, 201, "{img}");
    assert_eq!(img["name"], "first");

    // The file first, then the fields.
    let (status, img) = post(
        alice.clone(),
        form(vec![
            ("file", Some(qcow2("later")), ""),
            ("name", None, "second"),
            ("namespace", None, "mp"),
        ]),
    )
    .await;
    assert_eq!(status, 201, "{img}");
    assert_eq!(img["name"], "second");
    assert_eq!(img["namespace"]["path"], "mp");

    // The file first into a namespace of another user: owned by them.
    tintype_djinn::admin::namespace_add_collaborator(&server.engine, "mp@mpalice", "mpbob")
        .await
        .unwrap();
    let (status, img) = post(
        bob.clone(),
        form(vec![
            ("file", Some(qcow2("bob")), ""),
            ("name", None, "bobs"),
            ("namespace", None, "mp@mpalice"),
        ]),
    )
    .await;
    assert_eq!(status, 201, "{img}");
    let alice_id = server.engine.user("mpalice").await.unwrap().id;
    let bob_id = server.engine.user("mpbob").await.unwrap().id;
    assert_eq!(
        (img["user_id"].as_i64(), img["author_id"].as_i64()),
        (Some(alice_id), Some(bob_id))
    );
    let stored = server.engine.image_by_seq(id_of(&img)).await.unwrap();
    assert_eq!(stored.owner_id, alice_id);
    assert_eq!(stored.name.as_deref(), Some("bobs"));

    // Errors, all together, leave nothing behind.
    let before = server
        .engine
        .list_images(alice_id, None, 100)
        .await
        .unwrap()
        .images
        .len();
    let (status, got) = post(
        alice.clone(),
        form(vec![
            ("file", Some(qcow2("dupe")), ""),
            ("name", None, "first"),
        ]),
    )
    .await;
    assert_eq!(
        (status, got),
        (400, json!({"name": ["Name already exists"]}))
    );
    let (status, got) = post(alice.clone(), form(vec![("name", None, "nofile")])).await;
    assert_eq!(
        (status, got),
        (400, json!({"file": ["File field required"]}))
    );
    let (status, got) = post(
        alice.clone(),
        form(vec![
            ("file", Some(b"GIF89a....".to_vec()), ""),
            ("name", None, "x y"),
        ]),
    )
    .await;
    assert_eq!(
        (status, got),
        (
            400,
            json!({"name": ["Name does not match ^[a-zA-Z0-9_\\-]+$"], "file": ["File not a valid QCOW2 file format"]})
        )
    );
    let after = server
        .engine
        .list_images(alice_id, None, 100)
        .await
        .unwrap()
        .images
        .len();
    assert_eq!(before, after);
}

/// A one-shot HTTP server that answers every request with `body`.
async fn serve_bytes(body: Vec<u8>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn json_download_url_is_fetched() {
    let server = server().await;
    let c = Client::new(&server);
    let t = token(&server, "dl").await;
    let disk = qcow2("downloaded");
    let origin = serve_bytes(disk.clone()).await;
    let resp = c
        .http
        .post(c.url("/images"))
        .bearer_auth(&t)
        .json(&json!({"name": "fetched", "namespace": "remote", "download_url": format!("{origin}/x.qcow2")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let img: Value = resp.json().await.unwrap();
    assert_eq!(img["namespace"]["path"], "remote");
    let stored = server.engine.image_by_seq(id_of(&img)).await.unwrap();
    assert_eq!(stored.content.sha256, sha256(&disk));
    assert_eq!(stored.content.format, "qcow2");

    // A fetched file that is not a disk.
    let origin = serve_bytes(b"<html>hello</html>".to_vec()).await;
    let resp = c
        .http
        .post(c.url("/images"))
        .bearer_auth(&t)
        .json(&json!({"name": "html", "download_url": format!("{origin}/")}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let got: Value = resp.json().await.unwrap();
    assert_eq!(got, json!({"file": ["File not a valid QCOW2 file format"]}));
}

#[tokio::test]
async fn pagination_over_sixty_images_with_search() {
    let server = server().await;
    let c = Client::new(&server);
    let t = token(&server, "pager").await;
    let mut ids = Vec::new();
    for i in 0..60 {
        let name = if i % 2 == 0 {
            format!("go-dev-{i}")
        } else {
            format!("alpine-{i}")
        };
        let (status, img) = c.upload(&t, &format!("name={name}"), qcow2(&name)).await;
        assert_eq!(status, 201, "{img}");
        ids.push(id_of(&img));
    }
    ids.reverse(); // newest first
    let link = |prev: &str, next: &str| {
        format!(
            "<{}>; rel=\"prev\", <{}>; rel=\"next\"",
            c.url(&format!("/images?{prev}")),
            c.url(&format!("/images?{next}"))
        )
    };
    let page = |q: String| {
        let c = &c;
        let t = t.clone();
        async move {
            let resp = c
                .http
                .get(c.url(&format!("/images{q}")))
                .bearer_auth(t)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let link = resp
                .headers()
                .get("link")
                .map(|v| v.to_str().unwrap().to_string());
            let body: Value = resp.json().await.unwrap();
            let got: Vec<i64> = body.as_array().unwrap().iter().map(id_of).collect();
            (got, link)
        }
    };

    let (got, l) = page(String::new()).await;
    assert_eq!(got, ids[0..25]);
    assert_eq!(l.as_deref(), Some(link("page=1", "page=2").as_str()));
    let (got, l) = page("?page=2".into()).await;
    assert_eq!(got, ids[25..50]);
    assert_eq!(l.as_deref(), Some(link("page=1", "page=3").as_str()));
    let (got, l) = page("?page=3".into()).await;
    assert_eq!(got, ids[50..60]);
    assert_eq!(l.as_deref(), Some(link("page=2", "page=3").as_str()));
    let (got, _) = page("?page=99".into()).await;
    assert_eq!(got, ids[50..60], "a page past the end is the last page");
    let (got, _) = page("?page=zero".into()).await;
    assert_eq!(got, ids[0..25]);

    // search: case-insensitive substring, other parameters kept in the links.
    let go: Vec<i64> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| (59 - i) % 2 == 0)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(go.len(), 30);
    let (got, l) = page("?search=GO-DEV".into()).await;
    assert_eq!(got, go[0..25]);
    assert_eq!(
        l.as_deref(),
        Some(link("search=GO-DEV&page=1", "search=GO-DEV&page=2").as_str())
    );
    let (got, l) = page("?search=GO-DEV&page=2".into()).await;
    assert_eq!(got, go[25..30]);
    assert_eq!(
        l.as_deref(),
        Some(link("search=GO-DEV&page=1", "search=GO-DEV&page=2").as_str())
    );
    let (got, l) = page("?search=alpine-1".into()).await;
    // alpine-1, alpine-11, alpine-13, ..., alpine-19: six, one page, no Link.
    assert_eq!(got.len(), 6);
    assert_eq!(l, None);
}

#[tokio::test]
async fn access_between_owner_collaborator_and_stranger() {
    let server = server().await;
    let c = Client::new(&server);
    let owner = token(&server, "owner").await;
    let collab = token(&server, "collab").await;
    let stranger = token(&server, "stranger").await;
    let engine = &server.engine;

    let (status, img) = c
        .upload(&owner, "name=base&namespace=team", qcow2("team"))
        .await;
    assert_eq!(status, 201);
    let path = format!("/images/{}", id_of(&img));
    let (status, personal) = c.upload(&owner, "name=personal", qcow2("personal")).await;
    assert_eq!(status, 201);
    let personal_path = format!("/images/{}", id_of(&personal));

    // private: only the owner.
    assert_eq!(c.get(Some(&owner), &path).await.0, 200);
    assert_eq!(c.get(Some(&collab), &path).await, (404, not_found()));
    assert_eq!(c.get(Some(&stranger), &path).await, (404, not_found()));
    assert_eq!(c.get(None, &path).await, (404, not_found()));
    let (status, got) = c
        .upload(&collab, "name=x&namespace=team@owner", qcow2("c1"))
        .await;
    assert_eq!(
        (status, got),
        (400, json!({"namespace": ["Namespace permission denied"]}))
    );

    // A collaborator reads, lists, uploads and deletes in the tree.
    let ns = tintype_djinn::admin::namespace_add_collaborator(engine, "team@owner", "collab")
        .await
        .unwrap();
    assert_eq!(ns["collaborators"], json!(["collab"]));
    assert_eq!(c.get(Some(&collab), &path).await.0, 200);
    assert_eq!(c.get(Some(&collab), &personal_path).await.0, 404);
    let (status, by_collab) = c
        .upload(&collab, "name=cimg&namespace=team@owner", qcow2("c2"))
        .await;
    assert_eq!(status, 201, "{by_collab}");
    let owner_id = engine.user("owner").await.unwrap().id;
    let collab_id = engine.user("collab").await.unwrap().id;
    assert_eq!(by_collab["user_id"], owner_id);
    assert_eq!(by_collab["author_id"], collab_id);
    assert_eq!(by_collab["user"]["username"], "owner");
    assert_eq!(by_collab["author"]["username"], "collab");
    // Sub-namespaces share the root's collaborators.
    let (status, sub) = c
        .upload(&owner, "name=deep&namespace=team/ci", qcow2("sub"))
        .await;
    assert_eq!(status, 201);
    assert_eq!(sub["namespace"]["parent_id"], img["namespace_id"]);
    assert_eq!(sub["namespace"]["root_id"], img["namespace_id"]);
    assert_eq!(sub["namespace"]["name"], "ci");
    let names = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, list) = c.get(Some(&collab), "/images").await;
    assert_eq!(names(&list), vec!["deep", "cimg", "base"]);
    let (_, list) = c.get(Some(&owner), "/images").await;
    assert_eq!(names(&list), vec!["deep", "cimg", "personal", "base"]);
    let (_, list) = c.get(Some(&stranger), "/images").await;
    assert_eq!(list, json!([]));
    assert_eq!(c.delete(Some(&stranger), &path).await.0, 404);
    assert_eq!(
        c.delete(Some(&collab), &format!("/images/{}", id_of(&by_collab)))
            .await
            .0,
        204
    );

    // internal: any signed-in user reads; only owner and collaborators delete.
    let ns = tintype_djinn::admin::namespace_set_visibility(
        engine,
        "team/ci@owner",
        Visibility::Internal,
    )
    .await
    .unwrap();
    assert_eq!(ns["visibility"], "internal");
    assert_eq!(c.get(Some(&stranger), &path).await.0, 200);
    assert_eq!(
        c.get(Some(&stranger), &format!("/images/{}", id_of(&sub)))
            .await
            .0,
        200
    );
    assert_eq!(c.get(None, &path).await, (404, not_found()));
    assert_eq!(c.delete(Some(&stranger), &path).await.0, 404);
    assert_eq!(c.get(Some(&stranger), &personal_path).await.0, 404);
    let (status, _) = c
        .upload(&stranger, "name=s&namespace=team@owner", qcow2("s"))
        .await;
    assert_eq!(status, 400);
    let (_, got) = c.get(Some(&stranger), &path).await;
    assert_eq!(got["namespace"]["visibility"], "internal");

    // public: anyone reads, even without a token.
    tintype_djinn::admin::namespace_set_visibility(engine, "team@owner", Visibility::Public)
        .await
        .unwrap();
    assert_eq!(c.get(None, &path).await.0, 200);
    let resp = c
        .http
        .get(c.url(&path))
        .header("Accept", "application/x-qemu-disk")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sha256(&resp.bytes().await.unwrap()), sha256(&qcow2("team")));
    assert_eq!(c.delete(None, &path).await.0, 404);
    assert_eq!(c.get(None, &personal_path).await.0, 404);

    // Removing the collaborator takes the access away again.
    tintype_djinn::admin::namespace_set_visibility(engine, "team@owner", Visibility::Private)
        .await
        .unwrap();
    tintype_djinn::admin::namespace_remove_collaborator(engine, "team@owner", "collab")
        .await
        .unwrap();
    assert_eq!(c.get(Some(&collab), &path).await, (404, not_found()));
    assert_eq!(c.get(Some(&collab), "/images").await.1, json!([]));
    assert_eq!(c.delete(Some(&owner), &path).await.0, 204);
}

#[tokio::test]
async fn scopes_are_enforced_per_endpoint() {
    let server = server().await;
    let c = Client::new(&server);
    let all = token(&server, "scoped").await;
    let read = server.user_token("scoped", &[Scope::ImageRead]).await;
    let write = server.user_token("scoped", &[Scope::ImageWrite]).await;
    let delete = server.user_token("scoped", &[Scope::ImageDelete]).await;
    let (status, img) = c.upload(&all, "name=scoped", qcow2("scoped")).await;
    assert_eq!(status, 201);
    let path = format!("/images/{}", id_of(&img));

    // no token, a wrong token, a token without the scope: 404.
    assert_eq!(c.get(None, "/images").await, (404, not_found()));
    assert_eq!(c.get(Some("tt_nope"), "/images").await, (404, not_found()));
    assert_eq!(c.get(Some(&write), "/images").await, (404, not_found()));
    assert_eq!(c.get(Some(&delete), &path).await, (404, not_found()));
    assert_eq!(
        c.upload(&read, "name=r", qcow2("r")).await,
        (404, not_found())
    );
    assert_eq!(
        c.upload(&delete, "name=r", qcow2("r")).await,
        (404, not_found())
    );
    let resp = c
        .http
        .post(c.url("/images?name=anon"))
        .body(qcow2("anon"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(c.delete(Some(&read), &path).await.0, 404);
    assert_eq!(c.delete(Some(&write), &path).await.0, 404);
    assert_eq!(c.delete(None, &path).await.0, 404);

    // with the scope: allowed.
    assert_eq!(c.get(Some(&read), "/images").await.0, 200);
    assert_eq!(c.get(Some(&read), &path).await.0, 200);
    assert_eq!(c.upload(&write, "name=w", qcow2("w")).await.0, 201);
    assert_eq!(c.delete(Some(&delete), &path).await.0, 204);

    // Unknown ids and other methods answer in the envelope.
    assert_eq!(
        c.get(Some(&read), "/images/999999").await,
        (404, not_found())
    );
    assert_eq!(c.get(Some(&read), "/images/abc").await, (404, not_found()));
    let resp = c
        .http
        .put(c.url("/images"))
        .bearer_auth(&all)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap(), not_found());
}

#[tokio::test]
async fn disk_download_is_byte_for_byte_with_ranges() {
    let server = server().await;
    let c = Client::new(&server);
    let t = token(&server, "dld").await;
    let mut disk = qcow2("bytes");
    // Non-trivial content after the tables.
    disk.extend((0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8));
    let (status, img) = c.upload(&t, "name=bytes", disk.clone()).await;
    assert_eq!(status, 201);
    let url = c.url(&format!("/images/{}", id_of(&img)));

    let resp = c
        .http
        .get(&url)
        .bearer_auth(&t)
        .header("Accept", "application/x-qemu-disk")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "application/x-qemu-disk");
    assert_eq!(h["content-length"], disk.len().to_string().as_str());
    let etag = h["etag"].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", sha256(&disk)));
    assert!(h.contains_key("last-modified"));
    let body = resp.bytes().await.unwrap();
    assert_eq!(sha256(&body), sha256(&disk));

    let resp = c
        .http
        .get(&url)
        .bearer_auth(&t)
        .header("Accept", "application/octet-stream")
        .header("Range", "bytes=100-1099")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 100-1099/{}", disk.len()).as_str()
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &disk[100..1100]);

    let resp = c
        .http
        .get(&url)
        .bearer_auth(&t)
        .header("Accept", "application/octet-stream")
        .header("Range", format!("bytes={}-", disk.len() + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);

    let resp = c
        .http
        .get(&url)
        .bearer_auth(&t)
        .header("Accept", "application/octet-stream")
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);

    // Without the disk types in Accept: the JSON object.
    let resp = c
        .http
        .get(&url)
        .bearer_auth(&t)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["name"], "bytes");
}

#[tokio::test]
async fn qemu_img_disk_uploads() {
    let Ok(out) = std::process::Command::new("qemu-img")
        .arg("--version")
        .output()
    else {
        println!("note: qemu-img is not installed; skipping qemu_img_disk_uploads");
        return;
    };
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.qcow2");
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&path)
        .arg("4G")
        .status()
        .unwrap();
    assert!(status.success());
    let disk = std::fs::read(&path).unwrap();

    let server = server().await;
    let c = Client::new(&server);
    let t = token(&server, "qemu").await;
    let (status, img) = c.upload(&t, "name=x", disk.clone()).await;
    assert_eq!(status, 201, "{img}");
    let stored = server.engine.image_by_seq(id_of(&img)).await.unwrap();
    assert_eq!(stored.content.format, "qcow2");
    assert_eq!(stored.content.kind.as_str(), "disk");
    assert_eq!(stored.content.size as usize, disk.len());
    let resp = c
        .http
        .get(c.url(&format!("/images/{}", id_of(&img))))
        .bearer_auth(&t)
        .header("Accept", "application/x-qemu-disk")
        .send()
        .await
        .unwrap();
    assert_eq!(sha256(&resp.bytes().await.unwrap()), sha256(&disk));

    // qemu-img checks the disk it made, and reads the one made in code.
    let status = std::process::Command::new("qemu-img")
        .arg("check")
        .arg(&path)
        .output()
        .unwrap();
    assert!(status.status.success());
    let ours = dir.path().join("ours.qcow2");
    std::fs::write(&ours, qcow2("")).unwrap();
    let out = std::process::Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&ours)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 1u64 << 30);
}

#[tokio::test]
async fn namespace_admin_functions() {
    let server = server().await;
    let e = &server.engine;
    token(&server, "nsowner").await;
    token(&server, "nsother").await;
    let ns = tintype_djinn::admin::namespace_create(
        e,
        "a/b/c@nsowner",
        Some(Visibility::Internal),
        Some("deep"),
    )
    .await
    .unwrap();
    assert_eq!(ns["path"], "a/b/c");
    assert_eq!(ns["name"], "c");
    assert_eq!(ns["visibility"], "internal");
    assert_eq!(ns["description"], "deep");
    assert_ne!(ns["root_id"], ns["id"]);
    let list = tintype_djinn::admin::namespace_list(e, Some("nsowner"))
        .await
        .unwrap();
    let paths: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["a", "a/b", "a/b/c"]);
    // A visibility for a sub-path that contradicts the root is refused.
    assert!(tintype_djinn::admin::namespace_create(
        e,
        "a/d@nsowner",
        Some(Visibility::Public),
        None
    )
    .await
    .is_err());
    assert!(tintype_djinn::admin::namespace_create(e, "a@", None, None)
        .await
        .is_err());
    assert!(
        tintype_djinn::admin::namespace_create(e, "a b@nsowner", None, None)
            .await
            .is_err()
    );
    assert!(
        tintype_djinn::admin::namespace_add_collaborator(e, "a@nsowner", "nobody")
            .await
            .is_err()
    );
    assert!(
        tintype_djinn::admin::namespace_add_collaborator(e, "zzz@nsowner", "nsother")
            .await
            .is_err()
    );
    let ns = tintype_djinn::admin::namespace_add_collaborator(e, "a/b@nsowner", "nsother")
        .await
        .unwrap();
    assert_eq!(ns["collaborators"], json!(["nsother"]));
    assert!(
        tintype_djinn::admin::namespace_remove_collaborator(e, "a@nsowner", "nsowner")
            .await
            .is_err()
    );
}

/// The README's curl commands, against a real server (skipped without curl).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_curl_examples_work() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("note: curl is not installed; skipping readme_curl_examples_work");
        return;
    }
    let server = server().await;
    let t = token(&server, "curl").await;
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("alpine.qcow2");
    std::fs::write(&disk, qcow2("curl")).unwrap();
    let auth = format!("Authorization: Bearer {t}");
    let base = server.base.clone();
    let run = |args: Vec<String>| {
        let dir = dir.path().to_path_buf();
        async move {
            let out = tokio::process::Command::new("curl")
                .arg("-s")
                .args(&args)
                .current_dir(dir)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "curl {args:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    let out = run(s(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "--data-binary",
        "@alpine.qcow2",
        &format!("{base}/images?name=alpine"),
    ]))
    .await;
    let img: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(img["name"], "alpine", "{out}");
    let out = run(s(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "--data-binary",
        "@alpine.qcow2",
        &format!("{base}/images?name=alpine&namespace=djinn"),
    ]))
    .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["namespace"]["path"], "djinn", "{out}");
    let out = run(s(&[
        "-X",
        "POST",
        "-H",
        &auth,
        "-F",
        "name=alpine-mp",
        "-F",
        "namespace=djinn",
        "-F",
        "file=@alpine.qcow2",
        &format!("{base}/images"),
    ]))
    .await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "alpine-mp", "{out}");
    let out = run(s(&["-H", &auth, &format!("{base}/images?search=alp")])).await;
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3, "{out}");
    let id = id_of(&img);
    let out = run(s(&[
        "-H",
        &auth,
        "-H",
        "Accept: application/x-qemu-disk",
        "-o",
        "alpine-copy.qcow2",
        &format!("{base}/images/{id}"),
    ]))
    .await;
    assert_eq!(out, "");
    let copy = std::fs::read(dir.path().join("alpine-copy.qcow2")).unwrap();
    assert_eq!(sha256(&copy), sha256(&qcow2("curl")));
    let out = run(s(&[
        "-X",
        "DELETE",
        "-w",
        "%{http_code}",
        "-H",
        &auth,
        &format!("{base}/images/{id}"),
    ]))
    .await;
    assert_eq!(out, "204");
}
