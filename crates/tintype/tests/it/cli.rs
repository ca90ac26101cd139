//! The command-line contract: what goes to stdout, what to stderr, exit codes.

use crate::harness::*;
use serde_json::Value;
use std::process::Output;

/// A failure: non-zero exit, nothing on stdout, a one-line-ish message on
/// stderr, and no panic text.
fn assert_clean_failure(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "{what}: succeeded, should have failed"
    );
    assert!(
        out.stdout.is_empty(),
        "{what}: wrote to stdout: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.trim().is_empty(), "{what}: no message on stderr");
    for bad in [
        "panicked",
        "RUST_BACKTRACE",
        "internal failure",
        "stack backtrace",
    ] {
        assert!(
            !stderr.contains(bad),
            "{what}: panic text on stderr: {stderr}"
        );
    }
    stderr
}

#[test]
fn user_create_prints_one_json_object() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = cli_ok(
        &data,
        &["user", "create", "carol", "--email", "carol@example.org"],
    );
    assert_eq!(out.lines().count(), 1, "more than one line: {out:?}");
    let v: Value = serde_json::from_str(out.trim()).expect("user create prints JSON");
    assert!(v.is_object());
    assert_eq!(v["name"], "carol");
    assert_eq!(v["email"], "carol@example.org");
    assert!(v["id"].is_i64() || v["id"].is_string());
    // Listed afterwards, as one JSON object per line.
    let list = cli_ok(&data, &["user", "list"]);
    let names: Vec<String> = list
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(names.contains(&"carol".to_string()));
    // Creating the same user again fails cleanly.
    let again = cli(&data, &["user", "create", "carol"]);
    let msg = assert_clean_failure(&again, "duplicate user");
    assert!(msg.contains("carol"), "unhelpful message: {msg}");
    // An invalid name fails cleanly.
    assert_clean_failure(
        &cli(&data, &["user", "create", "no spaces/allowed"]),
        "invalid name",
    );
}

#[test]
fn token_create_prints_only_the_secret_and_revoke_makes_it_401() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    cli_ok(&data, &["user", "create", "dave"]);
    let out = cli_ok(&data, &["token", "create", "dave", "--scope", "image:read"]);
    // The secret alone: one line, one word.
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let secret = out.trim();
    assert!(!secret.is_empty() && !secret.contains(char::is_whitespace));
    assert!(out.ends_with('\n'));

    let c = client();
    let me = c.get(s.url("/v1/user")).bearer_auth(secret).send().unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().unwrap();
    assert_eq!(me["name"], "dave");
    assert_eq!(me["scopes"], serde_json::json!(["image:read"]));

    // The list shows the token without its secret.
    let list = cli_ok(&data, &["token", "list", "dave"]);
    assert!(!list.contains(secret), "token list leaks the secret");
    let tokens: Vec<Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["revoked"], false);
    let id = tokens[0]["id"].as_str().unwrap().to_string();

    // Revoke (while the server runs): the very next request is 401.
    cli_ok(&data, &["token", "revoke", &id]);
    let r = c.get(s.url("/v1/user")).bearer_auth(secret).send().unwrap();
    assert_eq!(r.status(), 401);
    let list = cli_ok(&data, &["token", "list", "dave"]);
    let v: Value = serde_json::from_str(list.lines().next().unwrap()).unwrap();
    assert_eq!(v["revoked"], true);
}

#[test]
fn errors_go_to_stderr_with_nonzero_exit_and_no_panic_text() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    cli_ok(&data, &["user", "create", "erin"]);
    let garbage = tmp.path().join("garbage.png");
    std::fs::write(&garbage, b"definitely not a picture").unwrap();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "token for a missing user",
            vec!["token".into(), "create".into(), "nobody".into()],
        ),
        (
            "unknown scope",
            vec![
                "token".into(),
                "create".into(),
                "erin".into(),
                "--scope".into(),
                "root".into(),
            ],
        ),
        (
            "revoke a missing token",
            vec!["token".into(), "revoke".into(), "ffffffff".into()],
        ),
        (
            "token list of a missing user",
            vec!["token".into(), "list".into(), "nobody".into()],
        ),
        (
            "quota of a missing user",
            vec![
                "quota".into(),
                "set".into(),
                "nobody".into(),
                "--images-per-day".into(),
                "3".into(),
            ],
        ),
        (
            "negative quota",
            vec![
                "quota".into(),
                "set".into(),
                "erin".into(),
                "--images-per-day=-1".into(),
            ],
        ),
        ("unknown command", vec!["frobnicate".into()]),
        ("missing argument", vec!["user".into(), "create".into()]),
        (
            "probe a missing file",
            vec![
                "probe".into(),
                tmp.path().join("nope.png").display().to_string(),
            ],
        ),
        (
            "probe a non-picture",
            vec!["probe".into(), garbage.display().to_string()],
        ),
    ];
    for (what, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_clean_failure(&cli(&data, &args), what);
    }
    // A bad setting fails cleanly too.
    let out = base_command(&data)
        .env("TINTYPE_PUBLIC_URL", "not-a-url")
        .args(["user", "list"])
        .output()
        .unwrap();
    assert_clean_failure(&out, "bad TINTYPE_PUBLIC_URL");
    // serve on an address that is taken fails cleanly.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = base_command(&data)
        .env("TINTYPE_LISTEN", taken.local_addr().unwrap().to_string())
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("listening on"), "{stderr}");

    // quota set succeeds and prints the user.
    let out = cli_ok(&data, &["quota", "set", "erin", "--images-per-day", "2"]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["images_per_day"], 2);
}

#[test]
fn probe_and_render_work_on_a_generated_picture() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("in.png");
    std::fs::write(&f, png(400, 200, 3)).unwrap();
    let out = cli_ok(&tmp.path().join("data"), &["probe", f.to_str().unwrap()]);
    let v: Value = serde_json::from_str(out.trim()).expect("probe prints JSON");
    assert_eq!(v["width"], 400);
    assert_eq!(v["height"], 200);
    let outdir = tmp.path().join("out");
    cli_ok(
        &tmp.path().join("data"),
        &[
            "render",
            f.to_str().unwrap(),
            "--out",
            outdir.to_str().unwrap(),
            "--fit",
            "100x100",
        ],
    );
    let files = files_under(&outdir);
    assert!(!files.is_empty(), "render wrote nothing");
    let img = image::open(&files[0]).expect("render output decodes");
    assert_eq!((img.width(), img.height()), (100, 50));
}
