//! tintype-testkit: a real tintype HTTP server for tests, on a loopback
//! port over a temporary data directory (SQLite file + blob directory), or
//! over the catalog and blob store named by `TINTYPE_TEST_DATABASE_URL` /
//! `TINTYPE_TEST_BLOB_STORE` when the scale-out tier sets them.

use std::net::SocketAddr;
use std::sync::Arc;
use tintype_engine::core::Scope;
use tintype_engine::{Engine, EngineConfig};
use tintype_http::AppState;

pub struct TestServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`, also the public URL used in responses.
    pub base: String,
    pub engine: Arc<Engine>,
    pub dir: tempfile::TempDir,
    /// The catalog URL and blob store this server uses (a second server
    /// started with [`TestServer::start_beside`] shares them).
    pub database_url: String,
    pub blob_store: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl TestServer {
    /// Starts a server with the given dialect routers and default settings
    /// (loopback fetches allowed, two job workers).
    pub async fn start(dialects: Vec<axum::Router<AppState>>) -> TestServer {
        Self::start_with(dialects, |_| {}).await
    }

    /// Like [`start`], letting the test adjust the engine configuration.
    pub async fn start_with(
        dialects: Vec<axum::Router<AppState>>,
        adjust: impl FnOnce(&mut EngineConfig),
    ) -> TestServer {
        Self::start_on(None, dialects, adjust).await
    }

    /// A second node: another server (its own engine, caches and workers)
    /// over the same catalog and blob store as `self`, as two `tintype
    /// serve` processes behind a load balancer.
    pub async fn start_beside(&self, dialects: Vec<axum::Router<AppState>>) -> TestServer {
        Self::start_on(
            Some((self.database_url.clone(), self.blob_store.clone())),
            dialects,
            |_| {},
        )
        .await
    }

    async fn start_on(
        shared: Option<(String, String)>,
        dialects: Vec<axum::Router<AppState>>,
        adjust: impl FnOnce(&mut EngineConfig),
    ) -> TestServer {
        if let Ok(filter) = std::env::var("TINTYPE_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (db, blobs_spec) = match shared {
            Some(shared) => shared,
            None => {
                let db = match std::env::var("TINTYPE_TEST_DATABASE_URL") {
                    Ok(url) => fresh_database(&url).await,
                    Err(_) => format!("sqlite://{}", dir.path().join("catalog.db").display()),
                };
                let blobs_spec = std::env::var("TINTYPE_TEST_BLOB_STORE")
                    .unwrap_or_else(|_| dir.path().join("blobs").display().to_string());
                (db, blobs_spec)
            }
        };
        let catalog = tintype_store::open_catalog(&db).await.expect("catalog");
        let blobs = tintype_store::open_blob_store(&blobs_spec)
            .await
            .expect("blob store");
        let mut config = EngineConfig::new(dir.path().join("tmp"));
        config.fetch.allow_private = true;
        config.poll_interval = std::time::Duration::from_millis(50);
        config.job_backoff = std::time::Duration::from_millis(200);
        adjust(&mut config);
        let engine = Engine::new(catalog, blobs, config).expect("engine");
        engine.start_workers();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let state = AppState::new(engine.clone(), &base);
        let app = tintype_http::app(state, dialects);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = tintype_http::serve(listener, app, async move {
                let _ = rx.await;
            })
            .await;
        });
        TestServer {
            addr,
            base,
            engine,
            dir,
            database_url: db,
            blob_store: blobs_spec,
            shutdown: Some(tx),
        }
    }

    /// Creates a user (a unique name is fine) and returns a token secret
    /// with the given scopes (the three image scopes when empty).
    pub async fn user_token(&self, name: &str, scopes: &[Scope]) -> String {
        if self.engine.user(name).await.is_err() {
            self.engine.create_user(name, None).await.expect("user");
        }
        self.engine
            .create_token(name, scopes)
            .await
            .expect("token")
            .secret
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Runs due jobs until none is left (for tests that start no workers).
    pub async fn drain_jobs(&self) {
        while self.engine.run_one("test-drain").await.unwrap_or(false) {}
    }
}

/// A new, empty PostgreSQL database on the server `url` names, so that
/// tests running at once never see each other's rows.
async fn fresh_database(url: &str) -> String {
    use sqlx::Connection;
    let name = format!("tt_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(url)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let _ = conn.close().await;
    let mut u = url::Url::parse(url).expect("TINTYPE_TEST_DATABASE_URL is a URL");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
