//! `tintype probe` and `tintype render` (owned by the media work).
