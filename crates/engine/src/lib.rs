//! tintype-engine
