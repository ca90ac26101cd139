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
