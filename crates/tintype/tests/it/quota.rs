//! The daily quota is kept by the catalog: uploads racing through two
//! engines (two nodes) over one catalog never overrun it.

use std::sync::Arc;
use tintype_engine::core::CoreError;
use tintype_engine::{Engine, EngineConfig, IngestOptions};

/// A node: an engine of its own over the shared catalog and blob store.
async fn node(db: &str, blobs: &str, tmp: &std::path::Path) -> Arc<Engine> {
    let catalog = tintype_store::open_catalog(db).await.expect("catalog");
    let blobs = tintype_store::open_blob_store(blobs).await.expect("blobs");
    let mut cfg = EngineConfig::new(tmp.to_path_buf());
    cfg.workers = 0;
    Engine::new(catalog, blobs, cfg).expect("engine")
}

/// A tiny valid PNG, different for each `n`.
fn png(n: u64) -> Vec<u8> {
    let img = image::RgbImage::from_fn(4, 4, |x, y| {
        image::Rgb([(n % 251) as u8, (n / 251 % 251) as u8, (x * 4 + y) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_racing_through_two_nodes_never_overrun_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var("TINTYPE_TEST_DATABASE_URL") {
        Ok(url) => {
            let name = format!("ttq_{}", uuid::Uuid::new_v4().simple());
            tintype_store::create_postgres_database(&url, &name)
                .await
                .unwrap()
        }
        Err(_) => format!("sqlite://{}", dir.path().join("catalog.db").display()),
    };
    let blobs = dir.path().join("blobs").display().to_string();
    let a = node(&db, &blobs, &dir.path().join("tmp-a")).await;
    let b = node(&db, &blobs, &dir.path().join("tmp-b")).await;
    let user = a.create_user("quinn", None).await.unwrap();
    a.set_quota("quinn", 5).await.unwrap();
    // Two rounds: near the quota from below, then at it.
    for round in 0..2u64 {
        let tasks: Vec<_> = (0..16u64)
            .map(|i| {
                let e = if i % 2 == 0 { a.clone() } else { b.clone() };
                let body = png(round * 100 + i);
                tokio::spawn(async move {
                    let chunk: Result<bytes::Bytes, std::io::Error> = Ok(body.into());
                    e.ingest(IngestOptions::new(user.id), futures::stream::iter([chunk]))
                        .await
                })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => created += 1,
                Err(CoreError::QuotaExceeded { limit, .. }) => assert_eq!(limit, 5),
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        let expected = if round == 0 { 5 } else { 0 };
        assert_eq!(created, expected, "round {round}");
    }
    let listed = a.list_images(user.id, None, 100).await.unwrap();
    assert_eq!(listed.images.len(), 5);
}
