//! tintype-djinn: the Djinn CI disk image API.
//!
//! Djinn images are QCOW2 virtual-machine disks, stored by the engine as
//! blobs of kind "disk" (never decoded, always streamed). The dialect adds
//! what Djinn has beside the bytes, kept as dialect records: namespaces
//! (`path[@owner]`, with collaborators and a visibility on each root) and
//! one record per image holding its name, author, owner and namespace. The
//! image record's key makes names unique per owner or per namespace, and
//! it is tied to the image, so deleting the image removes it.
//!
//! Integer ids: `Image.seq` for images, `User.id` for users, the namespace
//! record's `seq` for namespaces.
//!
//! Routes: `GET/POST /images`, `GET/DELETE /images/{id}`. Namespace
//! management is for operators: [`admin`] (library functions) and [`cli`]
//! (the `tintype namespace ...` commands).

pub mod admin;
pub mod cli;
mod error;
mod images;
pub mod namespace;
mod wire;

pub use error::{ApiError, FieldErrors};
pub use namespace::Visibility;

use axum::routing::get;
use axum::Router;
use tintype_http::AppState;

/// The Djinn routes, with full paths.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/images",
            get(images::list)
                .post(images::create)
                .fallback(images::not_found),
        )
        .route(
            "/images/{id}",
            get(images::get)
                .delete(images::delete)
                .fallback(images::not_found),
        )
}
