use crate::Engine;
use serde_json::{Map, Value};
use tintype_core::{
    to_millis, BlobStream, ByteRange, CoreError, Image, ImageCursor, Principal, Scope, Timestamp,
    UserId,
};

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
    pub async fn image(&self, id: &str) -> Result<Image, CoreError> {
        self.catalog
            .image_by_id(id)
            .await?
            .ok_or(CoreError::NotFound)
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
        self.catalog
            .update_image_fields(id, name, metadata)
            .await?
            .ok_or(CoreError::NotFound)
    }

    /// Deletes an image and everything tied to it. Its blobs stay until
    /// garbage collection finds them unreferenced.
    pub async fn delete_image(&self, id: &str) -> Result<(), CoreError> {
        if self.catalog.delete_image(id).await? {
            Ok(())
        } else {
            Err(CoreError::NotFound)
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

    /// Sets (or clears) the user's profile picture.
    pub async fn set_profile_image(
        &self,
        user: UserId,
        image_id: Option<&str>,
    ) -> Result<(), CoreError> {
        self.catalog.set_profile_image(user, image_id).await?;
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
