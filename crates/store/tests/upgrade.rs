//! Migration 0003 moves an existing catalog to queryable records: a
//! catalog written in the layout of migrations 0001 and 0002 (rows as the
//! dialects stored them before) opens, and the dialects' queries over the
//! new keys list what the old in-memory filters listed, on SQLite and on
//! PostgreSQL.

use tintype_core::*;
use tintype_store::SqlCatalog;

/// The old layout, applied by hand (what `connect` did before 0003).
async fn old_catalog(url: &str, postgres: bool) {
    sqlx::any::install_default_drivers();
    let url = if postgres {
        url.to_string()
    } else {
        format!("{url}?mode=rwc")
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let (m1, m2) = if postgres {
        (
            include_str!("../migrations/postgres/0001_init.sql"),
            include_str!("../migrations/postgres/0002_blob_pins.sql"),
        )
    } else {
        (
            include_str!("../migrations/sqlite/0001_init.sql"),
            include_str!("../migrations/sqlite/0002_blob_pins.sql"),
        )
    };
    sqlx::raw_sql(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::raw_sql(m1).execute(&pool).await.unwrap();
    sqlx::raw_sql(m2).execute(&pool).await.unwrap();
    sqlx::raw_sql("INSERT INTO schema_migrations (version, applied_at) VALUES (1, 0), (2, 0)")
        .execute(&pool)
        .await
        .unwrap();
    // Two users; twelve images of ann (6..12 photos), four of bob.
    let mut sql = String::from(
        "INSERT INTO users (name, created_at, images_per_day, webhook_secret) VALUES ('ann', 0, 0, 's'), ('bob', 0, 0, 's');\n",
    );
    for i in 0..16 {
        let owner = if i < 12 { 1 } else { 2 };
        sql.push_str(&format!(
            "INSERT INTO images (id, owner_id, sha256, size, kind, format, content_type, metadata, created_at, updated_at, processed_at) \
             VALUES ('img{i:02}', {owner}, '{:064x}', 1, 'picture', 'png', 'image/png', '{{}}', {}, {}, {});\n",
            i,
            1_700_000_000_000i64 + i / 2,
            1_700_000_000_000i64 + i / 2,
            if i % 2 == 0 { "1" } else { "NULL" }
        ));
    }
    // Djinn: ann's disks 0..4 (none in a namespace), bob's 12..16 in his
    // root namespace 900 (id of the namespace record), on which ann
    // collaborates.
    for i in (0..4).chain(12..16) {
        let (owner, root) = if i < 12 {
            (1, "null".to_string())
        } else {
            (2, "900".to_string())
        };
        sql.push_str(&format!(
            "INSERT INTO records (scope, key, owner_id, image_id, data, created_at, updated_at) VALUES \
             ('djinn.image', 'k{i}', {owner}, 'img{i:02}', '{{\"id\": {i}, \"name\": \"Disk-{i}\", \"root_id\": {root}, \"user_id\": {owner}}}', 0, 0);\n"
        ));
    }
    sql.push_str(
        "INSERT INTO records (scope, key, owner_id, data, created_at, updated_at) VALUES \
         ('djinn.collaborator', '900:1', 1, '{\"namespace_id\": 900}', 0, 0);\n",
    );
    // Fulcrum: ann's photos 4..8 with record ids r0/r1 and forms f{i % 2}.
    for i in 4..8 {
        sql.push_str(&format!(
            "INSERT INTO records (scope, key, owner_id, image_id, data, created_at, updated_at) VALUES \
             ('fulcrum.photo', '1:key{i}', 1, 'img{i:02}', '{{\"access_key\": \"key{i}\", \"record_id\": \"r{}\", \"form_id\": \"f{}\"}}', 0, 0);\n",
            i / 6,
            i % 2
        ));
    }
    // diaspora*: ann's photos 6..12 (inserted out of order).
    for i in [9, 6, 11, 7, 10, 8] {
        sql.push_str(&format!(
            "INSERT INTO records (scope, key, owner_id, image_id, data, created_at, updated_at) VALUES \
             ('diaspora.photo', 'img{i:02}', 1, 'img{i:02}', '{{\"pending\": false}}', 0, 0);\n"
        ));
    }
    sqlx::raw_sql(&sql).execute(&pool).await.unwrap();
    pool.close().await;
}

/// The migrations sqlx's migrator has recorded as applied, and whether
/// the old bookkeeping table is still there.
async fn applied_migrations(url: &str, postgres: bool) -> (Vec<i64>, bool) {
    use sqlx::Row;
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let versions =
        sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<i64, _>(0))
            .collect();
    let old = if postgres {
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
    } else {
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    };
    let old: i64 = sqlx::query(old).fetch_one(&pool).await.unwrap().get(0);
    pool.close().await;
    (versions, old > 0)
}

fn data_i(rows: &[RecordRow], field: &str) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r.record
                .data
                .get(field)
                .map(|v| v.to_string())
                .unwrap_or_else(|| r.record.key.clone())
        })
        .collect()
}

async fn upgraded_lists_the_same(url: &str) {
    let cat = SqlCatalog::connect(url).await.unwrap();
    let cat: &dyn Catalog = &cat;
    let q = |filter: RecordFilter, order, after| RecordQuery {
        filter,
        order,
        after,
        offset: 0,
        limit: 100,
    };
    // Djinn: ann sees her four disks and bob's four in the namespace she
    // collaborates on, newest record first; a search matches the name in
    // any case.
    let djinn = |search: Option<&str>| RecordFilter {
        scope: "djinn.image".into(),
        owner: Some(1),
        or_ref_of: Some(("djinn.collaborator".into(), 1)),
        skey_contains: search.map(str::to_string),
        ..RecordFilter::default()
    };
    let rows = cat
        .query_records(&q(djinn(None), RecordOrder::SeqDesc, None))
        .await
        .unwrap();
    assert_eq!(
        data_i(&rows, "id"),
        ["15", "14", "13", "12", "3", "2", "1", "0"]
    );
    assert_eq!(cat.count_matching(&djinn(None)).await.unwrap(), 8);
    let rows = cat
        .query_records(&q(djinn(Some("DISK-1")), RecordOrder::SeqDesc, None))
        .await
        .unwrap();
    assert_eq!(data_i(&rows, "id"), ["15", "14", "13", "12", "1"]);
    // Bob alone sees only his.
    let bob = RecordFilter {
        owner: Some(2),
        or_ref_of: Some(("djinn.collaborator".into(), 2)),
        ..djinn(None)
    };
    assert_eq!(cat.count_matching(&bob).await.unwrap(), 4);
    // The namespace's collaborators.
    let collab = RecordFilter {
        scope: "djinn.collaborator".into(),
        ref_id: Some(900),
        ..RecordFilter::default()
    };
    let rows = cat
        .query_records(&q(collab, RecordOrder::SeqAsc, None))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].record.owner_id, Some(1));

    // Fulcrum: by record id, by form, by processed.
    let fulcrum = |f: RecordFilter| RecordFilter {
        scope: "fulcrum.photo".into(),
        owner: Some(1),
        with_image: true,
        ..f
    };
    let by = |rid: Option<&str>, form: Option<&str>, processed: Option<bool>| {
        fulcrum(RecordFilter {
            skey: rid.map(str::to_string),
            skey2: form.map(str::to_string),
            image_processed: processed,
            ..RecordFilter::default()
        })
    };
    for (f, want) in [
        (by(Some("r0"), None, None), vec!["key4", "key5"]),
        (by(Some("r1"), None, None), vec!["key6", "key7"]),
        (by(None, Some("f1"), None), vec!["key5", "key7"]),
        (by(None, None, Some(true)), vec!["key4", "key6"]),
        (by(Some("r1"), Some("f0"), Some(true)), vec!["key6"]),
    ] {
        let rows = cat
            .query_records(&q(f.clone(), RecordOrder::SeqAsc, None))
            .await
            .unwrap();
        let keys: Vec<String> = rows
            .iter()
            .map(|r| r.record.data["access_key"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(keys, want);
        assert_eq!(cat.count_matching(&f).await.unwrap(), want.len() as i64);
    }

    // diaspora*: photos in the images' newest-first order, paged by the
    // images' positions.
    let photos = RecordFilter {
        scope: "diaspora.photo".into(),
        owner: Some(1),
        with_image: true,
        ..RecordFilter::default()
    };
    let rows = cat
        .query_records(&RecordQuery {
            limit: 4,
            ..q(photos.clone(), RecordOrder::SortDesc, None)
        })
        .await
        .unwrap();
    let ids: Vec<String> = rows.iter().map(|r| r.record.key.clone()).collect();
    assert_eq!(ids, ["img11", "img10", "img09", "img08"]);
    let last = rows[3].image.as_ref().unwrap();
    let rows = cat
        .query_records(&q(
            photos,
            RecordOrder::SortDesc,
            Some(RecordCursor::Sort(to_millis(last.created_at), last.seq)),
        ))
        .await
        .unwrap();
    let ids: Vec<String> = rows.iter().map(|r| r.record.key.clone()).collect();
    assert_eq!(ids, ["img07", "img06"]);

    // Every old record starts at version 1, and an update moves it on.
    let r = cat.record("djinn.image", "k0").await.unwrap().unwrap();
    assert_eq!(r.version, 1);
}

#[tokio::test]
async fn a_sqlite_catalog_of_the_old_layout_lists_the_same_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("old.db").display());
    old_catalog(&url, false).await;
    upgraded_lists_the_same(&url).await;
    // The old bookkeeping is carried over to sqlx's migrator: 1 and 2 as
    // they were, 3, 4 and 5 applied now.
    assert_eq!(
        applied_migrations(&url, false).await,
        (vec![1, 2, 3, 4, 5], false)
    );
    // Opening again applies nothing twice.
    upgraded_lists_the_same(&url).await;
    assert_eq!(
        applied_migrations(&url, false).await,
        (vec![1, 2, 3, 4, 5], false)
    );
}

#[tokio::test]
async fn a_postgres_catalog_of_the_old_layout_lists_the_same_after_the_upgrade() {
    let Ok(url) = std::env::var("TINTYPE_TEST_DATABASE_URL") else {
        eprintln!("TINTYPE_TEST_DATABASE_URL not set: PostgreSQL tier not run here");
        return;
    };
    let name = format!("ttu_{}", uuid::Uuid::new_v4().simple());
    let db = tintype_store::create_postgres_database(&url, &name)
        .await
        .unwrap();
    old_catalog(&db, true).await;
    upgraded_lists_the_same(&db).await;
    assert_eq!(
        applied_migrations(&db, true).await,
        (vec![1, 2, 3, 4, 5], false)
    );
    upgraded_lists_the_same(&db).await;
    assert_eq!(
        applied_migrations(&db, true).await,
        (vec![1, 2, 3, 4, 5], false)
    );
}
