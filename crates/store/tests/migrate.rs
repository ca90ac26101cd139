//! `migrate`: a library in SQLite + a blob directory is copied into a new
//! catalog and another blob store (a directory, and the S3 store named by
//! TINTYPE_TEST_BLOB_STORE when it is an s3:// spec).

use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use tintype_core::*;
use tintype_store::{migrate, MigrateError, SqlCatalog};

fn sha_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

async fn put(store: &dyn BlobStore, dir: &Path, bytes: &[u8]) -> String {
    let sha = sha_hex(bytes);
    let p = dir.join(format!("in-{sha}"));
    tokio::fs::write(&p, bytes).await.unwrap();
    store.put_file(&sha, &p, bytes.len() as u64).await.unwrap();
    sha
}

async fn read(store: &dyn BlobStore, sha: &str) -> Vec<u8> {
    use futures::StreamExt;
    let mut s = store.get(sha, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

struct Source {
    cat: SqlCatalog,
    blobs: Arc<dyn BlobStore>,
    user: User,
    image_ids: Vec<String>,
    blob_shas: Vec<String>,
    queued_job: i64,
    running_job: i64,
    _dir: tempfile::TempDir,
}

/// A small library: a user with a token, two images (one with a variant),
/// records, a queued job and one a worker holds.
async fn source(tag: &str) -> Source {
    let dir = tempfile::tempdir().unwrap();
    let cat = SqlCatalog::connect(&format!("sqlite://{}", dir.path().join("src.db").display()))
        .await
        .unwrap();
    let blobs = tintype_store::open_blob_store(&dir.path().join("blobs").display().to_string())
        .await
        .unwrap();
    let user = cat
        .create_user(&format!("ann-{tag}"), Some("a@example.com"), "whsecret")
        .await
        .unwrap()
        .unwrap();
    cat.set_quota(user.id, 7).await.unwrap();
    let tok = Token {
        id: format!("tok-{tag}"),
        user_id: user.id,
        scopes: vec![Scope::ImageRead, Scope::ImageWrite],
        created_at: now(),
        revoked: false,
    };
    cat.create_token(&tok, &format!("hash-{tag}"))
        .await
        .unwrap();
    let mut image_ids = Vec::new();
    let mut blob_shas = Vec::new();
    for i in 0..2u8 {
        let bytes = format!("picture {i} of {tag}").repeat(1000 + i as usize);
        let sha = put(&*blobs, dir.path(), bytes.as_bytes()).await;
        blob_shas.push(sha.clone());
        let id = format!("{tag}{i:031}");
        cat.insert_image(&NewImage {
            id: id.clone(),
            owner_id: user.id,
            name: Some(format!("n{i}")),
            content: Content {
                sha256: sha,
                size: bytes.len() as i64,
                kind: ImageKind::Picture,
                format: "png".into(),
                content_type: "image/png".into(),
                width: Some(3),
                height: Some(2),
                orientation: None,
                exif: None,
                latitude: Some(52.5),
                longitude: Some(-1.25),
            },
            metadata: serde_json::Map::from_iter([("k".to_string(), json!(i))]),
            created_at: now(),
        })
        .await
        .unwrap();
        image_ids.push(id);
    }
    cat.set_processed(&image_ids[0], Some(now())).await.unwrap();
    let vbytes = b"a variant".repeat(50);
    let vsha = put(&*blobs, dir.path(), &vbytes).await;
    blob_shas.push(vsha.clone());
    cat.put_variant(&Variant {
        image_id: image_ids[0].clone(),
        preset: "thumb".into(),
        sha256: vsha,
        content_type: "image/webp".into(),
        width: 1,
        height: 1,
        size: vbytes.len() as i64,
        created_at: now(),
    })
    .await
    .unwrap();
    cat.set_profile_image(user.id, Some(&image_ids[1]))
        .await
        .unwrap();
    for k in ["a", "b"] {
        cat.insert_record(&NewRecord {
            scope: "popit.doc".into(),
            key: format!("{k}-{tag}"),
            owner_id: Some(user.id),
            image_id: Some(image_ids[1].clone()),
            data: json!({"k": k}),
            ..NewRecord::default()
        })
        .await
        .unwrap()
        .unwrap();
    }
    let running_job = cat
        .enqueue(&NewJob {
            kind: "render".into(),
            payload: json!({"image_id": image_ids[1]}),
            run_at: now() - chrono::Duration::seconds(1),
            max_attempts: 5,
            dedup_key: Some(format!("render:{}", image_ids[1])),
        })
        .await
        .unwrap();
    let claimed = cat
        .claim_job("w1", &[], now() + chrono::Duration::seconds(600))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, running_job);
    let queued_job = cat
        .enqueue(&NewJob {
            kind: "webhook".into(),
            payload: json!({"x": 1}),
            run_at: now() + chrono::Duration::seconds(3600),
            max_attempts: 3,
            dedup_key: None,
        })
        .await
        .unwrap();
    Source {
        cat,
        blobs,
        user,
        image_ids,
        blob_shas,
        queued_job,
        running_job,
        _dir: dir,
    }
}

async fn check_copy(src: &Source, to: &SqlCatalog, to_blobs: &dyn BlobStore, tag: &str) {
    let u = to.user_by_name(&src.user.name).await.unwrap().unwrap();
    assert_eq!(u.id, src.user.id);
    assert_eq!(u.images_per_day, 7);
    assert_eq!(u.webhook_secret, "whsecret");
    assert_eq!(
        u.profile_image_id.as_deref(),
        Some(src.image_ids[1].as_str())
    );
    let t = to
        .token_by_hash(&format!("hash-{tag}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.user_id, u.id);
    for id in &src.image_ids {
        let a = src.cat.image_by_id(id).await.unwrap().unwrap();
        let b = to.image_by_id(id).await.unwrap().unwrap();
        assert_eq!(a, b, "image {id} differs after migration");
    }
    assert_eq!(
        src.cat.variants(&src.image_ids[0]).await.unwrap(),
        to.variants(&src.image_ids[0]).await.unwrap()
    );
    assert_eq!(
        src.cat.records_for_image(&src.image_ids[1]).await.unwrap(),
        to.records_for_image(&src.image_ids[1]).await.unwrap()
    );
    let q = to.job(src.queued_job).await.unwrap().unwrap();
    assert_eq!(q.state, JobState::Queued);
    assert_eq!(q.kind, "webhook");
    let r = to.job(src.running_job).await.unwrap().unwrap();
    assert_eq!(r.state, JobState::Queued, "a running job is queued again");
    assert_eq!((r.lease_until, r.locked_by.as_deref()), (None, None));
    // The new catalog keeps numbering after the copied rows.
    let next = to
        .enqueue(&NewJob {
            kind: "x".into(),
            payload: json!({}),
            run_at: now(),
            max_attempts: 1,
            dedup_key: None,
        })
        .await
        .unwrap();
    assert!(next > src.queued_job.max(src.running_job));
    let u2 = to
        .create_user(&format!("new-{tag}"), None, "s")
        .await
        .unwrap()
        .unwrap();
    assert!(u2.id > u.id);
    for sha in &src.blob_shas {
        assert_eq!(read(to_blobs, sha).await, read(&*src.blobs, sha).await);
    }
}

#[tokio::test]
async fn migrates_sqlite_and_directory_into_a_new_catalog_and_store() {
    let src = source("m1").await;
    let dir = tempfile::tempdir().unwrap();
    let to = SqlCatalog::connect(&format!("sqlite://{}", dir.path().join("to.db").display()))
        .await
        .unwrap();
    let to_blobs = tintype_store::open_blob_store(&dir.path().join("blobs").display().to_string())
        .await
        .unwrap();
    let mut events = Vec::new();
    let report = migrate(&src.cat, &*src.blobs, &to, &*to_blobs, |p| events.push(p))
        .await
        .unwrap();
    assert_eq!(
        (
            report.users,
            report.tokens,
            report.images,
            report.variants,
            report.records,
            report.jobs
        ),
        (1, 1, 2, 1, 2, 2)
    );
    assert_eq!((report.blobs_copied, report.blobs_present), (3, 0));
    assert!(events.iter().any(|e| matches!(
        e,
        tintype_store::Progress::Blob {
            done: 3,
            total: 3,
            ..
        }
    )));
    check_copy(&src, &to, &*to_blobs, "m1").await;
    // The source's blobs are still there (copied, not moved).
    for sha in &src.blob_shas {
        assert!(src.blobs.head(sha).await.unwrap().is_some());
    }

    // Never into a catalog that has rows.
    match migrate(&src.cat, &*src.blobs, &to, &*to_blobs, |_| {}).await {
        Err(MigrateError::TargetNotEmpty(what)) => assert!(what.contains("users"), "{what}"),
        other => panic!("expected TargetNotEmpty, got {other:?}"),
    }
}

#[tokio::test]
async fn a_corrupt_or_missing_source_blob_stops_the_migration_before_any_row() {
    let src = source("m2").await;
    // Corrupt the variant's blob file in place.
    let sha = &src.blob_shas[2];
    let path = src
        ._dir
        .path()
        .join("blobs/sha256")
        .join(&sha[0..2])
        .join(&sha[2..4])
        .join(sha);
    std::fs::write(&path, b"not what it was").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let to = SqlCatalog::connect(&format!("sqlite://{}", dir.path().join("to.db").display()))
        .await
        .unwrap();
    let to_blobs = tintype_store::open_blob_store(&dir.path().join("blobs").display().to_string())
        .await
        .unwrap();
    match migrate(&src.cat, &*src.blobs, &to, &*to_blobs, |_| {}).await {
        Err(MigrateError::CorruptBlob { sha256, side, .. }) => {
            assert_eq!((&sha256, side), (sha, "source"))
        }
        other => panic!("expected CorruptBlob, got {other:?}"),
    }
    assert!(to.user_by_name("ann-m2").await.unwrap().is_none());
    assert!(to_blobs.head(sha).await.unwrap().is_none());

    std::fs::remove_file(&path).unwrap();
    match migrate(&src.cat, &*src.blobs, &to, &*to_blobs, |_| {}).await {
        Err(MigrateError::MissingBlob(s)) => assert_eq!(&s, sha),
        other => panic!("expected MissingBlob, got {other:?}"),
    }
}

#[tokio::test]
async fn migrates_into_the_s3_store() {
    let spec = match std::env::var("TINTYPE_TEST_BLOB_STORE") {
        Ok(s) if s.starts_with("s3://") => s,
        _ => {
            eprintln!("skipping: TINTYPE_TEST_BLOB_STORE is not an s3:// spec");
            return;
        }
    };
    let tag = format!("m3x{}", std::process::id());
    let src = source(&tag).await;
    let dir = tempfile::tempdir().unwrap();
    let to = SqlCatalog::connect(&format!("sqlite://{}", dir.path().join("to.db").display()))
        .await
        .unwrap();
    let to_blobs = tintype_store::open_blob_store(&spec).await.unwrap();
    let report = migrate(&src.cat, &*src.blobs, &to, &*to_blobs, |_| {})
        .await
        .unwrap();
    assert_eq!(report.blobs_copied + report.blobs_present, 3);
    check_copy(&src, &to, &*to_blobs, &tag).await;
}
