use crate::blob::BlobError;
use crate::model::*;
use async_trait::async_trait;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum CatalogError {
    /// The database driver's error, kept as the source.
    #[error("database error: {0}")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(String),
    /// The database has no room to write (disk full).
    #[error("database full: {0}")]
    NoSpace(String),
}

impl CatalogError {
    /// A database error from the driver's error or a message.
    pub fn database(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        CatalogError::Database(e.into())
    }
}

/// The expected outcome of an insert that found its key taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyExists;

/// Position in a newest-first listing of images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageCursor {
    pub created_at_ms: i64,
    pub seq: i64,
}

/// Most ids one batched look-up takes.
pub const MAX_BATCH_IDS: usize = 1000;

/// An upload refused by the images-per-day quota: the quota and the images
/// already created in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsed {
    pub limit: i64,
    pub used: i64,
}

/// What [`Catalog::collect_blob`] did with a blob.
#[derive(Debug)]
pub enum Collected {
    /// An image or a variant references the blob: kept, nothing ran.
    Referenced,
    /// A live pin holds the blob (an upload is committing a row that will
    /// reference it): kept, nothing ran.
    Pinned,
    /// Neither: the delete ran, and succeeded.
    Deleted,
    /// Neither: the delete ran, and failed.
    Failed(BlobError),
}

/// The deletion of one blob, run by [`Catalog::collect_blob`] only when the
/// blob may go (a future does nothing until it is awaited).
pub type BlobDelete<'a> = futures::future::BoxFuture<'a, Result<(), BlobError>>;

/// The source of truth for what exists. Implemented for SQLite and
/// PostgreSQL; every implementation passes the same conformance suite.
#[async_trait]
pub trait Catalog: Send + Sync {
    fn backend_name(&self) -> &'static str;
    async fn ping(&self) -> Result<(), CatalogError>;

    // users
    async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
        webhook_secret: &str,
    ) -> Result<Result<User, AlreadyExists>, CatalogError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, CatalogError>;
    async fn user_by_name(&self, name: &str) -> Result<Option<User>, CatalogError>;
    async fn list_users(&self) -> Result<Vec<User>, CatalogError>;
    async fn count_users(&self) -> Result<i64, CatalogError>;
    async fn set_quota(&self, id: UserId, images_per_day: i64) -> Result<bool, CatalogError>;
    async fn set_profile_image(
        &self,
        id: UserId,
        image_id: Option<&str>,
    ) -> Result<bool, CatalogError>;

    // tokens
    async fn create_token(&self, token: &Token, secret_hash: &str) -> Result<(), CatalogError>;
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>, CatalogError>;
    async fn list_tokens(&self, user: UserId) -> Result<Vec<Token>, CatalogError>;
    async fn revoke_token(&self, token_id: &str) -> Result<bool, CatalogError>;

    // images
    async fn insert_image(&self, image: &NewImage) -> Result<Image, CatalogError>;
    /// Inserts the image if its owner has fewer than their images-per-day
    /// quota of images created since `since` (always when the quota is 0).
    /// The count and the insert are one transaction that holds the owner's
    /// row, so concurrent uploads, on one node or several, never overrun
    /// the quota. `Ok(Err(..))`: refused, nothing written.
    async fn insert_image_within_quota(
        &self,
        image: &NewImage,
        since: Timestamp,
    ) -> Result<Result<Image, QuotaUsed>, CatalogError>;
    async fn image_by_id(&self, id: &str) -> Result<Option<Image>, CatalogError>;
    async fn image_by_seq(&self, seq: i64) -> Result<Option<Image>, CatalogError>;
    /// The owner's images, newest first, strictly after the cursor.
    async fn list_images(
        &self,
        owner: UserId,
        after: Option<ImageCursor>,
        limit: i64,
    ) -> Result<Vec<Image>, CatalogError>;
    async fn update_image_fields(
        &self,
        id: &str,
        name: Option<Option<&str>>,
        metadata: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<Option<Image>, CatalogError>;
    /// Replaces the bytes of an image in place (same id), dropping its
    /// variants and its processed mark.
    async fn replace_image_content(
        &self,
        id: &str,
        content: &Content,
    ) -> Result<Option<Image>, CatalogError>;
    /// Deletes the image, its variants and the records tied to it, in one
    /// transaction. Returns the SHA-256s of the blobs the delete stopped
    /// referencing (the original's and its variants', each once; others
    /// may still reference them), or `None` when there was no such image.
    async fn delete_image(&self, id: &str) -> Result<Option<Vec<String>>, CatalogError>;
    async fn count_images_since(
        &self,
        owner: UserId,
        since: Timestamp,
    ) -> Result<i64, CatalogError>;
    async fn set_processed(&self, id: &str, at: Option<Timestamp>) -> Result<(), CatalogError>;

    // variants
    async fn put_variant(&self, v: &Variant) -> Result<(), CatalogError>;
    async fn variant(&self, image_id: &str, preset: &str) -> Result<Option<Variant>, CatalogError>;
    async fn variants(&self, image_id: &str) -> Result<Vec<Variant>, CatalogError>;
    /// The variants of several images in one query (at most
    /// [`MAX_BATCH_IDS`] ids), ordered by image then preset.
    async fn variants_of(&self, image_ids: &[String]) -> Result<Vec<Variant>, CatalogError>;
    /// The records of one scope with these keys, in one query (those that
    /// exist, in no particular order).
    async fn records_with_keys(
        &self,
        scope: &str,
        keys: &[String],
    ) -> Result<Vec<Record>, CatalogError>;

    /// Whether any image or variant references the blob.
    async fn blob_referenced(&self, sha256: &str) -> Result<bool, CatalogError>;

    // blob pins: the garbage collection protocol (tintype-store's docs
    // describe it whole)
    /// Pins a blob until `expires_at` or [`Catalog::unpin_blob`], whichever
    /// comes first: [`Catalog::collect_blob`] keeps a pinned blob. Taken
    /// before the writer checks whether the blob exists; waits while a
    /// collection of the same blob is deleting it, so that once this
    /// returns, the blob is either gone for good (the writer stores it
    /// again) or kept until the pin ends. Pinning again with the same id
    /// moves the expiry.
    async fn pin_blob(
        &self,
        sha256: &str,
        pin_id: &str,
        expires_at: Timestamp,
    ) -> Result<(), CatalogError>;
    /// Removes a pin (after the row that references the blob is committed,
    /// or when the upload gave up). Removing a missing pin is a no-op.
    async fn unpin_blob(&self, sha256: &str, pin_id: &str) -> Result<(), CatalogError>;
    /// Removes the pins that expired before `now` (left by writers that
    /// died); returns how many.
    async fn expire_blob_pins(&self, now: Timestamp) -> Result<u64, CatalogError>;
    /// Runs `delete` only when no image or variant references the blob and
    /// no pin unexpired at `now` holds it, and holds the blob's lock from
    /// that check until `delete` has finished, so that no
    /// [`Catalog::pin_blob`] of the blob can complete in between.
    async fn collect_blob(
        &self,
        sha256: &str,
        now: Timestamp,
        delete: BlobDelete<'_>,
    ) -> Result<Collected, CatalogError>;

    /// Every image of every owner, in insertion order (`seq`), strictly
    /// after `after_seq`: for `tintype check`.
    async fn images_after(&self, after_seq: i64, limit: i64) -> Result<Vec<Image>, CatalogError>;
    /// Deletes one variant row; whether it existed.
    async fn delete_variant(&self, image_id: &str, preset: &str) -> Result<bool, CatalogError>;

    // dialect records
    async fn insert_record(
        &self,
        r: &NewRecord,
    ) -> Result<Result<Record, AlreadyExists>, CatalogError>;
    /// Inserts or replaces by (scope, key); the seq and created_at of an
    /// existing record are kept.
    async fn upsert_record(&self, r: &NewRecord) -> Result<Record, CatalogError>;
    async fn record(&self, scope: &str, key: &str) -> Result<Option<Record>, CatalogError>;
    async fn record_by_seq(&self, scope: &str, seq: i64) -> Result<Option<Record>, CatalogError>;
    async fn records_for_image(&self, image_id: &str) -> Result<Vec<Record>, CatalogError>;
    /// Records of a scope (optionally of one owner), oldest first or newest
    /// first, with offset pagination.
    async fn list_records(
        &self,
        scope: &str,
        owner: Option<UserId>,
        newest_first: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Record>, CatalogError>;
    async fn count_records(&self, scope: &str, owner: Option<UserId>) -> Result<i64, CatalogError>;
    async fn delete_record(&self, scope: &str, key: &str) -> Result<bool, CatalogError>;
    /// Replaces a record only if its version is still `version` (an
    /// optimistic update); `None` when it changed or is gone.
    async fn update_record_if(
        &self,
        r: &NewRecord,
        version: i64,
    ) -> Result<Option<Record>, CatalogError>;
    /// Deletes a record only if its version is still `version`; whether it
    /// did.
    async fn delete_record_if(
        &self,
        scope: &str,
        key: &str,
        version: i64,
    ) -> Result<bool, CatalogError>;
    /// One page of the records a query selects, joined with their images,
    /// reading the page (plus the index entries an offset skips), never the
    /// whole set.
    async fn query_records(&self, q: &RecordQuery) -> Result<Vec<RecordRow>, CatalogError>;
    /// How many records a filter selects (counted on an index).
    async fn count_matching(&self, f: &RecordFilter) -> Result<i64, CatalogError>;

    // jobs
    /// Enqueues a job; with a dedup key, returns the existing queued job's id
    /// instead of adding a second one.
    async fn enqueue(&self, job: &NewJob) -> Result<i64, CatalogError>;
    /// Claims the next due job of the given kinds (all kinds when empty):
    /// queued and due, or running with an expired lease.
    async fn claim_job(
        &self,
        worker: &str,
        kinds: &[String],
        lease_until: Timestamp,
    ) -> Result<Option<Job>, CatalogError>;
    async fn extend_lease(
        &self,
        id: i64,
        worker: &str,
        lease_until: Timestamp,
    ) -> Result<bool, CatalogError>;
    async fn complete_job(&self, id: i64, worker: &str) -> Result<bool, CatalogError>;
    /// Gives a running job of `worker` back to the queue, due at once and
    /// its attempt not counted (the worker is stopping, not failing). False
    /// if the job is not `worker`'s running job.
    async fn release_job(&self, id: i64, worker: &str) -> Result<bool, CatalogError>;
    /// Records a failure: requeued at `retry_at`, or failed for good when None.
    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<bool, CatalogError>;
    async fn job(&self, id: i64) -> Result<Option<Job>, CatalogError>;
    async fn job_counts(&self) -> Result<JobCounts, CatalogError>;
    /// Jobs newest first (by id), of one state or of every state, with ids
    /// below `before_id` when given (the next page): for the admin console.
    async fn jobs_by_state(
        &self,
        state: Option<JobState>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Job>, CatalogError>;
    /// Puts a failed job back in the queue, due at once, its attempts and
    /// lease reset (its last error kept until it runs again). False when
    /// the job is not failed.
    async fn retry_job(&self, id: i64) -> Result<bool, CatalogError>;

    // --- totals
    /// The sizes of every original and every variant in the catalog, added
    /// up (a blob that several rows name counts for each). A full scan (no
    /// deduplication: that would sort every row): callers cache it.
    async fn stored_bytes(&self) -> Result<i64, CatalogError>;

    // --- upkeep
    /// Compacts the search index that writes fragment: SQLite merges the
    /// FTS5 segments of the name search into one (a search probes each
    /// segment, so their number grows a search's cost with the catalog);
    /// PostgreSQL has nothing to do (autovacuum merges the trigram index's
    /// pending entries).
    async fn tidy_search_index(&self) -> Result<(), CatalogError>;
}
