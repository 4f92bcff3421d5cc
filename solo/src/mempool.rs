//! A bounded mempool in arrival order, checked by the application with `CheckTx`.
//!
//! An incoming tx is refused before the application sees it when it is larger than
//! `max_tx_bytes`, when the mempool is full (count or bytes) or when it was seen recently (a
//! bounded cache of hashes). Otherwise `CheckTx` `New` decides. After every Commit the committed
//! txs are removed and the rest are rechecked (`CheckTx` `Recheck`) while new txs wait, as
//! `CometBFT` does, so the application's view of pending state stays consistent.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use sha2::{Digest, Sha256};
use tendermint_proto::v0_38::abci::{CheckTxType, RequestCheckTx, ResponseCheckTx};
use tokio::sync::{watch, RwLock, RwLockWriteGuard};

use crate::{
    abci::{AbciError, Connection},
    config::MempoolLimits,
};

/// Why a tx was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// The tx is larger than `max_tx_bytes`.
    #[error("tx too large: {size} bytes, the limit is {max} bytes (mempool.max_tx_bytes)")]
    TooLarge {
        /// The tx size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The mempool holds as many txs or bytes as allowed.
    #[error(
        "mempool is full: {count} txs (max {max_count}), {bytes} bytes (max {max_bytes}); retry \
         after the next block"
    )]
    Full {
        /// Txs held.
        count: usize,
        /// Limit on txs.
        max_count: usize,
        /// Bytes held.
        bytes: u64,
        /// Limit on bytes.
        max_bytes: u64,
    },
    /// The tx was seen recently.
    #[error("tx already exists in cache")]
    InCache,
    /// The application could not be asked.
    #[error(transparent)]
    App(#[from] AbciError),
}

struct Entry {
    tx: Vec<u8>,
    hash: [u8; 32],
    gas_wanted: i64,
}

#[derive(Default)]
struct Inner {
    /// Txs by arrival sequence number.
    txs: BTreeMap<u64, Entry>,
    /// Hash → sequence number, for lookups only.
    by_hash: HashMap<[u8; 32], u64>,
    bytes: u64,
    next_seq: u64,
    cache_order: VecDeque<[u8; 32]>,
    cache: HashSet<[u8; 32]>,
}

impl Inner {
    fn cache_insert(&mut self, hash: [u8; 32], cache_size: usize) -> bool {
        if cache_size == 0 {
            return true;
        }
        if !self.cache.insert(hash) {
            return false;
        }
        self.cache_order.push_back(hash);
        while self.cache_order.len() > cache_size {
            if let Some(old) = self.cache_order.pop_front() {
                self.cache.remove(&old);
            }
        }
        true
    }

    fn cache_remove(&mut self, hash: &[u8; 32]) {
        if self.cache.remove(hash) {
            self.cache_order.retain(|h| h != hash);
        }
    }

    fn remove(&mut self, hash: &[u8; 32]) -> bool {
        let Some(seq) = self.by_hash.remove(hash) else {
            return false;
        };
        if let Some(entry) = self.txs.remove(&seq) {
            self.bytes -= entry.tx.len() as u64;
        }
        true
    }

    fn full_error(&self, limits: &MempoolLimits, extra: usize) -> Option<MempoolError> {
        if self.txs.len() >= limits.max_txs || self.bytes + extra as u64 > limits.max_txs_bytes {
            Some(MempoolError::Full {
                count: self.txs.len(),
                max_count: limits.max_txs,
                bytes: self.bytes,
                max_bytes: limits.max_txs_bytes,
            })
        } else {
            None
        }
    }
}

/// The mempool.
pub struct Mempool {
    limits: MempoolLimits,
    inner: std::sync::Mutex<Inner>,
    update: RwLock<()>,
    size: watch::Sender<usize>,
}

/// Proof that the caller holds the mempool's update lock.
pub struct UpdateGuard<'a>(
    #[expect(dead_code, reason = "held for its drop")] RwLockWriteGuard<'a, ()>,
);

impl Mempool {
    /// An empty mempool with these limits.
    pub fn new(limits: MempoolLimits) -> Self {
        Self {
            limits,
            inner: std::sync::Mutex::new(Inner::default()),
            update: RwLock::new(()),
            size: watch::Sender::new(0),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .expect("mempool lock is never poisoned: no panics while held")
    }

    /// Number of txs held.
    pub fn len(&self) -> usize {
        self.inner().txs.len()
    }

    /// Whether the mempool is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total bytes held.
    pub fn total_bytes(&self) -> u64 {
        self.inner().bytes
    }

    /// The limits.
    pub fn limits(&self) -> &MempoolLimits {
        &self.limits
    }

    /// A receiver of the number of txs held.
    pub fn watch_size(&self) -> watch::Receiver<usize> {
        self.size.subscribe()
    }

    fn publish_size(&self, inner: &Inner) {
        self.size.send_replace(inner.txs.len());
    }

    /// Offers a tx: size, capacity and cache checks, then `CheckTx` `New` on `conn`. Returns the
    /// application's answer; the tx is kept only when its code is 0.
    pub async fn check_tx(
        &self,
        tx: Vec<u8>,
        conn: &Connection,
    ) -> Result<ResponseCheckTx, MempoolError> {
        if tx.len() > self.limits.max_tx_bytes {
            return Err(MempoolError::TooLarge {
                size: tx.len(),
                max: self.limits.max_tx_bytes,
            });
        }
        let hash: [u8; 32] = Sha256::digest(&tx).into();
        {
            let mut inner = self.inner();
            if let Some(full) = inner.full_error(&self.limits, tx.len()) {
                return Err(full);
            }
            if inner.by_hash.contains_key(&hash)
                || !inner.cache_insert(hash, self.limits.cache_size)
            {
                return Err(MempoolError::InCache);
            }
        }
        let _no_update = self.update.read().await;
        let response = conn
            .check_tx(RequestCheckTx {
                tx: tx.clone().into(),
                r#type: CheckTxType::New.into(),
            })
            .await;
        let mut inner = self.inner();
        let response = match response {
            Ok(r) => r,
            Err(e) => {
                inner.cache_remove(&hash);
                return Err(e.into());
            }
        };
        if response.code != 0 {
            inner.cache_remove(&hash);
            return Ok(response);
        }
        if let Some(full) = inner.full_error(&self.limits, tx.len()) {
            inner.cache_remove(&hash);
            return Err(full);
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.bytes += tx.len() as u64;
        inner.by_hash.insert(hash, seq);
        inner.txs.insert(
            seq,
            Entry {
                tx,
                hash,
                gas_wanted: response.gas_wanted,
            },
        );
        self.publish_size(&inner);
        Ok(response)
    }

    /// The first `limit` txs waiting, in arrival order.
    pub fn txs(&self, limit: usize) -> Vec<Vec<u8>> {
        self.inner()
            .txs
            .values()
            .take(limit)
            .map(|e| e.tx.clone())
            .collect()
    }

    /// Txs in arrival order whose total protobuf size fits `max_bytes` and total gas fits
    /// `max_gas` (`CometBFT`'s `ReapMaxBytesMaxGas`).
    ///
    /// A tx that could not fit even in an empty block (larger than `max_bytes`, or wanting
    /// more than `max_gas`) is passed over: `CometBFT` refuses such txs at admission
    /// (`TxPreCheck`/`TxPostCheck`), and stopping at one would stall every tx behind it.
    pub fn reap(&self, max_bytes: i64, max_gas: Option<u64>) -> Vec<Vec<u8>> {
        let inner = self.inner();
        let mut bytes: i64 = 0;
        let mut gas: u64 = 0;
        let mut out = Vec::new();
        for entry in inner.txs.values() {
            let len = entry.tx.len() as u64;
            let proto_len = 1 + prost::encoding::encoded_len_varint(len) as u64 + len;
            let proto_len = i64::try_from(proto_len).unwrap_or(i64::MAX);
            let tx_gas = u64::try_from(entry.gas_wanted).unwrap_or(0);
            if proto_len > max_bytes || max_gas.is_some_and(|max_gas| tx_gas > max_gas) {
                continue;
            }
            if bytes.saturating_add(proto_len) > max_bytes {
                break;
            }
            if let Some(max_gas) = max_gas {
                if gas.saturating_add(tx_gas) > max_gas {
                    break;
                }
            }
            bytes += proto_len;
            gas = gas.saturating_add(tx_gas);
            out.push(entry.tx.clone());
        }
        out
    }

    /// Takes the update lock: new `CheckTx` calls wait until it is dropped.
    pub async fn lock_for_update(&self) -> UpdateGuard<'_> {
        UpdateGuard(self.update.write().await)
    }

    /// After a Commit: removes `committed` txs (each with its result code) and, when
    /// rechecking is on, runs `CheckTx` `Recheck` on the rest and drops those that now fail.
    /// A committed tx stays in the duplicate cache only if it succeeded: as `CometBFT` (without
    /// `keep-invalid-txs-in-cache`), a tx that failed in its block may be sent again.
    pub async fn update(
        &self,
        _guard: &UpdateGuard<'_>,
        committed: &[(Vec<u8>, u32)],
        conn: &Connection,
    ) -> Result<(), AbciError> {
        let remaining: Vec<([u8; 32], Vec<u8>)> = {
            let mut inner = self.inner();
            for (tx, code) in committed {
                let hash: [u8; 32] = Sha256::digest(tx).into();
                inner.remove(&hash);
                if *code == 0 {
                    inner.cache_insert(hash, self.limits.cache_size);
                } else {
                    inner.cache_remove(&hash);
                }
            }
            self.publish_size(&inner);
            if !self.limits.recheck {
                return Ok(());
            }
            inner.txs.values().map(|e| (e.hash, e.tx.clone())).collect()
        };
        if remaining.is_empty() {
            return Ok(());
        }
        let checks = remaining.iter().map(|(_, tx)| {
            conn.check_tx(RequestCheckTx {
                tx: tx.clone().into(),
                r#type: CheckTxType::Recheck.into(),
            })
        });
        let results = futures::future::join_all(checks).await;
        let mut inner = self.inner();
        for ((hash, _), result) in remaining.iter().zip(results) {
            if result?.code != 0 {
                inner.remove(hash);
                inner.cache_remove(hash);
            }
        }
        self.publish_size(&inner);
        Ok(())
    }

    /// Whether a tx with this hash is waiting.
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        self.inner().by_hash.contains_key(hash)
    }
}
