//! tintype-popit: the PopIt API's documents and their images.
//!
//! PopIt (`/api/v0.1`) stores free-form Popolo documents in four
//! collections (persons, organizations, memberships, posts), each with an
//! `image` and an `images` list of remote URLs or uploaded files. Here a
//! document is a dialect record (scope `popit.{collection}`, key = its id,
//! owner = the API key's user, data = the document JSON); an uploaded file
//! is an ordinary tintype image, ingested as a picture and owned by the same
//! user (so it shows in the native API too), referenced from its `images`
//! entry by a hidden field that is never rendered nor taken from a client.
//!
//! `GET /api/v0.1` (with or without a trailing slash) is the API entry
//! point: `meta` names the absolute URL of each collection, which is how
//! PopIt's clients (the published Python one among them) find them.
//!
//! Choices:
//! - Reads are anonymous. Writes need a tintype token secret as PopIt's API
//!   key (`Apikey` header, `apikey` query parameter or `apikey` JSON body
//!   field) with the scope `image:write`; DELETE routes accept
//!   `image:write` or `image:delete`.
//! - A document belongs to the user who created it; another user's key
//!   (unless admin) may not change or delete it (403).
//! - Writes to one document are serialised within this process, so an
//!   upload and a PUT racing on the same document do not lose each other's
//!   changes.
//! - Remote image URLs are recorded as given and never fetched.

mod auth;
mod docs;
mod error;
mod images;
mod wire;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post, put, MethodRouter};
use axum::Router;
use error::method_not_allowed;
use tintype_http::AppState;

pub use error::PopitError;

/// The API prefix PopIt mounts its API at.
pub const PREFIX: &str = "/api/v0.1";

/// Every PopIt route, with full paths. Like PopIt's (Express, whose routing
/// ignores a trailing slash), each API route also answers with a trailing
/// slash; any other path under the prefix is a 404 in PopIt's envelope.
pub fn router() -> Router<AppState> {
    let api: [(&str, MethodRouter<AppState>); 5] = [
        ("", get(docs::entry_point)),
        ("/{collection}", get(docs::list).post(docs::create)),
        (
            "/{collection}/{id}",
            get(docs::show).put(docs::replace).delete(docs::remove),
        ),
        (
            "/{collection}/{id}/image",
            post(images::upload).delete(images::remove_all),
        ),
        (
            "/{collection}/{id}/image/{image_id}",
            put(images::replace).delete(images::remove_one),
        ),
    ];
    let mut r = Router::new();
    for (path, methods) in api {
        let methods = methods.fallback(method_not_allowed);
        r = r
            .route(&format!("{PREFIX}{path}"), methods.clone())
            .route(&format!("{PREFIX}{path}/"), methods);
    }
    for path in [
        "/{collection}/{id}/{other}",
        "/{collection}/{id}/{other}/",
        "/{collection}/{id}/{other}/{*rest}",
        "/{collection}/{id}/image/{image_id}/{*rest}",
    ] {
        r = r.route(
            &format!("{PREFIX}{path}"),
            axum::routing::any(error::no_route),
        );
    }
    for c in wire::COLLECTIONS {
        r = r.route(
            &format!("/{c}/{{id}}/image/{{image_id}}"),
            get(
                move |State(st): State<AppState>,
                      Path((id, image_id)): Path<(String, String)>,
                      headers: HeaderMap| {
                    images::serve(c, st, id, image_id, headers)
                },
            )
            .fallback(method_not_allowed),
        );
    }
    r
}
