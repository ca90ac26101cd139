//! tintype-core: the domain of tintype, free of I/O.
//!
//! It names what exists (users, tokens and their scopes, images, variants,
//! dialect records, jobs), the two storage interfaces every backend
//! implements ([`Catalog`] and [`BlobStore`]), and the errors with stable
//! codes that the dialects translate into their own envelopes.
//!
//! Design choices: expected outcomes are values (`Result<Result<T,
//! AlreadyExists>, CatalogError>`), failures are errors; timestamps are UTC
//! with millisecond precision; image ids are 32 lowercase hex digits
//! (time-ordered), so they double as diaspora* guids.

mod blob;
mod catalog;
mod error;
mod model;

pub use blob::{valid_key, BlobError, BlobMeta, BlobStore, BlobStream, ByteRange, LocalFile};
pub use catalog::{
    AlreadyExists, BlobDelete, Catalog, CatalogError, Collected, ImageCursor, QuotaUsed,
    MAX_BATCH_IDS,
};
pub use error::{CoreError, Refusal};
pub use model::*;
