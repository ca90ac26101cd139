//! Dialect records: the core stores them, the dialect gives them meaning.

use crate::Engine;
use tintype_core::{AlreadyExists, CoreError, NewRecord, Record, UserId};

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
}
