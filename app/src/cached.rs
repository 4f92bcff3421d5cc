//! [`CachedSnapshot`]: a committed snapshot that remembers what it has read.
//!
//! Every read of a cnidarium [`Snapshot`] is a `spawn_blocking` round trip into the JMT. A
//! block of 10,000 txs reads the same few thousand account keys again and again (the fee
//! collector's account on every tx), so the pipeline spent most of its time waiting on those
//! round trips. A snapshot never changes, so a read-through memo of its answers is always
//! correct; and because the keys a block will touch are known from its txs before it runs,
//! [`CachedSnapshot::prefetch`] reads them all at once, many in flight, instead of one after
//! another in execution order.
//!
//! Across blocks, an [`InterBlockCache`] (as the Cosmos SDK's inter-block cache) keeps the
//! committed values of recently read or written keys: after each Commit it takes the block's
//! writes and moves to the new version, so the accounts a block touches are usually already
//! known when the next block touches them again.
//!
//! Both caches are only ever looked up by key, never iterated, so their hash maps cannot
//! influence state or block contents; they only answer what storage would have answered.
//! Prefix scans are passed straight to the snapshot.

use std::{
    any::Any,
    collections::{BTreeMap, HashMap},
    ops::RangeBounds,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use cnidarium::{Snapshot, StateRead};
use futures::{future::BoxFuture, FutureExt as _, StreamExt as _};

/// How many snapshot reads [`CachedSnapshot::prefetch`] keeps in flight.
const PREFETCH_CONCURRENCY: usize = 64;

type Memo<K> = Mutex<HashMap<K, Option<Vec<u8>>>>;

/// What storage answers for a key: its value, or `None` when it is absent.
struct Answer(Option<Vec<u8>>);

/// Committed values of recently used verifiable keys, valid for one state version at a time.
pub(crate) struct InterBlockCache {
    capacity: usize,
    inner: Mutex<InterBlock>,
}

struct InterBlock {
    /// The state version every entry belongs to.
    version: u64,
    values: HashMap<String, Option<Vec<u8>>>,
}

impl InterBlockCache {
    /// An empty cache holding at most `capacity` keys (0 disables it).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(InterBlock {
                version: u64::MAX,
                values: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, InterBlock> {
        // Entries are inserted whole; a panic elsewhere cannot leave a wrong one behind.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, version: u64, key: &str) -> Option<Answer> {
        let inner = self.lock();
        if inner.version != version {
            return None;
        }
        inner.values.get(key).cloned().map(Answer)
    }

    /// Remembers what storage answered for `key` at `version`. Returns `false` (and keeps
    /// nothing) when the cache is at another version that `version` does not supersede.
    fn insert_read(&self, version: u64, key: &str, value: Option<&[u8]>) -> bool {
        if self.capacity == 0 {
            return false;
        }
        let mut inner = self.lock();
        if inner.version != version {
            // A newer version than the cache has seen, committed without `advance` (InitChain):
            // start over at it. Reads of an older version are not kept.
            if inner.version != u64::MAX && version < inner.version {
                return false;
            }
            inner.version = version;
            inner.values.clear();
        }
        if inner.values.len() >= self.capacity {
            inner.values.clear();
        }
        inner
            .values
            .insert(key.to_string(), value.map(<[u8]>::to_vec));
        true
    }

    /// Moves the cache from `version - 1` to `version` by applying the verifiable `writes`
    /// of the block committed as `version` (`None` deletes). When the cache was not at the
    /// previous version, it starts over empty at `version`.
    pub(crate) fn advance(&self, version: u64, writes: &BTreeMap<String, Option<Vec<u8>>>) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        let consecutive = inner.version != u64::MAX && inner.version.wrapping_add(1) == version;
        inner.version = version;
        if !consecutive || inner.values.len().saturating_add(writes.len()) > self.capacity {
            inner.values.clear();
        }
        for (key, value) in writes {
            inner.values.insert(key.clone(), value.clone());
        }
    }
}

/// A [`Snapshot`] with a memo of its verifiable and non-verifiable reads, backed by the
/// node's [`InterBlockCache`] when the snapshot is at the cache's version. Cheap to clone;
/// clones share the memo.
#[derive(Clone)]
pub(crate) struct CachedSnapshot {
    snapshot: Snapshot,
    version: u64,
    verifiable: Arc<Memo<String>>,
    nonverifiable: Arc<Memo<Vec<u8>>>,
    inter_block: Arc<InterBlockCache>,
}

fn lock<K>(memo: &Memo<K>) -> MutexGuard<'_, HashMap<K, Option<Vec<u8>>>> {
    // A poisoned lock only means a reader panicked between lookup and insert; every entry
    // is still a true answer of the snapshot.
    memo.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CachedSnapshot {
    /// Wraps `snapshot` with an empty memo over `inter_block`.
    pub(crate) fn new(snapshot: Snapshot, inter_block: Arc<InterBlockCache>) -> Self {
        Self {
            version: snapshot.version(),
            snapshot,
            verifiable: Arc::default(),
            nonverifiable: Arc::default(),
            inter_block,
        }
    }

    /// The memoized answer for `key`, if any.
    fn known(&self, key: &str) -> Option<Answer> {
        if let Some(value) = lock(&self.verifiable).get(key) {
            return Some(Answer(value.clone()));
        }
        self.inter_block.get(self.version, key)
    }

    /// Memoizes what storage answered for `key`.
    fn remember(&self, key: String, value: Option<Vec<u8>>) {
        remember(
            &self.inter_block,
            &self.verifiable,
            self.version,
            key,
            value,
        );
    }

    /// The wrapped snapshot.
    pub(crate) fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// Reads every key of `keys` that is not memoized yet, up to [`PREFETCH_CONCURRENCY`] at
    /// a time, and memoizes the answers. Later reads of those keys do not wait on storage.
    pub(crate) async fn prefetch(
        &self,
        keys: impl IntoIterator<Item = String>,
    ) -> anyhow::Result<()> {
        let mut missing: Vec<String> = keys
            .into_iter()
            .filter(|k| self.known(k).is_none())
            .collect();
        missing.sort_unstable();
        missing.dedup();
        let mut reads = futures::stream::iter(missing)
            .map(|key| {
                let read = self.snapshot.get_raw(&key);
                async move { (key, read.await) }
            })
            .buffer_unordered(PREFETCH_CONCURRENCY);
        while let Some((key, value)) = reads.next().await {
            self.remember(key, value?);
        }
        Ok(())
    }
}

fn remember(
    inter_block: &InterBlockCache,
    memo: &Memo<String>,
    version: u64,
    key: String,
    value: Option<Vec<u8>>,
) {
    if !inter_block.insert_read(version, &key, value.as_deref()) {
        lock(memo).insert(key, value);
    }
}

impl StateRead for CachedSnapshot {
    type GetRawFut = BoxFuture<'static, anyhow::Result<Option<Vec<u8>>>>;
    type PrefixRawStream = <Snapshot as StateRead>::PrefixRawStream;
    type PrefixKeysStream = <Snapshot as StateRead>::PrefixKeysStream;
    type NonconsensusPrefixRawStream = <Snapshot as StateRead>::NonconsensusPrefixRawStream;
    type NonconsensusRangeRawStream = <Snapshot as StateRead>::NonconsensusRangeRawStream;

    fn get_raw(&self, key: &str) -> Self::GetRawFut {
        if let Some(Answer(value)) = self.known(key) {
            return futures::future::ready(Ok(value)).boxed();
        }
        let read = self.snapshot.get_raw(key);
        let (memo, inter_block, version) = (
            Arc::clone(&self.verifiable),
            Arc::clone(&self.inter_block),
            self.version,
        );
        let key = key.to_string();
        async move {
            let value = read.await?;
            remember(&inter_block, &memo, version, key, value.clone());
            Ok(value)
        }
        .boxed()
    }

    fn nonverifiable_get_raw(&self, key: &[u8]) -> Self::GetRawFut {
        if let Some(value) = lock(&self.nonverifiable).get(key) {
            return futures::future::ready(Ok(value.clone())).boxed();
        }
        let read = self.snapshot.nonverifiable_get_raw(key);
        let memo = Arc::clone(&self.nonverifiable);
        let key = key.to_vec();
        async move {
            let value = read.await?;
            lock(&memo).insert(key, value.clone());
            Ok(value)
        }
        .boxed()
    }

    fn object_get<T: Any + Send + Sync + Clone>(&self, key: &'static str) -> Option<T> {
        self.snapshot.object_get(key)
    }

    fn object_type(&self, key: &'static str) -> Option<std::any::TypeId> {
        self.snapshot.object_type(key)
    }

    fn prefix_raw(&self, prefix: &str) -> Self::PrefixRawStream {
        self.snapshot.prefix_raw(prefix)
    }

    fn prefix_keys(&self, prefix: &str) -> Self::PrefixKeysStream {
        self.snapshot.prefix_keys(prefix)
    }

    fn nonverifiable_prefix_raw(&self, prefix: &[u8]) -> Self::NonconsensusPrefixRawStream {
        self.snapshot.nonverifiable_prefix_raw(prefix)
    }

    fn nonverifiable_range_raw(
        &self,
        prefix: Option<&[u8]>,
        range: impl RangeBounds<Vec<u8>>,
    ) -> anyhow::Result<Self::NonconsensusRangeRawStream> {
        self.snapshot.nonverifiable_range_raw(prefix, range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writes(entries: &[(&str, Option<&[u8]>)]) -> BTreeMap<String, Option<Vec<u8>>> {
        entries
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[expect(
        clippy::option_option,
        reason = "not cached / cached as absent / cached value, compared in assertions"
    )]
    fn value(cache: &InterBlockCache, version: u64, key: &str) -> Option<Option<Vec<u8>>> {
        cache.get(version, key).map(|Answer(v)| v)
    }

    #[test]
    fn answers_only_for_its_version() {
        let cache = InterBlockCache::new(10);
        assert!(cache.insert_read(3, "a", Some(b"1")));
        assert!(cache.insert_read(3, "gone", None));
        assert_eq!(value(&cache, 3, "a"), Some(Some(b"1".to_vec())));
        assert_eq!(value(&cache, 3, "gone"), Some(None));
        assert_eq!(value(&cache, 3, "unread"), None);
        assert_eq!(
            value(&cache, 4, "a"),
            None,
            "another version is never answered"
        );
        // A read of an older version is not kept.
        assert!(!cache.insert_read(2, "b", Some(b"x")));
        assert_eq!(value(&cache, 3, "b"), None);
    }

    #[test]
    fn advance_applies_the_block_writes_and_keeps_the_rest() {
        let cache = InterBlockCache::new(10);
        cache.insert_read(3, "a", Some(b"1"));
        cache.insert_read(3, "b", Some(b"2"));
        cache.advance(
            4,
            &writes(&[("a", Some(b"9")), ("b", None), ("c", Some(b"3"))]),
        );
        assert_eq!(value(&cache, 4, "a"), Some(Some(b"9".to_vec())));
        assert_eq!(value(&cache, 4, "b"), Some(None), "a delete is remembered");
        assert_eq!(value(&cache, 4, "c"), Some(Some(b"3".to_vec())));
        assert_eq!(value(&cache, 3, "a"), None);
    }

    #[test]
    fn a_gap_in_versions_starts_over() {
        let cache = InterBlockCache::new(10);
        cache.insert_read(3, "a", Some(b"1"));
        // Version 4 was committed without passing through the cache: its writes are unknown.
        cache.advance(5, &writes(&[("c", Some(b"3"))]));
        assert_eq!(value(&cache, 5, "a"), None);
        assert_eq!(value(&cache, 5, "c"), Some(Some(b"3".to_vec())));
        // A newer version seen first by a read (InitChain commits without `advance`).
        assert!(cache.insert_read(9, "z", Some(b"0")));
        assert_eq!(value(&cache, 9, "c"), None);
        assert_eq!(value(&cache, 9, "z"), Some(Some(b"0".to_vec())));
    }

    #[test]
    fn stays_within_capacity_and_zero_disables_it() {
        let cache = InterBlockCache::new(2);
        for key in ["a", "b", "c"] {
            cache.insert_read(1, key, Some(b"v"));
        }
        assert!(cache.lock().values.len() <= 2);
        let off = InterBlockCache::new(0);
        assert!(!off.insert_read(1, "a", Some(b"v")));
        off.advance(2, &writes(&[("a", Some(b"v"))]));
        assert_eq!(value(&off, 2, "a"), None);
    }
}
