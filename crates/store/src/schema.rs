//! The catalog's schema: sqlx's [`Migrator`] over one migrations directory
//! per backend (`migrations/sqlite`, `migrations/postgres`), embedded in
//! the binary.
//!
//! # Design choices
//!
//! - The migrations are embedded with `include_str!` and handed to sqlx's
//!   migrator through a [`MigrationSource`], rather than with the
//!   `migrate!` macro: that macro needs sqlx's proc-macro crate, a large
//!   build for a list of six files.
//! - sqlx's migrator records what it applied in `_sqlx_migrations`, with
//!   each file's checksum, and refuses to start on a catalog whose applied
//!   migration no longer matches its file. Catalogs made before it used
//!   `schema_migrations` (version, applied_at): the first start carries
//!   those versions over, with the checksums of today's files (those files
//!   have not changed since), and drops the old table.
//! - On PostgreSQL the migrator takes its own advisory lock, so several
//!   nodes may start at once. On SQLite several processes starting at once
//!   can meet a busy database: the run is retried a few times.

use crate::sql::Backend;
use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migrate, Migration, MigrationSource, MigrationType, Migrator};
use sqlx::AnyConnection;
use std::borrow::Cow;
use std::time::Duration;
use tintype_core::CatalogError;

/// One migration: its version, description and the SQL of each backend.
struct Step {
    version: i64,
    description: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

macro_rules! step {
    ($version:expr, $file:literal, $description:literal) => {
        Step {
            version: $version,
            description: $description,
            sqlite: include_str!(concat!("../migrations/sqlite/", $file)),
            postgres: include_str!(concat!("../migrations/postgres/", $file)),
        }
    };
}

const STEPS: &[Step] = &[
    step!(1, "0001_init.sql", "init"),
    step!(2, "0002_blob_pins.sql", "blob pins"),
    step!(3, "0003_queryable_records.sql", "queryable records"),
    step!(4, "0004_skey_search.sql", "skey search"),
    step!(5, "0005_jobs_claim.sql", "jobs claim order"),
];

/// The embedded migrations of one backend, as sqlx's migrator reads them.
#[derive(Debug)]
struct Embedded(Backend);

impl Embedded {
    fn migrations(&self) -> Vec<Migration> {
        STEPS
            .iter()
            .map(|s| {
                let sql = match self.0 {
                    Backend::Sqlite => s.sqlite,
                    Backend::Postgres => s.postgres,
                };
                Migration::new(
                    s.version,
                    Cow::Borrowed(s.description),
                    MigrationType::Simple,
                    Cow::Borrowed(sql),
                    false,
                )
            })
            .collect()
    }
}

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { Ok(self.migrations()) })
    }
}

fn error(e: impl std::fmt::Display) -> CatalogError {
    CatalogError::Migration(e.to_string())
}

/// Brings the catalog's schema up to date.
pub(crate) async fn migrate(
    backend: Backend,
    conn: &mut AnyConnection,
) -> Result<(), CatalogError> {
    let migrator = Migrator::new(Embedded(backend)).await.map_err(error)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let run = async {
            carry_over_locked(backend, conn).await?;
            migrator.run_direct(&mut *conn).await.map_err(error)
        };
        match run.await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 5 && backend == Backend::Sqlite => {
                tracing::debug!("catalog migration retried: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// [`carry_over`] under a PostgreSQL advisory lock, so that one of several
/// nodes starting at once does it and the others then find nothing to do.
async fn carry_over_locked(backend: Backend, conn: &mut AnyConnection) -> Result<(), CatalogError> {
    if backend == Backend::Sqlite {
        return carry_over(backend, conn).await;
    }
    sqlx::query("SELECT pg_advisory_lock(727472797065)")
        .execute(&mut *conn)
        .await
        .map_err(error)?;
    let result = carry_over(backend, conn).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock(727472797065)")
        .execute(&mut *conn)
        .await;
    result?;
    unlocked.map(|_| ()).map_err(error)
}

/// Records the versions a catalog applied under the old
/// `schema_migrations` table as applied in `_sqlx_migrations`, then drops
/// the old table. Nothing to do on a new catalog or one already carried
/// over.
async fn carry_over(backend: Backend, conn: &mut AnyConnection) -> Result<(), CatalogError> {
    use sqlx::{Connection, Row};
    let exists_sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'"
        }
    };
    let found: i64 = sqlx::query(exists_sql)
        .fetch_one(&mut *conn)
        .await
        .and_then(|r| r.try_get(0))
        .map_err(error)?;
    if found == 0 {
        return Ok(());
    }
    conn.ensure_migrations_table().await.map_err(error)?;
    let mut tx = conn.begin().await.map_err(error)?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(error)?
        .iter()
        .map(|r| r.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()
        .map_err(error)?;
    for m in Embedded(backend).migrations() {
        if !applied.contains(&m.version) {
            continue;
        }
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ($1, $2, TRUE, $3, 0) ON CONFLICT (version) DO NOTHING",
        )
        .bind(m.version)
        .bind(m.description.into_owned())
        .bind(m.checksum.into_owned())
        .execute(&mut *tx)
        .await
        .map_err(error)?;
    }
    sqlx::query("DROP TABLE IF EXISTS schema_migrations")
        .execute(&mut *tx)
        .await
        .map_err(error)?;
    tx.commit().await.map_err(error)?;
    tracing::info!(
        versions = ?applied,
        "carried the catalog's applied migrations over to sqlx's migrator"
    );
    Ok(())
}
