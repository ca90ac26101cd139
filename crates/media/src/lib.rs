//! tintype-media
