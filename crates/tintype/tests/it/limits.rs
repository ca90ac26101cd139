//! Slow clients, oversized fields and bodies, and secrets in logs: the
//! limits that keep one client from holding or harming the server.

use crate::harness::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

fn connect(s: &Server) -> TcpStream {
    let c = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Reads until the peer closes (or `limit` passes); returns what came and
/// whether the peer closed.
fn read_until_closed(c: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    c.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    while start.elapsed() < limit {
        match c.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

/// Sends a request head (and no body) on a fresh connection and returns
/// the response's status and body. The body is not sent, so a server that
/// refuses on `Content-Length` alone answers without reading anything.
fn head_only(s: &Server, head: &str) -> (u16, String) {
    let mut c = connect(s);
    c.write_all(head.as_bytes()).unwrap();
    let (bytes, _) = read_until_closed(&mut c, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&bytes).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

fn temp_uploads(data: &Path) -> Vec<std::path::PathBuf> {
    files_under(&data.join("tmp"))
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("upload-"))
        })
        .collect()
}

#[test]
fn a_half_sent_request_head_is_disconnected_after_the_header_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(
        &data,
        Opts::default().env("TINTYPE_HEADER_TIMEOUT_SECS", "1"),
    );
    let mut half = connect(&s);
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut silent = connect(&s);
    let (got, closed) = read_until_closed(&mut half, Duration::from_secs(15));
    assert!(closed, "a half-sent head kept its connection open");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(15));
    assert!(closed, "a connection that sent nothing stayed open");
    // A whole request on a fresh connection is still served.
    let r = client().get(s.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(
        &data,
        Opts::default()
            .env("TINTYPE_IDLE_TIMEOUT_SECS", "1")
            .env("TINTYPE_HEADER_TIMEOUT_SECS", "30"),
    );
    let mut c = connect(&s);
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, closed) = read_until_closed(&mut c, Duration::from_secs(15));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "an idle keep-alive connection stayed open");
}

#[test]
fn a_stalled_upload_body_is_cut_after_the_body_timeout_and_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default().env("TINTYPE_BODY_TIMEOUT_SECS", "3"));
    let token = user_with_token(&data, "alice", &[]);
    let png = noisy_png(200, 200, 5);
    let mut c = connect(&s);
    let head = format!(
        "POST /v1/images?name=stalled HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        png.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&png[..png.len() / 2]).unwrap();
    // The upload is being staged in a temporary file...
    let start = Instant::now();
    while temp_uploads(&data).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the upload never reached a temporary file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...then the client stops sending: the server gives up on it.
    let (got, closed) = read_until_closed(&mut c, Duration::from_secs(30));
    let text = String::from_utf8_lossy(&got);
    assert!(
        closed || text.starts_with("HTTP/1.1 4"),
        "the stalled upload was never cut: {text}"
    );
    let start = Instant::now();
    while !temp_uploads(&data).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the temp file of a cut upload stayed: {:?}",
            temp_uploads(&data)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let list: Vec<Value> = client()
        .get(s.url("/v1/images"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(list.is_empty(), "a cut upload was stored: {list:?}");
}

#[test]
fn past_max_connections_a_new_connection_waits_until_one_closes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default().env("TINTYPE_MAX_CONNECTIONS", "2"));
    // The health check's connections close with their client.
    std::thread::sleep(Duration::from_millis(300));
    let mut first = connect(&s);
    let second = connect(&s);
    // Both are served (accepted) before the third arrives.
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 512];
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = first.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let mut third = connect(&s);
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (got, _) = read_until_closed(&mut third, Duration::from_secs(2));
    assert!(
        got.is_empty(),
        "a connection past the cap was served: {}",
        String::from_utf8_lossy(&got)
    );
    drop(first);
    let (got, _) = read_until_closed(&mut third, Duration::from_secs(20));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "the waiting connection was not served once a slot was free: {text:?}"
    );
    drop(second);
}

/// A multipart part: field name, file name (for a file part), bytes.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "xXlimitsXx";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn blob_files(data: &Path) -> usize {
    files_under(&data.join("blobs").join("sha256")).len()
}

#[test]
fn an_oversized_native_name_or_metadata_is_413_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "alice", &[]);
    let c = client();
    let png = png(16, 16, 1);
    let long_name = "n".repeat(2048);
    let big_meta = format!("{{\"k\":\"{}\"}}", "m".repeat(100 * 1024));
    let cases: Vec<(&str, Vec<Part<'_>>)> = vec![
        (
            "name before the file",
            vec![
                ("name", None, long_name.as_bytes()),
                ("file", Some("a.png"), &png),
            ],
        ),
        (
            "name after the file",
            vec![
                ("file", Some("a.png"), &png),
                ("name", None, long_name.as_bytes()),
            ],
        ),
        (
            "metadata after the file",
            vec![
                ("file", Some("a.png"), &png),
                ("metadata", None, big_meta.as_bytes()),
            ],
        ),
    ];
    for (what, parts) in cases {
        let (ct, body) = multipart(&parts);
        let r = c
            .post(s.url("/v1/images"))
            .bearer_auth(&token)
            .header("content-type", ct)
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 413, "{what}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{what}"
        );
        let p: Value = r.json().unwrap();
        assert_eq!(p["status"], 413, "{what}: {p}");
        assert_eq!(p["type"], "urn:tintype:problem:too_large", "{what}: {p}");
    }
    // A raw upload's name is capped the same way.
    let r = c
        .post(s.url(&format!("/v1/images?name={long_name}")))
        .bearer_auth(&token)
        .body(png.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    let list: Vec<Value> = c
        .get(s.url("/v1/images"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(list.is_empty(), "a refused upload was stored: {list:?}");
    assert_eq!(blob_files(&data), 0, "a refused upload left its blob");
    // Within the caps, the same upload is stored.
    let (ct, body) = multipart(&[
        ("name", None, "n".repeat(1024).as_bytes()),
        ("file", Some("a.png"), &png),
        ("metadata", None, b"{\"k\":1}"),
    ]);
    let r = c
        .post(s.url("/v1/images"))
        .bearer_auth(&token)
        .header("content-type", ct)
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // PATCH: a JSON body over 1 MiB is refused before it is read.
    let img: Value = r.json().unwrap();
    let id = img["id"].as_str().unwrap();
    let (status, body) = head_only(
        &s,
        &format!(
            "PATCH /v1/images/{id} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            2 * 1024 * 1024
        ),
    );
    assert_eq!(status, 413, "{body}");
    let p: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(p["type"], "urn:tintype:problem:too_large", "{p}");
}

#[test]
fn an_oversized_body_or_field_answers_413_in_each_dialects_envelope() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "alice", &[]);
    let c = client();

    // PopIt: a JSON document over 1 MiB -> {"errors": [...]}.
    let (status, body) = head_only(
        &s,
        &format!(
            "PUT /api/v0.1/persons/50d1f2e1c03858f9f6000006 HTTP/1.1\r\nHost: x\r\n\
             Apikey: {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            2 * 1024 * 1024
        ),
    );
    assert_eq!(status, 413, "popit: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["errors"][0].as_str().is_some(), "popit: {v}");

    // Livingdocs: an import body over 16 MiB -> its error_details envelope.
    let (status, body) = head_only(
        &s,
        &format!(
            "POST /api/v1/import/images HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            17 * 1024 * 1024
        ),
    );
    assert_eq!(status, 413, "livingdocs: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], 413, "livingdocs: {v}");
    assert!(
        v["error_details"]["body"].as_str().is_some(),
        "livingdocs: {v}"
    );

    // Djinn: a JSON create over 64 KiB -> {"message": ...}.
    let (status, body) = head_only(
        &s,
        &format!(
            "POST /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            100 * 1024
        ),
    );
    assert_eq!(status, 413, "djinn: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["message"].as_str().is_some(), "djinn: {v}");

    // Djinn, multipart: a name field over its cap.
    let long = "d".repeat(8 * 1024);
    let (ct, form) = multipart(&[("name", None, long.as_bytes())]);
    let r = c
        .post(s.url("/images"))
        .bearer_auth(&token)
        .header("content-type", ct)
        .body(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().unwrap();
    assert!(v["message"].as_str().is_some(), "djinn: {v}");

    // diaspora*: a form field over its cap -> {"code": 413, "message": ...}.
    let long = "p".repeat(2048);
    let (ct, form) = multipart(&[("pending", None, long.as_bytes())]);
    let r = c
        .post(s.url("/api/v1/photos"))
        .bearer_auth(&token)
        .header("content-type", ct)
        .body(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().unwrap();
    assert_eq!(v["code"], 413, "diaspora: {v}");
    assert!(v["message"].as_str().is_some(), "diaspora: {v}");

    // Fulcrum: a form field over its cap -> {"photo":{"errors":{...}}}.
    let long = "f".repeat(100 * 1024);
    let (ct, form) = multipart(&[("photo[access_key]", None, long.as_bytes())]);
    let r = c
        .post(s.url("/api/v2/photos.json"))
        .header("X-ApiToken", &token)
        .header("content-type", ct)
        .body(form)
        .send()
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().unwrap();
    assert!(
        v["photo"]["errors"]["access_key"][0].as_str().is_some(),
        "fulcrum: {v}"
    );

    let list: Vec<Value> = c
        .get(s.url("/v1/images"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        list.is_empty(),
        "a refused request stored something: {list:?}"
    );
}

#[test]
fn tokens_in_queries_and_headers_never_reach_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default().env("TINTYPE_LOG", "trace"));
    let token = user_with_token(&data, "alice", &[]);
    let fake = "fake0secret0that0must0not0be0logged";
    let c = client();
    for secret in [token.as_str(), fake] {
        for q in ["access_token", "token", "api_key", "apikey", "Apikey"] {
            let r = c
                .get(s.url(&format!("/v1/images?limit=5&{q}={secret}")))
                .send()
                .unwrap();
            assert!(r.status().as_u16() < 500);
            let r = c
                .get(s.url(&format!("/api/v1/photos?{q}={secret}")))
                .send()
                .unwrap();
            assert!(r.status().as_u16() < 500);
        }
        let r = c
            .get(s.url("/v1/images"))
            .header("Authorization", format!("Bearer {secret}"))
            .header("Cookie", format!("session={secret}"))
            .send()
            .unwrap();
        assert!(r.status().as_u16() < 500);
        let r = c
            .get(s.url("/api/v2/photos.json"))
            .header("X-ApiToken", secret)
            .send()
            .unwrap();
        assert!(r.status().as_u16() < 500);
        let r = c
            .get(s.url("/api/v0.1/persons"))
            .header("Apikey", secret)
            .send()
            .unwrap();
        assert!(r.status().as_u16() < 500);
    }
    // Let the log reach its file.
    std::thread::sleep(Duration::from_millis(300));
    let log = s.stderr();
    assert!(
        log.contains("/v1/images"),
        "the requests were not logged at all:\n{}",
        log.chars().take(2000).collect::<String>()
    );
    assert!(log.contains("[redacted]"), "no redaction marker in the log");
    for secret in [token.as_str(), fake] {
        if let Some(i) = log.find(secret) {
            let from = log[..i].char_indices().rev().nth(300).map_or(0, |(j, _)| j);
            panic!(
                "a secret reached the log:\n{}",
                &log[from..(i + secret.len()).min(log.len())]
            );
        }
    }
}

#[test]
fn an_upload_refused_before_its_body_is_read_still_gets_its_answer_and_keeps_the_connection() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default().env("TINTYPE_WORKERS", "0"));
    let mut c = connect(&s);
    let body_len = 1 << 20;
    // A refusal (no valid token) comes before the body is read; the client
    // keeps sending it in pieces, as a slow uploader does.
    write!(
        c,
        "POST /v1/images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tt_wrong\r\nContent-Length: {body_len}\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![7u8; 64 * 1024];
    for _ in 0..body_len / chunk.len() {
        c.write_all(&chunk)
            .expect("the server resets the connection while the body is sent");
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf).expect("the answer to the refused upload");
        assert!(n > 0, "closed without an answer");
        head.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    let len: usize = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .expect("content-length");
    let start = text.find("\r\n\r\n").unwrap() + 4;
    let mut rest = head.len() - start;
    while rest < len {
        rest += c.read(&mut buf).unwrap();
    }
    // The same connection serves the next request.
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let n = c.read(&mut buf).expect("an answer on the kept connection");
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
}
