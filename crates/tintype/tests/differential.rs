//! Differential test: the same seeded random sequence of requests sent to
//! two real `tintype serve` processes, one on SQLite + a blob directory and
//! one on PostgreSQL (+ S3 when `TINTYPE_TEST_BLOB_STORE` is set), must get
//! the same answers: status, and body once ids, times and hosts are
//! normalised (each server's ids are mapped to a canonical number in order
//! of appearance).
//!
//! Runs only when `TINTYPE_TEST_DATABASE_URL` names a PostgreSQL server;
//! otherwise it prints a line and passes. Each server gets a fresh database
//! (PostgreSQL: a new database on that server) and a temporary directory.
//! Requests go over long-lived keep-alive connections (one HTTP client per
//! server), so each server's pooled catalog connections serve many
//! statements in turn, as in production.
//!
//! Settings (environment):
//! - `TINTYPE_DIFF_SEED`: the sequence's seed (default 19; printed).
//! - `TINTYPE_DIFF_OPS`: how many operations (default 300). A long run,
//!   e.g. `TINTYPE_DIFF_OPS=5000`, serves as a benchmark: the figures are
//!   printed at the end.

use reqwest::blocking::multipart::{Form, Part};
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tintype");
const USERS: [&str; 2] = ["ana", "ben"];
/// An id that exists on neither server.
const NO_ID: &str = "0123456789abcdef0123456789abcdef";

// --- a small seeded generator (SplitMix64) ---------------------------------

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    }
}

// --- pictures and disks made in code -----------------------------------------

/// One TIFF field value.
#[derive(Clone)]
enum Tv {
    Byte(u8),
    Ascii(String),
    Short(u16),
    Long(u32),
    Rational(Vec<(u32, u32)>),
}

impl Tv {
    fn type_and_count(&self) -> (u16, u32) {
        match self {
            Tv::Byte(_) => (1, 1),
            Tv::Ascii(s) => (2, s.len() as u32 + 1),
            Tv::Short(_) => (3, 1),
            Tv::Long(_) => (4, 1),
            Tv::Rational(v) => (5, v.len() as u32),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            Tv::Byte(b) => vec![*b],
            Tv::Ascii(s) => {
                let mut b = s.as_bytes().to_vec();
                b.push(0);
                b
            }
            Tv::Short(n) => n.to_be_bytes().to_vec(),
            Tv::Long(n) => n.to_be_bytes().to_vec(),
            Tv::Rational(v) => v
                .iter()
                .flat_map(|(n, d)| n.to_be_bytes().into_iter().chain(d.to_be_bytes()))
                .collect(),
        }
    }
}

fn ifd_size(entries: &[(u16, Tv)]) -> usize {
    let data: usize = entries
        .iter()
        .map(|(_, v)| v.bytes().len())
        .filter(|&l| l > 4)
        .map(|l| l + l % 2)
        .sum();
    2 + 12 * entries.len() + 4 + data
}

fn ifd(entries: &[(u16, Tv)], start: usize) -> Vec<u8> {
    let mut head = Vec::new();
    let mut data = Vec::new();
    let data_start = start + 2 + 12 * entries.len() + 4;
    head.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    for (tag, v) in entries {
        let (ty, count) = v.type_and_count();
        head.extend_from_slice(&tag.to_be_bytes());
        head.extend_from_slice(&ty.to_be_bytes());
        head.extend_from_slice(&count.to_be_bytes());
        let b = v.bytes();
        if b.len() <= 4 {
            let mut inline = b.clone();
            inline.resize(4, 0);
            head.extend_from_slice(&inline);
        } else {
            head.extend_from_slice(&((data_start + data.len()) as u32).to_be_bytes());
            data.extend_from_slice(&b);
            if b.len() % 2 == 1 {
                data.push(0);
            }
        }
    }
    head.extend_from_slice(&0u32.to_be_bytes());
    head.extend_from_slice(&data);
    head
}

/// A big-endian TIFF block: IFD0, its Exif sub-IFD and its GPS IFD.
fn tiff(mut ifd0: Vec<(u16, Tv)>, exif: Vec<(u16, Tv)>, gps: Vec<(u16, Tv)>) -> Vec<u8> {
    if !exif.is_empty() {
        ifd0.push((0x8769, Tv::Long(0)));
    }
    if !gps.is_empty() {
        ifd0.push((0x8825, Tv::Long(0)));
    }
    ifd0.sort_by_key(|(t, _)| *t);
    let exif_start = 8 + ifd_size(&ifd0);
    let gps_start = exif_start + if exif.is_empty() { 0 } else { ifd_size(&exif) };
    for (tag, v) in ifd0.iter_mut() {
        match tag {
            0x8769 => *v = Tv::Long(exif_start as u32),
            0x8825 => *v = Tv::Long(gps_start as u32),
            _ => {}
        }
    }
    let mut out = b"MM\0\x2a".to_vec();
    out.extend_from_slice(&8u32.to_be_bytes());
    out.extend(ifd(&ifd0, 8));
    if !exif.is_empty() {
        out.extend(ifd(&exif, exif_start));
    }
    if !gps.is_empty() {
        out.extend(ifd(&gps, gps_start));
    }
    out
}

/// A JPEG of `w`x`h` whose pixels depend on `tint`, with `tiff` as its EXIF.
fn jpeg(w: u32, h: u32, tint: u8, tiff: Option<&[u8]>) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, tint])
    });
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 80)
        .encode_image(&img)
        .expect("encode jpeg");
    let Some(t) = tiff else { return plain };
    let len = (2 + 6 + t.len()) as u16;
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(t);
    out.extend_from_slice(&plain[2..]);
    out
}

fn dms(d: u32, m: u32, s_100: u32) -> Tv {
    Tv::Rational(vec![(d, 1), (m, 1), (s_100, 100)])
}

/// What a generated photo carries, for messages.
#[derive(Clone)]
struct Blob {
    what: String,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} ({} bytes)>", self.what, self.bytes.len())
    }
}

/// A random photo: with or without EXIF, orientation, GPS in any
/// hemisphere, altitude, and now and then odd values (zero denominators,
/// huge numbers, empty strings).
fn random_photo(rng: &mut Rng) -> Blob {
    let (w, h) = if rng.chance(50) {
        (64, 48)
    } else {
        (8 + rng.below(72) as u32, 8 + rng.below(72) as u32)
    };
    let tint = rng.below(256) as u8;
    if rng.chance(25) {
        return Blob {
            what: format!("jpeg {w}x{h} without EXIF"),
            bytes: jpeg(w, h, tint, None),
        };
    }
    let mut what = format!("jpeg {w}x{h}");
    let odd = rng.chance(20);
    let mut ifd0 = vec![];
    let mut exif = vec![];
    let mut gps = vec![];
    if rng.chance(60) {
        let o = if odd {
            *rng.pick(&[0u16, 9, 65535])
        } else {
            1 + rng.below(8) as u16
        };
        ifd0.push((0x0112, Tv::Short(o)));
        what.push_str(&format!(" orientation {o}"));
    }
    if rng.chance(60) {
        let make = if odd {
            String::new()
        } else {
            rng.pick(&["Canon", "samsung", "Apple"]).to_string()
        };
        ifd0.push((0x010F, Tv::Ascii(make)));
        ifd0.push((0x0110, Tv::Ascii(format!("M{}", rng.below(100)))));
    }
    if rng.chance(40) {
        exif.push((
            0x9003,
            Tv::Ascii(if odd {
                String::new()
            } else {
                "2024:05:06 07:08:09".into()
            }),
        ));
        let den = if odd { 0 } else { 1 + rng.below(1000) as u32 };
        exif.push((0x829A, Tv::Rational(vec![(1, den)])));
    }
    if rng.chance(65) {
        let lat_ref = *rng.pick(&["N", "S"]);
        let lon_ref = *rng.pick(&["E", "W"]);
        let (lat, lon) = if odd {
            let v = *rng.pick(&[(0u32, 0u32), (u32::MAX, 1), (7, 0)]);
            (Tv::Rational(vec![v, (30, 1), (0, 1)]), dms(8, 15, 0))
        } else {
            (
                dms(
                    rng.below(90) as u32,
                    rng.below(60) as u32,
                    rng.below(6000) as u32,
                ),
                dms(
                    rng.below(180) as u32,
                    rng.below(60) as u32,
                    rng.below(6000) as u32,
                ),
            )
        };
        gps.push((0x0001, Tv::Ascii(lat_ref.into())));
        gps.push((0x0002, lat));
        gps.push((0x0003, Tv::Ascii(lon_ref.into())));
        gps.push((0x0004, lon));
        what.push_str(&format!(" GPS {lat_ref}/{lon_ref}"));
        if rng.chance(50) {
            gps.push((0x0005, Tv::Byte(rng.below(2) as u8)));
            let alt = if odd {
                (u32::MAX, 0)
            } else {
                (rng.below(100_000) as u32, 10)
            };
            gps.push((0x0006, Tv::Rational(vec![alt])));
            what.push_str(" altitude");
        }
    }
    if odd {
        what.push_str(" (odd values)");
    }
    if ifd0.is_empty() && exif.is_empty() && gps.is_empty() {
        ifd0.push((0x0131, Tv::Ascii("tintype".into())));
    }
    let t = tiff(ifd0, exif, gps);
    Blob {
        what,
        bytes: jpeg(w, h, tint, Some(&t)),
    }
}

/// A small QCOW2 version 3 disk (4 clusters of 64 KiB) carrying `tag`.
fn qcow2(tag: &str) -> Vec<u8> {
    const CLUSTER: usize = 1 << 16;
    let mut h = vec![0u8; 104];
    h[0..4].copy_from_slice(b"QFI\xfb");
    h[4..8].copy_from_slice(&3u32.to_be_bytes());
    h[20..24].copy_from_slice(&16u32.to_be_bytes());
    let size: u64 = 1 << 30;
    h[24..32].copy_from_slice(&size.to_be_bytes());
    let per_l1 = ((CLUSTER / 8) * CLUSTER) as u64;
    h[36..40].copy_from_slice(&(size.div_ceil(per_l1) as u32).to_be_bytes());
    h[40..48].copy_from_slice(&(3 * CLUSTER as u64).to_be_bytes());
    h[48..56].copy_from_slice(&(CLUSTER as u64).to_be_bytes());
    h[56..60].copy_from_slice(&1u32.to_be_bytes());
    h[96..100].copy_from_slice(&4u32.to_be_bytes());
    h[100..104].copy_from_slice(&104u32.to_be_bytes());
    h.resize(4 * CLUSTER, 0);
    let start = h.len() - tag.len();
    h[start..].copy_from_slice(tag.as_bytes());
    h
}

// --- servers -----------------------------------------------------------------

struct Backend {
    label: &'static str,
    database_url: Option<String>,
    blob_store: Option<String>,
}

struct Node {
    child: Option<Child>,
    base: String,
    stderr_path: PathBuf,
}

fn command(b: &Backend, data_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear();
    for k in [
        "PATH",
        "HOME",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    ] {
        if let Ok(v) = std::env::var(k) {
            c.env(k, v);
        }
    }
    c.env("TINTYPE_DATA_DIR", data_dir)
        .env("TINTYPE_LOG", "warn");
    if let Some(u) = &b.database_url {
        c.env("TINTYPE_DATABASE_URL", u);
    }
    if let Some(s) = &b.blob_store {
        c.env("TINTYPE_BLOB_STORE", s);
    }
    c
}

fn cli_ok(b: &Backend, data_dir: &Path, args: &[&str]) -> String {
    let out = command(b, data_dir)
        .args(args)
        .output()
        .expect("run tintype");
    assert!(
        out.status.success(),
        "{}: tintype {args:?} failed: {}",
        b.label,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

impl Node {
    fn start(b: &Backend, data_dir: &Path) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let stderr_path = data_dir.join("serve.stderr");
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let child = command(b, data_dir)
            .arg("serve")
            .env("TINTYPE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TINTYPE_PUBLIC_URL", &base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn tintype serve");
        let mut n = Node {
            child: Some(child),
            base,
            stderr_path,
        };
        let probe = Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        for _ in 0..600 {
            if let Some(Ok(Some(st))) = n.child.as_mut().map(|c| c.try_wait()) {
                panic!("{}: tintype serve exited ({st}):\n{}", b.label, n.stderr());
            }
            if probe
                .get(format!("{}/healthz", n.base))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return n;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{}: tintype serve never became healthy:\n{}",
            b.label,
            n.stderr()
        );
    }

    fn stderr(&self) -> String {
        let s = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One server under test, with what the sequence created on it so far.
struct Side {
    label: &'static str,
    node: Node,
    _dir: tempfile::TempDir,
    http: Client,
    tokens: Vec<String>,
    /// Tintype image ids in order of creation (native and diaspora).
    images: Vec<String>,
    /// Djinn image ids in order of creation.
    disks: Vec<i64>,
    norm: Norm,
}

fn fresh_database(server_url: &str) -> String {
    let name = format!(
        "tt_diff_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(tintype_store::create_postgres_database(server_url, &name))
        .expect("a fresh PostgreSQL database")
}

impl Side {
    fn start(b: Backend) -> Side {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut tokens = vec![];
        for u in USERS {
            cli_ok(&b, dir.path(), &["user", "create", u]);
            tokens.push(
                cli_ok(&b, dir.path(), &["token", "create", u])
                    .trim()
                    .to_string(),
            );
        }
        let node = Node::start(&b, dir.path());
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(4)
            .build()
            .expect("client");
        Side {
            label: b.label,
            norm: Norm::new(&node.base),
            node,
            _dir: dir,
            http,
            tokens,
            images: vec![],
            disks: vec![],
        }
    }

    fn image(&self, i: usize) -> &str {
        self.images.get(i).map(String::as_str).unwrap_or(NO_ID)
    }

    fn disk(&self, i: usize) -> i64 {
        self.disks.get(i).copied().unwrap_or(999_999)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.node.base, path)
    }
}

/// The two servers of a run.
fn sides() -> Option<(Side, Side)> {
    let Ok(db) = std::env::var("TINTYPE_TEST_DATABASE_URL") else {
        eprintln!(
            "differential test not run: TINTYPE_TEST_DATABASE_URL is not set \
             (it compares SQLite with PostgreSQL; start one with scripts/services.sh)"
        );
        return None;
    };
    let blob_store = std::env::var("TINTYPE_TEST_BLOB_STORE").ok();
    eprintln!(
        "differential: SQLite + directory against PostgreSQL + {}",
        if blob_store.is_some() {
            "S3"
        } else {
            "directory"
        }
    );
    let lite = Side::start(Backend {
        label: "sqlite",
        database_url: None,
        blob_store: None,
    });
    let pg = Side::start(Backend {
        label: "postgres",
        database_url: Some(fresh_database(&db)),
        blob_store,
    });
    Some((lite, pg))
}

// --- normalising answers -------------------------------------------------------

/// Maps one server's ids, times and host to canonical forms.
struct Norm {
    base: String,
    hex: HashMap<String, usize>,
    ints: HashMap<String, HashMap<i64, usize>>,
}

fn is_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
}

/// Keys whose value depends on when the background jobs ran (a picture's
/// ThumbHash appears once its smallest variant is rendered).
const TIMING_KEYS: [&str; 3] = ["processed", "processed_at", "thumbhash"];

impl Norm {
    fn new(base: &str) -> Norm {
        Norm {
            base: base.to_string(),
            hex: HashMap::new(),
            ints: HashMap::new(),
        }
    }

    fn int(&mut self, path: &str, v: i64) -> String {
        let m = self.ints.entry(path.to_string()).or_default();
        let n = m.len();
        format!("#{path}:{}", *m.entry(v).or_insert(n))
    }

    fn string(&mut self, s: &str) -> String {
        if is_time(s) {
            return "<time>".into();
        }
        let mut s = s.replace(&self.base, "<base>");
        // numeric path segments of our own URLs (Djinn image ids)
        if s.starts_with("<base>/images/") {
            let tail = s["<base>/images/".len()..].to_string();
            let (num, rest) = tail.split_at(
                tail.find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(tail.len()),
            );
            if let Ok(v) = num.parse::<i64>() {
                s = format!("<base>/images/{}{rest}", self.int("disk", v));
            }
        }
        // runs of exactly 24 or 32 hex digits are generated ids
        let mut out = String::with_capacity(s.len());
        let mut run = String::new();
        let flush = |run: &mut String, out: &mut String, hex: &mut HashMap<String, usize>| {
            if run.len() == 24 || run.len() == 32 {
                let n = hex.len();
                let k = *hex.entry(run.clone()).or_insert(n);
                out.push_str(&format!("<id{k}>"));
            } else {
                out.push_str(run);
            }
            run.clear();
        };
        for c in s.chars() {
            if c.is_ascii_digit() || ('a'..='f').contains(&c) {
                run.push(c);
            } else {
                flush(&mut run, &mut out, &mut self.hex);
                out.push(c);
            }
        }
        flush(&mut run, &mut out, &mut self.hex);
        out
    }

    fn value(&mut self, path: &str, key: &str, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.string(s)),
            Value::Number(n) if key == "id" || key.ends_with("_id") => match n.as_i64() {
                Some(i) => Value::String(self.int(&format!("{path}.{key}"), i)),
                None => v.clone(),
            },
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.value(&format!("{path}.{key}[]"), "", x))
                    .collect(),
            ),
            Value::Object(o) => {
                let mut m = Map::new();
                for (k, x) in o {
                    if TIMING_KEYS.contains(&k.as_str()) || (k == "variants" && x.is_array()) {
                        continue;
                    }
                    m.insert(k.clone(), self.value(&format!("{path}.{key}"), k, x));
                }
                Value::Object(m)
            }
            _ => v.clone(),
        }
    }
}

// --- operations ------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    NativeUpload {
        user: usize,
        photo: Blob,
        name: Option<String>,
        metadata: Option<Value>,
        raw: bool,
    },
    NativeGet {
        user: usize,
        img: usize,
    },
    NativeOriginal {
        user: usize,
        img: usize,
    },
    NativePatch {
        user: usize,
        img: usize,
        body: Value,
    },
    NativeDelete {
        user: usize,
        img: usize,
    },
    NativeList {
        user: usize,
        limit: u64,
    },
    Me {
        user: usize,
    },
    DiasporaUpload {
        user: usize,
        photo: Blob,
        pending: bool,
        profile: bool,
    },
    DiasporaList {
        user: usize,
        per_page: u64,
    },
    DiasporaGet {
        user: usize,
        img: usize,
    },
    DiasporaDelete {
        user: usize,
        img: usize,
    },
    FulcrumUpload {
        user: usize,
        photo: Blob,
        key: String,
        record: Option<String>,
    },
    FulcrumList {
        user: usize,
        record: Option<String>,
        per_page: u64,
        page: u64,
        newest_first: bool,
    },
    FulcrumGet {
        user: usize,
        key: String,
    },
    DjinnUpload {
        user: usize,
        disk: Blob,
        name: String,
        namespace: Option<String>,
    },
    DjinnList {
        user: usize,
        search: Option<String>,
    },
    DjinnGet {
        user: usize,
        img: usize,
    },
    DjinnDelete {
        user: usize,
        img: usize,
    },
    PopitPut {
        user: usize,
        doc: String,
        body: Value,
    },
    PopitUpload {
        user: usize,
        doc: String,
        photo: Blob,
        notes: String,
    },
    PopitGet {
        doc: String,
    },
    PopitList {
        per_page: u64,
    },
    PopitDelete {
        user: usize,
        doc: String,
    },
}

fn random_op(rng: &mut Rng, n_images: usize, n_disks: usize, docs: &mut Vec<String>) -> Op {
    let user = rng.below(USERS.len() as u64) as usize;
    // mostly existing targets, sometimes one past the end (never created)
    let img = rng.below(n_images as u64 + 1) as usize;
    let disk_i = rng.below(n_disks as u64 + 1) as usize;
    match rng.below(100) {
        0..=17 => Op::NativeUpload {
            user,
            photo: random_photo(rng),
            name: rng.chance(50).then(|| format!("photo {}", rng.below(50))),
            metadata: rng
                .chance(30)
                .then(|| json!({"album": rng.below(5), "tags": ["a", rng.hex(3)]})),
            raw: rng.chance(30),
        },
        18..=23 => Op::NativeGet { user, img },
        24..=25 => Op::NativeOriginal { user, img },
        26..=31 => Op::NativePatch {
            user,
            img,
            body: match rng.below(3) {
                0 => json!({"name": format!("renamed {}", rng.below(9))}),
                1 => json!({"name": null}),
                _ => json!({"metadata": {"k": rng.below(100)}, "name": "both"}),
            },
        },
        32..=35 => Op::NativeDelete { user, img },
        36..=41 => Op::NativeList {
            user,
            limit: 1 + rng.below(40),
        },
        42..=43 => Op::Me { user },
        44..=50 => Op::DiasporaUpload {
            user,
            photo: random_photo(rng),
            pending: rng.chance(30),
            profile: rng.chance(20),
        },
        51..=54 => Op::DiasporaList {
            user,
            per_page: 1 + rng.below(30),
        },
        55..=56 => Op::DiasporaGet { user, img },
        57..=58 => Op::DiasporaDelete { user, img },
        59..=66 => Op::FulcrumUpload {
            user,
            photo: random_photo(rng),
            key: format!("ak-{}", rng.below(40)),
            record: rng.chance(50).then(|| format!("rec-{}", rng.below(3))),
        },
        67..=70 => Op::FulcrumList {
            user,
            record: rng.chance(40).then(|| format!("rec-{}", rng.below(3))),
            per_page: 1 + rng.below(25),
            page: 1 + rng.below(2),
            newest_first: rng.chance(50),
        },
        71..=72 => Op::FulcrumGet {
            user,
            key: format!("ak-{}", rng.below(40)),
        },
        73..=78 => {
            let tag = rng.hex(8);
            let disk = if rng.chance(10) {
                Blob {
                    what: "not a disk".into(),
                    bytes: b"not a qcow2 file".to_vec(),
                }
            } else {
                Blob {
                    what: format!("qcow2 {tag}"),
                    bytes: qcow2(&tag),
                }
            };
            Op::DjinnUpload {
                user,
                disk,
                name: format!("disk{}", rng.below(12)),
                namespace: rng
                    .chance(40)
                    .then(|| rng.pick(&["ci", "ci/arm", "base"]).to_string()),
            }
        }
        79..=81 => Op::DjinnList {
            user,
            search: rng.chance(30).then(|| "disk1".to_string()),
        },
        82..=83 => Op::DjinnGet { user, img: disk_i },
        84..=85 => Op::DjinnDelete { user, img: disk_i },
        86..=89 => {
            let doc = if docs.is_empty() || rng.chance(40) {
                let d = rng.hex(24);
                docs.push(d.clone());
                d
            } else {
                rng.pick(docs).clone()
            };
            let body = if rng.chance(50) {
                json!({"name": format!("Person {}", rng.below(100)), "image": "http://example.org/p.jpg"})
            } else {
                json!({"name": "No image", "images": [{"url": "http://example.org/a.jpg", "notes": "n"}]})
            };
            Op::PopitPut { user, doc, body }
        }
        90..=92 if !docs.is_empty() => Op::PopitUpload {
            user,
            doc: rng.pick(docs).clone(),
            photo: random_photo(rng),
            notes: format!("note {}", rng.below(10)),
        },
        93..=95 if !docs.is_empty() => Op::PopitGet {
            doc: rng.pick(docs).clone(),
        },
        96..=97 => Op::PopitList {
            per_page: 1 + rng.below(20),
        },
        98..=99 if !docs.is_empty() => Op::PopitDelete {
            user,
            doc: rng.pick(docs).clone(),
        },
        _ => Op::NativeList { user, limit: 50 },
    }
}

/// A raw answer: status and body (JSON when it parses, else the bytes' hash).
struct Answer {
    status: u16,
    body: Value,
}

fn send(rb: RequestBuilder) -> Answer {
    let r = rb.send().expect("request");
    let status = r.status().as_u16();
    let bytes = r.bytes().expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(
            |_| json!({"bytes": bytes.len(), "sha256": hex::encode(Sha256::digest(&bytes))}),
        )
    };
    Answer { status, body }
}

fn part(b: &Blob, file_name: &str, mime: &str) -> Part {
    Part::bytes(b.bytes.clone())
        .file_name(file_name.to_string())
        .mime_str(mime)
        .expect("mime")
}

fn run(s: &mut Side, op: &Op) -> Answer {
    let bearer = |s: &Side, u: usize| format!("Bearer {}", s.tokens[u]);
    let a = match op {
        Op::NativeUpload {
            user,
            photo,
            name,
            metadata,
            raw,
        } => {
            let rb = if *raw {
                let mut url = s.url("/v1/images");
                if let Some(n) = name {
                    url.push_str(&format!("?name={}", n.replace(' ', "%20")));
                }
                s.http.post(url).body(photo.bytes.clone())
            } else {
                let mut f = Form::new().part("file", part(photo, "p.jpg", "image/jpeg"));
                if let Some(n) = name {
                    f = f.text("name", n.clone());
                }
                if let Some(m) = metadata {
                    f = f.text("metadata", m.to_string());
                }
                s.http.post(s.url("/v1/images")).multipart(f)
            };
            send(rb.header("Authorization", bearer(s, *user)))
        }
        Op::NativeGet { user, img } => send(
            s.http
                .get(s.url(&format!("/v1/images/{}", s.image(*img))))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::NativeOriginal { user, img } => send(
            s.http
                .get(s.url(&format!("/v1/images/{}/original", s.image(*img))))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::NativePatch { user, img, body } => send(
            s.http
                .patch(s.url(&format!("/v1/images/{}", s.image(*img))))
                .header("Authorization", bearer(s, *user))
                .json(body),
        ),
        Op::NativeDelete { user, img } => send(
            s.http
                .delete(s.url(&format!("/v1/images/{}", s.image(*img))))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::NativeList { user, limit } => send(
            s.http
                .get(s.url(&format!("/v1/images?limit={limit}")))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::Me { user } => send(
            s.http
                .get(s.url("/v1/user"))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::DiasporaUpload {
            user,
            photo,
            pending,
            profile,
        } => {
            let f = Form::new()
                .part("image", part(photo, "p.jpg", "image/jpeg"))
                .text("pending", pending.to_string())
                .text("set_profile_picture", profile.to_string());
            send(
                s.http
                    .post(s.url("/api/v1/photos"))
                    .header("Authorization", bearer(s, *user))
                    .multipart(f),
            )
        }
        Op::DiasporaList { user, per_page } => send(
            s.http
                .get(s.url(&format!("/api/v1/photos?per_page={per_page}")))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::DiasporaGet { user, img } => send(
            s.http
                .get(s.url(&format!("/api/v1/photos/{}", s.image(*img))))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::DiasporaDelete { user, img } => send(
            s.http
                .delete(s.url(&format!("/api/v1/photos/{}", s.image(*img))))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::FulcrumUpload {
            user,
            photo,
            key,
            record,
        } => {
            let mut f = Form::new()
                .text("photo[access_key]", key.clone())
                .part("photo[file]", part(photo, "photo.jpg", "image/jpeg"));
            if let Some(r) = record {
                f = f.text("photo[record_id]", r.clone());
            }
            send(
                s.http
                    .post(s.url("/api/v2/photos.json"))
                    .header("X-ApiToken", &s.tokens[*user])
                    .multipart(f),
            )
        }
        Op::FulcrumList {
            user,
            record,
            per_page,
            page,
            newest_first,
        } => {
            let mut q = format!("/api/v2/photos.json?per_page={per_page}&page={page}");
            if *newest_first {
                q.push_str("&newest_first=true");
            }
            if let Some(r) = record {
                q.push_str(&format!("&record_id={r}"));
            }
            send(s.http.get(s.url(&q)).header("X-ApiToken", &s.tokens[*user]))
        }
        Op::FulcrumGet { user, key } => send(
            s.http
                .get(s.url(&format!("/api/v2/photos/{key}.json")))
                .header("X-ApiToken", &s.tokens[*user]),
        ),
        Op::DjinnUpload {
            user,
            disk,
            name,
            namespace,
        } => {
            let mut url = s.url(&format!("/images?name={name}"));
            if let Some(ns) = namespace {
                url.push_str(&format!("&namespace={ns}"));
            }
            send(
                s.http
                    .post(url)
                    .header("Authorization", bearer(s, *user))
                    .body(disk.bytes.clone()),
            )
        }
        Op::DjinnList { user, search } => {
            let url = match search {
                Some(q) => s.url(&format!("/images?search={q}")),
                None => s.url("/images"),
            };
            send(s.http.get(url).header("Authorization", bearer(s, *user)))
        }
        Op::DjinnGet { user, img } => send(
            s.http
                .get(s.url(&format!("/images/{}", s.disk(*img))))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::DjinnDelete { user, img } => send(
            s.http
                .delete(s.url(&format!("/images/{}", s.disk(*img))))
                .header("Authorization", bearer(s, *user)),
        ),
        Op::PopitPut { user, doc, body } => send(
            s.http
                .put(s.url(&format!("/api/v0.1/persons/{doc}")))
                .header("Apikey", &s.tokens[*user])
                .json(body),
        ),
        Op::PopitUpload {
            user,
            doc,
            photo,
            notes,
        } => {
            let f = Form::new()
                .part("image", part(photo, "p.jpg", "image/jpeg"))
                .text("notes", notes.clone());
            send(
                s.http
                    .post(s.url(&format!("/api/v0.1/persons/{doc}/image")))
                    .header("Apikey", &s.tokens[*user])
                    .multipart(f),
            )
        }
        Op::PopitGet { doc } => send(s.http.get(s.url(&format!("/api/v0.1/persons/{doc}")))),
        Op::PopitList { per_page } => send(
            s.http
                .get(s.url(&format!("/api/v0.1/persons?page=1&per_page={per_page}"))),
        ),
        Op::PopitDelete { user, doc } => send(
            s.http
                .delete(s.url(&format!("/api/v0.1/persons/{doc}")))
                .header("Apikey", &s.tokens[*user]),
        ),
    };
    // remember what was created, in order
    match op {
        Op::NativeUpload { .. } if a.status == 201 => {
            if let Some(id) = a.body["id"].as_str() {
                s.images.push(id.to_string());
            }
        }
        Op::DiasporaUpload { .. } if a.status == 200 => {
            if let Some(id) = a.body["guid"].as_str() {
                s.images.push(id.to_string());
            }
        }
        Op::DjinnUpload { .. } if a.status == 201 => {
            if let Some(id) = a.body["id"].as_i64() {
                s.disks.push(id);
            }
        }
        _ => {}
    }
    a
}

/// Sends `op` to both servers and fails on any difference.
fn both(lite: &mut Side, pg: &mut Side, i: usize, op: &Op, seed: u64) -> u16 {
    let a = run(lite, op);
    let b = run(pg, op);
    let na = lite.norm.value("", "", &a.body);
    let nb = pg.norm.value("", "", &b.body);
    if a.status != b.status || na != nb {
        panic!(
            "operation {i} (seed {seed}) answered differently: {op:?}\n\
             {}: {} {}\n{}: {} {}\n{} log:\n{}\n{} log:\n{}",
            lite.label,
            a.status,
            serde_json::to_string_pretty(&na).unwrap_or_default(),
            pg.label,
            b.status,
            serde_json::to_string_pretty(&nb).unwrap_or_default(),
            lite.label,
            lite.node.stderr(),
            pg.label,
            pg.node.stderr(),
        );
    }
    assert!(
        a.status < 500,
        "operation {i} (seed {seed}) answered {} on both: {op:?}\n{}",
        a.status,
        pg.node.stderr()
    );
    a.status
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
        Err(_) => default,
    }
}

#[test]
fn sqlite_and_postgres_answer_every_request_alike() {
    let Some((mut lite, mut pg)) = sides() else {
        return;
    };
    let seed = env_u64("TINTYPE_DIFF_SEED", 19);
    let ops = env_u64("TINTYPE_DIFF_OPS", 300).min(1_000_000);
    eprintln!("differential: seed {seed} (TINTYPE_DIFF_SEED), {ops} operations (TINTYPE_DIFF_OPS)");
    let mut rng = Rng(seed);
    let mut docs = vec![];
    let mut statuses: std::collections::BTreeMap<u16, u64> = Default::default();
    let mut kinds: std::collections::BTreeMap<String, u64> = Default::default();
    let t0 = Instant::now();
    for i in 0..ops as usize {
        let op = random_op(&mut rng, lite.images.len(), lite.disks.len(), &mut docs);
        let st = both(&mut lite, &mut pg, i, &op, seed);
        *statuses.entry(st).or_default() += 1;
        let kind = format!("{op:?}");
        let kind = kind.split([' ', '{']).next().unwrap_or("").to_string();
        *kinds.entry(kind).or_default() += 1;
    }
    // a final sweep through every listing, for every user
    let mut i = ops as usize;
    for user in 0..USERS.len() {
        for op in [
            Op::NativeList { user, limit: 1000 },
            Op::Me { user },
            Op::DiasporaList {
                user,
                per_page: 100,
            },
            Op::FulcrumList {
                user,
                record: None,
                per_page: 1000,
                page: 1,
                newest_first: false,
            },
            Op::DjinnList { user, search: None },
            Op::PopitList { per_page: 200 },
        ] {
            both(&mut lite, &mut pg, i, &op, seed);
            i += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "differential: {i} operations on each server alike in {secs:.1} s \
         ({:.0} operation pairs/s); statuses {statuses:?}; operations {kinds:?}; \
         {} images, {} disks",
        i as f64 / secs.max(1e-9),
        lite.images.len(),
        lite.disks.len()
    );
    assert!(
        lite.images.len() > 5,
        "the sequence created too few images to mean much"
    );
}

/// The photos of issue 19, uploaded one after the other through the native
/// API on a fresh database: every one answers 201 on both servers (the
/// fourth, sixth and seventh once answered 500 on PostgreSQL), alike.
#[test]
fn the_issue_photos_upload_alike_one_after_another() {
    let Some((mut lite, mut pg)) = sides() else {
        return;
    };
    let model = || vec![(0x0110u16, Tv::Ascii("Pixel 7".into()))];
    let orient6 = || (0x0112u16, Tv::Short(6));
    let gps = |lat_ref: &str, lat: Tv, lon_ref: &str, lon: Tv| {
        vec![
            (0x0001u16, Tv::Ascii(lat_ref.into())),
            (0x0002, lat),
            (0x0003, Tv::Ascii(lon_ref.into())),
            (0x0004, lon),
        ]
    };
    let altitude = |mut g: Vec<(u16, Tv)>, tenths: u32| {
        g.push((0x0005, Tv::Byte(0)));
        g.push((0x0006, Tv::Rational(vec![(tenths, 10)])));
        g
    };
    let ne = || gps("N", dms(47, 30, 0), "E", dms(8, 15, 0));
    let sw = || gps("S", dms(33, 52, 0), "W", dms(151, 12, 0));
    let se = || gps("S", dms(33, 52, 0), "E", dms(151, 12, 0));
    let mut ifd0_6 = model();
    ifd0_6.push(orient6());
    let photos: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("no EXIF", None),
        ("GPS N/E", Some(tiff(vec![], vec![], ne()))),
        ("orientation 6", Some(tiff(ifd0_6.clone(), vec![], vec![]))),
        (
            "GPS S/W + altitude + orientation 6",
            Some(tiff(ifd0_6, vec![], altitude(sw(), 1000))),
        ),
        ("GPS S/W", Some(tiff(vec![], vec![], sw()))),
        (
            "GPS N/E + altitude 12.5 m",
            Some(tiff(vec![], vec![], altitude(ne(), 125))),
        ),
        ("GPS S/E", Some(tiff(vec![], vec![], se()))),
    ];
    for (i, (what, t)) in photos.iter().enumerate() {
        let op = Op::NativeUpload {
            user: 0,
            photo: Blob {
                what: what.to_string(),
                bytes: jpeg(64, 48, i as u8 * 30, t.as_deref()),
            },
            name: None,
            metadata: None,
            raw: false,
        };
        let st = both(&mut lite, &mut pg, i, &op, 0);
        assert_eq!(st, 201, "{what}");
    }
    // the coordinates came through, signs by hemisphere
    let got: Vec<(Value, Value)> = pg
        .images
        .clone()
        .iter()
        .map(|id| {
            let a = send(
                pg.http
                    .get(pg.url(&format!("/v1/images/{id}")))
                    .header("Authorization", format!("Bearer {}", pg.tokens[0])),
            );
            (a.body["latitude"].clone(), a.body["longitude"].clone())
        })
        .collect();
    assert_eq!(got.len(), 7);
    assert_eq!(got[0], (Value::Null, Value::Null));
    assert_eq!(got[1], (json!(47.5), json!(8.25)));
    let sw_lat = got[4].0.as_f64().unwrap_or(0.0);
    let sw_lon = got[4].1.as_f64().unwrap_or(0.0);
    assert!(
        (sw_lat + 33.8667).abs() < 1e-3 && (sw_lon + 151.2).abs() < 1e-9,
        "{got:?}"
    );
    let se_lon = got[6].1.as_f64().unwrap_or(0.0);
    assert!((se_lon - 151.2).abs() < 1e-9, "{got:?}");
}
