//! A 2 GiB disk is streamed to storage, never held in memory, and an upload
//! cut off halfway leaves no temporary file. One test in its own binary, so
//! that no other test allocates while the memory is measured.

mod common;

use bytes::Bytes;
use common::*;
use futures::stream;
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 1 << 20;

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// A QCOW2 header followed by filler up to `total` bytes, produced chunk by
/// chunk (the same 1 MiB buffer over and over, one pattern per position),
/// hashing what it yields. After `fail_at` bytes it fails instead.
fn generated(
    total: u64,
    fail_at: Option<u64>,
    hash: Arc<Mutex<Sha256>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let mut first = qcow2_header(4 * GIB);
    first.resize(4 * CLUSTER, 0);
    let filler = Bytes::from((0..CHUNK).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let first = Bytes::from(first);
    stream::unfold(0u64, move |sent| {
        let filler = filler.clone();
        let first = first.clone();
        let hash = hash.clone();
        async move {
            if sent >= total {
                return None;
            }
            if fail_at.is_some_and(|f| sent >= f) {
                return Some((Err(std::io::Error::other("client gave up")), total));
            }
            let chunk = if sent == 0 {
                first
            } else {
                filler.slice(..(total - sent).min(CHUNK as u64) as usize)
            };
            hash.lock().unwrap().update(&chunk);
            let next = sent + chunk.len() as u64;
            Some((Ok(chunk), next))
        }
    })
}

fn tmp_entries(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gib_upload_streams_and_a_cut_upload_leaves_nothing() {
    let server = server().await;
    let c = Client::new(&server);
    let t = token(&server, "big").await;
    let owner = server.engine.user("big").await.unwrap().id;
    // Warm up the paths once with a small disk so that lazily allocated
    // state is not counted.
    assert_eq!(c.upload(&t, "name=warm", qcow2("warm")).await.0, 201);

    // Reset the peak so that VmHWM measures this upload only.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS:");
    let total = 2 * GIB + 4 * CLUSTER as u64;
    let hash = Arc::new(Mutex::new(Sha256::new()));
    let resp = c
        .http
        .post(c.url("/images?name=big&namespace=large"))
        .bearer_auth(&t)
        .body(reqwest::Body::wrap_stream(generated(
            total,
            None,
            hash.clone(),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let img: serde_json::Value = resp.json().await.unwrap();
    let peak = if reset {
        status_kib("VmHWM:")
    } else {
        status_kib("VmRSS:")
    };
    let grown_mib = peak.saturating_sub(before) / 1024;
    println!(
        "resident before {} MiB, peak during the upload {} MiB",
        before / 1024,
        peak / 1024
    );
    assert!(grown_mib <= 64, "resident memory grew by {grown_mib} MiB");

    let stored = server
        .engine
        .image_by_seq(img["id"].as_i64().unwrap())
        .await
        .unwrap();
    assert_eq!(stored.content.size as u64, total);
    let want = hex::encode(hash.lock().unwrap().clone().finalize());
    assert_eq!(stored.content.sha256, want);
    let tmp = server.dir.path().join("tmp");
    assert_eq!(tmp_entries(&tmp), Vec::<String>::new());

    // Cut off after 1 GiB: no image, and the temporary file goes away.
    let images_before = server
        .engine
        .list_images(owner, None, 100)
        .await
        .unwrap()
        .images
        .len();
    let hash = Arc::new(Mutex::new(Sha256::new()));
    let result = c
        .http
        .post(c.url("/images?name=cut"))
        .bearer_auth(&t)
        .body(reqwest::Body::wrap_stream(generated(
            total,
            Some(GIB),
            hash,
        )))
        .send()
        .await;
    assert!(result.is_err(), "the request was cut off: {result:?}");
    // The server notices the closed connection on its own schedule: wait
    // for the directory to empty (bounded, so a leak fails the test).
    let mut left = tmp_entries(&tmp);
    for _ in 0..600 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        left = tmp_entries(&tmp);
    }
    assert_eq!(left, Vec::<String>::new(), "temporary files left behind");
    let images_after = server
        .engine
        .list_images(owner, None, 100)
        .await
        .unwrap()
        .images
        .len();
    assert_eq!(images_before, images_after);
    let (_, list) = c.get(Some(&t), "/images?search=cut").await;
    assert_eq!(list, serde_json::json!([]));
}
