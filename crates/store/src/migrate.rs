//! `tintype migrate`: copies a whole library from one catalog and blob
//! store to another (SQLite + directory -> PostgreSQL + S3, or back).
//!
//! 1. Every blob the source catalog references (images and variants) is
//!    copied through a temporary file, its SHA-256 checked on the way out
//!    of the source and again when read back from the target. Blobs the
//!    target has already are verified the same way and not copied again,
//!    so an interrupted migration can simply be run again.
//! 2. The catalog rows (users, tokens, images, variants, records, jobs) are
//!    copied with their ids in one transaction on the target: it gets all
//!    of them or none. The target catalog must be empty. Queued jobs come
//!    along; jobs that were running are queued again, without their lease.

use crate::sql::{Backend, SqlCatalog, Stmt};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::path::{Path, PathBuf};
use thiserror::Error;
use tintype_core::{BlobError, BlobStore};
use tokio::io::AsyncWriteExt;

#[derive(Debug, Error)]
pub enum MigrateError {
    #[error("the target catalog is not empty ({0}); migrate into a new database")]
    TargetNotEmpty(String),
    #[error("blob {0} is referenced by the catalog but missing from the source blob store")]
    MissingBlob(String),
    #[error("blob {sha256} is corrupt in the {side} blob store (its content hashes to {actual})")]
    CorruptBlob {
        sha256: String,
        side: &'static str,
        actual: String,
    },
    #[error("source catalog: {0}")]
    Source(sqlx::Error),
    #[error("target catalog: {0}")]
    Target(sqlx::Error),
    #[error("blob {sha256}: {error}")]
    Blob { sha256: String, error: BlobError },
    #[error("temporary file: {0}")]
    Io(#[from] std::io::Error),
}

/// What `migrate` is doing, for a progress display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A blob is in the target and verified (`copied` false: it was there).
    Blob {
        done: u64,
        total: u64,
        sha256: String,
        copied: bool,
    },
    /// Rows of a catalog table copied so far.
    Rows { table: &'static str, copied: u64 },
}

/// What was copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    pub users: u64,
    pub tokens: u64,
    pub images: u64,
    pub variants: u64,
    pub records: u64,
    pub jobs: u64,
    /// Blobs copied into the target.
    pub blobs_copied: u64,
    /// Blobs the target had already (verified, not copied).
    pub blobs_present: u64,
    pub blob_bytes_copied: u64,
}

#[derive(Clone, Copy)]
enum Ty {
    Int,
    Text,
    Float,
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Int(Option<i64>),
    Text(Option<String>),
    Float(Option<f64>),
}

struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Ty)],
    /// The primary key, for keyset paging (one or two columns).
    key: &'static [&'static str],
    /// The serial column whose PostgreSQL sequence must follow the ids.
    serial: Option<&'static str>,
}

use Ty::{Float, Int, Text};

const TABLES: &[Table] = &[
    Table {
        name: "users",
        columns: &[
            ("id", Int),
            ("name", Text),
            ("email", Text),
            ("created_at", Int),
            ("images_per_day", Int),
            ("profile_image_id", Text),
            ("webhook_secret", Text),
        ],
        key: &["id"],
        serial: Some("id"),
    },
    Table {
        name: "tokens",
        columns: &[
            ("id", Text),
            ("user_id", Int),
            ("secret_hash", Text),
            ("scopes", Text),
            ("created_at", Int),
            ("revoked", Int),
        ],
        key: &["id"],
        serial: None,
    },
    Table {
        name: "images",
        columns: &[
            ("seq", Int),
            ("id", Text),
            ("owner_id", Int),
            ("name", Text),
            ("sha256", Text),
            ("size", Int),
            ("kind", Text),
            ("format", Text),
            ("content_type", Text),
            ("width", Int),
            ("height", Int),
            ("orientation", Int),
            ("exif", Text),
            ("latitude", Float),
            ("longitude", Float),
            ("metadata", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("processed_at", Int),
        ],
        key: &["seq"],
        serial: Some("seq"),
    },
    Table {
        name: "variants",
        columns: &[
            ("image_id", Text),
            ("preset", Text),
            ("sha256", Text),
            ("content_type", Text),
            ("width", Int),
            ("height", Int),
            ("size", Int),
            ("created_at", Int),
        ],
        key: &["image_id", "preset"],
        serial: None,
    },
    Table {
        name: "records",
        columns: &[
            ("seq", Int),
            ("scope", Text),
            ("key", Text),
            ("owner_id", Int),
            ("image_id", Text),
            ("data", Text),
            ("created_at", Int),
            ("updated_at", Int),
            ("skey", Text),
            ("skey2", Text),
            ("ref_id", Int),
            ("sort_at", Int),
            ("version", Int),
        ],
        key: &["seq"],
        serial: Some("seq"),
    },
    Table {
        name: "jobs",
        columns: &[
            ("id", Int),
            ("kind", Text),
            ("payload", Text),
            ("state", Text),
            ("attempts", Int),
            ("max_attempts", Int),
            ("run_at", Int),
            ("lease_until", Int),
            ("locked_by", Text),
            ("last_error", Text),
            ("dedup_key", Text),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        key: &["id"],
        serial: Some("id"),
    },
];

const PAGE: i64 = 500;

fn read_row(t: &Table, r: &AnyRow) -> Result<Vec<Val>, sqlx::Error> {
    t.columns
        .iter()
        .map(|(c, ty)| {
            Ok(match ty {
                Int => Val::Int(r.try_get::<Option<i64>, _>(*c)?),
                Text => Val::Text(r.try_get::<Option<String>, _>(*c)?),
                Float => Val::Float(r.try_get::<Option<f64>, _>(*c)?),
            })
        })
        .collect()
}

/// A job that was running on the source runs again on the target.
fn requeue_running(t: &Table, row: &mut [Val]) {
    if t.name != "jobs" {
        return;
    }
    let idx = |name: &str| t.columns.iter().position(|(c, _)| *c == name);
    let (Some(state), Some(lease), Some(locked)) =
        (idx("state"), idx("lease_until"), idx("locked_by"))
    else {
        return;
    };
    if row[state] == Val::Text(Some("running".into())) {
        row[state] = Val::Text(Some("queued".into()));
        row[lease] = Val::Int(None);
        row[locked] = Val::Text(None);
    }
}

/// Appends a placeholder for `v` and binds it (a missing value is NULL).
fn push_val(q: Stmt<'static>, v: Option<&Val>) -> Stmt<'static> {
    match v {
        Some(Val::Int(x)) => q.push_bind(*x),
        Some(Val::Text(x)) => q.push_bind(x.clone()),
        Some(Val::Float(x)) => q.push_bind(*x),
        None => q.push("NULL"),
    }
}

/// A directory removed again when dropped.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Copies the whole library from one catalog and blob store to another;
/// see the module documentation. `progress` is called as the work goes.
pub async fn migrate(
    from_catalog: &SqlCatalog,
    from_blobs: &dyn BlobStore,
    to_catalog: &SqlCatalog,
    to_blobs: &dyn BlobStore,
    mut progress: impl FnMut(Progress) + Send,
) -> Result<MigrateReport, MigrateError> {
    let mut report = MigrateReport::default();
    let busy = target_rows(to_catalog).await?;
    if !busy.is_empty() {
        return Err(MigrateError::TargetNotEmpty(busy));
    }

    // 1. Blobs.
    let shas = referenced_blobs(from_catalog).await?;
    let scratch = ScratchDir(
        std::env::temp_dir().join(format!("tintype-migrate-{}", uuid::Uuid::new_v4().simple())),
    );
    tokio::fs::create_dir_all(&scratch.0).await?;
    let total = shas.len() as u64;
    for (i, sha) in shas.into_iter().enumerate() {
        let copied = copy_blob(&sha, from_blobs, to_blobs, &scratch.0, &mut report).await?;
        progress(Progress::Blob {
            done: i as u64 + 1,
            total,
            sha256: sha,
            copied,
        });
    }

    // 2. Catalog rows, all or nothing.
    let mut tx = to_catalog
        .pool
        .begin()
        .await
        .map_err(MigrateError::Target)?;
    for t in TABLES {
        let n = copy_table(t, from_catalog, to_catalog, &mut tx, &mut progress).await?;
        match t.name {
            "users" => report.users = n,
            "tokens" => report.tokens = n,
            "images" => report.images = n,
            "variants" => report.variants = n,
            "records" => report.records = n,
            _ => report.jobs = n,
        }
    }
    if to_catalog.backend == Backend::Postgres {
        for t in TABLES {
            if let Some(col) = t.serial {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', '{1}'), COALESCE((SELECT MAX({1}) FROM {0}), 0) + 1, false)",
                    t.name, col
                );
                sqlx::query(&sql)
                    .execute(&mut *tx)
                    .await
                    .map_err(MigrateError::Target)?;
            }
        }
    }
    tx.commit().await.map_err(MigrateError::Target)?;
    Ok(report)
}

/// Names the tables of the target that have rows already ("" if none).
async fn target_rows(to: &SqlCatalog) -> Result<String, MigrateError> {
    let mut busy = Vec::new();
    for t in TABLES {
        let r = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {}", t.name))
            .fetch_one(&to.pool)
            .await
            .map_err(MigrateError::Target)?;
        let n: i64 = r.try_get("n").map_err(MigrateError::Target)?;
        if n > 0 {
            busy.push(format!("{} {}", n, t.name));
        }
    }
    Ok(busy.join(", "))
}

/// Every blob the catalog references, each once.
async fn referenced_blobs(from: &SqlCatalog) -> Result<Vec<String>, MigrateError> {
    let rows =
        sqlx::query("SELECT sha256 FROM images UNION SELECT sha256 FROM variants ORDER BY sha256")
            .fetch_all(&from.pool)
            .await
            .map_err(MigrateError::Source)?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("sha256"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(MigrateError::Source)
}

/// Streams a blob from a store, hashing it; with `into`, also writes it
/// there. Returns the hex SHA-256 and the size.
async fn hash_blob(
    store: &dyn BlobStore,
    sha256: &str,
    mut into: Option<&mut tokio::fs::File>,
) -> Result<(String, u64), MigrateError> {
    let blob_err = |error| MigrateError::Blob {
        sha256: sha256.to_string(),
        error,
    };
    let mut stream = store.get(sha256, None).await.map_err(blob_err)?;
    let mut h = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| blob_err(BlobError::Io(e)))?;
        h.update(&chunk);
        size += chunk.len() as u64;
        if let Some(f) = into.as_deref_mut() {
            f.write_all(&chunk).await?;
        }
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Makes sure the target has the blob, whole: copies it when missing and
/// checks its hash there. Returns whether it was copied.
async fn copy_blob(
    sha256: &str,
    from: &dyn BlobStore,
    to: &dyn BlobStore,
    scratch: &Path,
    report: &mut MigrateReport,
) -> Result<bool, MigrateError> {
    let blob_err = |error| MigrateError::Blob {
        sha256: sha256.to_string(),
        error,
    };
    let present = to.head(sha256).await.map_err(blob_err)?.is_some();
    if !present {
        if from.head(sha256).await.map_err(blob_err)?.is_none() {
            return Err(MigrateError::MissingBlob(sha256.to_string()));
        }
        // Through a temporary file of our own: a store may move the file
        // it is given, and the source's own file must stay where it is.
        let temp = scratch.join(sha256);
        let mut f = tokio::fs::File::create(&temp).await?;
        let (actual, size) = hash_blob(from, sha256, Some(&mut f)).await?;
        f.flush().await?;
        f.sync_all().await?;
        drop(f);
        if actual != sha256 {
            let _ = tokio::fs::remove_file(&temp).await;
            return Err(MigrateError::CorruptBlob {
                sha256: sha256.to_string(),
                side: "source",
                actual,
            });
        }
        let put = to.put_file(sha256, &temp, size).await;
        let _ = tokio::fs::remove_file(&temp).await;
        put.map_err(blob_err)?;
        report.blobs_copied += 1;
        report.blob_bytes_copied += size;
    } else {
        report.blobs_present += 1;
    }
    let (actual, _) = hash_blob(to, sha256, None).await?;
    if actual != sha256 {
        return Err(MigrateError::CorruptBlob {
            sha256: sha256.to_string(),
            side: "target",
            actual,
        });
    }
    Ok(!present)
}

async fn copy_table(
    t: &Table,
    from: &SqlCatalog,
    to: &SqlCatalog,
    tx: &mut Transaction<'static, Any>,
    progress: &mut (impl FnMut(Progress) + Send),
) -> Result<u64, MigrateError> {
    let cols: Vec<&str> = t.columns.iter().map(|(c, _)| *c).collect();
    let col_list = cols.join(", ");
    let order = t.key.join(", ");
    let key_idx: Vec<usize> = t
        .key
        .iter()
        .filter_map(|k| cols.iter().position(|c| c == k))
        .collect();
    let mut last_key: Option<Vec<Val>> = None;
    let mut copied = 0u64;
    loop {
        let mut q = from.stmt(&format!("SELECT {col_list} FROM {}", t.name));
        match (&last_key, t.key) {
            (None, _) => {}
            (Some(k), [a]) => {
                q = push_val(q.push(&format!(" WHERE {a} > ")), k.first());
            }
            (Some(k), [a, b, ..]) => {
                q = push_val(q.push(&format!(" WHERE {a} > ")), k.first());
                q = push_val(q.push(&format!(" OR ({a} = ")), k.first());
                q = push_val(q.push(&format!(" AND {b} > ")), k.get(1)).push(")");
            }
            (Some(_), []) => {}
        }
        let rows = q
            .push(&format!(" ORDER BY {order} LIMIT {PAGE}"))
            .fetch_all(&from.pool)
            .await
            .map_err(MigrateError::Source)?;
        if rows.is_empty() {
            break;
        }
        for r in &rows {
            let mut row = read_row(t, r).map_err(MigrateError::Source)?;
            last_key = Some(key_idx.iter().map(|&i| row[i].clone()).collect());
            requeue_running(t, &mut row);
            let mut q = to.stmt(&format!("INSERT INTO {} ({col_list}) VALUES (", t.name));
            for (i, v) in row.into_iter().enumerate() {
                if i > 0 {
                    q = q.push(", ");
                }
                q = push_val(q, Some(&v));
            }
            q.push(")")
                .execute(&mut **tx)
                .await
                .map_err(MigrateError::Target)?;
            copied += 1;
        }
        progress(Progress::Rows {
            table: t.name,
            copied,
        });
        if (rows.len() as i64) < PAGE {
            break;
        }
    }
    Ok(copied)
}
