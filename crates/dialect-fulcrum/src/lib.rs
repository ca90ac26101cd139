//! tintype-fulcrum
