//! Network tests against servers on loopback started by each test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::{FetchError, FetchPolicy, Fetcher};

/// A request as the test server saw it.
#[derive(Debug, Clone)]
struct SeenRequest {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl SeenRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does for one request.
enum Step {
    Write(Vec<u8>),
    Sleep(Duration),
}

type Handler = Arc<dyn Fn(&SeenRequest, SocketAddr) -> Vec<Step> + Send + Sync>;

struct TestServer {
    addr: SocketAddr,
    seen: mpsc::UnboundedReceiver<SeenRequest>,
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn requests(&mut self) -> Vec<SeenRequest> {
        let mut out = Vec::new();
        while let Ok(r) = self.seen.try_recv() {
            out.push(r);
        }
        out
    }
}

async fn serve(
    handler: impl Fn(&SeenRequest, SocketAddr) -> Vec<Step> + Send + Sync + 'static,
) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let (tx, seen) = mpsc::unbounded_channel();
    let handler: Handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let handler = handler.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let _ = handle(sock, addr, handler, tx).await;
            });
        }
    });
    TestServer { addr, seen }
}

async fn handle(
    mut sock: TcpStream,
    addr: SocketAddr,
    handler: Handler,
    tx: mpsc::UnboundedSender<SeenRequest>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos;
        }
        assert!(buf.len() < 65536, "request head too large");
    };
    let head = String::from_utf8_lossy(buf.get(..head_end).unwrap_or_default()).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let content_length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf.get(head_end + 4..).unwrap_or_default().to_vec();
    while body.len() < content_length {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let req = SeenRequest {
        method,
        path,
        headers,
        body,
    };
    let steps = handler(&req, addr);
    let _ = tx.send(req);
    for step in steps {
        match step {
            Step::Write(bytes) => sock.write_all(&bytes).await?,
            Step::Sleep(d) => tokio::time::sleep(d).await,
        }
    }
    sock.shutdown().await
}

/// A complete response with Content-Length.
fn response(status: u16, extra_headers: &[(&str, &str)], body: &[u8]) -> Vec<Step> {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (n, v) in extra_headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    vec![Step::Write(bytes)]
}

fn redirect_to(location: &str) -> Vec<Step> {
    response(302, &[("Location", location)], b"")
}

fn open_policy() -> FetchPolicy {
    FetchPolicy {
        allow_private: true,
        timeout: Duration::from_secs(10),
        connect_timeout: Duration::from_secs(5),
        ..FetchPolicy::default()
    }
}

fn guarded_policy() -> FetchPolicy {
    FetchPolicy {
        allow_private: false,
        ..open_policy()
    }
}

async fn fetch_all(f: &Fetcher, url: &str) -> Result<Bytes, FetchError> {
    f.get(url).await?.bytes().await
}

#[tokio::test]
async fn good_body() {
    let mut srv =
        serve(|_, _| response(200, &[("Content-Type", "image/png")], b"hello image")).await;
    let f = Fetcher::new(open_policy()).expect("fetcher");
    let resp = f.get(&srv.url("/a.png")).await.expect("get");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_type.as_deref(), Some("image/png"));
    assert_eq!(resp.content_length, Some(11));
    assert_eq!(resp.final_url.as_str(), srv.url("/a.png"));
    assert_eq!(
        resp.bytes().await.expect("body"),
        Bytes::from_static(b"hello image")
    );
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    let req = reqs.first().expect("one request");
    assert_eq!(req.method, "GET");
    assert_eq!(req.path, "/a.png");
    assert_eq!(req.header("user-agent"), Some("tintype/0.1"));
}

#[tokio::test]
async fn status_404() {
    let srv = serve(|_, _| response(404, &[], b"nope")).await;
    let f = Fetcher::new(open_policy()).expect("fetcher");
    let err = f.get(&srv.url("/missing")).await.expect_err("404");
    assert_eq!(err, FetchError::Status(404));
    assert_eq!(err.to_string(), "HTTP 404");
}

#[tokio::test]
async fn slow_body_times_out() {
    let srv = serve(|_, _| {
        vec![
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst".to_vec()),
            Step::Sleep(Duration::from_secs(60)),
        ]
    })
    .await;
    let f = Fetcher::new(FetchPolicy {
        timeout: Duration::from_secs(1),
        ..open_policy()
    })
    .expect("fetcher");
    let started = std::time::Instant::now();
    let resp = f
        .get(&srv.url("/slow"))
        .await
        .expect("headers arrive in time");
    let err = resp.bytes().await.expect_err("body must time out");
    assert_eq!(err, FetchError::Timeout(Duration::from_secs(1)));
    assert_eq!(err.to_string(), "timed out after 1s");
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn slow_headers_time_out() {
    let srv = serve(|_, _| {
        let mut steps = vec![Step::Sleep(Duration::from_secs(60))];
        steps.extend(response(200, &[], b"late"));
        steps
    })
    .await;
    let f = Fetcher::new(FetchPolicy {
        timeout: Duration::from_secs(1),
        ..open_policy()
    })
    .expect("fetcher");
    let started = std::time::Instant::now();
    let err = f.get(&srv.url("/slow")).await.expect_err("must time out");
    assert_eq!(err, FetchError::Timeout(Duration::from_secs(1)));
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[tokio::test]
async fn too_large_with_content_length_fails_before_reading() {
    // Announces 5000 bytes, then never sends them: reading the body would
    // end in a timeout, so TooLarge proves the check came first.
    let srv = serve(|_, _| {
        vec![
            Step::Write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec()),
            Step::Sleep(Duration::from_secs(60)),
        ]
    })
    .await;
    let f = Fetcher::new(FetchPolicy {
        max_bytes: 1000,
        timeout: Duration::from_secs(5),
        ..open_policy()
    })
    .expect("fetcher");
    let err = f.get(&srv.url("/big")).await.expect_err("too large");
    assert_eq!(err, FetchError::TooLarge(1000));
    assert_eq!(err.to_string(), "response exceeds 1000 bytes");
}

#[tokio::test]
async fn too_large_without_content_length() {
    let srv = serve(|_, _| {
        let mut bytes = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 5000));
        // Keep the connection open after: the limit must trip, not EOF.
        vec![Step::Write(bytes), Step::Sleep(Duration::from_secs(60))]
    })
    .await;
    let f = Fetcher::new(FetchPolicy {
        max_bytes: 1000,
        timeout: Duration::from_secs(5),
        ..open_policy()
    })
    .expect("fetcher");
    let resp = f.get(&srv.url("/big")).await.expect("headers");
    assert_eq!(resp.content_length, None);
    let mut body = resp.body;
    let mut received = 0usize;
    let mut last = None;
    while let Some(item) = body.next().await {
        match item {
            Ok(chunk) => received += chunk.len(),
            Err(e) => last = Some(e),
        }
    }
    assert_eq!(last, Some(FetchError::TooLarge(1000)));
    assert!(received <= 1000, "passed on {received} bytes");
}

#[tokio::test]
async fn body_of_exactly_max_bytes_is_fine() {
    let srv = serve(|_, _| {
        let mut bytes = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'y', 1000));
        vec![Step::Write(bytes)]
    })
    .await;
    let f = Fetcher::new(FetchPolicy {
        max_bytes: 1000,
        ..open_policy()
    })
    .expect("fetcher");
    let body = fetch_all(&f, &srv.url("/exact")).await.expect("fits");
    assert_eq!(body.len(), 1000);
}

/// /r/N redirects to /r/N+1 (relative Location) until N == stop, which answers 200.
async fn redirect_chain(stop: usize) -> TestServer {
    serve(move |req, _| {
        let n: usize = req
            .path
            .strip_prefix("/r/")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if n >= stop {
            response(200, &[], format!("end {n}").as_bytes())
        } else {
            redirect_to(&format!("/r/{}", n + 1))
        }
    })
    .await
}

#[tokio::test]
async fn redirects_up_to_the_limit_are_followed() {
    let mut srv = redirect_chain(3).await;
    let f = Fetcher::new(FetchPolicy {
        max_redirects: 3,
        ..open_policy()
    })
    .expect("fetcher");
    let resp = f.get(&srv.url("/r/0")).await.expect("3 redirects allowed");
    assert_eq!(resp.final_url.as_str(), srv.url("/r/3"));
    assert_eq!(
        resp.bytes().await.expect("body"),
        Bytes::from_static(b"end 3")
    );
    assert_eq!(srv.requests().len(), 4);
}

#[tokio::test]
async fn redirect_chain_over_the_limit() {
    let mut srv = redirect_chain(usize::MAX).await;
    let f = Fetcher::new(FetchPolicy {
        max_redirects: 3,
        ..open_policy()
    })
    .expect("fetcher");
    let err = f.get(&srv.url("/r/0")).await.expect_err("endless chain");
    assert_eq!(err, FetchError::TooManyRedirects(3));
    // The first request plus three followed redirects, no more.
    assert_eq!(srv.requests().len(), 4);
}

#[tokio::test]
async fn guard_refuses_loopback_literal_and_allow_private_lifts_it() {
    let mut srv = serve(|_, _| response(200, &[], b"secret")).await;
    let guarded = Fetcher::new(guarded_policy()).expect("fetcher");
    let err = guarded
        .get(&srv.url("/"))
        .await
        .expect_err("loopback refused");
    assert_eq!(err, FetchError::NotPublic("127.0.0.1".parse().expect("ip")));
    assert_eq!(err.to_string(), "address 127.0.0.1 is not public");
    assert!(
        srv.requests().is_empty(),
        "the guard must act before connecting"
    );

    let open = Fetcher::new(open_policy()).expect("fetcher");
    assert_eq!(
        fetch_all(&open, &srv.url("/")).await.expect("allowed"),
        "secret"
    );
}

#[tokio::test]
async fn localhost_name_is_refused() {
    let mut srv = serve(|_, _| response(200, &[], b"secret")).await;
    let port = srv.addr.port();
    let guarded = Fetcher::new(guarded_policy()).expect("fetcher");
    let err = guarded
        .get(&format!("http://localhost:{port}/"))
        .await
        .expect_err("localhost refused");
    assert!(
        matches!(err, FetchError::NotPublic(ip) if ip.is_loopback()),
        "got {err:?}"
    );
    assert!(srv.requests().is_empty());

    // Same name with the guard off reaches the server, so the refusal above
    // came from the guard and not from a failing lookup.
    let open = Fetcher::new(open_policy()).expect("fetcher");
    assert_eq!(
        fetch_all(&open, &format!("http://localhost:{port}/"))
            .await
            .expect("allowed"),
        "secret"
    );
}

#[tokio::test]
async fn redirect_to_private_literal_is_refused() {
    let mut srv = serve(|req, addr| {
        if req.path == "/start" {
            redirect_to(&format!("http://127.0.0.1:{}/secret", addr.port()))
        } else {
            response(200, &[], b"secret")
        }
    })
    .await;
    // The guard is on, but the first hop to the test server is let through.
    let f = Fetcher::new(guarded_policy())
        .expect("fetcher")
        .with_first_hop_exempt(srv.addr);
    let err = f
        .get(&srv.url("/start"))
        .await
        .expect_err("redirect refused");
    assert_eq!(err, FetchError::NotPublic("127.0.0.1".parse().expect("ip")));
    let paths: Vec<String> = srv.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/start"]);
}

#[tokio::test]
async fn redirect_to_private_ipv4_spellings_is_refused() {
    for target in [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
    ] {
        let srv = serve(move |_, _| redirect_to(target)).await;
        let f = Fetcher::new(guarded_policy())
            .expect("fetcher")
            .with_first_hop_exempt(srv.addr);
        let err = f.get(&srv.url("/start")).await.expect_err(target);
        assert!(matches!(err, FetchError::NotPublic(_)), "{target}: {err:?}");
    }
}

#[tokio::test]
async fn redirect_to_localhost_name_is_refused() {
    let mut srv = serve(|req, addr| {
        if req.path == "/start" {
            redirect_to(&format!("http://localhost:{}/secret", addr.port()))
        } else {
            response(200, &[], b"secret")
        }
    })
    .await;
    let f = Fetcher::new(guarded_policy())
        .expect("fetcher")
        .with_first_hop_exempt(srv.addr);
    let err = f
        .get(&srv.url("/start"))
        .await
        .expect_err("redirect refused");
    assert!(
        matches!(err, FetchError::NotPublic(ip) if ip.is_loopback()),
        "got {err:?}"
    );
    let paths: Vec<String> = srv.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/start"]);
}

#[tokio::test]
async fn first_hop_exemption_is_exact() {
    // The exemption covers one ip:port on the first hop; another port on
    // loopback stays refused.
    let srv = serve(|_, _| response(200, &[], b"ok")).await;
    let other = serve(|_, _| response(200, &[], b"other")).await;
    let f = Fetcher::new(guarded_policy())
        .expect("fetcher")
        .with_first_hop_exempt(srv.addr);
    assert_eq!(fetch_all(&f, &srv.url("/")).await.expect("exempt"), "ok");
    let err = f.get(&other.url("/")).await.expect_err("not exempt");
    assert!(matches!(err, FetchError::NotPublic(_)), "{err:?}");
}

#[tokio::test]
async fn redirect_to_other_scheme_is_refused() {
    let srv = serve(|_, _| redirect_to("file:///etc/passwd")).await;
    let f = Fetcher::new(open_policy()).expect("fetcher");
    let err = f.get(&srv.url("/start")).await.expect_err("file refused");
    assert_eq!(err, FetchError::Scheme("file".into()));
}

#[tokio::test]
async fn post_json_delivers_body_and_headers_and_returns_status() {
    let mut srv = serve(|_, _| response(500, &[], b"boom")).await;
    let f = Fetcher::new(open_policy()).expect("fetcher");
    let body = Bytes::from_static(br#"{"event":"image.created","id":"abc"}"#);
    let status = f
        .post_json(
            &srv.url("/hook"),
            body.clone(),
            &[("X-Tintype-Signature", "sha256=deadbeef".to_owned())],
        )
        .await
        .expect("a 500 is a value, not an error");
    assert_eq!(status, 500);
    let reqs = srv.requests();
    let req = reqs.first().expect("one request");
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/hook");
    assert_eq!(req.body, body.to_vec());
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-tintype-signature"), Some("sha256=deadbeef"));
}

#[tokio::test]
async fn post_json_does_not_follow_redirects_and_is_guarded() {
    let mut srv = serve(|_, _| redirect_to("/elsewhere")).await;
    let f = Fetcher::new(open_policy()).expect("fetcher");
    let status = f
        .post_json(&srv.url("/hook"), Bytes::from_static(b"{}"), &[])
        .await
        .expect("status");
    assert_eq!(status, 302);
    assert_eq!(srv.requests().len(), 1);

    let guarded = Fetcher::new(guarded_policy()).expect("fetcher");
    let err = guarded
        .post_json(&srv.url("/hook"), Bytes::from_static(b"{}"), &[])
        .await
        .expect_err("loopback refused");
    assert!(matches!(err, FetchError::NotPublic(_)), "{err:?}");
    assert!(srv.requests().is_empty());
}

#[tokio::test]
async fn connection_refused_is_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let f = Fetcher::new(open_policy()).expect("fetcher");
    let err = f
        .get(&format!("http://{addr}/"))
        .await
        .expect_err("refused");
    assert!(matches!(err, FetchError::Connect(_)), "{err:?}");
    assert!(err.to_string().starts_with("connection failed: "), "{err}");
    assert!(err.is_retryable());
}

#[test]
fn check_url_table() {
    let guarded = Fetcher::new(FetchPolicy::default()).expect("fetcher");
    let open = Fetcher::new(open_policy()).expect("fetcher");
    let not_public = |s: &str| FetchError::NotPublic(s.parse().expect("ip"));
    let refused: &[(&str, FetchError)] = &[
        ("http://2130706433/", not_public("127.0.0.1")),
        ("http://0x7f.1/", not_public("127.0.0.1")),
        ("http://0177.0.0.1/", not_public("127.0.0.1")),
        ("http://127.1/", not_public("127.0.0.1")),
        ("http://127.0.0.1./", not_public("127.0.0.1")),
        ("http://[::ffff:7f00:1]/", not_public("::ffff:127.0.0.1")),
        ("http://[::ffff:127.0.0.1]/", not_public("::ffff:127.0.0.1")),
        ("http://[::127.0.0.1]/", not_public("::127.0.0.1")),
        ("http://[::1]:8080/", not_public("::1")),
        ("http://[::]/", not_public("::")),
        ("http://[2002:7f00:1::]/", not_public("2002:7f00:1::")),
        ("http://[64:ff9b::a00:1]/", not_public("64:ff9b::a00:1")),
        ("http://[64:ff9b:1::1]/", not_public("64:ff9b:1::1")),
        ("http://[2001::1]/", not_public("2001::1")),
        ("http://[fd00::1]/", not_public("fd00::1")),
        ("http://[fe80::1]/", not_public("fe80::1")),
        ("http://[ff02::1]/", not_public("ff02::1")),
        ("http://100.64.1.1/", not_public("100.64.1.1")),
        ("http://0.0.0.0/", not_public("0.0.0.0")),
        ("http://0/", not_public("0.0.0.0")),
        ("https://10.1.2.3/x.jpg", not_public("10.1.2.3")),
        ("http://192.168.0.1/", not_public("192.168.0.1")),
        ("http://172.16.0.1/", not_public("172.16.0.1")),
        ("http://169.254.169.254/", not_public("169.254.169.254")),
        ("http://198.18.0.1/", not_public("198.18.0.1")),
        ("http://240.0.0.1/", not_public("240.0.0.1")),
        ("http://255.255.255.255/", not_public("255.255.255.255")),
        ("http://224.0.0.1/", not_public("224.0.0.1")),
        ("http://192.0.2.1/", not_public("192.0.2.1")),
        ("file:///etc/passwd", FetchError::Scheme("file".into())),
        ("ftp://example.com/a.png", FetchError::Scheme("ftp".into())),
        (
            "data:image/png;base64,AAAA",
            FetchError::Scheme("data".into()),
        ),
        ("gopher://example.com/", FetchError::Scheme("gopher".into())),
    ];
    for (url, want) in refused {
        assert_eq!(guarded.check_url(url).as_ref().err(), Some(want), "{url}");
    }
    // Schemes stay refused with allow_private; addresses are then allowed.
    assert_eq!(
        open.check_url("file:///etc/passwd").err(),
        Some(FetchError::Scheme("file".into()))
    );
    assert!(open.check_url("http://2130706433/").is_ok());
    assert!(open.check_url("http://[::1]/").is_ok());

    for url in [
        "http://8.8.8.8/",
        "https://[2606:4700::1111]/a.png",
        "http://[::ffff:8.8.8.8]/",
        "https://example.com/image.jpg?x=1",
        "HTTPS://Example.COM/",
        "http://user:pw@example.com/",
    ] {
        assert!(guarded.check_url(url).is_ok(), "{url} must be allowed");
    }
    for url in [
        "not a url",
        "http://",
        "http://exa mple.com/",
        "https://[::1/",
        "/relative.png",
        "",
    ] {
        assert!(
            matches!(guarded.check_url(url), Err(FetchError::InvalidUrl(_))),
            "{url} must be invalid"
        );
    }
}

#[test]
fn default_policy() {
    let p = FetchPolicy::default();
    assert!(!p.allow_private);
    assert_eq!(p.max_bytes, 50 * 1024 * 1024);
    assert_eq!(p.timeout, Duration::from_secs(30));
    assert_eq!(p.connect_timeout, Duration::from_secs(10));
    assert_eq!(p.max_redirects, 5);
    assert_eq!(p.user_agent, "tintype/0.1");
    let f = Fetcher::new(p.clone()).expect("fetcher");
    assert_eq!(f.policy(), &p);
}

#[tokio::test]
async fn https_uses_rustls_and_reports_handshake_failure() {
    // A plain-HTTP server behind an https URL: the TLS stack must be present
    // (no panic about a missing crypto provider) and the failure reported.
    // The server answers in plain HTTP as soon as anyone connects.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
            let _ = sock.shutdown().await;
        }
    });
    let f = Fetcher::new(open_policy()).expect("fetcher");
    let err = f
        .get(&format!("https://{addr}/"))
        .await
        .expect_err("not TLS");
    assert!(
        matches!(err, FetchError::Connect(_) | FetchError::Io(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn unresolvable_name_is_dns_error() {
    let f = Fetcher::new(guarded_policy()).expect("fetcher");
    let err = f
        .get("http://no-such-host.invalid/")
        .await
        .expect_err("does not resolve");
    assert!(matches!(err, FetchError::Dns(_)), "{err:?}");
    assert!(err
        .to_string()
        .starts_with("DNS lookup failed: no-such-host.invalid"));
}
