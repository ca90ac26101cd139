//! Settings: defaults -> TOML file (`--config`) -> environment -> flags.
//! Every command reads the same settings, so admin commands address the
//! same storage as a running server.

use anyhow::Context;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use tintype_engine::{EngineConfig, Preset, Presets};
use tintype_http::ServerLimits;

/// Flags; each also reads its environment variable.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Flags {
    /// Optional TOML configuration file (see tintype.example.toml).
    #[arg(long, env = "TINTYPE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TINTYPE_LISTEN", global = true)]
    pub listen: Option<String>,
    /// Data directory (SQLite catalog, blobs, temp files) [default: ./tintype-data].
    #[arg(long, env = "TINTYPE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Absolute base URL used in responses [default: http://{listen}].
    #[arg(long, env = "TINTYPE_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Catalog: sqlite://PATH or postgres://… [default: sqlite file in the data dir].
    #[arg(long, env = "TINTYPE_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Blob store: a directory path or s3://bucket?… [default: blobs/ in the data dir].
    #[arg(long, env = "TINTYPE_BLOB_STORE", global = true)]
    pub blob_store: Option<String>,
    /// Largest upload in bytes [default: 10 GiB].
    #[arg(long, env = "TINTYPE_MAX_UPLOAD_BYTES", global = true)]
    pub max_upload_bytes: Option<u64>,
    /// Bytes that all decodes and encodes of this process may hold together [default: 1 GiB].
    #[arg(long, env = "TINTYPE_MAX_DECODE_MEMORY", global = true)]
    pub max_decode_memory: Option<u64>,
    /// Seconds a conversion waits for decode memory before answering 503 [default: 30].
    #[arg(long, env = "TINTYPE_DECODE_WAIT_SECS", global = true)]
    pub decode_wait_secs: Option<u64>,
    /// 1 lets URL fetches reach loopback and private addresses (tests only) [default: 0].
    #[arg(long, env = "TINTYPE_FETCH_ALLOW_PRIVATE", global = true)]
    pub fetch_allow_private: Option<String>,
    /// Log filter, e.g. info or tintype=debug [default: info].
    #[arg(long, env = "TINTYPE_LOG", global = true)]
    pub log: Option<String>,
    /// Log lines as text or as one JSON object per line: text or json [default: text].
    #[arg(long, env = "TINTYPE_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// Background job workers in this process [default: 2].
    #[arg(long, env = "TINTYPE_WORKERS", global = true)]
    pub workers: Option<usize>,
    /// Seconds a claimed job stays leased before another node may take it [default: 60].
    #[arg(long, env = "TINTYPE_JOB_LEASE_SECS", global = true)]
    pub job_lease_secs: Option<u64>,
    /// Seconds a client has to send a whole request head [default: 30].
    #[arg(long, env = "TINTYPE_HEADER_TIMEOUT_SECS", global = true)]
    pub header_timeout_secs: Option<u64>,
    /// Seconds a keep-alive connection may wait for its next request [default: 75].
    #[arg(long, env = "TINTYPE_IDLE_TIMEOUT_SECS", global = true)]
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a request body may go without sending a byte [default: 60].
    #[arg(long, env = "TINTYPE_BODY_TIMEOUT_SECS", global = true)]
    pub body_timeout_secs: Option<u64>,
    /// Connections open at once; more wait in the listen backlog [default: 4096].
    #[arg(long, env = "TINTYPE_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Seconds requests and jobs in flight may take to finish after SIGTERM or Ctrl-C [default: 30].
    #[arg(long, env = "TINTYPE_SHUTDOWN_GRACE_SECS", global = true)]
    pub shutdown_grace_secs: Option<u64>,
    /// Seconds an unreferenced blob is kept before `tintype gc` may remove it [default: 3600].
    #[arg(long, env = "TINTYPE_GC_GRACE_SECS", global = true)]
    pub gc_grace_secs: Option<u64>,
    /// Seconds the stored-bytes metric is reused before the catalog is summed again [default: 60].
    #[arg(long, env = "TINTYPE_STORED_BYTES_REFRESH_SECS", global = true)]
    pub stored_bytes_refresh_secs: Option<u64>,
}

/// The configuration file; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Absolute base URL used in responses.
    pub public_url: Option<String>,
    /// Catalog URL.
    pub database_url: Option<String>,
    /// Blob store.
    pub blob_store: Option<String>,
    /// Largest upload in bytes.
    pub max_upload_bytes: Option<u64>,
    /// Bytes that all decodes and encodes of this process may hold together.
    pub max_decode_memory: Option<u64>,
    /// Seconds a conversion waits for decode memory before answering 503.
    pub decode_wait_secs: Option<u64>,
    /// Conversions that may wait for decode memory at once; more answer 503.
    pub decode_queue: Option<usize>,
    /// Let URL fetches reach non-public addresses.
    pub fetch_allow_private: Option<bool>,
    /// Log filter.
    pub log: Option<String>,
    /// Log format: text or json.
    pub log_format: Option<String>,
    /// Background job workers.
    pub workers: Option<usize>,
    /// Largest picture in pixels (decompression bombs).
    pub max_pixels: Option<u64>,
    /// Largest body a URL fetch may return, in bytes.
    pub fetch_max_bytes: Option<u64>,
    /// Time limit of a URL fetch, in seconds.
    pub fetch_timeout_secs: Option<u64>,
    /// Redirects a URL fetch may follow.
    pub fetch_max_redirects: Option<usize>,
    /// Attempts before a background job is given up.
    pub job_max_attempts: Option<i64>,
    /// Seconds a claimed job stays leased before another node may take it.
    pub job_lease_secs: Option<u64>,
    /// Seconds an unreferenced blob is kept before garbage collection may
    /// remove it (uploads in flight are protected by pins, not by this).
    pub gc_grace_secs: Option<u64>,
    /// Seconds the stored-bytes metric is reused before the catalog is
    /// summed again.
    pub stored_bytes_refresh_secs: Option<u64>,
    /// Seconds before an unpublished diaspora* photo is removed.
    pub pending_ttl_secs: Option<u64>,
    /// Seconds a client has to send a whole request head.
    pub header_timeout_secs: Option<u64>,
    /// Seconds a keep-alive connection may wait for its next request.
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a request body may go without sending a byte.
    pub body_timeout_secs: Option<u64>,
    /// Connections open at once; more wait in the listen backlog.
    pub max_connections: Option<usize>,
    /// Seconds requests and jobs in flight may take to finish at shutdown.
    pub shutdown_grace_secs: Option<u64>,
    /// Extra or replaced variant presets.
    #[serde(default)]
    pub presets: Vec<Preset>,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub public_url: String,
    pub database_url: String,
    pub blob_store: String,
    pub log: String,
    /// One JSON object per log line instead of text.
    pub log_json: bool,
    pub engine: EngineConfig,
    pub pending_ttl: Duration,
    /// Timeouts and the connection cap of `serve`.
    pub server: ServerLimits,
}

fn parse_bool(s: &str) -> anyhow::Result<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => anyhow::bail!("expected 0 or 1, got {other:?}"),
    }
}

impl Settings {
    pub fn resolve(flags: &Flags) -> anyhow::Result<Settings> {
        let file: FileConfig = match &flags.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let listen = flags
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let data_dir = flags
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./tintype-data"));
        let public_url = flags
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"));
        url_check(&public_url)?;
        let database_url = flags
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("catalog.db").display()));
        let blob_store = flags
            .blob_store
            .clone()
            .or(file.blob_store)
            .unwrap_or_else(|| data_dir.join("blobs").display().to_string());
        let allow_private = match &flags.fetch_allow_private {
            Some(s) => parse_bool(s).context("TINTYPE_FETCH_ALLOW_PRIVATE")?,
            None => file.fetch_allow_private.unwrap_or(false),
        };
        // Each process streams into a directory of its own under tmp/, so
        // no command removes another one's files (see tintype_store::staging).
        let mut engine =
            EngineConfig::new(tintype_store::staging::owned_dir(&data_dir.join("tmp")));
        engine.space_reserve = Some(data_dir.join("space-reserve"));
        if let Some(n) = flags.max_upload_bytes.or(file.max_upload_bytes) {
            engine.max_upload_bytes = n;
        }
        if let Some(n) = flags.max_decode_memory.or(file.max_decode_memory) {
            engine.decode_budget.max_bytes = n.max(1 << 20);
        }
        if let Some(n) = flags.decode_wait_secs.or(file.decode_wait_secs) {
            engine.decode_budget.wait = Duration::from_secs(n);
        }
        if let Some(n) = file.decode_queue {
            engine.decode_budget.queue = n;
        }
        if let Some(n) = flags.workers.or(file.workers) {
            engine.workers = n;
        }
        if let Some(n) = file.max_pixels {
            engine.limits.max_pixels = n;
        }
        if let Some(n) = flags.job_lease_secs.or(file.job_lease_secs) {
            engine.job_lease = Duration::from_secs(n.max(3));
        }
        if let Some(n) = flags.gc_grace_secs.or(file.gc_grace_secs) {
            engine.gc_grace = Duration::from_secs(n);
        }
        if let Some(n) = flags
            .stored_bytes_refresh_secs
            .or(file.stored_bytes_refresh_secs)
        {
            engine.stored_bytes_refresh = Duration::from_secs(n);
        }
        if let Some(n) = file.job_max_attempts {
            engine.job_max_attempts = n.max(1);
        }
        engine.fetch.allow_private = allow_private;
        if let Some(n) = file.fetch_max_bytes {
            engine.fetch.max_bytes = n;
        }
        if let Some(n) = file.fetch_timeout_secs {
            engine.fetch.timeout = Duration::from_secs(n);
        }
        if let Some(n) = file.fetch_max_redirects {
            engine.fetch.max_redirects = n;
        }
        let mut server = ServerLimits::default();
        let secs = |n: u64| Duration::from_secs(n.max(1));
        if let Some(n) = flags.header_timeout_secs.or(file.header_timeout_secs) {
            server.header_timeout = secs(n);
        }
        if let Some(n) = flags.idle_timeout_secs.or(file.idle_timeout_secs) {
            server.idle_timeout = secs(n);
        }
        if let Some(n) = flags.body_timeout_secs.or(file.body_timeout_secs) {
            server.body_timeout = secs(n);
        }
        if let Some(n) = flags.max_connections.or(file.max_connections) {
            server.max_connections = n.max(1);
        }
        if let Some(n) = flags.shutdown_grace_secs.or(file.shutdown_grace_secs) {
            // 0 is allowed: give everything back at once.
            server.shutdown_grace = Duration::from_secs(n);
        }
        engine.presets = Presets::builtin()
            .with(file.presets)
            .map_err(|e| anyhow::anyhow!(e))?;
        let log_json = match flags
            .log_format
            .clone()
            .or(file.log_format)
            .as_deref()
            .map(str::trim)
        {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => anyhow::bail!("log format {other:?}: use text or json"),
        };
        Ok(Settings {
            listen,
            data_dir,
            public_url,
            database_url,
            blob_store,
            log: flags
                .log
                .clone()
                .or(file.log)
                .unwrap_or_else(|| "info".into()),
            log_json,
            engine,
            pending_ttl: Duration::from_secs(file.pending_ttl_secs.unwrap_or(24 * 3600)),
            server,
        })
    }
}

fn url_check(u: &str) -> anyhow::Result<()> {
    if !(u.starts_with("http://") || u.starts_with("https://")) {
        anyhow::bail!("TINTYPE_PUBLIC_URL must be an absolute http(s) URL, got {u:?}");
    }
    Ok(())
}
