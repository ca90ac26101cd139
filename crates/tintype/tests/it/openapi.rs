//! The OpenAPI document on `/v1/openapi.json`: valid by an independent
//! validator (Python's openapi-spec-validator), and true to what a running
//! server answers: for every operation it lists, real requests (success and
//! each error that can be caused) get a documented status, and each JSON
//! body matches its documented schema (checked by the `jsonschema` crate,
//! not by the code that made the document). The response schemas are
//! closed (`additionalProperties: false`), so a field served but not
//! documented fails here.

use crate::harness::*;
use reqwest::blocking::{multipart, RequestBuilder, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn fetch_document(s: &Server) -> Value {
    let r = client().get(s.url("/v1/openapi.json")).send().unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{ct}");
    r.json().unwrap()
}

#[test]
fn the_document_is_valid_openapi_3_1_by_an_independent_validator() {
    let python = match std::env::var("TINTYPE_OPENAPI_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            if std::env::var("TINTYPE_SKIP_OPENAPI_VALIDATOR").as_deref() == Ok("1") {
                eprintln!("TINTYPE_SKIP_OPENAPI_VALIDATOR=1: the OpenAPI validator is not run");
                return;
            }
            panic!(
                "TINTYPE_OPENAPI_PYTHON is not set: it names a Python with openapi-spec-validator \
                 installed (scripts/test.sh makes one); set TINTYPE_SKIP_OPENAPI_VALIDATOR=1 to skip"
            );
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = Server::start(&data, Opts::default());
    let doc = fetch_document(&s);
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["servers"][0]["url"], s.base.as_str());
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    let check = |path: &Path| {
        std::process::Command::new(&python)
            .args([
                "-c",
                "import json, sys\n\
                 from openapi_spec_validator import validate\n\
                 from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
                 validate(json.load(open(sys.argv[1])), cls=OpenAPIV31SpecValidator)\n\
                 print('valid')",
            ])
            .arg(path)
            .output()
            .expect("running the OpenAPI validator")
    };
    let out = check(&file);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("valid"),
        "the validator refused the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The validator can refuse: a reference to a schema that is not there.
    let mut broken = doc.clone();
    broken["paths"]["/v1/user"]["get"]["responses"]["200"]["content"]["application/json"]
        ["schema"] = json!({"$ref": "#/components/schemas/Nowhere"});
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert!(!check(&file).status.success(), "a broken document passed");
}

/// The document and what has been checked against it.
struct Conformance {
    doc: Value,
    /// (method, path template) -> statuses seen.
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
}

impl Conformance {
    /// The documented response of an operation for `status`.
    fn documented(&self, method: &str, template: &str, status: u16) -> &Value {
        let op = &self.doc["paths"][template][method];
        assert!(
            op.is_object(),
            "{} {template} is not in the document",
            method.to_uppercase()
        );
        let r = &op["responses"][status.to_string()];
        assert!(
            r.is_object(),
            "{} {template} answered {status}, which the document does not list (it lists {:?})",
            method.to_uppercase(),
            op["responses"]
                .as_object()
                .map(|m| m.keys().cloned().collect::<Vec<_>>())
        );
        r
    }

    /// Sends `req` and checks the answer against the document: a listed
    /// status, a listed content type, and a JSON body that matches the
    /// schema. Returns the status and the body.
    fn check(
        &mut self,
        method: &str,
        template: &str,
        req: RequestBuilder,
    ) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
        let r: Response = req.send().unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.bytes().unwrap().to_vec();
        let what = format!("{} {template} -> {status}", method.to_uppercase());
        let documented = self.documented(method, template, status).clone();
        self.seen
            .entry((method.to_string(), template.to_string()))
            .or_default()
            .insert(status);
        let content = documented["content"].as_object();
        let Some(content) = content else {
            assert!(
                body.is_empty(),
                "{what}: the document lists no body, but one came: {}",
                String::from_utf8_lossy(&body)
            );
            return (status, headers, body);
        };
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let media = content
            .iter()
            .find(|(k, _)| {
                let k = k.split(';').next().unwrap_or("").trim();
                k == essence
                    || k == "*/*"
                    || k.strip_suffix("/*")
                        .is_some_and(|top| essence.starts_with(&format!("{top}/")))
            })
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| {
                panic!(
                    "{what}: content type {ct:?} is not among the documented {:?}",
                    content.keys().collect::<Vec<_>>()
                )
            });
        // Headers the document lists for this response are there (Link
        // only when there is a next page, checked by the caller).
        if let Some(hs) = documented["headers"].as_object() {
            for name in hs.keys() {
                if name == "Link" {
                    continue;
                }
                assert!(
                    headers.contains_key(name.as_str()),
                    "{what}: no {name} header"
                );
            }
        }
        if essence.ends_with("json") {
            let schema = media["schema"].clone();
            assert!(schema.is_object(), "{what}: a JSON body with no schema");
            let instance: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{what}: the body is not JSON ({e})"));
            validate(&self.doc, &schema, &instance, &what);
        }
        (status, headers, body)
    }
}

/// Validates `instance` against a schema of the document, its `$ref`s
/// resolved into the document's components.
fn validate(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let mut root = schema.clone();
    let obj = root.as_object_mut().expect("a schema object");
    obj.insert(
        "$schema".into(),
        json!("https://json-schema.org/draft/2020-12/schema"),
    );
    obj.insert("components".into(), doc["components"].clone());
    let v = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
    let errors: Vec<String> = v
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: the body does not match its schema:\n{}\nbody: {instance}",
        errors.join("\n")
    );
}

#[test]
fn every_operation_answers_as_documented_including_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = dir.path().join("tintype.toml");
    // Small limits so that the refusals can be caused with small files.
    std::fs::write(&config, "max_pixels = 1000000\n").unwrap();
    let full = user_with_token(&data, "olga", &[]);
    let read_only = token_for(&data, "olga", &["image:read"]);
    let write_only = token_for(&data, "olga", &["image:write"]);
    let capped = user_with_token(&data, "quincy", &[]);
    cli_ok(&data, &["quota", "set", "quincy", "--images-per-day", "1"]);
    let s = Server::start(
        &data,
        Opts::default()
            .env("TINTYPE_CONFIG", config.to_str().unwrap())
            .env("TINTYPE_MAX_DECODE_MEMORY", "2000000"),
    );
    let doc = fetch_document(&s);
    let mut t = Conformance {
        doc,
        seen: BTreeMap::new(),
    };
    let c = client();
    let u = |p: &str| s.url(p);

    // --- service
    t.check("get", "/healthz", c.get(u("/healthz")));
    t.check("get", "/readyz", c.get(u("/readyz")));
    t.check("get", "/metrics", c.get(u("/metrics")));
    t.check("get", "/v1/openapi.json", c.get(u("/v1/openapi.json")));

    // --- user
    let me = "/v1/user";
    let (_, _, body) = t.check("get", me, c.get(u(me)).bearer_auth(&full));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["name"], "olga");
    t.check("get", me, c.get(u(me)));
    t.check("get", me, c.get(u(me)).bearer_auth("not-a-token"));
    t.check("get", me, c.get(u(me)).header("X-ApiToken", &write_only));

    // --- upload: multipart and raw, and every refusal that can be caused
    let up = "/v1/images";
    let form = multipart::Form::new()
        .text("name", "cat.png")
        .text("metadata", r#"{"album":"pets"}"#)
        .part(
            "file",
            multipart::Part::bytes(png(64, 48, 1)).file_name("c.png"),
        );
    let (st, _, body) = t.check("post", up, c.post(u(up)).bearer_auth(&full).multipart(form));
    assert_eq!(st, 201);
    let cat: Value = serde_json::from_slice(&body).unwrap();
    let cat_id = cat["id"].as_str().unwrap().to_string();
    let (st, _, body) = t.check(
        "post",
        up,
        c.post(u("/v1/images?name=photo.jpg"))
            .bearer_auth(&full)
            .body(jpeg(40, 30, 2)),
    );
    assert_eq!(st, 201);
    let photo: Value = serde_json::from_slice(&body).unwrap();
    let photo_id = photo["id"].as_str().unwrap().to_string();
    let (st, _, body) = t.check(
        "post",
        up,
        c.post(u("/v1/images?name=disk.qcow2"))
            .bearer_auth(&full)
            .body(qcow2()),
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    let disk: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(disk["kind"], "disk");
    let disk_id = disk["id"].as_str().unwrap().to_string();
    let (st, _, body) = t.check(
        "post",
        up,
        c.post(u("/v1/images?name=big.png"))
            .bearer_auth(&full)
            .body(png(900, 900, 3)),
    );
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));
    let big: Value = serde_json::from_slice(&body).unwrap();
    let big_id = big["id"].as_str().unwrap().to_string();
    let expect = |t: &mut Conformance, req: RequestBuilder, want: u16| {
        let (st, _, body) = t.check("post", up, req);
        assert_eq!(st, want, "{}", String::from_utf8_lossy(&body));
    };
    expect(
        &mut t,
        c.post(u(up)).bearer_auth(&full).body(Vec::new()),
        400,
    );
    let no_file = multipart::Form::new().text("name", "x");
    expect(
        &mut t,
        c.post(u(up)).bearer_auth(&full).multipart(no_file),
        400,
    );
    let bad_meta = multipart::Form::new().text("metadata", "[1]").part(
        "file",
        multipart::Part::bytes(png(8, 8, 4)).file_name("x.png"),
    );
    expect(
        &mut t,
        c.post(u(up)).bearer_auth(&full).multipart(bad_meta),
        400,
    );
    expect(&mut t, c.post(u(up)).body(png(8, 8, 5)), 401);
    expect(
        &mut t,
        c.post(u(up)).bearer_auth(&read_only).body(png(8, 8, 5)),
        403,
    );
    let long = "n".repeat(1025);
    expect(
        &mut t,
        c.post(u(&format!("/v1/images?name={long}")))
            .bearer_auth(&full)
            .body(png(8, 8, 5)),
        413,
    );
    expect(
        &mut t,
        c.post(u(up)).bearer_auth(&full).body("just some text"),
        415,
    );
    expect(
        &mut t,
        c.post(u(up)).bearer_auth(&full).body(png(1200, 1000, 6)),
        422,
    );
    upload_raw(&c, &s, &capped, "first.png", png(8, 8, 7));
    expect(
        &mut t,
        c.post(u(up)).bearer_auth(&capped).body(png(8, 8, 8)),
        429,
    );

    // --- list, a page at a time
    let (st, headers, body) = t.check("get", up, c.get(u("/v1/images?limit=1")).bearer_auth(&full));
    assert_eq!(st, 200);
    let link = headers["link"].to_str().unwrap();
    assert!(link.contains("rel=\"next\""), "{link}");
    assert_eq!(
        serde_json::from_slice::<Value>(&body)
            .unwrap()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    t.check("get", up, c.get(u("/v1/images")).bearer_auth(&full));
    t.check("get", up, c.get(u("/v1/images?limit=0")).bearer_auth(&full));
    t.check("get", up, c.get(u("/v1/images?limit=x")).bearer_auth(&full));
    t.check("get", up, c.get(u(up)));
    t.check("get", up, c.get(u(up)).bearer_auth(&write_only));

    // --- one image
    let one = "/v1/images/{id}";
    let cat_url = u(&format!("/v1/images/{cat_id}"));
    t.check("get", one, c.get(&cat_url).bearer_auth(&full));
    t.check("get", one, c.get(&cat_url));
    t.check("get", one, c.get(&cat_url).bearer_auth(&write_only));
    t.check("get", one, c.get(u("/v1/images/nope")).bearer_auth(&full));
    // A disk image too (no variants, no preset URLs).
    t.check(
        "get",
        one,
        c.get(u(&format!("/v1/images/{disk_id}")))
            .bearer_auth(&full),
    );

    let patch = |body: Value| {
        c.patch(&cat_url)
            .bearer_auth(&full)
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let (st, _, body) = t.check(
        "patch",
        one,
        patch(json!({"name": "renamed", "metadata": {"k": [1, 2.5, null]}})),
    );
    assert_eq!(st, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["name"],
        "renamed"
    );
    t.check("patch", one, patch(json!({"name": null})));
    t.check("patch", one, patch(json!({"colour": "red"})));
    t.check("patch", one, patch(json!({"name": "n".repeat(1025)})));
    t.check("patch", one, c.patch(&cat_url).body("{}"));
    t.check(
        "patch",
        one,
        c.patch(&cat_url).bearer_auth(&read_only).body("{}"),
    );
    t.check(
        "patch",
        one,
        c.patch(u("/v1/images/nope")).bearer_auth(&full).body("{}"),
    );

    // --- bytes: original and variants, whole, ranged, conditional
    for (template, url) in [
        (
            "/v1/images/{id}/original",
            format!("/v1/images/{cat_id}/original"),
        ),
        (
            "/v1/images/{id}/variants/{preset}",
            format!("/v1/images/{photo_id}/variants/small"),
        ),
    ] {
        let (st, headers, body) = t.check("get", template, c.get(u(&url)).bearer_auth(&full));
        assert_eq!(st, 200);
        assert!(!body.is_empty());
        let etag = headers["etag"].to_str().unwrap().to_string();
        let (st, headers, body) = t.check(
            "get",
            template,
            c.get(u(&url))
                .bearer_auth(&full)
                .header("range", "bytes=0-9"),
        );
        assert_eq!(st, 206);
        assert_eq!(body.len(), 10);
        assert!(headers["content-range"]
            .to_str()
            .unwrap()
            .starts_with("bytes 0-9/"));
        let (st, _, _) = t.check(
            "get",
            template,
            c.get(u(&url))
                .bearer_auth(&full)
                .header("if-none-match", &etag),
        );
        assert_eq!(st, 304);
        let (st, _, _) = t.check(
            "get",
            template,
            c.get(u(&url))
                .bearer_auth(&full)
                .header("range", "bytes=99999999-"),
        );
        assert_eq!(st, 416);
        t.check("get", template, c.get(u(&url)));
        t.check("get", template, c.get(u(&url)).bearer_auth(&write_only));
    }
    let orig = "/v1/images/{id}/original";
    t.check(
        "get",
        orig,
        c.get(u("/v1/images/nope/original")).bearer_auth(&full),
    );
    let var = "/v1/images/{id}/variants/{preset}";
    let (_, headers, _) = t.check(
        "get",
        var,
        c.get(u(&format!(
            "/v1/images/{photo_id}/variants/small?format=webp"
        )))
        .bearer_auth(&full),
    );
    assert_eq!(headers["content-type"], "image/webp");
    for (path, want) in [
        (
            format!("/v1/images/{photo_id}/variants/small?format=bmp"),
            400,
        ),
        (format!("/v1/images/{photo_id}/variants/nope"), 404),
        ("/v1/images/nope/variants/small".to_string(), 404),
        (format!("/v1/images/{disk_id}/variants/small"), 415),
        (format!("/v1/images/{big_id}/variants/large"), 422),
    ] {
        let (st, _, body) = t.check("get", var, c.get(u(&path)).bearer_auth(&full));
        assert_eq!(st, want, "{path}: {}", String::from_utf8_lossy(&body));
    }

    // --- delete
    let (st, _, _) = t.check("delete", one, c.delete(&cat_url).bearer_auth(&full));
    assert_eq!(st, 204);
    t.check("delete", one, c.delete(&cat_url).bearer_auth(&full));
    t.check(
        "delete",
        one,
        c.delete(u(&format!("/v1/images/{photo_id}"))),
    );
    t.check(
        "delete",
        one,
        c.delete(u(&format!("/v1/images/{photo_id}")))
            .bearer_auth(&read_only),
    );

    // Every operation in the document was called, and every status it
    // lists was seen, but for those no test can cause on demand.
    let cannot_cause: &[(&str, &str, u16)] = &[
        ("get", "/readyz", 503),
        ("post", "/v1/images", 503),
        ("post", "/v1/images", 507),
        ("get", "/v1/images/{id}/variants/{preset}", 503),
    ];
    let mut missing = Vec::new();
    for (path, item) in t.doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let seen = t.seen.get(&(method.clone(), path.clone()));
            for status in op["responses"].as_object().unwrap().keys() {
                let status: u16 = status.parse().unwrap();
                let excused = cannot_cause
                    .iter()
                    .any(|(m, p, s)| *m == method && *p == path && *s == status);
                if !excused && !seen.is_some_and(|s| s.contains(&status)) {
                    missing.push(format!("{} {path} {status}", method.to_uppercase()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documented but never answered: {missing:?}"
    );
}

/// A small QCOW2 version 3 disk (4 clusters of 64 KiB).
fn qcow2() -> Vec<u8> {
    const CLUSTER: usize = 1 << 16;
    let mut h = vec![0u8; 104];
    h[0..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    h[20..24].copy_from_slice(&16u32.to_be_bytes());
    let size: u64 = 1 << 30;
    h[24..32].copy_from_slice(&size.to_be_bytes());
    let per_l1 = ((CLUSTER / 8) * CLUSTER) as u64;
    h[36..40].copy_from_slice(&(size.div_ceil(per_l1) as u32).to_be_bytes());
    h[40..48].copy_from_slice(&(3 * CLUSTER as u64).to_be_bytes());
    h[48..56].copy_from_slice(&(CLUSTER as u64).to_be_bytes());
    h[56..60].copy_from_slice(&1u32.to_be_bytes());
    h[96..100].copy_from_slice(&4u32.to_be_bytes());
    h[100..104].copy_from_slice(&104u32.to_be_bytes());
    h.resize(4 * CLUSTER, 0);
    h
}

#[test]
fn a_field_served_but_not_documented_fails_the_check() {
    // The check itself can fail: a body with an extra field, or a missing
    // one, does not match the closed schema of the document.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), Opts::default());
    let doc = fetch_document(&s);
    let schema = json!({"$ref": "#/components/schemas/ProblemBody"});
    let good = json!({"type": "urn:tintype:problem:not_found", "title": "Not Found",
        "status": 404, "detail": "x"});
    validate(&doc, &schema, &good, "a problem");
    for bad in [
        json!({"type": "urn:tintype:problem:not_found", "title": "Not Found",
            "status": 404, "detail": "x", "extra": 1}),
        json!({"type": "urn:tintype:problem:not_found", "title": "Not Found", "status": 404}),
    ] {
        let caught = std::panic::catch_unwind(|| validate(&doc, &schema, &bad, "a problem"));
        assert!(caught.is_err(), "{bad} passed");
    }
}
