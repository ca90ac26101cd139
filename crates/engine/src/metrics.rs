//! The engine's Prometheus series, in one registry that the HTTP layer
//! adds its own to and serves on `/metrics`. Every label takes a bounded
//! set of values (job kinds registered in code, refusal reasons, cache
//! names), never anything a client chooses.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct EngineMetrics {
    pub registry: Registry,
    /// Variants rendered.
    pub renders: IntCounter,
    /// Bytes of uploads staged.
    pub ingested_bytes: IntCounter,
    /// Jobs that ended a run, by kind and outcome (done, retry, failed,
    /// released).
    pub jobs: IntCounterVec,
    /// Jobs in the durable queue by state (set when scraped).
    pub queue: IntGaugeVec,
    /// Uploads refused, by reason.
    pub refused: IntCounterVec,
    /// Cache lookups by cache and result (hit, miss).
    pub cache_lookups: IntCounterVec,
    /// Panics caught (request handlers, jobs, decoders).
    pub panics: IntCounter,
    /// Bytes of the originals and variants in the catalog (set when
    /// scraped, from a cached sum).
    pub stored_bytes: IntGauge,
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

impl EngineMetrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Registry::new();
        let queue = IntGaugeVec::new(
            Opts::new("tintype_jobs", "Jobs in the durable queue by state."),
            &["state"],
        )?;
        r.register(Box::new(queue.clone()))?;
        let stored_bytes = IntGauge::new(
            "tintype_stored_bytes",
            "Bytes of the originals and variants in the catalog (a blob several name counts for each).",
        )?;
        r.register(Box::new(stored_bytes.clone()))?;
        Ok(EngineMetrics {
            renders: counter(&r, "tintype_variant_renders_total", "Variants rendered.")?,
            ingested_bytes: counter(
                &r,
                "tintype_ingested_bytes_total",
                "Bytes of uploads received and staged.",
            )?,
            jobs: counter_vec(
                &r,
                "tintype_jobs_finished_total",
                "Job runs that ended, by kind and outcome.",
                &["kind", "outcome"],
            )?,
            queue,
            refused: counter_vec(
                &r,
                "tintype_uploads_refused_total",
                "Uploads refused, by reason.",
                &["reason"],
            )?,
            cache_lookups: counter_vec(
                &r,
                "tintype_cache_lookups_total",
                "Lookups in the hot-path caches, by cache and result.",
                &["cache", "result"],
            )?,
            panics: counter(
                &r,
                "tintype_panics_caught_total",
                "Panics caught and turned into errors.",
            )?,
            stored_bytes,
            registry: r,
        })
    }
}

impl std::fmt::Debug for EngineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineMetrics").finish_non_exhaustive()
    }
}
