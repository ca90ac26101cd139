//! The console over a real server (SQLite + blob directory, or the tier's
//! storage) without a browser: sign-in and its cookie, the origin and CSRF
//! checks on every POST, security headers, the grid and image pages, the
//! bytes under the cookie, and the admin pages. The browser test is
//! crates/tintype/tests/it/console.rs.

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use reqwest::{Client, StatusCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tintype_engine::core::{Job, JobState, Scope};
use tintype_engine::{Engine, JobHandler, JobOutcome};
use tintype_testkit::TestServer;

async fn server() -> TestServer {
    TestServer::start(vec![tintype_console::router()]).await
}

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, seed]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn location(h: &HeaderMap) -> &str {
    h.get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The sign-in form's nonce: (the `Cookie` header to send, the form field).
async fn signin_nonce(s: &TestServer, c: &Client) -> (String, String) {
    let r = c.get(s.url("/console/signin")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let set = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tintype_signin="))
        .expect("a sign-in nonce cookie")
        .to_string();
    for f in ["HttpOnly", "SameSite=Strict", "Path=/console/signin"] {
        assert!(set.split("; ").any(|p| p == f), "{f} in {set}");
    }
    let html = r.text().await.unwrap();
    (set.split(';').next().unwrap().to_string(), csrf_of(&html))
}

/// Signs in with `token`; returns the `Cookie` header value to send.
async fn sign_in(s: &TestServer, c: &Client, token: &str) -> String {
    let (nonce_cookie, nonce) = signin_nonce(s, c).await;
    let r = c
        .post(s.url("/console/signin"))
        .header("origin", &s.base)
        .header("cookie", nonce_cookie)
        .form(&[("token", token), ("csrf", &nonce)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let set = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tintype_session="))
        .expect("a session cookie");
    set.split(';').next().unwrap().to_string()
}

/// The CSRF token a page's forms carry.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no CSRF field in:\n{html}"));
    let rest = &html[at + 19..];
    rest[..rest.find('"').unwrap()].to_string()
}

async fn page(s: &TestServer, c: &Client, cookie: &str, path: &str) -> (StatusCode, String) {
    let r = c
        .get(s.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.text().await.unwrap())
}

/// Uploads through the console as the page's script does.
async fn console_upload(
    s: &TestServer,
    c: &Client,
    cookie: &str,
    csrf: Option<&str>,
    origin: &str,
    name: &str,
    bytes: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
    );
    let mut req = c
        .post(s.url("/console/upload"))
        .header("cookie", cookie)
        .header("origin", origin)
        .multipart(form);
    if let Some(t) = csrf {
        req = req.header("x-csrf-token", t);
    }
    req.send().await.unwrap()
}

fn assert_security_headers(h: &HeaderMap, what: &str) {
    assert_eq!(
        h.get("content-security-policy")
            .and_then(|v| v.to_str().ok()),
        Some(tintype_console::CSP),
        "{what}"
    );
    assert_eq!(
        h.get("x-content-type-options").unwrap(),
        "nosniff",
        "{what}"
    );
    assert_eq!(h.get("referrer-policy").unwrap(), "same-origin", "{what}");
}

/// What the CSP would block: inline scripts, style attributes, handlers.
fn assert_csp_clean(html: &str) {
    assert!(!html.contains("style="), "a style attribute");
    assert!(!html.contains("<style"), "a style element");
    assert!(!html.contains("<script>"), "an inline script");
    assert!(!html.contains(" onclick=") && !html.contains(" onload="));
    assert!(
        !html.contains("http://") || html.contains("openstreetmap"),
        "an absolute asset URL"
    );
    assert!(
        html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    );
}

#[tokio::test]
async fn signing_in_sets_a_strict_cookie_and_signing_out_or_revoking_ends_it() {
    let s = server().await;
    let c = client();
    let token = s.user_token("ann", &[]).await;

    let r = c.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(r.headers()), "/console/signin");
    assert_security_headers(r.headers(), "the redirect");

    let r = c.get(s.url("/console/signin")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_security_headers(r.headers(), "the sign-in page");
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let html = r.text().await.unwrap();
    assert!(html.contains("name=\"token\""));
    assert_csp_clean(&html);

    for (path, ct) in [
        ("/console/static/console.css", "text/css"),
        ("/console/static/console.js", "text/javascript"),
    ] {
        let r = c.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_security_headers(r.headers(), path);
        let got = r.headers().get("content-type").unwrap().to_str().unwrap();
        assert!(got.starts_with(ct), "{path}: {got}");
        let etag = r.headers().get("etag").unwrap().clone();
        let again = c
            .get(s.url(path))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }

    // A wrong token, a sign-in posted from another site, one without the
    // form's nonce.
    let (nonce_cookie, nonce) = signin_nonce(&s, &c).await;
    let signin = |origin: &'static str, token: &str, nonce: Option<&str>| {
        let mut form = vec![("token", token.to_string())];
        if let Some(n) = nonce {
            form.push(("csrf", n.to_string()));
        }
        c.post(s.url("/console/signin"))
            .header(
                "origin",
                if origin.is_empty() {
                    s.base.as_str()
                } else {
                    origin
                },
            )
            .header("cookie", &nonce_cookie)
            .form(&form)
            .send()
    };
    let r = signin("", "tt_nope", Some(&nonce)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .all(|v| !v.to_str().unwrap().starts_with("tintype_session")));
    for (what, r) in [
        (
            "another origin",
            signin("https://evil.example", &token, Some(&nonce)).await,
        ),
        ("no nonce", signin("", &token, None).await),
        (
            "another nonce",
            signin("", &token, Some(&"a".repeat(32))).await,
        ),
    ] {
        let r = r.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(
            r.headers()
                .get_all(SET_COOKIE)
                .iter()
                .all(|v| !v.to_str().unwrap().starts_with("tintype_session")),
            "{what}"
        );
    }

    let r = signin("", &token, Some(&nonce)).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(r.headers()), "/");
    let set = r
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tintype_session="))
        .unwrap()
        .to_string();
    let flags: Vec<&str> = set.split("; ").collect();
    for f in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(flags.contains(&f), "{f} in {set}");
    }
    assert!(!flags.contains(&"Secure"), "plain http: {set}");
    let cookie = set.split(';').next().unwrap().to_string();

    let (status, html) = page(&s, &c, &cookie, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("ann") && html.contains("id=\"grid\""));
    assert_csp_clean(&html);
    assert!(!html.contains("/console/admin"), "no admin links for ann");

    // Sign-out is a POST like the others.
    let r = c
        .post(s.url("/console/signout"))
        .header("cookie", &cookie)
        .header("origin", &s.base)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let csrf = csrf_of(&html);
    let r = c
        .post(s.url("/console/signout"))
        .header("cookie", &cookie)
        .header("origin", &s.base)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(r.headers()), "/console/signin");
    let set = r.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        set.starts_with("tintype_session=;") && set.contains("Max-Age=0"),
        "{set}"
    );

    // Revoking the token ends the session.
    let cookie = sign_in(&s, &c, &token).await;
    assert_eq!(page(&s, &c, &cookie, "/").await.0, 200);
    let tok = s.engine.tokens("ann").await.unwrap();
    s.engine.revoke_token(&tok[0].id).await.unwrap();
    let r = c
        .get(s.url("/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(r.headers()), "/console/signin");
    let set = r.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    assert!(
        set.contains("Max-Age=0"),
        "the dead cookie is cleared: {set}"
    );
}

#[tokio::test]
async fn every_post_needs_the_console_origin_and_the_csrf_token() {
    let s = server().await;
    let c = client();
    let token = s.user_token("bea", &[]).await;
    let cookie = sign_in(&s, &c, &token).await;
    let (_, html) = page(&s, &c, &cookie, "/").await;
    let csrf = csrf_of(&html);

    // Uploads: no token, a wrong one, another origin, then right.
    let r = console_upload(&s, &c, &cookie, None, &s.base, "a.png", png(8, 8, 1)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let wrong = "0".repeat(64);
    let r = console_upload(
        &s,
        &c,
        &cookie,
        Some(&wrong),
        &s.base,
        "a.png",
        png(8, 8, 1),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.text().await.unwrap().contains("security token"));
    let r = console_upload(
        &s,
        &c,
        &cookie,
        Some(&csrf),
        "http://evil.example",
        "a.png",
        png(8, 8, 1),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let user = s.engine.user("bea").await.unwrap();
    let none = s.engine.list_images(user.id, None, 10).await.unwrap();
    assert!(none.images.is_empty(), "nothing stored by a refused upload");

    let r = console_upload(&s, &c, &cookie, Some(&csrf), &s.base, "a.png", png(8, 8, 1)).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let body: serde_json::Value = r.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(body["images"][0]["name"], "a.png");
    let tile = body["images"][0]["tile"].as_str().unwrap();
    assert!(
        tile.contains(&format!("/console/images/{id}/variants/thumbnail")),
        "{tile}"
    );

    // The plain form (no script): the csrf field first, then the files.
    let plain_form = |csrf_first: bool| {
        let file = reqwest::multipart::Part::bytes(png(8, 8, 9)).file_name("form.png");
        let form = reqwest::multipart::Form::new();
        let form = if csrf_first {
            form.text("csrf", csrf.clone()).part("file", file)
        } else {
            form.part("file", file).text("csrf", csrf.clone())
        };
        c.post(s.url("/console/upload"))
            .header("cookie", &cookie)
            .header("origin", &s.base)
            .multipart(form)
            .send()
    };
    let r = plain_form(false).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a file before the token");
    let r = plain_form(true).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(r.headers()), "/");
    let listed = s.engine.list_images(user.id, None, 10).await.unwrap();
    let names: Vec<_> = listed.images.iter().map(|i| i.name.clone()).collect();
    assert_eq!(
        names,
        vec![Some("form.png".to_string()), Some("a.png".to_string())]
    );

    // A refusal carries the server's reason, as the native API words it.
    let r = console_upload(
        &s,
        &c,
        &cookie,
        Some(&csrf),
        &s.base,
        "x.png",
        b"not a picture".to_vec(),
    )
    .await;
    assert!(r.status().is_client_error(), "{}", r.status());
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(!body["detail"].as_str().unwrap().is_empty());

    let delete = |origin: Option<&'static str>, referer: Option<String>, csrf: Option<String>| {
        let mut req = c
            .post(s.url(&format!("/console/images/{id}/delete")))
            .header("cookie", &cookie);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if let Some(r) = referer {
            req = req.header("referer", r);
        }
        let form: Vec<(&str, String)> = csrf.map(|t| vec![("csrf", t)]).unwrap_or_default();
        req.form(&form).send()
    };
    let here = s.url("/console/images/x/delete");
    for (what, r) in [
        (
            "no CSRF token",
            delete(None, Some(here.clone()), None).await,
        ),
        (
            "a foreign Origin",
            delete(Some("https://evil.example"), None, Some(csrf.clone())).await,
        ),
        (
            "a foreign Referer",
            delete(
                None,
                Some("https://evil.example/x".into()),
                Some(csrf.clone()),
            )
            .await,
        ),
        (
            "neither Origin nor Referer",
            delete(None, None, Some(csrf.clone())).await,
        ),
        (
            "the null Origin",
            delete(Some("null"), None, Some(csrf.clone())).await,
        ),
    ] {
        let r = r.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{what}");
        assert!(
            s.engine.image(&id).await.is_ok(),
            "{what}: the image is kept"
        );
    }
    // Another session's token does not do either.
    let other = s.user_token("bea", &[]).await;
    let other_csrf = tintype_console::csrf_token(&other);
    assert_ne!(other_csrf, csrf);
    let r = delete(None, Some(here.clone()), Some(other_csrf))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The confirmation page, then the delete (Referer alone is enough).
    let (status, html) = page(&s, &c, &cookie, &format!("/console/images/{id}/delete")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Delete for good"));
    let r = delete(None, Some(here), Some(csrf.clone())).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(s.engine.image(&id).await.is_err(), "deleted");
}

#[tokio::test]
async fn the_grid_pages_filters_and_shows_images_served_under_the_cookie() {
    let s = server().await;
    let c = client();
    let token = s.user_token("cy", &[]).await;
    let cookie = sign_in(&s, &c, &token).await;
    let (_, html) = page(&s, &c, &cookie, "/").await;
    assert!(html.contains("No images yet"));
    let csrf = csrf_of(&html);
    // 25 pictures: a page of 24 and one more.
    for n in 0..25u8 {
        let name = if n == 7 {
            "Cat on a mat.png".to_string()
        } else {
            format!("p{n}.png")
        };
        let r = console_upload(&s, &c, &cookie, Some(&csrf), &s.base, &name, png(12, 9, n)).await;
        assert_eq!(r.status(), StatusCode::CREATED, "{name}");
    }
    let tiles = |html: &str| html.matches("<li class=\"tile\"").count();
    let (status, first) = page(&s, &c, &cookie, "/").await;
    assert_eq!(status, 200);
    assert_eq!(tiles(&first), 24);
    assert!(
        first.find("p24.png").unwrap() < first.find("p23.png").unwrap(),
        "newest first"
    );
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .map(|r| r[..r.find('"').unwrap()].replace("&amp;", "&"))
        .expect("a link to the next page");
    let (_, second) = page(&s, &c, &cookie, &next).await;
    assert_eq!(tiles(&second), 1);
    assert!(second.contains("p0.png") && !first.contains("p0.png"));
    assert!(!second.contains("rel=\"next\""));

    let (_, cats) = page(&s, &c, &cookie, "/?kind=picture&name=cAt").await;
    assert_eq!(tiles(&cats), 1);
    assert!(cats.contains("Cat on a mat.png"));
    let (_, disks) = page(&s, &c, &cookie, "/?kind=disk").await;
    assert_eq!(tiles(&disks), 0);
    assert!(disks.contains("No image matches."));
    assert!(disks.contains("aria-current=\"page\">Disk images"));

    // The image page: facts, variants, the bytes under the cookie.
    let user = s.engine.user("cy").await.unwrap();
    let img = s
        .engine
        .list_images(user.id, None, 1)
        .await
        .unwrap()
        .images
        .remove(0);
    let (status, html) = page(&s, &c, &cookie, &format!("/console/images/{}", img.id)).await;
    assert_eq!(status, 200);
    assert_csp_clean(&html);
    assert!(html.contains(&img.content.sha256));
    assert!(html.contains("12 × 9 px"));
    assert!(html.contains("the native API (or this console)"));
    assert!(html.contains("id=\"variants\"") && html.contains(">thumbnail</a>"));
    for path in [
        format!("/console/images/{}/variants/thumbnail", img.id),
        format!("/console/images/{}/original", img.id),
    ] {
        let r = c
            .get(s.url(&path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_security_headers(r.headers(), &path);
        let vary: Vec<_> = r
            .headers()
            .get_all("vary")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert!(vary.contains(&"Cookie"), "{path}: Vary {vary:?}");
        let ct = r
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(ct.starts_with("image/"), "{path}: {ct}");
        assert!(!r.bytes().await.unwrap().is_empty());
        let anon = c.get(s.url(&path)).send().await.unwrap();
        assert_eq!(
            anon.status(),
            StatusCode::SEE_OTHER,
            "{path} without the cookie"
        );
    }
    // The rendered thumbnail is listed on the page now.
    let (_, html) = page(&s, &c, &cookie, &format!("/console/images/{}", img.id)).await;
    assert!(
        !html.contains("rendered when first asked for (fit 200 × 200)"),
        "{html}"
    );

    // Another user's image does not exist for this session.
    let other = s.user_token("dee", &[]).await;
    let other_cookie = sign_in(&s, &c, &other).await;
    let (status, _) = page(
        &s,
        &c,
        &other_cookie,
        &format!("/console/images/{}", img.id),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = c
        .get(s.url(&format!("/console/images/{}/original", img.id)))
        .header("cookie", &other_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// Fails its first run, succeeds after.
struct FailsOnce(Arc<AtomicUsize>);

#[async_trait::async_trait]
impl JobHandler for FailsOnce {
    async fn run(&self, _: &Arc<Engine>, _: &Job) -> JobOutcome {
        if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
            JobOutcome::Fail("the first run breaks".into())
        } else {
            JobOutcome::Done
        }
    }
}

async fn wait_for_state(s: &TestServer, id: i64, state: JobState) -> Job {
    for _ in 0..200 {
        let j = s.engine.job(id).await.unwrap().unwrap();
        if j.state == state {
            return j;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("job {id} never became {state:?}");
}

#[tokio::test]
async fn admin_pages_manage_users_tokens_quotas_and_jobs_for_admins_only() {
    let s = server().await;
    let c = client();
    let plain = s.user_token("eve", &[]).await;
    let plain_cookie = sign_in(&s, &c, &plain).await;
    let (_, html) = page(&s, &c, &plain_cookie, "/").await;
    let plain_csrf = csrf_of(&html);
    for path in [
        "/console/admin",
        "/console/admin/jobs",
        "/console/admin/users/eve",
    ] {
        let (status, _) = page(&s, &c, &plain_cookie, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let r = c
        .post(s.url("/console/admin/users"))
        .header("cookie", &plain_cookie)
        .header("origin", &s.base)
        .form(&[("csrf", plain_csrf.as_str()), ("name", "mallory")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(s.engine.user("mallory").await.is_err());

    let admin = s.user_token("root", &[Scope::Admin]).await;
    let cookie = sign_in(&s, &c, &admin).await;
    let (status, html) = page(&s, &c, &cookie, "/console/admin").await;
    assert_eq!(status, 200);
    assert_csp_clean(&html);
    assert!(html.contains(">eve</a>") && html.contains(">root</a>"));
    let csrf = csrf_of(&html);
    let post = |path: &str, form: Vec<(&str, &str)>| {
        c.post(s.url(path))
            .header("cookie", &cookie)
            .header("origin", &s.base)
            .form(&form)
            .send()
    };

    let r = post(
        "/console/admin/users",
        vec![
            ("csrf", &csrf),
            ("name", "bob"),
            ("email", "bob@example.org"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(r.headers()), "/console/admin/users/bob");
    let r = post(
        "/console/admin/users",
        vec![("csrf", &csrf), ("name", "no spaces")],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // A token, its secret shown once, working on the native API.
    let r = post(
        "/console/admin/users/bob/tokens",
        vec![("csrf", &csrf), ("scope", "image:read")],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
    let html = r.text().await.unwrap();
    let at = html
        .find("id=\"new-secret\">")
        .expect("the secret is shown")
        + 16;
    let secret = html[at..at + html[at..].find('<').unwrap()].to_string();
    assert!(secret.starts_with("tt_"), "{secret}");
    let me = c
        .get(s.url("/v1/user"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let (_, again) = page(&s, &c, &cookie, "/console/admin/users/bob").await;
    assert!(!again.contains(&secret), "shown once");
    let tokens = s.engine.tokens("bob").await.unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].scopes, vec![Scope::ImageRead]);
    assert!(again.contains(&tokens[0].id));

    let r = post(
        &format!("/console/admin/users/bob/tokens/{}/revoke", tokens[0].id),
        vec![("csrf", &csrf)],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let me = c
        .get(s.url("/v1/user"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::UNAUTHORIZED);
    // Not another user's token through this user's page.
    let eves = s.engine.tokens("eve").await.unwrap();
    let r = post(
        &format!("/console/admin/users/bob/tokens/{}/revoke", eves[0].id),
        vec![("csrf", &csrf)],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    let r = post(
        "/console/admin/users/bob/quota",
        vec![("csrf", &csrf), ("images_per_day", "5")],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(s.engine.user("bob").await.unwrap().images_per_day, 5);
    let r = post(
        "/console/admin/users/bob/quota",
        vec![("csrf", &csrf), ("images_per_day", "-1")],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.engine.user("bob").await.unwrap().images_per_day, 5);

    // The job queue: a failed job with its error, retried.
    let runs = Arc::new(AtomicUsize::new(0));
    s.engine
        .register_handler("console-test", Arc::new(FailsOnce(runs.clone())));
    let id = s
        .engine
        .enqueue("console-test", serde_json::json!({"n": 1}), None, None)
        .await
        .unwrap();
    wait_for_state(&s, id, JobState::Failed).await;
    let (status, html) = page(&s, &c, &cookie, "/console/admin/jobs?state=failed").await;
    assert_eq!(status, 200);
    assert_csp_clean(&html);
    assert!(html.contains("the first run breaks") && html.contains("console-test"));
    assert!(html.contains(&format!("/console/admin/jobs/{id}/retry")));
    let r = post(&format!("/console/admin/jobs/{id}/retry"), vec![])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "no CSRF token");
    let r = post(
        &format!("/console/admin/jobs/{id}/retry"),
        vec![("csrf", &csrf)],
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let done = wait_for_state(&s, id, JobState::Done).await;
    assert_eq!(done.attempts, 1, "attempts start again");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    let r = post(
        &format!("/console/admin/jobs/{id}/retry"),
        vec![("csrf", &csrf)],
    )
    .await
    .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "a done job is not retried"
    );
    let (_, html) = page(&s, &c, &cookie, "/console/admin/jobs?state=done").await;
    assert!(html.contains("console-test"));

    // The queue in pages of 50, newest first, along job ids (a kind no
    // worker takes stays queued).
    let mut ids = Vec::new();
    for n in 0..55 {
        let id = s
            .engine
            .enqueue("console-idle", serde_json::json!({ "n": n }), None, None)
            .await
            .unwrap();
        ids.push(id);
    }
    let rows = |html: &str| -> Vec<i64> {
        html.split("<th scope=\"row\">")
            .skip(1)
            .filter_map(|r| r[..r.find('<').unwrap()].parse().ok())
            .collect()
    };
    let (_, first) = page(&s, &c, &cookie, "/console/admin/jobs?state=queued").await;
    let first_ids = rows(&first);
    assert_eq!(first_ids.len(), 50);
    assert_eq!(first_ids[0], *ids.last().unwrap(), "newest first");
    let next = first
        .split("rel=\"next\" href=\"")
        .nth(1)
        .map(|r| r[..r.find('"').unwrap()].replace("&amp;", "&"))
        .expect("a link to older jobs");
    let (_, second) = page(&s, &c, &cookie, &next).await;
    let second_ids = rows(&second);
    assert_eq!(
        second_ids,
        ids[..5].iter().rev().copied().collect::<Vec<_>>()
    );
}
