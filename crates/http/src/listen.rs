//! The accept loop: HTTP/1.1 connections served by hyper, with the limits
//! that keep slow or idle clients from holding the server.
//!
//! - At most `max_connections` are open at once. The loop accepts only
//!   while it holds a free slot, so connections past the cap wait in the
//!   kernel's listen backlog rather than being accepted and starved.
//! - A connection that has not sent a whole request head within
//!   `header_timeout` (counted from its first byte, or from the accept) is
//!   closed, and so is one idle between requests for `idle_timeout`.
//! - A request body that sends no byte for `body_timeout` ends in an error
//!   for whoever reads it (an upload's temporary file is then removed by
//!   the engine as the error unwinds).
//! - Each connection gets `TCP_NODELAY`. On shutdown the loop stops
//!   accepting, lets requests in flight finish, and closes idle
//!   connections at once.
//!
//! The watchdog of a connection is not woken by its requests: it sleeps
//! until the deadline it computed, but never longer than the shorter of
//! the head and idle timeouts, and then looks again. A deadline can only
//! move earlier when a new head starts or a request ends, and then it is
//! at least that shorter timeout away, so it is never missed.
//!
//! hyper's own `header_read_timeout` is not used: it also runs while a
//! keep-alive connection waits for its next request, which would make the
//! idle timeout no longer than the head timeout.

use crate::App;
use axum::body::{Body, Bytes, HttpBody};
use axum::http::Request;
use hyper::body::{Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

/// Connection limits of the server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Time to receive a whole request head.
    pub header_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time a request body may go without sending a byte.
    pub body_timeout: Duration,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// After the shutdown signal, how long requests in flight may take to
    /// finish before their connections are dropped.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(60),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

const NONE: u64 = u64::MAX;

/// What the watchdog of one connection knows about it.
struct Clock {
    epoch: Instant,
    /// Requests whose response has not been sent (or dropped) yet.
    in_flight: AtomicUsize,
    /// When the current request head began (ms since `epoch`), or NONE.
    head_since: AtomicU64,
    /// When the connection last became idle (ms since `epoch`).
    idle_since: AtomicU64,
}

impl Clock {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// The instant past which the connection is closed, if any.
    fn deadline(&self, limits: &ServerLimits) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let head = self.head_since.load(Ordering::Acquire);
        let (since, limit) = if head != NONE {
            (head, limits.header_timeout)
        } else {
            (self.idle_since.load(Ordering::Acquire), limits.idle_timeout)
        };
        Some(self.epoch + Duration::from_millis(since) + limit)
    }
}

/// The socket, noting when a new request head starts to arrive.
struct Watched {
    io: TcpStream,
    clock: Arc<Clock>,
    linger: Option<Linger>,
}

/// Lingering close: after an answer given before the request body was read
/// (a refusal of an upload), the client may still be sending. Closing the
/// socket with its bytes unread would reset the connection and lose the
/// answer on the client's side, so the write side is shut first and what
/// still arrives is read and dropped, for a bounded time and amount.
struct Linger {
    deadline: Pin<Box<tokio::time::Sleep>>,
    drained: u64,
}

const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: u64 = 8 * 1024 * 1024;

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let c = &self.clock;
            if c.in_flight.load(Ordering::Acquire) == 0
                && c.head_since.load(Ordering::Acquire) == NONE
            {
                let _ = c.head_since.compare_exchange(
                    NONE,
                    c.now(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
            }
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.linger.is_none() {
            if let Err(e) = std::task::ready!(Pin::new(&mut self.io).poll_shutdown(cx)) {
                return Poll::Ready(Err(e));
            }
            self.linger = Some(Linger {
                deadline: Box::pin(tokio::time::sleep(LINGER_TIME)),
                drained: 0,
            });
        }
        let this = &mut *self;
        let Some(linger) = this.linger.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let mut scratch = [0u8; 16 * 1024];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    linger.drained += buf.filled().len() as u64;
                    if linger.drained > LINGER_BYTES {
                        return Poll::Ready(Ok(()));
                    }
                }
                // End of stream or an error: nothing more will come.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => {
                    return match linger.deadline.as_mut().poll(cx) {
                        Poll::Ready(()) => Poll::Ready(Ok(())),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A request body that fails when no byte arrives for `timeout`. The
/// connection keeps a handle on it, to drain what the handler left unread.
struct TimedBody {
    inner: SharedIncoming,
    timeout: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

type SharedIncoming = Arc<std::sync::Mutex<Incoming>>;

fn lock(b: &SharedIncoming) -> std::sync::MutexGuard<'_, Incoming> {
    b.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Reads and drops what a handler left of its request body (a refusal
/// answered before the upload was read), at most `LINGER_BYTES` within
/// `LINGER_TIME`, so that the client can finish sending, read the answer,
/// and keep its connection. A body read whole costs nothing here.
async fn drain(body: &SharedIncoming) {
    let deadline = tokio::time::Instant::now() + LINGER_TIME;
    let mut drained = 0u64;
    loop {
        let next = std::future::poll_fn(|cx| Pin::new(&mut *lock(body)).poll_frame(cx));
        match tokio::time::timeout_at(deadline, next).await {
            Ok(Some(Ok(frame))) => {
                drained += frame.data_ref().map_or(0, |d| d.len() as u64);
                if drained > LINGER_BYTES {
                    return;
                }
            }
            _ => return,
        }
    }
}

#[derive(Debug)]
struct BodyStalled(Duration);

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the request body sent nothing for {} s",
            self.0.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyStalled {}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut *lock(&this.inner)).poll_frame(cx);
        match polled {
            Poll::Ready(r) => {
                this.timer = None;
                Poll::Ready(r.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if timer.as_mut().poll(cx).is_ready() {
                    this.timer = None;
                    tracing::info!("cut a request body that stalled");
                    return Poll::Ready(Some(Err(Box::new(BodyStalled(timeout)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        lock(&self.inner).is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.inner).size_hint()
    }
}

/// A response body that marks its request done when it is dropped (sent
/// whole, or abandoned with the connection).
struct TrackedBody {
    inner: Body,
    clock: Arc<Clock>,
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        let c = &self.clock;
        c.idle_since.store(c.now(), Ordering::Release);
        c.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown` resolves, then
/// waits for the requests in flight, at most `limits.shutdown_grace`.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: App,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let max = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(max));
    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            s = slots.clone().acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let limits = limits.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            connection(stream, app, limits, stop).await;
            tracing::trace!(%peer, "connection closed");
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot until it is closed.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = max.saturating_sub(slots.available_permits()),
            "connections still busy after the shutdown grace period are dropped"
        );
    }
    Ok(())
}

async fn connection(
    stream: TcpStream,
    app: App,
    limits: Arc<ServerLimits>,
    mut stop: watch::Receiver<bool>,
) {
    let clock = Arc::new(Clock {
        epoch: Instant::now(),
        in_flight: AtomicUsize::new(0),
        // A new connection is reading its first head from the start.
        head_since: AtomicU64::new(0),
        idle_since: AtomicU64::new(0),
    });
    let io = hyper_util::rt::TokioIo::new(Watched {
        io: stream,
        clock: clock.clone(),
        linger: None,
    });
    let svc_clock = clock.clone();
    let body_timeout = limits.body_timeout;
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let clock = svc_clock.clone();
        clock.in_flight.fetch_add(1, Ordering::AcqRel);
        clock.head_since.store(NONE, Ordering::Release);
        let (parts, incoming) = req.into_parts();
        // A request without a body (most GETs) needs no timer and nothing
        // to drain.
        let (body, incoming) = if incoming.is_end_stream() {
            (Body::empty(), None)
        } else {
            let incoming: SharedIncoming = Arc::new(std::sync::Mutex::new(incoming));
            let body = Body::new(TimedBody {
                inner: incoming.clone(),
                timeout: body_timeout,
                timer: None,
            });
            (body, Some(incoming))
        };
        let req = Request::from_parts(parts, body);
        let app = app.clone();
        // Created now, so that the request counts as done however its
        // future ends (answered, or dropped with the connection).
        let guard = TrackedBody {
            inner: Body::empty(),
            clock,
        };
        async move {
            let resp = app.handle(req).await;
            if let Some(incoming) = incoming {
                drain(&incoming).await;
            }
            Ok::<_, std::convert::Infallible>(resp.map(|b| {
                let mut tracked = guard;
                tracked.inner = b;
                tracked
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    // How long the watchdog may sleep without looking again (see the
    // module's comment).
    let recheck = limits
        .header_timeout
        .min(limits.idle_timeout)
        .max(Duration::from_millis(1));
    loop {
        let now = Instant::now();
        let wake = match clock.deadline(&limits) {
            Some(d) => d.min(now + recheck),
            None => now + recheck,
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                if clock.deadline(&limits).is_some_and(|d| Instant::now() >= d) {
                    let reading = clock.head_since.load(Ordering::Acquire) != NONE;
                    tracing::debug!(
                        "closing a connection {}",
                        if reading { "that did not send its request head in time" } else { "idle too long" }
                    );
                    return;
                }
            }
            r = stop.changed(), if !stopping => {
                stopping = true;
                if r.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
