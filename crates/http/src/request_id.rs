//! A request id on every request: the client's `X-Request-Id` when it is
//! sane (1 to 128 characters of letters, digits and `-_.:`), a new one
//! otherwise. It is echoed in the response, carried in the request's
//! tracing span (so every log line the request causes names it) and in
//! the native API's problem bodies.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::sync::Arc;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// The id of the request being handled by this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(|id| id.to_string()).ok()
}

/// The client's id, if it may be used as is.
pub fn sane(v: &HeaderValue) -> Option<&str> {
    let s = v.to_str().ok()?;
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    ok.then_some(s)
}

pub(crate) async fn layer(mut req: Request, next: Next) -> Response {
    let id: Arc<str> = match req.headers().get(&HEADER).and_then(sane) {
        Some(s) => Arc::from(s),
        None => Arc::from(uuid::Uuid::new_v4().simple().to_string()),
    };
    // Only letters, digits and "-_.:" by now: always a valid header value.
    let value = HeaderValue::from_str(&id).ok();
    if let Some(v) = &value {
        // What the layers inside (the trace span) see is the id in use.
        req.headers_mut().insert(HEADER, v.clone());
    } else {
        req.headers_mut().remove(HEADER);
    }
    let mut resp = CURRENT.scope(id, next.run(req)).await;
    if let Some(v) = value {
        resp.headers_mut().insert(HEADER, v);
    }
    resp
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

    #[tokio::test]
    async fn the_current_id_is_seen_inside_the_scope_only() {
        assert_eq!(current(), None);
        let inside = CURRENT.scope(Arc::from("r-1"), async { current() }).await;
        assert_eq!(inside.as_deref(), Some("r-1"));
    }
}
