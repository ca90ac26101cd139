//! tintype-fetch
