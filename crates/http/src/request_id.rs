//! A request id on every request: the client's `X-Request-Id` when it is
//! sane (1 to 128 characters of letters, digits and `-_.:`), a new one
//! otherwise. It is echoed in the response, carried in the request's
//! tracing span (so every log line the request causes names it) and in
//! the native API's problem bodies.
//!
//! A new id is 32 hex digits: a random 64-bit prefix drawn once per
//! process, then a per-process counter scrambled by a bijection (so ids
//! never repeat within a process, and two processes share none but by a
//! 1 in 2^64 chance). No system call per request, unlike a random UUID.

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// The id of the request being handled by this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.to_string()).ok()
}

/// Whether this task is handling a request (with an id).
pub(crate) fn in_scope() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// Runs `f` with `id` as the current request's id.
pub(crate) async fn scope<F: std::future::Future>(id: Arc<str>, f: F) -> F::Output {
    CURRENT.scope(id, f).await
}

/// The client's id, if it may be used as is.
pub fn sane(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(s)
}

/// SplitMix64's finalizer: a bijection on u64.
fn scramble(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A new id: 32 lower-case hex digits.
pub fn generate() -> [u8; 32] {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let v = (u128::from(prefix) << 64) | u128::from(scramble(n));
    let mut out = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out.iter_mut().enumerate() {
        let nibble = (v >> (124 - 4 * i)) & 0xf;
        *b = HEX[nibble as usize];
    }
    out
}

/// The id of a request with these headers (the client's when sane, else a
/// new one), as the task's id and as the response header's value.
pub(crate) fn assign(headers: &HeaderMap) -> (Arc<str>, HeaderValue) {
    if let Some(v) = headers.get(&HEADER) {
        if let Some(s) = sane(v) {
            return (Arc::from(s), v.clone());
        }
    }
    let raw = generate();
    // Hex digits only: always UTF-8 and a valid header value.
    let s = std::str::from_utf8(&raw).unwrap_or_default();
    let value = HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
    (Arc::from(s), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_from_the_client() {
        let ok = |s: &str| sane(&HeaderValue::from_str(s).expect("header")).is_some();
        assert!(ok("abc-123_x.y:z"));
        assert!(ok(&"a".repeat(128)));
        assert!(!ok(&"a".repeat(129)));
        assert!(!ok(""));
        assert!(!ok("a b"));
        assert!(!ok("a\"b"));
        assert!(!ok("<script>"));
    }

    #[test]
    fn new_ids_are_32_hex_digits_and_do_not_repeat() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = generate();
            assert!(id
                .iter()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(seen.insert(id), "{:?} repeated", std::str::from_utf8(&id));
        }
    }

    #[test]
    fn a_sane_client_id_is_kept_and_another_replaced() {
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_static("client-1"));
        let (id, v) = assign(&h);
        assert_eq!((&*id, v.to_str().ok()), ("client-1", Some("client-1")));
        h.insert(HEADER, HeaderValue::from_static("not sane"));
        let (id, v) = assign(&h);
        assert_eq!(id.len(), 32);
        assert_eq!(v.to_str().ok(), Some(&*id));
    }

    #[tokio::test]
    async fn the_current_id_is_seen_inside_the_scope_only() {
        assert_eq!(current(), None);
        let inside = scope(Arc::from("r-1"), async { (current(), in_scope()) }).await;
        assert_eq!(inside, (Some("r-1".to_string()), true));
        assert!(!in_scope());
    }
}
