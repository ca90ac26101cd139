use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub type BlobStream = BoxStream<'static, std::io::Result<Bytes>>;

#[derive(Debug, Error)]
pub enum BlobError {
    #[error("blob {0} not found")]
    NotFound(String),
    #[error("invalid blob key {0}")]
    InvalidKey(String),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("backend: {0}")]
    Backend(String),
    /// The store has no room for the bytes (a full disk, a quota).
    #[error("no space left: {0}")]
    NoSpace(String),
}

/// Whether an I/O error means "no space left" (ENOSPC, or a disk quota).
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl BlobError {
    /// An I/O error, as `NoSpace` when the disk is full.
    pub fn io(e: std::io::Error) -> Self {
        if is_no_space(&e) {
            BlobError::NoSpace(e.to_string())
        } else {
            BlobError::Io(e)
        }
    }
}

/// An inclusive byte range, already checked against the blob's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// How many bytes the range covers (none when `end < start`).
    pub fn len(&self) -> u64 {
        if self.is_empty() {
            0
        } else {
            self.end - self.start + 1
        }
    }

    pub fn is_empty(&self) -> bool {
        self.end < self.start
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BlobMeta {
    pub sha256: String,
    pub size: u64,
    /// Seconds since the epoch when the blob was written.
    pub modified: i64,
}

/// A blob available as a local file, for the media code that needs a path.
/// A temporary copy is removed when this is dropped.
#[derive(Debug)]
pub struct LocalFile {
    path: PathBuf,
    temporary: bool,
}

impl LocalFile {
    pub fn direct(path: PathBuf) -> Self {
        LocalFile {
            path,
            temporary: false,
        }
    }
    pub fn temporary(path: PathBuf) -> Self {
        LocalFile {
            path,
            temporary: true,
        }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for LocalFile {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Immutable, content-addressed storage keyed by SHA-256 (lowercase hex).
#[async_trait]
pub trait BlobStore: Send + Sync {
    fn backend_name(&self) -> &'static str;
    async fn ping(&self) -> Result<(), BlobError>;
    /// Stores the complete file at `path` under `sha256`. The file may be
    /// moved (consumed). Storing a blob that exists already is a no-op.
    async fn put_file(&self, sha256: &str, path: &Path, size: u64) -> Result<(), BlobError>;
    async fn head(&self, sha256: &str) -> Result<Option<BlobMeta>, BlobError>;
    /// The blob's bytes, or the inclusive range of them.
    async fn get(&self, sha256: &str, range: Option<ByteRange>) -> Result<BlobStream, BlobError>;
    /// The blob as a local file; a temporary copy under `tmp_dir` if the
    /// store is not local.
    async fn local_file(&self, sha256: &str, tmp_dir: &Path) -> Result<LocalFile, BlobError>;
    async fn delete(&self, sha256: &str) -> Result<(), BlobError>;
    async fn list(&self) -> Result<Vec<BlobMeta>, BlobError>;
}

/// Whether `s` is a well-formed blob key (64 lowercase hex digits).
pub fn valid_key(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::ByteRange;

    #[test]
    fn a_range_counts_its_bytes_and_an_inverted_one_is_empty() {
        let r = ByteRange {
            start: 0,
            end: 1023,
        };
        assert_eq!((r.len(), r.is_empty()), (1024, false));
        let one = ByteRange { start: 7, end: 7 };
        assert_eq!((one.len(), one.is_empty()), (1, false));
        let inverted = ByteRange { start: 8, end: 7 };
        assert_eq!((inverted.len(), inverted.is_empty()), (0, true));
    }
}
