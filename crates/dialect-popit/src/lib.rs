//! tintype-popit
