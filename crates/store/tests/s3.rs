//! The S3 blob store against a real S3-compatible server. Runs when
//! TINTYPE_TEST_BLOB_STORE is an `s3://` spec (see scripts/services.sh,
//! which starts a local Garage and prints the variables); otherwise it
//! prints a skip note and passes.

use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::path::Path;
use tintype_core::{BlobError, BlobStore, ByteRange};

fn spec() -> Option<String> {
    match std::env::var("TINTYPE_TEST_BLOB_STORE") {
        Ok(s) if s.starts_with("s3://") => Some(s),
        _ => {
            eprintln!(
                "skipping: TINTYPE_TEST_BLOB_STORE is not an s3:// spec \
                 (run scripts/services.sh to start Garage)"
            );
            None
        }
    }
}

/// Pseudo-random bytes, different on every run so reruns never find the
/// blobs already stored.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut x = uuid::Uuid::new_v4().as_u128() as u64 | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

async fn write_temp(dir: &Path, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join(format!("src-{}", uuid::Uuid::new_v4().simple()));
    tokio::fs::write(&p, data).await.unwrap();
    p
}

async fn read_all(store: &dyn BlobStore, sha: &str, range: Option<ByteRange>) -> Vec<u8> {
    let mut s = store.get(sha, range).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

#[tokio::test]
async fn s3_put_get_range_list_delete() {
    let Some(spec) = spec() else { return };
    let store = tintype_store::open_blob_store(&spec).await.unwrap();
    assert_eq!(store.backend_name(), "s3");
    store.ping().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let data = random_bytes(1000);
    let sha = sha_hex(&data);
    assert!(store.head(&sha).await.unwrap().is_none());
    let src = write_temp(tmp.path(), &data).await;
    store.put_file(&sha, &src, 1000).await.unwrap();
    let first = store.head(&sha).await.unwrap().expect("stored");
    assert_eq!(first.size, 1000);
    assert!(first.modified > 1_600_000_000, "{first:?}");

    // Storing the same bytes again is a no-op: the object is not rewritten.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let src2 = write_temp(tmp.path(), &data).await;
    store.put_file(&sha, &src2, 1000).await.unwrap();
    let second = store.head(&sha).await.unwrap().expect("still stored");
    assert_eq!(
        second.modified, first.modified,
        "second put rewrote the object"
    );

    assert_eq!(read_all(&*store, &sha, None).await, data);
    let r = ByteRange { start: 5, end: 14 };
    assert_eq!(read_all(&*store, &sha, Some(r)).await, &data[5..=14]);
    let last = ByteRange {
        start: 999,
        end: 999,
    };
    assert_eq!(read_all(&*store, &sha, Some(last)).await, &data[999..]);

    let local = store.local_file(&sha, tmp.path()).await.unwrap();
    assert!(local.path().starts_with(tmp.path()));
    assert_eq!(std::fs::read(local.path()).unwrap(), data);
    let local_path = local.path().to_path_buf();
    drop(local);
    assert!(!local_path.exists(), "temporary copy not removed");

    let listed = store.list().await.unwrap();
    let mine: Vec<_> = listed.iter().filter(|m| m.sha256 == sha).collect();
    assert_eq!(mine.len(), 1, "listed once");
    assert_eq!(mine[0].size, 1000);
    assert_eq!(mine[0].modified, first.modified);

    store.delete(&sha).await.unwrap();
    assert!(store.head(&sha).await.unwrap().is_none());
    assert!(matches!(
        store.get(&sha, None).await,
        Err(BlobError::NotFound(_))
    ));
    assert!(matches!(
        store.local_file(&sha, tmp.path()).await,
        Err(BlobError::NotFound(_))
    ));
    // Deleting what is gone is fine; listing no longer shows it.
    store.delete(&sha).await.unwrap();
    assert!(!store.list().await.unwrap().iter().any(|m| m.sha256 == sha));

    // Wrong sizes and bad keys are refused.
    let other = random_bytes(10);
    let other_src = write_temp(tmp.path(), &other).await;
    assert!(store
        .put_file(&sha_hex(&other), &other_src, 11)
        .await
        .is_err());
    assert!(matches!(
        store.head("../../etc/passwd").await,
        Err(BlobError::InvalidKey(_))
    ));
}

#[tokio::test]
async fn s3_multipart_round_trip() {
    let Some(spec) = spec() else { return };
    let store = tintype_store::open_blob_store(&spec).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // 20 MiB + a bit: three parts, the last one short.
    let len = 20 * 1024 * 1024 + 12345;
    let data = random_bytes(len);
    let sha = sha_hex(&data);
    let src = write_temp(tmp.path(), &data).await;
    store.put_file(&sha, &src, len as u64).await.unwrap();
    assert_eq!(store.head(&sha).await.unwrap().unwrap().size, len as u64);

    // Streamed back and hashed chunk by chunk.
    let mut s = store.get(&sha, None).await.unwrap();
    let mut h = Sha256::new();
    let mut n = 0usize;
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        n += c.len();
        h.update(&c);
    }
    assert_eq!(n, len);
    assert_eq!(hex::encode(h.finalize()), sha);

    // A range across the first part boundary.
    let b = 8 * 1024 * 1024;
    let r = ByteRange {
        start: (b - 3) as u64,
        end: (b + 3) as u64,
    };
    assert_eq!(read_all(&*store, &sha, Some(r)).await, &data[b - 3..=b + 3]);

    let local = store.local_file(&sha, tmp.path()).await.unwrap();
    assert_eq!(sha_hex(&std::fs::read(local.path()).unwrap()), sha);
    drop(local);

    store.delete(&sha).await.unwrap();
    assert!(store.head(&sha).await.unwrap().is_none());
}

/// Peak resident memory of this process, from /proc (Linux only).
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A 1 GiB blob streams up and down without being held in memory. Slow,
/// so only on request: `cargo test -p tintype-store --test s3 -- --ignored`.
#[tokio::test]
#[ignore]
async fn s3_a_large_blob_streams_through_in_bounded_memory() {
    let Some(spec) = spec() else { return };
    let store = tintype_store::open_blob_store(&spec).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let len: u64 = 1024 * 1024 * 1024;
    let path = tmp.path().join("big");
    // Pseudo-random contents (unique per run), written in 1 MiB pieces.
    let mut h = Sha256::new();
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let piece = random_bytes(1024 * 1024);
        for _ in 0..len / piece.len() as u64 {
            f.write_all(&piece).unwrap();
            h.update(&piece);
        }
        f.flush().unwrap();
    }
    let sha = hex::encode(h.finalize());
    let before = peak_rss_bytes().unwrap_or(0);
    store.put_file(&sha, &path, len).await.unwrap();
    let mut s = store.get(&sha, None).await.unwrap();
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(c) = s.next().await {
        let c = c.unwrap();
        n += c.len() as u64;
        h.update(&c);
    }
    assert_eq!(n, len);
    assert_eq!(hex::encode(h.finalize()), sha);
    let after = peak_rss_bytes().unwrap_or(0);
    eprintln!(
        "peak RSS {} MiB before, {} MiB after",
        before >> 20,
        after >> 20
    );
    assert!(
        after < before + 256 * 1024 * 1024,
        "a 1 GiB round trip raised peak memory from {before} to {after} bytes"
    );
    store.delete(&sha).await.unwrap();
}
