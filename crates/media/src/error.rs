/// Everything that can go wrong in tintype-media. The Display texts are shown
/// to API clients as they are.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Not a format tintype accepts, or an operation the format does not allow.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// Over one of the [`crate::Limits`].
    #[error("too large: {0}")]
    TooLarge(String),
    /// Nested or repeated beyond what the decoders can take safely (SVG
    /// nesting, element counts): refused before any decoder sees it.
    #[error("too complex: {0}")]
    TooComplex(String),
    /// The bytes claim a format but do not follow it, or its pixels cannot
    /// all be decoded (a truncated file), or a decoder failed on it.
    #[error("corrupt image: {0}")]
    Corrupt(String),
    /// A variant request that cannot be honoured.
    #[error("invalid variant: {0}")]
    InvalidSpec(String),
    /// Reading the file failed.
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    /// An encoder failed on pixels that were decoded fine.
    #[error("cannot encode the variant: {0}")]
    Encode(String),
}
