//! Prometheus metrics on `/metrics`, in the text format with `# HELP` and
//! `# TYPE` for every series: HTTP requests and their latency by route
//! template, method and status class, bytes in and out, and the engine's
//! series (jobs by kind and outcome, the queue by state, cache hits and
//! misses, uploads refused by reason, panics caught, renders). Every label
//! value is bounded: a route template or "unmatched", a standard method or
//! "other", a status class.

use crate::AppState;
use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::response::Response;
use axum::routing::Route;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
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
const METHOD_LABELS: [&str; METHODS] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];
const METHODS: usize = 8;

fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

const STATUS_LABELS: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn status_index(s: u16) -> usize {
    match s {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// The metrics of one route, as a layer around each route (applied with
/// `Router::layer`, so it sees the route template the router matched).
/// The label sets a route uses are looked up once and kept with the
/// route: a request counts without hashing labels.
#[derive(Clone)]
pub(crate) struct RouteMetricsLayer {
    pub(crate) metrics: Arc<HttpMetrics>,
}

/// The series of one route template and method, by status class.
#[derive(Default)]
struct Series {
    requests: [OnceLock<IntCounter>; 5],
}

/// The series one route has used so far (an endpoint of a method router
/// also answers HEAD for GET, so each method has its own).
struct RouteSeries {
    /// The template these series are of (the router's shared string).
    route: OnceLock<Arc<str>>,
    methods: [Series; METHODS],
    durations: [OnceLock<Histogram>; 5],
}

impl RouteSeries {
    fn new() -> Self {
        RouteSeries {
            route: OnceLock::new(),
            methods: Default::default(),
            durations: Default::default(),
        }
    }
}

impl tower::Layer<Route> for RouteMetricsLayer {
    type Service = RouteMetrics;

    fn layer(&self, inner: Route) -> RouteMetrics {
        RouteMetrics {
            inner,
            metrics: self.metrics.clone(),
            series: Arc::new(RouteSeries::new()),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RouteMetrics {
    inner: Route,
    metrics: Arc<HttpMetrics>,
    series: Arc<RouteSeries>,
}

impl tower::Service<Request> for RouteMetrics {
    type Response = Response;
    type Error = Infallible;
    type Future = RouteMetricsFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<Request>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, req: Request) -> RouteMetricsFuture {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str())
            .unwrap_or("unmatched");
        // The series are kept for the template this route first saw (the
        // only one it sees, but for a service mounted at several paths).
        let kept = self.series.route.get_or_init(|| Arc::from(route));
        let route_is_kept = **kept == *route;
        let method = method_index(req.method());
        if let Some(n) = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok())
        {
            self.metrics.bytes_in.inc_by(n);
        }
        let label = if route_is_kept {
            None
        } else {
            Some(Arc::<str>::from(route))
        };
        RouteMetricsFuture {
            inner: tower::Service::<Request>::call(&mut self.inner, req),
            metrics: self.metrics.clone(),
            series: self.series.clone(),
            other_route: label,
            method,
            start: Instant::now(),
        }
    }
}

pub(crate) struct RouteMetricsFuture {
    inner: <Route as tower::Service<Request>>::Future,
    metrics: Arc<HttpMetrics>,
    series: Arc<RouteSeries>,
    /// The template when it is not the one the series are kept for.
    other_route: Option<Arc<str>>,
    method: usize,
    start: Instant,
}

impl Future for RouteMetricsFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let resp = match Pin::new(&mut this.inner).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(r)) => r,
            Poll::Ready(Err(never)) => match never {},
        };
        let elapsed = this.start.elapsed().as_secs_f64();
        let status = status_index(resp.status().as_u16());
        let m = &this.metrics;
        match &this.other_route {
            None => {
                let s = &this.series;
                let route = s.route.get().map_or("unmatched", |r| &**r);
                s.methods[this.method].requests[status]
                    .get_or_init(|| {
                        m.requests.with_label_values(&[
                            route,
                            METHOD_LABELS[this.method],
                            STATUS_LABELS[status],
                        ])
                    })
                    .inc();
                s.durations[status]
                    .get_or_init(|| {
                        m.duration
                            .with_label_values(&[route, STATUS_LABELS[status]])
                    })
                    .observe(elapsed);
            }
            Some(route) => {
                m.requests
                    .with_label_values(&[route, METHOD_LABELS[this.method], STATUS_LABELS[status]])
                    .inc();
                m.duration
                    .with_label_values(&[route, STATUS_LABELS[status]])
                    .observe(elapsed);
            }
        }
        Poll::Ready(Ok(resp))
    }
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
        let method_label = |m: &Method| METHOD_LABELS[method_index(m)];
        let status_class = |s: u16| STATUS_LABELS[status_index(s)];
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        let odd = Method::from_bytes(b"BREW").expect("method");
        assert_eq!(method_label(&odd), "other");
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(418), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(999), "5xx");
    }
}
