//! Scale-out: two `tintype serve` processes over one PostgreSQL catalog and
//! one S3-compatible bucket, as behind a load balancer. Runs when
//! TINTYPE_TEST_DATABASE_URL and TINTYPE_TEST_BLOB_STORE are set (see
//! scripts/services.sh); otherwise prints a skip note and passes.
//!
//! Each run works under a user of its own, and looks only at the jobs of
//! its own images, so reruns (and other tests) over the same database do
//! not disturb it.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tintype_engine::core::{Catalog, Job, JobState};
use tintype_store::SqlCatalog;

const BIN: &str = env!("CARGO_BIN_EXE_tintype");
const RENDER_JOB: &str = "render";

struct Backends {
    database_url: String,
    blob_store: String,
}

fn backends() -> Option<Backends> {
    match (
        std::env::var("TINTYPE_TEST_DATABASE_URL"),
        std::env::var("TINTYPE_TEST_BLOB_STORE"),
    ) {
        (Ok(database_url), Ok(blob_store)) => Some(Backends {
            database_url,
            blob_store,
        }),
        _ => {
            eprintln!(
                "skipping the two-node test: TINTYPE_TEST_DATABASE_URL and \
                 TINTYPE_TEST_BLOB_STORE are not both set (run scripts/services.sh)"
            );
            None
        }
    }
}

fn command(b: &Backends, data_dir: &Path) -> Command {
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
        .env("TINTYPE_DATABASE_URL", &b.database_url)
        .env("TINTYPE_BLOB_STORE", &b.blob_store)
        .env("TINTYPE_LOG", "warn")
        .env("TINTYPE_JOB_LEASE_SECS", "6");
    c
}

fn cli_ok(b: &Backends, data_dir: &Path, args: &[&str]) -> String {
    let out = command(b, data_dir)
        .args(args)
        .output()
        .expect("run tintype");
    assert!(
        out.status.success(),
        "tintype {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

struct Node {
    child: Option<Child>,
    base: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Node {
    fn start(b: &Backends, data_dir: &Path) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = command(b, data_dir)
            .arg("serve")
            .env("TINTYPE_LISTEN", format!("127.0.0.1:{port}"))
            .env("TINTYPE_PUBLIC_URL", &base)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tintype serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().expect("stderr pipe");
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        });
        let mut n = Node {
            child: Some(child),
            base,
            stderr,
        };
        let c = client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = n.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tintype serve exited ({st}):\n{}", n.log());
            }
            if let Ok(r) = c.get(n.url("/healthz")).send() {
                if r.status().is_success() {
                    return n;
                }
            }
            assert!(Instant::now() < deadline, "never healthy:\n{}", n.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn metric(&self, name: &str) -> f64 {
        let body = client()
            .get(self.url("/metrics"))
            .send()
            .and_then(|r| r.text())
            .expect("GET /metrics");
        body.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == name).then(|| v.trim().parse::<f64>().ok())?
            })
            .unwrap_or_else(|| panic!("no metric {name} in:\n{body}"))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// A PNG big enough that rendering its variants takes a while; distinct
/// per seed and per run.
fn png(w: u32, h: u32, seed: u32, run: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x.wrapping_mul(seed + 1) % 256) as u8,
            ((y + run) % 256) as u8,
            (seed % 256) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

fn upload(
    c: &reqwest::blocking::Client,
    n: &Node,
    token: &str,
    name: &str,
    body: Vec<u8>,
) -> Value {
    let r = c
        .post(n.url(&format!("/v1/images?name={name}")))
        .bearer_auth(token)
        .body(body)
        .send()
        .expect("upload");
    let status = r.status();
    let text = r.text().unwrap();
    assert_eq!(status, 201, "upload through {} failed: {text}", n.base);
    serde_json::from_str(&text).unwrap()
}

/// Every render job of the given images, by image id.
async fn render_jobs(cat: &SqlCatalog, ids: &BTreeSet<String>) -> BTreeMap<String, Vec<Job>> {
    let mut out: BTreeMap<String, Vec<Job>> = BTreeMap::new();
    let mut after = 0;
    loop {
        let page = cat.jobs_after(after, 500).await.expect("list jobs");
        let Some(last) = page.last() else { break };
        after = last.id;
        for j in page {
            if j.kind != RENDER_JOB {
                continue;
            }
            if let Some(id) = j.payload["image_id"].as_str() {
                if ids.contains(id) {
                    out.entry(id.to_string()).or_default().push(j);
                }
            }
        }
    }
    out
}

/// Waits until every image is processed; returns the time it took.
async fn wait_processed(cat: &SqlCatalog, ids: &BTreeSet<String>, limit: Duration) -> Duration {
    let t0 = Instant::now();
    loop {
        let mut pending = Vec::new();
        for id in ids {
            let img = cat.image_by_id(id).await.unwrap().expect("image exists");
            if img.processed_at.is_none() {
                pending.push(id.clone());
            }
        }
        if pending.is_empty() {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "{} images still unprocessed after {limit:?}: {pending:?}",
            pending.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn worker_pid(j: &Job) -> Option<u32> {
    j.locked_by.as_deref()?.split('-').next()?.parse().ok()
}

#[test]
fn two_nodes_share_storage_and_work_and_survive_a_kill_9() {
    let Some(b) = backends() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (dir_a, dir_b): (PathBuf, PathBuf) = (tmp.path().join("a"), tmp.path().join("b"));
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let user = format!("two-nodes-{}-{}", stamp.as_millis(), std::process::id());
    let run_seed = stamp.subsec_micros() + std::process::id();

    // Both nodes start together over the same (possibly new) catalog: one
    // migrates under the advisory lock while the other waits.
    let (node_a, node_b) = std::thread::scope(|s| {
        let a = s.spawn(|| Node::start(&b, &dir_a));
        let b2 = s.spawn(|| Node::start(&b, &dir_b));
        (a.join().unwrap(), b2.join().unwrap())
    });
    let mut node_a = node_a;
    cli_ok(&b, &dir_a, &["user", "create", &user]);
    let token = cli_ok(&b, &dir_b, &["token", "create", &user])
        .trim()
        .to_string();
    // The catalog is read directly, on a runtime of its own (the HTTP
    // client is the blocking one).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cat = rt
        .block_on(SqlCatalog::connect(&b.database_url))
        .expect("catalog");

    // 1. An upload through one node is served by the other, byte for byte.
    let c = client();
    let bytes = png(300, 200, 1, run_seed);
    let img = upload(&c, &node_a, &token, "first", bytes.clone());
    let id = img["id"].as_str().unwrap().to_string();
    assert_eq!(img["sha256"], sha256_hex(&bytes).as_str());
    let r = c
        .get(node_b.url(&format!("/v1/images/{id}/original")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sha256_hex(&r.bytes().unwrap()), sha256_hex(&bytes));
    // And the metadata too.
    let r = c
        .get(node_b.url(&format!("/v1/images/{id}")))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    // 2. Background work is shared: uploads through both nodes, renders
    // run on both.
    let renders_before = (
        node_a.metric("tintype_variant_renders_total"),
        node_b.metric("tintype_variant_renders_total"),
    );
    let mut shared = BTreeSet::from([id.clone()]);
    let uploads: Vec<Value> = std::thread::scope(|s| {
        let hs: Vec<_> = [&node_a, &node_b]
            .into_iter()
            .enumerate()
            .map(|(k, node)| {
                let token = &token;
                s.spawn(move || {
                    let c = client();
                    (0..10u32)
                        .map(|i| {
                            let seed = 100 + k as u32 * 10 + i;
                            upload(
                                &c,
                                node,
                                token,
                                &format!("s{seed}"),
                                png(1200, 900, seed, run_seed),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    for u in &uploads {
        shared.insert(u["id"].as_str().unwrap().to_string());
    }
    let took = rt.block_on(wait_processed(&cat, &shared, Duration::from_secs(180)));
    eprintln!("{} images processed by two nodes in {took:?}", shared.len());
    let jobs = rt.block_on(render_jobs(&cat, &shared));
    let (pa, pb) = (node_a.pid(), node_b.pid());
    let mut by_node = BTreeMap::<u32, usize>::new();
    for (img, js) in &jobs {
        assert_eq!(js.len(), 1, "image {img} has {} render jobs", js.len());
        assert_eq!(js[0].state, JobState::Done, "{:?}", js[0]);
        *by_node.entry(worker_pid(&js[0]).unwrap_or(0)).or_default() += 1;
    }
    assert_eq!(jobs.len(), shared.len(), "every image had a render job");
    eprintln!("render jobs per node pid: {by_node:?} (a={pa}, b={pb})");
    assert!(
        by_node.get(&pa).copied().unwrap_or(0) > 0 && by_node.get(&pb).copied().unwrap_or(0) > 0,
        "both nodes should have rendered: {by_node:?} (a={pa}, b={pb})"
    );
    assert!(node_a.metric("tintype_variant_renders_total") > renders_before.0);
    assert!(node_b.metric("tintype_variant_renders_total") > renders_before.1);
    // Variants rendered by one node are served by the other, byte for
    // byte as the catalog recorded them.
    let some = shared.iter().next().cloned().unwrap_or_default();
    let expected_variants = rt.block_on(cat.variants(&some)).unwrap();
    assert!(!expected_variants.is_empty(), "no variants for {some}");
    for id in shared.iter().take(4) {
        for v in rt.block_on(cat.variants(id)).unwrap() {
            let path = format!("/v1/images/{id}/variants/{}", v.preset);
            for node in [&node_a, &node_b] {
                let r = c.get(node.url(&path)).bearer_auth(&token).send().unwrap();
                assert_eq!(r.status(), 200, "{path} on {}", node.base);
                assert_eq!(sha256_hex(&r.bytes().unwrap()), v.sha256, "{path} bytes");
            }
        }
    }
    let expected_variants = expected_variants.len();

    // 3. kill -9 one node during a batch: 30 uploads through A; A dies
    // while it holds render jobs; B finishes everything, exactly once.
    let c2 = client();
    let mut batch = BTreeSet::new();
    for i in 0..30u32 {
        let v = upload(
            &c2,
            &node_a,
            &token,
            &format!("k{i}"),
            png(1600, 1200, 1000 + i, run_seed),
        );
        batch.insert(v["id"].as_str().unwrap().to_string());
    }
    let mut held_by_a = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while held_by_a.is_empty() {
        for (img, js) in rt.block_on(render_jobs(&cat, &batch)) {
            if js
                .iter()
                .any(|j| j.state == JobState::Running && worker_pid(j) == Some(pa))
            {
                held_by_a.insert(img);
            }
        }
        if held_by_a.is_empty() {
            assert!(
                Instant::now() < deadline,
                "node A never held a render job of the batch"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    node_a.kill9();
    let killed_at = Instant::now();
    eprintln!("killed node A holding {} running job(s)", held_by_a.len());
    assert!(
        !node_a.log().contains("panicked"),
        "node A panicked:\n{}",
        node_a.log()
    );

    // The lease (TINTYPE_JOB_LEASE_SECS=6 here) must expire before B may take A's jobs.
    let took = rt.block_on(wait_processed(&cat, &batch, Duration::from_secs(240)));
    eprintln!(
        "batch finished {:?} after the kill ({took:?} of waiting)",
        killed_at.elapsed()
    );
    let jobs = rt.block_on(render_jobs(&cat, &batch));
    assert_eq!(jobs.len(), batch.len(), "every image had a render job");
    let pb = node_b.pid();
    for (img, js) in &jobs {
        assert_eq!(
            js.len(),
            1,
            "image {img} has {} render jobs: {js:?}",
            js.len()
        );
        let j = &js[0];
        assert_eq!(j.state, JobState::Done, "job left behind: {j:?}");
        assert!(j.lease_until.is_none(), "a done job keeps a lease: {j:?}");
        if held_by_a.contains(img) {
            assert_eq!(
                worker_pid(j),
                Some(pb),
                "A's job was not finished by B: {j:?}"
            );
            assert!(j.attempts >= 2, "A's job was not retried: {j:?}");
        }
        let image = rt.block_on(cat.image_by_id(img)).unwrap().unwrap();
        assert!(image.processed_at.is_some());
        let vs = rt.block_on(cat.variants(img)).unwrap();
        assert_eq!(vs.len(), expected_variants, "variants of {img}: {vs:?}");
        assert!(vs.iter().all(|v| !v.sha256.is_empty()));
    }
    // No job of this run is left running on a dead node.
    let all: BTreeSet<String> = shared.union(&batch).cloned().collect();
    for js in rt.block_on(render_jobs(&cat, &all)).values() {
        for j in js {
            assert_ne!(j.state, JobState::Running, "{j:?}");
        }
    }
    assert!(
        !node_b.log().contains("panicked"),
        "node B panicked:\n{}",
        node_b.log()
    );
}
