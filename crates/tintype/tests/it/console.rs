//! The web console in a real browser: `tintype serve`, Debian's headless
//! Chromium driven through the W3C WebDriver protocol by `chromedriver`
//! (plain JSON over HTTP). Signs in, uploads two photos through the file
//! input (and a file the server refuses), sees the thumbnails in the grid,
//! opens the photo with EXIF and finds its camera model and variants,
//! checks the pages fit a 360 px wide window, deletes the photo and signs
//! out.
//!
//! Needs `chromium` and `chromium-driver` (scripts/apt-packages.txt; the
//! test fails and says so when they are missing, unless
//! TINTYPE_SKIP_BROWSER=1). TINTYPE_SCREENSHOTS=DIR saves the grid and the
//! image page as DIR/console-grid.png and DIR/console-image.png.

use crate::harness::{client, free_port, jpeg, Opts, Server};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const MODEL: &str = "Console Cam 7";

/// The first of `names` found on PATH (or the path an env var names).
fn find_program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(env) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A JPEG with an EXIF APP1 segment naming the camera model.
fn jpeg_with_model(w: u32, h: u32, model: &str) -> Vec<u8> {
    // Little-endian TIFF: IFD0 with one entry, Model (0x0110, ASCII),
    // its text after the IFD.
    let mut text = model.as_bytes().to_vec();
    text.push(0);
    let mut t = b"II*\0".to_vec();
    t.extend_from_slice(&8u32.to_le_bytes());
    t.extend_from_slice(&1u16.to_le_bytes());
    t.extend_from_slice(&0x0110u16.to_le_bytes());
    t.extend_from_slice(&2u16.to_le_bytes());
    t.extend_from_slice(&(text.len() as u32).to_le_bytes());
    t.extend_from_slice(&(8u32 + 2 + 12 + 4).to_le_bytes());
    t.extend_from_slice(&0u32.to_le_bytes());
    t.extend_from_slice(&text);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&t);
    let plain = jpeg(w, h, 40);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

/// `chromedriver` on a free port, stopped on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver session.
struct Browser {
    http: reqwest::blocking::Client,
    session: String,
    driver: Driver,
}

impl Browser {
    fn start(driver: Driver, chromium: &Path, profile: &Path) -> Browser {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1000,720",
                    "--hide-scrollbars", "--force-device-scale-factor=1",
                    "--no-first-run", "--disable-extensions",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let r: Value = http
            .post(format!("{}/session", driver.url))
            .json(&caps)
            .send()
            .and_then(|r| r.json())
            .expect("a WebDriver session");
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver started no session: {r}"))
            .to_string();
        Browser {
            http,
            session,
            driver,
        }
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver.url, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = r.status();
        let v: Value = r.json().unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {path}: {status} {v}");
        v["value"].clone()
    }

    fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None)
    }

    fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url }));
    }

    fn url(&self) -> String {
        self.get("/url").as_str().unwrap_or("").to_string()
    }

    fn find(&self, css: &str) -> String {
        let v = self.post("/element", json!({"using": "css selector", "value": css}));
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.post(&format!("/element/{el}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.post(&format!("/element/{el}/value"), json!({ "text": text }));
    }

    fn text(&self, css: &str) -> String {
        let el = self.find(css);
        self.get(&format!("/element/{el}/text"))
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn js(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
    }

    /// Waits up to 20 s for `what` to hold.
    fn wait(&self, what: &str, mut f: impl FnMut(&Browser) -> bool) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if f(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}; at {} the page reads:\n{}",
            self.url(),
            self.js("return document.body ? document.body.innerText : ''")
        );
    }

    /// Presses and releases one key (a WebDriver key code such as Tab).
    fn key(&self, key: &str) {
        self.post(
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key},
                {"type": "keyUp", "value": key},
            ]}]}),
        );
    }

    fn resize(&self, width: u32, height: u32) {
        self.post("/window/rect", json!({"width": width, "height": height}));
    }

    /// Tiles in the grid whose thumbnail has loaded.
    fn loaded_thumbnails(&self) -> i64 {
        self.js(
            "return Array.from(document.querySelectorAll('#grid li.tile img'))\
             .filter(i => i.complete && i.naturalWidth > 0).length",
        )
        .as_i64()
        .unwrap_or(-1)
    }

    fn tiles(&self) -> i64 {
        self.js("return document.querySelectorAll('#grid li.tile').length")
            .as_i64()
            .unwrap_or(-1)
    }

    /// Whether the page is no wider than the window (nothing to scroll
    /// sideways).
    fn fits(&self) -> (bool, Value) {
        let v = self.js(
            "return [window.innerWidth, document.documentElement.scrollWidth, document.body.scrollWidth]",
        );
        let w = v[0].as_i64().unwrap_or(0);
        let fits = w > 0
            && v[1].as_i64().unwrap_or(i64::MAX) <= w
            && v[2].as_i64().unwrap_or(i64::MAX) <= w;
        (fits, v)
    }

    fn screenshot(&self, dir: &Path, name: &str) {
        use base64::Engine as _;
        let b64 = self.get("/screenshot");
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .expect("a base64 screenshot");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self
            .http
            .delete(format!("{}/session/{}", self.driver.url, self.session))
            .send();
    }
}

fn start_driver(chromedriver: &Path) -> Driver {
    let port = free_port();
    let child = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
    let d = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let c = client();
    for _ in 0..200 {
        if let Ok(r) = c.get(format!("{}/status", d.url)).send() {
            if let Ok(v) = r.json::<Value>() {
                if v["value"]["ready"] == true {
                    return d;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("chromedriver on port {port} never became ready");
}

#[test]
fn the_console_works_in_a_real_browser() {
    let chromium = find_program(
        "TINTYPE_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let chromedriver = find_program("TINTYPE_CHROMEDRIVER", &["chromedriver"]);
    let (Some(chromium), Some(chromedriver)) = (chromium, chromedriver) else {
        if std::env::var("TINTYPE_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("TINTYPE_SKIP_BROWSER=1: the console's browser test is skipped");
            return;
        }
        panic!(
            "the console's browser test needs Chromium and chromedriver (Debian packages \
             `chromium` and `chromium-driver`, installed by scripts/deps.sh); \
             set TINTYPE_SKIP_BROWSER=1 to skip it"
        );
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, Opts::default());
    let token = server
        .admin_token()
        .expect("the admin token on first start");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    let camera = files.join("camera.jpg");
    std::fs::write(&camera, jpeg_with_model(480, 360, MODEL)).unwrap();
    let plain = files.join("plain.jpg");
    std::fs::write(&plain, jpeg(360, 480, 200)).unwrap();
    let notes = files.join("notes.txt");
    std::fs::write(&notes, b"not a picture at all\n").unwrap();
    let shots = std::env::var_os("TINTYPE_SCREENSHOTS").map(PathBuf::from);

    let b = Browser::start(
        start_driver(&chromedriver),
        &chromium,
        &dir.path().join("profile"),
    );

    // Signed out, / leads to the sign-in form.
    b.goto(&server.url("/"));
    assert!(b.url().ends_with("/console/signin"), "{}", b.url());
    // The keyboard alone: Tab reaches the skip link first; the token is
    // typed and sent with Enter.
    b.key("\u{E004}");
    assert_eq!(
        b.js("return document.activeElement.className"),
        json!("skip"),
        "the first Tab stop is the skip link"
    );
    b.type_into("#token", &format!("{token}\u{E007}"));
    b.wait("the grid after signing in", |b| {
        b.url() == server.url("/") && b.js("return !!document.getElementById('grid')") == true
    });

    // Two photos through the file input (several files at once), then a
    // file the server refuses, its reason shown.
    b.type_into(
        "#files",
        &format!("{}\n{}", camera.display(), plain.display()),
    );
    b.wait("both thumbnails in the grid", |b| {
        b.loaded_thumbnails() == 2
    });
    let states = b.js(
        "return Array.from(document.querySelectorAll('#uploads li')).map(l => l.getAttribute('data-state'))",
    );
    assert_eq!(states, json!(["done", "done"]));
    let bars =
        b.js("return Array.from(document.querySelectorAll('#uploads progress')).map(p => p.value)");
    assert_eq!(bars, json!([100, 100]), "a progress bar per file, full");
    b.type_into("#files", &notes.display().to_string());
    b.wait("the refusal of notes.txt", |b| {
        b.js("return document.querySelectorAll('#uploads li[data-state=failed]').length") == 1
    });
    let refusal = b.text("#uploads li[data-state=failed] .state");
    assert!(
        refusal.starts_with("refused: ") && refusal.len() > "refused: ".len() + 5,
        "{refusal}"
    );

    // The grid as the server renders it, newest first.
    b.goto(&server.url("/"));
    b.wait("the rendered grid", |b| b.loaded_thumbnails() == 2);
    let names = b.js(
        "return Array.from(document.querySelectorAll('#grid li.tile')).map(t => t.getAttribute('data-name')).sort()",
    );
    assert_eq!(names, json!(["camera.jpg", "plain.jpg"]));
    if let Some(d) = &shots {
        b.screenshot(d, "console-grid.png");
    }

    // The photo's page: its camera model in the EXIF table, its variants.
    b.click("#grid li.tile[data-name='camera.jpg'] a");
    b.wait("the image page", |b| b.url().contains("/console/images/"));
    b.wait("the picture", |b| {
        b.js("const i = document.getElementById('picture'); return !!i && i.complete && i.naturalWidth > 0") == true
    });
    let exif = b.text("#exif");
    assert!(exif.contains(MODEL), "EXIF table: {exif}");
    let variants = b.text("#variants");
    for p in ["thumbnail", "large", "small", "medium"] {
        assert!(variants.contains(p), "{p} in {variants}");
    }
    assert!(
        variants.contains("200 ×") || variants.contains("× 200"),
        "the thumbnail's size: {variants}"
    );
    let origin = b.text("#origin");
    assert!(origin.contains("native API"), "came through: {origin}");
    let facts = b.text("#facts");
    assert!(
        facts.contains("480 × 360 px") && facts.contains("jpeg"),
        "{facts}"
    );
    if let Some(d) = &shots {
        b.screenshot(d, "console-image.png");
    }

    // 360 px wide: nothing scrolls sideways, on the image page and the grid.
    b.resize(360, 740);
    let (fits, widths) = b.fits();
    let inner = widths[0].as_i64().unwrap_or(0);
    assert!(inner <= 400, "the window did not shrink: {widths}");
    assert!(fits, "the image page is wider than 360 px: {widths}");
    b.goto(&server.url("/"));
    b.wait("the grid at 360 px", |b| b.loaded_thumbnails() == 2);
    let (fits, widths) = b.fits();
    assert!(fits, "the grid is wider than 360 px: {widths}");
    b.resize(1000, 720);

    // Delete the photo, through the confirmation page.
    b.click("#grid li.tile[data-name='camera.jpg'] a");
    b.wait("the image page", |b| b.url().contains("/console/images/"));
    b.click(".actions a.danger");
    b.wait("the confirmation", |b| b.url().ends_with("/delete"));
    b.click("#confirm-delete");
    b.wait("the grid after the delete", |b| {
        b.url() == server.url("/") && b.tiles() == 1
    });
    let left = client()
        .get(server.url("/v1/images"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    assert_eq!(left.as_array().map(|a| a.len()), Some(1), "{left}");
    assert_eq!(left[0]["name"], "plain.jpg");

    // Sign out: / leads to the sign-in form again.
    b.click(".who button");
    b.wait("the sign-in page", |b| b.url().ends_with("/console/signin"));
    b.goto(&server.url("/"));
    assert!(b.url().ends_with("/console/signin"), "{}", b.url());
    eprintln!(
        "console browser test: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
