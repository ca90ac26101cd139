//! The page frame every console page shares, its error page and small
//! formatting helpers.

use crate::session::Session;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use tintype_engine::core::{CoreError, Timestamp};

/// A whole page: skip link, navigation (when signed in), the title as the
/// page's heading, and `body`.
pub fn layout(title: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · tintype" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "tintype" }
                    @if let Some(s) = session {
                        nav aria-label="Main" {
                            a href="/" { "Images" }
                            @if s.is_admin() {
                                a href="/console/admin" { "Users" }
                                a href="/console/admin/jobs" { "Jobs" }
                            }
                        }
                        div.who {
                            span { (s.principal.user.name) }
                            form method="post" action="/console/signout" {
                                input type="hidden" name="csrf" value=(s.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// An HTML response (never stored by caches: pages carry CSRF tokens, and
/// a new token's secret).
pub fn render(
    status: StatusCode,
    title: &str,
    session: Option<&Session>,
    body: Markup,
) -> Response {
    let mut resp = (status, layout(title, session, body)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A refusal or failure, shown as a page.
#[derive(Debug)]
pub struct ConsoleError {
    pub status: StatusCode,
    pub message: String,
}

impl ConsoleError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ConsoleError {
            status,
            message: message.into(),
        }
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "This page is for administrators (a token with the admin scope).",
        )
    }
}

impl From<CoreError> for ConsoleError {
    fn from(e: CoreError) -> Self {
        // The native API's wording and logging, as an HTML page.
        let p = tintype_http::Problem::from(e);
        ConsoleError::new(p.status, p.detail)
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        render(
            self.status,
            title,
            None,
            html! {
                p.error role="alert" { (self.message) }
                p { a href="/" { "Back to the images" } }
            },
        )
    }
}

/// Bytes for a person: 1.5 MB, 320 KB, 12 B.
pub fn bytes(n: i64) -> String {
    let n = n.max(0) as f64;
    if n >= 1_000_000_000.0 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1_000_000.0 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1_000.0 {
        format!("{:.0} KB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

/// A time as UTC, to the second.
pub fn time(t: Timestamp) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A `<time>` element.
pub fn time_el(t: Timestamp) -> Markup {
    html! { time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) { (time(t)) } }
}

/// A JSON value as text: strings as themselves, the rest as JSON, cut at
/// `max` characters.
pub fn json_text(v: &serde_json::Value, max: usize) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    clip(&s, max)
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_like_a_person_writes_them() {
        assert_eq!(bytes(12), "12 B");
        assert_eq!(bytes(320_400), "320 KB");
        assert_eq!(bytes(1_500_000), "1.5 MB");
        assert_eq!(bytes(-1), "0 B");
    }

    #[test]
    fn clipping_counts_characters() {
        assert_eq!(clip("ééé", 2), "éé…");
        assert_eq!(clip("abc", 3), "abc");
    }

    #[test]
    fn pages_hold_no_inline_script_or_style() {
        let p = layout("T <x>", None, html! { p { "body" } }).into_string();
        assert!(p.contains("T &lt;x&gt;"));
        assert!(!p.contains("style="));
        assert!(!p.contains("<script>"));
        assert!(p.contains("name=\"viewport\""));
    }
}
