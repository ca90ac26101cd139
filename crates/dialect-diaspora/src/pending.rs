//! Pending photos: stored for a post that may never come. A periodic job
//! removes the ones older than the configured time.

use crate::{PENDING_SCOPE, PHOTO_SCOPE};
use async_trait::async_trait;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tintype_engine::core::{now, CoreError, Job, NewRecord};
use tintype_engine::{Engine, JobHandler, JobOutcome};

/// The job kind of the sweep.
pub const SWEEP_JOB: &str = "diaspora.sweep_pending";

/// Pending records read at a time.
const BATCH: i64 = 100;

pub(crate) struct SweepHandler {
    pub ttl: Duration,
}

#[async_trait]
impl JobHandler for SweepHandler {
    async fn run(&self, engine: &Arc<Engine>, _job: &Job) -> JobOutcome {
        match sweep_pending(engine, self.ttl).await {
            Ok(n) => {
                if n > 0 {
                    tracing::info!("diaspora: removed {n} unused pending photos");
                }
                JobOutcome::Done
            }
            Err(e) => JobOutcome::Retry(format!("{e}: {e:?}")),
        }
    }
}

/// Removes the pending photos older than `ttl`, oldest first, and returns
/// how many it removed. A pending photo that is its owner's profile
/// picture is in use: it stops being pending and stays.
pub async fn sweep_pending(engine: &Engine, ttl: Duration) -> Result<usize, CoreError> {
    let Some(cutoff) = chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|d| now().checked_sub_signed(d))
    else {
        // A time to live beyond the calendar: nothing is ever old enough.
        return Ok(0);
    };
    let mut removed = 0;
    // Each record looked at is deleted (with its image or alone), so the
    // oldest remaining one is always at offset 0. The bound guards against
    // a record that cannot be deleted.
    let mut skipped = 0;
    loop {
        let batch = engine
            .list_records(PENDING_SCOPE, None, false, skipped, BATCH)
            .await?;
        if batch.is_empty() {
            return Ok(removed);
        }
        for r in batch {
            if r.created_at > cutoff {
                // Records come oldest first: the rest are younger still.
                return Ok(removed);
            }
            let in_use = match (r.owner_id, r.image_id.as_deref()) {
                (Some(owner), Some(image)) => engine
                    .user_by_id(owner)
                    .await?
                    .and_then(|u| u.profile_image_id)
                    .is_some_and(|p| p == image),
                _ => false,
            };
            let gone = if in_use {
                publish(engine, &r.key, r.owner_id).await?;
                true
            } else if let Some(image) = r.image_id.as_deref() {
                match engine.delete_image(image).await {
                    Ok(()) => {
                        removed += 1;
                        true
                    }
                    Err(CoreError::NotFound) => engine.delete_record(PENDING_SCOPE, &r.key).await?,
                    Err(e) => return Err(e),
                }
            } else {
                engine.delete_record(PENDING_SCOPE, &r.key).await?
            };
            if !gone {
                skipped += 1;
            }
        }
    }
}

/// Marks a photo as no longer pending.
async fn publish(engine: &Engine, guid: &str, owner: Option<i64>) -> Result<(), CoreError> {
    engine.delete_record(PENDING_SCOPE, guid).await?;
    if let Some(rec) = engine.record(PHOTO_SCOPE, guid).await? {
        engine
            .put_record(&NewRecord {
                scope: PHOTO_SCOPE.into(),
                key: guid.to_string(),
                owner_id: owner.or(rec.owner_id),
                image_id: rec.image_id.clone(),
                data: json!({"pending": false}),
                ..NewRecord::default()
            })
            .await?;
    }
    Ok(())
}
