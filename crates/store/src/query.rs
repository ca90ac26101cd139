//! Queryable records, batched look-ups and the quota-checked insert.
//!
//! A dialect asks for exactly the page it shows: [`RecordQuery`] becomes
//! one statement over the records' typed keys (migration 0003) whose inner
//! part selects the page's `seq`s from an index (an offset walks index
//! entries, not rows), and one more statement fetches the images of the
//! page by id. Nothing reads the whole set of a user's records.

use crate::sql::{db, get, row_image, row_record, row_variant, Backend, SqlCatalog, Stmt};
use crate::sql::{IMAGE_COLS, RECORD_COLS, VARIANT_COLS};
use sqlx::any::AnyRow;
use std::collections::HashMap;
use tintype_core::*;

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

/// A substring searched in records' `skey` (lower case, as the keys are
/// stored): from the trigram index when it has three characters or more
/// (SQLite's FTS5 table `records_skey_search`, PostgreSQL's pg_trgm
/// index), else (and in the membership branch) by checking the keys one
/// by one.
enum Search {
    Indexed(String),
    Short(String),
}

impl Search {
    fn of(term: &str) -> Search {
        let term = term.to_lowercase();
        if term.chars().count() >= 3 {
            Search::Indexed(term)
        } else {
            Search::Short(term)
        }
    }
}

/// Who may see a filter's records, in one branch of its statement.
enum Branch<'a> {
    /// The records this user owns.
    Owner(UserId),
    /// The records under a root (`ref_id`) on which this user holds a
    /// record of this scope (a membership).
    Member(&'a str, UserId),
    /// Every record of the scope.
    Anyone,
}

impl SqlCatalog {
    /// Who may see a filter's records, one entry per branch of a UNION:
    /// "owner or member" is two index searches (by owner, by root), never
    /// one walk of the whole scope filtered by an OR.
    fn record_branches(f: &RecordFilter) -> Vec<Branch<'_>> {
        match (&f.owner, &f.or_ref_of) {
            (Some(o), None) => vec![Branch::Owner(*o)],
            (Some(o), Some((scope, user))) => vec![Branch::Owner(*o), Branch::Member(scope, *user)],
            (None, Some((scope, user))) => vec![Branch::Member(scope, *user)],
            (None, None) => vec![Branch::Anyone],
        }
    }

    /// Appends `FROM … WHERE …` of one branch of a filter over `records r`.
    /// The membership branch walks the member's records first (a CROSS
    /// JOIN keeps that order on SQLite) and searches `(scope, ref_id)` for
    /// each.
    fn push_branch<'q>(&self, s: Stmt<'q>, b: &Branch<'_>, f: &RecordFilter) -> Stmt<'q> {
        // An indexed search walks the matches first (SQLite: the FTS5
        // table, then each record by its seq; PostgreSQL: the trigram
        // index). The membership branch does not: the index's matches are
        // every user's, while the records under the roots this user is a
        // member of are few, so it walks those and tests each key.
        let search = match (f.skey_contains.as_deref().map(Search::of), b) {
            (Some(Search::Indexed(k)), Branch::Member(..)) => Some(Search::Short(k)),
            (search, _) => search,
        };
        let fts = matches!(search, Some(Search::Indexed(_))) && self.backend == Backend::Sqlite;
        let mut s = match (b, fts) {
            (Branch::Member(..), _) => s.push("records m CROSS JOIN records r WHERE "),
            (_, false) => s.push("records r WHERE "),
            (_, true) => {
                s.push("records_skey_search s CROSS JOIN records r WHERE r.seq = s.rowid AND ")
            }
        };
        s = match b {
            Branch::Owner(o) => s.push("r.owner_id = ").push_bind(*o).push(" AND "),
            Branch::Member(scope, user) => s
                .push("m.scope = ")
                .push_bind(scope.to_string())
                .push(" AND m.owner_id = ")
                .push_bind(*user)
                .push(" AND m.ref_id IS NOT NULL AND r.ref_id = m.ref_id AND "),
            Branch::Anyone => s,
        };
        s = s.push("r.scope = ").push_bind(f.scope.clone());
        if let Some(k) = clip_key(f.skey.as_deref()) {
            s = s.push(" AND r.skey = ").push_bind(k);
        }
        if let Some(k) = clip_key(f.skey2.as_deref()) {
            s = s.push(" AND r.skey2 = ").push_bind(k);
        }
        s = match (search, self.backend) {
            (None, _) => s,
            // FTS5's trigrams ignore case; the exact check keeps the
            // search as case-sensitive as the short one.
            (Some(Search::Indexed(k)), Backend::Sqlite) => s
                .push(" AND s.skey MATCH ")
                .push_bind(format!("\"{}\"", k.replace('"', "\"\"")))
                .push(" AND instr(r.skey, ")
                .push_bind(k)
                .push(") > 0"),
            (Some(Search::Indexed(k)), Backend::Postgres) => {
                let escaped = k
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                s.push(" AND r.skey LIKE ")
                    .push_bind(format!("%{escaped}%"))
            }
            (Some(Search::Short(k)), Backend::Sqlite) => {
                s.push(" AND instr(r.skey, ").push_bind(k).push(") > 0")
            }
            (Some(Search::Short(k)), Backend::Postgres) => {
                s.push(" AND strpos(r.skey, ").push_bind(k).push(") > 0")
            }
        };
        if let Some(id) = f.ref_id {
            s = s.push(" AND r.ref_id = ").push_bind(id);
        }
        match f.image_processed {
            Some(true) => s.push(
                " AND EXISTS (SELECT 1 FROM images i WHERE i.id = r.image_id AND i.processed_at IS NOT NULL)",
            ),
            Some(false) => s.push(
                " AND EXISTS (SELECT 1 FROM images i WHERE i.id = r.image_id AND i.processed_at IS NULL)",
            ),
            None if f.with_image => {
                s.push(" AND EXISTS (SELECT 1 FROM images i WHERE i.id = r.image_id)")
            }
            None => s,
        }
    }

    /// Appends the statement selecting one page of a query's records.
    pub(crate) fn push_record_page<'q>(&self, mut s: Stmt<'q>, q: &RecordQuery) -> Stmt<'q> {
        let (order, u_order) = match q.order {
            RecordOrder::SeqAsc => ("r.seq ASC", "u.seq ASC"),
            RecordOrder::SeqDesc => ("r.seq DESC", "u.seq DESC"),
            RecordOrder::SortDesc => (
                "r.sort_at DESC, r.ref_id DESC",
                "u.sort_at DESC, u.ref_id DESC",
            ),
            RecordOrder::SortAsc => ("r.sort_at ASC, r.ref_id ASC", "u.sort_at ASC, u.ref_id ASC"),
        };
        let sorted = matches!(q.order, RecordOrder::SortDesc | RecordOrder::SortAsc);
        // The position after the cursor, as a row-value comparison so that
        // it is one range of the ordering index.
        let cursor = |s: Stmt<'q>| match (q.order, q.after) {
            (RecordOrder::SeqAsc, Some(RecordCursor::Seq(seq))) => {
                s.push(" AND r.seq > ").push_bind(seq)
            }
            (RecordOrder::SeqDesc, Some(RecordCursor::Seq(seq))) => {
                s.push(" AND r.seq < ").push_bind(seq)
            }
            (RecordOrder::SortDesc, Some(RecordCursor::Sort(t, id))) => s
                .push(" AND (r.sort_at, r.ref_id) < (")
                .push_bind(t)
                .push(", ")
                .push_bind(id)
                .push(")"),
            (RecordOrder::SortAsc, Some(RecordCursor::Sort(t, id))) => s
                .push(" AND (r.sort_at, r.ref_id) > (")
                .push_bind(t)
                .push(", ")
                .push_bind(id)
                .push(")"),
            // A cursor of the other kind selects nothing rather than all.
            (_, Some(_)) => s.push(" AND 1 = 0"),
            (_, None) => s,
        };
        let branch = |s: Stmt<'q>, b: &Branch<'_>| {
            let s = self.push_branch(s, b, &q.filter);
            let s = if sorted {
                s.push(" AND r.sort_at IS NOT NULL AND r.ref_id IS NOT NULL")
            } else {
                s
            };
            cursor(s)
        };
        let cols = RECORD_COLS
            .split(", ")
            .map(|c| format!("r.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        // The inner select walks indexes for the page's seqs; the outer
        // one reads just those rows.
        s = s.push(&format!("SELECT {cols} FROM records r WHERE r.seq IN ("));
        let branches = Self::record_branches(&q.filter);
        if let [one] = branches.as_slice() {
            s = branch(s.push("SELECT r.seq FROM "), one).push(&format!(" ORDER BY {order}"));
        } else {
            // Only the ordering columns, so that each branch reads its
            // index alone.
            let cols = if sorted {
                "r.seq AS seq, r.sort_at AS sort_at, r.ref_id AS ref_id"
            } else {
                "r.seq AS seq"
            };
            s = s.push("SELECT u.seq FROM (");
            for (i, b) in branches.iter().enumerate() {
                if i > 0 {
                    s = s.push(" UNION ");
                }
                s = branch(s.push(&format!("SELECT {cols} FROM ")), b);
            }
            s = s.push(&format!(") u ORDER BY {u_order}"));
        }
        s.push(" LIMIT ")
            .push_bind(q.limit.max(0))
            .push(" OFFSET ")
            .push_bind(q.offset.max(0))
            .push(&format!(") ORDER BY {order}"))
    }

    /// Appends the count of a filter's records: one index count per
    /// branch, the union deduplicated.
    fn push_record_count<'q>(&self, mut s: Stmt<'q>, f: &RecordFilter) -> Stmt<'q> {
        let branches = Self::record_branches(f);
        if let [one] = branches.as_slice() {
            return self.push_branch(s.push("SELECT COUNT(*) AS n FROM "), one, f);
        }
        s = s.push("SELECT COUNT(*) AS n FROM (");
        for (i, b) in branches.iter().enumerate() {
            if i > 0 {
                s = s.push(" UNION ");
            }
            s = self.push_branch(s.push("SELECT r.seq FROM "), b, f);
        }
        s.push(") u")
    }

    /// Appends the native list: a user's images newest first, after a
    /// (created_at ms, seq) position.
    pub(crate) fn push_image_list<'q>(
        &self,
        s: Stmt<'q>,
        owner: UserId,
        after: Option<(i64, i64)>,
        limit: i64,
    ) -> Stmt<'q> {
        let s = s
            .push(&format!(
                "SELECT {IMAGE_COLS} FROM images WHERE owner_id = "
            ))
            .push_bind(owner);
        let s = match after {
            None => s,
            Some((t, seq)) => s
                .push(" AND (created_at < ")
                .push_bind(t)
                .push(" OR (created_at = ")
                .push_bind(t)
                .push(" AND seq < ")
                .push_bind(seq)
                .push("))"),
        };
        s.push(" ORDER BY created_at DESC, seq DESC LIMIT ")
            .push_bind(limit)
    }

    /// The rows a statement selects for a list of ids, `MAX_BATCH_IDS`
    /// ids per statement: `stmt` makes the statement for one chunk (its
    /// `IN (…)` list from the chunk).
    async fn all_in_chunks<'a, T>(
        &self,
        ids: &'a [String],
        stmt: impl Fn(&'a [String]) -> Stmt<'a>,
        read: fn(&AnyRow) -> Result<T, CatalogError>,
    ) -> Result<Vec<T>, CatalogError> {
        let mut out = Vec::new();
        for chunk in ids.chunks(MAX_BATCH_IDS) {
            out.extend(stmt(chunk).all(&self.pool, read).await?);
        }
        Ok(out)
    }

    /// The images with these ids, in one query.
    async fn images_by_ids(&self, ids: &[String]) -> Result<Vec<Image>, CatalogError> {
        let head = format!("SELECT {IMAGE_COLS} FROM images WHERE id IN (");
        self.all_in_chunks(
            ids,
            |chunk| {
                self.stmt(&head)
                    .push_binds(chunk.iter().map(String::as_str))
                    .push(")")
            },
            row_image,
        )
        .await
    }

    pub(crate) async fn query_records_impl(
        &self,
        q: &RecordQuery,
    ) -> Result<Vec<RecordRow>, CatalogError> {
        if q.limit <= 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .push_record_page(self.stmt(""), q)
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
        let r = self
            .push_record_count(self.stmt(""), f)
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
        let mut lines = self.explain(|s| self.push_record_page(s, q)).await?;
        lines.extend(
            self.explain(|s| self.push_record_count(s, &q.filter))
                .await?,
        );
        Ok(lines)
    }

    /// The plans of a job claim's statements (one per way a job is due).
    pub async fn explain_job_claim(&self) -> Result<Vec<String>, CatalogError> {
        let kinds = vec!["render".to_string()];
        let mut lines = Vec::new();
        for due in crate::sql::CLAIM_ORDER {
            lines.extend(
                self.explain(|s| self.push_claim(s, "w", 2, 1, due, &kinds))
                    .await?,
            );
        }
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
        self.explain(|s| self.push_image_list(s, 1, after.then_some((1, 1)), 50))
            .await
    }

    /// The plan of the statement `build` appends.
    async fn explain(
        &self,
        build: impl for<'q> Fn(Stmt<'q>) -> Stmt<'q>,
    ) -> Result<Vec<String>, CatalogError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        match self.backend {
            Backend::Sqlite => {
                let rows = build(self.stmt("EXPLAIN QUERY PLAN "))
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
                    "SET enable_seqscan = off; SET enable_hashjoin = off; SET enable_mergejoin = off; SET enable_material = off",
                )
                .execute(&mut *conn)
                .await
                .map_err(db)?;
                let out = build(self.stmt("EXPLAIN ")).fetch_all(&mut *conn).await;
                let _ = sqlx::raw_sql(
                    "RESET enable_seqscan; RESET enable_hashjoin; RESET enable_mergejoin; RESET enable_material",
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

    pub(crate) async fn records_with_keys_impl(
        &self,
        scope: &str,
        keys: &[String],
    ) -> Result<Vec<Record>, CatalogError> {
        let head = format!("SELECT {RECORD_COLS} FROM records WHERE scope = $1 AND key IN (");
        self.all_in_chunks(
            keys,
            |chunk| {
                self.stmt(&head)
                    .bind(scope.to_string())
                    .push_binds(chunk.iter().map(String::as_str))
                    .push(")")
            },
            row_record,
        )
        .await
    }

    pub(crate) async fn variants_of_impl(
        &self,
        image_ids: &[String],
    ) -> Result<Vec<Variant>, CatalogError> {
        let head = format!("SELECT {VARIANT_COLS} FROM variants WHERE image_id IN (");
        self.all_in_chunks(
            image_ids,
            |chunk| {
                self.stmt(&head)
                    .push_binds(chunk.iter().map(String::as_str))
                    .push(") ORDER BY image_id, preset")
            },
            row_variant,
        )
        .await
    }

    pub(crate) async fn update_record_if_impl(
        &self,
        r: &NewRecord,
        version: i64,
    ) -> Result<Option<Record>, CatalogError> {
        let sql = format!(
            "UPDATE records SET owner_id = $1, image_id = $2, data = $3, skey = COALESCE($4, skey), skey2 = COALESCE($5, skey2), \
             ref_id = COALESCE($6, ref_id), sort_at = COALESCE($7, sort_at), updated_at = $8, version = version + 1 \
             WHERE scope = $9 AND key = $10 AND version = $11 RETURNING {RECORD_COLS}"
        );
        self.stmt(&sql)
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
            .optional(&self.pool, row_record)
            .await
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
            .stmt("UPDATE users SET images_per_day = images_per_day WHERE id = $1 RETURNING images_per_day")
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
                .stmt("SELECT COUNT(*) AS n FROM images WHERE owner_id = $1 AND created_at >= $2")
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
