//! How listing costs grow with the catalog: fills a catalog through the
//! engine's own API (no HTTP) with tiny distinct pictures spread over the
//! dialects, then starts `tintype serve` over it and measures, on loopback,
//! the p50/p99 latency of the hot reads and of one upload, and the
//! server's RSS. Sizes are cumulative: the catalog filled for 10k is
//! topped up to 100k, and so on. Not run by CI; `bench/catalog.sh` builds
//! and runs it.
//!
//! ```text
//! catalog_bench --bin target/release/tintype [--sizes 10000,100000] [--runs 200]
//!               [--dir DIR] [--concurrency 16]
//! ```
//!
//! One user owns every image (a photographer's account, the worst case for
//! per-user listings). Image i belongs to a dialect by i % 4: 0 Djinn (a
//! disk record named `disk-{i:07}`), 1 Fulcrum (record id `r{i / 40}`, ten
//! photos each, form `f{i % 7}`), 2 diaspora* (a photo), 3 the native API only. One
//! Livingdocs import of ten items is recorded at the start.
//!
//! Djinn's search is timed three ways. Its answer carries a count (the
//! Link header's last page), so a search costs at least its number of
//! matches; two of the three have answers of the same size at every
//! catalog size: a whole name (one match) and `disk-000{d}` (250 matches,
//! ten pages). The third, four digits such as `0004`, matches more names
//! the larger the catalog, and is shown for comparison.
//!
//! With `--dir`, the filled catalog is kept, and a later run over the same
//! directory measures it again without filling (or tops it up to larger
//! sizes): the number of images filled so far is kept in `DIR/filled`.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tintype_engine::core::{to_millis, NewRecord, Scope};
use tintype_engine::{Engine, EngineConfig, IngestOptions};

struct Args {
    bin: PathBuf,
    sizes: Vec<u64>,
    runs: usize,
    dir: Option<PathBuf>,
    concurrency: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        bin: PathBuf::new(),
        sizes: vec![10_000, 100_000],
        runs: 200,
        dir: None,
        concurrency: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().ok_or_else(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--bin" => a.bin = PathBuf::from(v),
            "--sizes" => {
                a.sizes = v
                    .split(',')
                    .map(|s| s.trim().parse::<u64>().map_err(|e| format!("--sizes: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--runs" => a.runs = v.parse().map_err(|e| format!("--runs: {e}"))?,
            "--dir" => a.dir = Some(PathBuf::from(v)),
            "--concurrency" => {
                a.concurrency = v.parse().map_err(|e| format!("--concurrency: {e}"))?
            }
            _ => return Err(format!("unknown argument {k}")),
        }
    }
    if a.bin.as_os_str().is_empty() {
        return Err("--bin PATH (the tintype binary to serve with) is required".into());
    }
    a.sizes.sort_unstable();
    Ok(a)
}

/// A tiny PNG, different for every `n`.
fn png(n: u64) -> Vec<u8> {
    let img = image::RgbImage::from_fn(4, 4, |x, y| {
        let b = n.to_le_bytes();
        let k = (x + 4 * y) as usize;
        image::Rgb([b[k % 8], b[(k + 3) % 8], (k as u8) ^ b[0]])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("encode a PNG");
    out.into_inner()
}

async fn open_engine(data: &Path) -> Arc<Engine> {
    let db = format!("sqlite://{}", data.join("catalog.db").display());
    let catalog = tintype_store::open_catalog(&db).await.expect("catalog");
    let blobs = tintype_store::open_blob_store(&data.join("blobs").display().to_string())
        .await
        .expect("blob store");
    let mut cfg = EngineConfig::new(data.join("tmp"));
    cfg.workers = 0;
    Engine::new(catalog, blobs, cfg).expect("engine")
}

/// One image through the engine, and the record its dialect keeps.
async fn add(engine: &Engine, uid: i64, user: &str, i: u64) {
    let mut opts = IngestOptions::new(uid);
    opts.name = Some(format!("img-{i}"));
    let chunk: Result<bytes::Bytes, std::io::Error> = Ok(png(i).into());
    let image = engine
        .ingest(opts, futures::stream::iter([chunk]))
        .await
        .expect("ingest");
    let rec = match i % 4 {
        0 => {
            let name = format!("disk-{i:07}");
            NewRecord {
                scope: "djinn.image".into(),
                key: format!("u:{uid}:{name}"),
                owner_id: Some(uid),
                image_id: Some(image.id.clone()),
                data: json!({
                    "id": image.seq, "name": name, "author_id": uid, "user_id": uid,
                    "namespace_id": null, "root_id": null, "created_at": image.created_at,
                }),
                skey: Some(name.clone()),
                ..NewRecord::default()
            }
        }
        1 => {
            let key = format!("{i:08x}-0000-4000-8000-{i:012x}");
            // Ten photos per record id whatever the size, so the filtered
            // page is the same size at every size.
            let (rid, form) = (format!("r{}", i / 40), format!("f{}", i % 7));
            NewRecord {
                scope: "fulcrum.photo".into(),
                key: format!("{uid}:{key}"),
                owner_id: Some(uid),
                image_id: Some(image.id.clone()),
                data: json!({
                    "access_key": key, "record_id": rid, "form_id": form,
                    "created_by_id": uid.to_string(), "created_by": user,
                }),
                skey: Some(rid),
                skey2: Some(form),
                ..NewRecord::default()
            }
        }
        2 => NewRecord {
            scope: "diaspora.photo".into(),
            key: image.id.clone(),
            owner_id: Some(uid),
            image_id: Some(image.id.clone()),
            data: json!({ "pending": false }),
            sort_at: Some(to_millis(image.created_at)),
            ref_id: Some(image.seq),
            ..NewRecord::default()
        },
        _ => return,
    };
    engine
        .insert_record(&rec)
        .await
        .expect("record")
        .expect("a new record");
}

/// A finished Livingdocs import of ten of the first images.
async fn livingdocs_import(engine: &Engine, uid: i64) {
    let page = engine.list_images(uid, None, 10).await.expect("list");
    let items: Vec<_> = (0..page.images.len())
        .map(|k| {
            json!({"url": format!("http://example.org/{k}.png"), "externalId": format!("e{k}"),
                   "title": null, "metadata": {}, "mediaType": "image"})
        })
        .collect();
    for (k, img) in page.images.iter().enumerate() {
        engine
            .put_record(&NewRecord {
                scope: tintype_livingdocs::item_scope("bench"),
                key: k.to_string(),
                owner_id: Some(uid),
                data: json!({"status": "success", "reason": null, "image_id": img.id}),
                ..NewRecord::default()
            })
            .await
            .expect("item");
    }
    engine
        .put_record(&NewRecord {
            scope: tintype_livingdocs::IMPORT_SCOPE.into(),
            key: "bench".into(),
            owner_id: Some(uid),
            data: json!({"systemName": "bench", "items": items, "state": "success",
                         "startedAt": "2026-01-01T00:00:00.000Z",
                         "finishedAt": "2026-01-01T00:00:01.000Z", "webhook_queued": true}),
            ..NewRecord::default()
        })
        .await
        .expect("import");
}

/// Fills from `from` to `to` images, `concurrency` uploads at a time.
async fn fill(engine: &Arc<Engine>, uid: i64, user: &str, from: u64, to: u64, concurrency: usize) {
    let start = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(from));
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| {
            let (engine, next, user) = (engine.clone(), next.clone(), user.to_string());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= to {
                        return;
                    }
                    add(&engine, uid, &user, i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("filler");
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "filled {from}..{to} in {secs:.1} s ({:.0} images/s)",
        (to - from) as f64 / secs.max(1e-9)
    );
}

struct Server {
    child: std::process::Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn serve(bin: &Path, data: &Path) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = std::process::Command::new(bin)
        .arg("serve")
        .env("TINTYPE_DATA_DIR", data)
        .env("TINTYPE_LISTEN", format!("127.0.0.1:{port}"))
        .env("TINTYPE_WORKERS", "0")
        .env("TINTYPE_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start tintype serve");
    let base = format!("http://127.0.0.1:{port}");
    let server = Server { child, base };
    let c = reqwest::Client::new();
    for _ in 0..600 {
        if c.get(format!("{}/healthz", server.base))
            .send()
            .await
            .is_ok()
        {
            return server;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tintype serve did not answer");
}

fn rss_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// p50 and p99 in milliseconds.
fn percentiles(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(f64::NAN)
    };
    (at(0.50), at(0.99))
}

/// Times `runs` requests made by `req(k)`; each must answer `status`.
async fn time<F>(runs: usize, status: u16, mut req: F) -> (f64, f64)
where
    F: FnMut(usize) -> reqwest::RequestBuilder,
{
    // A few untimed requests first (connections, caches of the first use).
    for k in 0..3 {
        let _ = req(k).send().await.and_then(|r| r.error_for_status());
    }
    let mut out = Vec::with_capacity(runs);
    for k in 0..runs {
        let t = Instant::now();
        let r = req(k).send().await.expect("request");
        let got = r.status().as_u16();
        let body = r.bytes().await.expect("body");
        out.push(t.elapsed());
        assert_eq!(got, status, "{}", String::from_utf8_lossy(&body));
    }
    percentiles(out)
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("catalog_bench: {e}");
            std::process::exit(2);
        }
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let data = root.join("data");
    std::fs::create_dir_all(&data).expect("data dir");
    let user = "bench";
    let engine = open_engine(&data).await;
    let marker = root.join("filled");
    let resumed = std::fs::read_to_string(&marker)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let uid = match resumed {
        Some(_) => engine.user(user).await.expect("the kept catalog's user").id,
        None => engine.create_user(user, None).await.expect("user").id,
    };
    let token = engine
        .create_token(
            user,
            &[Scope::ImageRead, Scope::ImageWrite, Scope::ImageDelete],
        )
        .await
        .expect("token")
        .secret;
    let mut have = match resumed {
        Some(n) => {
            eprintln!("resuming over {} ({n} images filled)", root.display());
            n
        }
        None => {
            fill(&engine, uid, user, 0, 10, 1).await;
            livingdocs_import(&engine, uid).await;
            10
        }
    };
    drop(engine);
    let keep = |n: u64| {
        if a.dir.is_some() {
            std::fs::write(&marker, n.to_string()).expect("write DIR/filled");
        }
    };
    let mut table = Vec::new();
    for &size in &a.sizes {
        let engine = open_engine(&data).await;
        if have < size {
            fill(&engine, uid, user, have, size, a.concurrency).await;
            have = size;
            keep(have);
        }
        // What a running server does every TIDY_INTERVAL (the server below
        // runs no workers).
        engine
            .tidy_search_index()
            .await
            .expect("tidy the search index");
        // The native list's cursor 1000 pages of 10 deep (or the last).
        let mut cursor: Option<String> = None;
        for _ in 0..999 {
            let page = engine
                .list_images(uid, cursor.as_deref(), 10)
                .await
                .expect("walk");
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        let deep = cursor.unwrap_or_default();
        drop(engine);

        let server = serve(&a.bin, &data).await;
        let c = reqwest::Client::new();
        let b = server.base.clone();
        let t = token.clone();
        let n = a.runs;
        let mut row = vec![format!("{have}")];
        let first = time(n, 200, |_| {
            c.get(format!("{b}/v1/images?limit=50")).bearer_auth(&t)
        })
        .await;
        let deep_page = time(n, 200, |_| {
            c.get(format!("{b}/v1/images?limit=10&cursor={deep}"))
                .bearer_auth(&t)
        })
        .await;
        let fulcrum = time(n, 200, |k| {
            c.get(format!(
                "{b}/api/v2/photos.json?record_id=r{}&per_page=100",
                k % 250
            ))
            .header("X-ApiToken", &t)
        })
        .await;
        let diaspora = time(n, 200, |_| {
            c.get(format!("{b}/api/v1/photos")).bearer_auth(&t)
        })
        .await;
        let djinn_one = time(n, 200, |k| {
            c.get(format!("{b}/images?search=disk-{:07}", 4 * (k % 2500)))
                .bearer_auth(&t)
        })
        .await;
        let djinn_pages = time(n, 200, |k| {
            c.get(format!("{b}/images?search=disk-000{}", k % 10))
                .bearer_auth(&t)
        })
        .await;
        let djinn_broad = time(n, 200, |k| {
            c.get(format!("{b}/images?search={:04}", 4 * (k % 2500)))
                .bearer_auth(&t)
        })
        .await;
        let living = time(n, 200, |_| {
            c.get(format!("{b}/api/v1/import/images/status?id=bench"))
                .bearer_auth(&t)
        })
        .await;
        let uploads = (n / 4).max(10);
        let upload = time(uploads, 201, |k| {
            c.post(format!("{b}/v1/images?name=u{k}"))
                .bearer_auth(&t)
                .body(png(u64::MAX - (size * 10) - k as u64))
        })
        .await;
        have += uploads as u64 + 3;
        keep(have);
        let pid = server.child.id();
        let (rss, hwm) = (rss_kb(pid, "VmRSS:"), rss_kb(pid, "VmHWM:"));
        drop(server);
        for (p50, p99) in [
            first,
            deep_page,
            fulcrum,
            diaspora,
            djinn_one,
            djinn_pages,
            djinn_broad,
            living,
            upload,
        ] {
            row.push(format!("{p50:.1} / {p99:.1}"));
        }
        row.push(format!(
            "{:.0} ({:.0})",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        ));
        println!("{}", row.join(" | "));
        table.push(row);
    }
    println!();
    println!("| images | native list, first page | native list, 1000 pages deep | Fulcrum list, filtered | diaspora* photos | Djinn search, 1 match | Djinn search, 250 matches | Djinn search, broad (matches grow) | Livingdocs status | upload | server RSS MB (peak) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in table {
        println!("| {} |", row.join(" | "));
    }
    println!();
    println!(
        "Latencies in ms, p50 / p99 of {} requests each ({} uploads), sequential, on loopback.",
        a.runs,
        (a.runs / 4).max(10)
    );
    let size = dir_size(&data);
    println!(
        "Data directory after the last size: {:.0} MB.",
        size as f64 / 1e6
    );
}

fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => total += dir_size(&e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
