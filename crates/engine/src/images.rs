use crate::Engine;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde_json::{Map, Value};
use tintype_core::{
    to_millis, BlobStream, ByteRange, CatalogError, CoreError, Image, ImageCursor, Principal,
    Scope, Timestamp, UserId,
};

/// Size of the space reserve: room for a delete to commit on a full disk.
pub const SPACE_RESERVE_BYTES: u64 = 1024 * 1024;

/// What the HTTP layer needs to serve stored bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct BlobRef {
    pub sha256: String,
    pub size: u64,
    pub content_type: String,
    pub modified: Timestamp,
}

impl BlobRef {
    pub fn of_variant(v: &tintype_core::Variant) -> Self {
        BlobRef {
            sha256: v.sha256.clone(),
            size: v.size.max(0) as u64,
            content_type: v.content_type.clone(),
            modified: v.created_at,
        }
    }

    pub fn of_image(i: &Image) -> Self {
        BlobRef {
            sha256: i.content.sha256.clone(),
            size: i.content.size.max(0) as u64,
            content_type: i.content.content_type.clone(),
            modified: i.updated_at,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ImagePage {
    pub images: Vec<Image>,
    /// Opaque cursor for the next page, when there may be one.
    pub next: Option<String>,
}

fn encode_cursor(i: &Image) -> String {
    format!("{}.{}", to_millis(i.created_at), i.seq)
}

fn decode_cursor(s: &str) -> Option<ImageCursor> {
    let (a, b) = s.split_once('.')?;
    Some(ImageCursor {
        created_at_ms: a.parse().ok()?,
        seq: b.parse().ok()?,
    })
}

impl Engine {
    /// An image by id, whoever owns it (for public serving paths).
    /// Cached (see `cache`): no catalog round trip once warm.
    pub async fn image(&self, id: &str) -> Result<Image, CoreError> {
        if let Some(i) = self.caches.images.get(id) {
            return Ok(i);
        }
        let generation = self.caches.images.generation();
        let img = self
            .catalog
            .image_by_id(id)
            .await?
            .ok_or(CoreError::NotFound)?;
        self.caches
            .images
            .insert(generation, id.to_string(), img.clone());
        Ok(img)
    }

    pub async fn image_by_seq(&self, seq: i64) -> Result<Image, CoreError> {
        self.catalog
            .image_by_seq(seq)
            .await?
            .ok_or(CoreError::NotFound)
    }

    /// An image the principal owns; another user's image is NotFound, so
    /// its existence is never revealed.
    pub async fn owned_image(&self, who: &Principal, id: &str) -> Result<Image, CoreError> {
        let img = self.image(id).await?;
        if img.owner_id != who.user.id && !who.has(Scope::Admin) {
            return Err(CoreError::NotFound);
        }
        Ok(img)
    }

    pub async fn list_images(
        &self,
        owner: UserId,
        cursor: Option<&str>,
        limit: i64,
    ) -> Result<ImagePage, CoreError> {
        let after = match cursor {
            None | Some("") => None,
            Some(c) => {
                Some(decode_cursor(c).ok_or_else(|| CoreError::Invalid("invalid cursor".into()))?)
            }
        };
        let limit = limit.clamp(1, 1000);
        let mut images = self.catalog.list_images(owner, after, limit + 1).await?;
        let more = images.len() as i64 > limit;
        images.truncate(limit as usize);
        let next = if more {
            images.last().map(encode_cursor)
        } else {
            None
        };
        Ok(ImagePage { images, next })
    }

    pub async fn update_image(
        &self,
        id: &str,
        name: Option<Option<&str>>,
        metadata: Option<&Map<String, Value>>,
    ) -> Result<Image, CoreError> {
        self.caches.images.remove(id);
        let r = self.catalog.update_image_fields(id, name, metadata).await;
        self.caches.images.remove(id);
        r?.ok_or(CoreError::NotFound)
    }

    /// Deletes an image and everything tied to it, then removes its blobs
    /// (original and variants) that no other image references, so that a
    /// delete frees space at once (a user can dig out of a full disk).
    /// Garbage collection still sweeps whatever this leaves behind. When
    /// the catalog is too full to commit even the delete, the space reserve
    /// is given up and the delete tried once more.
    pub async fn delete_image(&self, id: &str) -> Result<(), CoreError> {
        // Forgotten before and after: a lookup running meanwhile cannot put
        // the image back into the caches (see cache generations).
        self.caches.forget_image(id);
        let deleted = async {
            match self.catalog.delete_image(id).await {
                Err(CatalogError::NoSpace(m)) => {
                    if !self.release_space_reserve().await {
                        return Err(CoreError::NoSpace(m));
                    }
                    tracing::warn!(
                        "the disk is full: gave up the space reserve to delete an image"
                    );
                    Ok(self.catalog.delete_image(id).await?)
                }
                other => Ok(other?),
            }
        }
        .await;
        self.caches.forget_image(id);
        let Some(blobs) = deleted? else {
            return Err(CoreError::NotFound);
        };
        for sha in blobs {
            // The image is gone whatever happens here: a failure only
            // leaves the blob to garbage collection.
            self.free_blob(&sha).await;
        }
        self.ensure_space_reserve().await;
        Ok(())
    }

    /// Removes a blob that nothing references any more, through the
    /// collection protocol (an upload of the same bytes may have pinned
    /// it), giving up the space reserve when the disk is too full for even
    /// that. Best effort: a failure only logs, and garbage collection
    /// sweeps the blob later.
    pub(crate) async fn free_blob(&self, sha: &str) {
        let mut removed = self.remove_blob_if_unused(sha).await;
        // The collection writes to the catalog too: on a full disk it may
        // need the reserve that the row's delete did not.
        if matches!(removed, Err(CoreError::NoSpace(_))) && self.release_space_reserve().await {
            removed = self.remove_blob_if_unused(sha).await;
        }
        if let Err(e) = removed {
            tracing::warn!("removing the unreferenced blob {sha}: {e:?}");
        }
    }

    /// Makes sure the space reserve exists (the server calls this at start;
    /// deletes call it again). Best effort: on a full disk it stays absent
    /// until there is room.
    pub async fn ensure_space_reserve(&self) {
        let Some(path) = self.config.space_reserve.clone() else {
            return;
        };
        let r = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if std::fs::metadata(&path).is_ok_and(|m| m.len() == SPACE_RESERVE_BYTES) {
                return Ok(());
            }
            let tmp = path.with_extension("partial");
            let written = (|| {
                use std::io::Write;
                let mut f = std::fs::File::create(&tmp)?;
                let chunk = vec![0u8; 64 * 1024];
                let mut left = SPACE_RESERVE_BYTES;
                while left > 0 {
                    let n = left.min(chunk.len() as u64) as usize;
                    f.write_all(chunk.get(..n).unwrap_or_default())?;
                    left -= n as u64;
                }
                f.sync_all()?;
                std::fs::rename(&tmp, &path)
            })();
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            written
        })
        .await;
        if let Ok(Err(e)) = r {
            tracing::debug!("the space reserve is not in place: {e}");
        }
    }

    /// Removes the space reserve; false when there was none.
    pub(crate) async fn release_space_reserve(&self) -> bool {
        match &self.config.space_reserve {
            Some(p) => tokio::fs::remove_file(p).await.is_ok(),
            None => false,
        }
    }

    /// Opens stored bytes, whole or a range.
    pub async fn open_blob(
        &self,
        sha256: &str,
        range: Option<ByteRange>,
    ) -> Result<BlobStream, CoreError> {
        Ok(self.blobs.get(sha256, range).await?)
    }

    /// The whole bytes of a small blob (at most `cache::SMALL_BLOB_MAX`),
    /// from memory once read; None for a larger one. Blobs are named by
    /// their SHA-256, so what is kept is never stale.
    pub async fn small_blob(&self, sha256: &str, size: u64) -> Result<Option<Bytes>, CoreError> {
        if size > self.caches.blobs.max_blob() {
            return Ok(None);
        }
        if let Some(b) = self.caches.blobs.get(sha256) {
            return Ok(Some(b));
        }
        let mut stream = self.blobs.get(sha256, None).await?;
        let mut buf = BytesMut::with_capacity(size as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(CoreError::internal)?;
            if (buf.len() + chunk.len()) as u64 > self.caches.blobs.max_blob() {
                return Ok(None); // not the size the catalog says
            }
            buf.extend_from_slice(&chunk);
        }
        let b = buf.freeze();
        if b.len() as u64 != size {
            return Ok(None);
        }
        self.caches.blobs.insert(sha256, b.clone());
        Ok(Some(b))
    }

    /// Sets (or clears) the user's profile picture.
    pub async fn set_profile_image(
        &self,
        user: UserId,
        image_id: Option<&str>,
    ) -> Result<(), CoreError> {
        let r = self.catalog.set_profile_image(user, image_id).await;
        self.caches.forget_user(user);
        r?;
        Ok(())
    }

    /// Images uploaded by the owner in the last 24 hours.
    pub async fn images_last_day(&self, owner: UserId) -> Result<i64, CoreError> {
        Ok(self
            .catalog
            .count_images_since(owner, tintype_core::now() - chrono::Duration::hours(24))
            .await?)
    }
}
