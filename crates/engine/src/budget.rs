//! The decode memory budget: one process-wide bound on the pixel buffers
//! of every decode and encode running at once.
//!
//! Design choices:
//! * The budget is a semaphore whose permits are KiB of memory. A render
//!   first estimates its real allocation from the probe
//!   ([`tintype_media::render_memory`]) and takes that many permits before it
//!   decodes; they are released when the render's buffers are gone.
//! * Waiting is bounded twice: at most `queue` renders wait at once, and
//!   each waits at most `wait`. Past either, the caller gets
//!   [`CoreError::Busy`] (503 with `Retry-After`).
//! * A render that needs more than the whole budget can never run; it is
//!   refused at once with [`CoreError::OverBudget`] (422), so an idle
//!   server never answers 503.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tintype_core::CoreError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Settings of the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Bytes that all pixel buffers of this process may use together.
    pub max_bytes: u64,
    /// How long a render waits for room before answering busy.
    pub wait: Duration,
    /// How many renders may wait at once; more are answered busy at once.
    pub queue: usize,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            max_bytes: 1 << 30,
            wait: Duration::from_secs(30),
            queue: 256,
        }
    }
}

/// Room held by one render; dropping it gives the room back.
#[derive(Debug)]
pub struct BudgetPermit {
    _permit: Option<OwnedSemaphorePermit>,
}

/// The process-wide budget.
#[derive(Debug)]
pub struct DecodeBudget {
    sem: Arc<Semaphore>,
    total_kib: u32,
    config: BudgetConfig,
    waiting: AtomicUsize,
}

/// Semaphore permits are counted in KiB so that a u32 covers 4 TiB.
fn kib(bytes: u64) -> u64 {
    bytes.div_ceil(1024)
}

impl DecodeBudget {
    pub fn new(config: BudgetConfig) -> Self {
        let total_kib = u32::try_from(kib(config.max_bytes)).unwrap_or(u32::MAX);
        DecodeBudget {
            sem: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            config,
            waiting: AtomicUsize::new(0),
        }
    }

    /// The whole budget in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.config.max_bytes
    }

    /// Bytes not held by any render right now.
    pub fn available_bytes(&self) -> u64 {
        self.sem.available_permits() as u64 * 1024
    }

    /// Takes room for a render that allocates `bytes`, waiting in the
    /// bounded queue when the budget is in use.
    pub async fn acquire(&self, bytes: u64) -> Result<BudgetPermit, CoreError> {
        let need = kib(bytes.max(1));
        if need > u64::from(self.total_kib) {
            return Err(CoreError::OverBudget {
                needed: bytes,
                budget: self.config.max_bytes,
            });
        }
        let need = need as u32;
        // The fast path: room now, no queueing.
        if let Ok(p) = self.sem.clone().try_acquire_many_owned(need) {
            return Ok(BudgetPermit { _permit: Some(p) });
        }
        let retry_after = self.config.wait.as_secs().clamp(1, 60);
        let queued = self.waiting.fetch_add(1, Ordering::SeqCst);
        let _leave = Leave(&self.waiting);
        if queued >= self.config.queue {
            return Err(CoreError::Busy {
                retry_after_secs: retry_after,
            });
        }
        match tokio::time::timeout(self.config.wait, self.sem.clone().acquire_many_owned(need))
            .await
        {
            Ok(Ok(p)) => Ok(BudgetPermit { _permit: Some(p) }),
            Ok(Err(_closed)) => Err(CoreError::Internal("the decode budget is closed".into())),
            Err(_elapsed) => Err(CoreError::Busy {
                retry_after_secs: retry_after,
            }),
        }
    }
}

struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max: u64, wait_ms: u64, queue: usize) -> DecodeBudget {
        DecodeBudget::new(BudgetConfig {
            max_bytes: max,
            wait: Duration::from_millis(wait_ms),
            queue,
        })
    }

    #[tokio::test]
    async fn a_render_larger_than_the_budget_is_refused_at_once() {
        let b = budget(1 << 20, 10_000, 4);
        let e = b.acquire((1 << 20) + 4096).await.unwrap_err();
        assert!(
            matches!(e, CoreError::OverBudget { needed, budget } if needed == (1 << 20) + 4096 && budget == 1 << 20)
        );
        // The whole budget fits an idle server.
        assert!(b.acquire(1 << 20).await.is_ok());
    }

    #[tokio::test]
    async fn permits_are_given_back_on_drop() {
        let b = budget(1 << 20, 50, 4);
        let p = b.acquire(700 * 1024).await.unwrap();
        assert_eq!(b.available_bytes(), 324 * 1024);
        let busy = b.acquire(400 * 1024).await.unwrap_err();
        assert!(matches!(busy, CoreError::Busy { .. }), "{busy:?}");
        drop(p);
        assert_eq!(b.available_bytes(), 1 << 20);
        assert!(b.acquire(400 * 1024).await.is_ok());
    }

    #[tokio::test]
    async fn a_waiter_gets_room_when_it_is_freed() {
        let b = Arc::new(budget(1 << 20, 5_000, 4));
        let p = b.acquire(1 << 20).await.unwrap();
        let b2 = b.clone();
        let waiter = tokio::spawn(async move { b2.acquire(1 << 19).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(p);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn past_the_queue_callers_are_busy_at_once() {
        let b = Arc::new(budget(1 << 20, 5_000, 1));
        let _p = b.acquire(1 << 20).await.unwrap();
        let b2 = b.clone();
        let first = tokio::spawn(async move { b2.acquire(1024).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let second = b.acquire(1024).await.unwrap_err();
        assert!(matches!(second, CoreError::Busy { .. }));
        assert!(started.elapsed() < Duration::from_secs(4));
        first.abort();
    }
}
