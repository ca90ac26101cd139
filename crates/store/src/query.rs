//! Queryable records, batched look-ups and the quota-checked insert.
//!
//! A dialect asks for exactly the page it shows: [`RecordQuery`] becomes
//! one statement over the records' typed keys (migration 0003) whose inner
//! part selects the page's `seq`s from an index (an offset walks index
//! entries, not rows), and one more statement fetches the images of the
//! page by id. Nothing reads the whole set of a user's records.

use crate::sql::{db, get, row_image, row_record, row_variant, Backend, SqlCatalog, Stmt};
use crate::sql::{IMAGE_COLS, RECORD_COLS, VARIANT_COLS};
use std::collections::HashMap;
use tintype_core::*;

/// A value bound to a built statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    I(i64),
    S(String),
}

pub(crate) fn bind_args<'q>(mut s: Stmt<'q>, args: Vec<Arg>) -> Stmt<'q> {
    for a in args {
        s = match a {
            Arg::I(v) => s.bind(v),
            Arg::S(v) => s.bind(v),
        };
    }
    s
}

/// `skey` as stored: at most [`MAX_RECORD_KEY`] bytes, cut on a char
/// boundary.
pub(crate) fn clip_key(k: Option<&str>) -> Option<String> {
    k.map(|k| {
        let mut end = k.len().min(MAX_RECORD_KEY);
        while !k.is_char_boundary(end) {
            end -= 1;
        }
        k[..end].to_string()
    })
}

impl SqlCatalog {
    /// The conditions of a filter over `records r`, one per branch of a
    /// UNION: "owner or member" is two index searches (by owner, by root),
    /// never one walk of the whole scope filtered by an OR.
    /// Each branch is (FROM clause, WHERE clause, arguments); the
    /// membership branch walks the member's records first (a CROSS JOIN
    /// keeps that order on SQLite) and searches `(scope, ref_id)` for each.
    fn record_branches(&self, f: &RecordFilter) -> Vec<(&'static str, String, Vec<Arg>)> {
        const PLAIN: &str = "records r";
        const MEMBER: &str = "records m CROSS JOIN records r";
        let member = |scope: &String, user: &UserId| {
            (
                MEMBER,
                "m.scope = ? AND m.owner_id = ? AND m.ref_id IS NOT NULL AND r.ref_id = m.ref_id"
                    .to_string(),
                vec![Arg::S(scope.clone()), Arg::I(*user)],
            )
        };
        let whos: Vec<(&'static str, String, Vec<Arg>)> = match (&f.owner, &f.or_ref_of) {
            (Some(o), None) => vec![(PLAIN, "r.owner_id = ?".into(), vec![Arg::I(*o)])],
            (Some(o), Some((scope, user))) => vec![
                (PLAIN, "r.owner_id = ?".into(), vec![Arg::I(*o)]),
                member(scope, user),
            ],
            (None, Some((scope, user))) => vec![member(scope, user)],
            (None, None) => vec![(PLAIN, String::new(), Vec::new())],
        };
        let (rest, rest_args) = self.record_rest(f);
        whos.into_iter()
            .map(|(from, who, who_args)| {
                let mut sql = String::new();
                let mut args = Vec::new();
                if !who.is_empty() {
                    sql.push_str(&who);
                    sql.push_str(" AND ");
                    args.extend(who_args);
                }
                sql.push_str("r.scope = ?");
                args.push(Arg::S(f.scope.clone()));
                sql.push_str(&rest);
                args.extend(rest_args.iter().cloned());
                (from, sql, args)
            })
            .collect()
    }

    /// The conditions of a filter besides its scope and owner.
    fn record_rest(&self, f: &RecordFilter) -> (String, Vec<Arg>) {
        let mut sql = String::new();
        let mut args = Vec::new();
        if let Some(k) = clip_key(f.skey.as_deref()) {
            sql.push_str(" AND r.skey = ?");
            args.push(Arg::S(k));
        }
        if let Some(k) = clip_key(f.skey2.as_deref()) {
            sql.push_str(" AND r.skey2 = ?");
            args.push(Arg::S(k));
        }
        if let Some(k) = &f.skey_contains {
            sql.push_str(match self.backend {
                Backend::Sqlite => " AND instr(r.skey, ?) > 0",
                Backend::Postgres => " AND strpos(r.skey, ?) > 0",
            });
            args.push(Arg::S(k.to_lowercase()));
        }
        if let Some(id) = f.ref_id {
            sql.push_str(" AND r.ref_id = ?");
            args.push(Arg::I(id));
        }
        match f.image_processed {
            Some(true) => sql.push_str(
                " AND EXISTS (SELECT 1 FROM images i WHERE i.id = r.image_id AND i.processed_at IS NOT NULL)",
            ),
            Some(false) => sql.push_str(
                " AND EXISTS (SELECT 1 FROM images i WHERE i.id = r.image_id AND i.processed_at IS NULL)",
            ),
            None if f.with_image => {
                sql.push_str(" AND EXISTS (SELECT 1 FROM images i WHERE i.id = r.image_id)")
            }
            None => {}
        }
        (sql, args)
    }

    /// The statement selecting one page of a query's records.
    pub(crate) fn record_page_sql(&self, q: &RecordQuery) -> (String, Vec<Arg>) {
        let (order, u_order) = match q.order {
            RecordOrder::SeqAsc => ("r.seq ASC", "u.seq ASC"),
            RecordOrder::SeqDesc => ("r.seq DESC", "u.seq DESC"),
            RecordOrder::SortDesc => (
                "r.sort_at DESC, r.ref_id DESC",
                "u.sort_at DESC, u.ref_id DESC",
            ),
            RecordOrder::SortAsc => ("r.sort_at ASC, r.ref_id ASC", "u.sort_at ASC, u.ref_id ASC"),
        };
        // The position after the cursor, as a row-value comparison so that
        // it is one range of the ordering index.
        let (cursor, cursor_args): (&str, Vec<Arg>) = match (q.order, q.after) {
            (RecordOrder::SeqAsc, Some(RecordCursor::Seq(s))) => {
                (" AND r.seq > ?", vec![Arg::I(s)])
            }
            (RecordOrder::SeqDesc, Some(RecordCursor::Seq(s))) => {
                (" AND r.seq < ?", vec![Arg::I(s)])
            }
            (RecordOrder::SortDesc, Some(RecordCursor::Sort(t, id))) => (
                " AND (r.sort_at, r.ref_id) < (?, ?)",
                vec![Arg::I(t), Arg::I(id)],
            ),
            (RecordOrder::SortAsc, Some(RecordCursor::Sort(t, id))) => (
                " AND (r.sort_at, r.ref_id) > (?, ?)",
                vec![Arg::I(t), Arg::I(id)],
            ),
            // A cursor of the other kind selects nothing rather than all.
            (_, Some(_)) => (" AND 1 = 0", Vec::new()),
            (_, None) => ("", Vec::new()),
        };
        let sorted = matches!(q.order, RecordOrder::SortDesc | RecordOrder::SortAsc);
        let mut args = Vec::new();
        let mut branches = Vec::new();
        for (from, cond, cond_args) in self.record_branches(&q.filter) {
            let mut b = format!("{from} WHERE {cond}");
            if sorted {
                b.push_str(" AND r.sort_at IS NOT NULL AND r.ref_id IS NOT NULL");
            }
            b.push_str(cursor);
            args.extend(cond_args);
            args.extend(cursor_args.iter().cloned());
            branches.push(b);
        }
        // The inner select walks indexes for the page's seqs; the outer
        // one reads just those rows.
        let inner = if branches.len() == 1 {
            format!(
                "SELECT r.seq FROM {} ORDER BY {order} LIMIT ? OFFSET ?",
                branches.join("")
            )
        } else {
            // Only the ordering columns, so that each branch reads its
            // index alone.
            let cols = if sorted {
                "r.seq AS seq, r.sort_at AS sort_at, r.ref_id AS ref_id"
            } else {
                "r.seq AS seq"
            };
            let union = branches
                .iter()
                .map(|b| format!("SELECT {cols} FROM {b}"))
                .collect::<Vec<_>>()
                .join(" UNION ");
            format!("SELECT u.seq FROM ({union}) u ORDER BY {u_order} LIMIT ? OFFSET ?")
        };
        let cols = RECORD_COLS
            .split(", ")
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("SELECT {cols} FROM records r WHERE r.seq IN ({inner}) ORDER BY {order}");
        args.push(Arg::I(q.limit.max(0)));
        args.push(Arg::I(q.offset.max(0)));
        (sql, args)
    }

    /// How many records a filter selects: one index count per branch, the
    /// union deduplicated.
    fn record_count_sql(&self, f: &RecordFilter) -> (String, Vec<Arg>) {
        let branches = self.record_branches(f);
        let mut args = Vec::new();
        let sql = if let [(from, cond, a)] = branches.as_slice() {
            args.extend(a.iter().cloned());
            format!("SELECT COUNT(*) AS n FROM {from} WHERE {cond}")
        } else {
            let mut parts = Vec::new();
            for (from, cond, a) in branches {
                args.extend(a);
                parts.push(format!("SELECT r.seq FROM {from} WHERE {cond}"));
            }
            format!("SELECT COUNT(*) AS n FROM ({}) u", parts.join(" UNION "))
        };
        (sql, args)
    }

    /// The images with these ids, in one query.
    async fn images_by_ids(&self, ids: &[String]) -> Result<Vec<Image>, CatalogError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_BATCH_IDS) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!("SELECT {IMAGE_COLS} FROM images WHERE id IN ({marks})");
            let mut s = self.stmt(&sql);
            for id in chunk {
                s = s.bind(id.as_str().to_string());
            }
            for r in s.fetch_all(&self.pool).await.map_err(db)? {
                out.push(row_image(&r)?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn query_records_impl(
        &self,
        q: &RecordQuery,
    ) -> Result<Vec<RecordRow>, CatalogError> {
        if q.limit <= 0 {
            return Ok(Vec::new());
        }
        let (sql, args) = self.record_page_sql(q);
        let rows = bind_args(self.stmt(&sql), args)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        let records = rows.iter().map(row_record).collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<String> = records.iter().filter_map(|r| r.image_id.clone()).collect();
        let mut images: HashMap<String, Image> = self
            .images_by_ids(&ids)
            .await?
            .into_iter()
            .map(|i| (i.id.clone(), i))
            .collect();
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let image = record.image_id.as_ref().and_then(|id| images.remove(id));
            if image.is_none() && q.filter.with_image {
                // Deleted between the two statements.
                continue;
            }
            out.push(RecordRow { record, image });
        }
        Ok(out)
    }

    pub(crate) async fn count_matching_impl(&self, f: &RecordFilter) -> Result<i64, CatalogError> {
        let (sql, args) = self.record_count_sql(f);
        let r = bind_args(self.stmt(&sql), args)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        get(&r, "n")
    }

    /// The plan of a page query and of its count, one line per step
    /// (SQLite: `EXPLAIN QUERY PLAN`; PostgreSQL: `EXPLAIN` with sequential
    /// scans priced out, so that a usable index is always chosen and a
    /// missing one shows as a `Seq Scan`). For the storage tests.
    pub async fn explain_record_query(&self, q: &RecordQuery) -> Result<Vec<String>, CatalogError> {
        let (page, page_args) = self.record_page_sql(q);
        let (count, count_args) = self.record_count_sql(&q.filter);
        let mut lines = self.explain(&page, page_args).await?;
        lines.extend(self.explain(&count, count_args).await?);
        Ok(lines)
    }

    /// Refreshes the planner's statistics (`ANALYZE`).
    pub async fn analyze(&self) -> Result<(), CatalogError> {
        sqlx::query("ANALYZE")
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// The plan of the native list's statement (first page or after a
    /// cursor).
    pub async fn explain_image_list(&self, after: bool) -> Result<Vec<String>, CatalogError> {
        let (sql, args) = if after {
            (
                format!("SELECT {IMAGE_COLS} FROM images WHERE owner_id = ? AND (created_at < ? OR (created_at = ? AND seq < ?)) ORDER BY created_at DESC, seq DESC LIMIT ?"),
                vec![Arg::I(1), Arg::I(1), Arg::I(1), Arg::I(1), Arg::I(50)],
            )
        } else {
            (
                format!("SELECT {IMAGE_COLS} FROM images WHERE owner_id = ? ORDER BY created_at DESC, seq DESC LIMIT ?"),
                vec![Arg::I(1), Arg::I(50)],
            )
        };
        self.explain(&sql, args).await
    }

    async fn explain(&self, sql: &str, args: Vec<Arg>) -> Result<Vec<String>, CatalogError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        match self.backend {
            Backend::Sqlite => {
                let rows = bind_args(self.stmt(&format!("EXPLAIN QUERY PLAN {sql}")), args)
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(db)?;
                rows.iter().map(|r| get::<String>(r, "detail")).collect()
            }
            Backend::Postgres => {
                // Price out every plan that does not search an index: what
                // remains shows whether the indexes can serve the query
                // at any size (on small tables PostgreSQL rightly prefers
                // scanning).
                sqlx::raw_sql(
                    "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off; SET enable_bitmapscan = off",
                )
                .execute(&mut *conn)
                .await
                .map_err(db)?;
                let out = bind_args(self.stmt(&format!("EXPLAIN {sql}")), args)
                    .fetch_all(&mut *conn)
                    .await;
                let _ = sqlx::raw_sql(
                    "RESET enable_seqscan; RESET enable_hashjoin; RESET enable_mergejoin; RESET enable_material; RESET enable_bitmapscan",
                )
                .execute(&mut *conn)
                .await;
                let rows = out.map_err(db)?;
                rows.iter()
                    .map(|r| get::<String>(r, "QUERY PLAN"))
                    .collect()
            }
        }
    }

    pub(crate) async fn variants_of_impl(
        &self,
        image_ids: &[String],
    ) -> Result<Vec<Variant>, CatalogError> {
        let mut out = Vec::new();
        for chunk in image_ids.chunks(MAX_BATCH_IDS) {
            if chunk.is_empty() {
                continue;
            }
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT {VARIANT_COLS} FROM variants WHERE image_id IN ({marks}) ORDER BY image_id, preset"
            );
            let mut s = self.stmt(&sql);
            for id in chunk {
                s = s.bind(id.as_str().to_string());
            }
            for r in s.fetch_all(&self.pool).await.map_err(db)? {
                out.push(row_variant(&r)?);
            }
        }
        Ok(out)
    }

    pub(crate) async fn update_record_if_impl(
        &self,
        r: &NewRecord,
        version: i64,
    ) -> Result<Option<Record>, CatalogError> {
        let sql = format!(
            "UPDATE records SET owner_id = ?, image_id = ?, data = ?, skey = COALESCE(?, skey), skey2 = COALESCE(?, skey2), \
             ref_id = COALESCE(?, ref_id), sort_at = COALESCE(?, sort_at), updated_at = ?, version = version + 1 \
             WHERE scope = ? AND key = ? AND version = ? RETURNING {RECORD_COLS}"
        );
        let row = self
            .stmt(&sql)
            .bind(r.owner_id)
            .bind(r.image_id.as_deref())
            .bind(r.data.to_string())
            .bind(clip_key(r.skey.as_deref()))
            .bind(clip_key(r.skey2.as_deref()))
            .bind(r.ref_id)
            .bind(r.sort_at)
            .bind(to_millis(now()))
            .bind(&r.scope)
            .bind(&r.key)
            .bind(version)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref().map(row_record).transpose()
    }

    pub(crate) async fn insert_image_within_quota_impl(
        &self,
        i: &NewImage,
        since: Timestamp,
    ) -> Result<Result<Image, QuotaUsed>, CatalogError> {
        // The owner's row is the per-user lock: PostgreSQL holds the row
        // lock of the update to the end of the transaction (other nodes'
        // uploads for this user wait; other users' do not), SQLite's
        // IMMEDIATE transaction holds the write lock.
        let mut tx = match self.backend {
            Backend::Postgres => self.pool.begin().await.map_err(db)?,
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await.map_err(db)?,
        };
        let user = self
            .stmt("UPDATE users SET images_per_day = images_per_day WHERE id = ? RETURNING images_per_day")
            .bind(i.owner_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db)?;
        let Some(user) = user else {
            return Err(CatalogError::database(format!(
                "no user {} to own the image",
                i.owner_id
            )));
        };
        let limit: i64 = get(&user, "images_per_day")?;
        if limit > 0 {
            let r = self
                .stmt("SELECT COUNT(*) AS n FROM images WHERE owner_id = ? AND created_at >= ?")
                .bind(i.owner_id)
                .bind(to_millis(since))
                .fetch_one(&mut *tx)
                .await
                .map_err(db)?;
            let used: i64 = get(&r, "n")?;
            if used >= limit {
                tx.rollback().await.map_err(db)?;
                return Ok(Err(QuotaUsed { limit, used }));
            }
        }
        let image = self.insert_image_in(&mut tx, i).await?;
        tx.commit().await.map_err(db)?;
        Ok(Ok(image))
    }
}
