use thiserror::Error;

/// The errors of a use case, each with a stable machine-readable code.
/// Dialects map these to their own status codes and bodies.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CoreError {
    #[error("not found")]
    NotFound,
    #[error("authentication required")]
    Unauthorized,
    #[error("the token lacks the scope {0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    /// Bytes (an upload, a fetched body) or an operation on them refused
    /// for a typed reason.
    #[error("{0}")]
    Refused(Refusal),
    #[error("quota exceeded: {limit} images per day, {used} used, {requested} requested")]
    QuotaExceeded {
        limit: i64,
        used: i64,
        requested: i64,
    },
    #[error("{0}")]
    Unavailable(String),
    /// The decode memory budget is in use; try again after the given time.
    #[error("the server is busy converting pictures; try again in {retry_after_secs} s")]
    Busy { retry_after_secs: u64 },
    /// A picture whose conversion needs more memory than the whole budget.
    #[error(
        "converting this picture needs {needed} bytes of memory, over the budget of {budget} bytes"
    )]
    OverBudget { needed: u64, budget: u64 },
    /// The blob store or the catalog has no space left: writes fail, reads
    /// and deletes still work.
    #[error("the server has no space left to store this; try again later")]
    NoSpace(String),
    #[error("internal error")]
    Internal(String),
}

/// Why bytes given to tintype were refused. Each API maps a reason to its
/// own status and body in one place (its error module); nothing matches on
/// message text.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Nothing was sent.
    #[error("the file is empty")]
    Empty,
    /// The client's body broke off or could not be read.
    #[error("reading the body: {0}")]
    BodyUnreadable(String),
    /// Not a format tintype knows.
    #[error("unsupported: {0}")]
    UnknownFormat(String),
    /// A known format that this use case does not take (a disk image where
    /// pictures are expected); the format's name.
    #[error("{0} files are not accepted here")]
    NotAccepted(String),
    /// The bytes claim a format but do not follow it, end early, or a
    /// decoder failed on them.
    #[error("corrupt image: {0}")]
    Undecodable(String),
    /// Nested or repeated beyond what the decoders take safely.
    #[error("too complex: {0}")]
    TooComplex(String),
    /// More pixels or larger dimensions than the limits allow.
    #[error("too large: {0}")]
    TooManyPixels(String),
    /// A URL could not be fetched (refused address, HTTP error, timeout).
    #[error("{0}")]
    FetchFailed(String),
    /// The operation does not apply to this content (variants of a disk).
    #[error("{0}")]
    NotApplicable(String),
}

impl Refusal {
    /// The native API's stable code for this reason.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Empty | Refusal::BodyUnreadable(_) => "invalid",
            Refusal::UnknownFormat(_)
            | Refusal::NotAccepted(_)
            | Refusal::Undecodable(_)
            | Refusal::TooComplex(_)
            | Refusal::NotApplicable(_) => "unsupported_media",
            Refusal::TooManyPixels(_) | Refusal::FetchFailed(_) => "rejected",
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Empty => "empty",
            Refusal::BodyUnreadable(_) => "body_unreadable",
            Refusal::UnknownFormat(_) => "unknown_format",
            Refusal::NotAccepted(_) => "not_accepted",
            Refusal::Undecodable(_) => "undecodable",
            Refusal::TooComplex(_) => "too_complex",
            Refusal::TooManyPixels(_) => "too_many_pixels",
            Refusal::FetchFailed(_) => "fetch_failed",
            Refusal::NotApplicable(_) => "not_applicable",
        }
    }

    /// Whether the bytes are not a usable picture or disk of an accepted
    /// format (as opposed to empty, unreadable, over a limit or unfetched).
    pub fn is_not_media(&self) -> bool {
        matches!(
            self,
            Refusal::UnknownFormat(_)
                | Refusal::NotAccepted(_)
                | Refusal::Undecodable(_)
                | Refusal::TooComplex(_)
        )
    }
}

impl From<Refusal> for CoreError {
    fn from(r: Refusal) -> Self {
        CoreError::Refused(r)
    }
}

impl CoreError {
    /// A stable code, part of the native API's contract.
    pub fn code(&self) -> &'static str {
        match self {
            CoreError::NotFound => "not_found",
            CoreError::Unauthorized => "unauthorized",
            CoreError::Forbidden(_) => "forbidden",
            CoreError::Invalid(_) => "invalid",
            CoreError::Conflict(_) => "conflict",
            CoreError::TooLarge { .. } => "too_large",
            CoreError::Refused(r) => r.code(),
            CoreError::QuotaExceeded { .. } => "quota_exceeded",
            CoreError::Unavailable(_) => "unavailable",
            CoreError::Busy { .. } => "busy",
            CoreError::OverBudget { .. } => "over_budget",
            CoreError::NoSpace(_) => "no_space",
            CoreError::Internal(_) => "internal",
        }
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        CoreError::Internal(e.to_string())
    }

    /// An I/O error of ours (not of the client): `NoSpace` when the disk
    /// is full, else internal.
    pub fn io(context: &str, e: std::io::Error) -> Self {
        if crate::blob::is_no_space(&e) {
            CoreError::NoSpace(format!("{context}: {e}"))
        } else {
            CoreError::Internal(format!("{context}: {e}"))
        }
    }
}

impl From<crate::CatalogError> for CoreError {
    fn from(e: crate::CatalogError) -> Self {
        match e {
            crate::CatalogError::NoSpace(m) => CoreError::NoSpace(format!("catalog: {m}")),
            // The whole chain: the driver's own words are the real cause.
            other => CoreError::Internal(format!("catalog: {}", chain(&other))),
        }
    }
}

impl From<crate::BlobError> for CoreError {
    fn from(e: crate::BlobError) -> Self {
        match e {
            crate::BlobError::NotFound(k) => CoreError::Internal(format!("blob {k} is missing")),
            crate::BlobError::NoSpace(m) => CoreError::NoSpace(format!("blob store: {m}")),
            crate::BlobError::Io(e) if crate::blob::is_no_space(&e) => {
                CoreError::NoSpace(format!("blob store: {e}"))
            }
            other => CoreError::Internal(format!("blob store: {other}")),
        }
    }
}

/// An error and its sources, joined with ": ".
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}
