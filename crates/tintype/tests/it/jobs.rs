//! The durable job queue, driven through the engine over a real SQLite file
//! and a real blob directory.

use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tintype_engine::core::{now, Job, JobState};
use tintype_engine::{Engine, EngineConfig, JobHandler, JobOutcome};

struct Fixture {
    engine: Arc<Engine>,
    _dir: tempfile::TempDir,
}

async fn engine() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let catalog = tintype_store::open_catalog(&db).await.expect("catalog");
    let blobs = tintype_store::open_blob_store(&dir.path().join("blobs").display().to_string())
        .await
        .expect("blobs");
    let mut cfg = EngineConfig::new(dir.path().join("tmp"));
    cfg.job_lease = Duration::from_millis(300);
    cfg.job_backoff = Duration::from_millis(20);
    cfg.job_max_attempts = 3;
    cfg.workers = 0;
    let engine = Engine::new(catalog, blobs, cfg).expect("engine");
    Fixture { engine, _dir: dir }
}

/// Counts its runs and answers with a fixed outcome.
struct Scripted {
    runs: AtomicUsize,
    outcome: fn(usize) -> JobOutcome,
}

#[async_trait]
impl JobHandler for Scripted {
    async fn run(&self, _engine: &Arc<Engine>, job: &Job) -> JobOutcome {
        let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
        assert_eq!(job.payload["x"], 42, "the payload reaches the handler");
        (self.outcome)(n)
    }
}

/// Runs due jobs with `worker` until `done` holds for the job, waiting for
/// backoffs and leases in between (bounded, so a stuck queue fails the test).
async fn drive(engine: &Arc<Engine>, worker: &str, id: i64, done: impl Fn(&Job) -> bool) -> Job {
    for _ in 0..1000 {
        let job = engine.job(id).await.unwrap().expect("the job exists");
        if done(&job) {
            return job;
        }
        if !engine.run_one(worker).await.unwrap() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    panic!(
        "job {id} never reached the expected state: {:?}",
        engine.job(id).await.unwrap()
    );
}

#[tokio::test]
async fn a_job_whose_worker_died_runs_again_after_its_lease() {
    let f = engine().await;
    let e = &f.engine;
    let h = Arc::new(Scripted {
        runs: AtomicUsize::new(0),
        outcome: |_| JobOutcome::Done,
    });
    e.register_handler("test.once", h.clone());
    let id = e
        .enqueue("test.once", serde_json::json!({"x": 42}), None, None)
        .await
        .unwrap();

    // A worker claims it and dies at once: a lease in the past, never completed.
    let kinds = vec!["test.once".to_string()];
    let claimed = e
        .catalog()
        .claim_job("dead", &kinds, now() - chrono::Duration::seconds(1))
        .await
        .unwrap()
        .expect("the dead worker claims the job");
    assert_eq!(claimed.id, id);
    assert_eq!(claimed.state, JobState::Running);
    assert_eq!(claimed.attempts, 1);

    // Another job, of another kind, under a live lease: nobody may take it.
    e.register_handler("test.slow", h.clone());
    let id2 = e
        .enqueue("test.slow", serde_json::json!({"x": 42}), None, None)
        .await
        .unwrap();
    let live = e
        .catalog()
        .claim_job(
            "slow",
            &["test.slow".to_string()],
            now() + chrono::Duration::seconds(3600),
        )
        .await
        .unwrap()
        .expect("the second job is claimed");
    assert_eq!(live.id, id2);

    // The dead worker's job is run again by a live worker (and the job
    // under a live lease is left alone).
    let job = drive(e, "alive", id, |j| j.state == JobState::Done).await;
    assert_eq!(job.attempts, 2, "the re-run counts as a second attempt");
    assert_eq!(job.locked_by.as_deref(), Some("alive"));
    assert_eq!(
        h.runs.load(Ordering::SeqCst),
        1,
        "the handler ran exactly once"
    );
    // The dead worker cannot complete or fail it any more.
    assert!(!e.catalog().complete_job(id, "dead").await.unwrap());
    assert!(!e
        .catalog()
        .fail_job(id, "dead", "late", None)
        .await
        .unwrap());
    assert_eq!(e.job(id).await.unwrap().unwrap().state, JobState::Done);
    // The slow worker's job was never stolen.
    let j2 = e.job(id2).await.unwrap().unwrap();
    assert_eq!(
        (j2.state, j2.locked_by.as_deref()),
        (JobState::Running, Some("slow"))
    );
}

#[tokio::test]
async fn a_job_that_keeps_failing_ends_failed_with_its_error() {
    let f = engine().await;
    let e = &f.engine;
    let h = Arc::new(Scripted {
        runs: AtomicUsize::new(0),
        outcome: |n| JobOutcome::Retry(format!("boom #{n}")),
    });
    e.register_handler("test.flaky", h.clone());
    let id = e
        .enqueue("test.flaky", serde_json::json!({"x": 42}), None, None)
        .await
        .unwrap();

    // After the first failure it waits for its backoff, still queued.
    assert!(e.run_one("w").await.unwrap());
    let j = e.job(id).await.unwrap().unwrap();
    assert_eq!((j.state, j.attempts), (JobState::Queued, 1));
    assert_eq!(j.last_error.as_deref(), Some("boom #1"));
    assert!(j.run_at > j.created_at, "the retry is scheduled later");

    let job = drive(e, "w", id, |j| j.state == JobState::Failed).await;
    assert_eq!(job.attempts, 3);
    assert_eq!(job.max_attempts, 3);
    assert_eq!(job.last_error.as_deref(), Some("boom #3"));
    assert_eq!(
        h.runs.load(Ordering::SeqCst),
        3,
        "ran exactly max_attempts times"
    );
    // A failed job is never claimed again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!e.run_one("w").await.unwrap());
    assert_eq!(h.runs.load(Ordering::SeqCst), 3);
    let counts = e.job_counts().await.unwrap();
    assert_eq!((counts.failed, counts.queued, counts.running), (1, 0, 0));
    let ended = |outcome: &str| {
        e.metrics
            .jobs
            .with_label_values(&["test.flaky", outcome])
            .get()
    };
    assert_eq!((ended("retry"), ended("failed"), ended("done")), (2, 1, 0));
}

#[tokio::test]
async fn a_permanent_failure_and_a_panic_are_recorded() {
    let f = engine().await;
    let e = &f.engine;
    e.register_handler(
        "test.fail",
        Arc::new(Scripted {
            runs: AtomicUsize::new(0),
            outcome: |_| JobOutcome::Fail("bad input".into()),
        }),
    );
    e.register_handler(
        "test.panic",
        Arc::new(Scripted {
            runs: AtomicUsize::new(0),
            outcome: |n| {
                if n < 2 {
                    panic!("handler bug")
                } else {
                    JobOutcome::Done
                }
            },
        }),
    );
    let fail = e
        .enqueue("test.fail", serde_json::json!({"x": 42}), None, None)
        .await
        .unwrap();
    let job = drive(e, "w", fail, |j| j.state == JobState::Failed).await;
    assert_eq!(job.attempts, 1, "Fail gives up at once");
    assert_eq!(job.last_error.as_deref(), Some("bad input"));

    let p = e
        .enqueue("test.panic", serde_json::json!({"x": 42}), None, None)
        .await
        .unwrap();
    let job = drive(e, "w", p, |j| j.state == JobState::Done).await;
    assert_eq!(job.attempts, 2, "a panicking handler is retried");
}

#[tokio::test]
async fn a_dedup_key_keeps_one_live_job() {
    let f = engine().await;
    let e = &f.engine;
    e.register_handler(
        "test.d",
        Arc::new(Scripted {
            runs: AtomicUsize::new(0),
            outcome: |_| JobOutcome::Done,
        }),
    );
    let a = e
        .enqueue(
            "test.d",
            serde_json::json!({"x": 42}),
            None,
            Some("k".into()),
        )
        .await
        .unwrap();
    let b = e
        .enqueue(
            "test.d",
            serde_json::json!({"x": 42}),
            None,
            Some("k".into()),
        )
        .await
        .unwrap();
    assert_eq!(a, b);
    drive(e, "w", a, |j| j.state == JobState::Done).await;
    let c = e
        .enqueue(
            "test.d",
            serde_json::json!({"x": 42}),
            None,
            Some("k".into()),
        )
        .await
        .unwrap();
    assert_ne!(a, c, "a finished job does not block a new one");
}
