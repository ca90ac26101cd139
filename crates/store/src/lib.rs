//! tintype-store: the storage backends behind tintype-core's interfaces.
//!
//! - [`SqlCatalog`]: the catalog over SQLite (embedded, WAL mode) or
//!   PostgreSQL (several nodes). One implementation serves both through
//!   sqlx's `Any` driver: the SQL is written once with numbered
//!   placeholders (`$1`, which both drivers bind by number) and the few
//!   statements that must differ (claiming a job with `FOR UPDATE SKIP
//!   LOCKED`) branch on the backend. Each backend keeps its own migrations
//!   under `migrations/{sqlite,postgres}`, run by sqlx's `Migrator`.
//! - [`DirBlobStore`]: content-addressed blobs in a local directory
//!   (`sha256/ab/cd/abcd…`), written by fsync + atomic rename.
//! - [`S3BlobStore`]: the same keys in an S3-compatible bucket (AWS S3,
//!   Garage, MinIO), for several nodes sharing one store.
//! - [`migrate()`]: copies a library between backends (`tintype migrate`).
//! - [`open_catalog`] / [`open_blob_store`]: choose a backend from a URL.
//! - [`staging`]: temporary files owned by one process, swept by
//!   `tintype serve` only when their process is gone.
//!
//! # Garbage collection never removes a referenced blob
//!
//! Blobs are shared by content: an upload whose bytes are stored already
//! does not write them again (neither store refreshes the blob's time), so
//! a blob that was unreferenced for long may be about to be referenced
//! again. Age alone cannot protect it. The protocol, the same for every
//! catalog and blob store and for any number of nodes and `tintype gc`
//! runs at once:
//!
//! 1. A writer (upload, re-import, variant render) first **pins** the blob
//!    in the catalog (`blob_pins`: sha256, pin id, expiry a day ahead),
//!    then checks whether the blob exists and stores it if not, then
//!    commits the row that references it, then removes its pin. A writer
//!    that dies leaves a pin that expires.
//! 2. The collector lists the blobs, skips those referenced or younger
//!    than the grace period (a cheap first pass), and for each remaining
//!    one asks the catalog to **collect** it: under the blob's lock
//!    (PostgreSQL: an advisory transaction lock; SQLite: the write lock),
//!    one statement checks that no image, no variant and no unexpired pin
//!    names it, and the blob is deleted before the lock is released.
//! 3. Taking a pin waits for that lock. So either the pin came first and
//!    the collector sees it (or, once it is removed, the committed row),
//!    or the collection came first and the writer, checking only after its
//!    pin, finds the blob gone and stores it again.
//!
//! The grace period (`gc_grace_secs`) is a second line of defence for
//! blobs written outside this protocol; correctness does not depend on it
//! or on the clocks of the nodes (only pin expiry does, a day ahead).

mod dir;
pub mod migrate;
mod pins;
mod query;
mod s3;
mod schema;
mod sql;
pub mod staging;

pub use dir::DirBlobStore;
pub use migrate::{migrate, MigrateError, MigrateReport, Progress};
pub use s3::{S3BlobStore, S3Spec};
pub use sql::{SqlCatalog, WORKER_STOPPED};

use std::path::Path;
use std::sync::Arc;
use tintype_core::{BlobStore, Catalog, CatalogError};

/// Opens the catalog named by `url` (`sqlite://PATH` or `postgres://…`)
/// and brings its schema up to date.
pub async fn open_catalog(url: &str) -> Result<Arc<dyn Catalog>, CatalogError> {
    Ok(Arc::new(SqlCatalog::connect(url).await?))
}

/// For `tintype serve` at start: removes what crashed processes left in
/// the blob store's staging area (a directory store's `incoming/`; an S3
/// store stages nothing on disk). Returns how many entries went.
pub async fn remove_stale_staging(spec: &str) -> Result<u64, String> {
    if spec.starts_with("s3://") {
        return Ok(0);
    }
    let path = spec.strip_prefix("file://").unwrap_or(spec);
    let store = DirBlobStore::open(Path::new(path))
        .await
        .map_err(|e| format!("blob directory {path}: {e}"))?;
    let swept = store
        .remove_stale_staging()
        .await
        .map_err(|e| format!("blob directory {path}: {e}"))?;
    Ok(swept.removed)
}

/// Opens the blob store named by `spec`: a directory path (optionally
/// `file://`), or an `s3://` URL.
pub async fn open_blob_store(spec: &str) -> Result<Arc<dyn BlobStore>, String> {
    if spec.starts_with("s3://") {
        return Ok(Arc::new(S3BlobStore::open(spec)?));
    }
    let path = spec.strip_prefix("file://").unwrap_or(spec);
    let store = DirBlobStore::open(Path::new(path))
        .await
        .map_err(|e| format!("blob directory {path}: {e}"))?;
    Ok(Arc::new(store))
}

/// Creates a new, empty database named `name` (lower-case letters, digits
/// and `_`, at most 63) on the PostgreSQL server that `url` names, and
/// returns the URL of the new database: for tests and benchmarks that need
/// a catalog of their own on a shared server.
pub async fn create_postgres_database(url: &str, name: &str) -> Result<String, CatalogError> {
    use sqlx::Connection;
    let valid = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit();
    if !valid {
        return Err(CatalogError::database(format!(
            "not a plain database name: {name:?}"
        )));
    }
    let mut u =
        url::Url::parse(url).map_err(|e| CatalogError::database(format!("database URL: {e}")))?;
    let db = |e: sqlx::Error| CatalogError::database(e);
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(db)?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(db)?;
    let _ = conn.close().await;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}
