//! Sign-in, the session cookie, and the checks every POST passes.
//!
//! The cookie holds the token secret itself: each request authenticates it
//! with `Engine::authenticate` (cached briefly by the engine), so revoking
//! the token ends every console session that used it, on every node. It is
//! HttpOnly (no script reads it), SameSite=Strict (no other site's page
//! sends it), Path=/, and Secure when the public URL is https.
//!
//! The sign-in form itself carries a random nonce that must match a
//! short-lived cookie only `/console/signin` receives (a double submit), as
//! no session exists yet.
//!
//! A state-changing request (every POST) must also:
//! - come from the console's origin: its `Origin` (else its `Referer`)
//!   names the public URL's origin or the request's own Host;
//! - carry the session's CSRF token (a hidden form field `csrf`, or the
//!   `X-CSRF-Token` header for uploads): HMAC-SHA256 keyed by the token
//!   secret over a fixed label, so only a page that was given it knows it,
//!   and every node computes the same one without shared state.

use crate::page::{self, ConsoleError};
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hmac::{Hmac, Mac};
use maud::html;
use sha2::Sha256;
use tintype_engine::core::Principal;
use tintype_http::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "tintype_session";
/// The cookie holding the sign-in form's nonce (before any session).
const SIGNIN_COOKIE: &str = "tintype_signin";
/// The header an upload carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Longest token secret the sign-in form takes (the engine refuses longer).
const MAX_TOKEN_BYTES: usize = 256;
/// Largest urlencoded form body the console reads.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

const CSRF_LABEL: &[u8] = b"tintype console csrf v1";

/// The `Set-Cookie` value that signs a browser in with `secret`.
pub fn session_cookie(secret: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that signs a browser out.
fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    m.update(CSRF_LABEL);
    m
}

/// The CSRF token of the session signed in with `secret`.
pub fn csrf_token(secret: &str) -> String {
    hex::encode(mac(secret).finalize().into_bytes())
}

/// Whether `given` is the CSRF token of `secret` (compared in constant time).
fn csrf_ok(secret: &str, given: &str) -> bool {
    match hex::decode(given.trim()) {
        Ok(bytes) => mac(secret).verify_slice(&bytes).is_ok(),
        Err(_) => false,
    }
}

fn secure(st: &AppState) -> bool {
    st.public_url.starts_with("https://")
}

/// The session cookie's value, if the request carries one.
fn cookie_secret(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, COOKIE)
}

/// A cookie's value (non-empty, at most [`MAX_TOKEN_BYTES`]).
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(s) = v.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == name && !v.is_empty() && v.len() <= MAX_TOKEN_BYTES {
                    return Some(v.to_string());
                }
            }
        }
    }
    None
}

/// A signed-in browser.
#[derive(Clone)]
pub struct Session {
    pub principal: Principal,
    secret: String,
    /// The CSRF token its forms carry.
    pub csrf: String,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.principal
            .scopes
            .contains(&tintype_engine::core::Scope::Admin)
    }

    /// Refuses a POST that is not from the console's origin or lacks the
    /// session's CSRF token.
    pub fn check_post(
        &self,
        st: &AppState,
        headers: &HeaderMap,
        csrf: Option<&str>,
    ) -> Result<(), ConsoleError> {
        if !same_origin(st, headers) {
            return Err(foreign_origin());
        }
        match csrf {
            Some(c) if self.csrf_matches(c) => Ok(()),
            _ => Err(stale_csrf()),
        }
    }

    /// Whether `given` is this session's CSRF token.
    pub fn csrf_matches(&self, given: &str) -> bool {
        csrf_ok(&self.secret, given)
    }
}

/// The refusal of a POST from another origin.
pub fn foreign_origin() -> ConsoleError {
    ConsoleError::new(
        StatusCode::FORBIDDEN,
        "This request did not come from the console's own pages.",
    )
}

/// The refusal of a POST without the session's CSRF token.
pub fn stale_csrf() -> ConsoleError {
    ConsoleError::new(
        StatusCode::FORBIDDEN,
        "The form's security token is missing or stale; reload the page and try again.",
    )
}

/// The session of a request: None without a cookie or with one whose token
/// is unknown or revoked.
pub async fn session(st: &AppState, headers: &HeaderMap) -> Result<Option<Session>, ConsoleError> {
    let Some(secret) = cookie_secret(headers) else {
        return Ok(None);
    };
    let Some(principal) = st.engine.authenticate(&secret).await? else {
        return Ok(None);
    };
    Ok(Some(Session {
        principal,
        csrf: csrf_token(&secret),
        secret,
    }))
}

/// Whether a request comes from the console's origin: its `Origin` header,
/// or failing that its `Referer`, names the public URL's origin or
/// `http(s)://` and the request's own Host. Neither header: refused.
pub fn same_origin(st: &AppState, headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let public = url::Url::parse(&st.public_url)
        .ok()
        .map(|u| u.origin().ascii_serialization());
    let allowed = |origin: &str| {
        public.as_deref() == Some(origin)
            || host.is_some_and(|h| {
                origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    == Some(h)
            })
    };
    if let Some(o) = headers.get(header::ORIGIN) {
        return o.to_str().is_ok_and(|o| o != "null" && allowed(o));
    }
    if let Some(r) = headers.get(header::REFERER) {
        return r
            .to_str()
            .ok()
            .and_then(|r| url::Url::parse(r).ok())
            .is_some_and(|u| allowed(&u.origin().ascii_serialization()));
    }
    false
}

/// A signed-in page's session; without one the browser is sent to the
/// sign-in page.
pub struct Page(pub Session);

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        match session(st, &parts.headers).await {
            Ok(Some(s)) => Ok(Page(s)),
            Ok(None) => Err(to_signin(st, &parts.headers)),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// A redirect to the sign-in page, clearing a cookie whose token is gone.
pub fn to_signin(st: &AppState, headers: &HeaderMap) -> Response {
    let mut resp = Redirect::to("/console/signin").into_response();
    if cookie_secret(headers).is_some() {
        if let Ok(v) = HeaderValue::from_str(&clear_cookie(secure(st))) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// A urlencoded form's fields, in order (a name may repeat).
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// Reads a urlencoded body of at most [`MAX_FORM_BYTES`].
    pub async fn read(headers: &HeaderMap, body: Body) -> Result<Form, ConsoleError> {
        let bytes = tintype_http::limits::read_body(headers, body, MAX_FORM_BYTES)
            .await
            .map_err(|e| {
                let status = if e.is_too_large() {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                };
                ConsoleError::new(status, e.message("the form"))
            })?;
        Ok(Form(
            url::form_urlencoded::parse(&bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A POSTed form of a signed-in page, read and checked (origin and CSRF
/// token) for its session.
pub struct Posted(pub Session, pub Form);

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, st: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Page(s) = Page::from_request_parts(&mut parts, st).await?;
        let form = Form::read(&parts.headers, body)
            .await
            .map_err(IntoResponse::into_response)?;
        s.check_post(st, &parts.headers, form.get("csrf"))
            .map_err(IntoResponse::into_response)?;
        Ok(Posted(s, form))
    }
}

fn signin_form(nonce: &str, message: Option<&str>) -> maud::Markup {
    html! {
        @if let Some(m) = message {
            p.error role="alert" { (m) }
        }
        form.card method="post" action="/console/signin" {
            input type="hidden" name="csrf" value=(nonce);
            label for="token" { "API token" }
            input #token type="password" name="token" required autocomplete="current-password"
                maxlength="256" spellcheck="false";
            p.hint { "A token made with " code { "tintype token create USER" } " or by an admin on the Users page." }
            button type="submit" { "Sign in" }
        }
    }
}

/// The sign-in page with a fresh sign-in nonce: in a cookie that only
/// this path receives and in the form, which must send it back (no session
/// exists yet to derive a CSRF token from).
fn signin_response(st: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    let mut resp = page::render(status, "Sign in", None, signin_form(&nonce, message));
    let cookie = format!(
        "{SIGNIN_COOKIE}={nonce}; HttpOnly; SameSite=Strict; Path=/console/signin; Max-Age=3600{}",
        if secure(st) { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

pub async fn signin_page(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = session(&st, &headers).await {
        return Redirect::to("/").into_response();
    }
    signin_response(&st, StatusCode::OK, None)
}

pub async fn signin(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let form = Form::read(&headers, body).await?;
    // No session yet: a sign-in from another site's page (login CSRF) is
    // refused by its origin and by the nonce it cannot know.
    if !same_origin(&st, &headers) {
        return Err(foreign_origin());
    }
    let nonce = cookie_value(&headers, SIGNIN_COOKIE);
    let nonce_ok = match (nonce.as_deref(), form.get("csrf")) {
        (Some(a), Some(b)) => a.len() == 32 && a == b,
        _ => false,
    };
    if !nonce_ok {
        return Ok(signin_response(
            &st,
            StatusCode::FORBIDDEN,
            Some("The sign-in form was stale; please sign in again."),
        ));
    }
    let token = form.get("token").unwrap_or("").trim();
    let principal = if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
        None
    } else {
        st.engine.authenticate(token).await?
    };
    if principal.is_none() {
        return Ok(signin_response(
            &st,
            StatusCode::UNAUTHORIZED,
            Some("That token is unknown or revoked."),
        ));
    }
    let mut resp = Redirect::to("/").into_response();
    let cookie = HeaderValue::from_str(&session_cookie(token, secure(&st)))
        .map_err(|_| ConsoleError::new(StatusCode::BAD_REQUEST, "That token is malformed."))?;
    resp.headers_mut().append(header::SET_COOKIE, cookie);
    let spent = format!(
        "{SIGNIN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/console/signin; Max-Age=0{}",
        if secure(&st) { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&spent) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

pub async fn signout(
    State(st): State<AppState>,
    Posted(..): Posted,
) -> Result<Response, ConsoleError> {
    let mut resp = Redirect::to("/console/signin").into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(secure(&st))) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_httponly_strict_and_secure_over_https() {
        let c = session_cookie("tt_abc", true);
        assert!(c.starts_with("tintype_session=tt_abc;"), "{c}");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
            assert!(c.split("; ").any(|p| p == flag), "{flag} in {c}");
        }
        let plain = session_cookie("tt_abc", false);
        assert!(!plain.contains("Secure"), "{plain}");
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }

    #[test]
    fn csrf_tokens_belong_to_their_session() {
        let a = csrf_token("tt_one");
        assert_eq!(a.len(), 64);
        assert!(csrf_ok("tt_one", &a));
        assert!(!csrf_ok("tt_two", &a));
        assert!(!csrf_ok("tt_one", ""));
        assert!(!csrf_ok("tt_one", "zz"));
        assert!(!csrf_ok("tt_one", &a[..62]));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; tintype_session=tt_x; b=2"),
        );
        assert_eq!(cookie_secret(&h).as_deref(), Some("tt_x"));
        h.insert(header::COOKIE, HeaderValue::from_static("tintype_session="));
        assert_eq!(cookie_secret(&h), None);
    }
}
