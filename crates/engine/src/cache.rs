//! Bounded in-memory caches for the serving hot paths: tokens, images,
//! variants and dialect records (each entry lives at most a short TTL, so
//! changes made on another node are seen within it), and the bytes of
//! small blobs (content-addressed, so never stale).
//!
//! Same-node consistency: every write the engine makes invalidates the
//! entries it touches before it returns, and each cache keeps a generation
//! number bumped on every invalidation, so a lookup that started before an
//! invalidation never puts its (possibly stale) answer in the cache.

use prometheus::{IntCounter, IntCounterVec};
use std::collections::HashMap as StdHashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an entry may be served without asking the catalog again; the
/// bound on how late a change made on another node is seen here.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Entries per metadata cache (tokens, images, variants, records).
pub const CACHE_ENTRIES: usize = 10_000;
/// Blobs up to this size are kept whole in memory once served.
pub const SMALL_BLOB_MAX: u64 = 64 * 1024;
/// Total bytes of small blobs kept in memory.
pub const SMALL_BLOBS_TOTAL: usize = 64 * 1024 * 1024;

/// The caches' maps: foldhash, seeded at random per process, hashes a key
/// in a fraction of SipHash's instructions; keys are token hashes, ids and
/// blob hashes, and only found entries are ever inserted.
type HashMap<K, V> = StdHashMap<K, V, foldhash::fast::RandomState>;

struct Inner<K, V> {
    map: HashMap<K, (V, Instant)>,
    generation: u64,
}

/// A capped map whose entries expire after a TTL.
pub struct TtlCache<K, V> {
    inner: Mutex<Inner<K, V>>,
    cap: usize,
    ttl: Duration,
    /// Hit and miss counters, when the cache is reported.
    lookups: Option<(IntCounter, IntCounter)>,
}

/// The hit and miss counters of cache `name` in `vec` (labels: cache,
/// result).
fn lookup_counters(vec: &IntCounterVec, name: &str) -> Option<(IntCounter, IntCounter)> {
    let hit = vec.get_metric_with_label_values(&[name, "hit"]).ok()?;
    let miss = vec.get_metric_with_label_values(&[name, "miss"]).ok()?;
    Some((hit, miss))
}

/// Counts one lookup, when the cache is counted.
fn count(lookups: &Option<(IntCounter, IntCounter)>, hit: bool) {
    if let Some((h, m)) = lookups {
        if hit { h } else { m }.inc();
    }
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub fn new(cap: usize, ttl: Duration) -> Self {
        TtlCache {
            inner: Mutex::new(Inner {
                map: HashMap::default(),
                generation: 0,
            }),
            cap: cap.max(1),
            ttl,
            lookups: None,
        }
    }

    /// Counts this cache's hits and misses as `name` in `vec`.
    pub fn counted(mut self, vec: &IntCounterVec, name: &str) -> Self {
        self.lookups = lookup_counters(vec, name);
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, V>> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (every change is a single call), so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation to pass to `insert` for a lookup starting now.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut g = self.lock();
        let found = match g.map.get(key) {
            Some((v, at)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                g.map.remove(key);
                None
            }
            None => None,
        };
        drop(g);
        count(&self.lookups, found.is_some());
        found
    }

    /// Keeps `value` unless something was invalidated since `generation`
    /// was read (the value may predate that change).
    pub fn insert(&self, generation: u64, key: K, value: V) {
        let mut g = self.lock();
        if g.generation != generation {
            return;
        }
        if g.map.len() >= self.cap && !g.map.contains_key(&key) {
            let ttl = self.ttl;
            g.map.retain(|_, (_, at)| at.elapsed() < ttl);
            while g.map.len() >= self.cap {
                let Some(k) = g.map.keys().next().cloned() else {
                    break;
                };
                g.map.remove(&k);
            }
        }
        g.map.insert(key, (value, Instant::now()));
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let mut g = self.lock();
        g.generation = g.generation.wrapping_add(1);
        g.map.remove(key);
    }

    /// Drops every entry for which `f` is true.
    pub fn remove_where(&self, f: impl Fn(&K, &V) -> bool) {
        let mut g = self.lock();
        g.generation = g.generation.wrapping_add(1);
        g.map.retain(|k, (v, _)| !f(k, v));
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn cap(&self) -> usize {
        self.cap
    }
}

/// Whole small blobs by SHA-256, bounded by their total size.
pub struct BlobCache {
    inner: Mutex<(HashMap<String, bytes::Bytes>, usize)>,
    max_blob: u64,
    total: usize,
    lookups: Option<(IntCounter, IntCounter)>,
}

impl BlobCache {
    pub fn new(max_blob: u64, total: usize) -> Self {
        BlobCache {
            inner: Mutex::new((HashMap::default(), 0)),
            max_blob,
            total,
            lookups: None,
        }
    }

    pub fn max_blob(&self) -> u64 {
        self.max_blob
    }

    /// Counts this cache's hits and misses as `name` in `vec`.
    pub fn counted(mut self, vec: &IntCounterVec, name: &str) -> Self {
        self.lookups = lookup_counters(vec, name);
        self
    }

    pub fn get(&self, sha256: &str) -> Option<bytes::Bytes> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let found = g.0.get(sha256).cloned();
        drop(g);
        count(&self.lookups, found.is_some());
        found
    }

    pub fn insert(&self, sha256: &str, b: impl Into<bytes::Bytes>) {
        let b: bytes::Bytes = b.into();
        if b.len() as u64 > self.max_blob || b.len() > self.total {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, used) = &mut *g;
        if map.contains_key(sha256) {
            return;
        }
        while *used + b.len() > self.total {
            let Some(k) = map.keys().next().cloned() else {
                break;
            };
            if let Some(old) = map.remove(&k) {
                *used -= old.len();
            }
        }
        *used += b.len();
        map.insert(sha256.to_string(), b);
    }

    pub fn remove(&self, sha256: &str) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, used) = &mut *g;
        if let Some(old) = map.remove(sha256) {
            *used -= old.len();
        }
    }

    /// (blobs held, bytes held)
    pub fn usage(&self) -> (usize, usize) {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (g.0.len(), g.1)
    }

    pub fn total(&self) -> usize {
        self.total
    }
}

/// The engine's caches together.
pub struct Caches {
    /// SHA-256 of a token's secret -> its principal.
    pub tokens: TtlCache<String, tintype_core::Principal>,
    pub images: TtlCache<String, tintype_core::Image>,
    /// (image id, variant name) -> the variant.
    pub variants: TtlCache<(String, String), tintype_core::Variant>,
    /// image id -> all its variants.
    pub variant_lists: TtlCache<String, Vec<tintype_core::Variant>>,
    /// (scope, key) -> the record.
    pub records: TtlCache<(String, String), tintype_core::Record>,
    /// image id -> the records tied to it.
    pub image_records: TtlCache<String, Vec<tintype_core::Record>>,
    pub blobs: BlobCache,
}

impl Caches {
    /// The caches, their lookups counted in `lookups` (cache, result).
    pub fn new(
        entries: usize,
        ttl: Duration,
        small_blob: u64,
        blob_total: usize,
        lookups: &IntCounterVec,
    ) -> Self {
        Caches {
            tokens: TtlCache::new(entries, ttl).counted(lookups, "tokens"),
            images: TtlCache::new(entries, ttl).counted(lookups, "images"),
            variants: TtlCache::new(entries, ttl).counted(lookups, "variants"),
            variant_lists: TtlCache::new(entries, ttl).counted(lookups, "variant_lists"),
            records: TtlCache::new(entries, ttl).counted(lookups, "records"),
            image_records: TtlCache::new(entries, ttl).counted(lookups, "image_records"),
            blobs: BlobCache::new(small_blob, blob_total).counted(lookups, "small_blobs"),
        }
    }

    /// Everything tied to an image changed (deleted, content replaced).
    pub fn forget_image(&self, id: &str) {
        self.images.remove(id);
        self.variants.remove_where(|(i, _), _| i == id);
        self.variant_lists.remove(id);
        self.records
            .remove_where(|_, r| r.image_id.as_deref() == Some(id));
        self.image_records.remove(id);
        self.tokens
            .remove_where(|_, p| p.user.profile_image_id.as_deref() == Some(id));
    }

    /// A record was written or deleted.
    pub fn forget_record(&self, scope: &str, key: &str, image_id: Option<&str>) {
        self.records
            .remove_where(|(s, k), _| s == scope && k == key);
        self.image_records.remove_where(|i, list| {
            Some(i.as_str()) == image_id || list.iter().any(|r| r.scope == scope && r.key == key)
        });
    }

    /// A user's row changed (quota, profile picture).
    pub fn forget_user(&self, user_id: tintype_core::UserId) {
        self.tokens.remove_where(|_, p| p.user.id == user_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_holds_more_than_the_cap() {
        let c: TtlCache<u32, u32> = TtlCache::new(100, Duration::from_secs(60));
        for i in 0..1000 {
            let g = c.generation();
            c.insert(g, i, i);
            assert!(c.len() <= 100, "{} entries", c.len());
        }
        assert_eq!(c.len(), 100);
        assert_eq!(c.get(&999), Some(999));
    }

    #[test]
    fn a_lookup_older_than_an_invalidation_is_not_kept() {
        let c: TtlCache<u32, u32> = TtlCache::new(10, Duration::from_secs(60));
        let g = c.generation();
        c.remove(&1);
        c.insert(g, 1, 1);
        assert_eq!(c.get(&1), None);
        let g = c.generation();
        c.insert(g, 1, 2);
        assert_eq!(c.get(&1), Some(2));
    }

    #[test]
    fn expired_entries_are_not_served() {
        let c: TtlCache<u32, u32> = TtlCache::new(10, Duration::ZERO);
        let g = c.generation();
        c.insert(g, 1, 1);
        assert_eq!(c.get(&1), None);
    }

    #[test]
    fn blob_cache_stays_within_its_total() {
        let c = BlobCache::new(1000, 2500);
        for i in 0..20 {
            c.insert(&format!("{i:064x}"), bytes::Bytes::from(vec![0u8; 1000]));
            assert!(c.usage().1 <= 2500);
        }
        assert_eq!(c.usage(), (2, 2000));
        c.insert("big", bytes::Bytes::from(vec![0u8; 1001]));
        assert!(c.get("big").is_none());
    }
}
