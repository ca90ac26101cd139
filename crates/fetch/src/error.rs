//! The one error type of the fetcher. Its messages are shown to API users as
//! the reason an import or webhook failed, so they are short and concrete.

use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The URL does not parse or lacks a host.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The scheme is not http or https.
    #[error("scheme {0:?} is not allowed (only http and https)")]
    Scheme(String),
    /// The host is, or resolves to, an address that is not publicly routable.
    #[error("address {0} is not public")]
    NotPublic(IpAddr),
    /// Name resolution failed or returned nothing.
    #[error("DNS lookup failed: {0}")]
    Dns(String),
    /// TCP or TLS connection failed.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The whole fetch (or the connect phase) took longer than allowed.
    #[error("timed out after {}", fmt_duration(*.0))]
    Timeout(Duration),
    /// The body is larger than the policy's `max_bytes` (the limit is carried).
    #[error("response exceeds {0} bytes")]
    TooLarge(u64),
    /// More redirects than the policy's `max_redirects` (the limit is carried).
    #[error("too many redirects (more than {0})")]
    TooManyRedirects(usize),
    /// The final response had a non-2xx status.
    #[error("HTTP {0}")]
    Status(u16),
    /// A header given to `post_json` is not a valid HTTP header.
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// Anything else on the wire: reset connections, malformed responses.
    #[error("I/O error: {0}")]
    Io(String),
}

impl FetchError {
    /// Whether trying the same request later may succeed: network trouble,
    /// timeouts, 408, 429 and 5xx. Policy refusals and 4xx are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            FetchError::Dns(_)
            | FetchError::Connect(_)
            | FetchError::Timeout(_)
            | FetchError::Io(_) => true,
            FetchError::Status(code) => *code == 408 || *code == 429 || *code >= 500,
            FetchError::InvalidUrl(_)
            | FetchError::Scheme(_)
            | FetchError::NotPublic(_)
            | FetchError::TooLarge(_)
            | FetchError::TooManyRedirects(_)
            | FetchError::InvalidHeader(_) => false,
        }
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let cases = [
            (
                FetchError::NotPublic("127.0.0.1".parse().expect("literal")),
                "address 127.0.0.1 is not public",
            ),
            (
                FetchError::TooLarge(20_000_000),
                "response exceeds 20000000 bytes",
            ),
            (
                FetchError::Timeout(Duration::from_secs(30)),
                "timed out after 30s",
            ),
            (
                FetchError::Timeout(Duration::from_millis(1500)),
                "timed out after 1500ms",
            ),
            (FetchError::Status(404), "HTTP 404"),
            (
                FetchError::Scheme("file".into()),
                "scheme \"file\" is not allowed (only http and https)",
            ),
            (
                FetchError::TooManyRedirects(5),
                "too many redirects (more than 5)",
            ),
        ];
        for (err, msg) in cases {
            assert_eq!(err.to_string(), msg);
        }
    }

    #[test]
    fn retryable() {
        assert!(FetchError::Status(503).is_retryable());
        assert!(FetchError::Status(429).is_retryable());
        assert!(FetchError::Timeout(Duration::from_secs(1)).is_retryable());
        assert!(FetchError::Connect("refused".into()).is_retryable());
        assert!(!FetchError::Status(404).is_retryable());
        assert!(!FetchError::NotPublic("10.0.0.1".parse().expect("literal")).is_retryable());
        assert!(!FetchError::TooLarge(1).is_retryable());
    }
}
