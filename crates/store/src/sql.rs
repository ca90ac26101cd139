//! The catalog over SQLite or PostgreSQL through sqlx's `Any` driver.
//!
//! # Parameters on PostgreSQL: one statement, one set of parameter types
//!
//! Every statement goes through [`Stmt`], never `sqlx::query(..).bind(..)`
//! directly. The reason is a trap in how sqlx runs a statement on
//! PostgreSQL:
//!
//! - sqlx prepares each SQL text once per connection and caches it by that
//!   text alone. The parameter types sent with the `Parse` message are
//!   those of the values bound the first time; every later execution on
//!   that connection reuses the statement and sends its values in binary
//!   for those types, whatever the Rust types bound then.
//! - A `NULL` travels through the `Any` driver as "NULL of kind K", and
//!   sqlx 0.8 turns a NULL `f64` (kind `DOUBLE`) into a NULL `f32`, i.e. a
//!   `float4` parameter (and `REAL` into `float8`: the two are swapped).
//!
//! So a photo without GPS stored first on a connection prepared the image
//! insert with `latitude`/`longitude` as `float4`; the next photo with GPS
//! on that connection sent 8 bytes of `float8` for a `float4` parameter
//! and PostgreSQL answered `incorrect binary data format in bind parameter
//! 13` (a 500). On a fresh database the pattern depended on which pooled
//! connection served which upload. An explicit cast in the SQL
//! (`$13::float8`) does not help: it converts *after* the server has read
//! the parameter with the type that `Parse` declared.
//!
//! The fix is general: on PostgreSQL, [`Stmt`] appends a comment naming the
//! type of every bound value and whether it is NULL (`/* params: tDd… */`).
//! The statement cache is keyed by the SQL text, so each shape of
//! parameters gets a prepared statement of its own, declared with exactly
//! the types it is executed with; a statement is never reused with other
//! parameter types, for any query and whatever sqlx's NULL mapping. A
//! statement has few nullable parameters, so few shapes exist (the cache
//! holds 100 statements per connection and re-prepares beyond). SQLite does
//! not type parameters and keeps the plain SQL.
//!
//! The storage conformance suite (`tests/conformance.rs`) runs every case
//! both on a fresh catalog and on one long-lived pool that has served all
//! the others, and binds every nullable column as NULL and as a value in
//! turn.

use crate::query::clip_key;
use async_trait::async_trait;
use serde_json::{Map, Value};
use sqlx::any::{Any, AnyArguments, AnyPoolOptions, AnyQueryResult, AnyRow};
use sqlx::{AnyPool, Arguments, Encode, Row, Type, TypeInfo};
use std::time::Duration;
use tintype_core::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// The catalog over SQLite or PostgreSQL.
pub struct SqlCatalog {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
}

/// A stored time in milliseconds; one outside chrono's range is a
/// corrupt row, never silently 1970.
fn time(ms: i64) -> Result<Timestamp, CatalogError> {
    try_from_millis(ms)
        .ok_or_else(|| CatalogError::Corrupt(format!("time {ms} ms is out of range")))
}

pub(crate) fn db(e: sqlx::Error) -> CatalogError {
    if is_disk_full(&e) {
        CatalogError::NoSpace(e.to_string())
    } else {
        CatalogError::database(e)
    }
}

/// A write refused for want of space: SQLite's SQLITE_FULL (13, "database
/// or disk is full"), PostgreSQL's disk_full (SQLSTATE 53100), or ENOSPC
/// from the driver's own I/O.
fn is_disk_full(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            matches!(d.code().as_deref(), Some("13") | Some("53100"))
                || d.message().contains("database or disk is full")
                || d.message().contains("No space left on device")
        }
        sqlx::Error::Io(io) => io.kind() == std::io::ErrorKind::StorageFull,
        _ => false,
    }
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => {
            d.is_unique_violation() || d.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// The error recorded for a job whose lease ran out on its last attempt.
pub const WORKER_STOPPED: &str = "the worker stopped while running this job";

/// An image's content columns, bound by [`Stmt::bind_content`].
pub(crate) const CONTENT_COLS: &str = "sha256, size, kind, format, content_type, width, height, orientation, exif, latitude, longitude";
pub(crate) const IMAGE_COLS: &str = "seq, id, owner_id, name, sha256, size, kind, format, content_type, width, height, orientation, exif, latitude, longitude, metadata, created_at, updated_at, processed_at";
const USER_COLS: &str =
    "id, name, email, created_at, images_per_day, profile_image_id, webhook_secret";
pub(crate) const RECORD_COLS: &str =
    "seq, scope, key, owner_id, image_id, data, created_at, updated_at, version";
const JOB_COLS: &str = "id, kind, payload, state, attempts, max_attempts, run_at, lease_until, locked_by, last_error, created_at";
pub(crate) const VARIANT_COLS: &str =
    "image_id, preset, sha256, content_type, width, height, size, created_at";

impl SqlCatalog {
    pub async fn connect(url: &str) -> Result<Self, CatalogError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(CatalogError::database(format!(
                "unsupported database URL (expected sqlite:// or postgres://): {url}"
            )));
        };
        let mut opts = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(30))
            // A connection still inside a transaction when it is handed out
            // again is closed instead: its COMMIT or ROLLBACK failed (seen on
            // a full disk), so a new `BEGIN IMMEDIATE` on it would be refused
            // ("non-zero transaction depth") and a plain BEGIN would nest.
            .before_acquire(|conn, _meta| {
                Box::pin(async move {
                    use sqlx::Connection;
                    Ok(!conn.is_in_transaction())
                })
            });
        if backend == Backend::Sqlite {
            opts = opts.after_connect(|conn, _meta| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            });
        }
        let url = if backend == Backend::Sqlite && !url.contains("mode=") {
            if url.contains('?') {
                format!("{url}&mode=rwc")
            } else {
                format!("{url}?mode=rwc")
            }
        } else {
            url.to_string()
        };
        let pool = opts.connect(&url).await.map_err(db)?;
        let cat = SqlCatalog { pool, backend };
        cat.migrate().await?;
        Ok(cat)
    }

    /// A statement over `sql` (numbered placeholders) for this backend.
    /// Appends the claim of the first job due in one way (see
    /// [`CLAIM_ORDER`]) of `kinds` (all when empty) by `worker`.
    pub(crate) fn push_claim<'q>(
        &self,
        s: Stmt<'q>,
        worker: &'q str,
        lease_until_ms: i64,
        now_ms: i64,
        due: &str,
        kinds: &[String],
    ) -> Stmt<'q> {
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let mut s = s
            .push(&format!(
                "UPDATE jobs SET state = 'running', locked_by = $1, lease_until = $2, attempts = attempts + 1, dedup_key = NULL, updated_at = $3 \
                 WHERE id = (SELECT id FROM jobs WHERE {due}"
            ))
            .bind(worker)
            .bind(lease_until_ms)
            .bind(now_ms);
        if !kinds.is_empty() {
            s = s
                .push(" AND kind IN (")
                .push_binds(kinds.iter().cloned())
                .push(")");
        }
        s.push(&format!(
            " ORDER BY run_at, id LIMIT 1{lock}) RETURNING {JOB_COLS}"
        ))
    }

    pub(crate) fn stmt<'q>(&self, sql: &str) -> Stmt<'q> {
        Stmt::new(self.backend, sql)
    }

    /// The insert of a new record, followed by `tail` (a conflict clause,
    /// `RETURNING`).
    fn new_record<'q>(&self, r: &'q NewRecord, tail: &str) -> Stmt<'q> {
        let t = to_millis(now());
        self.stmt(
            "INSERT INTO records (scope, key, owner_id, image_id, data, created_at, updated_at, skey, skey2, ref_id, sort_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10) ",
        )
        .bind(&r.scope)
        .bind(&r.key)
        .bind(r.owner_id)
        .bind(r.image_id.as_deref())
        .bind(r.data.to_string())
        .bind(t)
        .bind(clip_key(r.skey.as_deref()))
        .bind(clip_key(r.skey2.as_deref()))
        .bind(r.ref_id)
        .bind(r.sort_at)
        .push(tail)
    }

    /// Runs a job update (`set`: `UPDATE jobs SET …`) only while `worker`
    /// still holds the job's lease: whether it changed the job.
    async fn update_leased(
        &self,
        set: Stmt<'_>,
        id: i64,
        worker: &str,
    ) -> Result<bool, CatalogError> {
        let changed = set
            .push(" WHERE id = ")
            .push_bind(id)
            .push(" AND locked_by = ")
            .push_bind(worker.to_string())
            .push(" AND state = 'running'")
            .run(&self.pool)
            .await?;
        Ok(changed > 0)
    }

    /// Jobs with ids above `after_id`, in id order, at most `limit` of
    /// them (every state): for operators, tests and `tintype migrate`.
    pub async fn jobs_after(&self, after_id: i64, limit: i64) -> Result<Vec<Job>, CatalogError> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE id > $1 ORDER BY id LIMIT $2");
        self.stmt(&sql)
            .bind(after_id)
            .bind(limit)
            .all(&self.pool, row_job)
            .await
    }

    async fn migrate(&self) -> Result<(), CatalogError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| CatalogError::Migration(e.to_string()))?;
        crate::schema::migrate(self.backend, &mut conn).await
    }
}

/// A value bound to a statement: the few Rust types the catalog binds.
pub(crate) trait Param<'q>: Encode<'q, Any> + Type<Any> + Send + 'q {
    fn is_null(&self) -> bool {
        false
    }
}

impl<'q> Param<'q> for i64 {}
impl<'q> Param<'q> for f64 {}
impl<'q> Param<'q> for String {}
impl<'q> Param<'q> for &'q str {}
impl<'q> Param<'q> for &'q String {}
impl<'q, T: Param<'q>> Param<'q> for Option<T> {
    fn is_null(&self) -> bool {
        self.as_ref().is_none_or(|v| v.is_null())
    }
}

/// One letter per parameter type, upper case when the value is NULL.
fn type_letter<'q, T: Param<'q>>(v: &T) -> char {
    let c = match T::type_info().name() {
        "BOOLEAN" => 'b',
        "SMALLINT" => 'h',
        "INTEGER" => 'i',
        "BIGINT" => 'l',
        "REAL" => 'f',
        "DOUBLE" => 'd',
        "TEXT" => 't',
        "BLOB" => 'y',
        _ => 'x',
    };
    if v.is_null() {
        c.to_ascii_uppercase()
    } else {
        c
    }
}

/// A statement with its bound values (see the module docs for why every
/// query goes through it).
///
/// SQL is written with PostgreSQL's numbered placeholders (`$1`, `$2`, …),
/// which sqlx's SQLite driver binds by number too, so one text serves both
/// backends unchanged. A static statement names its placeholders in its
/// text and binds their values in order with [`Stmt::bind`]; a statement
/// assembled at run time appends text with [`Stmt::push`] and each value
/// with [`Stmt::push_bind`], which writes the next number. (sqlx's own
/// `QueryBuilder` cannot serve here: over the `Any` driver it writes `?`,
/// which PostgreSQL does not accept.)
/// The ways a job is due, in the order a claim looks: its lease ran out
/// (the worker stopped), or it is queued and its time has come.
pub(crate) const CLAIM_ORDER: [&str; 2] = [
    "state = 'running' AND lease_until < $3",
    "state = 'queued' AND run_at <= $3",
];

pub(crate) struct Stmt<'q> {
    sql: String,
    postgres: bool,
    shape: String,
    bound: usize,
    args: AnyArguments<'q>,
    error: Option<sqlx::error::BoxDynError>,
}

impl<'q> Stmt<'q> {
    /// A statement starting with `sql` (numbered placeholders).
    pub(crate) fn new(backend: Backend, sql: &str) -> Stmt<'q> {
        Stmt {
            sql: sql.to_string(),
            postgres: backend == Backend::Postgres,
            shape: String::new(),
            bound: 0,
            args: AnyArguments::default(),
            error: None,
        }
    }

    /// Binds the value of the next placeholder.
    pub(crate) fn bind<T: Param<'q>>(mut self, v: T) -> Self {
        if self.postgres {
            self.shape.push(type_letter(&v));
        }
        self.bound += 1;
        if let Err(e) = self.args.add(v) {
            self.error.get_or_insert(e);
        }
        self
    }

    /// Appends SQL text.
    pub(crate) fn push(mut self, sql: &str) -> Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends the next placeholder and binds its value.
    pub(crate) fn push_bind<T: Param<'q>>(mut self, v: T) -> Self {
        use std::fmt::Write;
        // Writing to a String cannot fail.
        let _ = write!(self.sql, "${}", self.bound + 1);
        self.bind(v)
    }

    /// Appends one placeholder per value, separated by commas.
    pub(crate) fn push_binds<T: Param<'q>>(mut self, vs: impl IntoIterator<Item = T>) -> Self {
        for (i, v) in vs.into_iter().enumerate() {
            if i > 0 {
                self.sql.push_str(", ");
            }
            self = self.push_bind(v);
        }
        self
    }

    /// The SQL text, keyed on PostgreSQL by the parameters' shape.
    fn text(&self) -> String {
        if self.postgres && !self.shape.is_empty() {
            format!("{} /* params: {} */", self.sql, self.shape)
        } else {
            self.sql.clone()
        }
    }

    fn parts(self) -> Result<(String, AnyArguments<'q>), sqlx::Error> {
        let text = self.text();
        match self.error {
            Some(e) => Err(sqlx::Error::Encode(e)),
            None => Ok((text, self.args)),
        }
    }

    pub(crate) async fn execute<'c, E>(self, e: E) -> Result<AnyQueryResult, sqlx::Error>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let (sql, args) = self.parts()?;
        sqlx::query_with(&sql, args).execute(e).await
    }

    pub(crate) async fn fetch_one<'c, E>(self, e: E) -> Result<AnyRow, sqlx::Error>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let (sql, args) = self.parts()?;
        sqlx::query_with(&sql, args).fetch_one(e).await
    }

    pub(crate) async fn fetch_optional<'c, E>(self, e: E) -> Result<Option<AnyRow>, sqlx::Error>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let (sql, args) = self.parts()?;
        sqlx::query_with(&sql, args).fetch_optional(e).await
    }

    pub(crate) async fn fetch_all<'c, E>(self, e: E) -> Result<Vec<AnyRow>, sqlx::Error>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let (sql, args) = self.parts()?;
        sqlx::query_with(&sql, args).fetch_all(e).await
    }

    /// Runs the statement; the number of rows it changed.
    pub(crate) async fn run<'c, E>(self, e: E) -> Result<u64, CatalogError>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        Ok(self.execute(e).await.map_err(db)?.rows_affected())
    }

    /// Binds an image's content columns, in the order of
    /// [`CONTENT_COLS`].
    pub(crate) fn bind_content(self, c: &'q Content) -> Self {
        self.bind(&c.sha256)
            .bind(c.size)
            .bind(c.kind.as_str())
            .bind(&c.format)
            .bind(&c.content_type)
            .bind(c.width)
            .bind(c.height)
            .bind(c.orientation)
            .bind(c.exif.as_ref().map(map_text))
            .bind(c.latitude)
            .bind(c.longitude)
    }

    /// The row the statement selects, if any, read by `read`.
    pub(crate) async fn optional<'c, E, T>(
        self,
        e: E,
        read: fn(&AnyRow) -> Result<T, CatalogError>,
    ) -> Result<Option<T>, CatalogError>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let row = self.fetch_optional(e).await.map_err(db)?;
        row.as_ref().map(read).transpose()
    }

    /// Every row the statement selects, read by `read`.
    pub(crate) async fn all<'c, E, T>(
        self,
        e: E,
        read: fn(&AnyRow) -> Result<T, CatalogError>,
    ) -> Result<Vec<T>, CatalogError>
    where
        E: sqlx::Executor<'c, Database = Any>,
    {
        let rows = self.fetch_all(e).await.map_err(db)?;
        rows.iter().map(read).collect()
    }
}

pub(crate) fn get<'r, T>(row: &'r AnyRow, col: &str) -> Result<T, CatalogError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get::<T, _>(col)
        .map_err(|e| CatalogError::Corrupt(format!("{col}: {e}")))
}

fn json_map(s: Option<String>, col: &str) -> Result<Option<Map<String, Value>>, CatalogError> {
    match s {
        None => Ok(None),
        Some(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => Ok(Some(m)),
            Ok(_) | Err(_) => Err(CatalogError::Corrupt(format!("{col} is not a JSON object"))),
        },
    }
}

fn row_user(r: &AnyRow) -> Result<User, CatalogError> {
    Ok(User {
        id: get(r, "id")?,
        name: get(r, "name")?,
        email: get(r, "email")?,
        created_at: time(get(r, "created_at")?)?,
        images_per_day: get(r, "images_per_day")?,
        profile_image_id: get(r, "profile_image_id")?,
        webhook_secret: get(r, "webhook_secret")?,
    })
}

fn row_token(r: &AnyRow) -> Result<Token, CatalogError> {
    let scopes: String = get(r, "scopes")?;
    let scopes = scopes
        .split_whitespace()
        .filter_map(|s| s.parse::<Scope>().ok())
        .collect();
    Ok(Token {
        id: get(r, "id")?,
        user_id: get(r, "user_id")?,
        scopes,
        created_at: time(get(r, "created_at")?)?,
        revoked: get::<i64>(r, "revoked")? != 0,
    })
}

pub(crate) fn row_image(r: &AnyRow) -> Result<Image, CatalogError> {
    let kind: String = get(r, "kind")?;
    Ok(Image {
        seq: get(r, "seq")?,
        id: get(r, "id")?,
        owner_id: get(r, "owner_id")?,
        name: get(r, "name")?,
        content: Content {
            sha256: get(r, "sha256")?,
            size: get(r, "size")?,
            kind: ImageKind::parse(&kind)
                .ok_or_else(|| CatalogError::Corrupt(format!("image kind {kind}")))?,
            format: get(r, "format")?,
            content_type: get(r, "content_type")?,
            width: get(r, "width")?,
            height: get(r, "height")?,
            orientation: get(r, "orientation")?,
            exif: json_map(get(r, "exif")?, "exif")?,
            latitude: get(r, "latitude")?,
            longitude: get(r, "longitude")?,
        },
        metadata: json_map(Some(get(r, "metadata")?), "metadata")?.unwrap_or_default(),
        created_at: time(get(r, "created_at")?)?,
        updated_at: time(get(r, "updated_at")?)?,
        processed_at: get::<Option<i64>>(r, "processed_at")?
            .map(time)
            .transpose()?,
    })
}

pub(crate) fn row_variant(r: &AnyRow) -> Result<Variant, CatalogError> {
    Ok(Variant {
        image_id: get(r, "image_id")?,
        preset: get(r, "preset")?,
        sha256: get(r, "sha256")?,
        content_type: get(r, "content_type")?,
        width: get(r, "width")?,
        height: get(r, "height")?,
        size: get(r, "size")?,
        created_at: time(get(r, "created_at")?)?,
    })
}

pub(crate) fn row_record(r: &AnyRow) -> Result<Record, CatalogError> {
    let data: String = get(r, "data")?;
    Ok(Record {
        seq: get(r, "seq")?,
        scope: get(r, "scope")?,
        key: get(r, "key")?,
        owner_id: get(r, "owner_id")?,
        image_id: get(r, "image_id")?,
        data: serde_json::from_str(&data)
            .map_err(|e| CatalogError::Corrupt(format!("record data: {e}")))?,
        created_at: time(get(r, "created_at")?)?,
        updated_at: time(get(r, "updated_at")?)?,
        version: get(r, "version")?,
    })
}

fn row_job(r: &AnyRow) -> Result<Job, CatalogError> {
    let payload: String = get(r, "payload")?;
    let state: String = get(r, "state")?;
    Ok(Job {
        id: get(r, "id")?,
        kind: get(r, "kind")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| CatalogError::Corrupt(format!("job payload: {e}")))?,
        state: JobState::parse(&state)
            .ok_or_else(|| CatalogError::Corrupt(format!("job state {state}")))?,
        attempts: get(r, "attempts")?,
        max_attempts: get(r, "max_attempts")?,
        run_at: time(get(r, "run_at")?)?,
        lease_until: get::<Option<i64>>(r, "lease_until")?
            .map(time)
            .transpose()?,
        locked_by: get(r, "locked_by")?,
        last_error: get(r, "last_error")?,
        created_at: time(get(r, "created_at")?)?,
    })
}

fn map_text(m: &Map<String, Value>) -> String {
    Value::Object(m.clone()).to_string()
}

impl SqlCatalog {
    /// Inserts an image on a connection (inside a caller's transaction).
    pub(crate) async fn insert_image_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        i: &NewImage,
    ) -> Result<Image, CatalogError> {
        let sql = format!(
            "INSERT INTO images (id, owner_id, name, {CONTENT_COLS}, metadata, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING {IMAGE_COLS}"
        );
        let r = self
            .stmt(&sql)
            .bind(&i.id)
            .bind(i.owner_id)
            .bind(i.name.as_deref())
            .bind_content(&i.content)
            .bind(map_text(&i.metadata))
            .bind(to_millis(i.created_at))
            .bind(to_millis(i.created_at))
            .fetch_one(&mut *conn)
            .await
            .map_err(db)?;
        row_image(&r)
    }
}

#[async_trait]
impl Catalog for SqlCatalog {
    fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    async fn ping(&self) -> Result<(), CatalogError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn create_user(
        &self,
        name: &str,
        email: Option<&str>,
        webhook_secret: &str,
    ) -> Result<Result<User, AlreadyExists>, CatalogError> {
        let sql = format!(
            "INSERT INTO users (name, email, created_at, images_per_day, webhook_secret) VALUES ($1, $2, $3, 0, $4) RETURNING {USER_COLS}"
        );
        match self
            .stmt(&sql)
            .bind(name)
            .bind(email)
            .bind(to_millis(now()))
            .bind(webhook_secret)
            .fetch_one(&self.pool)
            .await
        {
            Ok(r) => Ok(Ok(row_user(&r)?)),
            Err(e) if is_unique_violation(&e) => Ok(Err(AlreadyExists)),
            Err(e) => Err(db(e)),
        }
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, CatalogError> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE id = $1");
        self.stmt(&sql)
            .bind(id)
            .optional(&self.pool, row_user)
            .await
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>, CatalogError> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE name = $1");
        self.stmt(&sql)
            .bind(name)
            .optional(&self.pool, row_user)
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>, CatalogError> {
        let sql = format!("SELECT {USER_COLS} FROM users ORDER BY id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await.map_err(db)?;
        rows.iter().map(row_user).collect()
    }

    async fn count_users(&self) -> Result<i64, CatalogError> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        get(&r, "n")
    }

    async fn set_quota(&self, id: UserId, images_per_day: i64) -> Result<bool, CatalogError> {
        Ok(self
            .stmt("UPDATE users SET images_per_day = $1 WHERE id = $2")
            .bind(images_per_day)
            .bind(id)
            .run(&self.pool)
            .await?
            > 0)
    }

    async fn set_profile_image(
        &self,
        id: UserId,
        image_id: Option<&str>,
    ) -> Result<bool, CatalogError> {
        Ok(self
            .stmt("UPDATE users SET profile_image_id = $1 WHERE id = $2")
            .bind(image_id)
            .bind(id)
            .run(&self.pool)
            .await?
            > 0)
    }

    async fn create_token(&self, token: &Token, secret_hash: &str) -> Result<(), CatalogError> {
        let scopes: Vec<&str> = token.scopes.iter().map(|s| s.as_str()).collect();
        self.stmt(
            "INSERT INTO tokens (id, user_id, secret_hash, scopes, created_at, revoked) VALUES ($1, $2, $3, $4, $5, 0)",
        )
        .bind(&token.id)
        .bind(token.user_id)
        .bind(secret_hash)
        .bind(scopes.join(" "))
        .bind(to_millis(token.created_at))
        .run(&self.pool).await?;
        Ok(())
    }

    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<Token>, CatalogError> {
        self.stmt(
            "SELECT id, user_id, scopes, created_at, revoked FROM tokens WHERE secret_hash = $1",
        )
        .bind(secret_hash)
        .optional(&self.pool, row_token)
        .await
    }

    async fn list_tokens(&self, user: UserId) -> Result<Vec<Token>, CatalogError> {
        self.stmt(
            "SELECT id, user_id, scopes, created_at, revoked FROM tokens WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user)
        .all(&self.pool, row_token)
        .await
    }

    async fn revoke_token(&self, token_id: &str) -> Result<bool, CatalogError> {
        Ok(self
            .stmt("UPDATE tokens SET revoked = 1 WHERE id = $1")
            .bind(token_id)
            .run(&self.pool)
            .await?
            > 0)
    }

    async fn insert_image(&self, i: &NewImage) -> Result<Image, CatalogError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        self.insert_image_in(&mut conn, i).await
    }

    async fn insert_image_within_quota(
        &self,
        image: &NewImage,
        since: Timestamp,
    ) -> Result<Result<Image, QuotaUsed>, CatalogError> {
        self.insert_image_within_quota_impl(image, since).await
    }

    async fn variants_of(&self, image_ids: &[String]) -> Result<Vec<Variant>, CatalogError> {
        self.variants_of_impl(image_ids).await
    }

    async fn records_with_keys(
        &self,
        scope: &str,
        keys: &[String],
    ) -> Result<Vec<Record>, CatalogError> {
        self.records_with_keys_impl(scope, keys).await
    }

    async fn update_record_if(
        &self,
        r: &NewRecord,
        version: i64,
    ) -> Result<Option<Record>, CatalogError> {
        self.update_record_if_impl(r, version).await
    }

    async fn delete_record_if(
        &self,
        scope: &str,
        key: &str,
        version: i64,
    ) -> Result<bool, CatalogError> {
        Ok(self
            .stmt("DELETE FROM records WHERE scope = $1 AND key = $2 AND version = $3")
            .bind(scope)
            .bind(key)
            .bind(version)
            .run(&self.pool)
            .await?
            > 0)
    }

    async fn query_records(&self, q: &RecordQuery) -> Result<Vec<RecordRow>, CatalogError> {
        self.query_records_impl(q).await
    }

    async fn count_matching(&self, f: &RecordFilter) -> Result<i64, CatalogError> {
        self.count_matching_impl(f).await
    }

    async fn image_by_id(&self, id: &str) -> Result<Option<Image>, CatalogError> {
        let sql = format!("SELECT {IMAGE_COLS} FROM images WHERE id = $1");
        self.stmt(&sql)
            .bind(id)
            .optional(&self.pool, row_image)
            .await
    }

    async fn image_by_seq(&self, seq: i64) -> Result<Option<Image>, CatalogError> {
        let sql = format!("SELECT {IMAGE_COLS} FROM images WHERE seq = $1");
        self.stmt(&sql)
            .bind(seq)
            .optional(&self.pool, row_image)
            .await
    }

    async fn list_images(
        &self,
        owner: UserId,
        after: Option<ImageCursor>,
        limit: i64,
    ) -> Result<Vec<Image>, CatalogError> {
        let rows = self
            .push_image_list(
                self.stmt(""),
                owner,
                after.map(|c| (c.created_at_ms, c.seq)),
                limit,
            )
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(row_image).collect()
    }

    async fn update_image_fields(
        &self,
        id: &str,
        name: Option<Option<&str>>,
        metadata: Option<&Map<String, Value>>,
    ) -> Result<Option<Image>, CatalogError> {
        if let Some(n) = name {
            self.stmt("UPDATE images SET name = $1, updated_at = $2 WHERE id = $3")
                .bind(n)
                .bind(to_millis(now()))
                .bind(id)
                .run(&self.pool)
                .await?;
        }
        if let Some(m) = metadata {
            self.stmt("UPDATE images SET metadata = $1, updated_at = $2 WHERE id = $3")
                .bind(map_text(m))
                .bind(to_millis(now()))
                .bind(id)
                .run(&self.pool)
                .await?;
        }
        self.image_by_id(id).await
    }

    async fn replace_image_content(
        &self,
        id: &str,
        c: &Content,
    ) -> Result<Option<Image>, CatalogError> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        let set = CONTENT_COLS
            .split(", ")
            .enumerate()
            .map(|(n, col)| format!("{col} = ${}", n + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let r = self
            .stmt(&format!("UPDATE images SET {set}"))
            .bind_content(c)
            .push(", processed_at = NULL, updated_at = ")
            .push_bind(to_millis(now()))
            .push(" WHERE id = ")
            .push_bind(id)
            .run(&mut *tx)
            .await?;
        if r == 0 {
            tx.rollback().await.map_err(db)?;
            return Ok(None);
        }
        self.stmt("DELETE FROM variants WHERE image_id = $1")
            .bind(id)
            .run(&mut *tx)
            .await?;
        tx.commit().await.map_err(db)?;
        self.image_by_id(id).await
    }

    async fn delete_image(&self, id: &str) -> Result<Option<Vec<String>>, CatalogError> {
        // The image's row is locked first (SQLite: the write lock; PostgreSQL:
        // FOR UPDATE), so a variant being recorded meanwhile either commits
        // before (and is returned here) or fails its foreign key after: the
        // blobs returned are all those the delete stops referencing.
        let mut tx = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(db)?;
        let lock = match self.backend {
            Backend::Sqlite => "SELECT sha256 FROM images WHERE id = $1",
            Backend::Postgres => "SELECT sha256 FROM images WHERE id = $1 FOR UPDATE",
        };
        let Some(row) = self
            .stmt(lock)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?
        else {
            return Ok(None);
        };
        let mut blobs = vec![get::<String>(&row, "sha256")?];
        for v in self
            .stmt("DELETE FROM variants WHERE image_id = $1 RETURNING sha256")
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(db)?
        {
            blobs.push(get(&v, "sha256")?);
        }
        for sql in [
            "DELETE FROM records WHERE image_id = $1",
            "UPDATE users SET profile_image_id = NULL WHERE profile_image_id = $1",
            "DELETE FROM images WHERE id = $1",
        ] {
            self.stmt(sql).bind(id).run(&mut *tx).await?;
        }
        tx.commit().await.map_err(db)?;
        blobs.sort();
        blobs.dedup();
        Ok(Some(blobs))
    }

    async fn count_images_since(
        &self,
        owner: UserId,
        since: Timestamp,
    ) -> Result<i64, CatalogError> {
        let r = self
            .stmt("SELECT COUNT(*) AS n FROM images WHERE owner_id = $1 AND created_at >= $2")
            .bind(owner)
            .bind(to_millis(since))
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        get(&r, "n")
    }

    async fn set_processed(&self, id: &str, at: Option<Timestamp>) -> Result<(), CatalogError> {
        self.stmt("UPDATE images SET processed_at = $1 WHERE id = $2")
            .bind(at.map(to_millis))
            .bind(id)
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn put_variant(&self, v: &Variant) -> Result<(), CatalogError> {
        let sql = "INSERT INTO variants (image_id, preset, sha256, content_type, width, height, size, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                   ON CONFLICT (image_id, preset) DO UPDATE SET sha256 = excluded.sha256, content_type = excluded.content_type, width = excluded.width, height = excluded.height, size = excluded.size, created_at = excluded.created_at";
        self.stmt(sql)
            .bind(&v.image_id)
            .bind(&v.preset)
            .bind(&v.sha256)
            .bind(&v.content_type)
            .bind(v.width)
            .bind(v.height)
            .bind(v.size)
            .bind(to_millis(v.created_at))
            .run(&self.pool)
            .await?;
        Ok(())
    }

    async fn variant(&self, image_id: &str, preset: &str) -> Result<Option<Variant>, CatalogError> {
        let sql =
            format!("SELECT {VARIANT_COLS} FROM variants WHERE image_id = $1 AND preset = $2");
        self.stmt(&sql)
            .bind(image_id)
            .bind(preset)
            .optional(&self.pool, row_variant)
            .await
    }

    async fn variants(&self, image_id: &str) -> Result<Vec<Variant>, CatalogError> {
        let sql =
            format!("SELECT {VARIANT_COLS} FROM variants WHERE image_id = $1 ORDER BY preset");
        self.stmt(&sql)
            .bind(image_id)
            .all(&self.pool, row_variant)
            .await
    }

    async fn blob_referenced(&self, sha256: &str) -> Result<bool, CatalogError> {
        let r = self.stmt(
            "SELECT (SELECT COUNT(*) FROM images WHERE sha256 = $1) + (SELECT COUNT(*) FROM variants WHERE sha256 = $2) AS n",
        )
        .bind(sha256)
        .bind(sha256)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(get::<i64>(&r, "n")? > 0)
    }

    async fn insert_record(
        &self,
        r: &NewRecord,
    ) -> Result<Result<Record, AlreadyExists>, CatalogError> {
        let row = self
            .new_record(r, &format!("RETURNING {RECORD_COLS}"))
            .fetch_one(&self.pool)
            .await;
        match row {
            Ok(row) => Ok(Ok(row_record(&row)?)),
            Err(e) if is_unique_violation(&e) => Ok(Err(AlreadyExists)),
            Err(e) => Err(db(e)),
        }
    }

    async fn upsert_record(&self, r: &NewRecord) -> Result<Record, CatalogError> {
        let conflict = format!(
            "ON CONFLICT (scope, key) DO UPDATE SET owner_id = excluded.owner_id, image_id = excluded.image_id, data = excluded.data, updated_at = excluded.updated_at, \
             skey = COALESCE(excluded.skey, records.skey), skey2 = COALESCE(excluded.skey2, records.skey2), ref_id = COALESCE(excluded.ref_id, records.ref_id), \
             sort_at = COALESCE(excluded.sort_at, records.sort_at), version = records.version + 1 \
             RETURNING {RECORD_COLS}"
        );
        let row = self
            .new_record(r, &conflict)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        row_record(&row)
    }

    async fn record(&self, scope: &str, key: &str) -> Result<Option<Record>, CatalogError> {
        let sql = format!("SELECT {RECORD_COLS} FROM records WHERE scope = $1 AND key = $2");
        self.stmt(&sql)
            .bind(scope)
            .bind(key)
            .optional(&self.pool, row_record)
            .await
    }

    async fn record_by_seq(&self, scope: &str, seq: i64) -> Result<Option<Record>, CatalogError> {
        let sql = format!("SELECT {RECORD_COLS} FROM records WHERE scope = $1 AND seq = $2");
        self.stmt(&sql)
            .bind(scope)
            .bind(seq)
            .optional(&self.pool, row_record)
            .await
    }

    async fn records_for_image(&self, image_id: &str) -> Result<Vec<Record>, CatalogError> {
        let sql = format!("SELECT {RECORD_COLS} FROM records WHERE image_id = $1 ORDER BY seq");
        self.stmt(&sql)
            .bind(image_id)
            .all(&self.pool, row_record)
            .await
    }

    async fn list_records(
        &self,
        scope: &str,
        owner: Option<UserId>,
        newest_first: bool,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<Record>, CatalogError> {
        let q = RecordQuery {
            filter: RecordFilter {
                scope: scope.to_string(),
                owner,
                ..RecordFilter::default()
            },
            order: if newest_first {
                RecordOrder::SeqDesc
            } else {
                RecordOrder::SeqAsc
            },
            after: None,
            offset,
            limit,
        };
        let rows = self
            .push_record_page(self.stmt(""), &q)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(row_record).collect()
    }

    async fn count_records(&self, scope: &str, owner: Option<UserId>) -> Result<i64, CatalogError> {
        let r = match owner {
            Some(o) => {
                self.stmt("SELECT COUNT(*) AS n FROM records WHERE scope = $1 AND owner_id = $2")
                    .bind(scope)
                    .bind(o)
                    .fetch_one(&self.pool)
                    .await
            }
            None => {
                self.stmt("SELECT COUNT(*) AS n FROM records WHERE scope = $1")
                    .bind(scope)
                    .fetch_one(&self.pool)
                    .await
            }
        }
        .map_err(db)?;
        get(&r, "n")
    }

    async fn delete_record(&self, scope: &str, key: &str) -> Result<bool, CatalogError> {
        Ok(self
            .stmt("DELETE FROM records WHERE scope = $1 AND key = $2")
            .bind(scope)
            .bind(key)
            .run(&self.pool)
            .await?
            > 0)
    }

    async fn enqueue(&self, job: &NewJob) -> Result<i64, CatalogError> {
        // With a dedup key, a queued job with the same key absorbs this one.
        // The existing job may be claimed between our insert and our look-up:
        // then try again.
        for _ in 0..5 {
            let t = to_millis(now());
            let res = self.stmt(
                "INSERT INTO jobs (kind, payload, state, attempts, max_attempts, run_at, dedup_key, created_at, updated_at) VALUES ($1, $2, 'queued', 0, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&job.kind)
            .bind(job.payload.to_string())
            .bind(job.max_attempts)
            .bind(to_millis(job.run_at))
            .bind(job.dedup_key.as_deref())
            .bind(t)
            .bind(t)
            .fetch_one(&self.pool)
            .await;
            match res {
                Ok(r) => return get(&r, "id"),
                Err(e) if is_unique_violation(&e) => {
                    let r = self
                        .stmt("SELECT id FROM jobs WHERE dedup_key = $1 AND state = 'queued'")
                        .bind(job.dedup_key.as_deref())
                        .fetch_optional(&self.pool)
                        .await
                        .map_err(db)?;
                    if let Some(r) = r {
                        return get(&r, "id");
                    }
                }
                Err(e) => return Err(db(e)),
            }
        }
        Err(CatalogError::database(
            "could not enqueue the job: its dedup key stayed contended",
        ))
    }

    async fn claim_job(
        &self,
        worker: &str,
        kinds: &[String],
        lease_until: Timestamp,
    ) -> Result<Option<Job>, CatalogError> {
        let t = to_millis(now());
        // A lease that ran out means the worker stopped (crashed, killed, or
        // its process died in the job). That attempt counts: a job out of
        // attempts ends failed here and is never claimed again, so poison
        // work cannot crash-loop the workers.
        self.stmt(
            "UPDATE jobs SET state = 'failed', lease_until = NULL, locked_by = NULL, dedup_key = NULL, last_error = $1, updated_at = $2 \
             WHERE state = 'running' AND lease_until < $3 AND attempts >= max_attempts",
        )
        .bind(WORKER_STOPPED)
        .bind(t)
        .bind(t)
        .run(&self.pool).await?;
        // Two walks of the (state, run_at) index, each stopping at its
        // first row: a job whose lease ran out (few: as many as workers
        // that stopped), then the earliest due one. One statement with an
        // OR of both read every queued job and sorted them, so a claim
        // cost as much as the queue was long (0.3 s, holding SQLite's write
        // lock, with a million queued).
        for due in CLAIM_ORDER {
            let r = self
                .push_claim(self.stmt(""), worker, to_millis(lease_until), t, due, kinds)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
            if let Some(row) = r {
                return row_job(&row).map(Some);
            }
        }
        Ok(None)
    }

    async fn extend_lease(
        &self,
        id: i64,
        worker: &str,
        lease_until: Timestamp,
    ) -> Result<bool, CatalogError> {
        let set = self
            .stmt("UPDATE jobs SET lease_until = $1")
            .bind(to_millis(lease_until));
        self.update_leased(set, id, worker).await
    }

    async fn complete_job(&self, id: i64, worker: &str) -> Result<bool, CatalogError> {
        let set = self
            .stmt("UPDATE jobs SET state = 'done', lease_until = NULL, dedup_key = NULL, updated_at = $1")
            .bind(to_millis(now()));
        self.update_leased(set, id, worker).await
    }

    async fn release_job(&self, id: i64, worker: &str) -> Result<bool, CatalogError> {
        let t = to_millis(now());
        // A claim cleared the job's dedup key, so it cannot collide with a
        // twin queued since; should one hold a key anyway, the twin does
        // the work and this one is closed.
        let requeued = self
            .stmt(
                "UPDATE jobs SET state = 'queued', run_at = $1, lease_until = NULL, locked_by = NULL, attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, updated_at = $2 WHERE id = $3 AND locked_by = $4 AND state = 'running'",
            )
            .bind(t)
            .bind(t)
            .bind(id)
            .bind(worker)
            .execute(&self.pool)
            .await;
        match requeued {
            Ok(r) => Ok(r.rows_affected() > 0),
            Err(e) if is_unique_violation(&e) => self.complete_job(id, worker).await,
            Err(e) => Err(db(e)),
        }
    }

    async fn fail_job(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<bool, CatalogError> {
        let set = match retry_at {
            Some(at) => self
                .stmt("UPDATE jobs SET state = 'queued', run_at = $1, locked_by = NULL, ")
                .bind(to_millis(at)),
            None => self.stmt("UPDATE jobs SET state = 'failed', dedup_key = NULL, "),
        };
        let set = set
            .push("lease_until = NULL, last_error = ")
            .push_bind(error)
            .push(", updated_at = ")
            .push_bind(to_millis(now()));
        self.update_leased(set, id, worker).await
    }

    async fn job(&self, id: i64) -> Result<Option<Job>, CatalogError> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE id = $1");
        self.stmt(&sql).bind(id).optional(&self.pool, row_job).await
    }

    // blob pins and collection: see pins.rs
    async fn pin_blob(
        &self,
        sha256: &str,
        pin_id: &str,
        expires_at: Timestamp,
    ) -> Result<(), CatalogError> {
        self.pin_blob_impl(sha256, pin_id, expires_at).await
    }

    async fn unpin_blob(&self, sha256: &str, pin_id: &str) -> Result<(), CatalogError> {
        self.unpin_blob_impl(sha256, pin_id).await
    }

    async fn expire_blob_pins(&self, now: Timestamp) -> Result<u64, CatalogError> {
        self.expire_blob_pins_impl(now).await
    }

    async fn collect_blob(
        &self,
        sha256: &str,
        now: Timestamp,
        delete: BlobDelete<'_>,
    ) -> Result<Collected, CatalogError> {
        self.collect_blob_impl(sha256, now, delete).await
    }

    async fn images_after(&self, after_seq: i64, limit: i64) -> Result<Vec<Image>, CatalogError> {
        self.images_after_impl(after_seq, limit).await
    }

    async fn delete_variant(&self, image_id: &str, preset: &str) -> Result<bool, CatalogError> {
        self.delete_variant_impl(image_id, preset).await
    }

    async fn job_counts(&self) -> Result<JobCounts, CatalogError> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let mut c = JobCounts::default();
        for r in rows {
            let s: String = get(&r, "state")?;
            let n: i64 = get(&r, "n")?;
            match JobState::parse(&s) {
                Some(JobState::Queued) => c.queued = n,
                Some(JobState::Running) => c.running = n,
                Some(JobState::Done) => c.done = n,
                Some(JobState::Failed) => c.failed = n,
                None => {}
            }
        }
        Ok(c)
    }

    async fn jobs_by_state(
        &self,
        state: Option<JobState>,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Job>, CatalogError> {
        let before = before_id.unwrap_or(i64::MAX);
        let limit = limit.clamp(1, 1000);
        match state {
            Some(st) => {
                let sql = format!(
                    "SELECT {JOB_COLS} FROM jobs WHERE state = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
                );
                self.stmt(&sql)
                    .bind(st.as_str())
                    .bind(before)
                    .bind(limit)
                    .all(&self.pool, row_job)
                    .await
            }
            None => {
                let sql =
                    format!("SELECT {JOB_COLS} FROM jobs WHERE id < $1 ORDER BY id DESC LIMIT $2");
                self.stmt(&sql)
                    .bind(before)
                    .bind(limit)
                    .all(&self.pool, row_job)
                    .await
            }
        }
    }

    async fn retry_job(&self, id: i64) -> Result<bool, CatalogError> {
        let t = to_millis(now());
        let r = self
            .stmt(
                "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $1, lease_until = NULL, locked_by = NULL, updated_at = $2 WHERE id = $3 AND state = 'failed'",
            )
            .bind(t)
            .bind(t)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(r.rows_affected() > 0)
    }

    async fn tidy_search_index(&self) -> Result<(), CatalogError> {
        match self.backend {
            Backend::Sqlite => {
                sqlx::query(
                    "INSERT INTO records_skey_search(records_skey_search) VALUES ('optimize')",
                )
                .execute(&self.pool)
                .await
                .map_err(db)?;
                Ok(())
            }
            Backend::Postgres => Ok(()),
        }
    }

    async fn stored_bytes(&self) -> Result<i64, CatalogError> {
        let r = sqlx::query(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) AS n FROM \
             (SELECT size FROM images UNION ALL SELECT size FROM variants) AS stored",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        get(&r, "n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_times_out_of_range_are_corrupt_rows() {
        assert_eq!(
            time(1_478_403_783_382).ok(),
            try_from_millis(1_478_403_783_382)
        );
        assert!(matches!(time(i64::MAX), Err(CatalogError::Corrupt(_))));
        assert!(matches!(time(i64::MIN), Err(CatalogError::Corrupt(_))));
    }
}
