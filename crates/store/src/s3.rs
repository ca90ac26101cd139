//! Blobs in an S3-compatible object store (AWS S3, Garage, MinIO, …).
//!
//! Configured from `s3://BUCKET?endpoint=http://127.0.0.1:3900&region=garage`
//! with credentials (and anything else `AmazonS3Builder::from_env` reads)
//! from the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! optionally `AWS_SESSION_TOKEN`. Requests use path-style addressing so
//! self-hosted servers work without wildcard DNS.
//!
//! Objects are keyed like the directory store: `sha256/ab/cd/<hex>`. An
//! object only becomes visible once its PUT (or multipart completion) has
//! succeeded, so readers never see half a blob.
//!
//! Storing bytes that exist already is a HEAD and nothing else: the
//! object's time is not refreshed (that would take a copy onto itself).
//! What keeps such an object from garbage collection, across nodes, is the
//! writer's pin in the shared catalog (see the crate docs).

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, PutPayload, WriteMultipart};
use std::path::Path;
use std::sync::Arc;
use tintype_core::{valid_key, BlobError, BlobMeta, BlobStore, BlobStream, ByteRange, LocalFile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bodies up to this size go up in one PUT; larger ones as multipart
/// uploads of parts this size, read from the file one part at a time.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts in flight at once during a multipart upload (bounds memory to
/// about `PART_SIZE * (MAX_PARTS_IN_FLIGHT + 1)`).
const MAX_PARTS_IN_FLIGHT: usize = 2;

/// Where an `s3://` spec points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Spec {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
}

impl S3Spec {
    /// Parses `s3://bucket?endpoint=URL&region=NAME` (both parameters
    /// optional; without an endpoint the store is AWS S3 itself).
    pub fn parse(spec: &str) -> Result<S3Spec, String> {
        let url = url::Url::parse(spec).map_err(|e| format!("blob store {spec:?}: {e}"))?;
        if url.scheme() != "s3" {
            return Err(format!("blob store {spec:?}: expected an s3:// URL"));
        }
        let bucket = url.host_str().unwrap_or("").to_string();
        if bucket.is_empty() {
            return Err(format!("blob store {spec:?}: no bucket name"));
        }
        if !matches!(url.path(), "" | "/") {
            return Err(format!(
                "blob store {spec:?}: key prefixes are not supported; use a bucket of its own"
            ));
        }
        let mut out = S3Spec {
            bucket,
            endpoint: None,
            region: None,
        };
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "endpoint" => out.endpoint = Some(v.into_owned()),
                "region" => out.region = Some(v.into_owned()),
                other => {
                    return Err(format!(
                        "blob store {spec:?}: unknown parameter {other:?} (known: endpoint, region)"
                    ))
                }
            }
        }
        Ok(out)
    }
}

pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    bucket: String,
}

impl S3BlobStore {
    /// Opens the store named by an `s3://` spec (see [`S3Spec::parse`]).
    /// Nothing is contacted yet; call [`BlobStore::ping`] to check access.
    pub fn open(spec: &str) -> Result<S3BlobStore, String> {
        let spec = S3Spec::parse(spec)?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&spec.bucket)
            .with_virtual_hosted_style_request(false);
        if let Some(endpoint) = &spec.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &spec.region {
            builder = builder.with_region(region);
        }
        let store = builder
            .build()
            .map_err(|e| format!("S3 bucket {}: {e}", spec.bucket))?;
        Ok(S3BlobStore {
            store: Arc::new(store),
            bucket: spec.bucket,
        })
    }

    fn key(sha256: &str) -> Result<ObjectPath, BlobError> {
        if !valid_key(sha256) {
            return Err(BlobError::InvalidKey(sha256.to_string()));
        }
        Ok(ObjectPath::from(format!(
            "sha256/{}/{}/{}",
            &sha256[0..2],
            &sha256[2..4],
            sha256
        )))
    }

    fn backend(&self, what: &str, e: object_store::Error) -> BlobError {
        let msg = format!("S3 bucket {}: {what}: {e}", self.bucket);
        // A server out of space answers 507 Insufficient Storage or an
        // error naming ENOSPC.
        let text = e.to_string();
        if text.contains("Insufficient Storage")
            || text.contains("InsufficientStorage")
            || text.contains("No space left")
        {
            BlobError::NoSpace(msg)
        } else {
            BlobError::Backend(msg)
        }
    }

    fn map_err(&self, sha256: &str, what: &str, e: object_store::Error) -> BlobError {
        match e {
            object_store::Error::NotFound { .. } => BlobError::NotFound(sha256.to_string()),
            e => self.backend(what, e),
        }
    }

    async fn put_multipart(
        &self,
        key: &ObjectPath,
        file: &mut tokio::fs::File,
    ) -> Result<(), BlobError> {
        let upload = self
            .store
            .put_multipart(key)
            .await
            .map_err(|e| self.backend("starting multipart upload", e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            let n = match read_full(file, &mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(BlobError::Io(e));
                }
            };
            if n == 0 {
                break;
            }
            if let Err(e) = writer.wait_for_capacity(MAX_PARTS_IN_FLIGHT).await {
                let _ = writer.abort().await;
                return Err(self.backend("uploading part", e));
            }
            writer.write(&buf[..n]);
        }
        writer
            .finish()
            .await
            .map_err(|e| self.backend("completing multipart upload", e))?;
        Ok(())
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = file.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

fn meta_of(sha256: String, m: &object_store::ObjectMeta) -> BlobMeta {
    BlobMeta {
        sha256,
        size: m.size,
        modified: m.last_modified.timestamp(),
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    fn backend_name(&self) -> &'static str {
        "s3"
    }

    async fn ping(&self) -> Result<(), BlobError> {
        // A HEAD of a key that never exists: NotFound proves the bucket is
        // reachable and the credentials are accepted.
        match self.store.head(&ObjectPath::from("sha256/ping")).await {
            Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend("ping", e)),
        }
    }

    async fn put_file(&self, sha256: &str, path: &Path, size: u64) -> Result<(), BlobError> {
        let key = Self::key(sha256)?;
        if self.head(sha256).await?.is_some() {
            return Ok(());
        }
        let mut file = tokio::fs::File::open(path).await?;
        let actual = file.metadata().await?.len();
        if actual != size {
            return Err(BlobError::Backend(format!(
                "blob {sha256}: file {} has {actual} bytes, expected {size}",
                path.display()
            )));
        }
        if size <= PART_SIZE as u64 {
            let mut body = Vec::with_capacity(size as usize);
            file.read_to_end(&mut body).await?;
            self.store
                .put(&key, PutPayload::from(body))
                .await
                .map_err(|e| self.backend("put", e))?;
            Ok(())
        } else {
            self.put_multipart(&key, &mut file).await
        }
    }

    async fn head(&self, sha256: &str) -> Result<Option<BlobMeta>, BlobError> {
        let key = Self::key(sha256)?;
        match self.store.head(&key).await {
            Ok(m) => Ok(Some(meta_of(sha256.to_string(), &m))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.backend("head", e)),
        }
    }

    async fn get(&self, sha256: &str, range: Option<ByteRange>) -> Result<BlobStream, BlobError> {
        let key = Self::key(sha256)?;
        let opts = GetOptions {
            range: range.map(|r| GetRange::Bounded(r.start..r.end + 1)),
            ..GetOptions::default()
        };
        let res = self
            .store
            .get_opts(&key, opts)
            .await
            .map_err(|e| self.map_err(sha256, "get", e))?;
        Ok(res.into_stream().map_err(std::io::Error::other).boxed())
    }

    async fn local_file(&self, sha256: &str, tmp_dir: &Path) -> Result<LocalFile, BlobError> {
        let mut stream = self.get(sha256, None).await?;
        tokio::fs::create_dir_all(tmp_dir).await?;
        let path = tmp_dir.join(format!("s3-{sha256}.{}", uuid::Uuid::new_v4().simple()));
        // Removed again on drop, including when the download fails below.
        let local = LocalFile::temporary(path.clone());
        let mut f = tokio::fs::File::create(&path).await?;
        while let Some(chunk) = stream.next().await {
            f.write_all(&chunk?).await?;
        }
        f.flush().await?;
        Ok(local)
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        let key = Self::key(sha256)?;
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.backend("delete", e)),
        }
    }

    async fn list(&self) -> Result<Vec<BlobMeta>, BlobError> {
        let prefix = ObjectPath::from("sha256");
        let mut stream = self.store.list(Some(&prefix));
        let mut out = Vec::new();
        while let Some(m) = stream.next().await {
            let m = m.map_err(|e| self.backend("list", e))?;
            let Some(name) = m.location.filename() else {
                continue;
            };
            if !valid_key(name) {
                continue;
            }
            let name = name.to_string();
            // Only keys in their proper place count as blobs.
            if Self::key(&name).ok().as_ref() != Some(&m.location) {
                continue;
            }
            out.push(meta_of(name, &m));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let s = S3Spec::parse("s3://pics?endpoint=http://127.0.0.1:3900&region=garage").unwrap();
        assert_eq!(s.bucket, "pics");
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(s.region.as_deref(), Some("garage"));
        let s = S3Spec::parse("s3://pics").unwrap();
        assert_eq!((s.endpoint, s.region), (None, None));
        assert!(S3Spec::parse("s3://").is_err());
        assert!(S3Spec::parse("s3://pics/prefix").is_err());
        assert!(S3Spec::parse("s3://pics?endpont=x").is_err());
        assert!(S3Spec::parse("gs://pics").is_err());
    }

    #[test]
    fn keys_like_the_directory_store() {
        let k = "ab".repeat(32);
        assert_eq!(
            S3BlobStore::key(&k).unwrap().as_ref(),
            format!("sha256/ab/ab/{k}")
        );
        assert!(S3BlobStore::key("../etc").is_err());
    }
}
