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

    // Revoke (while the server runs). The command line is another process
    // than the server, so the server's token cache sees it within its TTL
    // (README, "Serving speed"); the same node sees its own revocations at
    // once (caches::a_revoked_token_never_works_again_...).
    cli_ok(&data, &["token", "revoke", &id]);
    let bound = tintype_engine::cache::CACHE_TTL * 3;
    let started = std::time::Instant::now();
    loop {
        let r = c.get(s.url("/v1/user")).bearer_auth(secret).send().unwrap();
        if r.status() == 401 {
            break;
        }
        assert_eq!(r.status(), 200);
        assert!(
            started.elapsed() < bound,
            "a revoked token still works after {bound:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
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

/// Uploads `bytes`; the status and the image id (when 201).
fn try_upload(
    c: &reqwest::blocking::Client,
    base: &str,
    token: &str,
    bytes: Vec<u8>,
) -> (u16, String) {
    match c
        .post(format!("{base}/v1/images"))
        .bearer_auth(token)
        .body(bytes)
        .send()
    {
        Ok(r) => {
            let status = r.status().as_u16();
            let v: Value = r.json().unwrap_or(Value::Null);
            (status, v["id"].as_str().unwrap_or("").to_string())
        }
        Err(e) => (0, e.to_string()),
    }
}

#[test]
fn uploads_keep_succeeding_while_admin_commands_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "busy", &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let admin = {
        let (stop, data) = (stop.clone(), data.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                cli_ok(&data, &["user", "list"]);
                n += 1;
            }
            n
        })
    };
    let uploaders: Vec<_> = (0..4u64)
        .map(|t| {
            let (base, token) = (s.base.clone(), token.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut failed = Vec::new();
                for i in 0..15u64 {
                    let (status, what) =
                        try_upload(&c, &base, &token, noisy_png(256, 256, t * 100 + i));
                    if status != 201 {
                        failed.push(format!("{status} {what}"));
                    }
                }
                failed
            })
        })
        .collect();
    let failed: Vec<String> = uploaders
        .into_iter()
        .flat_map(|u| u.join().unwrap())
        .collect();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let runs = admin.join().unwrap();
    assert!(runs > 0, "user list never ran");
    assert!(
        failed.is_empty(),
        "{} of 60 uploads failed while `user list` ran {runs} times: {failed:?}",
        failed.len()
    );
    // Admin commands leave no temporary directory behind.
    let left: Vec<_> = std::fs::read_dir(data.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(left.len() <= 1, "temporary directories left: {left:?}");
    drop(s);
}

/// Starts an upload of `len` bytes to the server and sends only `sent` of
/// them; the connection stays open while the stream lives.
fn half_upload(s: &Server, token: &str, len: usize, sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        tcp,
        "POST /v1/images HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    let body = noisy_png(64, 64, 4242);
    let mut chunk = body.clone();
    chunk.resize(sent, 0);
    tcp.write_all(&chunk).unwrap();
    tcp.flush().unwrap();
    tcp
}

/// The temporary directories under `dir` that hold at least one file.
fn busy_dirs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !files_under(p).is_empty())
        .collect()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..1000 {
        if let Some(v) = f() {
            return v;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}

#[test]
fn serve_removes_only_the_temporary_files_of_dead_processes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let tmp_dir = data.join("tmp");
    let incoming = data.join("blobs").join("incoming");
    // Server C is alive and receiving an upload.
    let c_server = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "temps", &[]);
    let conn_c = half_upload(&c_server, &token, 1_000_000, 1000);
    let live = wait_for("C's temp file", || busy_dirs(&tmp_dir).into_iter().next());
    let live_name = live.file_name().unwrap().to_owned();
    std::fs::create_dir_all(incoming.join(&live_name)).unwrap();
    std::fs::write(incoming.join(&live_name).join("staging"), b"in progress").unwrap();
    // Server A starts (sweeping: C's files stay), then dies (kill -9) in
    // the middle of an upload.
    let mut a = Server::start(&data, Opts::default());
    assert!(
        live.exists(),
        "a starting server removed a live one's upload"
    );
    let conn = half_upload(&a, &token, 1_000_000, 1000);
    let dead = wait_for("A's temp file", || {
        busy_dirs(&tmp_dir).into_iter().find(|d| *d != live)
    });
    a.kill9();
    drop(conn);
    let dead_name = dead.file_name().unwrap().to_owned();
    // As if A had also been staging a blob when it died.
    std::fs::create_dir_all(incoming.join(&dead_name)).unwrap();
    std::fs::write(incoming.join(&dead_name).join("staged"), b"half a blob").unwrap();
    // And a recent file of unknown owner (an older version's layout).
    std::fs::write(tmp_dir.join("upload-unknown"), b"?").unwrap();
    let c_files = files_under(&live);

    // An admin command removes nothing.
    cli_ok(&data, &["user", "list"]);
    assert!(dead.exists() && incoming.join(&dead_name).exists());

    // Server B starts: A's files go, C's and the unknown recent one stay.
    let b = Server::start(&data, Opts::default());
    assert!(!dead.exists(), "the dead server's temp files survived");
    assert!(
        !incoming.join(&dead_name).exists(),
        "the dead server's staged blob survived"
    );
    assert_eq!(
        files_under(&live),
        c_files,
        "a live server's upload was removed"
    );
    assert!(incoming.join(&live_name).join("staging").exists());
    assert!(tmp_dir.join("upload-unknown").exists());
    drop(conn_c);
    // C still serves uploads whole.
    let cl = client();
    let (status, id) = try_upload(&cl, &c_server.base, &token, png(30, 30, 1));
    assert_eq!(status, 201, "{id}");
    drop(b);
    drop(c_server);
}

/// Runs `tintype check` (with extra arguments); (success, stdout JSON, stderr).
fn check(data: &std::path::Path, extra: &[&str]) -> (bool, Value, String) {
    let mut args = vec!["check"];
    args.extend_from_slice(extra);
    let out = cli(data, &args);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let summary: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("check prints a JSON summary ({e}): {stdout:?}"));
    (
        out.status.success(),
        summary,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn check_finds_missing_and_corrupt_blobs_and_repairs_missing_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default().env("TINTYPE_WORKERS", "0"));
    let token = user_with_token(&data, "fsck", &[]);
    let c = client();
    let imgs: Vec<Value> = (0..3u8)
        .map(|i| upload_raw(&c, &s, &token, &format!("i{i}"), png(40, 30, i)))
        .collect();
    let id = |i: usize| imgs[i]["id"].as_str().unwrap().to_string();
    let sha = |i: usize| imgs[i]["sha256"].as_str().unwrap().to_string();
    // A variant (rendered on demand) for image 2.
    let r = c
        .get(s.url(&format!("/v1/images/{}/variants/thumbnail", id(2))))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let variant_bytes = r.bytes().unwrap();
    // An orphan: a blob nothing references (deletes free their blobs at
    // once, so one is made by hand, as a crashed upload could leave it).
    let orphan = b"bytes no image references".to_vec();
    let orphan_path = blob_path(&data, &sha256_hex(&orphan));
    std::fs::create_dir_all(orphan_path.parent().unwrap()).unwrap();
    std::fs::write(&orphan_path, &orphan).unwrap();

    // A clean store: exit 0.
    let (ok, summary, stderr) = check(&data, &[]);
    assert!(ok, "a clean store failed the check: {summary} {stderr}");
    assert_eq!(summary["images"], 3, "{summary}");
    assert_eq!(summary["variants"], 1, "{summary}");
    assert_eq!(summary["orphans"], 1, "{summary}");
    assert_eq!(
        (summary["missing"].clone(), summary["corrupt"].clone()),
        (0.into(), 0.into())
    );

    // Image 0's blob deleted, image 1's corrupted, image 2's variant deleted.
    std::fs::remove_file(blob_path(&data, &sha(0))).unwrap();
    let original1 = std::fs::read(blob_path(&data, &sha(1))).unwrap();
    let mut bad = original1.clone();
    if let Some(b) = bad.get_mut(100) {
        *b ^= 0xff;
    }
    std::fs::write(blob_path(&data, &sha(1)), &bad).unwrap();
    let variant_sha = sha256_hex(&variant_bytes);
    std::fs::remove_file(blob_path(&data, &variant_sha)).unwrap();
    let (ok, summary, stderr) = check(&data, &[]);
    assert!(!ok, "missing and corrupt blobs passed the check: {summary}");
    assert_eq!(summary["missing"], 2, "{summary}");
    assert_eq!(summary["corrupt"], 1, "{summary}");
    assert_eq!(summary["repaired"], 0, "{summary}");
    for needle in [
        id(0),
        sha(0),
        id(1),
        sha(1),
        sha256_hex(&bad),
        variant_sha.clone(),
    ] {
        assert!(stderr.contains(&needle), "{needle} not named in:\n{stderr}");
    }
    // Nothing was removed without --repair.
    let r = c
        .get(s.url(&format!("/v1/images/{}", id(0))))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // --repair removes the rows of the missing blobs; corrupt stays an error.
    let (ok, summary, _) = check(&data, &["--repair"]);
    assert!(!ok, "a corrupt blob passed the check: {summary}");
    assert_eq!(summary["repaired"], 2, "{summary}");
    // The command line is another process than the server: the server's
    // cache sees the removed row within its TTL (README, "Serving speed").
    let bound = tintype_engine::cache::CACHE_TTL * 3;
    let started = std::time::Instant::now();
    loop {
        let r = c
            .get(s.url(&format!("/v1/images/{}", id(0))))
            .bearer_auth(&token)
            .send()
            .unwrap();
        if r.status() == 404 {
            break;
        }
        assert!(
            started.elapsed() < bound,
            "the image without its original is still listed after {bound:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The variant row went; the image stays and renders it again.
    let r = c
        .get(s.url(&format!("/v1/images/{}/variants/thumbnail", id(2))))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sha256_hex(&r.bytes().unwrap()), variant_sha);

    // With the corrupt blob restored, the check passes.
    std::fs::write(blob_path(&data, &sha(1)), &original1).unwrap();
    let (ok, summary, stderr) = check(&data, &[]);
    assert!(ok, "check still fails after the repair: {summary} {stderr}");
    assert_eq!(summary["images"], 2, "{summary}");
    assert_eq!(summary["missing"], 0, "{summary}");
}
