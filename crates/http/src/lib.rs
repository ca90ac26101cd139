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

use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::sync::Arc;
use tintype_engine::Engine;

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
/// dialect routers, with the shared layers around them.
pub fn app(state: AppState, dialects: Vec<Router<AppState>>) -> Router {
    let mut router = native::router();
    for d in dialects {
        router = router.merge(d);
    }
    router
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            retry_after,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom({
            let panics = state.engine.metrics.panics.clone();
            move |p| problem::panic_response(&panics, p)
        }))
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &axum::http::Request<axum::body::Body>| redact::make_span(req),
            ),
        )
        // Outermost: every response, even a panic's, carries the id.
        .layer(axum::middleware::from_fn(request_id::layer))
        // Upload size is enforced while streaming, by the engine, and every
        // text field and JSON body is read through [`limits`] with its own
        // cap; axum's extractor-wide limit would also cut multipart uploads.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Every 503, in every API's envelope, tells the client when to come back
/// (the decode budget's wait, at least a second).
async fn retry_after(
    axum::extract::State(state): axum::extract::State<AppState>,
    mut resp: axum::response::Response,
) -> axum::response::Response {
    if resp.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE
        && !resp.headers().contains_key(axum::http::header::RETRY_AFTER)
    {
        let secs = state
            .engine
            .config()
            .decode_budget
            .wait
            .as_secs()
            .clamp(1, 60);
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, secs.into());
    }
    resp
}

/// Serves the app with the default [`ServerLimits`] until `shutdown`
/// resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, app, ServerLimits::default(), shutdown).await
}
