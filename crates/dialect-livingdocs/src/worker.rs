//! The import job: fetch, probe and store every image of a batch with a
//! bounded concurrency, record each outcome, then call the webhook.

use crate::import::{timestamp_now, ImportData, ItemResult};
use crate::wire::ItemSpec;
use crate::{item_scope, EXT_SCOPE, IMPORT_SCOPE};
use async_trait::async_trait;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use tintype_engine::core::{CoreError, Job, NewRecord, Record, Refusal, UserId};
use tintype_engine::media::Format;
use tintype_engine::{Accept, Engine, IngestOptions, JobHandler, JobOutcome, Staged};

/// A reservation of a pair older than this, by an import that never
/// finished it, may be taken over.
const STALE_RESERVATION: chrono::Duration = chrono::Duration::minutes(15);

fn accept() -> Accept {
    Accept::Formats(vec![Format::Png, Format::Jpeg, Format::Gif, Format::Svg])
}

/// What the (systemName, externalId) record holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ExtData {
    #[serde(rename = "systemName")]
    system_name: String,
    #[serde(rename = "externalId")]
    external_id: String,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    /// The import and item that last finished with this pair.
    #[serde(default)]
    last_import: Option<String>,
    #[serde(default)]
    last_index: Option<usize>,
    #[serde(default)]
    last_status: Option<String>,
    /// The import and item that is changing this pair right now.
    #[serde(default)]
    pending: Option<(String, usize)>,
}

fn ext_key(owner: UserId, system: &str, external: &str) -> String {
    json!([owner, system, external]).to_string()
}

pub(crate) struct ImportHandler {
    pub concurrency: usize,
}

#[async_trait]
impl JobHandler for ImportHandler {
    async fn run(&self, engine: &Arc<Engine>, job: &Job) -> JobOutcome {
        let Some(id) = job.payload.get("import").and_then(Value::as_str) else {
            return JobOutcome::Fail("payload without an import id".into());
        };
        let last_attempt = job.attempts >= job.max_attempts;
        match run_import(engine, id, self.concurrency, last_attempt).await {
            Ok(()) => JobOutcome::Done,
            Err(CoreError::NotFound) => JobOutcome::Fail(format!("import {id} is gone")),
            Err(e) if !last_attempt => JobOutcome::Retry(format!("{e}: {e:?}")),
            Err(e) => {
                tracing::error!(import = id, "livingdocs import failed for good: {e:?}");
                if let Err(e2) = finish(engine, id, "failed").await {
                    tracing::error!(import = id, "marking the import failed: {e2:?}");
                }
                JobOutcome::Fail(e.to_string())
            }
        }
    }
}

async fn load(engine: &Engine, id: &str) -> Result<(Record, ImportData), CoreError> {
    let rec = engine
        .record(IMPORT_SCOPE, id)
        .await?
        .ok_or(CoreError::NotFound)?;
    let data: ImportData = serde_json::from_value(rec.data.clone())
        .map_err(|e| CoreError::Internal(format!("import {id}: {e}")))?;
    Ok((rec, data))
}

async fn run_import(
    engine: &Arc<Engine>,
    id: &str,
    concurrency: usize,
    last_attempt: bool,
) -> Result<(), CoreError> {
    let (rec, data) = load(engine, id).await?;
    if data.state != "started" {
        // Finished before; only the webhook may still be owed.
        return finish(engine, id, &data.state).await;
    }
    let owner = rec
        .owner_id
        .ok_or_else(|| CoreError::Internal(format!("import {id} has no owner")))?;
    let scope = item_scope(id);
    let done: std::collections::HashSet<usize> = engine
        .list_records(&scope, None, false, 0, data.items.len() as i64 + 1)
        .await?
        .into_iter()
        .filter_map(|r| r.key.parse().ok())
        .collect();
    let system = data.system_name.clone();
    let todo: Vec<(usize, ItemSpec)> = data
        .items
        .iter()
        .cloned()
        .enumerate()
        .filter(|(i, _)| !done.contains(i))
        .collect();
    let mut results = futures::stream::iter(todo)
        .map(|(i, item)| {
            let system = system.clone();
            async move {
                let r = process_item(engine, owner, &system, id, i, &item, last_attempt).await;
                (i, r)
            }
        })
        .buffer_unordered(concurrency);
    // Every item runs to its end even when another fails: an item stopped
    // half-way could leave an image its record does not know.
    let mut first_error = None;
    while let Some((i, r)) = results.next().await {
        match r {
            Ok(result) => {
                let value = serde_json::to_value(&result).map_err(CoreError::internal)?;
                engine
                    .put_record(&NewRecord {
                        scope: scope.clone(),
                        key: i.to_string(),
                        owner_id: Some(owner),
                        image_id: None,
                        data: value,
                        ..NewRecord::default()
                    })
                    .await?;
            }
            Err(e) => {
                tracing::warn!(
                    import = id,
                    item = i,
                    "livingdocs item will be retried: {e:?}"
                );
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    finish(engine, id, "success").await
}

/// Marks the import finished (once) and queues its webhook (once).
async fn finish(engine: &Engine, id: &str, state: &str) -> Result<(), CoreError> {
    let (rec, mut data) = load(engine, id).await?;
    let owner = rec
        .owner_id
        .ok_or_else(|| CoreError::Internal(format!("import {id} has no owner")))?;
    if data.state == "started" {
        data.state = state.to_string();
        data.finished_at = Some(timestamp_now());
        save(engine, id, owner, &data).await?;
    }
    if data.webhook_queued {
        return Ok(());
    }
    if let Some(url) = data.webhook.clone() {
        let (mut success, mut skipped, mut failed) = (0, 0, 0);
        for r in engine
            .list_records(&item_scope(id), None, false, 0, data.items.len() as i64 + 1)
            .await?
        {
            match r.data.get("status").and_then(Value::as_str) {
                Some("success") => success += 1,
                Some("skipped") => skipped += 1,
                _ => failed += 1,
            }
        }
        if data.state == "failed" {
            failed = data.items.len().saturating_sub(success + skipped);
        }
        let mut body = json!({
            "source": "livingdocs-image-import",
            "id": id,
            "state": data.state,
            "overview": {
                "total": data.items.len(),
                "details": { "success": success, "skipped": skipped, "failed": failed },
            },
        });
        if let (Some(ctx), Some(o)) = (&data.context, body.as_object_mut()) {
            o.insert("context".into(), Value::Object(ctx.clone()));
        }
        match engine.send_webhook(owner, &url, &body).await {
            Ok(job) => tracing::info!(import = id, job, "livingdocs webhook queued"),
            // The guard refuses the address (e.g. it is no longer allowed):
            // nothing to retry.
            Err(CoreError::Invalid(m)) => {
                tracing::warn!(import = id, "livingdocs webhook not sent: {m}")
            }
            Err(e) => return Err(e),
        }
    }
    data.webhook_queued = true;
    save(engine, id, owner, &data).await
}

async fn save(
    engine: &Engine,
    id: &str,
    owner: UserId,
    data: &ImportData,
) -> Result<(), CoreError> {
    engine
        .put_record(&NewRecord {
            scope: IMPORT_SCOPE.into(),
            key: id.to_string(),
            owner_id: Some(owner),
            image_id: None,
            data: serde_json::to_value(data).map_err(CoreError::internal)?,
            ..NewRecord::default()
        })
        .await?;
    Ok(())
}

/// Fetches through the engine's guard and stages the body (written and
/// hashed once, probed and checked). `Ok(Err)` is a reason for the item
/// to fail; `Err` an internal failure or a retryable one.
async fn fetch(
    engine: &Engine,
    url: &str,
    last_attempt: bool,
) -> Result<Result<Staged, String>, CoreError> {
    let resp = match engine.fetch(url).await {
        Ok(r) => r,
        Err(e) => return Ok(Err(format!("could not fetch the image: {e}"))),
    };
    match engine.stage_body(resp.body, &accept(), None).await {
        Ok(staged) => Ok(Ok(staged)),
        Err(CoreError::Refused(r)) => Ok(Err(match r {
            Refusal::BodyUnreadable(m) => format!("could not fetch the image: {m}"),
            Refusal::NotAccepted(f) => {
                format!("{f} files are not accepted (allowed types: png, jpg, gif, svg)")
            }
            Refusal::UnknownFormat(_) => "not an image (allowed types: png, jpg, gif, svg)".into(),
            other => other.to_string(),
        })),
        Err(e) => match item_error(&e, last_attempt) {
            Some(reason) => Ok(Err(reason)),
            None => Err(e),
        },
    }
}

/// Whether an engine error is the item's fault (it fails) rather than the
/// server's (the job is retried).
fn item_error(e: &CoreError, last_attempt: bool) -> Option<String> {
    match e {
        CoreError::Internal(_) | CoreError::Unavailable(_) | CoreError::Busy { .. }
            if !last_attempt =>
        {
            None
        }
        CoreError::Internal(_) | CoreError::Unavailable(_) | CoreError::Busy { .. } => {
            Some("Could not upload image".into())
        }
        CoreError::TooLarge { limit } => Some(format!("the image is larger than {limit} bytes")),
        CoreError::QuotaExceeded {
            limit,
            used,
            requested: _,
        } => Some(format!(
            "the usage limit of {limit} images per day is reached ({used} in the last 24 hours)"
        )),
        other => Some(other.to_string()),
    }
}

struct Pair<'a> {
    engine: &'a Engine,
    owner: UserId,
    key: String,
    import: &'a str,
    index: usize,
    item: &'a ItemSpec,
    system: &'a str,
}

impl Pair<'_> {
    fn data(&self, prev: Option<&ExtData>) -> ExtData {
        let mut d = prev.cloned().unwrap_or_default();
        d.system_name = self.system.to_string();
        d.external_id = self.item.external_id.clone();
        d
    }

    async fn write(&self, image_id: Option<&str>, d: &ExtData) -> Result<(), CoreError> {
        self.engine
            .put_record(&NewRecord {
                scope: EXT_SCOPE.into(),
                key: self.key.clone(),
                owner_id: Some(self.owner),
                image_id: image_id.map(str::to_string),
                data: serde_json::to_value(d).map_err(CoreError::internal)?,
                ..NewRecord::default()
            })
            .await?;
        Ok(())
    }

    /// Records that this item finished with the pair.
    async fn done(
        &self,
        image_id: &str,
        prev: Option<&ExtData>,
        sha256: &str,
        result: ItemResult,
    ) -> Result<ItemResult, CoreError> {
        let mut d = self.data(prev);
        d.sha256 = Some(sha256.to_string());
        d.url = Some(self.item.url.clone());
        d.media_type = Some(self.item.media_type.clone());
        d.last_import = Some(self.import.to_string());
        d.last_index = Some(self.index);
        d.last_status = Some(result.status.clone());
        d.pending = None;
        self.write(Some(image_id), &d).await?;
        Ok(result)
    }

    fn ours(&self, d: &ExtData) -> bool {
        d.pending
            .as_ref()
            .is_some_and(|(i, n)| i == self.import && *n == self.index)
    }
}

async fn process_item(
    engine: &Engine,
    owner: UserId,
    system: &str,
    import: &str,
    index: usize,
    item: &ItemSpec,
    last_attempt: bool,
) -> Result<ItemResult, CoreError> {
    let pair = Pair {
        engine,
        owner,
        key: ext_key(owner, system, &item.external_id),
        import,
        index,
        item,
        system,
    };
    let existing = engine.record(EXT_SCOPE, &pair.key).await?;
    let prev: Option<ExtData> = existing
        .as_ref()
        .and_then(|r| serde_json::from_value(r.data.clone()).ok());
    // This very item finished before a crash and only its result was lost.
    if let (Some(r), Some(d)) = (&existing, &prev) {
        if let Some(img) = &r.image_id {
            if d.pending.is_none()
                && d.last_import.as_deref() == Some(import)
                && d.last_index == Some(index)
            {
                return Ok(match d.last_status.as_deref() {
                    Some("skipped") => ItemResult::skipped(img),
                    _ => ItemResult::success(img),
                });
            }
        }
    }

    let fetched = match fetch(engine, &item.url, last_attempt).await? {
        Ok(f) => f,
        Err(reason) => return Ok(ItemResult::failed(reason)),
    };

    if let Some(image_id) = existing.as_ref().and_then(|r| r.image_id.clone()) {
        match engine.image(&image_id).await {
            Ok(img) if img.owner_id == owner => {
                return update(&pair, prev.as_ref(), &img, fetched, last_attempt).await;
            }
            // The image is gone: import it anew under the same pair.
            Ok(_) | Err(CoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
    } else if let (Some(r), Some(d)) = (&existing, &prev) {
        // Reserved by another import that has not finished with it.
        let stale = r.updated_at < tintype_engine::core::now() - STALE_RESERVATION;
        if !pair.ours(d) && !stale {
            return Ok(ItemResult::failed(
                "the image is being imported by another request",
            ));
        }
    } else {
        // Reserve the pair before an image exists, so that a concurrent
        // import of the same pair does not create a second image.
        let mut d = pair.data(None);
        d.pending = Some((import.to_string(), index));
        let rec = NewRecord {
            scope: EXT_SCOPE.into(),
            key: pair.key.clone(),
            owner_id: Some(owner),
            image_id: None,
            data: serde_json::to_value(&d).map_err(CoreError::internal)?,
            ..NewRecord::default()
        };
        if engine.insert_record(&rec).await?.is_err() {
            return Ok(ItemResult::failed(
                "the image is being imported by another request",
            ));
        }
    }
    create(&pair, fetched, last_attempt).await
}

async fn create(
    pair: &Pair<'_>,
    fetched: Staged,
    last_attempt: bool,
) -> Result<ItemResult, CoreError> {
    let sha256 = fetched.sha256().to_string();
    let mut d = pair.data(None);
    d.pending = Some((pair.import.to_string(), pair.index));
    pair.write(None, &d).await?;
    let opts = IngestOptions {
        owner: pair.owner,
        name: pair.item.title.clone(),
        metadata: pair.item.metadata.clone(),
        accept: accept(),
        max_bytes: None,
    };
    match pair.engine.commit(fetched, opts).await {
        Ok(img) => {
            pair.done(&img.id, None, &sha256, ItemResult::success(&img.id))
                .await
        }
        Err(e) => match item_error(&e, last_attempt) {
            Some(reason) => {
                // Release the reservation: nothing was imported.
                pair.engine.delete_record(EXT_SCOPE, &pair.key).await?;
                Ok(ItemResult::failed(reason))
            }
            None => Err(e),
        },
    }
}

async fn update(
    pair: &Pair<'_>,
    prev: Option<&ExtData>,
    img: &tintype_engine::core::Image,
    fetched: Staged,
    last_attempt: bool,
) -> Result<ItemResult, CoreError> {
    let sha256 = fetched.sha256().to_string();
    let engine = pair.engine;
    let item = pair.item;
    let fields_changed = img.name != item.title || img.metadata != item.metadata;
    let resumed = prev.is_some_and(|d| pair.ours(d));
    if img.content.sha256 != sha256 {
        let mut d = pair.data(prev);
        d.pending = Some((pair.import.to_string(), pair.index));
        pair.write(Some(&img.id), &d).await?;
        if let Err(e) = engine.replace_with(&img.id, fetched).await {
            return match item_error(&e, last_attempt) {
                Some(reason) => {
                    let mut d = pair.data(prev);
                    d.pending = None;
                    pair.write(Some(&img.id), &d).await?;
                    Ok(ItemResult::failed(reason))
                }
                None => Err(e),
            };
        }
    } else if !fields_changed && !resumed {
        return pair
            .done(&img.id, prev, &sha256, ItemResult::skipped(&img.id))
            .await;
    }
    if fields_changed {
        let meta: &Map<String, Value> = &item.metadata;
        engine
            .update_image(&img.id, Some(item.title.as_deref()), Some(meta))
            .await?;
    }
    pair.done(&img.id, prev, &sha256, ItemResult::success(&img.id))
        .await
}
