use crate::Engine;
use serde::Serialize;
use tintype_core::CoreError;

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GcReport {
    pub blobs: u64,
    pub removed: u64,
    pub removed_bytes: u64,
    pub kept_young: u64,
}

impl Engine {
    /// Removes blobs that no image or variant references. Blobs younger
    /// than the grace period are kept: an upload may have stored its blob
    /// and be about to commit the row that references it. Safe while
    /// serving, and with several nodes.
    pub async fn gc(&self) -> Result<GcReport, CoreError> {
        let mut report = GcReport::default();
        let cutoff = chrono::Utc::now().timestamp() - self.config.gc_grace.as_secs() as i64;
        for b in self.blobs.list().await? {
            report.blobs += 1;
            if self.catalog.blob_referenced(&b.sha256).await? {
                continue;
            }
            if b.modified > cutoff {
                report.kept_young += 1;
                continue;
            }
            self.blobs.delete(&b.sha256).await?;
            report.removed += 1;
            report.removed_bytes += b.size;
        }
        Ok(report)
    }
}
