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

async fn suite(cat: Arc<dyn Catalog>, tag: &str) {
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

    // images: newest first with a stable cursor
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

    // jobs: claim, lease expiry, retry, failure
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
}

#[tokio::test]
async fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let cat = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    suite(cat, "s").await;
    // migrations are idempotent
    let cat = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    assert_eq!(cat.count_users().await.unwrap(), 1);
}

#[tokio::test]
async fn postgres_passes_the_conformance_suite() {
    let Ok(url) = std::env::var("TINTYPE_TEST_DATABASE_URL") else {
        eprintln!("TINTYPE_TEST_DATABASE_URL not set: PostgreSQL tier not run here");
        return;
    };
    let tag = format!("p{}", std::process::id());
    let cat = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    suite(cat, &tag).await;
}
