//! tintype-livingdocs
