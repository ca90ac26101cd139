//! Garbage collection and the consistency check (`tintype gc`,
//! `tintype check`).
//!
//! Collection never removes a blob that a committed or committing row
//! references, whatever runs at the same time (uploads of the same bytes,
//! deletes, other collections, other nodes). Writers pin a blob in the
//! catalog before they look whether it exists ([`Engine::store_pinned`],
//! in ingest), and each deletion here goes through
//! [`Catalog::collect_blob`](tintype_core::Catalog::collect_blob), which
//! checks references and pins and deletes under the blob's lock, which a
//! pin waits for. tintype-store's crate docs give the whole argument. The
//! grace period is a second line of defence, not the protection.

use crate::Engine;
use futures::{FutureExt, StreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tintype_core::{now, BlobError, Collected, CoreError};

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GcReport {
    pub blobs: u64,
    pub removed: u64,
    pub removed_bytes: u64,
    pub kept_young: u64,
    /// Unreferenced blobs kept because an upload had pinned them.
    pub kept_pinned: u64,
    /// Expired pins removed (left by writers that died).
    pub expired_pins: u64,
    /// A dry run: nothing was removed or expired.
    pub dry_run: bool,
    /// In a dry run: the blobs a collection would remove now...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_remove: Option<Vec<GcCandidate>>,
    /// ...and the bytes that would free.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_free_bytes: Option<u64>,
}

/// A blob a collection would remove now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GcCandidate {
    pub sha256: String,
    pub bytes: u64,
}

/// What `tintype check` found.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct CheckReport {
    pub images: u64,
    pub variants: u64,
    /// Blobs in the store.
    pub blobs: u64,
    /// Blobs no image or variant references (garbage collection's work).
    pub orphans: u64,
    pub orphan_bytes: u64,
    /// Images whose original is missing, then variants whose blob is.
    pub missing: Vec<Problem>,
    /// Blobs whose content does not hash to their name (or size differs).
    pub corrupt: Vec<Problem>,
    /// Catalog rows removed by `--repair`.
    pub repaired: u64,
}

impl CheckReport {
    /// Whether the check found nothing left to fix.
    pub fn clean(&self) -> bool {
        self.corrupt.is_empty() && self.missing.len() as u64 == self.repaired
    }
}

/// One missing or corrupt blob and the row that needs it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    pub image_id: String,
    /// The variant's preset, or None for the original.
    pub preset: Option<String>,
    pub sha256: String,
    /// For a corrupt blob: what its content hashes to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_sha256: Option<String>,
    /// Whether `--repair` removed the row.
    pub repaired: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.preset {
            None => write!(
                f,
                "image {} (original, blob {})",
                self.image_id, self.sha256
            )?,
            Some(p) => write!(
                f,
                "image {} variant {p} (blob {})",
                self.image_id, self.sha256
            )?,
        }
        if let Some(a) = &self.actual_sha256 {
            write!(f, ": its content hashes to {a}")?;
        }
        Ok(())
    }
}

/// Where a `gc` or `check` run is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maintenance {
    /// Images checked so far (their number is not known up front).
    Images { done: u64 },
    /// Blobs of the store looked at so far, of `total`.
    Blobs { done: u64, total: u64 },
}

/// A progress callback; called from the running task.
pub type OnProgress<'a> = &'a (dyn Fn(Maintenance) + Send + Sync);

/// Images read per catalog query during a check.
/// Images (and blobs) checked at once.
const CHECK_CONCURRENCY: usize = 8;

const CHECK_PAGE: i64 = 500;

impl Engine {
    /// Removes blobs that no image or variant references and no upload has
    /// pinned. Blobs younger than the grace period are kept as well. Safe
    /// while serving, and with several nodes.
    pub async fn gc(&self) -> Result<GcReport, CoreError> {
        self.collect(false, &|_| {}).await
    }

    /// What [`Engine::gc`] would remove now, removing nothing. (A blob an
    /// upload pins meanwhile would still be kept by the real run.)
    pub async fn gc_dry_run(&self) -> Result<GcReport, CoreError> {
        self.collect(true, &|_| {}).await
    }

    /// [`Engine::gc`] (or its dry run), telling `progress` of each blob
    /// looked at.
    pub async fn gc_with_progress(
        &self,
        dry_run: bool,
        progress: OnProgress<'_>,
    ) -> Result<GcReport, CoreError> {
        self.collect(dry_run, progress).await
    }

    async fn collect(
        &self,
        dry_run: bool,
        progress: OnProgress<'_>,
    ) -> Result<GcReport, CoreError> {
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let mut would = Vec::new();
        if !dry_run {
            report.expired_pins = self.catalog.expire_blob_pins(now()).await?;
        }
        let cutoff = chrono::Utc::now().timestamp() - self.config.gc_grace.as_secs() as i64;
        let listed = self.blobs.list().await?;
        let total = listed.len() as u64;
        for b in listed {
            report.blobs += 1;
            progress(Maintenance::Blobs {
                done: report.blobs,
                total,
            });
            // A cheap first pass without the lock; the decision is made
            // again under it.
            if self.catalog.blob_referenced(&b.sha256).await? {
                continue;
            }
            if b.modified > cutoff {
                report.kept_young += 1;
                continue;
            }
            if dry_run {
                would.push(GcCandidate {
                    sha256: b.sha256.clone(),
                    bytes: b.size,
                });
                continue;
            }
            let blobs = self.blobs.clone();
            let sha = b.sha256.clone();
            let delete = async move { blobs.delete(&sha).await }.boxed();
            match self.catalog.collect_blob(&b.sha256, now(), delete).await? {
                Collected::Referenced => {}
                Collected::Pinned => report.kept_pinned += 1,
                Collected::Deleted => {
                    self.caches.blobs.remove(&b.sha256);
                    report.removed += 1;
                    report.removed_bytes += b.size;
                }
                Collected::Failed(e) => return Err(e.into()),
            }
        }
        if dry_run {
            report.would_free_bytes = Some(would.iter().map(|c| c.bytes).sum());
            report.would_remove = Some(would);
        }
        Ok(report)
    }

    /// Deletes one blob now if nothing references or pins it (the same
    /// protocol as [`Engine::gc`], without the grace period): for a caller
    /// that must free space at once, e.g. after deleting an image. Whether
    /// it was deleted.
    pub async fn remove_blob_if_unused(&self, sha256: &str) -> Result<bool, CoreError> {
        let blobs = self.blobs.clone();
        let sha = sha256.to_string();
        let delete = async move { blobs.delete(&sha).await }.boxed();
        match self.catalog.collect_blob(sha256, now(), delete).await? {
            Collected::Deleted => {
                self.caches.blobs.remove(sha256);
                Ok(true)
            }
            Collected::Referenced | Collected::Pinned => Ok(false),
            Collected::Failed(e) => Err(e.into()),
        }
    }

    /// Checks that every image's original exists and hashes to its
    /// SHA-256, that every variant's blob does too, and counts the blobs
    /// nothing references. With `repair`, removes the catalog rows whose
    /// blob is missing (an image with a missing original, with its
    /// variants and records; a variant with a missing blob). Corrupt blobs
    /// are only reported. Reads each blob as a stream (memory stays flat).
    pub async fn check(&self, repair: bool) -> Result<CheckReport, CoreError> {
        self.check_with_progress(repair, &|_| {}).await
    }

    /// [`Engine::check`], telling `progress` of each image checked, then
    /// of each blob counted.
    pub async fn check_with_progress(
        &self,
        repair: bool,
        progress: OnProgress<'_>,
    ) -> Result<CheckReport, CoreError> {
        let mut report = CheckReport::default();
        let mut after = 0i64;
        loop {
            let page = self.catalog.images_after(after, CHECK_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            // A few images at a time: each check is a read of whole blobs,
            // which on S3 is a round trip worth overlapping.
            let mut checks = futures::stream::iter(page)
                .map(|image| self.check_image(image, repair))
                .buffer_unordered(CHECK_CONCURRENCY);
            while let Some(one) = checks.next().await {
                let one = one?;
                report.images += one.images;
                progress(Maintenance::Images {
                    done: report.images,
                });
                report.variants += one.variants;
                report.repaired += one.repaired;
                report.missing.extend(one.missing);
                report.corrupt.extend(one.corrupt);
            }
        }
        let blobs = self.blobs.list().await?;
        report.blobs = blobs.len() as u64;
        let total = report.blobs;
        let mut done = 0u64;
        let mut refs = futures::stream::iter(blobs)
            .map(|b| async move {
                let referenced = self.catalog.blob_referenced(&b.sha256).await?;
                Ok::<_, CoreError>((referenced, b.size))
            })
            .buffer_unordered(CHECK_CONCURRENCY);
        while let Some(r) = refs.next().await {
            let (referenced, size) = r?;
            done += 1;
            progress(Maintenance::Blobs { done, total });
            if !referenced {
                report.orphans += 1;
                report.orphan_bytes += size;
            }
        }
        Ok(report)
    }

    /// One image's part of [`Engine::check`]: its original, then its variants.
    async fn check_image(
        &self,
        image: tintype_core::Image,
        repair: bool,
    ) -> Result<CheckReport, CoreError> {
        let mut report = CheckReport::default();
        report.images += 1;
        let mut original = Problem {
            image_id: image.id.clone(),
            preset: None,
            sha256: image.content.sha256.clone(),
            actual_sha256: None,
            repaired: false,
        };
        match self.verify_blob(&image.content.sha256).await? {
            Verdict::Ok => {}
            Verdict::Missing => {
                // Deleted or replaced meanwhile: not a problem.
                if !self.still_missing_image(&image).await? {
                    return Ok(report);
                }
                if repair && self.catalog.delete_image(&image.id).await?.is_some() {
                    self.caches.forget_image(&image.id);
                    original.repaired = true;
                    report.repaired += 1;
                }
                report.missing.push(original);
                return Ok(report);
            }
            Verdict::Corrupt(actual) => {
                original.actual_sha256 = Some(actual);
                report.corrupt.push(original);
            }
        }
        for v in self.catalog.variants(&image.id).await? {
            report.variants += 1;
            let mut p = Problem {
                image_id: image.id.clone(),
                preset: Some(v.preset.clone()),
                sha256: v.sha256.clone(),
                actual_sha256: None,
                repaired: false,
            };
            match self.verify_blob(&v.sha256).await? {
                Verdict::Ok => {}
                Verdict::Missing => {
                    if !self.still_missing_variant(&v).await? {
                        continue;
                    }
                    // Rendered again on demand once removed.
                    if repair && self.catalog.delete_variant(&v.image_id, &v.preset).await? {
                        self.caches
                            .variants
                            .remove(&(v.image_id.clone(), v.preset.clone()));
                        self.caches.variant_lists.remove(v.image_id.as_str());
                        p.repaired = true;
                        report.repaired += 1;
                    }
                    report.missing.push(p);
                }
                Verdict::Corrupt(actual) => {
                    p.actual_sha256 = Some(actual);
                    report.corrupt.push(p);
                }
            }
        }
        Ok(report)
    }

    /// Streams a blob through SHA-256.
    async fn verify_blob(&self, sha256: &str) -> Result<Verdict, CoreError> {
        let mut stream = match self.blobs.get(sha256, None).await {
            Ok(s) => s,
            Err(BlobError::NotFound(_)) => return Ok(Verdict::Missing),
            Err(e) => return Err(e.into()),
        };
        let mut h = Sha256::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(c) => h.update(&c),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verdict::Missing),
                Err(e) => return Err(BlobError::Io(e).into()),
            }
        }
        let actual = hex::encode(h.finalize());
        Ok(if actual == sha256 {
            Verdict::Ok
        } else {
            Verdict::Corrupt(actual)
        })
    }

    /// Whether the image still names that blob and the blob is still
    /// gone (it may have been deleted, replaced or uploaded again since it
    /// was read).
    async fn still_missing_image(&self, image: &tintype_core::Image) -> Result<bool, CoreError> {
        match self.catalog.image_by_id(&image.id).await? {
            Some(current) if current.content.sha256 == image.content.sha256 => {}
            _ => return Ok(false),
        }
        Ok(self.blobs.head(&image.content.sha256).await?.is_none())
    }

    /// The same for a variant.
    async fn still_missing_variant(&self, v: &tintype_core::Variant) -> Result<bool, CoreError> {
        match self.catalog.variant(&v.image_id, &v.preset).await? {
            Some(current) if current.sha256 == v.sha256 => {}
            _ => return Ok(false),
        }
        Ok(self.blobs.head(&v.sha256).await?.is_none())
    }
}

enum Verdict {
    Ok,
    Missing,
    Corrupt(String),
}
