//! Blob pins and the collection lock: the catalog's half of the garbage
//! collection protocol (described in the crate docs).
//!
//! The blob's lock is what makes a pin and a collection of the same blob
//! exclusive:
//! - PostgreSQL: a transaction-scoped advisory lock keyed by the blob's
//!   first 32 bits (`pg_advisory_xact_lock(CLASS, key)`). Different blobs
//!   sharing a key only wait for each other; the lock ends with the
//!   transaction, also when the connection drops (a node that dies while
//!   collecting leaves nothing behind).
//! - SQLite: the database's write lock. A collection runs in a
//!   `BEGIN IMMEDIATE` transaction; a pin is a write, so it waits for that
//!   transaction to end (the pool's busy timeout bounds the wait).

use crate::sql::{db, Backend, SqlCatalog};
use sqlx::Row;
use tintype_core::*;

/// The first key of the two-key advisory locks taken for blobs (the
/// one-key space, used by the migration lock, does not overlap).
const LOCK_CLASS: i32 = 0x7469_6e74; // "tint"

/// The second advisory lock key of a blob: its first 32 bits.
fn lock_key(sha256: &str) -> Result<i32, CatalogError> {
    if !valid_key(sha256) {
        return Err(CatalogError::database(format!(
            "invalid blob key {sha256:?}"
        )));
    }
    let head = sha256.get(0..8).unwrap_or("0");
    u32::from_str_radix(head, 16)
        .map(|k| k as i32)
        .map_err(|e| CatalogError::database(format!("blob key {sha256:?}: {e}")))
}

/// Takes a blob's advisory lock until the transaction ends (PostgreSQL).
const LOCK_SQL: &str = "SELECT pg_advisory_xact_lock(CAST($1 AS INTEGER), CAST($2 AS INTEGER))";

const UPSERT_PIN: &str = "INSERT INTO blob_pins (sha256, pin_id, expires_at) VALUES ($1, $2, $3) \
     ON CONFLICT (sha256, pin_id) DO UPDATE SET expires_at = excluded.expires_at";

impl SqlCatalog {
    /// A transaction holding the blob's lock: the advisory lock on
    /// PostgreSQL (released when the transaction ends), the write lock on
    /// SQLite. Pins and collections of one blob take turns through it.
    async fn blob_lock(
        &self,
        sha256: &str,
    ) -> Result<sqlx::Transaction<'static, sqlx::Any>, CatalogError> {
        let key = lock_key(sha256)?;
        match self.backend {
            Backend::Postgres => {
                let mut tx = self.pool.begin().await.map_err(db)?;
                self.stmt(LOCK_SQL)
                    .bind(i64::from(LOCK_CLASS))
                    .bind(i64::from(key))
                    .run(&mut *tx)
                    .await?;
                Ok(tx)
            }
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db),
        }
    }

    pub(crate) async fn pin_blob_impl(
        &self,
        sha256: &str,
        pin_id: &str,
        expires_at: Timestamp,
    ) -> Result<(), CatalogError> {
        let mut tx = self.blob_lock(sha256).await?;
        self.stmt(UPSERT_PIN)
            .bind(sha256)
            .bind(pin_id)
            .bind(to_millis(expires_at))
            .run(&mut *tx)
            .await?;
        tx.commit().await.map_err(db)
    }

    pub(crate) async fn unpin_blob_impl(
        &self,
        sha256: &str,
        pin_id: &str,
    ) -> Result<(), CatalogError> {
        self.stmt("DELETE FROM blob_pins WHERE sha256 = $1 AND pin_id = $2")
            .bind(sha256)
            .bind(pin_id)
            .run(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn expire_blob_pins_impl(&self, now: Timestamp) -> Result<u64, CatalogError> {
        self.stmt("DELETE FROM blob_pins WHERE expires_at <= $1")
            .bind(to_millis(now))
            .run(&self.pool)
            .await
    }

    pub(crate) async fn collect_blob_impl(
        &self,
        sha256: &str,
        now: Timestamp,
        delete: BlobDelete<'_>,
    ) -> Result<Collected, CatalogError> {
        let mut tx = self.blob_lock(sha256).await?;
        // One statement, one snapshot taken under the lock: a writer
        // removes its pin only after the row that references the blob is
        // committed, so a snapshot without the pin has the row.
        let r = self.stmt("SELECT (SELECT COUNT(*) FROM images WHERE sha256 = $1) + (SELECT COUNT(*) FROM variants WHERE sha256 = $2) AS refs, \
             (SELECT COUNT(*) FROM blob_pins WHERE sha256 = $3 AND expires_at > $4) AS pins")
        .bind(sha256)
        .bind(sha256)
        .bind(sha256)
        .bind(to_millis(now))
        .fetch_one(&mut *tx)
        .await
        .map_err(db)?;
        let refs: i64 = r
            .try_get("refs")
            .map_err(|e| CatalogError::Corrupt(format!("refs: {e}")))?;
        let pins: i64 = r
            .try_get("pins")
            .map_err(|e| CatalogError::Corrupt(format!("pins: {e}")))?;
        let outcome = if refs > 0 {
            Collected::Referenced
        } else if pins > 0 {
            Collected::Pinned
        } else {
            // Still under the lock: a pin of this blob waits until the
            // delete is done.
            match delete.await {
                Ok(()) => Collected::Deleted,
                Err(e) => Collected::Failed(e),
            }
        };
        // Nothing was written; ending the transaction releases the lock.
        tx.rollback().await.map_err(db)?;
        Ok(outcome)
    }

    pub(crate) async fn images_after_impl(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<Image>, CatalogError> {
        let sql = format!(
            "SELECT {} FROM images WHERE seq > $1 ORDER BY seq LIMIT $2",
            crate::sql::IMAGE_COLS
        );
        self.stmt(&sql)
            .bind(after_seq)
            .bind(limit)
            .all(&self.pool, crate::sql::row_image)
            .await
    }

    pub(crate) async fn delete_variant_impl(
        &self,
        image_id: &str,
        preset: &str,
    ) -> Result<bool, CatalogError> {
        Ok(self
            .stmt("DELETE FROM variants WHERE image_id = $1 AND preset = $2")
            .bind(image_id)
            .bind(preset)
            .run(&self.pool)
            .await?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_come_from_the_first_32_bits() {
        let k = format!("ffffffff{}", "0".repeat(56));
        assert_eq!(lock_key(&k).unwrap(), -1);
        let k = format!("00000001{}", "a".repeat(56));
        assert_eq!(lock_key(&k).unwrap(), 1);
        assert!(lock_key("../x").is_err());
    }
}
