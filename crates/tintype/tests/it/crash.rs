//! Crash safety: kill -9 the server mid-upload, restart, and check that the
//! catalog and the blob store agree and nothing half-done is left.

use crate::harness::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Pseudo-random bytes (xorshift), never all the same.
struct Noise(u64);
impl Noise {
    fn next(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let b = self.0.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

fn tmp_files(data: &Path) -> Vec<PathBuf> {
    files_under(&data.join("tmp"))
}

/// After a restart: no temp file, no half blob, every image's bytes are
/// whole and stored where its sha256 says.
fn assert_consistent(c: &reqwest::blocking::Client, s: &Server, token: &str) -> Vec<Value> {
    let data = &s.data_dir;
    // The restarted server's own directory (named by its pid) may hold the
    // files of renders it is running now; anything else was left by the
    // killed process and must be gone.
    let own = format!("{}-", s.child.as_ref().map(|c| c.id()).unwrap_or(0));
    let stale = |dir: PathBuf| -> Vec<PathBuf> {
        files_under(&dir)
            .into_iter()
            .filter(|p| {
                p.strip_prefix(&dir)
                    .ok()
                    .and_then(|r| r.components().next())
                    .is_none_or(|c| !c.as_os_str().to_string_lossy().starts_with(&own))
            })
            .collect()
    };
    assert_eq!(
        stale(data.join("tmp")),
        Vec::<PathBuf>::new(),
        "temp files survived the restart"
    );
    assert_eq!(
        stale(data.join("blobs").join("incoming")),
        Vec::<PathBuf>::new(),
        "half-written blobs survived the restart"
    );
    let images = list_all(c, s, token, 7);
    for img in &images {
        let sha = img["sha256"].as_str().unwrap();
        let path = blob_path(data, sha);
        let on_disk = std::fs::read(&path).unwrap_or_else(|e| {
            panic!("image {} has no blob at {}: {e}", img["id"], path.display())
        });
        assert_eq!(
            sha256_hex(&on_disk),
            sha,
            "blob file content does not match its name"
        );
        assert_eq!(on_disk.len() as u64, img["size"].as_u64().unwrap());
        let r = c
            .get(img["urls"]["original"].as_str().unwrap())
            .bearer_auth(token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "original of {} not served", img["id"]);
        let body = r.bytes().unwrap();
        assert_eq!(
            sha256_hex(&body),
            sha,
            "served bytes differ from the catalog's sha256"
        );
    }
    images
}

#[test]
fn kill_9_during_a_200_mb_upload_leaves_no_half_image_and_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let no_workers = Opts::default().env("TINTYPE_WORKERS", "0");
    let mut s = Server::start(&data, no_workers.clone());
    let token = user_with_token(&data, "crash", &[]);
    let c = client();
    // Some images that must survive.
    let mut kept = Vec::new();
    for i in 0..3u8 {
        kept.push(upload_raw(&c, &s, &token, &format!("k{i}"), png(32, 32, i))["id"].clone());
    }

    // Stream 200 MB over a raw socket; the body never finishes.
    const TOTAL: u64 = 200 * 1024 * 1024;
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    write!(
        sock,
        "POST /v1/images?name=huge HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {TOTAL}\r\n\r\n"
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(Mutex::new(0u64));
    let writer = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut noise = Noise(0x9e3779b97f4a7c15);
            // A PNG signature first, as a real picture would start.
            let _ = sock.write_all(b"\x89PNG\r\n\x1a\n");
            let mut buf = vec![0u8; 256 * 1024];
            let mut n = 8u64;
            while n < TOTAL && !stop.load(Ordering::Relaxed) {
                noise.fill(&mut buf);
                let take = buf.len().min((TOTAL - n) as usize);
                if sock.write_all(&buf[..take]).is_err() {
                    break;
                }
                n += take as u64;
                *sent.lock().unwrap() = n;
            }
        })
    };

    // Wait until the server is demonstrably mid-stream: its temp file holds
    // more than 20 MB of the upload.
    let mut mid_stream = false;
    for _ in 0..6000 {
        let staged: u64 = tmp_files(&data)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .max()
            .unwrap_or(0);
        if staged > 20 * 1024 * 1024 {
            mid_stream = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(mid_stream, "the upload never reached the temp directory");
    assert!(
        *sent.lock().unwrap() < TOTAL,
        "the upload finished before the kill"
    );
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        !tmp_files(&data).is_empty(),
        "expected the crash to leave a temp file"
    );
    drop(s);

    let s = Server::start(&data, no_workers);
    let images = assert_consistent(&c, &s, &token);
    let ids: Vec<Value> = images.iter().map(|i| i["id"].clone()).collect();
    kept.reverse();
    assert_eq!(ids, kept, "exactly the completed images remain");
    assert!(images.iter().all(|i| i["name"] != "huge"));
    // No workers, so no variants: the blob files are exactly the images'
    // (nothing of the huge upload was stored).
    let mut shas: Vec<String> = images
        .iter()
        .map(|i| i["sha256"].as_str().unwrap().to_string())
        .collect();
    let mut blobs: Vec<String> = files_under(&data.join("blobs").join("sha256"))
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    shas.sort();
    blobs.sort();
    assert_eq!(blobs, shas);
    // And the server still works.
    upload_raw(&c, &s, &token, "after", png(16, 16, 99));
}

#[test]
fn kill_9_among_concurrent_uploads_loses_no_acknowledged_image() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "busy", &[]);
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (acked, stop, token, base) =
                (acked.clone(), stop.clone(), token.clone(), s.base.clone());
            std::thread::spawn(move || {
                let c = client();
                let mut noise = Noise(t * 7919 + 1);
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // A noisy 500x500 PNG: about 750 KB, every one different.
                    let bytes = noisy_png(500, 500, noise.next());
                    let sha = sha256_hex(&bytes);
                    let r = c
                        .post(format!("{base}/v1/images?name=t{t}-{i}"))
                        .bearer_auth(&token)
                        .body(bytes)
                        .send();
                    match r {
                        Ok(r) if r.status() == 201 => {
                            if let Ok(v) = r.json::<Value>() {
                                acked
                                    .lock()
                                    .unwrap()
                                    .push((v["id"].as_str().unwrap().to_string(), sha));
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // Kill once a dozen uploads have been acknowledged, with others in flight.
    for _ in 0..60_000 {
        if acked.lock().unwrap().len() >= 12 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        acked.lock().unwrap().len() >= 12,
        "uploads did not get through"
    );
    s.kill9();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    drop(s);

    let s = Server::start(&data, Opts::default());
    let c = client();
    let images = assert_consistent(&c, &s, &token);
    for (id, sha) in acked.lock().unwrap().iter() {
        let img = images
            .iter()
            .find(|i| i["id"] == id.as_str())
            .unwrap_or_else(|| panic!("acknowledged image {id} is gone after the crash"));
        assert_eq!(img["sha256"], sha.as_str());
    }
}

/// A source that accepts connections and never answers: an import of it
/// keeps its worker busy until the server is killed.
fn stalled_source() -> (std::net::TcpListener, String) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/photo.jpg", l.local_addr().unwrap());
    (l, url)
}

#[test]
fn a_job_whose_worker_dies_on_every_attempt_ends_failed_and_is_never_claimed_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = tmp.path().join("tintype.toml");
    std::fs::write(
        &config,
        "job_max_attempts = 2\njob_lease_secs = 3\nfetch_timeout_secs = 600\n",
    )
    .unwrap();
    let (source, url) = stalled_source();
    let opts = Opts::default()
        .env("TINTYPE_CONFIG", config.to_str().unwrap())
        .env("TINTYPE_FETCH_ALLOW_PRIVATE", "1")
        .env("TINTYPE_WORKERS", "1");
    let mut s = Server::start(&data, opts.clone());
    let token = user_with_token(&data, "ivo", &[]);
    let c = client();
    let r = c
        .post(s.url("/api/v1/import/images"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "systemName": "crash",
            "images": [{ "url": url, "id": "x1", "fileName": "x1.jpg" }]
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap_or_default());
    let id = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let status = |s: &Server| -> Value {
        c.get(s.url(&format!("/api/v1/import/images/status?id={id}")))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    // Each attempt reaches the source (the worker is inside the job), then
    // the process dies with it.
    source.set_nonblocking(false).unwrap();
    let mut held = Vec::new();
    for attempt in 1..=2 {
        let (conn, _) = source.accept().expect("the worker fetches the source");
        held.push(conn);
        assert_eq!(status(&s)["finished"], false, "attempt {attempt}");
        s.kill9();
        s = Server::start(&data, opts.clone());
    }
    // The second lease runs out: the job is failed, not claimed a third time.
    source.set_nonblocking(true).unwrap();
    let mut v = status(&s);
    for _ in 0..200 {
        if v["finished"] == true {
            break;
        }
        assert!(
            source.accept().is_err(),
            "the job was claimed again after its last attempt"
        );
        std::thread::sleep(Duration::from_millis(50));
        v = status(&s);
    }
    assert_eq!(v["finished"], true, "{v}");
    assert_eq!(v["state"], "failed", "{v}");
    // The native API is unaffected and the server keeps serving.
    let r = c
        .get(s.url("/v1/images"))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
}
