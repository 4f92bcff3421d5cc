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
//! The memo is only ever looked up by key, never iterated, so its hash map cannot influence
//! state or block contents. Prefix scans are passed straight to the snapshot.

use std::{
    any::Any,
    collections::HashMap,
    ops::RangeBounds,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use cnidarium::{Snapshot, StateRead};
use futures::{future::BoxFuture, FutureExt as _, StreamExt as _};

/// How many snapshot reads [`CachedSnapshot::prefetch`] keeps in flight.
const PREFETCH_CONCURRENCY: usize = 64;

type Memo<K> = Mutex<HashMap<K, Option<Vec<u8>>>>;

/// A [`Snapshot`] with a memo of its verifiable and non-verifiable reads. Cheap to clone;
/// clones share the memo.
#[derive(Clone)]
pub(crate) struct CachedSnapshot {
    snapshot: Snapshot,
    verifiable: Arc<Memo<String>>,
    nonverifiable: Arc<Memo<Vec<u8>>>,
}

fn lock<K>(memo: &Memo<K>) -> MutexGuard<'_, HashMap<K, Option<Vec<u8>>>> {
    // A poisoned lock only means a reader panicked between lookup and insert; every entry
    // is still a true answer of the snapshot.
    memo.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CachedSnapshot {
    /// Wraps `snapshot` with an empty memo.
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        Self {
            snapshot,
            verifiable: Arc::default(),
            nonverifiable: Arc::default(),
        }
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
        let missing: Vec<String> = {
            let memo = lock(&self.verifiable);
            let mut keys: Vec<String> =
                keys.into_iter().filter(|k| !memo.contains_key(k)).collect();
            keys.sort_unstable();
            keys.dedup();
            keys
        };
        let mut reads = futures::stream::iter(missing)
            .map(|key| {
                let read = self.snapshot.get_raw(&key);
                async move { (key, read.await) }
            })
            .buffer_unordered(PREFETCH_CONCURRENCY);
        while let Some((key, value)) = reads.next().await {
            lock(&self.verifiable).insert(key, value?);
        }
        Ok(())
    }
}

impl StateRead for CachedSnapshot {
    type GetRawFut = BoxFuture<'static, anyhow::Result<Option<Vec<u8>>>>;
    type PrefixRawStream = <Snapshot as StateRead>::PrefixRawStream;
    type PrefixKeysStream = <Snapshot as StateRead>::PrefixKeysStream;
    type NonconsensusPrefixRawStream = <Snapshot as StateRead>::NonconsensusPrefixRawStream;
    type NonconsensusRangeRawStream = <Snapshot as StateRead>::NonconsensusRangeRawStream;

    fn get_raw(&self, key: &str) -> Self::GetRawFut {
        if let Some(value) = lock(&self.verifiable).get(key) {
            return futures::future::ready(Ok(value.clone())).boxed();
        }
        let read = self.snapshot.get_raw(key);
        let memo = Arc::clone(&self.verifiable);
        let key = key.to_string();
        async move {
            let value = read.await?;
            lock(&memo).insert(key, value.clone());
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
