//! tintype-store: the storage backends behind tintype-core's interfaces.
//!
//! - [`SqlCatalog`]: the catalog over SQLite (embedded, WAL mode) or
//!   PostgreSQL (several nodes). One implementation serves both through
//!   sqlx's `Any` driver: the SQL is written once with `?` placeholders and
//!   the few statements that must differ (claiming a job with `FOR UPDATE
//!   SKIP LOCKED`) branch on the backend. Each backend keeps its own
//!   numbered migrations under `migrations/{sqlite,postgres}`.
//! - [`DirBlobStore`]: content-addressed blobs in a local directory
//!   (`sha256/ab/cd/abcd…`), written by fsync + atomic rename.
//! - [`S3BlobStore`]: the same keys in an S3-compatible bucket (AWS S3,
//!   Garage, MinIO), for several nodes sharing one store.
//! - [`migrate()`]: copies a library between backends (`tintype migrate`).
//! - [`open_catalog`] / [`open_blob_store`]: choose a backend from a URL.

mod dir;
pub mod migrate;
mod s3;
mod sql;

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
        return Err(CatalogError::Database(format!(
            "not a plain database name: {name:?}"
        )));
    }
    let mut u =
        url::Url::parse(url).map_err(|e| CatalogError::Database(format!("database URL: {e}")))?;
    let db = |e: sqlx::Error| CatalogError::Database(e.to_string());
    let mut conn = sqlx::PgConnection::connect(url).await.map_err(db)?;
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(db)?;
    let _ = conn.close().await;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}
