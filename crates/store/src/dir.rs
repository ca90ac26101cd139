use async_trait::async_trait;
use futures::StreamExt;
use std::path::{Path, PathBuf};
use tintype_core::{valid_key, BlobError, BlobMeta, BlobStore, BlobStream, ByteRange, LocalFile};
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

/// Blobs as files under `root/sha256/ab/cd/<hex>`. A blob is first complete
/// and fsynced under a temporary name in this process's own directory
/// under `root/incoming` (see [`crate::staging`]), then renamed into place,
/// so a reader never sees half a blob.
///
/// Storing bytes that exist already changes nothing (not even the file's
/// modification time): what keeps such a blob from garbage collection is
/// the writer's pin in the catalog (see the crate docs).
pub struct DirBlobStore {
    root: PathBuf,
}

impl DirBlobStore {
    /// Opens (creating) the store. Removes nothing: other processes may be
    /// staging blobs in `incoming/` (see [`DirBlobStore::remove_stale_staging`]).
    pub async fn open(root: &Path) -> std::io::Result<Self> {
        tokio::fs::create_dir_all(root.join("sha256")).await?;
        tokio::fs::create_dir_all(root.join("incoming")).await?;
        Ok(DirBlobStore {
            root: root.to_path_buf(),
        })
    }

    /// Removes what crashed processes left in `incoming/`, and nothing a
    /// live process owns (see [`crate::staging::remove_stale`]). For
    /// `tintype serve` at start.
    pub async fn remove_stale_staging(&self) -> std::io::Result<crate::staging::Swept> {
        let incoming = self.root.join("incoming");
        tokio::task::spawn_blocking(move || {
            crate::staging::remove_stale(&incoming, crate::staging::FOREIGN_MAX_AGE)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    fn path_of(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        if !valid_key(sha256) {
            return Err(BlobError::InvalidKey(sha256.to_string()));
        }
        Ok(self
            .root
            .join("sha256")
            .join(&sha256[0..2])
            .join(&sha256[2..4])
            .join(sha256))
    }
}

/// Reads of blobs go in buffers of this size; a blob (or range) no larger
/// is read whole in one call.
const READ_BUF: usize = 256 * 1024;

enum Opened {
    Whole(bytes::Bytes),
    File(std::fs::File, u64),
}

fn not_found(sha256: &str, e: std::io::Error) -> BlobError {
    if e.kind() == std::io::ErrorKind::NotFound {
        BlobError::NotFound(sha256.to_string())
    } else {
        BlobError::Io(e)
    }
}

#[async_trait]
impl BlobStore for DirBlobStore {
    fn backend_name(&self) -> &'static str {
        "directory"
    }

    async fn ping(&self) -> Result<(), BlobError> {
        tokio::fs::metadata(self.root.join("sha256")).await?;
        Ok(())
    }

    async fn put_file(&self, sha256: &str, path: &Path, _size: u64) -> Result<(), BlobError> {
        let dest = self.path_of(sha256)?;
        if tokio::fs::try_exists(&dest).await.unwrap_or(false) {
            return Ok(());
        }
        let parent = dest
            .parent()
            .ok_or_else(|| BlobError::InvalidKey(sha256.to_string()))?
            .to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(BlobError::io)?;
        // Copy into our own incoming directory first when the source is on
        // another file system (rename would fail), then rename atomically.
        let incoming = crate::staging::owned_dir(&self.root.join("incoming"));
        tokio::fs::create_dir_all(&incoming).await?;
        let staged = incoming.join(format!("{sha256}.{}", uuid::Uuid::new_v4().simple()));
        if tokio::fs::rename(path, &staged).await.is_err() {
            if let Err(e) = tokio::fs::copy(path, &staged).await {
                // A full disk leaves no half copy behind.
                let _ = tokio::fs::remove_file(&staged).await;
                return Err(BlobError::io(e));
            }
        }
        let staged2 = staged.clone();
        let parent2 = parent.clone();
        let dest2 = dest.clone();
        let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&staged2)?.sync_all()?;
            std::fs::rename(&staged2, &dest2)?;
            std::fs::File::open(&parent2)?.sync_all()?;
            Ok(())
        })
        .await
        .map_err(|e| BlobError::Backend(e.to_string()))?;
        if let Err(e) = done {
            let _ = tokio::fs::remove_file(&staged).await;
            return Err(BlobError::io(e));
        }
        Ok(())
    }

    async fn head(&self, sha256: &str) -> Result<Option<BlobMeta>, BlobError> {
        let p = self.path_of(sha256)?;
        match tokio::fs::metadata(&p).await {
            Ok(m) => Ok(Some(BlobMeta {
                sha256: sha256.to_string(),
                size: m.len(),
                modified: mtime(&m),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get(&self, sha256: &str, range: Option<ByteRange>) -> Result<BlobStream, BlobError> {
        let p = self.path_of(sha256)?;
        // Open, size, seek and (for what fits in one buffer) read in one
        // trip to the blocking pool: a small blob or range comes back as a
        // single chunk, which the server writes with its headers.
        let key = sha256.to_string();
        let opened = tokio::task::spawn_blocking(move || -> Result<Opened, BlobError> {
            use std::io::{Read, Seek};
            let mut f = std::fs::File::open(&p).map_err(|e| not_found(&key, e))?;
            let len = f.metadata()?.len();
            let (start, want) = match range {
                None => (0, len),
                Some(r) => (r.start, r.len().min(len.saturating_sub(r.start))),
            };
            if start > 0 {
                f.seek(std::io::SeekFrom::Start(start))?;
            }
            if want <= READ_BUF as u64 {
                let mut buf = vec![0u8; want as usize];
                f.read_exact(&mut buf)?;
                Ok(Opened::Whole(bytes::Bytes::from(buf)))
            } else {
                Ok(Opened::File(f, want))
            }
        })
        .await
        .map_err(|e| BlobError::Backend(e.to_string()))??;
        match opened {
            Opened::Whole(b) => Ok(futures::stream::once(async move { Ok(b) }).boxed()),
            Opened::File(f, want) => {
                let f = tokio::fs::File::from_std(f);
                Ok(ReaderStream::with_capacity(f.take(want), READ_BUF).boxed())
            }
        }
    }

    async fn local_file(&self, sha256: &str, _tmp_dir: &Path) -> Result<LocalFile, BlobError> {
        let p = self.path_of(sha256)?;
        tokio::fs::metadata(&p)
            .await
            .map_err(|e| not_found(sha256, e))?;
        Ok(LocalFile::direct(p))
    }

    async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        let p = self.path_of(sha256)?;
        match tokio::fs::remove_file(&p).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn list(&self) -> Result<Vec<BlobMeta>, BlobError> {
        let root = self.root.join("sha256");
        tokio::task::spawn_blocking(move || -> std::io::Result<Vec<BlobMeta>> {
            let mut out = Vec::new();
            for a in std::fs::read_dir(&root)? {
                let a = a?;
                if !a.file_type()?.is_dir() {
                    continue;
                }
                for b in std::fs::read_dir(a.path())? {
                    let b = b?;
                    if !b.file_type()?.is_dir() {
                        continue;
                    }
                    for f in std::fs::read_dir(b.path())? {
                        let f = f?;
                        let name = f.file_name().to_string_lossy().to_string();
                        if !valid_key(&name) {
                            continue;
                        }
                        // Removed meanwhile (another collector, a delete):
                        // it is simply not listed.
                        let m = match f.metadata() {
                            Ok(m) => m,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Err(e),
                        };
                        out.push(BlobMeta {
                            sha256: name,
                            size: m.len(),
                            modified: mtime(&m),
                        });
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| BlobError::Backend(e.to_string()))?
        .map_err(BlobError::Io)
    }
}

fn mtime(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
