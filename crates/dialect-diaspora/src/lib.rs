//! tintype-diaspora: the photo endpoints of diaspora*'s API v1
//! (`/api/v1/photos...`) over tintype's engine.
//!
//! Design choices:
//! - A diaspora photo is a tintype image uploaded through this dialect: the
//!   image id (32 lowercase hex) is the photo's guid, and a record
//!   (`diaspora.photo`, key = guid, tied to the image) marks it as a photo.
//!   Images uploaded through the native API or another dialect are not
//!   listed as photos (they may be disks, or documents of another system
//!   that a diaspora client must not delete by accident); they are still
//!   the same images in the native API.
//! - Pending photos carry a second record (`diaspora.pending`); a periodic
//!   job ([`install`]) removes those older than [`Settings::pending_ttl`].
//! - The sizes (`small`, `medium`, `large`: the engine presets of the same
//!   names, and `raw`, the original) are served anonymously at
//!   `/api/v1/photos/{guid}/sizes/{size}`, as diaspora serves its uploads
//!   as public files; the guid makes the URL unguessable.
//! - The list is paged by time. `before`/`after` take ISO 8601 times; the
//!   `Link` header adds `seq`, the image's sequence number, to break ties
//!   between photos created in the same millisecond.
//! - Errors use diaspora's envelope `{"code": .., "message": ..}`; a
//!   missing or invalid token gets the OAuth `invalid_token` body.

mod error;
mod pending;
mod photos;
mod wire;

pub use pending::{sweep_pending, SWEEP_JOB};

use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use std::time::Duration;
use tintype_engine::Engine;
use tintype_http::AppState;

/// The record scope that marks an image as a diaspora photo.
pub const PHOTO_SCOPE: &str = "diaspora.photo";
/// The record scope of photos uploaded as pending.
pub const PENDING_SCOPE: &str = "diaspora.pending";

/// The dialect's routes, with full paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/photos",
            get(photos::list)
                .post(photos::create)
                .fallback(photos::method_not_allowed),
        )
        .route(
            "/api/v1/photos/{guid}",
            get(photos::show)
                .delete(photos::destroy)
                .fallback(photos::method_not_allowed),
        )
        .route(
            "/api/v1/photos/{guid}/sizes/{size}",
            get(photos::size).fallback(photos::method_not_allowed),
        )
}

/// Background work of the dialect.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a pending photo may stay unused before it is removed.
    pub pending_ttl: Duration,
    /// How often the removal of old pending photos runs.
    pub sweep_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            pending_ttl: Duration::from_secs(24 * 3600),
            sweep_interval: Duration::from_secs(3600),
        }
    }
}

/// Registers the pending-photo sweep and schedules it every
/// `sweep_interval` (needs a Tokio runtime).
pub fn install(engine: &Arc<Engine>, settings: Settings) {
    engine.register_handler(
        SWEEP_JOB,
        Arc::new(pending::SweepHandler {
            ttl: settings.pending_ttl,
        }),
    );
    engine.start_periodic(SWEEP_JOB, settings.sweep_interval);
}
