//! One conformance suite for every catalog backend. SQLite always runs;
//! PostgreSQL runs when `TINTYPE_TEST_DATABASE_URL` names a server (the
//! test script starts one).

use serde_json::json;
use std::sync::Arc;
use tintype_core::*;
use tintype_store::SqlCatalog;

fn content(sha: &str) -> Content {
    Content {
        sha256: sha.to_string(),
        size: 10,
        kind: ImageKind::Picture,
        format: "png".into(),
        content_type: "image/png".into(),
        width: Some(3),
        height: Some(2),
        orientation: None,
        exif: Some(serde_json::Map::from_iter([(
            "make".to_string(),
            json!("x"),
        )])),
        latitude: Some(-1.5),
        longitude: None,
    }
}

async fn users_and_tokens(cat: Arc<dyn Catalog>, tag: &str) {
    cat.ping().await.unwrap();
    let name = format!("alice-{tag}");
    let alice = cat
        .create_user(&name, Some("a@example.com"), "s")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        cat.create_user(&name, None, "s").await.unwrap(),
        Err(AlreadyExists)
    );
    assert_eq!(cat.user_by_name(&name).await.unwrap().unwrap().id, alice.id);

    let tok = Token {
        id: format!("tok-{tag}"),
        user_id: alice.id,
        scopes: vec![Scope::ImageRead, Scope::ImageWrite],
        created_at: now(),
        revoked: false,
    };
    cat.create_token(&tok, &format!("hash-{tag}"))
        .await
        .unwrap();
    assert_eq!(
        cat.token_by_hash(&format!("hash-{tag}"))
            .await
            .unwrap()
            .unwrap(),
        tok
    );
    assert!(cat.revoke_token(&tok.id).await.unwrap());
    assert!(
        cat.token_by_hash(&format!("hash-{tag}"))
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
}

async fn owner(cat: &Arc<dyn Catalog>, name: &str) -> User {
    cat.create_user(name, None, "s").await.unwrap().unwrap()
}

/// Images newest first with a stable cursor, their variants and records.
async fn images_variants_records(cat: Arc<dyn Catalog>, tag: &str) {
    let alice = owner(&cat, &format!("imgs-{tag}")).await;
    let mut ids = vec![];
    let base = now();
    for i in 0..5 {
        let id = format!("{tag}{i:031}");
        let img = cat
            .insert_image(&NewImage {
                id: id.clone(),
                owner_id: alice.id,
                name: Some(format!("n{i}")),
                content: content(&format!("{:064x}", i)),
                metadata: serde_json::Map::new(),
                created_at: base + chrono::Duration::milliseconds(i / 2),
            })
            .await
            .unwrap();
        assert_eq!(img.content.latitude, Some(-1.5));
        ids.push(id);
    }
    let page1 = cat.list_images(alice.id, None, 3).await.unwrap();
    let last = page1.last().unwrap();
    let page2 = cat
        .list_images(
            alice.id,
            Some(ImageCursor {
                created_at_ms: to_millis(last.created_at),
                seq: last.seq,
            }),
            3,
        )
        .await
        .unwrap();
    let mut seen: Vec<String> = page1
        .iter()
        .chain(page2.iter())
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(seen.len(), 5);
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);

    // variants and references
    let v = Variant {
        image_id: ids[0].clone(),
        preset: "small".into(),
        sha256: "f".repeat(64),
        content_type: "image/jpeg".into(),
        width: 50,
        height: 50,
        size: 3,
        created_at: now(),
    };
    cat.put_variant(&v).await.unwrap();
    cat.put_variant(&v).await.unwrap();
    assert!(cat.blob_referenced(&"f".repeat(64)).await.unwrap());
    assert_eq!(cat.variants(&ids[0]).await.unwrap().len(), 1);
    assert!(cat.delete_image(&ids[0]).await.unwrap());
    assert!(!cat.blob_referenced(&"f".repeat(64)).await.unwrap());

    // records
    let scope = format!("test.{tag}");
    let r = NewRecord {
        scope: scope.clone(),
        key: "k".into(),
        owner_id: Some(alice.id),
        image_id: Some(ids[1].clone()),
        data: json!({"a": 1}),
    };
    let rec = cat.insert_record(&r).await.unwrap().unwrap();
    assert_eq!(cat.insert_record(&r).await.unwrap(), Err(AlreadyExists));
    let up = cat
        .upsert_record(&NewRecord {
            data: json!({"a": 2}),
            ..r.clone()
        })
        .await
        .unwrap();
    assert_eq!(up.seq, rec.seq);
    assert_eq!(up.data, json!({"a": 2}));
    assert_eq!(cat.count_records(&scope, Some(alice.id)).await.unwrap(), 1);
    assert_eq!(cat.records_for_image(&ids[1]).await.unwrap().len(), 1);
    cat.delete_image(&ids[1]).await.unwrap();
    assert!(cat.record(&scope, "k").await.unwrap().is_none());
}

/// Jobs: claim, lease expiry, retry, failure.
async fn jobs(cat: Arc<dyn Catalog>, tag: &str) {
    let kind = format!("test-{tag}");
    let id = cat
        .enqueue(&NewJob {
            kind: kind.clone(),
            payload: json!({"x": 1}),
            run_at: now(),
            max_attempts: 3,
            dedup_key: Some(format!("d-{tag}")),
        })
        .await
        .unwrap();
    let again = cat
        .enqueue(&NewJob {
            kind: kind.clone(),
            payload: json!({"x": 2}),
            run_at: now(),
            max_attempts: 3,
            dedup_key: Some(format!("d-{tag}")),
        })
        .await
        .unwrap();
    assert_eq!(id, again, "a dedup key admits one live job");
    let kinds = vec![kind.clone()];
    let j = cat
        .claim_job("w1", &kinds, now() - chrono::Duration::seconds(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((j.id, j.attempts), (id, 1));
    // the lease is already over: another worker takes it
    let j2 = cat
        .claim_job("w2", &kinds, now() + chrono::Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((j2.id, j2.attempts), (id, 2));
    assert!(
        !cat.complete_job(id, "w1").await.unwrap(),
        "the old worker lost its lease"
    );
    assert!(cat.claim_job("w3", &kinds, now()).await.unwrap().is_none());
    assert!(cat.fail_job(id, "w2", "boom", Some(now())).await.unwrap());
    let j3 = cat
        .claim_job("w3", &kinds, now() + chrono::Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    assert!(cat.fail_job(j3.id, "w3", "final", None).await.unwrap());
    let done = cat.job(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Failed);
    assert_eq!(done.last_error.as_deref(), Some("final"));

    // A job whose worker dies in it on every attempt (its lease runs out)
    // ends failed once its attempts are used, and is never claimed again.
    let poison = vec![format!("poison-{tag}")];
    let pid = cat
        .enqueue(&NewJob {
            kind: poison[0].clone(),
            payload: json!({}),
            run_at: now(),
            max_attempts: 2,
            dedup_key: None,
        })
        .await
        .unwrap();
    for attempt in 1..=2 {
        let j = cat
            .claim_job("dies", &poison, now() - chrono::Duration::seconds(1))
            .await
            .unwrap()
            .expect("claimed while attempts remain");
        assert_eq!((j.id, j.attempts), (pid, attempt));
    }
    assert!(cat
        .claim_job("w4", &poison, now() + chrono::Duration::seconds(60))
        .await
        .unwrap()
        .is_none());
    let dead = cat.job(pid).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Failed);
    assert_eq!(dead.attempts, 2);
    assert_eq!(
        dead.last_error.as_deref(),
        Some(tintype_store::WORKER_STOPPED)
    );
    // A stopping worker gives its job back: due at once, the attempt not
    // counted, and no one else's job.
    let rel = vec![format!("release-{tag}")];
    let rid = cat
        .enqueue(&NewJob {
            kind: rel[0].clone(),
            payload: json!({}),
            run_at: now(),
            max_attempts: 3,
            dedup_key: Some(format!("r-{tag}")),
        })
        .await
        .unwrap();
    let long = now() + chrono::Duration::seconds(600);
    let j = cat
        .claim_job("stopping", &rel, long)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((j.id, j.attempts), (rid, 1));
    assert!(!cat.release_job(rid, "someone-else").await.unwrap());
    assert!(cat.release_job(rid, "stopping").await.unwrap());
    assert!(!cat.release_job(rid, "stopping").await.unwrap(), "once");
    let back = cat.job(rid).await.unwrap().unwrap();
    assert_eq!((back.state, back.attempts), (JobState::Queued, 0));
    let j = cat.claim_job("next", &rel, long).await.unwrap().unwrap();
    assert_eq!(
        (j.id, j.attempts),
        (rid, 1),
        "taken at once by another worker"
    );
    // A claim frees the dedup key, so a twin may be queued meanwhile: the
    // released job goes back beside it (both run; jobs are idempotent).
    let twin = cat
        .enqueue(&NewJob {
            kind: rel[0].clone(),
            payload: json!({}),
            run_at: now(),
            max_attempts: 3,
            dedup_key: Some(format!("r-{tag}")),
        })
        .await
        .unwrap();
    assert_ne!(twin, rid);
    assert!(cat.release_job(rid, "next").await.unwrap());
    assert_eq!(cat.job(rid).await.unwrap().unwrap().state, JobState::Queued);
    assert_eq!(
        cat.job(twin).await.unwrap().unwrap().state,
        JobState::Queued
    );
}

/// Every nullable column bound as NULL and as a value, alternately, on the
/// same pool: a statement first prepared with a NULL must still take a value
/// later (and the other way round). PostgreSQL once answered `incorrect
/// binary data format in bind parameter 13` for a latitude after a photo
/// without GPS had been stored on the same connection.
async fn nullable_parameters(cat: Arc<dyn Catalog>, tag: &str) {
    let user = cat
        .create_user(&format!("nulls-{tag}"), None, "s")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.email, None);
    let other = cat
        .create_user(&format!("nulls2-{tag}"), Some("n@example.com"), "s")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(other.email.as_deref(), Some("n@example.com"));
    let bare = |sha: &str| Content {
        orientation: None,
        exif: None,
        latitude: None,
        longitude: None,
        width: None,
        height: None,
        ..content(sha)
    };
    let full = |sha: &str, k: i64| Content {
        orientation: Some(6),
        exif: Some(serde_json::Map::from_iter([(
            "model".to_string(),
            json!("p"),
        )])),
        latitude: Some(-33.866_666_666_666_67 + k as f64),
        longitude: Some(151.2 - k as f64),
        width: Some(64),
        height: Some(48),
        ..content(sha)
    };
    // Several rounds: the pool may hand out another connection now and then,
    // every one of them must see both shapes in both orders.
    for round in 0..6i64 {
        let sha = format!("{:064x}", 1000 + round);
        let c = if round % 2 == 0 {
            bare(&sha)
        } else {
            full(&sha, round)
        };
        let id = format!("{tag}n{round:030}");
        let img = cat
            .insert_image(&NewImage {
                id: id.clone(),
                owner_id: user.id,
                name: (round % 3 == 0).then(|| format!("photo {round}")),
                content: c.clone(),
                metadata: serde_json::Map::new(),
                created_at: now(),
            })
            .await
            .unwrap_or_else(|e| panic!("insert round {round}: {e}"));
        assert_eq!(img.content, c, "round {round}");
        // the other shape over the same row
        let swapped = if round % 2 == 0 {
            full(&sha, round)
        } else {
            bare(&sha)
        };
        let img = cat
            .replace_image_content(&id, &swapped)
            .await
            .unwrap_or_else(|e| panic!("replace round {round}: {e}"))
            .unwrap();
        assert_eq!(img.content, swapped, "round {round}");
        let name = (round % 2 == 0).then_some("renamed");
        let img = cat
            .update_image_fields(&id, Some(name), None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(img.name.as_deref(), name);
        let at = (round % 2 == 1).then(now);
        cat.set_processed(&id, at).await.unwrap();
        let img = cat.image_by_id(&id).await.unwrap().unwrap();
        assert_eq!(img.processed_at.map(to_millis), at.map(to_millis));
        let profile = (round % 2 == 0).then_some(id.as_str());
        assert!(cat.set_profile_image(user.id, profile).await.unwrap());
        assert_eq!(
            cat.user_by_id(user.id)
                .await
                .unwrap()
                .unwrap()
                .profile_image_id
                .as_deref(),
            profile
        );
        let rec = NewRecord {
            scope: format!("nulls.{tag}"),
            key: format!("k{round}"),
            owner_id: (round % 2 == 1).then_some(user.id),
            image_id: (round % 2 == 0).then(|| id.clone()),
            data: json!({"round": round}),
        };
        let r = cat.insert_record(&rec).await.unwrap().unwrap();
        assert_eq!(
            (r.owner_id, r.image_id.clone()),
            (rec.owner_id, rec.image_id.clone())
        );
        let flipped = NewRecord {
            owner_id: rec.owner_id.xor(Some(user.id)),
            image_id: if rec.image_id.is_some() {
                None
            } else {
                Some(id.clone())
            },
            ..rec.clone()
        };
        let r = cat.upsert_record(&flipped).await.unwrap();
        assert_eq!(
            (r.owner_id, r.image_id),
            (flipped.owner_id, flipped.image_id)
        );
        let job = cat
            .enqueue(&NewJob {
                kind: format!("nulls-{tag}"),
                payload: json!({}),
                run_at: now(),
                max_attempts: 1,
                dedup_key: (round % 2 == 1).then(|| format!("nd-{tag}-{round}")),
            })
            .await
            .unwrap();
        assert!(cat.job(job).await.unwrap().is_some());
    }
    assert_eq!(
        cat.count_records(&format!("nulls.{tag}"), None)
            .await
            .unwrap(),
        6
    );
}

type Case = fn(Arc<dyn Catalog>, String) -> futures::future::BoxFuture<'static, ()>;

/// Every case of the suite, by name.
fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("users_and_tokens", |c, t| {
            Box::pin(async move { users_and_tokens(c, &t).await })
        }),
        ("images_variants_records", |c, t| {
            Box::pin(async move { images_variants_records(c, &t).await })
        }),
        ("jobs", |c, t| Box::pin(async move { jobs(c, &t).await })),
        ("nullable_parameters", |c, t| {
            Box::pin(async move { nullable_parameters(c, &t).await })
        }),
    ]
}

/// Runs every case twice on one catalog (so on a pool whose connections
/// have already served every other case, statements prepared and cached),
/// with distinct names per run, in both orders.
async fn shared_pool_runs(cat: Arc<dyn Catalog>, tag: &str) {
    let all = cases();
    for (name, case) in all.iter() {
        case(cat.clone(), format!("{tag}a{name}")).await;
    }
    for (name, case) in all.iter().rev() {
        case(cat.clone(), format!("{tag}b{name}")).await;
    }
}

#[tokio::test]
async fn sqlite_passes_each_case_on_a_fresh_catalog() {
    for (name, case) in cases() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let cat: Arc<dyn Catalog> = Arc::new(SqlCatalog::connect(&url).await.unwrap());
        case(cat, format!("s{name}")).await;
    }
}

#[tokio::test]
async fn sqlite_passes_every_case_on_one_long_lived_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let cat = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    shared_pool_runs(cat, "s").await;
    // migrations are idempotent
    let before = {
        let cat = SqlCatalog::connect(&url).await.unwrap();
        cat.count_users().await.unwrap()
    };
    assert!(before > 0);
    let cat = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    assert_eq!(cat.count_users().await.unwrap(), before);
}

/// A new, empty database on the PostgreSQL server `url` names.
async fn fresh_postgres(url: &str) -> String {
    let name = format!("ttc_{}", uuid::Uuid::new_v4().simple());
    tintype_store::create_postgres_database(url, &name)
        .await
        .unwrap()
}

#[tokio::test]
async fn postgres_passes_each_case_on_a_fresh_catalog() {
    let Ok(url) = std::env::var("TINTYPE_TEST_DATABASE_URL") else {
        eprintln!("TINTYPE_TEST_DATABASE_URL not set: PostgreSQL tier not run here");
        return;
    };
    for (name, case) in cases() {
        let db = fresh_postgres(&url).await;
        let cat: Arc<dyn Catalog> = Arc::new(SqlCatalog::connect(&db).await.unwrap());
        case(cat, format!("p{name}")).await;
    }
}

#[tokio::test]
async fn postgres_passes_every_case_on_one_long_lived_catalog() {
    let Ok(url) = std::env::var("TINTYPE_TEST_DATABASE_URL") else {
        eprintln!("TINTYPE_TEST_DATABASE_URL not set: PostgreSQL tier not run here");
        return;
    };
    // The server's own database, shared with other test runs: names carry
    // this process's id.
    let tag = format!("p{}", std::process::id());
    let cat = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    shared_pool_runs(cat, &tag).await;
}

/// A blob key of its own for each case and run (PostgreSQL is shared).
fn blob_key(tag: &str, n: u32) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        format!("{tag}-{n}-{}", uuid::Uuid::new_v4()).as_bytes(),
    ))
}

/// The catalog's half of the garbage collection protocol: pins, the
/// collection lock, and what `tintype check` reads and repairs.
async fn pins_suite(cat: Arc<dyn Catalog>, tag: &str) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let ran = Arc::new(AtomicBool::new(false));
    let deleter = |ran: Arc<AtomicBool>| -> BlobDelete<'static> {
        Box::pin(async move {
            ran.store(true, Ordering::SeqCst);
            Ok(())
        })
    };

    // Unreferenced and unpinned: the delete runs.
    let x = blob_key(tag, 1);
    let r = cat
        .collect_blob(&x, now(), deleter(ran.clone()))
        .await
        .unwrap();
    assert!(matches!(r, Collected::Deleted), "{r:?}");
    assert!(ran.swap(false, Ordering::SeqCst));

    // Pinned: kept, and the delete never runs.
    cat.pin_blob(&x, "up1", now() + chrono::Duration::seconds(60))
        .await
        .unwrap();
    // An expired pin of another writer protects nothing.
    cat.pin_blob(&x, "dead", now() - chrono::Duration::seconds(1))
        .await
        .unwrap();
    let r = cat
        .collect_blob(&x, now(), deleter(ran.clone()))
        .await
        .unwrap();
    assert!(matches!(r, Collected::Pinned), "{r:?}");
    assert!(!ran.load(Ordering::SeqCst), "a pinned blob's delete ran");
    // Pinning again moves the expiry (here: into the past).
    cat.pin_blob(&x, "up1", now() - chrono::Duration::seconds(1))
        .await
        .unwrap();
    let r = cat
        .collect_blob(&x, now(), deleter(ran.clone()))
        .await
        .unwrap();
    assert!(matches!(r, Collected::Deleted), "{r:?}");
    assert!(ran.swap(false, Ordering::SeqCst));
    assert!(cat.expire_blob_pins(now()).await.unwrap() >= 2);
    cat.unpin_blob(&x, "up1").await.unwrap(); // gone already: a no-op

    // Unpinned after the commit: the reference keeps it.
    cat.pin_blob(&x, "up2", now() + chrono::Duration::seconds(60))
        .await
        .unwrap();
    let owner = cat
        .create_user(&format!("pinner-{tag}"), None, "s")
        .await
        .unwrap()
        .unwrap();
    let id = format!("{:0>32}", format!("{tag}pin"));
    cat.insert_image(&NewImage {
        id: id.clone(),
        owner_id: owner.id,
        name: None,
        content: content(&x),
        metadata: serde_json::Map::new(),
        created_at: now(),
    })
    .await
    .unwrap();
    cat.unpin_blob(&x, "up2").await.unwrap();
    let r = cat
        .collect_blob(&x, now(), deleter(ran.clone()))
        .await
        .unwrap();
    assert!(matches!(r, Collected::Referenced), "{r:?}");
    assert!(!ran.load(Ordering::SeqCst));

    // A failing delete is reported as such.
    let y = blob_key(tag, 2);
    let r = cat
        .collect_blob(
            &y,
            now(),
            Box::pin(async { Err(BlobError::Backend("disk on fire".into())) }),
        )
        .await
        .unwrap();
    assert!(matches!(r, Collected::Failed(_)), "{r:?}");

    // A pin taken while a collection is deleting waits until the delete is
    // done: then the writer, looking only after its pin, sees it gone.
    let z = blob_key(tag, 3);
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let deleted = Arc::new(AtomicBool::new(false));
    let d2 = deleted.clone();
    let cat2 = cat.clone();
    let z2 = z.clone();
    let collector = tokio::spawn(async move {
        cat2.collect_blob(
            &z2,
            now(),
            Box::pin(async move {
                let _ = started_tx.send(());
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                d2.store(true, Ordering::SeqCst);
                Ok(())
            }),
        )
        .await
    });
    started_rx.await.unwrap();
    cat.pin_blob(&z, "late", now() + chrono::Duration::seconds(60))
        .await
        .unwrap();
    assert!(
        deleted.load(Ordering::SeqCst),
        "a pin completed while its blob was being deleted"
    );
    assert!(matches!(
        collector.await.unwrap().unwrap(),
        Collected::Deleted
    ));
    // ...and a collection after the pin keeps the blob.
    let r = cat
        .collect_blob(&z, now(), deleter(ran.clone()))
        .await
        .unwrap();
    assert!(matches!(r, Collected::Pinned), "{r:?}");
    cat.unpin_blob(&z, "late").await.unwrap();

    // What `tintype check` reads: every image in insertion order.
    let all = cat.images_after(0, 1_000_000).await.unwrap();
    assert!(all.iter().any(|i| i.id == id));
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let mine = all.iter().find(|i| i.id == id).unwrap();
    let after = cat.images_after(mine.seq, 10).await.unwrap();
    assert!(after.iter().all(|i| i.seq > mine.seq));
    let page = cat.images_after(0, 1).await.unwrap();
    assert_eq!(page.len(), 1);
    // ...and repairs: one variant row.
    let v = Variant {
        image_id: id.clone(),
        preset: "small".into(),
        sha256: y.clone(),
        content_type: "image/jpeg".into(),
        width: 5,
        height: 5,
        size: 3,
        created_at: now(),
    };
    cat.put_variant(&v).await.unwrap();
    assert!(cat.delete_variant(&id, "small").await.unwrap());
    assert!(!cat.delete_variant(&id, "small").await.unwrap());
    assert!(cat.variant(&id, "small").await.unwrap().is_none());
    assert!(cat.image_by_id(&id).await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_keeps_the_garbage_collection_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let cat = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    pins_suite(cat, "s").await;
}

#[tokio::test]
async fn postgres_keeps_the_garbage_collection_protocol() {
    let Ok(url) = std::env::var("TINTYPE_TEST_DATABASE_URL") else {
        eprintln!("TINTYPE_TEST_DATABASE_URL not set: PostgreSQL tier not run here");
        return;
    };
    let tag = format!("q{}", std::process::id());
    let cat = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    pins_suite(cat, &tag).await;
}
