//! Garbage collection while serving: `tintype gc` in a loop never removes a
//! blob that an image answered 201 needs, even when the upload reuses a
//! blob that was unreferenced and older than the grace period.

use crate::harness::*;
use serde_json::Value;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `tintype gc` with no grace period: every unreferenced blob may go.
fn gc_now(data: &Path) -> std::process::Output {
    base_command(data)
        .env("TINTYPE_GC_GRACE_SECS", "0")
        .arg("gc")
        .output()
        .expect("running tintype gc")
}

/// Waits until `runs` has moved on by `n` whole runs from `from`.
fn wait_for_runs(runs: &AtomicU64, from: u64, n: u64) {
    for _ in 0..6000 {
        if runs.load(Ordering::SeqCst) >= from + n {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("garbage collection stopped running");
}

#[test]
fn gc_in_a_loop_never_removes_a_blob_that_a_new_upload_reuses() {
    const PICTURES: u64 = 24;
    const UPLOADERS: u64 = 3;
    const ROUNDS: usize = 12;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, Opts::default());
    let token = user_with_token(&data, "gcrace", &[]);

    // Two collectors, each running `tintype gc` back to back; `runs`
    // counts completed runs (of both).
    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let collectors: Vec<_> = (0..2)
        .map(|_| {
            let (stop, runs, data) = (stop.clone(), runs.clone(), data.clone());
            std::thread::spawn(move || {
                let mut removed = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let out = gc_now(&data);
                    assert!(
                        out.status.success(),
                        "tintype gc failed: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let report: Value =
                        serde_json::from_slice(&out.stdout).expect("gc prints a JSON report");
                    removed += report["removed"].as_u64().unwrap_or(0);
                    runs.fetch_add(1, Ordering::SeqCst);
                }
                removed
            })
        })
        .collect();

    // Each uploader owns some pictures. A round uploads each of them
    // (answered 201), waits until two whole gc runs began after the last
    // commit, reads every image back, then deletes it: its blob is
    // unreferenced and past the (zero) grace period when the next round
    // uploads the same bytes again.
    let uploaders: Vec<_> = (0..UPLOADERS)
        .map(|t| {
            let (base, token, runs) = (s.base.clone(), token.clone(), runs.clone());
            std::thread::spawn(move || {
                let c = client();
                let pictures: Vec<Vec<u8>> = (0..PICTURES)
                    .filter(|i| i % UPLOADERS == t)
                    .map(|i| noisy_png(24, 24, 1000 + i))
                    .collect();
                let mut answered = 0u64;
                let mut unreadable = Vec::new();
                for round in 0..ROUNDS {
                    let mut uploaded = Vec::new();
                    for (i, bytes) in pictures.iter().enumerate() {
                        let r = c
                            .post(format!("{base}/v1/images?name=r{round}p{i}"))
                            .bearer_auth(&token)
                            .body(bytes.clone())
                            .send()
                            .expect("upload");
                        let status = r.status();
                        let text = r.text().unwrap_or_default();
                        assert_eq!(status, 201, "upload answered {status}: {text}");
                        let v: Value = serde_json::from_str(&text).unwrap();
                        answered += 1;
                        uploaded.push((v["id"].as_str().unwrap().to_string(), sha256_hex(bytes)));
                    }
                    wait_for_runs(&runs, runs.load(Ordering::SeqCst), 3);
                    for (id, sha) in &uploaded {
                        let r = c
                            .get(format!("{base}/v1/images/{id}/original"))
                            .bearer_auth(&token)
                            .send()
                            .expect("read back");
                        let status = r.status();
                        let body = r.bytes().unwrap_or_default();
                        if status != 200 || sha256_hex(&body) != *sha {
                            unreadable.push(format!("image {id} (round {round}): {status}"));
                        }
                        let r = c
                            .delete(format!("{base}/v1/images/{id}"))
                            .bearer_auth(&token)
                            .send()
                            .expect("delete");
                        assert_eq!(r.status(), 204);
                    }
                }
                (answered, unreadable)
            })
        })
        .collect();

    let mut answered = 0;
    let mut unreadable = Vec::new();
    for u in uploaders {
        let (a, bad) = u.join().expect("an uploader failed");
        answered += a;
        unreadable.extend(bad);
    }
    stop.store(true, Ordering::SeqCst);
    let removed: u64 = collectors
        .into_iter()
        .map(|c| c.join().expect("a collector failed"))
        .sum();
    eprintln!(
        "{answered} uploads answered 201, {} gc runs removed {removed} blobs, {} unreadable",
        runs.load(Ordering::SeqCst),
        unreadable.len()
    );
    assert_eq!(answered, PICTURES * ROUNDS as u64);
    // The test must have raced: collectors removed blobs between rounds.
    assert!(removed > 0, "gc never removed anything: no race was tried");
    assert!(
        unreadable.is_empty(),
        "images answered 201 lost their bytes to gc:\n{}",
        unreadable.join("\n")
    );
    // And whatever the variants did meanwhile, the library is whole.
    let out = cli(&data, &["check"]);
    assert!(
        out.status.success(),
        "tintype check failed after the race: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    drop(s);
}

/// The same race through the engine, in one process, over the catalog the
/// tier names (PostgreSQL when `TINTYPE_TEST_DATABASE_URL` is set, SQLite
/// otherwise) and a blob directory of its own: collections back to back
/// while uploads reuse blobs that are unreferenced and past a zero grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn engine_gc_loop_never_removes_a_blob_that_an_upload_reuses() {
    use tintype_engine::{Engine, EngineConfig, IngestOptions};
    const TASKS: u64 = 3;
    const PER_TASK: u64 = 8;
    const ROUNDS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let db = std::env::var("TINTYPE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("catalog.db").display()));
    let catalog = tintype_store::open_catalog(&db).await.expect("catalog");
    let blobs = tintype_store::open_blob_store(&dir.path().join("blobs").display().to_string())
        .await
        .expect("blobs");
    let mut cfg = EngineConfig::new(dir.path().join("tmp"));
    cfg.workers = 0;
    cfg.gc_grace = Duration::ZERO;
    let engine = Engine::new(catalog, blobs, cfg).expect("engine");
    // Unique per run: the PostgreSQL catalog is shared between runs.
    let run = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let owner = engine
        .create_user(&format!("gcrace{run}"), None)
        .await
        .unwrap()
        .id;
    let seed0: u64 = run.parse::<u128>().unwrap_or(0) as u64;

    let stop = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicU64::new(0));
    let collector = {
        let (engine, stop, runs) = (engine.clone(), stop.clone(), runs.clone());
        tokio::spawn(async move {
            let mut removed = 0;
            while !stop.load(Ordering::SeqCst) {
                removed += engine.gc().await.expect("gc").removed;
                runs.fetch_add(1, Ordering::SeqCst);
            }
            removed
        })
    };
    let uploaders: Vec<_> = (0..TASKS)
        .map(|t| {
            let (engine, runs) = (engine.clone(), runs.clone());
            let tmp = dir.path().join("reads");
            tokio::spawn(async move {
                let pictures: Vec<Vec<u8>> = (0..PER_TASK)
                    .map(|i| noisy_png(16, 16, seed0.wrapping_add(t * 1000 + i)))
                    .collect();
                let mut lost = Vec::new();
                for round in 0..ROUNDS {
                    let mut uploaded = Vec::new();
                    for bytes in &pictures {
                        let body = axum::body::Body::from(bytes.clone()).into_data_stream();
                        let image = engine
                            .ingest(IngestOptions::new(owner), body)
                            .await
                            .expect("ingest");
                        uploaded.push((image.id, sha256_hex(bytes)));
                    }
                    let from = runs.load(Ordering::SeqCst);
                    for _ in 0..6000 {
                        if runs.load(Ordering::SeqCst) >= from + 2 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    for (id, sha) in uploaded {
                        let image = engine.image(&id).await.expect("image");
                        // The directory store hands out the blob's own file.
                        match engine.blobs().local_file(&image.content.sha256, &tmp).await {
                            Ok(f) => match std::fs::read(f.path()) {
                                Ok(body) if sha256_hex(&body) == sha => {}
                                Ok(_) => lost.push(format!("{id} (round {round}): wrong bytes")),
                                Err(e) => lost.push(format!("{id} (round {round}): {e}")),
                            },
                            Err(e) => lost.push(format!("{id} (round {round}): {e}")),
                        }
                        engine.delete_image(&id).await.expect("delete");
                    }
                }
                lost
            })
        })
        .collect();
    let mut lost = Vec::new();
    for u in uploaders {
        lost.extend(u.await.expect("an uploader failed"));
    }
    stop.store(true, Ordering::SeqCst);
    let removed = collector.await.expect("the collector failed");
    eprintln!(
        "{} ingests on {}, {} gc runs removed {removed} blobs, {} lost",
        TASKS * PER_TASK * ROUNDS as u64,
        engine.catalog().backend_name(),
        runs.load(Ordering::SeqCst),
        lost.len()
    );
    assert!(removed > 0, "gc never removed anything: no race was tried");
    assert!(
        lost.is_empty(),
        "committed images lost their bytes:\n{}",
        lost.join("\n")
    );
}

/// Deleting an image frees its blob at once when nothing else uses it;
/// an upload of the same bytes at the same moment must keep its blob. Each
/// round races one delete against one upload of the same bytes, with a
/// varying head start, then checks the upload's blob before anything else
/// could store the bytes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_never_remove_the_blob_of_a_concurrent_upload_of_the_same_bytes() {
    use tintype_engine::{Engine, EngineConfig, IngestOptions};
    const ROUNDS: u64 = 300;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog = tintype_store::open_catalog(&db).await.expect("catalog");
    let blobs = tintype_store::open_blob_store(&dir.path().join("blobs").display().to_string())
        .await
        .expect("blobs");
    let mut cfg = EngineConfig::new(dir.path().join("tmp"));
    cfg.workers = 0;
    let engine = Engine::new(catalog, blobs, cfg).expect("engine");
    let owner = engine.create_user("samebytes", None).await.unwrap().id;
    let bytes = noisy_png(16, 16, 77);
    let sha = sha256_hex(&bytes);
    let upload = |engine: Arc<Engine>, bytes: Vec<u8>| async move {
        let body = axum::body::Body::from(bytes).into_data_stream();
        engine
            .ingest(IngestOptions::new(owner), body)
            .await
            .unwrap()
    };
    let mut lost = 0;
    for round in 0..ROUNDS {
        let first = upload(engine.clone(), bytes.clone()).await;
        // Up to 4 ms of head start for either side.
        let lead = Duration::from_micros((round * 137) % 4000);
        let delete_first = round % 2 == 0;
        let deleter = {
            let engine = engine.clone();
            tokio::spawn(async move {
                if !delete_first {
                    tokio::time::sleep(lead).await;
                }
                engine.delete_image(&first.id).await.unwrap();
            })
        };
        if delete_first {
            tokio::time::sleep(lead).await;
        }
        let second = upload(engine.clone(), bytes.clone()).await;
        deleter.await.unwrap();
        if engine.blobs().head(&sha).await.unwrap().is_none() {
            lost += 1;
        }
        engine.delete_image(&second.id).await.unwrap();
    }
    assert_eq!(
        lost, 0,
        "{lost} of {ROUNDS} uploads answered Ok lost their blob to a concurrent delete"
    );
}
