//! tintype-livingdocs: the Livingdocs asynchronous image import.
//!
//! A client posts a batch of image URLs to `POST /api/v1/import/images`,
//! gets a job id at once, and polls `GET /api/v1/import/images/status?id=`;
//! a webhook is POSTed (signed by the engine) when the job is done. Imported
//! images are served anonymously at `/api/v1/images/{mediaId}`, with
//! `?format=auto` negotiating AVIF or WebP from `Accept`.
//!
//! Design choices:
//! * One durable engine job per batch (kind `livingdocs.import`); it works
//!   on the batch's items with a bounded concurrency. Every finished item is
//!   written as a record (`livingdocs.item:<import id>`, key = index), so a
//!   job taken over after a crash only works on the items not yet done.
//! * The pair (systemName, externalId) per account is a record in
//!   `livingdocs.ext` that points at the image. It is reserved before an
//!   image is created and marked with the import and item that last wrote
//!   it, so an item re-run after a crash is recognised and never imported
//!   twice.
//! * Bytes are fetched through the engine's guarded fetcher into a
//!   temporary file while they are hashed; the hash decides between
//!   `skipped` (same bytes, same fields), an update in place (the image id
//!   stays) and a new image.
//! * `?format=auto` negotiates with the native variant URL's function
//!   (`tintype_engine::negotiate`); the engine converts the whole picture
//!   on demand, once per encoding, and keeps it as a variant (`full.avif`,
//!   `full.webp`).

mod error;
mod images;
mod import;
mod wire;
mod worker;

pub use error::{usage_message, ApiError};
pub use wire::{ImportRequest, ItemSpec};

use axum::routing::{get, post};
use axum::Extension;
use axum::Router;
use std::sync::Arc;
use tintype_engine::Engine;
use tintype_http::AppState;

/// Record scope of import jobs (key: the import id).
pub const IMPORT_SCOPE: &str = "livingdocs.import";
/// Record scope of the (systemName, externalId) pairs.
pub const EXT_SCOPE: &str = "livingdocs.ext";
/// Record scope of the engine job behind each import (key: the import id).
pub const JOB_SCOPE: &str = "livingdocs.import-job";
/// Engine job kind of an import.
pub const JOB_KIND: &str = "livingdocs.import";

/// The record scope of one import's item results (key: the item's index).
pub fn item_scope(import_id: &str) -> String {
    format!("livingdocs.item:{import_id}")
}

/// Settings of the dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// How many images of one batch are fetched and stored at the same time.
    pub concurrency: usize,
    /// Most images in one request.
    pub max_images: usize,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// `Retry-After` (seconds) sent with the usage-limit answer.
    pub retry_after_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 4,
            max_images: 1000,
            max_body_bytes: 16 * 1024 * 1024,
            retry_after_secs: 3600,
        }
    }
}

/// Registers the import job's handler with this engine.
pub fn install(engine: &Arc<Engine>, settings: &Settings) {
    engine.register_handler(
        JOB_KIND,
        Arc::new(worker::ImportHandler {
            concurrency: settings.concurrency.max(1),
        }),
    );
}

/// The dialect's routes, answering with these settings.
pub fn router(settings: Settings) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/import/images",
            post(import::create).layer(Extension(Arc::new(settings))),
        )
        .route("/api/v1/import/images/status", get(import::status))
        .route("/api/v1/images/{media_id}", get(images::serve))
}
