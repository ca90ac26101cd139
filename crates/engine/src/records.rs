//! Dialect records: the core stores them, the dialect gives them meaning.

use crate::Engine;
use tintype_core::{AlreadyExists, CoreError, NewRecord, Record, UserId};

impl Engine {
    pub async fn insert_record(
        &self,
        r: &NewRecord,
    ) -> Result<Result<Record, AlreadyExists>, CoreError> {
        Ok(self.catalog.insert_record(r).await?)
    }

    pub async fn put_record(&self, r: &NewRecord) -> Result<Record, CoreError> {
        Ok(self.catalog.upsert_record(r).await?)
    }

    pub async fn record(&self, scope: &str, key: &str) -> Result<Option<Record>, CoreError> {
        Ok(self.catalog.record(scope, key).await?)
    }

    pub async fn record_by_seq(&self, scope: &str, seq: i64) -> Result<Option<Record>, CoreError> {
        Ok(self.catalog.record_by_seq(scope, seq).await?)
    }

    pub async fn records_for_image(&self, image_id: &str) -> Result<Vec<Record>, CoreError> {
        Ok(self.catalog.records_for_image(image_id).await?)
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
        Ok(self.catalog.delete_record(scope, key).await?)
    }
}
