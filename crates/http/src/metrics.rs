//! Prometheus metrics on `/metrics`, in the text format with `# HELP` and
//! `# TYPE` for every series: HTTP requests and their latency by route
//! template, method and status class, bytes in and out, and the engine's
//! series (jobs by kind and outcome, the queue by state, cache hits and
//! misses, uploads refused by reason, panics caught, renders). Every label
//! value is bounded: a route template or "unmatched", a standard method or
//! "other", a status class.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};
use std::time::Instant;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0,
];

pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    bytes_in: IntCounter,
    bytes_out: IntCounter,
}

/// Registers `c` unless a series of that name is there already (a second
/// server on the same engine in tests): it then counts unreported.
fn register<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    if let Err(e) = r.register(Box::new(c.clone())) {
        tracing::debug!("metrics: {e}");
    }
    c
}

impl HttpMetrics {
    /// The HTTP series, registered in `registry` (the engine's).
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        Ok(HttpMetrics {
            requests: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "tintype_http_requests_total",
                        "HTTP requests by route template, method and status class.",
                    ),
                    &["route", "method", "status"],
                )?,
            ),
            duration: register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "tintype_http_request_duration_seconds",
                        "Time to the response head, by route template and status class.",
                    )
                    .buckets(BUCKETS.to_vec()),
                    &["route", "status"],
                )?,
            ),
            bytes_in: register(
                registry,
                IntCounter::new(
                    "tintype_http_bytes_in_total",
                    "Request body bytes announced by Content-Length.",
                )?,
            ),
            bytes_out: register(
                registry,
                IntCounter::new("tintype_http_bytes_out_total", "Stored bytes served.")?,
            ),
        })
    }

    pub fn add_bytes_out(&self, n: u64) {
        self.bytes_out.inc_by(n);
    }
}

/// A method as a label: the standard ones by name, any other as "other"
/// (a client must not be able to make new series).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(s: u16) -> &'static str {
    match s {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // The route template (an Arc inside) and static labels: no allocation
    // per request.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    if let Some(n) = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
    {
        state.metrics.bytes_in.inc_by(n);
    }
    let start = Instant::now();
    let resp = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", |p| p.as_str());
    let status = status_class(resp.status().as_u16());
    let m = &state.metrics;
    m.requests.with_label_values(&[route, method, status]).inc();
    m.duration
        .with_label_values(&[route, status])
        .observe(start.elapsed().as_secs_f64());
    resp
}

pub(crate) async fn render(state: &AppState) -> String {
    let e = &state.engine.metrics;
    if let Ok(c) = state.engine.job_counts().await {
        for (s, n) in [
            ("queued", c.queued),
            ("running", c.running),
            ("done", c.done),
            ("failed", c.failed),
        ] {
            e.queue.with_label_values(&[s]).set(n);
        }
    }
    match state.engine.stored_bytes().await {
        Ok(n) => e.stored_bytes.set(n),
        Err(err) => tracing::warn!("metrics: stored bytes: {err}"),
    }
    let mut out = Vec::new();
    if let Err(err) = TextEncoder::new().encode(&e.registry.gather(), &mut out) {
        tracing::error!("metrics: {err}");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&Method::GET), "GET");
        let odd = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&odd), "other");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(418), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(999), "5xx");
    }
}
