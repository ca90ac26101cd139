//! The shared harness: a real `tintype serve` child process on a loopback
//! port over a temporary data directory, the CLI, and pictures made in code.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tintype");

/// A free loopback port: bind port 0, read the port, let it go.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// The environment every command of a test shares: one data directory.
pub fn base_command(data_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TINTYPE_DATA_DIR", data_dir)
        .env("TINTYPE_LOG", "warn");
    c
}

/// Runs an admin command over the data directory.
pub fn cli(data_dir: &Path, args: &[&str]) -> Output {
    base_command(data_dir)
        .args(args)
        .output()
        .expect("running tintype")
}

/// Runs an admin command that must succeed; returns its stdout.
pub fn cli_ok(data_dir: &Path, args: &[&str]) -> String {
    let out = cli(data_dir, args);
    assert!(
        out.status.success(),
        "tintype {args:?} failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Creates a user and returns a token with the given scopes (default: the
/// three image scopes).
pub fn user_with_token(data_dir: &Path, name: &str, scopes: &[&str]) -> String {
    cli_ok(data_dir, &["user", "create", name]);
    token_for(data_dir, name, scopes)
}

pub fn token_for(data_dir: &Path, name: &str, scopes: &[&str]) -> String {
    let mut args = vec!["token", "create", name];
    for s in scopes {
        args.push("--scope");
        args.push(s);
    }
    cli_ok(data_dir, &args).trim().to_string()
}

pub struct Server {
    pub child: Option<Child>,
    pub base: String,
    pub port: u16,
    pub data_dir: PathBuf,
    /// Every line the server printed on stdout so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    stderr_path: PathBuf,
}

/// Options for a server start.
#[derive(Default, Clone)]
pub struct Opts {
    pub env: Vec<(String, String)>,
}

impl Opts {
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
}

impl Server {
    /// Starts `tintype serve` on a free port over `data_dir` and waits
    /// until /healthz answers.
    pub fn start(data_dir: &Path, opts: Opts) -> Server {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let stderr_path = data_dir.with_extension(format!("stderr-{port}.log"));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr log");
        let mut cmd = base_command(data_dir);
        cmd.arg("serve")
            .env("TINTYPE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TINTYPE_PUBLIC_URL", &base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in &opts.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawning tintype serve");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stdout.take().expect("stdout pipe");
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        let mut s = Server {
            child: Some(child),
            base,
            port,
            data_dir: data_dir.to_path_buf(),
            stdout,
            stderr_path,
        };
        s.wait_healthy();
        s
    }

    fn wait_healthy(&mut self) {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        for _ in 0..600 {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "tintype serve exited early ({status}); stderr:\n{}",
                    self.stderr()
                );
            }
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send() {
                if r.status().is_success() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "tintype serve never became healthy; stderr:\n{}",
            self.stderr()
        );
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The admin token printed on first start, if any.
    pub fn admin_token(&self) -> Option<String> {
        let lines = self.stdout_lines();
        let i = lines
            .iter()
            .position(|l| l.starts_with("Created the user 'admin'"))?;
        lines.get(i + 1).map(|s| s.trim().to_string())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGKILL, as a crash would.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The value of a counter on /metrics.
    pub fn metric(&self, name: &str) -> f64 {
        let body = reqwest::blocking::get(self.url("/metrics"))
            .expect("GET /metrics")
            .text()
            .unwrap();
        body.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == name).then(|| v.trim().parse::<f64>().ok())?
            })
            .unwrap_or_else(|| panic!("no metric {name} in:\n{body}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// A blocking client with a generous timeout.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// A PNG of w x h with a gradient (distinct per `seed`).
pub fn png(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, seed])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A JPEG of w x h.
pub fn jpeg(w: u32, h: u32, seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([seed, (x % 256) as u8, (y % 256) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Uploads raw bytes; returns the image JSON (asserting 201).
/// Deletes a native image (`img` as the upload answered it), expecting 204.
pub fn delete_raw(c: &reqwest::blocking::Client, s: &Server, token: &str, img: &serde_json::Value) {
    let id = img["id"].as_str().expect("an image id");
    let r = c
        .delete(s.url(&format!("/v1/images/{id}")))
        .bearer_auth(token)
        .send()
        .expect("delete");
    let status = r.status();
    assert_eq!(
        status,
        204,
        "delete failed: {}",
        r.text().unwrap_or_default()
    );
}

pub fn upload_raw(
    c: &reqwest::blocking::Client,
    s: &Server,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
) -> serde_json::Value {
    let r = c
        .post(s.url(&format!("/v1/images?name={name}")))
        .bearer_auth(token)
        .body(bytes)
        .send()
        .expect("upload");
    let status = r.status();
    let text = r.text().unwrap();
    assert_eq!(status, 201, "upload failed: {text}");
    serde_json::from_str(&text).unwrap()
}

/// Files under a directory, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Where the directory blob store keeps a blob.
pub fn blob_path(data_dir: &Path, sha: &str) -> PathBuf {
    data_dir
        .join("blobs")
        .join("sha256")
        .join(&sha[0..2])
        .join(&sha[2..4])
        .join(sha)
}

/// Every image of the token's user, following `Link: rel="next"` to the end.
pub fn list_all(
    c: &reqwest::blocking::Client,
    s: &Server,
    token: &str,
    limit: usize,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut next = Some(s.url(&format!("/v1/images?limit={limit}")));
    let mut pages = 0;
    while let Some(url) = next.take() {
        pages += 1;
        assert!(pages < 10_000, "pagination does not end");
        let r = c.get(&url).bearer_auth(token).send().unwrap();
        assert_eq!(r.status(), 200);
        next = r
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(|l| {
                let l = l.trim();
                assert!(l.ends_with("rel=\"next\""), "unexpected Link: {l}");
                Some(l.strip_prefix('<')?.split_once('>')?.0.to_string())
            });
        let page: Vec<serde_json::Value> = r.json().unwrap();
        assert!(page.len() <= limit, "a page is longer than its limit");
        if next.is_some() {
            assert_eq!(page.len(), limit, "a page before the last is short");
        }
        out.extend(page);
    }
    let mut seen = std::collections::HashSet::new();
    for v in &out {
        assert!(
            seen.insert(v["id"].to_string()),
            "image {} listed twice",
            v["id"]
        );
    }
    out
}

/// A PNG of w x h pseudo-random pixels: it hardly compresses (about
/// 3 bytes a pixel), and every seed gives different bytes.
pub fn noisy_png(w: u32, h: u32, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let img = image::RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let b = state.to_le_bytes();
        image::Rgb([b[0], b[1], b[2]])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}
