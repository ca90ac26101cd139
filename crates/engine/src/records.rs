//! Dialect records: the core stores them, the dialect gives them meaning.

use crate::Engine;
use tintype_core::{
    AlreadyExists, CoreError, NewRecord, Record, RecordFilter, RecordQuery, RecordRow, UserId,
};

/// Most records one query returns (the largest page of any dialect).
pub const MAX_RECORD_PAGE: i64 = 20_000;

impl Engine {
    pub async fn insert_record(
        &self,
        r: &NewRecord,
    ) -> Result<Result<Record, AlreadyExists>, CoreError> {
        let out = self.catalog.insert_record(r).await;
        self.caches
            .forget_record(&r.scope, &r.key, r.image_id.as_deref());
        Ok(out?)
    }

    pub async fn put_record(&self, r: &NewRecord) -> Result<Record, CoreError> {
        self.caches
            .forget_record(&r.scope, &r.key, r.image_id.as_deref());
        let out = self.catalog.upsert_record(r).await;
        self.caches
            .forget_record(&r.scope, &r.key, r.image_id.as_deref());
        Ok(out?)
    }

    pub async fn record(&self, scope: &str, key: &str) -> Result<Option<Record>, CoreError> {
        let k = (scope.to_string(), key.to_string());
        if let Some(r) = self.caches.records.get(&k) {
            return Ok(Some(r));
        }
        let generation = self.caches.records.generation();
        let r = self.catalog.record(scope, key).await?;
        if let Some(r) = &r {
            self.caches.records.insert(generation, k, r.clone());
        }
        Ok(r)
    }

    pub async fn record_by_seq(&self, scope: &str, seq: i64) -> Result<Option<Record>, CoreError> {
        Ok(self.catalog.record_by_seq(scope, seq).await?)
    }

    pub async fn records_for_image(&self, image_id: &str) -> Result<Vec<Record>, CoreError> {
        if let Some(list) = self.caches.image_records.get(image_id) {
            return Ok(list);
        }
        let generation = self.caches.image_records.generation();
        let list = self.catalog.records_for_image(image_id).await?;
        self.caches
            .image_records
            .insert(generation, image_id.to_string(), list.clone());
        Ok(list)
    }

    pub async fn list_records(
        &self,
        scope: &str,
        owner: Option<UserId>,
        newest_first: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Record>, CoreError> {
        Ok(self
            .catalog
            .list_records(
                scope,
                owner,
                newest_first,
                offset.max(0),
                limit.clamp(0, 100_000),
            )
            .await?)
    }

    pub async fn count_records(
        &self,
        scope: &str,
        owner: Option<UserId>,
    ) -> Result<i64, CoreError> {
        Ok(self.catalog.count_records(scope, owner).await?)
    }

    pub async fn delete_record(&self, scope: &str, key: &str) -> Result<bool, CoreError> {
        self.caches.forget_record(scope, key, None);
        let out = self.catalog.delete_record(scope, key).await;
        self.caches.forget_record(scope, key, None);
        Ok(out?)
    }

    /// Replaces a record if it is still at `version` (optimistic
    /// concurrency); `None` when another writer got there first (or it was
    /// deleted): read it again and retry, or give up.
    pub async fn update_record_if(
        &self,
        r: &NewRecord,
        version: i64,
    ) -> Result<Option<Record>, CoreError> {
        self.caches
            .forget_record(&r.scope, &r.key, r.image_id.as_deref());
        let out = self.catalog.update_record_if(r, version).await;
        self.caches
            .forget_record(&r.scope, &r.key, r.image_id.as_deref());
        Ok(out?)
    }

    /// Deletes a record if it is still at `version`; whether it did.
    pub async fn delete_record_if(
        &self,
        scope: &str,
        key: &str,
        version: i64,
    ) -> Result<bool, CoreError> {
        self.caches.forget_record(scope, key, None);
        let out = self.catalog.delete_record_if(scope, key, version).await;
        self.caches.forget_record(scope, key, None);
        Ok(out?)
    }

    /// Forgets a cached record (after a lost optimistic update, so that the
    /// retry reads the catalog).
    pub fn forget_record(&self, scope: &str, key: &str) {
        self.caches.forget_record(scope, key, None);
    }

    /// One page of records with their images, answered from the catalog's
    /// indexes (see [`RecordQuery`]). The page is at most
    /// [`MAX_RECORD_PAGE`] records.
    pub async fn query_records(&self, q: &RecordQuery) -> Result<Vec<RecordRow>, CoreError> {
        let mut q = q.clone();
        q.limit = q.limit.clamp(0, MAX_RECORD_PAGE);
        q.offset = q.offset.max(0);
        Ok(self.catalog.query_records(&q).await?)
    }

    /// How many records a filter selects.
    pub async fn count_matching(&self, f: &RecordFilter) -> Result<i64, CoreError> {
        Ok(self.catalog.count_matching(f).await?)
    }
}
