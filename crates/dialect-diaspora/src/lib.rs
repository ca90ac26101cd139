//! tintype-diaspora
