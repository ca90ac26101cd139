//! tintype-engine: the use cases, the one place that talks to the catalog
//! and the blob store.
//!
//! Ingest (stream -> temp file -> hash, size check -> probe -> blob ->
//! catalog row), variants (presets rendered by the job queue after an
//! upload, or on demand with single flight), users and tokens, dialect
//! records, the durable job queue with its workers, remote import through
//! the guarded fetcher, webhooks, quotas and garbage collection. Nothing in
//! here knows about HTTP.

mod auth;
mod budget;
pub mod cache;
mod gc;
mod images;
mod ingest;
mod jobs;
pub mod metrics;
mod presets;
mod records;
mod variants;
mod webhook;

pub use auth::NewTokenSecret;
pub use budget::{BudgetConfig, BudgetPermit, DecodeBudget};
pub use gc::{CheckReport, GcCandidate, GcReport, Maintenance, OnProgress, Problem};
pub use images::{BlobRef, ImagePage};
pub use ingest::{Accept, IngestOptions, Staged};
pub use jobs::{JobHandler, JobOutcome, TIDY_INTERVAL, TIDY_JOB};
pub use metrics::EngineMetrics;
pub use presets::{accepted_encodings, negotiate, OutputChoice, Preset, Presets};
pub use webhook::sign_webhook;

pub use tintype_core as core;
pub use tintype_fetch as fetch;
pub use tintype_media as media;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tintype_core::{BlobStore, Catalog};

/// Settings of the engine (the binary fills them from its configuration).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where uploads are streamed before they are complete. Owned by this
    /// process: the binary gives each process a directory of its own.
    pub tmp_dir: PathBuf,
    /// Largest accepted upload in bytes.
    pub max_upload_bytes: u64,
    pub limits: tintype_media::Limits,
    pub presets: Presets,
    /// Number of job workers in this process (0: this node runs no jobs).
    pub workers: usize,
    /// How long a claimed job stays leased before another worker may take it.
    pub job_lease: Duration,
    /// Attempts before a job is marked failed.
    pub job_max_attempts: i64,
    /// Base of the exponential backoff between attempts.
    pub job_backoff: Duration,
    /// How often an idle worker looks for due jobs.
    pub poll_interval: Duration,
    pub fetch: tintype_fetch::FetchPolicy,
    /// Blobs younger than this are never collected (an upload may be about
    /// to reference them).
    pub gc_grace: Duration,
    /// The decode memory budget shared by every render of this process.
    pub decode_budget: BudgetConfig,
    /// A file kept on the data disk and given up when a delete finds the
    /// disk full, so that the delete can commit and free space
    /// ([`Engine::ensure_space_reserve`]). None: no reserve.
    pub space_reserve: Option<PathBuf>,
    /// How long the stored-bytes total ([`Engine::stored_bytes`]) is
    /// reused before the catalog is summed again.
    pub stored_bytes_refresh: Duration,
}

impl EngineConfig {
    pub fn new(tmp_dir: PathBuf) -> Self {
        EngineConfig {
            tmp_dir,
            max_upload_bytes: 10 * 1024 * 1024 * 1024,
            limits: tintype_media::Limits::default(),
            presets: Presets::builtin(),
            workers: 2,
            job_lease: Duration::from_secs(60),
            job_max_attempts: 5,
            job_backoff: Duration::from_secs(2),
            poll_interval: Duration::from_millis(250),
            fetch: tintype_fetch::FetchPolicy::default(),
            gc_grace: Duration::from_secs(3600),
            stored_bytes_refresh: Duration::from_secs(60),
            decode_budget: BudgetConfig::default(),
            space_reserve: None,
        }
    }
}

type Flight = Arc<tokio::sync::OnceCell<Result<tintype_core::Variant, tintype_core::CoreError>>>;

pub struct Engine {
    catalog: Arc<dyn Catalog>,
    blobs: Arc<dyn BlobStore>,
    config: EngineConfig,
    fetcher: tintype_fetch::Fetcher,
    handlers: RwLock<HashMap<String, Arc<dyn JobHandler>>>,
    flights: Mutex<HashMap<(String, String), Flight>>,
    worker_id: String,
    pub metrics: EngineMetrics,
    notify: tokio::sync::Notify,
    budget: DecodeBudget,
    /// Hot-path caches (tokens, images, variants, records, small blobs).
    caches: cache::Caches,
    /// Tells this process's job workers to stop (see [`Engine::stop_workers`]).
    stop: tokio::sync::watch::Sender<jobs::WorkerStop>,
    /// The last stored-bytes total and when it was summed.
    stored_bytes: tokio::sync::Mutex<Option<(std::time::Instant, i64)>>,
}

impl Engine {
    /// Builds the engine and creates its temporary directory. Removes
    /// nothing: other processes (a running server, other admin commands)
    /// may own files there; `tintype serve` sweeps what dead processes
    /// left (tintype-store's `staging` module).
    pub fn new(
        catalog: Arc<dyn Catalog>,
        blobs: Arc<dyn BlobStore>,
        config: EngineConfig,
    ) -> Result<Arc<Self>, tintype_core::CoreError> {
        std::fs::create_dir_all(&config.tmp_dir).map_err(tintype_core::CoreError::internal)?;
        let fetcher = tintype_fetch::Fetcher::new(config.fetch.clone())
            .map_err(tintype_core::CoreError::internal)?;
        let metrics = EngineMetrics::new().map_err(tintype_core::CoreError::internal)?;
        let caches = cache::Caches::new(
            cache::CACHE_ENTRIES,
            cache::CACHE_TTL,
            cache::SMALL_BLOB_MAX,
            cache::SMALL_BLOBS_TOTAL,
            &metrics.cache_lookups,
        );
        let engine = Arc::new(Engine {
            catalog,
            blobs,
            fetcher,
            handlers: RwLock::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            worker_id: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            metrics,
            notify: tokio::sync::Notify::new(),
            stop: tokio::sync::watch::Sender::new(jobs::WorkerStop::Run),
            budget: DecodeBudget::new(config.decode_budget.clone()),
            caches,
            config,
            stored_bytes: tokio::sync::Mutex::new(None),
        });
        engine.register_handler(variants::RENDER_JOB, Arc::new(variants::RenderHandler));
        engine.register_handler(webhook::WEBHOOK_JOB, Arc::new(webhook::WebhookHandler));
        engine.register_handler(jobs::TIDY_JOB, Arc::new(jobs::TidyHandler));
        Ok(engine)
    }

    /// Bytes of the originals and variants in the catalog (a shared blob
    /// counts for each image or variant), summed at most once per
    /// `stored_bytes_refresh` however
    /// often it is asked (one scan of the catalog; concurrent callers wait
    /// for the same one).
    pub async fn stored_bytes(&self) -> Result<i64, tintype_core::CoreError> {
        let mut last = self.stored_bytes.lock().await;
        if let Some((at, n)) = *last {
            if at.elapsed() < self.config.stored_bytes_refresh {
                return Ok(n);
            }
        }
        let n = self.catalog.stored_bytes().await?;
        *last = Some((std::time::Instant::now(), n));
        Ok(n)
    }

    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }
    pub fn fetcher(&self) -> &tintype_fetch::Fetcher {
        &self.fetcher
    }
    /// The decode memory budget every render takes room from.
    pub fn budget(&self) -> &DecodeBudget {
        &self.budget
    }
    /// The hot-path caches (for tests and metrics).
    pub fn caches(&self) -> &cache::Caches {
        &self.caches
    }

    /// Whether the catalog and the blob store answer.
    pub async fn ready(&self) -> Result<(), tintype_core::CoreError> {
        self.catalog.ping().await?;
        self.blobs.ping().await?;
        Ok(())
    }
}

/// A random secret of `bytes` bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// A new image id: UUIDv7 as 32 lowercase hex digits.
pub fn new_image_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}
