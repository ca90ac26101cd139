//! tintype-http: the HTTP skeleton every API shares.
//!
//! State ([`AppState`]), token extraction from every place a dialect may
//! read one ([`auth`]), byte serving with ETag, Last-Modified, Range and
//! caching ([`serve`]), request metrics, tracing, limits, health checks and
//! the native API. Dialects are routers over the same state, merged in
//! [`app`]; each renders errors in its own envelope.

pub mod auth;
pub mod extract;
pub mod limits;
mod listen;
mod metrics;
mod native;
mod problem;
pub mod redact;
pub mod request_id;
pub mod serve;
pub mod wire;

pub use listen::{serve_with, ServerLimits};
pub use metrics::HttpMetrics;
pub use native::{openapi, ApiDoc};
pub use problem::{status_of, Problem};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::Router;
use futures::FutureExt;
use hyper::body::{Frame, SizeHint};
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tintype_engine::Engine;
use tracing::Instrument;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    /// Absolute base for URLs in responses, without a trailing slash.
    pub public_url: Arc<str>,
    pub metrics: Arc<HttpMetrics>,
}

impl AppState {
    pub fn new(engine: Arc<Engine>, public_url: &str) -> Self {
        // The names and labels are constants: this fails only if they are
        // malformed, which every test that starts a server would show.
        let metrics = HttpMetrics::new(&engine.metrics.registry)
            .expect("the HTTP metrics' names and labels are valid");
        AppState {
            engine,
            public_url: Arc::from(public_url.trim_end_matches('/')),
            metrics: Arc::new(metrics),
        }
    }

    /// An absolute URL for a path that starts with '/'.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public_url, path)
    }
}

/// The whole application: the native API, health and metrics, and the
/// dialect routers, with what every request gets around them.
///
/// Around every request, once (not per route, where axum would clone a
/// stack of layers for each request): its id ([`request_id`]), its
/// tracing span and the `tower_http::trace` events (started, finished,
/// and "response failed" for a 5xx, as tower-http's `TraceLayer` logs
/// them), panics caught into a 500 problem, `Retry-After` on every 503
/// and no extractor-wide body limit. Around each route, its metrics (the
/// only job that needs the route template the router matched).
pub fn app(state: AppState, dialects: Vec<Router<AppState>>) -> App {
    let mut router = native::router();
    for d in dialects {
        router = router.merge(d);
    }
    let router = router
        .layer(metrics::RouteMetricsLayer {
            metrics: state.metrics.clone(),
        })
        .with_state(state.clone());
    App(Arc::new(AppInner { router, state }))
}

/// The application as one service (see [`app`]); cheap to clone.
#[derive(Clone)]
pub struct App(Arc<AppInner>);

struct AppInner {
    router: Router,
    state: AppState,
}

impl App {
    /// The response to one request.
    pub async fn handle(&self, req: Request) -> Response {
        let (id, id_value) = request_id::assign(req.headers());
        let span = redact::make_span(&req, &id);
        let work = async {
            let start = Instant::now();
            tracing::event!(
                target: "tower_http::trace::on_request",
                tracing::Level::DEBUG,
                "started processing request"
            );
            let resp = self.respond(req).await;
            let latency = Latency(start.elapsed());
            tracing::event!(
                target: "tower_http::trace::on_response",
                tracing::Level::DEBUG,
                %latency,
                status = resp.status().as_u16(),
                "finished processing request"
            );
            if resp.status().is_server_error() {
                tracing::event!(
                    target: "tower_http::trace::on_failure",
                    tracing::Level::ERROR,
                    classification = %format_args!("Status code: {}", resp.status()),
                    %latency,
                    "response failed"
                );
            }
            resp
        };
        // No subscriber wants the span (a quieter log level): nothing is
        // entered on each poll, and the body is not wrapped.
        let mut resp = if span.is_disabled() {
            request_id::scope(id, work).await
        } else {
            let resp = request_id::scope(id, work.instrument(span.clone())).await;
            resp.map(|inner| Body::new(InSpan { inner, span }))
        };
        // (In place when the response has a place for it, as served bytes
        // do.)
        resp.headers_mut().insert(request_id::HEADER, id_value);
        resp
    }

    /// The router's response, a panic's 500, a 503's `Retry-After`.
    async fn respond(&self, mut req: Request) -> Response {
        // Upload size is enforced while streaming, by the engine, and every
        // text field and JSON body is read through [`limits`] with its own
        // cap; axum's extractor-wide limit would also cut multipart uploads.
        // (A request without a body has nothing to limit.)
        if !req.body().is_end_stream() {
            DefaultBodyLimit::disable().apply(&mut req);
        }
        let routed = AssertUnwindSafe(async {
            let mut router = self.0.router.clone();
            match tower::Service::call(&mut router, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        })
        .catch_unwind()
        .await;
        let state = &self.0.state;
        let mut resp = match routed {
            Ok(r) => r,
            Err(panic) => problem::panic_response(&state.engine.metrics.panics, panic),
        };
        // Every 503, in every API's envelope, tells the client when to come
        // back (the decode budget's wait, at least a second).
        if resp.status() == StatusCode::SERVICE_UNAVAILABLE
            && !resp.headers().contains_key(header::RETRY_AFTER)
        {
            let secs = state
                .engine
                .config()
                .decode_budget
                .wait
                .as_secs()
                .clamp(1, 60);
            resp.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        resp
    }
}

/// A latency as tower-http's trace events show it.
struct Latency(std::time::Duration);

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ms", self.0.as_millis())
    }
}

/// A response body streamed inside the request's span (what its stream
/// logs names the request).
struct InSpan {
    inner: Body,
    span: tracing::Span,
}

impl HttpBody for InSpan {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let _entered = this.span.enter();
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> tower::Service<axum::http::Request<B>> for App
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: axum::http::Request<B>) -> Self::Future {
        let app = self.clone();
        Box::pin(async move { Ok(app.handle(req.map(Body::new)).await) })
    }
}

/// So that `axum::serve` takes an [`App`] as it takes a `Router`.
impl<L: axum::serve::Listener> tower::Service<axum::serve::IncomingStream<'_, L>> for App {
    type Response = App;
    type Error = Infallible;
    type Future = std::future::Ready<Result<App, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: axum::serve::IncomingStream<'_, L>) -> Self::Future {
        std::future::ready(Ok(self.clone()))
    }
}

/// Serves the app with the default [`ServerLimits`] until `shutdown`
/// resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServerLimits::default(), shutdown).await
}
