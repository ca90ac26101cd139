//! Running tintype: request ids in responses, problem bodies and logs;
//! JSON log lines; shell completions.

use crate::harness::*;
use serde_json::Value;

fn is_generated_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn every_request_has_an_id_in_its_response_its_problem_body_and_its_log_lines() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user_with_token(&data, "ida", &[]);
    let s = Server::start(
        &data,
        Opts::default()
            .env("TINTYPE_LOG", "tower_http=debug,info")
            .env("TINTYPE_LOG_FORMAT", "json"),
    );
    let c = reqwest::blocking::Client::new();
    let id_of = |r: &reqwest::blocking::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };

    // The client's own id is kept and echoed, in the header and the body.
    let r = c
        .get(s.url("/v1/images/nope"))
        .bearer_auth(&token)
        .header("X-Request-Id", "client-42.a:b")
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(id_of(&r).as_deref(), Some("client-42.a:b"));
    let body: Value = r.json().unwrap();
    assert_eq!(body["request_id"], "client-42.a:b", "{body}");

    // No id, or one that is not sane: a new one.
    let r = c.get(s.url("/healthz")).send().unwrap();
    let fresh = id_of(&r).expect("an id");
    assert!(is_generated_id(&fresh), "{fresh}");
    for bad in ["has space", "quote\"d", &"x".repeat(129)] {
        let r = c
            .get(s.url("/v1/user"))
            .header("X-Request-Id", bad)
            .send()
            .unwrap();
        assert_eq!(r.status(), 401);
        let id = id_of(&r).expect("an id");
        assert!(is_generated_id(&id), "{bad:?} became {id:?}");
        assert_ne!(id, fresh);
        let body: Value = r.json().unwrap();
        assert_eq!(body["request_id"], id.as_str());
    }

    // Every log line is one JSON object; the request's lines carry its id.
    let mut found = false;
    for _ in 0..50 {
        let log = s.stderr();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        for l in &lines {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {l}"));
            let in_span = v["span"]["request_id"] == "client-42.a:b"
                || v["spans"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|sp| sp["request_id"] == "client-42.a:b"));
            found |= in_span;
        }
        if found {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(found, "no log line names the request id:\n{}", s.stderr());
}

#[test]
fn an_unknown_log_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = base_command(&dir.path().join("data"))
        .env("TINTYPE_LOG_FORMAT", "xml")
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("xml") && err.contains("json"), "{err}");
}

#[test]
fn completions_are_printed_for_each_shell() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (shell, marker) in [
        ("bash", "complete -F _tintype"),
        ("zsh", "#compdef tintype"),
        ("fish", "complete -c tintype"),
    ] {
        let script = cli_ok(&data, &["completions", shell]);
        assert!(script.contains(marker), "{shell}: {script:.200}");
        // Subcommands are offered.
        for sub in ["serve", "token", "gc"] {
            assert!(script.contains(sub), "{shell} misses {sub}");
        }
    }
    let out = cli(&data, &["completions", "tcsh"]);
    assert!(!out.status.success());
}

/// A source that holds every request while `hold` is set, then answers
/// with a PNG; counts the requests it got.
struct Source {
    hold: std::sync::Arc<std::sync::atomic::AtomicBool>,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    base: String,
}

fn start_source(body: Vec<u8>) -> Source {
    use std::io::{Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hold = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (h, n) = (hold.clone(), hits.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            n.fetch_add(1, Ordering::SeqCst);
            let (h, body) = (h.clone(), body.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                for _ in 0..1200 {
                    if !h.load(Ordering::SeqCst) {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes());
                let _ = conn.write_all(&body);
            });
        }
    });
    Source { hold, hits, base }
}

fn sigterm(s: &Server) {
    let pid = s.child.as_ref().expect("running").id();
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM {pid}");
}

/// Waits for the server process to exit by itself (bounded rounds).
fn exited(s: &mut Server) -> bool {
    let child = s.child.as_mut().expect("running");
    for _ in 0..300 {
        if child.try_wait().unwrap().is_some() {
            s.child = None;
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

#[test]
fn sigterm_gives_a_running_job_back_so_the_next_start_takes_it_at_once() {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user_with_token(&data, "jo", &[]);
    let src = start_source(png(16, 16, 3));
    // A lease far longer than the test: only a released job runs again soon.
    let opts = Opts::default()
        .env("TINTYPE_FETCH_ALLOW_PRIVATE", "1")
        .env("TINTYPE_JOB_LEASE_SECS", "600")
        .env("TINTYPE_SHUTDOWN_GRACE_SECS", "1");
    let mut s = Server::start(&data, opts.clone());
    let c = client();
    let r = c
        .post(s.url("/api/v1/import/images"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "systemName": "sys",
            "images": [{"url": format!("{}/a.png", src.base), "id": "a"}]
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The job is running: its fetch is held by the source.
    for _ in 0..300 {
        if src.hits.load(Ordering::SeqCst) > 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        src.hits.load(Ordering::SeqCst),
        1,
        "the import never fetched"
    );
    sigterm(&s);
    assert!(exited(&mut s), "the server did not stop after SIGTERM");

    // The next start takes the job at once (not after the 600 s lease).
    src.hold.store(false, Ordering::SeqCst);
    let s2 = Server::start(&data, opts);
    let mut state = Value::Null;
    for _ in 0..600 {
        state = c
            .get(s2.url(&format!("/api/v1/import/images/status?id={id}")))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if state["finished"] == true {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(state["state"], "success", "{state}");
    assert_eq!(src.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn sigterm_lets_a_request_in_flight_finish() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user_with_token(&data, "flo", &[]);
    let mut s = Server::start(
        &data,
        Opts::default().env("TINTYPE_SHUTDOWN_GRACE_SECS", "20"),
    );
    let body = png(32, 32, 9);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /v1/images?name=late HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    conn.write_all(first).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    sigterm(&s);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // New connections are no longer accepted...
    let refused = std::net::TcpStream::connect(("127.0.0.1", s.port))
        .map(|mut c| {
            let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut b = [0u8; 1];
            c.set_read_timeout(Some(std::time::Duration::from_secs(2)))
                .unwrap();
            !matches!(c.read(&mut b), Ok(n) if n > 0)
        })
        .unwrap_or(true);
    assert!(refused, "a new connection was served after SIGTERM");
    // ...but the upload in flight completes.
    conn.write_all(rest).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(exited(&mut s), "the server did not stop");
    // The image was stored for good.
    let s2 = Server::start(&data, Opts::default());
    let list: Value = client()
        .get(s2.url("/v1/images"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list[0]["name"], "late", "{list}");
}

#[test]
fn gc_dry_run_lists_what_it_would_remove_and_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user_with_token(&data, "gus", &[]);
    // One referenced blob (an uploaded image) and two orphans; no workers,
    // so no variant is being written when the server stops.
    let s = Server::start(&data, Opts::default().env("TINTYPE_WORKERS", "0"));
    let kept = png(8, 8, 1);
    let img = upload_raw(&client(), &s, &token, "kept", kept.clone());
    assert_eq!(img["name"], "kept");
    drop(s);
    let orphans = [b"orphan one".to_vec(), b"the second orphan".to_vec()];
    for o in &orphans {
        let p = blob_path(&data, &sha256_hex(o));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, o).unwrap();
    }
    let gc = |args: &[&str]| -> Value {
        let out = base_command(&data)
            .env("TINTYPE_GC_GRACE_SECS", "0")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let plan = gc(&["gc", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    let mut listed: Vec<String> = plan["would_remove"]
        .as_array()
        .expect("would_remove")
        .iter()
        .map(|c| c["sha256"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut expected: Vec<String> = orphans.iter().map(|o| sha256_hex(o)).collect();
    expected.sort();
    assert_eq!(listed, expected, "{plan}");
    let bytes: usize = orphans.iter().map(Vec::len).sum();
    assert_eq!(plan["would_free_bytes"], bytes as u64);
    assert_eq!(plan["removed"], 0);
    for o in &orphans {
        assert!(
            blob_path(&data, &sha256_hex(o)).exists(),
            "a dry run removed a blob"
        );
    }
    // The real run removes exactly those.
    let done = gc(&["gc"]);
    assert_eq!(
        (done["dry_run"].clone(), done["removed"].clone()),
        (Value::Bool(false), Value::from(2))
    );
    assert!(done.get("would_remove").is_none());
    for o in &orphans {
        assert!(!blob_path(&data, &sha256_hex(o)).exists());
    }
    assert!(blob_path(&data, &sha256_hex(&kept)).exists());
}

#[test]
fn metrics_have_help_and_type_bounded_labels_and_the_engine_series() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user_with_token(&data, "mia", &[]);
    let s = Server::start(&data, Opts::default());
    let c = client();
    let img = upload_raw(&c, &s, &token, "m", png(8, 8, 4));
    let id = img["id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        let r = c
            .get(s.url(&format!("/v1/images/{id}/original")))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // A refused upload, odd methods and random paths.
    let r = c
        .post(s.url("/v1/images"))
        .bearer_auth(&token)
        .body(b"not a picture at all".to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 415);
    for i in 0..20 {
        let m = reqwest::Method::from_bytes(format!("M{i}X").as_bytes()).unwrap();
        let _ = c.request(m, s.url(&format!("/random/{i}"))).send().unwrap();
    }
    let text = c.get(s.url("/metrics")).send().unwrap().text().unwrap();

    // Every series has HELP and TYPE.
    let mut names = std::collections::BTreeSet::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = l.split(['{', ' ']).next().unwrap();
        let base = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        names.insert(base.to_string());
    }
    for n in &names {
        assert!(text.contains(&format!("# HELP {n} ")), "no HELP for {n}");
        assert!(text.contains(&format!("# TYPE {n} ")), "no TYPE for {n}");
    }
    for expected in [
        "tintype_http_requests_total",
        "tintype_http_request_duration_seconds",
        "tintype_jobs",
        "tintype_uploads_refused_total",
        "tintype_cache_lookups_total",
        "tintype_variant_renders_total",
    ] {
        assert!(names.contains(expected), "{expected} missing:\n{text}");
    }
    // Route templates and bounded methods only: no raw path, no odd method.
    assert!(!text.contains("/random/"), "{text}");
    assert!(!text.contains("M3X"), "{text}");
    let odd = text
        .lines()
        .find(|l| {
            l.starts_with("tintype_http_requests_total{")
                && l.contains("method=\"other\"")
                && l.contains("route=\"unmatched\"")
        })
        .unwrap_or_else(|| panic!("no unmatched/other series:\n{text}"));
    assert!(odd.ends_with(" 20"), "{odd}");
    assert!(
        text.contains("route=\"/v1/images/{id}/original\""),
        "{text}"
    );
    assert!(
        text.contains("tintype_uploads_refused_total{reason=\"unknown_format\"} 1"),
        "{text}"
    );
    // The second and third reads of the image were cache hits.
    let hits: f64 = text
        .lines()
        .find(|l| l.starts_with("tintype_cache_lookups_total{cache=\"images\",result=\"hit\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(hits >= 2.0, "{text}");
}

/// Bytes of the blob files the directory store holds.
fn blob_dir_bytes(data: &std::path::Path) -> u64 {
    files_under(&data.join("blobs").join("sha256"))
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// Waits until every variant of the image has been rendered.
fn wait_processed(s: &Server, token: &str, id: &str) -> Value {
    let c = client();
    for _ in 0..600 {
        let v: Value = c
            .get(s.url(&format!("/v1/images/{id}")))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if !v["processed_at"].is_null() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("image {id} was never processed");
}

#[test]
fn the_stored_bytes_gauge_follows_uploads_deletes_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user_with_token(&data, "sten", &[]);
    let s = Server::start(
        &data,
        Opts::default().env("TINTYPE_STORED_BYTES_REFRESH_SECS", "0"),
    );
    let gauge = || s.metric("tintype_stored_bytes") as u64;
    assert_eq!(gauge(), 0);
    let c = client();
    let bytes = noisy_png(300, 200, 41);
    let a = upload_raw(&c, &s, &token, "a.png", bytes.clone());
    let a = wait_processed(&s, &token, a["id"].as_str().unwrap());
    // The same bytes again: stored once, counted once.
    let b = upload_raw(&c, &s, &token, "b.png", bytes.clone());
    let b = wait_processed(&s, &token, b["id"].as_str().unwrap());
    // Variants rendered after `a` was read count too: read it again.
    let a = wait_processed(&s, &token, a["id"].as_str().unwrap());
    // An image's bytes: its original and every variant, as the API
    // reports them.
    let bytes_of = |img: &Value| -> u64 {
        img["size"].as_u64().unwrap()
            + img["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["size"].as_u64().unwrap())
                .sum::<u64>()
    };
    assert!(bytes_of(&a) > bytes.len() as u64, "no variants: {a}");
    let stored = gauge();
    // Each image counts its own bytes, shared or not; the store holds the
    // shared ones once.
    assert_eq!(stored, bytes_of(&a) + bytes_of(&b));
    let on_disk = blob_dir_bytes(&data);
    assert!(
        on_disk > 0 && on_disk <= stored,
        "{on_disk} on disk, {stored} counted"
    );
    // A delete takes its image's bytes off at once; gc then removes what
    // no image needs, and the gauge stays at zero.
    delete_raw(&c, &s, &token, &a);
    assert_eq!(gauge(), bytes_of(&b));
    delete_raw(&c, &s, &token, &b);
    let gc = base_command(&data)
        .env("TINTYPE_GC_GRACE_SECS", "0")
        .arg("gc")
        .output()
        .unwrap();
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert_eq!(gauge(), 0);
    assert_eq!(blob_dir_bytes(&data), 0);
}

#[test]
fn the_stored_bytes_gauge_is_summed_at_most_once_per_refresh_period() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = user_with_token(&data, "cache", &[]);
    let s = Server::start(
        &data,
        Opts::default().env("TINTYPE_STORED_BYTES_REFRESH_SECS", "3600"),
    );
    assert_eq!(s.metric("tintype_stored_bytes"), 0.0);
    upload_raw(&client(), &s, &token, "a.png", noisy_png(40, 30, 42));
    // Within the period the last sum is served, not a new scan.
    assert_eq!(s.metric("tintype_stored_bytes"), 0.0);
}
