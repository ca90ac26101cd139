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
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Rejected(String),
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
            CoreError::Unsupported(_) => "unsupported_media",
            CoreError::Rejected(_) => "rejected",
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
            other => CoreError::Internal(format!("catalog: {other}")),
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
