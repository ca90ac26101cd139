//! tintype-store
