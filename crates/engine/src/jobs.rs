use crate::Engine;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tintype_core::{now, CoreError, Job, JobCounts, JobState, NewJob};

/// What this process's job workers are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum WorkerStop {
    Run,
    /// Claim nothing more; finish the running jobs.
    Drain,
    /// Give the running jobs back to the queue now.
    Abandon,
}

/// Resolves once the workers are told `at_least`.
async fn told(rx: &mut tokio::sync::watch::Receiver<WorkerStop>, at_least: WorkerStop) {
    if rx.wait_for(|s| *s >= at_least).await.is_err() {
        // The engine is gone: nothing will ever say so.
        std::future::pending::<()>().await;
    }
}

/// What a job's run came to.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    Done,
    /// Try again later (exponential backoff), until the attempts run out.
    Retry(String),
    /// Give up now, recording the error.
    Fail(String),
}

/// Runs jobs of one kind. Dialects may register their own kinds.
#[async_trait]
pub trait JobHandler: Send + Sync {
    async fn run(&self, engine: &Arc<Engine>, job: &Job) -> JobOutcome;
}

impl Engine {
    pub fn register_handler(&self, kind: &str, handler: Arc<dyn JobHandler>) {
        if let Ok(mut h) = self.handlers.write() {
            h.insert(kind.to_string(), handler);
        }
    }

    fn kinds(&self) -> Vec<String> {
        self.handlers
            .read()
            .map(|h| h.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds a job to the durable queue. With a dedup key, at most one queued
    /// job per key exists (a job already running does not absorb new work).
    pub async fn enqueue(
        &self,
        kind: &str,
        payload: serde_json::Value,
        delay: Option<Duration>,
        dedup_key: Option<String>,
    ) -> Result<i64, CoreError> {
        let run_at =
            now() + chrono::Duration::from_std(delay.unwrap_or_default()).unwrap_or_default();
        let id = self
            .catalog
            .enqueue(&NewJob {
                kind: kind.to_string(),
                payload,
                run_at,
                max_attempts: self.config.job_max_attempts,
                dedup_key,
            })
            .await?;
        self.notify.notify_waiters();
        Ok(id)
    }

    pub async fn job(&self, id: i64) -> Result<Option<Job>, CoreError> {
        Ok(self.catalog.job(id).await?)
    }

    pub async fn job_counts(&self) -> Result<JobCounts, CoreError> {
        Ok(self.catalog.job_counts().await?)
    }

    /// Jobs newest first, of one state or all, below `before_id` (the next
    /// page), at most `limit` (1..=1000).
    pub async fn jobs_by_state(
        &self,
        state: Option<JobState>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Job>, CoreError> {
        Ok(self
            .catalog
            .jobs_by_state(state, before_id, limit.clamp(1, 1000))
            .await?)
    }

    /// Puts a failed job back in the queue with its attempts reset and
    /// wakes the workers; false when the job is not failed.
    pub async fn retry_job(&self, id: i64) -> Result<bool, CoreError> {
        let retried = self.catalog.retry_job(id).await?;
        if retried {
            self.notify.notify_waiters();
        }
        Ok(retried)
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exp = attempts.clamp(1, 16) as u32 - 1;
        self.config
            .job_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(Duration::from_secs(3600))
    }

    /// Claims and runs one due job. Returns whether there was one.
    pub async fn run_one(self: &Arc<Self>, worker: &str) -> Result<bool, CoreError> {
        let mut stop = self.stop.subscribe();
        if *stop.borrow() >= WorkerStop::Drain {
            return Ok(false);
        }
        let kinds = self.kinds();
        let lease = self.config.job_lease;
        let lease_until = now() + chrono::Duration::from_std(lease).unwrap_or_default();
        let Some(job) = self.catalog.claim_job(worker, &kinds, lease_until).await? else {
            return Ok(false);
        };
        let handler = self
            .handlers
            .read()
            .ok()
            .and_then(|h| h.get(&job.kind).cloned());
        let Some(handler) = handler else {
            self.catalog
                .fail_job(job.id, worker, "no handler for this kind", None)
                .await?;
            return Ok(true);
        };
        tracing::debug!(job = job.id, kind = %job.kind, attempt = job.attempts, "running job");
        // Keep the lease while the job runs.
        let hb_engine = self.clone();
        let hb_worker = worker.to_string();
        let hb_id = job.id;
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let until = now() + chrono::Duration::from_std(lease).unwrap_or_default();
                if !matches!(
                    hb_engine
                        .catalog
                        .extend_lease(hb_id, &hb_worker, until)
                        .await,
                    Ok(true)
                ) {
                    break;
                }
            }
        });
        let run_engine = self.clone();
        let run_job = job.clone();
        let mut task = tokio::spawn(async move { handler.run(&run_engine, &run_job).await });
        let outcome = tokio::select! {
            r = &mut task => match r {
                Ok(o) => o,
                Err(e) => {
                    if e.is_panic() {
                        self.metrics.panics.inc();
                    }
                    JobOutcome::Retry(format!("the job panicked: {e}"))
                }
            },
            () = told(&mut stop, WorkerStop::Abandon) => {
                // Shutting down past the grace period: another worker (on
                // this node after a restart, or another node) takes the job
                // at once, without waiting for the lease to run out.
                task.abort();
                heartbeat.abort();
                let released = self.catalog.release_job(job.id, worker).await?;
                self.metrics.jobs.with_label_values(&[job.kind.as_str(), "released"]).inc();
                tracing::info!(job = job.id, kind = %job.kind, released, "job given back at shutdown");
                return Ok(false);
            }
        };
        heartbeat.abort();
        match outcome {
            JobOutcome::Done => {
                self.catalog.complete_job(job.id, worker).await?;
                self.metrics
                    .jobs
                    .with_label_values(&[job.kind.as_str(), "done"])
                    .inc();
            }
            JobOutcome::Retry(err) if job.attempts < job.max_attempts => {
                let at = now()
                    + chrono::Duration::from_std(self.backoff(job.attempts)).unwrap_or_default();
                tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, "job failed, retrying: {err}");
                self.catalog
                    .fail_job(job.id, worker, &err, Some(at))
                    .await?;
                self.metrics
                    .jobs
                    .with_label_values(&[job.kind.as_str(), "retry"])
                    .inc();
            }
            JobOutcome::Retry(err) | JobOutcome::Fail(err) => {
                tracing::warn!(job = job.id, kind = %job.kind, "job failed for good: {err}");
                self.catalog.fail_job(job.id, worker, &err, None).await?;
                self.metrics
                    .jobs
                    .with_label_values(&[job.kind.as_str(), "failed"])
                    .inc();
            }
        }
        Ok(true)
    }

    /// Starts this process's workers. They run until [`Engine::stop_workers`]
    /// (or until the runtime stops).
    pub fn start_workers(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        (0..self.config.workers)
            .map(|n| {
                let engine = self.clone();
                let worker = format!("{}-{n}", self.worker_id);
                let mut stop = self.stop.subscribe();
                tokio::spawn(async move {
                    while *stop.borrow() == WorkerStop::Run {
                        match engine.run_one(&worker).await {
                            Ok(true) => continue,
                            Ok(false) => {}
                            Err(e) => tracing::error!("job worker: {e:?}"),
                        }
                        tokio::select! {
                            _ = tokio::time::timeout(
                                engine.config.poll_interval,
                                engine.notify.notified(),
                            ) => {}
                            () = told(&mut stop, WorkerStop::Drain) => {}
                        }
                    }
                })
            })
            .collect()
    }

    /// From now on the workers claim no new job (the first step of a
    /// graceful shutdown; idempotent).
    pub fn drain_workers(&self) {
        self.stop.send_if_modified(|s| {
            let was = *s;
            *s = (*s).max(WorkerStop::Drain);
            *s != was
        });
    }

    /// Stops the workers: no new job is claimed, running jobs may finish
    /// until `deadline`, and those still running then are aborted and
    /// given back to the queue (due at once, the attempt not counted).
    pub async fn stop_workers(
        &self,
        workers: Vec<tokio::task::JoinHandle<()>>,
        deadline: tokio::time::Instant,
    ) {
        self.drain_workers();
        let mut all = futures::future::join_all(workers);
        if tokio::time::timeout_at(deadline, &mut all).await.is_err() {
            self.stop.send_replace(WorkerStop::Abandon);
            // Releasing is one catalog update per running job.
            if tokio::time::timeout(Duration::from_secs(10), all)
                .await
                .is_err()
            {
                tracing::warn!("job workers did not stop; their leases run out by themselves");
            }
        }
    }

    /// Compacts the catalog's search index (see
    /// [`tintype_core::Catalog::tidy_search_index`]); the periodic
    /// [`TIDY_JOB`] does it on a running server.
    pub async fn tidy_search_index(&self) -> Result<(), CoreError> {
        Ok(self.catalog.tidy_search_index().await?)
    }

    /// Enqueues a job of `kind` every `interval` (one live job at a time,
    /// whatever the number of nodes).
    pub fn start_periodic(
        self: &Arc<Self>,
        kind: &str,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let kind = kind.to_string();
        tokio::spawn(async move {
            loop {
                if let Err(e) = engine
                    .enqueue(
                        &kind,
                        serde_json::json!({}),
                        None,
                        Some(format!("periodic:{kind}")),
                    )
                    .await
                {
                    tracing::error!("scheduling {kind}: {e:?}");
                }
                tokio::time::sleep(interval).await;
            }
        })
    }
}

/// The job kind that keeps the catalog's search index compact.
pub const TIDY_JOB: &str = "catalog.tidy";

/// How often a server tidies the search index: at a million names, the
/// SQLite compaction takes about 0.25 s and keeps a one-match search at its
/// 10k cost (1.0 ms fragmented, 0.4 ms compacted).
pub const TIDY_INTERVAL: Duration = Duration::from_secs(600);

pub(crate) struct TidyHandler;

#[async_trait]
impl JobHandler for TidyHandler {
    async fn run(&self, engine: &Arc<Engine>, _job: &Job) -> JobOutcome {
        match engine.tidy_search_index().await {
            Ok(()) => JobOutcome::Done,
            Err(e) => JobOutcome::Retry(format!("{e}: {e:?}")),
        }
    }
}
