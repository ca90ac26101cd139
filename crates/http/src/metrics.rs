//! Prometheus metrics: requests by route and status, a latency histogram,
//! bytes in and out, jobs by state, renders.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// (method label, route template, status)
type RequestKey = (&'static str, String, u16);

#[derive(Default)]
pub struct HttpMetrics {
    /// (method, route template, status) → count. Both labels are bounded
    /// (standard methods or "other"; a route template or "unmatched"), so
    /// this stays a short list, scanned without allocating.
    requests: Mutex<Vec<(RequestKey, u64)>>,
    latency: Mutex<([u64; BUCKETS.len()], u64, f64)>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

impl HttpMetrics {
    pub fn add_bytes_out(&self, n: u64) {
        self.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    fn observe(&self, method: &'static str, route: &str, status: u16, secs: f64) {
        if let Ok(mut m) = self.requests.lock() {
            match m
                .iter_mut()
                .find(|((me, r, st), _)| *me == method && *st == status && r == route)
            {
                Some((_, n)) => *n += 1,
                None => m.push(((method, route.to_string(), status), 1)),
            }
        }
        if let Ok(mut l) = self.latency.lock() {
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    l.0[i] += 1;
                }
            }
            l.1 += 1;
            l.2 += secs;
        }
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

pub(crate) async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // The route template (an Arc inside) and a static method label: no
    // allocation per request.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = method_label(req.method());
    if let Some(n) = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
    {
        state.metrics.bytes_in.fetch_add(n, Ordering::Relaxed);
    }
    let start = Instant::now();
    let resp = next.run(req).await;
    state.metrics.observe(
        method,
        route.as_ref().map_or("unmatched", |p| p.as_str()),
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    resp
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub(crate) async fn render(state: &AppState) -> String {
    let m = &state.metrics;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP tintype_http_requests_total HTTP requests by route and status."
    );
    let _ = writeln!(out, "# TYPE tintype_http_requests_total counter");
    let mut requests = m.requests.lock().map(|r| r.clone()).unwrap_or_default();
    requests.sort();
    {
        for ((method, route, status), n) in requests.iter() {
            let _ = writeln!(
                out,
                "tintype_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                esc(method),
                esc(route)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP tintype_http_request_duration_seconds Request latency."
    );
    let _ = writeln!(
        out,
        "# TYPE tintype_http_request_duration_seconds histogram"
    );
    if let Ok(l) = m.latency.lock() {
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "tintype_http_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
                l.0[i]
            );
        }
        let _ = writeln!(
            out,
            "tintype_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
            l.1
        );
        let _ = writeln!(out, "tintype_http_request_duration_seconds_sum {}", l.2);
        let _ = writeln!(out, "tintype_http_request_duration_seconds_count {}", l.1);
    }
    let _ = writeln!(out, "# TYPE tintype_http_bytes_in_total counter");
    let _ = writeln!(
        out,
        "tintype_http_bytes_in_total {}",
        m.bytes_in.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE tintype_http_bytes_out_total counter");
    let _ = writeln!(
        out,
        "tintype_http_bytes_out_total {}",
        m.bytes_out.load(Ordering::Relaxed)
    );
    let e = &state.engine.metrics;
    let _ = writeln!(
        out,
        "# HELP tintype_variant_renders_total Variants rendered."
    );
    let _ = writeln!(out, "# TYPE tintype_variant_renders_total counter");
    let _ = writeln!(
        out,
        "tintype_variant_renders_total {}",
        e.renders.load(Ordering::Relaxed)
    );
    let _ = writeln!(out, "# TYPE tintype_ingested_bytes_total counter");
    let _ = writeln!(
        out,
        "tintype_ingested_bytes_total {}",
        e.ingested_bytes.load(Ordering::Relaxed)
    );
    if let Ok(c) = state.engine.job_counts().await {
        let _ = writeln!(
            out,
            "# HELP tintype_jobs Jobs in the durable queue by state."
        );
        let _ = writeln!(out, "# TYPE tintype_jobs gauge");
        for (s, n) in [
            ("queued", c.queued),
            ("running", c.running),
            ("done", c.done),
            ("failed", c.failed),
        ] {
            let _ = writeln!(out, "tintype_jobs{{state=\"{s}\"}} {n}");
        }
    }
    out
}
