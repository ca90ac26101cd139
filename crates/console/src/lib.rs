//! tintype-console: the web console, server-rendered HTML at `/` and
//! under `/console/…`, with its own CSS and a little plain JavaScript
//! embedded in the binary (no asset from another host).
//!
//! - Sign-in ([`session`]): a token typed into a form becomes an HttpOnly,
//!   SameSite=Strict session cookie holding the token secret itself, checked
//!   with `Engine::authenticate` on every request (revoking the token ends
//!   the session). Every POST must come from the console's own origin
//!   (Origin, else Referer) and carry a CSRF token derived from the session.
//! - Images ([`images`]): upload (file picker, drag and drop, progress per
//!   file), the grid, an image page, delete with a confirmation page, and
//!   the bytes served under the cookie.
//! - Admin ([`admin`]): users, tokens, quotas and the job queue.
//!
//! Every response carries a strict Content-Security-Policy; the pages hold
//! no inline script or style.

mod admin;
mod assets;
mod images;
mod page;
mod session;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tintype_http::AppState;

pub use session::{csrf_token, session_cookie, COOKIE};

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; script-src 'self'; \
style-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The console's routes, to merge into the application.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(images::grid))
        .route(
            "/console/signin",
            get(session::signin_page).post(session::signin),
        )
        .route("/console/signout", post(session::signout))
        .route("/console/upload", post(images::upload))
        .route("/console/images/{id}", get(images::show))
        .route(
            "/console/images/{id}/delete",
            get(images::confirm_delete).post(images::delete),
        )
        .route("/console/images/{id}/original", get(images::original))
        .route(
            "/console/images/{id}/variants/{preset}",
            get(images::variant),
        )
        .route("/console/admin", get(admin::users))
        .route("/console/admin/users", post(admin::create_user))
        .route("/console/admin/users/{name}", get(admin::user))
        .route(
            "/console/admin/users/{name}/tokens",
            post(admin::create_token),
        )
        .route("/console/admin/users/{name}/quota", post(admin::set_quota))
        .route(
            "/console/admin/users/{name}/tokens/{id}/revoke",
            post(admin::revoke_token),
        )
        .route("/console/admin/jobs", get(admin::jobs))
        .route("/console/admin/jobs/{id}/retry", post(admin::retry_job))
        .route("/console/static/console.css", get(assets::css))
        .route("/console/static/console.js", get(assets::js))
        .layer(axum::middleware::map_response(security_headers))
}

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}
