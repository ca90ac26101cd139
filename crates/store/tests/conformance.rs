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
    // The delete names the blobs it stopped referencing: the original's
    // and the variant's, each once.
    assert_eq!(
        cat.delete_image(&ids[0]).await.unwrap(),
        Some(vec![format!("{:064x}", 0), "f".repeat(64)])
    );
    assert_eq!(cat.delete_image(&ids[0]).await.unwrap(), None);
    assert!(!cat.blob_referenced(&"f".repeat(64)).await.unwrap());

    // records
    let scope = format!("test.{tag}");
    let r = NewRecord {
        scope: scope.clone(),
        key: "k".into(),
        owner_id: Some(alice.id),
        image_id: Some(ids[1].clone()),
        data: json!({"a": 1}),
        ..NewRecord::default()
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

/// Queryable records: every filter, order, cursor and offset of
/// [`RecordQuery`], counts, the join with images, optimistic updates, the
/// batched variants look-up and the quota-checked insert.
async fn queryable_records(cat: Arc<dyn Catalog>, tag: &str) {
    let alice = owner(&cat, &format!("qa-{tag}")).await;
    let bob = owner(&cat, &format!("qb-{tag}")).await;
    let scope = format!("q.{tag}");
    let member = format!("qm.{tag}");
    let base = to_millis(now());
    // 12 images and records: alice owns 0..8, bob 8..12 (bob's under roots
    // 100 + i % 2). Names n0..n11, record ids r{i % 3}, forms f{i % 2};
    // even images are processed.
    let mut images = Vec::new();
    for i in 0..12i64 {
        let who = if i < 8 { alice.id } else { bob.id };
        let img = cat
            .insert_image(&NewImage {
                id: format!("{tag}q{i:030}"),
                owner_id: who,
                name: None,
                content: content(&format!("{:064x}", 1000 + i)),
                metadata: serde_json::Map::new(),
                created_at: from_millis(base + i / 2),
            })
            .await
            .unwrap();
        if i % 2 == 0 {
            cat.set_processed(&img.id, Some(now())).await.unwrap();
        }
        cat.insert_record(&NewRecord {
            scope: scope.clone(),
            key: format!("k{i}"),
            owner_id: Some(who),
            image_id: Some(img.id.clone()),
            data: json!({ "i": i }),
            skey: Some(format!("r{}", i % 3)),
            skey2: Some(format!("f{}", i % 2)),
            ref_id: if i < 8 {
                Some(img.seq)
            } else {
                Some(100 + i % 2)
            },
            sort_at: Some(to_millis(img.created_at)),
        })
        .await
        .unwrap()
        .unwrap();
        images.push(img);
    }
    let is = |rows: &[RecordRow]| -> Vec<i64> {
        rows.iter()
            .map(|r| r.record.data["i"].as_i64().unwrap())
            .collect()
    };
    let of = |owner: UserId| RecordFilter {
        scope: scope.clone(),
        owner: Some(owner),
        ..RecordFilter::default()
    };
    let q = |filter: RecordFilter, order, after, offset, limit| RecordQuery {
        filter,
        order,
        after,
        offset,
        limit,
    };

    // Orders, offsets and seq cursors.
    let rows = cat
        .query_records(&q(of(alice.id), RecordOrder::SeqDesc, None, 2, 3))
        .await
        .unwrap();
    assert_eq!(is(&rows), vec![5, 4, 3]);
    assert!(rows
        .iter()
        .all(|r| r.image.as_ref().map(|i| &i.id) == r.record.image_id.as_ref()));
    let after = RecordCursor::Seq(rows[2].record.seq);
    let rows = cat
        .query_records(&q(of(alice.id), RecordOrder::SeqDesc, Some(after), 0, 10))
        .await
        .unwrap();
    assert_eq!(is(&rows), vec![2, 1, 0]);
    let rows = cat
        .query_records(&q(of(alice.id), RecordOrder::SeqAsc, None, 6, 10))
        .await
        .unwrap();
    assert_eq!(is(&rows), vec![6, 7]);
    assert_eq!(cat.count_matching(&of(alice.id)).await.unwrap(), 8);

    // Sort orders with (sort_at, ref_id) cursors: images 2k and 2k+1 share
    // a millisecond, the seq (ref_id) breaks the tie.
    let rows = cat
        .query_records(&q(of(alice.id), RecordOrder::SortDesc, None, 0, 3))
        .await
        .unwrap();
    assert_eq!(is(&rows), vec![7, 6, 5]);
    let pos = RecordCursor::Sort(to_millis(images[5].created_at), images[5].seq);
    let rows = cat
        .query_records(&q(of(alice.id), RecordOrder::SortDesc, Some(pos), 0, 3))
        .await
        .unwrap();
    assert_eq!(is(&rows), vec![4, 3, 2]);
    let rows = cat
        .query_records(&q(of(alice.id), RecordOrder::SortAsc, Some(pos), 0, 2))
        .await
        .unwrap();
    assert_eq!(is(&rows), vec![6, 7]);

    // Exact keys, the image's processed mark, substring of skey.
    let f = RecordFilter {
        skey: Some("r1".into()),
        skey2: Some("f0".into()),
        ..of(alice.id)
    };
    let rows = cat
        .query_records(&q(f.clone(), RecordOrder::SeqAsc, None, 0, 10))
        .await
        .unwrap();
    assert_eq!(is(&rows), vec![4]);
    assert_eq!(cat.count_matching(&f).await.unwrap(), 1);
    let f = RecordFilter {
        image_processed: Some(false),
        with_image: true,
        ..of(alice.id)
    };
    let rows = cat
        .query_records(&q(f.clone(), RecordOrder::SeqAsc, None, 1, 2))
        .await
        .unwrap();
    assert_eq!(is(&rows), vec![3, 5]);
    assert_eq!(cat.count_matching(&f).await.unwrap(), 4);
    let f = RecordFilter {
        skey_contains: Some("R2".into()),
        ..of(alice.id)
    };
    assert_eq!(
        is(&cat
            .query_records(&q(f.clone(), RecordOrder::SeqAsc, None, 0, 10))
            .await
            .unwrap()),
        vec![2, 5]
    );

    // Membership: alice's records plus bob's under the roots alice is a
    // member of (root 101 only).
    cat.insert_record(&NewRecord {
        scope: member.clone(),
        key: "m".into(),
        owner_id: Some(alice.id),
        data: json!({}),
        ref_id: Some(101),
        ..NewRecord::default()
    })
    .await
    .unwrap()
    .unwrap();
    let f = RecordFilter {
        or_ref_of: Some((member.clone(), alice.id)),
        ..of(alice.id)
    };
    assert_eq!(cat.count_matching(&f).await.unwrap(), 10);
    let rows = cat
        .query_records(&q(f.clone(), RecordOrder::SeqDesc, None, 0, 4))
        .await
        .unwrap();
    assert_eq!(is(&rows), vec![11, 9, 7, 6]);
    let by_root = RecordFilter {
        scope: scope.clone(),
        ref_id: Some(100),
        ..RecordFilter::default()
    };
    assert_eq!(
        is(&cat
            .query_records(&q(by_root, RecordOrder::SeqAsc, None, 0, 10))
            .await
            .unwrap()),
        vec![8, 10]
    );

    // A deleted image takes its record along; with_image never shows a
    // record without its image.
    cat.delete_image(&images[7].id).await.unwrap();
    assert_eq!(cat.count_matching(&of(alice.id)).await.unwrap(), 7);

    // Optimistic updates: only the writer holding the current version wins.
    let rec = cat.record(&scope, "k0").await.unwrap().unwrap();
    let v = rec.version;
    let change = |n: i64| NewRecord {
        scope: scope.clone(),
        key: "k0".into(),
        owner_id: Some(alice.id),
        image_id: rec.image_id.clone(),
        data: json!({ "i": 0, "n": n }),
        ..NewRecord::default()
    };
    let won = cat.update_record_if(&change(1), v).await.unwrap().unwrap();
    assert_eq!(won.version, v + 1);
    assert_eq!(won.seq, rec.seq);
    assert!(cat.update_record_if(&change(2), v).await.unwrap().is_none());
    assert_eq!(
        cat.record(&scope, "k0").await.unwrap().unwrap().data["n"],
        1
    );
    // Keys left unset keep their stored value.
    let f = RecordFilter {
        skey: Some("r0".into()),
        ..of(alice.id)
    };
    assert_eq!(cat.count_matching(&f).await.unwrap(), 3);
    assert!(!cat.delete_record_if(&scope, "k0", v).await.unwrap());
    assert!(cat.delete_record_if(&scope, "k0", v + 1).await.unwrap());

    // Records by key in one query: those that exist (k0 and k7 are gone).
    let keys: Vec<String> = ["k1", "k0", "k3", "k7", "nope"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    let mut found: Vec<String> = cat
        .records_with_keys(&scope, &keys)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key)
        .collect();
    found.sort();
    assert_eq!(found, ["k1", "k3"]);
    assert!(cat
        .records_with_keys(&member, &keys)
        .await
        .unwrap()
        .is_empty());

    // Variants of a page in one query.
    for (i, img) in images.iter().enumerate().take(3) {
        for preset in ["a", "b"] {
            cat.put_variant(&Variant {
                image_id: img.id.clone(),
                preset: preset.into(),
                sha256: format!("{:064x}", 5000 + i),
                content_type: "image/jpeg".into(),
                width: 1,
                height: 1,
                size: 1,
                created_at: now(),
            })
            .await
            .unwrap();
        }
    }
    let ids: Vec<String> = images.iter().map(|i| i.id.clone()).take(4).collect();
    let vs = cat.variants_of(&ids).await.unwrap();
    assert_eq!(vs.len(), 6);
    assert!(vs.iter().all(|v| ids[..3].contains(&v.image_id)));

    // The quota-checked insert.
    cat.set_quota(bob.id, 5).await.unwrap();
    let new = |n: i64| NewImage {
        id: format!("{tag}z{n:030}"),
        owner_id: bob.id,
        name: None,
        content: content(&format!("{:064x}", 9000 + n)),
        metadata: serde_json::Map::new(),
        created_at: now(),
    };
    let since = now() - chrono::Duration::hours(24);
    assert!(cat
        .insert_image_within_quota(&new(0), since)
        .await
        .unwrap()
        .is_ok());
    assert_eq!(
        cat.insert_image_within_quota(&new(1), since).await.unwrap(),
        Err(QuotaUsed { limit: 5, used: 5 })
    );
    assert!(cat.image_by_id(&new(1).id).await.unwrap().is_none());
    cat.set_quota(bob.id, 0).await.unwrap();
    assert!(cat
        .insert_image_within_quota(&new(1), since)
        .await
        .unwrap()
        .is_ok());
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

    // The admin console's listing (newest first, by state, paged by id)
    // and retry of a failed job.
    let failed = cat
        .jobs_by_state(Some(JobState::Failed), None, 1000)
        .await
        .unwrap();
    assert!(failed.iter().any(|j| j.id == id) && failed.iter().any(|j| j.id == pid));
    assert!(failed.iter().all(|j| j.state == JobState::Failed));
    assert!(failed.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let all = cat.jobs_by_state(None, None, 1000).await.unwrap();
    assert!([id, pid, rid, twin]
        .iter()
        .all(|x| all.iter().any(|j| j.id == *x)));
    let older = cat.jobs_by_state(None, Some(rid), 1000).await.unwrap();
    assert!(older.iter().all(|j| j.id < rid));
    assert!(older.iter().any(|j| j.id == pid) && !older.iter().any(|j| j.id == twin));
    let one = cat.jobs_by_state(None, None, 1).await.unwrap();
    assert_eq!(one.len(), 1);
    let queued = cat
        .jobs_by_state(Some(JobState::Queued), None, 1000)
        .await
        .unwrap();
    assert!(queued.iter().any(|j| j.id == twin) && !queued.iter().any(|j| j.id == pid));
    assert!(!cat.retry_job(rid).await.unwrap(), "only a failed job");
    assert!(cat.retry_job(pid).await.unwrap());
    assert!(!cat.retry_job(pid).await.unwrap(), "once");
    let back = cat.job(pid).await.unwrap().unwrap();
    assert_eq!((back.state, back.attempts), (JobState::Queued, 0));
    let j = cat
        .claim_job("w5", &poison, now() + chrono::Duration::seconds(60))
        .await
        .unwrap()
        .expect("a retried job is claimed again");
    assert_eq!((j.id, j.attempts), (pid, 1));
    assert!(cat.complete_job(pid, "w5").await.unwrap());
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
            ..NewRecord::default()
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

/// Substring search of `skey` (`skey_contains`): from the trigram index for
/// three characters or more, by checking keys for shorter terms, the same
/// answers either way: exact and case-sensitive on the stored key, LIKE's
/// and FTS5's special characters taken literally, kept current as keys
/// change and records go, through membership too.
async fn skey_search(cat: Arc<dyn Catalog>, tag: &str) {
    let alice = owner(&cat, &format!("sa-{tag}")).await;
    let bob = owner(&cat, &format!("sb-{tag}")).await;
    let scope = format!("s.{tag}");
    let member = format!("sm.{tag}");
    let keys = [
        "disk-1",
        "disk-10",
        "my_disk",
        "my%disk",
        "abc\"d",
        "xyz",
        "UPPER-abc",
        "back\\slash",
    ];
    let put = |key: &str, skey: &str, who: UserId, root: Option<i64>| NewRecord {
        scope: scope.clone(),
        key: key.to_string(),
        owner_id: Some(who),
        data: json!({ "k": skey }),
        skey: Some(skey.to_string()),
        ref_id: root,
        ..NewRecord::default()
    };
    for (i, k) in keys.iter().enumerate() {
        cat.insert_record(&put(&format!("a{i}"), k, alice.id, None))
            .await
            .unwrap()
            .unwrap();
    }
    // Bob's: one under root 7 (alice is a member of it), one not.
    cat.insert_record(&put("b0", "disk-100", bob.id, Some(7)))
        .await
        .unwrap()
        .unwrap();
    cat.insert_record(&put("b1", "disk-1000", bob.id, Some(8)))
        .await
        .unwrap()
        .unwrap();
    cat.insert_record(&NewRecord {
        scope: member.clone(),
        key: "m".into(),
        owner_id: Some(alice.id),
        data: json!({}),
        ref_id: Some(7),
        ..NewRecord::default()
    })
    .await
    .unwrap()
    .unwrap();
    let search = |term: &str, members: bool| RecordFilter {
        scope: scope.clone(),
        owner: Some(alice.id),
        or_ref_of: members.then(|| (member.clone(), alice.id)),
        skey_contains: Some(term.to_string()),
        ..RecordFilter::default()
    };
    let found = |f: RecordFilter| {
        let cat = cat.clone();
        async move {
            let rows = cat
                .query_records(&RecordQuery {
                    filter: f.clone(),
                    order: RecordOrder::SeqAsc,
                    after: None,
                    offset: 0,
                    limit: 100,
                })
                .await
                .unwrap();
            let mut keys: Vec<String> = rows
                .iter()
                .map(|r| r.record.data["k"].as_str().unwrap().to_string())
                .collect();
            keys.sort();
            assert_eq!(
                cat.count_matching(&f).await.unwrap(),
                keys.len() as i64,
                "count of {f:?}"
            );
            keys
        }
    };
    let terms = [
        ("disk-1", vec!["disk-1", "disk-10"]),
        ("DISK-1", vec!["disk-1", "disk-10"]),
        ("y_d", vec!["my_disk"]),
        ("y%d", vec!["my%disk"]),
        ("c\"d", vec!["abc\"d"]),
        ("k\\s", vec!["back\\slash"]),
        ("\"d", vec!["abc\"d"]),
        ("abc", vec!["UPPER-abc", "abc\"d"]),
        ("per", vec![]),
        ("ab", vec!["UPPER-abc", "abc\"d"]),
        ("dis", vec!["disk-1", "disk-10", "my%disk", "my_disk"]),
        ("zzz", vec![]),
        ("x", vec!["xyz"]),
    ];
    for (term, want) in &terms {
        assert_eq!(found(search(term, false)).await, *want, "search {term:?}");
    }
    // Compacting the index (what a running server does every few minutes)
    // keeps every answer.
    cat.tidy_search_index().await.unwrap();
    for (term, want) in &terms {
        assert_eq!(
            found(search(term, false)).await,
            *want,
            "tidied, search {term:?}"
        );
    }
    // Through membership: bob's disk-100 under root 7, not disk-1000.
    assert_eq!(
        found(search("disk-10", true)).await,
        vec!["disk-10", "disk-100"]
    );
    assert_eq!(
        found(search("k-", true)).await,
        vec!["disk-1", "disk-10", "disk-100"]
    );
    // A changed key is found by its new value only; a deleted record not
    // at all.
    cat.upsert_record(&put("a5", "qqq-renamed", alice.id, None))
        .await
        .unwrap();
    assert_eq!(found(search("xyz", false)).await, Vec::<String>::new());
    assert_eq!(found(search("renamed", false)).await, vec!["qqq-renamed"]);
    let v = cat.record(&scope, "a0").await.unwrap().unwrap().version;
    assert!(cat.delete_record_if(&scope, "a0", v).await.unwrap());
    assert_eq!(found(search("disk-1", false)).await, vec!["disk-10"]);
    assert!(cat.delete_record(&scope, "a1").await.unwrap());
    assert_eq!(found(search("disk-1", false)).await, Vec::<String>::new());
    cat.tidy_search_index().await.unwrap();
    assert_eq!(found(search("disk-1", false)).await, Vec::<String>::new());
    assert_eq!(found(search("renamed", false)).await, vec!["qqq-renamed"]);
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
        ("queryable_records", |c, t| {
            Box::pin(async move { queryable_records(c, &t).await })
        }),
        ("nullable_parameters", |c, t| {
            Box::pin(async move { nullable_parameters(c, &t).await })
        }),
        ("skey_search", |c, t| {
            Box::pin(async move { skey_search(c, &t).await })
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

/// The hot listing queries of the dialects and of the native list, as
/// their handlers build them.
fn hot_queries() -> Vec<(&'static str, RecordQuery)> {
    let base = |scope: &str| RecordFilter {
        scope: scope.into(),
        owner: Some(3),
        ..RecordFilter::default()
    };
    let page = |filter, order, after, offset| RecordQuery {
        filter,
        order,
        after,
        offset,
        limit: 26,
    };
    vec![
        (
            "djinn list (own and collaborations)",
            page(
                RecordFilter {
                    or_ref_of: Some(("djinn.collaborator".into(), 3)),
                    ..base("djinn.image")
                },
                RecordOrder::SeqDesc,
                None,
                250,
            ),
        ),
        (
            "djinn search",
            page(
                RecordFilter {
                    or_ref_of: Some(("djinn.collaborator".into(), 3)),
                    skey_contains: Some("disk".into()),
                    ..base("djinn.image")
                },
                RecordOrder::SeqDesc,
                None,
                0,
            ),
        ),
        (
            "djinn collaborators",
            page(
                RecordFilter {
                    scope: "djinn.collaborator".into(),
                    ref_id: Some(7),
                    ..RecordFilter::default()
                },
                RecordOrder::SeqAsc,
                Some(RecordCursor::Seq(3)),
                0,
            ),
        ),
        (
            "fulcrum list",
            page(base("fulcrum.photo"), RecordOrder::SeqAsc, None, 100),
        ),
        (
            "fulcrum list by record id, processed",
            page(
                RecordFilter {
                    skey: Some("r1".into()),
                    image_processed: Some(true),
                    with_image: true,
                    ..base("fulcrum.photo")
                },
                RecordOrder::SeqDesc,
                None,
                0,
            ),
        ),
        (
            "fulcrum list by form id",
            page(
                RecordFilter {
                    skey2: Some("f1".into()),
                    with_image: true,
                    ..base("fulcrum.photo")
                },
                RecordOrder::SeqAsc,
                None,
                0,
            ),
        ),
        (
            "diaspora photos (newest)",
            page(
                RecordFilter {
                    with_image: true,
                    ..base("diaspora.photo")
                },
                RecordOrder::SortDesc,
                None,
                0,
            ),
        ),
        (
            "diaspora photos (older)",
            page(
                RecordFilter {
                    with_image: true,
                    ..base("diaspora.photo")
                },
                RecordOrder::SortDesc,
                Some(RecordCursor::Sort(1_700_000_000_000, 42)),
                0,
            ),
        ),
        (
            "diaspora photos (newer)",
            page(
                RecordFilter {
                    with_image: true,
                    ..base("diaspora.photo")
                },
                RecordOrder::SortAsc,
                Some(RecordCursor::Sort(1_700_000_000_000, 42)),
                0,
            ),
        ),
        (
            "popit list",
            page(
                RecordFilter {
                    scope: "popit.persons".into(),
                    ..RecordFilter::default()
                },
                RecordOrder::SeqAsc,
                None,
                60,
            ),
        ),
    ]
}

/// A plan line that reads a whole table (or a whole index) of records or
/// images rather than searching an index.
fn full_scan(backend: &str, line: &str) -> bool {
    let l = line.trim();
    match backend {
        "sqlite" => {
            l.starts_with("SCAN ")
                && ["SCAN r", "SCAN m", "SCAN i", "SCAN records", "SCAN images"]
                    .iter()
                    .any(|p| l == *p || l.starts_with(&format!("{p} ")))
        }
        _ => l.contains("Seq Scan on records") || l.contains("Seq Scan on images"),
    }
}

/// A plan line that walks every record of a scope (all owners): an index
/// search constrained by the scope alone.
fn scope_walk(backend: &str, line: &str) -> bool {
    let l = line.trim();
    match backend {
        "sqlite" => l.contains("(scope=?)"),
        _ => {
            l.starts_with("Index Cond: (scope = '")
                && l.ends_with("'::text)")
                && !l.contains(" AND ")
        }
    }
}

/// Every hot listing query searches indexes: no full scan of records or
/// images, whatever the catalog holds.
async fn hot_listings_use_indexes(cat: &SqlCatalog) {
    let backend = cat.backend_name();
    // Rows of many owners in every scope, and fresh statistics, so that
    // the planner sees what a catalog in use looks like.
    let dyn_cat: &dyn Catalog = cat;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut owners = Vec::new();
    for o in 0..20 {
        let u = dyn_cat
            .create_user(&format!("plan-{run}-{o}"), None, "s")
            .await
            .unwrap()
            .unwrap();
        owners.push(u.id);
    }
    for (n, scope) in [
        "djinn.image",
        "djinn.collaborator",
        "fulcrum.photo",
        "diaspora.photo",
        "popit.persons",
    ]
    .iter()
    .enumerate()
    {
        for i in 0..400i64 {
            let o = owners[(i % 20) as usize];
            dyn_cat
                .insert_record(&NewRecord {
                    scope: scope.to_string(),
                    key: format!("{run}-{i}"),
                    owner_id: Some(o),
                    data: json!({}),
                    skey: Some(format!("r{}", i % 50)),
                    skey2: Some(format!("f{}", i % 40)),
                    ref_id: Some(i + n as i64 * 1000),
                    sort_at: Some(1_700_000_000_000 + i),
                    ..NewRecord::default()
                })
                .await
                .unwrap()
                .unwrap();
        }
    }
    cat.analyze().await.unwrap();
    for (name, q) in hot_queries() {
        let plan = cat.explain_record_query(&q).await.unwrap();
        assert!(!plan.is_empty(), "{name}: no plan");
        eprintln!("{backend}: {name}:\n  {}", plan.join("\n  "));
        let whole_scope = name.starts_with("popit");
        let scans: Vec<&String> = plan
            .iter()
            .filter(|l| full_scan(backend, l) || (!whole_scope && scope_walk(backend, l)))
            .collect();
        assert!(
            scans.is_empty(),
            "{backend}: {name} scans a table: {scans:?}\nplan:\n{}",
            plan.join("\n")
        );
    }
    for after in [false, true] {
        let plan = cat.explain_image_list(after).await.unwrap();
        assert!(
            !plan.iter().any(|l| full_scan(backend, l)),
            "{backend}: native list scans a table:\n{}",
            plan.join("\n")
        );
        assert!(
            plan.iter().any(|l| l.contains("images_owner_created")),
            "{backend}: native list does not use its index:\n{}",
            plan.join("\n")
        );
    }
    // A job claim stops at the first due job in index order: it neither
    // scans the queue nor sorts it (with a million queued, that cost 0.3 s
    // per claim).
    let plan = cat.explain_job_claim().await.unwrap();
    let sorts_or_scans = |l: &str| {
        let l = l.trim().trim_start_matches("->").trim();
        l.starts_with("SCAN jobs")
            || l.contains("TEMP B-TREE")
            || l.contains("MULTI-INDEX OR")
            || l.starts_with("Sort ")
            || l.contains("Seq Scan on jobs")
            || l.contains("Bitmap")
    };
    assert!(
        !plan.iter().any(|l| sorts_or_scans(l)),
        "{backend}: a job claim scans or sorts the queue:\n{}",
        plan.join("\n")
    );
    assert!(
        plan.iter().any(|l| l.contains("jobs_claim")),
        "{backend}: a job claim does not use its index:\n{}",
        plan.join("\n")
    );
}

#[test]
fn the_scan_detector_sees_full_scans() {
    assert!(full_scan("sqlite", "SCAN r"));
    assert!(full_scan(
        "sqlite",
        "SCAN records USING INDEX records_scope_seq"
    ));
    assert!(!full_scan(
        "sqlite",
        "SEARCH r USING INDEX records_scope_owner (scope=? AND owner_id=?)"
    ));
    assert!(full_scan(
        "postgres",
        "  ->  Seq Scan on records r  (cost=0.00..1.01 rows=1 width=8)"
    ));
    assert!(scope_walk(
        "sqlite",
        "SEARCH r USING INDEX records_scope_seq (scope=?)"
    ));
    assert!(!scope_walk(
        "sqlite",
        "SEARCH r USING INDEX records_ref (scope=? AND ref_id=?)"
    ));
    assert!(scope_walk(
        "postgres",
        "  Index Cond: (scope = 'djinn.image'::text)"
    ));
    assert!(!scope_walk(
        "postgres",
        "Index Cond: ((scope = 'djinn.image'::text) AND (owner_id = '1'::bigint))"
    ));
    assert!(!full_scan(
        "postgres",
        "Index Scan using records_ref on records r"
    ));
}

#[tokio::test]
async fn sqlite_hot_listings_use_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let cat = SqlCatalog::connect(&url).await.unwrap();
    hot_listings_use_indexes(&cat).await;
}

#[tokio::test]
async fn postgres_hot_listings_use_indexes() {
    let Ok(url) = std::env::var("TINTYPE_TEST_DATABASE_URL") else {
        eprintln!("TINTYPE_TEST_DATABASE_URL not set: PostgreSQL tier not run here");
        return;
    };
    let cat = SqlCatalog::connect(&fresh_postgres(&url).await)
        .await
        .unwrap();
    hot_listings_use_indexes(&cat).await;
}

/// `stored_bytes`: every original and variant row's size, and what deletes
/// leave. On a fresh catalog (the total is global).
async fn stored_bytes_adds_up_every_row(cat: Arc<dyn Catalog>) {
    assert_eq!(cat.stored_bytes().await.unwrap(), 0);
    let u = owner(&cat, "bytes").await;
    let image = |n: u32, sha: char, size: i64| {
        let mut c = content(&sha.to_string().repeat(64));
        c.size = size;
        NewImage {
            id: format!("{n:032}"),
            owner_id: u.id,
            name: None,
            content: c,
            metadata: serde_json::Map::new(),
            created_at: now(),
        }
    };
    let variant = |n: u32, sha: char, size: i64| Variant {
        image_id: format!("{n:032}"),
        preset: "small".into(),
        sha256: sha.to_string().repeat(64),
        content_type: "image/jpeg".into(),
        width: 4,
        height: 4,
        size,
        created_at: now(),
    };
    // Images 1 and 2 share one original; 1 and 3 share one variant.
    for (n, sha, size) in [(1, 'a', 1000), (2, 'a', 1000), (3, 'b', 300)] {
        cat.insert_image(&image(n, sha, size)).await.unwrap();
    }
    for (n, sha, size) in [(1, 'c', 40), (3, 'c', 40), (2, 'd', 7)] {
        cat.put_variant(&variant(n, sha, size)).await.unwrap();
    }
    // Each row counts, shared bytes too.
    assert_eq!(
        cat.stored_bytes().await.unwrap(),
        1000 + 1000 + 300 + 40 + 40 + 7
    );
    // Image 1 goes, with its variant.
    assert_eq!(
        cat.delete_image(&format!("{:032}", 1)).await.unwrap(),
        Some(vec!["a".repeat(64), "c".repeat(64)])
    );
    assert_eq!(cat.stored_bytes().await.unwrap(), 1000 + 300 + 40 + 7);
    assert!(cat
        .delete_variant(&format!("{:032}", 2), "small")
        .await
        .unwrap());
    assert_eq!(cat.stored_bytes().await.unwrap(), 1000 + 300 + 40);
    assert_eq!(
        cat.delete_image(&format!("{:032}", 2)).await.unwrap(),
        Some(vec!["a".repeat(64)])
    );
    assert_eq!(cat.stored_bytes().await.unwrap(), 300 + 40);
}

#[tokio::test]
async fn sqlite_sums_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let cat: Arc<dyn Catalog> = Arc::new(SqlCatalog::connect(&url).await.unwrap());
    stored_bytes_adds_up_every_row(cat).await;
}

#[tokio::test]
async fn postgres_sums_stored_bytes() {
    let Ok(url) = std::env::var("TINTYPE_TEST_DATABASE_URL") else {
        eprintln!("TINTYPE_TEST_DATABASE_URL not set: PostgreSQL tier not run here");
        return;
    };
    let db = fresh_postgres(&url).await;
    let cat: Arc<dyn Catalog> = Arc::new(SqlCatalog::connect(&db).await.unwrap());
    stored_bytes_adds_up_every_row(cat).await;
}
