//! tintype: the binary. `tintype serve` runs the server; the other commands
//! administer the same storage (they work while the server runs).

mod config;
mod media_cmd;
mod progress;

use anyhow::Context;
use clap::{Parser, Subcommand};
use config::{Flags, Settings};
use std::process::ExitCode;
use std::sync::Arc;
use tintype_engine::core::Scope;
use tintype_engine::Engine;

#[derive(Parser, Debug)]
#[command(name = "tintype", version, about = "A self-hosted image service")]
struct Cli {
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP server and the background workers.
    Serve,
    /// Print a completion script for a shell (bash, zsh, fish, elvish,
    /// powershell), e.g. `tintype completions bash > /etc/bash_completion.d/tintype`.
    Completions { shell: clap_complete::Shell },
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage quotas.
    #[command(subcommand)]
    Quota(QuotaCommand),
    /// Remove blobs that no image references (safe while serving).
    Gc {
        /// List what would be removed and the bytes it would free; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Verify the library: every image's and variant's blob exists and
    /// hashes to its SHA-256; count orphan blobs. Exits non-zero when a
    /// blob is missing or corrupt (safe while serving).
    Check {
        /// Remove the catalog rows whose blob is missing (an image whose
        /// original is gone, with its variants; a variant whose blob is
        /// gone). Corrupt blobs are only reported.
        #[arg(long)]
        repair: bool,
    },
    /// Manage Djinn namespaces (collaborators, visibility).
    #[command(subcommand)]
    Namespace(tintype_djinn::cli::NamespaceCommand),
    /// Print what tintype learns about a file, as JSON.
    Probe(media_cmd::ProbeArgs),
    /// Make variants of a picture into a directory, with the server's code path.
    Render(media_cmd::RenderArgs),
    /// Copy the whole library (catalog rows and every referenced blob,
    /// SHA-256 checked) into another, empty catalog and blob store.
    Migrate {
        /// Target catalog: sqlite://PATH or postgres://… (must be empty).
        #[arg(long)]
        to_database: String,
        /// Target blob store: a directory or s3://bucket?endpoint=…&region=….
        #[arg(long)]
        to_blob_store: String,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Create a user; prints it as one JSON object.
    Create {
        name: String,
        #[arg(long)]
        email: Option<String>,
    },
    /// List users, one JSON object per line.
    List,
    /// Print the secret that signs this user's webhooks.
    WebhookSecret { name: String },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a token; prints the secret alone (shown once).
    Create {
        user: String,
        /// image:read, image:write, image:delete or admin (repeatable; default: the three image scopes).
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List a user's tokens (never their secrets).
    List { user: String },
    /// Revoke a token by its id.
    Revoke { token_id: String },
}

#[derive(Subcommand, Debug)]
enum QuotaCommand {
    /// Set how many images a user may add per 24 hours (0 = unlimited).
    Set {
        user: String,
        #[arg(long)]
        images_per_day: i64,
    },
}

/// mimalloc: the serving hot path allocates and frees small objects on
/// every request, where it needs fewer instructions than glibc's malloc
/// (see "Serving speed" in the README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("error: internal failure{place}: {what}; please report it");
    }));
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // An operator sees the cause that an API client is never shown.
            match e.downcast_ref::<tintype_engine::core::CoreError>() {
                Some(tintype_engine::core::CoreError::Internal(detail)) => {
                    eprintln!("error: {detail}")
                }
                _ => eprintln!("error: {e:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Probe(a) => return media_cmd::run_probe(a),
        Command::Render(a) => return media_cmd::run_render(a),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "tintype", &mut script);
            use std::io::Write;
            return match std::io::stdout().write_all(&script) {
                // A reader that stopped early (`| head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            };
        }
        _ => {}
    }
    let settings = Settings::resolve(&cli.flags)?;
    // Admin commands print their result on stdout; only warnings go to stderr.
    let log = if matches!(cli.command, Command::Serve) || cli.flags.log.is_some() {
        settings.log.clone()
    } else {
        "warn".to_string()
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&log)
        .context("TINTYPE_LOG is not a valid filter")?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if settings.log_json {
        logs.json().flatten_event(true).try_init()
    } else {
        logs.try_init()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve => serve(settings).await,
            Command::Migrate {
                to_database,
                to_blob_store,
            } => migrate(settings, &to_database, &to_blob_store).await,
            other => admin(settings, other).await,
        }
    })
}

async fn open_engine(s: &Settings, workers: bool) -> anyhow::Result<Arc<Engine>> {
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("creating {}", s.data_dir.display()))?;
    let catalog = tintype_store::open_catalog(&s.database_url)
        .await
        .with_context(|| format!("opening the catalog {}", s.database_url))?;
    let blobs = tintype_store::open_blob_store(&s.blob_store)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut cfg = s.engine.clone();
    if !workers {
        cfg.workers = 0;
    }
    Engine::new(catalog, blobs, cfg).map_err(|e| anyhow::anyhow!("{e}"))
}

/// `serve` only, before it opens anything: removes the temporary files of
/// processes that are gone (in tmp/ and the blob directory's incoming/),
/// never those of a live process (a running server, an admin command).
async fn remove_stale_temp_files(s: &Settings) -> anyhow::Result<()> {
    let tmp = s.data_dir.join("tmp");
    let swept = tokio::task::spawn_blocking(move || {
        tintype_store::staging::remove_stale(&tmp, tintype_store::staging::FOREIGN_MAX_AGE)
    })
    .await?
    .context("sweeping the temporary directory")?;
    let incoming = tintype_store::remove_stale_staging(&s.blob_store)
        .await
        .map_err(anyhow::Error::msg)?;
    if swept.removed + incoming > 0 {
        tracing::info!(
            temp = swept.removed,
            incoming,
            "removed what interrupted processes left"
        );
    }
    Ok(())
}

/// Registers the dialects' background work and returns their routers.
fn dialects(engine: &Arc<Engine>, s: &Settings) -> Vec<axum::Router<tintype_http::AppState>> {
    tintype_diaspora::install(
        engine,
        tintype_diaspora::Settings {
            pending_ttl: s.pending_ttl,
            sweep_interval: (s.pending_ttl / 4).clamp(
                std::time::Duration::from_secs(10),
                std::time::Duration::from_secs(3600),
            ),
        },
    );
    let livingdocs = tintype_livingdocs::Settings::default();
    tintype_livingdocs::install(engine, &livingdocs);
    vec![
        tintype_popit::router(),
        tintype_diaspora::router(),
        tintype_livingdocs::router(livingdocs),
        tintype_fulcrum::router(),
        tintype_djinn::router(),
        tintype_console::router(),
    ]
}

async fn serve(s: Settings) -> anyhow::Result<()> {
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("creating {}", s.data_dir.display()))?;
    remove_stale_temp_files(&s).await?;
    let engine = open_engine(&s, true).await?;
    if let Some(secret) = engine.bootstrap_admin().await? {
        println!("Created the user 'admin'. Its token (shown once, keep it):");
        println!("{secret}");
    }
    let listener = tokio::net::TcpListener::bind(&s.listen)
        .await
        .with_context(|| format!("listening on {}", s.listen))?;
    let routers = dialects(&engine, &s);
    // Room for deletes to commit should the disk fill up.
    engine.ensure_space_reserve().await;
    let workers = engine.start_workers();
    engine.start_periodic(tintype_engine::TIDY_JOB, tintype_engine::TIDY_INTERVAL);
    let state = tintype_http::AppState::new(engine.clone(), &s.public_url);
    let app = tintype_http::app(state, routers);
    tracing::info!(
        listen = %s.listen,
        catalog = engine.catalog().backend_name(),
        blobs = engine.blobs().backend_name(),
        "tintype is serving"
    );
    // For a person at a terminal; JSON logs stay one object per line.
    if !s.log_json {
        eprintln!(
            "tintype listening on http://{} (public URL {})",
            s.listen, s.public_url
        );
    }
    // On SIGTERM or Ctrl-C: stop accepting and claiming, let requests and
    // jobs in flight finish for the grace period, then give the unfinished
    // jobs back to the queue for another node (or the next start).
    let grace = s.server.shutdown_grace;
    let deadline = Arc::new(std::sync::OnceLock::new());
    let signalled = {
        let (engine, deadline) = (engine.clone(), deadline.clone());
        async move {
            shutdown_signal().await;
            let _ = deadline.set(tokio::time::Instant::now() + grace);
            engine.drain_workers();
            tracing::info!(grace_secs = grace.as_secs(), "shutting down");
        }
    };
    tintype_http::serve_with(listener, app, s.server.clone(), signalled)
        .await
        .context("serving")?;
    let deadline = deadline
        .get()
        .copied()
        .unwrap_or_else(|| tokio::time::Instant::now() + grace);
    engine.stop_workers(workers, deadline).await;
    // Stopped cleanly: nothing of ours is in flight any more.
    let _ = std::fs::remove_dir_all(&engine.config().tmp_dir);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// `tintype migrate`: from the configured catalog and blob store into the
/// given ones; progress on stderr, the report as JSON on stdout.
async fn migrate(s: Settings, to_database: &str, to_blob_store: &str) -> anyhow::Result<()> {
    use tintype_store::{Progress, SqlCatalog};
    let from = SqlCatalog::connect(&s.database_url)
        .await
        .with_context(|| format!("opening the catalog {}", s.database_url))?;
    let from_blobs = tintype_store::open_blob_store(&s.blob_store)
        .await
        .map_err(anyhow::Error::msg)?;
    let to = SqlCatalog::connect(to_database)
        .await
        .with_context(|| format!("opening the target catalog {to_database}"))?;
    let to_blobs = tintype_store::open_blob_store(to_blob_store)
        .await
        .map_err(anyhow::Error::msg)?;
    to_blobs
        .ping()
        .await
        .with_context(|| format!("reaching the target blob store {to_blob_store}"))?;
    // A bar on a terminal; else the same lines as always.
    let bar = progress::shown().then(progress::MigrateBar::new);
    let r = tintype_store::migrate(&from, &*from_blobs, &to, &*to_blobs, |p| {
        if let Some(bar) = &bar {
            bar.update(&p);
            return;
        }
        match p {
            Progress::Blob { done, total, .. } if done % 100 == 0 || done == total => {
                eprintln!("blobs: {done}/{total} in the target and verified");
            }
            Progress::Rows { table, copied } => eprintln!("{table}: {copied} rows copied"),
            Progress::Blob { .. } => {}
        }
    })
    .await;
    if let Some(bar) = &bar {
        bar.finish();
    }
    let r = r?;
    println!(
        "{}",
        serde_json::json!({
            "users": r.users,
            "tokens": r.tokens,
            "images": r.images,
            "variants": r.variants,
            "records": r.records,
            "jobs": r.jobs,
            "blobs_copied": r.blobs_copied,
            "blobs_present": r.blobs_present,
            "blob_bytes_copied": r.blob_bytes_copied,
        })
    );
    Ok(())
}

fn user_json(u: &tintype_engine::core::User) -> serde_json::Value {
    serde_json::json!({
        "id": u.id,
        "name": u.name,
        "email": u.email,
        "created_at": u.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "images_per_day": u.images_per_day,
        "profile_image_id": u.profile_image_id,
    })
}

async fn admin(s: Settings, cmd: Command) -> anyhow::Result<()> {
    let engine = open_engine(&s, false).await?;
    let result = admin_command(&engine, cmd).await;
    // Our own temporary directory: nobody else writes there.
    let _ = std::fs::remove_dir_all(&engine.config().tmp_dir);
    result
}

async fn admin_command(engine: &Arc<Engine>, cmd: Command) -> anyhow::Result<()> {
    let e = cli_error;
    match cmd {
        Command::User(UserCommand::Create { name, email }) => {
            let u = engine
                .create_user(&name, email.as_deref())
                .await
                .map_err(e)?;
            println!("{}", user_json(&u));
        }
        Command::User(UserCommand::List) => {
            for u in engine.users().await.map_err(e)? {
                println!("{}", user_json(&u));
            }
        }
        Command::User(UserCommand::WebhookSecret { name }) => {
            let u = engine
                .user(&name)
                .await
                .map_err(|err| missing(err, || format!("no user named {name:?}")))?;
            println!("{}", u.webhook_secret);
        }
        Command::Token(TokenCommand::Create { user, scopes }) => {
            let mut parsed = Vec::new();
            for sc in &scopes {
                parsed.push(sc.parse::<Scope>().map_err(|m| anyhow::anyhow!(m))?);
            }
            let t = engine
                .create_token(&user, &parsed)
                .await
                .map_err(|err| missing(err, || format!("no user named {user:?}")))?;
            println!("{}", t.secret);
        }
        Command::Token(TokenCommand::List { user }) => {
            let tokens = engine
                .tokens(&user)
                .await
                .map_err(|err| missing(err, || format!("no user named {user:?}")))?;
            for t in tokens {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": t.id,
                        "scopes": t.scopes,
                        "created_at": t.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                        "revoked": t.revoked,
                    })
                );
            }
        }
        Command::Token(TokenCommand::Revoke { token_id }) => {
            engine
                .revoke_token(&token_id)
                .await
                .map_err(|err| missing(err, || format!("no token with id {token_id:?}")))?;
            println!("revoked {token_id}");
        }
        Command::Quota(QuotaCommand::Set {
            user,
            images_per_day,
        }) => {
            let u = engine
                .set_quota(&user, images_per_day)
                .await
                .map_err(|err| missing(err, || format!("no user named {user:?}")))?;
            println!("{}", user_json(&u));
        }
        Command::Gc { dry_run } => {
            let bar = progress::MaintenanceBar::new();
            let r = engine.gc_with_progress(dry_run, &|p| bar.update(p)).await;
            bar.finish();
            let r = r.map_err(e)?;
            println!("{}", serde_json::to_string(&r)?);
        }
        Command::Check { repair } => {
            let bar = progress::MaintenanceBar::new();
            let r = engine.check_with_progress(repair, &|p| bar.update(p)).await;
            bar.finish();
            let r = r.map_err(e)?;
            for p in &r.missing {
                let fix = if p.repaired { " (row removed)" } else { "" };
                eprintln!("missing blob: {p}{fix}");
            }
            for p in &r.corrupt {
                eprintln!("corrupt blob: {p}");
            }
            println!(
                "{}",
                serde_json::json!({
                    "images": r.images,
                    "variants": r.variants,
                    "blobs": r.blobs,
                    "orphans": r.orphans,
                    "orphan_bytes": r.orphan_bytes,
                    "missing": r.missing.len(),
                    "corrupt": r.corrupt.len(),
                    "repaired": r.repaired,
                })
            );
            if !r.clean() {
                anyhow::bail!(
                    "{} missing and {} corrupt blob(s){}",
                    r.missing.len() as u64 - r.repaired,
                    r.corrupt.len(),
                    if r.missing.len() as u64 > r.repaired {
                        "; `tintype check --repair` removes the rows of missing ones"
                    } else {
                        ""
                    }
                );
            }
        }
        Command::Namespace(cmd) => tintype_djinn::cli::run(engine, cmd).await?,
        Command::Serve
        | Command::Completions { .. }
        | Command::Probe(_)
        | Command::Render(_)
        | Command::Migrate { .. } => {}
    }
    Ok(())
}

/// An engine error kept as itself, so that `main` reports an internal
/// error with its cause.
fn cli_error(err: tintype_engine::core::CoreError) -> anyhow::Error {
    anyhow::Error::new(err)
}

/// `what` when the engine found nothing; any other failure as itself.
fn missing(err: tintype_engine::core::CoreError, what: impl FnOnce() -> String) -> anyhow::Error {
    match err {
        tintype_engine::core::CoreError::NotFound => anyhow::anyhow!(what()),
        other => cli_error(other),
    }
}
