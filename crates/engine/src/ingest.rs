use crate::{new_image_id, Engine};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tempfile::TempPath;
use tintype_core::{now, Content, CoreError, Image, ImageKind, NewImage, Refusal, UserId};
use tintype_media::{Format, Kind, MediaError, Probe};
use tokio::io::AsyncWriteExt;

/// Which uploads a use case accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum Accept {
    /// Pictures and disks.
    Any,
    Pictures,
    Disks,
    /// Only these formats.
    Formats(Vec<Format>),
}

impl Accept {
    /// Photographs as cameras, phones and browsers make them: JPEG, PNG,
    /// GIF, WebP, HEIC and AVIF (no SVG, no disks).
    pub fn photos() -> Self {
        Accept::Formats(vec![
            Format::Jpeg,
            Format::Png,
            Format::Gif,
            Format::Webp,
            Format::Heic,
            Format::Avif,
        ])
    }

    fn allows(&self, f: Format) -> bool {
        match self {
            Accept::Any => true,
            Accept::Pictures => f.kind() == Kind::Picture,
            Accept::Disks => f.kind() == Kind::Disk,
            Accept::Formats(list) => list.contains(&f),
        }
    }
}

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub owner: UserId,
    pub name: Option<String>,
    pub metadata: Map<String, Value>,
    pub accept: Accept,
    /// A limit below the configured maximum upload size.
    pub max_bytes: Option<u64>,
}

impl IngestOptions {
    pub fn new(owner: UserId) -> Self {
        IngestOptions {
            owner,
            name: None,
            metadata: Map::new(),
            accept: Accept::Any,
            max_bytes: None,
        }
    }
}

/// How long a pin protects a blob if its writer never removes it (a writer
/// that died). Longer than storing any blob and committing its row takes.
const PIN_TTL: chrono::Duration = chrono::Duration::hours(24);

/// A pending reference to a blob (see [`Engine::store_pinned`]).
#[must_use = "a pin is removed with Engine::unpin once the row is committed"]
pub(crate) struct BlobPin {
    sha256: String,
    id: String,
}

/// A complete upload in a temporary file: size-limited, hashed, probed
/// and pixel-checked, visible to no one. [`Engine::commit`] makes it an
/// image; dropping it removes the file, so a request that fails after
/// staging leaves nothing behind.
pub struct Staged {
    temp: TempPath,
    sha256: String,
    size: u64,
    probe: Probe,
}

impl Staged {
    /// What the probe found (format, dimensions, EXIF).
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    pub fn format(&self) -> Format {
        self.probe.format
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The SHA-256 of the bytes, lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// The one mapping from the media crate's errors to the engine's: what is
/// wrong with the bytes is a [`Refusal`]; our own I/O is internal.
pub(crate) fn media_error(e: MediaError) -> CoreError {
    match e {
        MediaError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Refusal::Undecodable("the file is truncated".into()).into()
        }
        MediaError::Io(e) => CoreError::io("reading the upload", e),
        MediaError::TooLarge(m) => Refusal::TooManyPixels(m).into(),
        MediaError::TooComplex(m) => Refusal::TooComplex(m).into(),
        // Bytes that claim a format but cannot all be decoded (or on which
        // a decoder failed) are media the service cannot take.
        MediaError::Corrupt(m) => Refusal::Undecodable(m).into(),
        MediaError::Unsupported(m) => Refusal::UnknownFormat(m).into(),
        e @ (MediaError::InvalidSpec(_) | MediaError::Encode(_)) => {
            Refusal::NotApplicable(e.to_string()).into()
        }
    }
}

pub(crate) fn content_of(staged: &Staged) -> Content {
    let p = &staged.probe;
    Content {
        sha256: staged.sha256.clone(),
        size: staged.size as i64,
        kind: match p.kind {
            Kind::Picture => ImageKind::Picture,
            Kind::Disk => ImageKind::Disk,
        },
        format: p.format.name().to_string(),
        content_type: p.format.mime().to_string(),
        width: p.width.map(i64::from),
        height: p.height.map(i64::from),
        orientation: p.orientation.map(i64::from),
        exif: p.exif.clone(),
        latitude: p.latitude,
        longitude: p.longitude,
    }
}

impl Engine {
    /// Streams an upload for `opts.owner` into a temporary file while
    /// hashing it and checking its size, then probes and checks it (format
    /// in `opts.accept`, pixels within the limits and decodable). The
    /// owner's quota is checked first, before the body is read. Nothing is
    /// visible to anyone yet: see [`Staged`].
    pub async fn stage<S, E>(&self, body: S, opts: &IngestOptions) -> Result<Staged, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        if let Err(e) = self.check_quota(opts.owner, 1).await {
            self.count_refusal(&e);
            return Err(e);
        }
        self.stage_body(body, &opts.accept, opts.max_bytes).await
    }

    /// [`Engine::stage`] without an owner (no quota check): for bytes that
    /// may replace an existing image's content.
    pub async fn stage_body<S, E>(
        &self,
        body: S,
        accept: &Accept,
        max_bytes: Option<u64>,
    ) -> Result<Staged, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let staged = self.stage_checked(body, accept, max_bytes).await;
        if let Err(e) = &staged {
            self.count_refusal(e);
        }
        staged
    }

    /// Counts a refused upload by its reason (our own failures are not
    /// refusals).
    fn count_refusal(&self, e: &CoreError) {
        let reason = match e {
            CoreError::Refused(r) => r.reason(),
            CoreError::TooLarge { .. } => "too_large",
            CoreError::QuotaExceeded { .. } => "quota_exceeded",
            CoreError::OverBudget { .. } => "over_budget",
            CoreError::Busy { .. } => "busy",
            _ => return,
        };
        self.metrics.refused.with_label_values(&[reason]).inc();
    }

    async fn stage_checked<S, E>(
        &self,
        mut body: S,
        accept: &Accept,
        max_bytes: Option<u64>,
    ) -> Result<Staged, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let limit = max_bytes
            .unwrap_or(u64::MAX)
            .min(self.config.max_upload_bytes);
        let named = tempfile::Builder::new()
            .prefix("upload-")
            .tempfile_in(&self.config.tmp_dir)
            .map_err(|e| CoreError::io("temp file", e))?;
        let (file, temp) = named.into_parts();
        let mut file = tokio::fs::File::from_std(file);
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Refusal::BodyUnreadable(e.to_string()))?;
            size += chunk.len() as u64;
            if size > limit {
                return Err(CoreError::TooLarge { limit });
            }
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|e| CoreError::io("writing the upload", e))?;
        }
        if size == 0 {
            return Err(Refusal::Empty.into());
        }
        file.flush()
            .await
            .map_err(|e| CoreError::io("writing the upload", e))?;
        drop(file);
        self.metrics.ingested_bytes.inc_by(size);
        let path = temp.to_path_buf();
        let limits = self.config.limits.clone();
        // Headers first; then every pixel is decoded (cheaply) inside the
        // decode budget, so a file that ends before its data is refused.
        let probe = {
            let (path, limits) = (path.clone(), limits.clone());
            tokio::task::spawn_blocking(move || tintype_media::probe_headers(&path, &limits))
                .await
                .map_err(CoreError::internal)?
                .map_err(media_error)?
        };
        if !accept.allows(probe.format) {
            return Err(Refusal::NotAccepted(probe.format.name().into()).into());
        }
        let room = self
            .budget
            .acquire(tintype_media::check_memory(&probe))
            .await?;
        let probe = tokio::task::spawn_blocking(move || {
            tintype_media::check_file(&path, &probe, &limits).map(|()| probe)
        })
        .await
        .map_err(CoreError::internal)?
        .map_err(media_error)?;
        drop(room);
        Ok(Staged {
            temp,
            sha256: hex::encode(hasher.finalize()),
            size,
            probe,
        })
    }

    /// Stores a staged upload's blob (content-addressed: the same bytes
    /// are stored once), pinned: the caller commits the row that
    /// references it, then calls [`Engine::unpin`].
    pub(crate) async fn commit_blob(&self, staged: &Staged) -> Result<BlobPin, CoreError> {
        self.store_pinned(&staged.sha256, &staged.temp, staged.size)
            .await
    }

    /// Pins a blob in the catalog, then stores it unless it exists (the
    /// order matters: see tintype-store's docs on garbage collection). The
    /// pin keeps the blob from garbage collection until [`Engine::unpin`]
    /// (call it once the row that references the blob is committed, or
    /// given up) or until it expires.
    pub(crate) async fn store_pinned(
        &self,
        sha256: &str,
        path: &std::path::Path,
        size: u64,
    ) -> Result<BlobPin, CoreError> {
        let pin = BlobPin {
            sha256: sha256.to_string(),
            id: uuid::Uuid::new_v4().simple().to_string(),
        };
        self.catalog
            .pin_blob(&pin.sha256, &pin.id, now() + PIN_TTL)
            .await?;
        if let Err(e) = self.blobs.put_file(sha256, path, size).await {
            self.unpin(pin).await;
            return Err(e.into());
        }
        Ok(pin)
    }

    /// Removes a pin taken by [`Engine::store_pinned`]. A failure only
    /// logs: the pin expires by itself.
    pub(crate) async fn unpin(&self, pin: BlobPin) {
        let mut done = self.catalog.unpin_blob(&pin.sha256, &pin.id).await;
        // On a full disk even removing a row needs room: a pin left behind
        // would keep a later delete from freeing this blob for a day.
        if matches!(done, Err(tintype_core::CatalogError::NoSpace(_)))
            && self.release_space_reserve().await
        {
            done = self.catalog.unpin_blob(&pin.sha256, &pin.id).await;
        }
        if let Err(e) = done {
            tracing::warn!(sha256 = %pin.sha256, "could not remove a blob pin (it expires): {e}");
        }
    }

    /// Checks the owner's images-per-day quota for `n` more images.
    pub async fn check_quota(&self, owner: UserId, n: i64) -> Result<(), CoreError> {
        let Some(user) = self.catalog.user_by_id(owner).await? else {
            return Err(CoreError::NotFound);
        };
        if user.images_per_day <= 0 {
            return Ok(());
        }
        let used = self
            .catalog
            .count_images_since(owner, now() - chrono::Duration::hours(24))
            .await?;
        if used + n > user.images_per_day {
            return Err(CoreError::QuotaExceeded {
                limit: user.images_per_day,
                used,
                requested: n,
            });
        }
        Ok(())
    }

    /// The whole upload use case: [`Engine::stage`] then [`Engine::commit`].
    pub async fn ingest<S, E>(&self, opts: IngestOptions, body: S) -> Result<Image, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let staged = self.stage(body, &opts).await?;
        self.commit(staged, opts).await
    }

    /// Makes a staged upload an image of `opts.owner` named `opts.name`
    /// with `opts.metadata`: stores the blob, commits the catalog row
    /// within the quota, queues the variants. A failure at any step leaves
    /// no image behind.
    pub async fn commit(&self, staged: Staged, opts: IngestOptions) -> Result<Image, CoreError> {
        let pin = self.commit_blob(&staged).await?;
        // The quota is checked again in the catalog, in the insert's
        // transaction, holding the owner's row: concurrent uploads (on any
        // node) all pass the early check, and only those within the quota
        // commit. A refused upload's blob is left to garbage collection.
        let inserted = async {
            let new = NewImage {
                id: new_image_id(),
                owner_id: opts.owner,
                name: opts.name,
                content: content_of(&staged),
                metadata: opts.metadata,
                created_at: now(),
            };
            match self
                .catalog
                .insert_image_within_quota(&new, new.created_at - chrono::Duration::hours(24))
                .await?
            {
                Ok(image) => Ok(image),
                Err(q) => Err(CoreError::QuotaExceeded {
                    limit: q.limit,
                    used: q.used,
                    requested: 1,
                }),
            }
        }
        .await;
        // The row is committed (or refused): the pin has done its work.
        self.unpin(pin).await;
        let image = inserted?;
        self.after_content_change(&image).await?;
        Ok(image)
    }

    /// [`Engine::commit`], then `then` (an API's own bookkeeping, such as
    /// its records); when `then` fails the image is deleted again, so the
    /// request leaves nothing behind. The one place of that rule.
    pub async fn commit_then<T, E>(
        &self,
        staged: Staged,
        opts: IngestOptions,
        then: impl AsyncFnOnce(&Image) -> Result<T, E>,
    ) -> Result<(Image, T), E>
    where
        E: From<CoreError>,
    {
        let image = self.commit(staged, opts).await?;
        match then(&image).await {
            Ok(t) => Ok((image, t)),
            Err(e) => {
                if let Err(d) = self.delete_image(&image.id).await {
                    tracing::error!(image = %image.id, "removing a failed upload: {d}");
                }
                Err(e)
            }
        }
    }

    /// Replaces the bytes of an existing image in place (same id), e.g. a
    /// re-import with changed bytes. Its variants are rendered again.
    pub async fn replace_content<S, E>(
        &self,
        image_id: &str,
        accept: &Accept,
        body: S,
    ) -> Result<Image, CoreError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let staged = self.stage_body(body, accept, None).await?;
        self.replace_with(image_id, staged).await
    }

    /// Replaces the bytes of an existing image with a staged upload.
    pub async fn replace_with(&self, image_id: &str, staged: Staged) -> Result<Image, CoreError> {
        let pin = self.commit_blob(&staged).await?;
        self.caches.forget_image(image_id);
        let replaced = self
            .catalog
            .replace_image_content(image_id, &content_of(&staged))
            .await;
        self.unpin(pin).await;
        self.caches.forget_image(image_id);
        let image = replaced?.ok_or(CoreError::NotFound)?;
        self.after_content_change(&image).await?;
        Ok(image)
    }

    /// Fetches a URL through the guarded fetcher and ingests it.
    pub async fn ingest_url(&self, opts: IngestOptions, url: &str) -> Result<Image, CoreError> {
        let resp = self.fetch(url).await?;
        self.ingest(opts, resp.body).await
    }

    /// Fetches a URL through the guard (for callers that decide themselves
    /// what to do with the bytes, e.g. compare before replacing).
    pub async fn fetch(&self, url: &str) -> Result<tintype_fetch::FetchResponse, CoreError> {
        self.fetcher
            .get(url)
            .await
            .map_err(|e| Refusal::FetchFailed(e.to_string()).into())
    }
}
