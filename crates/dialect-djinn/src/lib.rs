//! tintype-djinn
