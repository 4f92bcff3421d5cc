//! The block store: one file per block and one per applied state, written atomically.
//!
//! For height H, `H.block` holds the block, its id, the validator set that signs it and the
//! commit this node made for it; `H.state` holds the application's `FinalizeBlock` answer and
//! the chain state after H. A block is saved before `FinalizeBlock`, its state before `Commit`,
//! so after a crash `H.block` may exist without `H.state` (the block is then applied on
//! restart) but never the reverse. Each file is written to a temporary name and renamed, so a
//! killed process leaves either the whole record or none.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::RwLock,
};

use prost::Message;
use sha2::{Digest, Sha256};
use tendermint::{block, validator, AppHash, Block, Hash};
use tendermint_proto::{google::protobuf::Timestamp, v0_38 as pb};

use crate::chain::ChainState;

/// Errors reading or writing the block store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// File system error.
    #[error("block store I/O failed on {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A stored record does not decode.
    #[error("block store record {path} is corrupt: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The stored heights are not contiguous.
    #[error("block store is inconsistent: {0}")]
    Inconsistent(String),
}

/// A stored block with what is needed to serve it.
#[derive(Clone, Debug)]
pub struct StoredBlock {
    /// The block.
    pub block: Block,
    /// Its id.
    pub block_id: block::Id,
    /// The validators that sign it.
    pub validators: validator::Set,
    /// The commit made for it.
    pub commit: block::Commit,
}

/// The outcome of applying one block.
#[derive(Clone, Debug)]
pub struct StoredResults {
    /// The application's `FinalizeBlock` answer.
    pub results: pb::abci::ResponseFinalizeBlock,
    /// The chain state after the block.
    pub state: ChainState,
}

#[derive(Clone, PartialEq, Message)]
struct BlockRecord {
    #[prost(message, optional, tag = "1")]
    block: Option<pb::types::Block>,
    #[prost(message, optional, tag = "2")]
    block_id: Option<pb::types::BlockId>,
    #[prost(message, optional, tag = "3")]
    validators: Option<pb::types::ValidatorSet>,
    #[prost(message, optional, tag = "4")]
    commit: Option<pb::types::Commit>,
}

#[derive(Clone, PartialEq, Message)]
struct StateRecord {
    #[prost(message, optional, tag = "1")]
    results: Option<pb::abci::ResponseFinalizeBlock>,
    #[prost(string, tag = "2")]
    chain_id: String,
    #[prost(uint64, tag = "3")]
    initial_height: u64,
    #[prost(uint64, tag = "4")]
    last_block_height: u64,
    #[prost(message, optional, tag = "5")]
    last_block_id: Option<pb::types::BlockId>,
    #[prost(message, optional, tag = "6")]
    last_block_time: Option<Timestamp>,
    #[prost(uint64, tag = "7")]
    app_version: u64,
    #[prost(message, optional, tag = "8")]
    last_validators: Option<pb::types::ValidatorSet>,
    #[prost(message, optional, tag = "9")]
    validators: Option<pb::types::ValidatorSet>,
    #[prost(message, optional, tag = "10")]
    next_validators: Option<pb::types::ValidatorSet>,
    #[prost(message, optional, tag = "11")]
    consensus_params: Option<pb::types::ConsensusParams>,
    #[prost(bytes = "vec", tag = "12")]
    last_results_hash: Vec<u8>,
    #[prost(bytes = "vec", tag = "13")]
    app_hash: Vec<u8>,
}

#[derive(Default)]
struct Index {
    /// Heights that have a block record.
    blocks: Option<(u64, u64)>,
    /// Highest height with a state record.
    last_state: Option<u64>,
    /// Tx hash → (height, index) for every applied block.
    txs: BTreeMap<[u8; 32], (u64, u32)>,
    /// Block hash → height for every applied block.
    blocks_by_hash: BTreeMap<[u8; 32], u64>,
    /// Number of txs of every applied block.
    tx_counts: BTreeMap<u64, u32>,
    /// `(type.key, value)` of every tx event attribute the application marked for indexing →
    /// the txs that have it, as `CometBFT`'s kv tx indexer keeps them.
    attributes: BTreeMap<(String, String), BTreeSet<(u64, u32)>>,
    /// The same for the attributes of `FinalizeBlock`'s own events → the blocks that have it.
    block_attributes: BTreeMap<(String, String), BTreeSet<u64>>,
}

/// `(type.key, value)` of every event attribute the application marked for indexing.
fn marked_attributes(events: &[pb::abci::Event]) -> impl Iterator<Item = (String, String)> + '_ {
    events.iter().flat_map(|event| {
        event
            .attributes
            .iter()
            .filter(|a| a.index)
            .map(|a| (format!("{}.{}", event.r#type, a.key), a.value.clone()))
    })
}

impl Index {
    /// Makes an applied block (whose id is `block_id`), its txs and their indexed event
    /// attributes findable.
    fn add_block(
        &mut self,
        block: &Block,
        block_id: &block::Id,
        results: &pb::abci::ResponseFinalizeBlock,
    ) {
        let height = block.header.height.value();
        if let Ok(hash) = <[u8; 32]>::try_from(block_id.hash.as_bytes()) {
            self.blocks_by_hash.insert(hash, height);
        }
        self.tx_counts
            .insert(height, u32::try_from(block.data.len()).unwrap_or(u32::MAX));
        for key in marked_attributes(&results.events) {
            self.block_attributes.entry(key).or_default().insert(height);
        }
        for (i, tx) in block.data.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            self.txs.insert(Sha256::digest(tx).into(), (height, index));
            let Some(result) = results.tx_results.get(i) else {
                continue;
            };
            for key in marked_attributes(&result.events) {
                self.attributes
                    .entry(key)
                    .or_default()
                    .insert((height, index));
            }
        }
    }

    /// The applied blocks that meet every `key = value` condition (`block.height`, or a
    /// marked attribute of a `FinalizeBlock` event), in height order.
    fn search_blocks(&self, conditions: &[(String, String)]) -> Vec<u64> {
        meeting_all(conditions, |key, value| {
            if key == "block.height" {
                value
                    .parse::<u64>()
                    .ok()
                    .filter(|height| self.tx_counts.contains_key(height))
                    .into_iter()
                    .collect()
            } else {
                self.block_attributes
                    .get(&(key.to_owned(), value.to_owned()))
                    .cloned()
                    .unwrap_or_default()
            }
        })
    }

    /// The txs that meet every `key = value` condition, in block order.
    fn search(&self, conditions: &[(String, String)]) -> Vec<(u64, u32)> {
        meeting_all(conditions, |key, value| match key {
            "tx.hash" => hex::decode(value)
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .and_then(|hash| self.txs.get(&hash).copied())
                .into_iter()
                .collect(),
            "tx.height" => value
                .parse::<u64>()
                .ok()
                .and_then(|height| {
                    self.tx_counts
                        .get(&height)
                        .map(|count| (0..*count).map(|i| (height, i)).collect())
                })
                .unwrap_or_default(),
            _ => self
                .attributes
                .get(&(key.to_owned(), value.to_owned()))
                .cloned()
                .unwrap_or_default(),
        })
    }
}

/// What every condition's matches have in common, in order (nothing for no condition).
fn meeting_all<T: Ord + Copy>(
    conditions: &[(String, String)],
    matching: impl Fn(&str, &str) -> BTreeSet<T>,
) -> Vec<T> {
    let mut found: Option<BTreeSet<T>> = None;
    for (key, value) in conditions {
        let these = matching(key, value);
        found = Some(match found {
            None => these,
            Some(so_far) => so_far.intersection(&these).copied().collect(),
        });
    }
    found.unwrap_or_default().into_iter().collect()
}

/// The on-disk block store.
pub struct BlockStore {
    dir: PathBuf,
    index: RwLock<Index>,
}

impl BlockStore {
    /// Opens (or creates) the store in `dir` and indexes what it holds.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut blocks = Vec::new();
        let mut states = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(h) = name
                .strip_suffix(".block")
                .and_then(|h| h.parse::<u64>().ok())
            {
                blocks.push(h);
            } else if let Some(h) = name
                .strip_suffix(".state")
                .and_then(|h| h.parse::<u64>().ok())
            {
                states.push(h);
            }
        }
        blocks.sort_unstable();
        states.sort_unstable();
        let store = Self {
            dir: dir.to_path_buf(),
            index: RwLock::new(Index::default()),
        };
        let range = contiguous("block", &blocks)?;
        let state_range = contiguous("state", &states)?;
        if let (Some((b0, b1)), Some((s0, s1))) = (range, state_range) {
            if s0 != b0 || !(s1 == b1 || s1 + 1 == b1) {
                return Err(StoreError::Inconsistent(format!(
                    "blocks {b0}..={b1} but states {s0}..={s1}; states must cover the blocks, \
                     except possibly the last"
                )));
            }
        } else if state_range.is_some() {
            return Err(StoreError::Inconsistent("states without blocks".into()));
        } else if let Some((b0, b1)) = range {
            if b0 != b1 {
                return Err(StoreError::Inconsistent(format!(
                    "blocks {b0}..={b1} but no state"
                )));
            }
        }
        let mut index = Index {
            blocks: range,
            last_state: state_range.map(|(_, s1)| s1),
            ..Index::default()
        };
        for &h in &states {
            if let (Some(stored), Some(results)) = (store.block(h)?, store.results(h)?) {
                index.add_block(&stored.block, &stored.block_id, &results.results);
            }
        }
        *store
            .index
            .write()
            .expect("index lock is never poisoned: no panics while held") = index;
        Ok(store)
    }

    fn path(&self, height: u64, kind: &str) -> PathBuf {
        self.dir.join(format!("{height:020}.{kind}"))
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index
            .read()
            .expect("index lock is never poisoned: no panics while held")
    }

    /// Lowest and highest stored block heights.
    pub fn block_range(&self) -> Option<(u64, u64)> {
        self.read_index().blocks
    }

    /// Highest height whose state is stored (the last block applied).
    pub fn last_state_height(&self) -> Option<u64> {
        self.read_index().last_state
    }

    /// Where the tx with this hash was committed.
    pub fn tx_location(&self, hash: &[u8; 32]) -> Option<(u64, u32)> {
        self.read_index().txs.get(hash).copied()
    }

    /// The height of the applied block with this hash.
    pub fn block_height_by_hash(&self, hash: &[u8; 32]) -> Option<u64> {
        self.read_index().blocks_by_hash.get(hash).copied()
    }

    /// Saves block `H` (before it is finalized).
    pub fn save_block(&self, stored: &StoredBlock) -> Result<(), StoreError> {
        let height = stored.block.header.height.value();
        let record = BlockRecord {
            block: Some(stored.block.clone().into()),
            block_id: Some(stored.block_id.into()),
            validators: Some(stored.validators.clone().into()),
            commit: Some(stored.commit.clone().into()),
        };
        Self::write(&self.path(height, "block"), &record.encode_to_vec())?;
        let mut index = self
            .index
            .write()
            .expect("index lock is never poisoned: no panics while held");
        index.blocks = Some(match index.blocks {
            Some((low, _)) => (low, height),
            None => (height, height),
        });
        Ok(())
    }

    /// Saves the results and the new state of block `H` (before the application commits it).
    pub fn save_results(&self, stored: &StoredResults) -> Result<(), StoreError> {
        let height = stored.state.last_block_height;
        let s = &stored.state;
        let record = StateRecord {
            results: Some(stored.results.clone()),
            chain_id: s.chain_id.to_string(),
            initial_height: s.initial_height,
            last_block_height: s.last_block_height,
            last_block_id: s.last_block_id.map(Into::into),
            last_block_time: Some(s.last_block_time.into()),
            app_version: s.app_version,
            last_validators: Some(s.last_validators.clone().into()),
            validators: Some(s.validators.clone().into()),
            next_validators: Some(s.next_validators.clone().into()),
            consensus_params: Some(s.consensus_params.clone().into()),
            last_results_hash: s
                .last_results_hash
                .map(|h| h.as_bytes().to_vec())
                .unwrap_or_default(),
            app_hash: s.app_hash.as_bytes().to_vec(),
        };
        Self::write(&self.path(height, "state"), &record.encode_to_vec())?;
        self.index
            .write()
            .expect("index lock is never poisoned: no panics while held")
            .last_state = Some(height);
        Ok(())
    }

    /// Makes an applied block, its txs and their indexed event attributes findable. Called
    /// after the application committed the block, so `/tx` never shows a tx whose block is
    /// not committed yet.
    pub fn index_block_txs(
        &self,
        block: &Block,
        block_id: &block::Id,
        results: &pb::abci::ResponseFinalizeBlock,
    ) {
        self.index
            .write()
            .expect("index lock is never poisoned: no panics while held")
            .add_block(block, block_id, results);
    }

    /// The committed txs that meet every `key = value` condition (`tx.hash`, `tx.height`, or
    /// an indexed event attribute `type.key`), as `(height, index)` in block order.
    pub fn search_txs(&self, conditions: &[(String, String)]) -> Vec<(u64, u32)> {
        self.read_index().search(conditions)
    }

    /// The applied blocks that meet every `key = value` condition (`block.height`, or an
    /// indexed attribute of a `FinalizeBlock` event), in height order.
    pub fn search_blocks(&self, conditions: &[(String, String)]) -> Vec<u64> {
        self.read_index().search_blocks(conditions)
    }

    fn write(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let tmp = path.with_extension("tmp");
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    fn read(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Loads block `height`.
    pub fn block(&self, height: u64) -> Result<Option<StoredBlock>, StoreError> {
        let path = self.path(height, "block");
        let Some(bytes) = Self::read(&path)? else {
            return Ok(None);
        };
        let corrupt = |message: String| StoreError::Corrupt {
            path: path.clone(),
            message,
        };
        let record = BlockRecord::decode(bytes.as_slice()).map_err(|e| corrupt(e.to_string()))?;
        let block = Block::try_from(record.block.ok_or_else(|| corrupt("no block".into()))?)
            .map_err(|e| corrupt(e.to_string()))?;
        let block_id = block::Id::try_from(
            record
                .block_id
                .ok_or_else(|| corrupt("no block id".into()))?,
        )
        .map_err(|e| corrupt(e.to_string()))?;
        let validators = validator::Set::try_from(
            record
                .validators
                .ok_or_else(|| corrupt("no validators".into()))?,
        )
        .map_err(|e| corrupt(e.to_string()))?;
        let commit =
            block::Commit::try_from(record.commit.ok_or_else(|| corrupt("no commit".into()))?)
                .map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(StoredBlock {
            block,
            block_id,
            validators,
            commit,
        }))
    }

    /// Loads the results and state after block `height`.
    pub fn results(&self, height: u64) -> Result<Option<StoredResults>, StoreError> {
        let path = self.path(height, "state");
        let Some(bytes) = Self::read(&path)? else {
            return Ok(None);
        };
        let corrupt = |message: String| StoreError::Corrupt {
            path: path.clone(),
            message,
        };
        let r = StateRecord::decode(bytes.as_slice()).map_err(|e| corrupt(e.to_string()))?;
        let set = |raw: Option<pb::types::ValidatorSet>| {
            validator::Set::try_from(raw.unwrap_or_default()).map_err(|e| corrupt(e.to_string()))
        };
        let state = ChainState {
            chain_id: r
                .chain_id
                .parse()
                .map_err(|e: tendermint::Error| corrupt(e.to_string()))?,
            initial_height: r.initial_height,
            last_block_height: r.last_block_height,
            last_block_id: r
                .last_block_id
                .map(block::Id::try_from)
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?,
            last_block_time: r
                .last_block_time
                .ok_or_else(|| corrupt("no block time".into()))?
                .try_into()
                .map_err(|e: tendermint::Error| corrupt(e.to_string()))?,
            app_version: r.app_version,
            last_validators: set(r.last_validators)?,
            validators: set(r.validators)?,
            next_validators: set(r.next_validators)?,
            consensus_params: r
                .consensus_params
                .ok_or_else(|| corrupt("no consensus params".into()))?
                .try_into()
                .map_err(|e: tendermint::Error| corrupt(e.to_string()))?,
            last_results_hash: if r.last_results_hash.is_empty() {
                None
            } else {
                Some(
                    Hash::from_bytes(tendermint::hash::Algorithm::Sha256, &r.last_results_hash)
                        .map_err(|e| corrupt(e.to_string()))?,
                )
            },
            app_hash: AppHash::try_from(r.app_hash).map_err(|e| corrupt(e.to_string()))?,
        };
        Ok(Some(StoredResults {
            results: r.results.ok_or_else(|| corrupt("no results".into()))?,
            state,
        }))
    }
}

fn contiguous(kind: &str, heights: &[u64]) -> Result<Option<(u64, u64)>, StoreError> {
    let (Some(&first), Some(&last)) = (heights.first(), heights.last()) else {
        return Ok(None);
    };
    if last - first + 1 != heights.len() as u64 {
        return Err(StoreError::Inconsistent(format!(
            "{kind} records {first}..={last} have gaps ({} records)",
            heights.len()
        )));
    }
    Ok(Some((first, last)))
}
