//! tintype-fetch: the one way tintype reaches out to URLs it was given.
//!
//! Used by the background URL import, Djinn's `download_url`, PopIt remote
//! images and webhook POSTs. Every fetch goes through the same guard:
//!
//! * only `http` and `https`;
//! * a host given as an IP literal (in any spelling the URL standard accepts,
//!   e.g. `http://2130706433/` or `http://0177.0.0.1/`) must be public, see
//!   [`is_public_ip`]; this is checked on every hop, redirects included;
//! * a host name is resolved once by the fetcher's own resolver, every
//!   resolved address must be public, and the connection goes to exactly
//!   those addresses (no second lookup, no proxy from the environment);
//! * redirects are followed by hand, at most `max_redirects`;
//! * the body is capped at `max_bytes` and the whole fetch, body included,
//!   at `timeout`.
//!
//! `allow_private: true` lifts the address rule (local deployments, tests).

mod error;
mod ip;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, StreamExt};
use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, LOCATION};
use reqwest::redirect;
use tokio::time::Instant;
use url::{Host, Url};

pub use error::FetchError;
pub use ip::is_public_ip;

/// Limits and rules for every request a [`Fetcher`] makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPolicy {
    /// Allow loopback, private and other non-public addresses.
    pub allow_private: bool,
    /// Largest body accepted, in bytes.
    pub max_bytes: u64,
    /// Deadline for the whole fetch: all redirects, headers and body.
    pub timeout: Duration,
    /// Deadline for establishing one connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Most redirects followed by [`Fetcher::get`].
    pub max_redirects: usize,
    /// `User-Agent` sent with every request.
    pub user_agent: String,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        FetchPolicy {
            allow_private: false,
            max_bytes: 50 * 1024 * 1024,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
            user_agent: "tintype/0.1".to_owned(),
        }
    }
}

/// A guarded HTTP client. Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct Fetcher {
    policy: Arc<FetchPolicy>,
    client: reqwest::Client,
    /// Test hook: an `ip:port` that the address rule lets through on the
    /// first hop only, so loopback tests can exercise the guard on redirects.
    /// Always `None` outside this crate's unit tests.
    first_hop_exempt: Option<SocketAddr>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A successful (2xx) response whose body has not been read yet.
pub struct FetchResponse {
    /// The URL that answered, after redirects.
    pub final_url: Url,
    pub status: u16,
    pub content_type: Option<String>,
    /// The announced length, if any (already checked against `max_bytes`).
    pub content_length: Option<u64>,
    /// The body. Fails with [`FetchError::TooLarge`] as soon as more than
    /// `max_bytes` arrived and with [`FetchError::Timeout`] at the fetch
    /// deadline; ends after the first error.
    pub body: BoxStream<'static, Result<Bytes, FetchError>>,
}

impl fmt::Debug for FetchResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchResponse")
            .field("final_url", &self.final_url.as_str())
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

impl FetchResponse {
    /// Reads the whole body into memory (bounded by `max_bytes`).
    pub async fn bytes(mut self) -> Result<Bytes, FetchError> {
        let capacity = self
            .content_length
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
            .min(1 << 20);
        let mut buf = BytesMut::with_capacity(capacity);
        while let Some(chunk) = self.body.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

impl Fetcher {
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let resolver = GuardedResolver {
            allow_private: policy.allow_private,
        };
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(policy.user_agent.clone())
            .connect_timeout(policy.connect_timeout)
            .redirect(redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(resolver))
            .build()
            .map_err(|e| FetchError::Io(format!("cannot build HTTP client: {}", chain(&e))))?;
        Ok(Fetcher {
            policy: Arc::new(policy),
            client,
            first_hop_exempt: None,
        })
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    #[cfg(test)]
    pub(crate) fn with_first_hop_exempt(mut self, addr: SocketAddr) -> Self {
        self.first_hop_exempt = Some(addr);
        self
    }

    /// Validates a URL without touching the network: http/https only, a host
    /// present, and an IP-literal host public unless `allow_private`. Host
    /// names are checked when they are resolved.
    pub fn check_url(&self, url: &str) -> Result<Url, FetchError> {
        let parsed = Url::parse(url).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
        self.check_parsed(&parsed, false)?;
        Ok(parsed)
    }

    fn check_parsed(&self, url: &Url, first_hop: bool) -> Result<(), FetchError> {
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(FetchError::Scheme(other.to_owned())),
        }
        let ip = match url.host() {
            None => return Err(FetchError::InvalidUrl("URL has no host".to_owned())),
            Some(Host::Domain("")) => {
                return Err(FetchError::InvalidUrl("URL has an empty host".to_owned()))
            }
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            // The URL parser turns every IPv4 spelling into Host::Ipv4, but be
            // safe in case a domain would still read as an address downstream.
            Some(Host::Domain(name)) => match name.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(_) => return Ok(()),
            },
        };
        if self.policy.allow_private || is_public_ip(ip) {
            return Ok(());
        }
        if first_hop {
            if let (Some(exempt), Some(port)) = (self.first_hop_exempt, url.port_or_known_default())
            {
                if exempt == SocketAddr::new(ip, port) {
                    return Ok(());
                }
            }
        }
        Err(FetchError::NotPublic(ip))
    }

    /// GET with the guard. Follows up to `max_redirects` redirects, checking
    /// every hop. A non-2xx final status is [`FetchError::Status`]; a
    /// `Content-Length` above `max_bytes` is [`FetchError::TooLarge`] before
    /// any of the body is read.
    pub async fn get(&self, url: &str) -> Result<FetchResponse, FetchError> {
        let deadline = Instant::now() + self.policy.timeout;
        let mut current = Url::parse(url).map_err(|e| FetchError::InvalidUrl(e.to_string()))?;
        let mut redirects = 0usize;
        loop {
            self.check_parsed(&current, redirects == 0)?;
            let request = self.client.get(current.clone());
            let resp = self.send(request, deadline).await?;
            let status = resp.status();
            if status.is_redirection() {
                if let Some(location) = resp.headers().get(LOCATION) {
                    if redirects >= self.policy.max_redirects {
                        return Err(FetchError::TooManyRedirects(self.policy.max_redirects));
                    }
                    let location = location.to_str().map_err(|_| {
                        FetchError::InvalidUrl("redirect Location is not valid text".to_owned())
                    })?;
                    let next = current
                        .join(location)
                        .map_err(|e| FetchError::InvalidUrl(format!("redirect Location: {e}")))?;
                    tracing::debug!(from = %current, to = %next, "following redirect");
                    drop(resp);
                    current = next;
                    redirects += 1;
                    continue;
                }
            }
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let content_length = resp.content_length();
            let max = self.policy.max_bytes;
            if content_length.is_some_and(|n| n > max) {
                return Err(FetchError::TooLarge(max));
            }
            let content_type = resp
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Ok(FetchResponse {
                final_url: current,
                status: status.as_u16(),
                content_type,
                content_length,
                body: limited_body(resp, max, deadline, self.policy.timeout),
            });
        }
    }

    /// POSTs a JSON body (webhooks) with the same guard. Redirects are not
    /// followed; any status, 3xx/4xx/5xx included, is returned as a value.
    pub async fn post_json(
        &self,
        url: &str,
        body: Bytes,
        headers: &[(&str, String)],
    ) -> Result<u16, FetchError> {
        let deadline = Instant::now() + self.policy.timeout;
        let url = self.check_url(url)?;
        let mut request = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| FetchError::InvalidHeader(format!("bad header name {name:?}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|_| FetchError::InvalidHeader(format!("bad value for header {name}")))?;
            request = request.header(name, value);
        }
        let resp = self.send(request.body(body), deadline).await?;
        Ok(resp.status().as_u16())
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        deadline: Instant,
    ) -> Result<reqwest::Response, FetchError> {
        match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_) => Err(FetchError::Timeout(self.policy.timeout)),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(map_reqwest_error(&e, &self.policy)),
        }
    }
}

/// Wraps the response body so that it stops with an error past `max` bytes or
/// at `deadline`, and ends after the first error.
fn limited_body(
    resp: reqwest::Response,
    max: u64,
    deadline: Instant,
    timeout: Duration,
) -> BoxStream<'static, Result<Bytes, FetchError>> {
    struct State {
        inner: BoxStream<'static, reqwest::Result<Bytes>>,
        received: u64,
        done: bool,
    }
    let state = State {
        inner: resp.bytes_stream().boxed(),
        received: 0,
        done: false,
    };
    futures::stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        let item = match tokio::time::timeout_at(deadline, st.inner.next()).await {
            Err(_) => Err(FetchError::Timeout(timeout)),
            Ok(None) => return None,
            Ok(Some(Err(e))) => Err(if e.is_timeout() {
                FetchError::Timeout(timeout)
            } else {
                FetchError::Io(chain(&e))
            }),
            Ok(Some(Ok(chunk))) => {
                let len = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
                st.received = st.received.saturating_add(len);
                if st.received > max {
                    Err(FetchError::TooLarge(max))
                } else {
                    Ok(chunk)
                }
            }
        };
        if item.is_err() {
            st.done = true;
        }
        Some((item, st))
    })
    .boxed()
}

/// Resolves host names once with the system resolver and refuses the lot if
/// any address is not public. hyper connects to exactly what this returns.
struct GuardedResolver {
    allow_private: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| boxed(FetchError::Dns(format!("{host}: {e}"))))?
                .collect();
            if addrs.is_empty() {
                return Err(boxed(FetchError::Dns(format!("{host}: no addresses"))));
            }
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| !is_public_ip(a.ip())) {
                    tracing::info!(%host, addr = %bad.ip(), "refusing non-public address");
                    return Err(boxed(FetchError::NotPublic(bad.ip())));
                }
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

fn boxed(e: FetchError) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

/// Finds our own error (from the resolver) inside a reqwest error, or
/// classifies the reqwest error.
fn map_reqwest_error(e: &reqwest::Error, policy: &FetchPolicy) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(ours) = err.downcast_ref::<FetchError>() {
            return ours.clone();
        }
        source = err.source();
    }
    if e.is_timeout() {
        if e.is_connect() {
            FetchError::Timeout(policy.connect_timeout)
        } else {
            FetchError::Timeout(policy.timeout)
        }
    } else if e.is_connect() {
        FetchError::Connect(chain(e))
    } else {
        FetchError::Io(chain(e))
    }
}

/// An error and its causes on one line, leaving out the generic wrappers
/// ("error sending request for url (...)", "client error (Connect)") so that
/// the message shown to users is the cause, e.g. "tcp connect error:
/// Connection refused (os error 111)".
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        let generic = (err.is::<reqwest::Error>() && err.source().is_some())
            || err.to_string().starts_with("client error (");
        let msg = err.to_string();
        if !generic && !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
        source = err.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}
