//! tintype-core
