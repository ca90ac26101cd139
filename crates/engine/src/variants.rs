use crate::jobs::{JobHandler, JobOutcome};
use crate::{Engine, Preset};
use async_trait::async_trait;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::sync::Arc;
use tintype_core::{now, CoreError, Image, ImageKind, Job, NewRecord, Record, Refusal, Variant};

pub(crate) const RENDER_JOB: &str = "render";

/// Records holding each picture's ThumbHash (key: the image id).
const THUMBHASH_SCOPE: &str = "tintype.thumbhash";

/// Variant names of full-size conversions (`full.webp`); preset names
/// cannot contain a dot.
const CONVERSION_PREFIX: &str = "full.";

/// What one render makes from one decode.
#[derive(Debug, Clone)]
enum Rendering {
    Presets(Vec<Preset>),
    /// One preset in another encoding than its own (negotiated or asked
    /// for): kept as its own variant, named `<preset>@<format>`.
    Encoded(Preset, tintype_media::OutputFormat),
    /// The whole picture in another encoding, at this quality.
    Full(tintype_media::OutputFormat, u8),
}

/// The variant name of a preset in an encoding other than its own. Preset
/// names have no '@', so these never clash with one (nor with `full.webp`).
fn encoded_name(preset: &str, format: tintype_media::OutputFormat) -> String {
    format!("{preset}@{}", format.name())
}

impl Rendering {
    fn names(&self) -> Vec<String> {
        match self {
            Rendering::Presets(p) => p.iter().map(|p| p.name.clone()).collect(),
            Rendering::Encoded(p, f) => vec![encoded_name(&p.name, *f)],
            Rendering::Full(f, _) => vec![format!("{CONVERSION_PREFIX}{}", f.name())],
        }
    }

    /// The specs whose memory the render needs (none: the whole picture).
    fn specs(&self, source: tintype_media::Format) -> Vec<tintype_media::VariantSpec> {
        match self {
            Rendering::Presets(p) => p.iter().map(|p| p.spec_for(source)).collect(),
            Rendering::Encoded(p, f) => vec![p.spec_as(*f)],
            Rendering::Full(..) => Vec::new(),
        }
    }
}

pub(crate) struct RenderHandler;

#[async_trait]
impl JobHandler for RenderHandler {
    async fn run(&self, engine: &Arc<Engine>, job: &Job) -> JobOutcome {
        let Some(id) = job.payload.get("image_id").and_then(|v| v.as_str()) else {
            return JobOutcome::Fail("payload without image_id".into());
        };
        match engine.render_missing(id).await {
            Ok(()) => JobOutcome::Done,
            Err(CoreError::NotFound) => JobOutcome::Done, // deleted meanwhile
            Err(CoreError::Conflict(_)) => JobOutcome::Done, // replaced: a new job renders it
            Err(e @ CoreError::Refused(_)) | Err(e @ CoreError::OverBudget { .. }) => {
                JobOutcome::Fail(e.to_string())
            }
            Err(e) => JobOutcome::Retry(format!("{e}: {e:?}")),
        }
    }
}

impl Engine {
    /// After new bytes: queue the variants (pictures), or mark a disk as
    /// processed (it has none).
    pub(crate) async fn after_content_change(&self, image: &Image) -> Result<(), CoreError> {
        if image.content.kind == ImageKind::Picture
            && self.config.presets.all().iter().any(|p| p.on_upload)
        {
            self.enqueue(
                RENDER_JOB,
                serde_json::json!({ "image_id": image.id }),
                None,
                Some(format!("render:{}", image.id)),
            )
            .await?;
        } else {
            self.catalog.set_processed(&image.id, Some(now())).await?;
            self.caches.images.remove(image.id.as_str());
        }
        Ok(())
    }

    /// Renders the on-upload presets the image does not have yet, from one
    /// decode, and records the image as processed.
    pub async fn render_missing(&self, image_id: &str) -> Result<(), CoreError> {
        let image = self.image(image_id).await?;
        if image.content.kind != ImageKind::Picture {
            return Ok(());
        }
        let have: Vec<String> = self
            .catalog
            .variants(image_id)
            .await?
            .into_iter()
            .map(|v| v.preset)
            .collect();
        let missing: Vec<Preset> = self
            .config
            .presets
            .all()
            .iter()
            .filter(|p| p.on_upload && !have.contains(&p.name))
            .cloned()
            .collect();
        if !missing.is_empty() {
            self.render(&image, Rendering::Presets(missing)).await?;
        }
        self.catalog.set_processed(image_id, Some(now())).await?;
        self.caches.images.remove(image_id);
        Ok(())
    }

    /// A variant of an image, rendered now if it does not exist yet. However
    /// many requests ask at once, it is rendered once (single flight).
    pub async fn variant(&self, image: &Image, preset: &str) -> Result<Variant, CoreError> {
        let Some(p) = self.config.presets.get(preset).cloned() else {
            return Err(CoreError::NotFound);
        };
        self.single_flight(image, preset, Rendering::Presets(vec![p]))
            .await
    }

    /// A variant in a given encoding: `None` (or the preset's own format)
    /// is [`Engine::variant`]; another format is rendered once and kept as
    /// its own variant (`<preset>@<format>`), through the same single
    /// flight and decode budget.
    pub async fn variant_as(
        &self,
        image: &Image,
        preset: &str,
        format: Option<tintype_media::OutputFormat>,
    ) -> Result<Variant, CoreError> {
        let Some(p) = self.config.presets.get(preset).cloned() else {
            return Err(CoreError::NotFound);
        };
        let Some(format) = format else {
            return self.variant(image, preset).await;
        };
        let own = tintype_media::Format::from_name(&image.content.format)
            .map(|source| p.default_format(source));
        if own == Some(format) {
            return self.variant(image, preset).await;
        }
        let name = encoded_name(preset, format);
        self.single_flight(image, &name, Rendering::Encoded(p, format))
            .await
    }

    /// The whole picture converted to WebP or AVIF (orientation applied,
    /// converted to sRGB, metadata stripped), kept as a variant named
    /// `full.<format>` so it is converted once however many ask, through
    /// the same single flight and decode budget as every variant. Photos
    /// (JPEG, HEIC, AVIF, WebP) are encoded lossy at the presets' default
    /// qualities (WebP 80, AVIF 60); PNG (graphics, text) as lossless WebP
    /// or AVIF at 90.
    pub async fn conversion(
        &self,
        image: &Image,
        format: tintype_media::OutputFormat,
    ) -> Result<Variant, CoreError> {
        use tintype_media::OutputFormat;
        let graphics = image.content.format == "png";
        let quality = match (format, graphics) {
            (OutputFormat::Webp, true) => 100,
            (OutputFormat::Webp, false) => 80,
            (OutputFormat::Avif, true) => 90,
            (OutputFormat::Avif, false) => 60,
            (OutputFormat::Jpeg | OutputFormat::Png, _) => {
                return Err(Refusal::NotApplicable(format!(
                    "full-size conversion to {} is not offered",
                    format.name()
                ))
                .into())
            }
        };
        let name = format!("{CONVERSION_PREFIX}{}", format.name());
        self.single_flight(image, &name, Rendering::Full(format, quality))
            .await
    }

    async fn single_flight(
        &self,
        image: &Image,
        name: &str,
        rendering: Rendering,
    ) -> Result<Variant, CoreError> {
        if image.content.kind != ImageKind::Picture {
            return Err(Refusal::NotApplicable("disk images have no variants".into()).into());
        }
        let key = (image.id.clone(), name.to_string());
        if let Some(v) = self.caches.variants.get(&key) {
            return Ok(v);
        }
        let generation = self.caches.variants.generation();
        if let Some(v) = self.catalog.variant(&image.id, name).await? {
            self.caches.variants.insert(generation, key, v.clone());
            return Ok(v);
        }
        let key = (image.id.clone(), name.to_string());
        let cell = {
            let mut flights = self
                .flights
                .lock()
                .map_err(|_| CoreError::Internal("flight table poisoned".into()))?;
            flights.entry(key.clone()).or_default().clone()
        };
        let result = cell
            .get_or_init(|| async {
                // Another flight may have finished between our check and now.
                if let Ok(Some(v)) = self.catalog.variant(&image.id, name).await {
                    return Ok(v);
                }
                self.render(image, rendering)
                    .await
                    .and_then(|mut v| v.pop().ok_or(CoreError::Internal("no variant".into())))
            })
            .await
            .clone();
        if let Ok(mut flights) = self.flights.lock() {
            if flights.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
                flights.remove(&key);
            }
        }
        result
    }

    /// Renders from one decode and stores the results as variants.
    async fn render(&self, image: &Image, rendering: Rendering) -> Result<Vec<Variant>, CoreError> {
        let local = self
            .blobs
            .local_file(&image.content.sha256, &self.config.tmp_dir)
            .await?;
        let path = local.path().to_path_buf();
        let limits = self.config.limits.clone();
        let tmp_dir = self.config.tmp_dir.clone();
        let names = rendering.names();
        // Headers only: what the decode will allocate, before it does.
        let (probe, specs) = {
            let (path, limits, rendering) = (path.clone(), limits.clone(), rendering.clone());
            tokio::task::spawn_blocking(move || {
                let probe = tintype_media::probe_headers(&path, &limits)?;
                let specs = rendering.specs(probe.format);
                Ok::<_, tintype_media::MediaError>((probe, specs))
            })
            .await
            .map_err(CoreError::internal)?
            .map_err(crate::ingest::media_error)?
        };
        let memory = match rendering {
            Rendering::Full(format, _) => tintype_media::full_memory(&probe, format),
            _ => tintype_media::render_memory(&probe, &specs),
        };
        let _room = self.budget.acquire(memory).await?;
        let (rendered, placeholder) = tokio::task::spawn_blocking(move || {
            let out = match rendering {
                Rendering::Presets(_) | Rendering::Encoded(..) => {
                    tintype_media::render_file(&path, &probe, &specs, &limits)?
                }
                Rendering::Full(format, quality) => vec![tintype_media::to_full(
                    &path, &probe, &limits, format, quality,
                )?],
            };
            // Each variant goes to a temp file, hashed, ready for the store.
            let mut staged = Vec::with_capacity(out.len());
            let mut placeholder = None;
            for (r, name) in out.into_iter().zip(names.iter()) {
                let mut f = tempfile::Builder::new()
                    .prefix("variant-")
                    .tempfile_in(&tmp_dir)?;
                f.write_all(&r.bytes)?;
                f.as_file().sync_all()?;
                let sha = hex::encode(Sha256::digest(&r.bytes));
                if r.thumbhash.is_some() {
                    placeholder = r.thumbhash.clone();
                }
                staged.push((
                    name.clone(),
                    r.width,
                    r.height,
                    r.content_type,
                    r.bytes.len(),
                    sha,
                    f.into_temp_path(),
                ));
            }
            Ok::<_, tintype_media::MediaError>((staged, placeholder))
        })
        .await
        .map_err(CoreError::internal)?
        .map_err(crate::ingest::media_error)?;
        drop(local);
        // The bytes may have been replaced while we rendered: variants of
        // the old bytes must not be recorded for the new ones.
        let current = self.image(&image.id).await?;
        if current.content.sha256 != image.content.sha256 {
            return Err(CoreError::Conflict(
                "the image changed while its variants were rendered".into(),
            ));
        }
        if let Some(hash) = placeholder {
            self.keep_thumbhash(image, hash).await;
        }
        let mut out = Vec::with_capacity(rendered.len());
        for (preset, w, h, ct, size, sha, temp) in rendered {
            let pin = self.store_pinned(&sha, &temp, size as u64).await?;
            let v = Variant {
                image_id: image.id.clone(),
                preset,
                sha256: sha,
                content_type: ct.to_string(),
                width: i64::from(w),
                height: i64::from(h),
                size: size as i64,
                created_at: now(),
            };
            let put = self.catalog.put_variant(&v).await;
            self.unpin(pin).await;
            self.caches
                .variants
                .remove(&(v.image_id.clone(), v.preset.clone()));
            self.caches.variant_lists.remove(v.image_id.as_str());
            // A delete of the image that ran while this held the pin (before
            // or after the row went in) found the blob pinned and left it,
            // so it is collected here once the pin is gone; while the row
            // (or anything else) references it, this does nothing. A
            // variant may even be the original's own bytes.
            self.free_blob(&v.sha256).await;
            put?;
            self.metrics.renders.inc();
            out.push(v);
        }
        Ok(out)
    }

    /// Keeps the ThumbHash of the image's current bytes, once: a render
    /// of other presets later does not replace it.
    async fn keep_thumbhash(&self, image: &Image, hash: String) {
        if let Ok(Some(r)) = self.record(THUMBHASH_SCOPE, &image.id).await {
            if r.data.get("sha256").and_then(|v| v.as_str()) == Some(&image.content.sha256) {
                return;
            }
        }
        let record = NewRecord {
            scope: THUMBHASH_SCOPE.into(),
            key: image.id.clone(),
            owner_id: Some(image.owner_id),
            image_id: Some(image.id.clone()),
            data: serde_json::json!({ "thumbhash": hash, "sha256": image.content.sha256 }),
            skey: None,
            skey2: None,
            ref_id: None,
            sort_at: None,
        };
        if let Err(e) = self.put_record(&record).await {
            tracing::warn!("the thumbhash of {} was not kept: {e}", image.id);
        }
    }

    /// The ThumbHash (base64) of an image's current bytes, once a render
    /// has made it.
    pub async fn thumbhash(&self, image: &Image) -> Result<Option<String>, CoreError> {
        if image.content.kind != ImageKind::Picture {
            return Ok(None);
        }
        let record = self.record(THUMBHASH_SCOPE, &image.id).await?;
        Ok(record.and_then(|r| thumbhash_of(image, &r)))
    }

    /// The ThumbHashes of a page of images, in their order, in one query.
    pub async fn thumbhashes(&self, images: &[Image]) -> Result<Vec<Option<String>>, CoreError> {
        let ids: Vec<String> = images
            .iter()
            .filter(|i| i.content.kind == ImageKind::Picture)
            .map(|i| i.id.clone())
            .collect();
        let records: std::collections::HashMap<String, Record> = self
            .catalog
            .records_with_keys(THUMBHASH_SCOPE, &ids)
            .await?
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect();
        Ok(images
            .iter()
            .map(|i| records.get(&i.id).and_then(|r| thumbhash_of(i, r)))
            .collect())
    }

    /// The variants an image has so far (its presets; full-size
    /// conversions and presets in other encodings are served by their own
    /// routes).
    pub async fn variants(&self, image_id: &str) -> Result<Vec<Variant>, CoreError> {
        if let Some(all) = self.caches.variant_lists.get(image_id) {
            return Ok(all);
        }
        let generation = self.caches.variant_lists.generation();
        let mut all = self.catalog.variants(image_id).await?;
        // Presets only: no full-size conversions, no other encodings.
        all.retain(|v| !v.preset.contains(['.', '@']));
        self.caches
            .variant_lists
            .insert(generation, image_id.to_string(), all.clone());
        Ok(all)
    }

    /// The variants of several images (a listing's page) with one catalog
    /// query for those not cached, in the order of `image_ids`.
    pub async fn variants_of(
        &self,
        image_ids: &[String],
    ) -> Result<Vec<(String, Vec<Variant>)>, CoreError> {
        let mut out: Vec<(String, Option<Vec<Variant>>)> = image_ids
            .iter()
            .map(|id| (id.clone(), self.caches.variant_lists.get(id)))
            .collect();
        let missing: Vec<String> = out
            .iter()
            .filter(|(_, v)| v.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if !missing.is_empty() {
            let generation = self.caches.variant_lists.generation();
            let mut found: std::collections::HashMap<String, Vec<Variant>> =
                missing.iter().map(|id| (id.clone(), Vec::new())).collect();
            for v in self.catalog.variants_of(&missing).await? {
                if v.preset.starts_with(CONVERSION_PREFIX) {
                    continue;
                }
                if let Some(list) = found.get_mut(&v.image_id) {
                    list.push(v);
                }
            }
            for (id, list) in out.iter_mut() {
                if list.is_none() {
                    let all = found.get(id.as_str()).cloned().unwrap_or_default();
                    self.caches
                        .variant_lists
                        .insert(generation, id.clone(), all.clone());
                    *list = Some(all);
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|(id, v)| (id, v.unwrap_or_default()))
            .collect())
    }
}

/// The ThumbHash a record keeps for an image, if it was made from the
/// image's current bytes.
fn thumbhash_of(image: &Image, r: &Record) -> Option<String> {
    if r.data.get("sha256").and_then(|v| v.as_str()) != Some(&image.content.sha256) {
        return None;
    }
    r.data
        .get("thumbhash")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}
