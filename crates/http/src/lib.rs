//! tintype-http
