//! [`App`]: the ABCI 2.0 state machine of `tandemd`.
//!
//! Consensus calls (InitChain, PrepareProposal, ProcessProposal, FinalizeBlock, Commit) are
//! serialized by one lock; CheckTx uses the mempool's own lock and Query and the read APIs use
//! committed snapshots, so none of them waits for a block being finalized.
//!
//! Caching rules: a PrepareProposal result is reused by ProcessProposal only for the same
//! height and byte-identical txs. ProcessProposal stages the block it accepts exactly as
//! FinalizeBlock would (the block's writes and app hash, its results and events, without
//! persisting), and FinalizeBlock reuses that only for the same block hash, height, txs, time
//! and proposer. Anything else is re-executed. Commit writes the staged block in one RocksDB
//! batch, then publishes the sequencer block to subscribers.
//!
//! ProcessProposal executes a block while its signatures are still being checked on the other
//! cores, and stages it before it waits for the checks: a proposal with any failing tx is
//! rejected whole, so nothing that ran ahead of a failed check is ever kept.

mod query;

pub use query::codes as query_codes;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use bytes::Bytes;
use cnidarium::{StagedWriteBatch, StateDelta, Storage};
use sha2::{Digest as _, Sha256};
use tandem_core::{Address, SequencerBlock, SequencerBlockHeader};
use tendermint::{
    abci::{types::ExecTxResult, Code},
    v0_38::abci::{request, response},
    validator, vote, AppHash, PublicKey,
};
use tokio::sync::{broadcast, Mutex};

use crate::{
    blocks::{StateReadExt as _, StateWriteExt as _, StoredTxResult},
    cached::InterBlockCache,
    exec::{execute_block, BlockCtx, BlockError, ExecutedBlock, Mode, SigCache, SignatureAudit},
    genesis::{GenesisAppState, GenesisError},
    mempool::Mempool,
    metrics::Metrics,
    state::StateError,
    validators,
};

/// Version string reported by Info.
const APP_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Protocol version of the state machine, reported by Info as `app_version`.
pub const PROTOCOL_VERSION: u64 = 1;

/// How to open an [`App`].
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// Directory holding the state (`<data_dir>/state`, a RocksDB database).
    pub data_dir: PathBuf,
    /// Entries kept in the verified-signature cache (0 disables it).
    pub sig_cache_capacity: usize,
    /// State keys whose committed values are kept between blocks (0 disables the cache).
    pub inter_block_cache_capacity: usize,
    /// Capacity of the committed-block broadcast channel.
    pub block_channel_capacity: usize,
    /// Where to record metrics (none: not recorded).
    pub metrics: Option<Arc<Metrics>>,
}

impl AppConfig {
    /// Defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("."),
            sig_cache_capacity: 200_000,
            inter_block_cache_capacity: 500_000,
            block_channel_capacity: 64,
            metrics: None,
        }
    }
}

/// A failure the node cannot answer around: the caller must log it and stop.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The storage could not be opened or written.
    #[error("storage failure: {0}")]
    Storage(String),
    /// Stored state is unreadable.
    #[error(transparent)]
    State(#[from] StateError),
    /// The genesis `app_state` was refused.
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    /// InitChain came for an already initialized chain with a different genesis.
    #[error("InitChain: {0}")]
    InitChain(String),
    /// A consensus call arrived before InitChain.
    #[error("chain not initialized: InitChain has not run")]
    NotInitialized,
    /// A consensus call arrived out of order (e.g. Commit without FinalizeBlock).
    #[error("consensus calls out of order: {0}")]
    OutOfOrder(String),
    /// A decided block cannot be executed as CometBFT decided it (this node diverges).
    #[error("decided block at height {height} is invalid for this node: {reason}")]
    InvalidBlock {
        /// The block height.
        height: u64,
        /// What was wrong.
        reason: String,
    },
    /// An address has no account.
    #[error("account {0} does not exist")]
    UnknownAccount(Address),
}

/// The status of a tx, by hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxStatus {
    /// Never seen (or evicted from the mempool).
    Unknown,
    /// Admitted by CheckTx since the last Commit, not yet in a block.
    Pending,
    /// In a committed block.
    Committed {
        /// Block height.
        height: u64,
        /// Index in the block's txs (the commitment item is index 0).
        index: u32,
        /// Result code (0 = success).
        code: u32,
        /// Result log.
        log: String,
    },
}

/// The Tandem state machine. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Storage,
    consensus: Mutex<Consensus>,
    mempool: Mutex<Mempool>,
    sig_cache: Arc<SigCache>,
    inter_block: Arc<InterBlockCache>,
    blocks: broadcast::Sender<Arc<SequencerBlock>>,
    latest_height: AtomicU64,
    metrics: Option<Arc<Metrics>>,
}

#[derive(Default)]
struct Consensus {
    prepared: Option<Proposal>,
    processed: Option<Processed>,
    finalized: Option<Finalized>,
}

/// An executed proposal and the exact txs (commitment item first) it was executed for.
struct Proposal {
    txs: Vec<Bytes>,
    block: ExecutedBlock,
}

/// What a block's header gives the block's staging (the sequencer block's header).
struct BlockInfo {
    height: u64,
    hash: [u8; 32],
    time: tendermint::Time,
    proposer_address: tendermint::account::Id,
}

/// A proposal ProcessProposal accepted, staged for the exact block it was asked about.
struct Processed {
    info: BlockInfo,
    txs: Vec<Bytes>,
    staged: Staged,
}

impl BlockInfo {
    fn new(
        height: tendermint::block::Height,
        hash: &tendermint::Hash,
        time: tendermint::Time,
        proposer_address: tendermint::account::Id,
    ) -> Self {
        Self {
            height: height.value(),
            hash: hash_bytes(hash),
            time,
            proposer_address,
        }
    }
}

impl Processed {
    fn is_for(&self, info: &BlockInfo, txs: &[Bytes]) -> bool {
        self.info.height == info.height
            && self.info.hash == info.hash
            && self.info.time == info.time
            && self.info.proposer_address == info.proposer_address
            && self.txs == txs
    }
}

/// A block ready for Commit, and FinalizeBlock's answer for it.
struct Staged {
    finalized: Finalized,
    response: response::FinalizeBlock,
}

struct Finalized {
    height: u64,
    batch: StagedWriteBatch,
    /// The block's verifiable writes (`None` deletes).
    writes: BTreeMap<String, Option<Vec<u8>>>,
    block: Arc<SequencerBlock>,
    tx_hashes: Vec<[u8; 32]>,
    txs: u64,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("latest_height", &self.latest_block_height())
            .finish_non_exhaustive()
    }
}

fn storage_err(context: &str, e: &dyn std::fmt::Display) -> AppError {
    AppError::Storage(format!("{context}: {e:#}"))
}

impl App {
    /// Opens (or creates) the state under `config.data_dir/state`.
    pub async fn open(config: AppConfig) -> Result<Self, AppError> {
        let path = config.data_dir.join("state");
        std::fs::create_dir_all(&path)
            .map_err(|e| storage_err(&format!("failed to create {}", path.display()), &e))?;
        let storage = Storage::load(path.clone(), vec![])
            .await
            .map_err(|e| storage_err(&format!("failed to open {}", path.display()), &e))?;
        let snapshot = storage.latest_snapshot();
        let height = snapshot.block_height().await?;
        let inter_block = Arc::new(InterBlockCache::new(config.inter_block_cache_capacity));
        let mempool = Mempool::new(snapshot, Arc::clone(&inter_block)).await?;
        let (blocks, _) = broadcast::channel(config.block_channel_capacity.max(1));
        if let Some(metrics) = &config.metrics {
            metrics.set_height(height);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                storage,
                consensus: Mutex::new(Consensus::default()),
                mempool: Mutex::new(mempool),
                sig_cache: Arc::new(SigCache::new(config.sig_cache_capacity)),
                inter_block,
                blocks,
                latest_height: AtomicU64::new(height),
                metrics: config.metrics.clone(),
            }),
        })
    }

    fn initialized(&self) -> bool {
        self.inner.storage.latest_version() != u64::MAX
    }

    /// Info: the last committed height and app hash.
    pub async fn info(&self, _request: request::Info) -> Result<response::Info, AppError> {
        let (height, app_hash) = if self.initialized() {
            let snapshot = self.inner.storage.latest_snapshot();
            let root = snapshot
                .root_hash()
                .await
                .map_err(|e| storage_err("failed to read the app hash", &e))?;
            (snapshot.block_height().await?, root.0.to_vec())
        } else {
            (0, Vec::new())
        };
        Ok(response::Info {
            data: "tandemd".to_string(),
            version: APP_VERSION.to_string(),
            app_version: PROTOCOL_VERSION,
            last_block_height: height_of(height)?,
            last_block_app_hash: app_hash_of(app_hash)?,
        })
    }

    /// InitChain: applies the genesis `app_state` and commits it as the state before the
    /// first block. A repeated InitChain with the same genesis (after a crash before block 1)
    /// returns the stored app hash.
    pub async fn init_chain(
        &self,
        request: request::InitChain,
    ) -> Result<response::InitChain, AppError> {
        let _consensus = self.inner.consensus.lock().await;
        let genesis_hash: [u8; 32] = Sha256::digest(&request.app_state_bytes).into();
        let storage = &self.inner.storage;
        if self.initialized() {
            let snapshot = storage.latest_snapshot();
            if snapshot.block_height().await? + 1 != request.initial_height.value()
                || snapshot.genesis_hash().await?.as_deref() != Some(genesis_hash.as_slice())
            {
                return Err(AppError::InitChain(
                    "the chain is already initialized with a different genesis; \
                     remove the data directory to start over"
                        .to_string(),
                ));
            }
            let root = snapshot
                .root_hash()
                .await
                .map_err(|e| storage_err("failed to read the app hash", &e))?;
            return Ok(response::InitChain {
                consensus_params: None,
                validators: vec![],
                app_hash: app_hash_of(root.0.to_vec())?,
            });
        }

        let genesis = GenesisAppState::from_json(&request.app_state_bytes)?;
        let mut state = StateDelta::new(storage.latest_snapshot());
        state.put_chain_id(&request.chain_id);
        state.put_block_height(request.initial_height.value().saturating_sub(1));
        genesis.apply(&mut state).await?;
        for update in &request.validators {
            let PublicKey::Ed25519(key) = update.pub_key else {
                return Err(AppError::InitChain(format!(
                    "genesis validator {update:?} is not ed25519; only ed25519 validators are supported"
                )));
            };
            let key: [u8; 32] = key.as_bytes().try_into().map_err(|_| {
                AppError::InitChain("ed25519 validator key is not 32 bytes".to_string())
            })?;
            validators::set_power(&mut state, &key, update.power.value())
                .await
                .map_err(|e| AppError::InitChain(format!("genesis validator: {e}")))?;
        }
        state.put_genesis_hash(&genesis_hash);
        let root = storage
            .commit(state)
            .await
            .map_err(|e| storage_err("failed to commit genesis", &e))?;
        self.inner.latest_height.store(
            request.initial_height.value().saturating_sub(1),
            Ordering::SeqCst,
        );
        self.inner
            .mempool
            .lock()
            .await
            .reset(storage.latest_snapshot(), &self.inner.inter_block)
            .await?;
        tracing::info!(chain_id = %request.chain_id, app_hash = %hex::encode(root.0), "genesis committed");
        Ok(response::InitChain {
            consensus_params: None,
            validators: vec![],
            app_hash: app_hash_of(root.0.to_vec())?,
        })
    }

    /// CheckTx (New and Recheck): decode, size, signature, sequence == pending sequence, fee
    /// and balance; an accepted tx advances the pending state.
    pub async fn check_tx(&self, request: request::CheckTx) -> response::CheckTx {
        let mut mempool = self.inner.mempool.lock().await;
        let result = mempool.check(&request.tx, &self.inner.sig_cache).await;
        if let Some(metrics) = &self.inner.metrics {
            match &result {
                Ok(_) => metrics.record_check_tx(true, "ok"),
                Err(e) => metrics.record_check_tx(false, e.reason()),
            }
        }
        match result {
            Ok(_) => response::CheckTx::default(),
            Err(e) => {
                // A rejection is the sender's problem and stays at DEBUG (a spammer must not
                // flood the log); failing to read state is the node's, and an error.
                if e.code() == crate::error::codes::INTERNAL {
                    tracing::error!(error = %e, kind = ?request.kind, "CheckTx failed reading state");
                } else {
                    tracing::debug!(code = e.code(), reason = e.reason(), error = %e, kind = ?request.kind, "CheckTx rejected");
                }
                response::CheckTx {
                    code: Code::from(e.code()),
                    log: e.to_string(),
                    codespace: "tandem".to_string(),
                    ..response::CheckTx::default()
                }
            }
        }
    }

    async fn ctx(&self) -> Result<BlockCtx, AppError> {
        BlockCtx::load(&self.inner.storage.latest_snapshot())
            .await?
            .ok_or(AppError::NotInitialized)
    }

    fn check_height(&self, height: u64, call: &str) -> Result<(), AppError> {
        let expected = self.latest_block_height().saturating_add(1);
        if height == expected {
            Ok(())
        } else {
            Err(AppError::OutOfOrder(format!(
                "{call} for height {height}, but the next height is {expected}"
            )))
        }
    }

    /// PrepareProposal: executes CometBFT's candidates against a fork of committed state,
    /// drops those that fail or do not fit, and puts the commitment item first.
    pub async fn prepare_proposal(
        &self,
        request: request::PrepareProposal,
    ) -> Result<response::PrepareProposal, AppError> {
        let mut consensus = self.inner.consensus.lock().await;
        let _phase = Phase::start(self.inner.metrics.as_ref(), "prepare_proposal");
        let height = request.height.value();
        self.check_height(height, "PrepareProposal")?;
        let ctx = self.ctx().await?;
        let max_tx_bytes = u64::try_from(request.max_tx_bytes).unwrap_or(0);
        let (block, audit) = execute_block(
            self.inner.storage.latest_snapshot(),
            height,
            &request.txs,
            Mode::Prepare { max_tx_bytes },
            &ctx,
            &self.inner.sig_cache,
            &self.inner.inter_block,
        )
        .await
        .map_err(|e| block_error(height, e))?;
        audit.finish().await.map_err(|e| block_error(height, e))?;
        let mut txs = Vec::with_capacity(block.txs.len() + 1);
        txs.push(Bytes::from(block.commitment_item.clone()));
        txs.extend(block.txs.iter().cloned());
        tracing::debug!(
            height,
            candidates = request.txs.len(),
            included = block.txs.len(),
            "prepared proposal"
        );
        consensus.prepared = Some(Proposal {
            txs: txs.clone(),
            block,
        });
        Ok(response::PrepareProposal { txs })
    }

    /// ProcessProposal: re-executes the proposal and rejects it when the commitment item is
    /// missing or wrong, a tx is malformed, fails or breaks a size limit.
    pub async fn process_proposal(
        &self,
        request: request::ProcessProposal,
    ) -> Result<response::ProcessProposal, AppError> {
        let _phase = Phase::start(self.inner.metrics.as_ref(), "process_proposal");
        self.process_proposal_inner(request).await
    }

    async fn process_proposal_inner(
        &self,
        request: request::ProcessProposal,
    ) -> Result<response::ProcessProposal, AppError> {
        let mut consensus = self.inner.consensus.lock().await;
        let info = BlockInfo::new(
            request.height,
            &request.hash,
            request.time,
            request.proposer_address,
        );
        self.check_height(info.height, "ProcessProposal")?;
        if let Some(p) = &consensus.processed {
            if p.is_for(&info, &request.txs) {
                return Ok(response::ProcessProposal::Accept);
            }
        }
        match self.accept(&mut consensus, &info, &request.txs).await {
            Ok(staged) => {
                consensus.processed = Some(Processed {
                    info,
                    txs: request.txs,
                    staged,
                });
                Ok(response::ProcessProposal::Accept)
            }
            Err(AppError::InvalidBlock { reason, .. }) => Ok(reject(&info, &reason)),
            Err(e) => Err(e),
        }
    }

    /// ProcessProposal's work: executes the proposal `txs` (or takes PrepareProposal's result
    /// for them) and stages it, then waits for its signature checks. An invalid block is an
    /// [`AppError::InvalidBlock`], which ProcessProposal answers with Reject.
    async fn accept(
        &self,
        consensus: &mut Consensus,
        info: &BlockInfo,
        txs: &[Bytes],
    ) -> Result<Staged, AppError> {
        let height = info.height;
        let (block, audit) = match consensus.prepared.take() {
            Some(p) if p.block.height == height && p.txs == txs => {
                (p.block, SignatureAudit::none())
            }
            prepared => {
                consensus.prepared = prepared;
                self.execute_proposal(height, txs, Mode::Process)
                    .await
                    .map_err(|e| block_error(height, e))?
            }
        };
        // A signature already known to fail rejects the block without staging it.
        let audit = if audit.failed() {
            audit.finish().await.map_err(|e| block_error(height, e))?;
            SignatureAudit::none()
        } else {
            audit
        };
        // Staged while the signature checks may still be running; kept only if they pass.
        let staged = self.stage(block, txs, info).await?;
        audit.finish().await.map_err(|e| block_error(height, e))?;
        Ok(staged)
    }

    /// Executes a full block (commitment item first) and checks the item against the result.
    async fn execute_proposal(
        &self,
        height: u64,
        txs: &[Bytes],
        mode: Mode,
    ) -> Result<(ExecutedBlock, SignatureAudit), BlockError> {
        let ctx = BlockCtx::load(&self.inner.storage.latest_snapshot())
            .await?
            .ok_or_else(|| BlockError::Invalid("chain not initialized".to_string()))?;
        let Some((item, user_txs)) = txs.split_first() else {
            return Err(BlockError::Invalid(
                "the block has no commitment item (it is empty)".to_string(),
            ));
        };
        if let Err(e) = tandem_core::decode_commitment_item(item) {
            return Err(BlockError::Invalid(format!(
                "txs[0] is not a valid commitment item: {e}"
            )));
        }
        let (block, audit) = execute_block(
            self.inner.storage.latest_snapshot(),
            height,
            user_txs,
            mode,
            &ctx,
            &self.inner.sig_cache,
            &self.inner.inter_block,
        )
        .await?;
        if block.commitment_item.as_slice() != item.as_ref() {
            return Err(BlockError::Invalid(
                "the commitment item does not match the block's rollup data \
                 (tampered, reordered or missing data)"
                    .to_string(),
            ));
        }
        Ok((block, audit))
    }

    /// FinalizeBlock: takes the block ProcessProposal staged for the same block hash (or
    /// executes and stages the decided block) and returns one result per tx, the validator
    /// updates and the app hash. Nothing is persisted until Commit.
    pub async fn finalize_block(
        &self,
        request: request::FinalizeBlock,
    ) -> Result<response::FinalizeBlock, AppError> {
        let mut consensus = self.inner.consensus.lock().await;
        let _phase = Phase::start(self.inner.metrics.as_ref(), "finalize_block");
        let info = BlockInfo::new(
            request.height,
            &request.hash,
            request.time,
            request.proposer_address,
        );
        self.check_height(info.height, "FinalizeBlock")?;
        let processed = consensus
            .processed
            .take()
            .filter(|p| p.is_for(&info, &request.txs));
        consensus.prepared = None;
        let staged = if let Some(p) = processed {
            p.staged
        } else {
            let height = info.height;
            let (block, audit) = self
                .execute_proposal(height, &request.txs, Mode::Finalize)
                .await
                .map_err(|e| block_error(height, e))?;
            audit.finish().await.map_err(|e| block_error(height, e))?;
            self.stage(block, &request.txs, &info).await?
        };
        consensus.finalized = Some(staged.finalized);
        Ok(staged.response)
    }

    /// Stages an executed block for Commit: its sequencer block and tx results (non-verifiable)
    /// and the JMT update that gives the app hash, with FinalizeBlock's answer. Persists
    /// nothing.
    async fn stage(
        &self,
        block: ExecutedBlock,
        txs: &[Bytes],
        info: &BlockInfo,
    ) -> Result<Staged, AppError> {
        let height = info.height;
        let ctx = self.ctx().await?;

        // The data_hash tree from the tx hashes execution computed (sha256 of each tx), so
        // the block's bytes are not hashed again.
        let Some(item) = txs.first() else {
            return Err(AppError::InvalidBlock {
                height,
                reason: "the block has no commitment item (it is empty)".to_string(),
            });
        };
        let mut tx_hashes = Vec::with_capacity(txs.len());
        tx_hashes.push(crate::exec::tx_hash(item));
        if block.results.len() + 1 == txs.len() {
            tx_hashes.extend(block.results.iter().map(|r| r.hash));
        } else {
            tx_hashes.extend(txs[1..].iter().map(|tx| crate::exec::tx_hash(tx)));
        }
        let tx_tree = tandem_core::MerkleTree::from_tx_hashes(&tx_hashes);
        let header = SequencerBlockHeader {
            chain_id: ctx.chain_id.clone(),
            height,
            time: info.time,
            data_hash: tx_tree.root(),
            proposer_address: info.proposer_address.as_bytes().try_into().map_err(|_| {
                AppError::InvalidBlock {
                    height,
                    reason: "proposer address is not 20 bytes".to_string(),
                }
            })?,
        };

        let ExecutedBlock {
            mut state,
            results,
            validator_updates,
            rollup_data,
            writes,
            ..
        } = block;
        let sequencer_block =
            SequencerBlock::from_tx_tree(header, info.hash, item.to_vec(), &tx_tree, rollup_data)
                .map_err(|e| AppError::InvalidBlock {
                height,
                reason: e.to_string(),
            })?;
        state.put_sequencer_block(&sequencer_block);
        let tx_hashes = store_results(&mut state, height, &results);
        let updates = validator_updates_of(height, validator_updates)?;

        // The JMT update and the rendering of the results' events are independent: run
        // them side by side.
        let rendered = tokio::task::spawn_blocking(move || render_results(results));
        let batch = self
            .inner
            .storage
            .prepare_commit(state)
            .await
            .map_err(|e| storage_err("failed to stage the block's writes", &e))?;
        let tx_results = rendered
            .await
            .map_err(|e| storage_err("rendering tx results failed", &e))?;
        let app_hash = batch.root_hash().0.to_vec();
        Ok(Staged {
            finalized: Finalized {
                height,
                batch,
                writes,
                block: Arc::new(sequencer_block),
                tx_hashes,
                txs: u64::try_from(txs.len()).unwrap_or(u64::MAX),
            },
            response: response::FinalizeBlock {
                events: vec![crate::exec::indexed_event(
                    "block",
                    [("height", height.to_string())],
                )],
                tx_results,
                validator_updates: updates,
                consensus_param_updates: None,
                app_hash: app_hash_of(app_hash)?,
            },
        })
    }

    /// Commit: persists the finalized block atomically, resets the mempool's pending state to
    /// the new committed state and publishes the sequencer block.
    pub async fn commit(&self) -> Result<response::Commit, AppError> {
        let mut consensus = self.inner.consensus.lock().await;
        let _phase = Phase::start(self.inner.metrics.as_ref(), "commit");
        let finalized = consensus
            .finalized
            .take()
            .ok_or_else(|| AppError::OutOfOrder("Commit without FinalizeBlock".to_string()))?;
        consensus.prepared = None;
        consensus.processed = None;
        let storage = self.inner.storage.clone();
        let batch = finalized.batch;
        let version = batch.version();
        tokio::task::spawn_blocking(move || storage.commit_batch(batch))
            .await
            .map_err(|e| storage_err("commit task failed", &e))?
            .map_err(|e| storage_err("failed to commit the block", &e))?;
        self.inner.inter_block.advance(version, &finalized.writes);
        self.inner
            .latest_height
            .store(finalized.height, Ordering::SeqCst);
        self.inner
            .mempool
            .lock()
            .await
            .reset(
                self.inner.storage.latest_snapshot(),
                &self.inner.inter_block,
            )
            .await?;
        self.inner.sig_cache.remove_all(&finalized.tx_hashes);
        if let Some(metrics) = &self.inner.metrics {
            let bytes: Vec<(tandem_core::RollupId, u64)> = finalized
                .block
                .rollup_transactions()
                .iter()
                .map(|r| {
                    let len: usize = r.transactions().iter().map(Vec::len).sum();
                    (*r.rollup_id(), u64::try_from(len).unwrap_or(u64::MAX))
                })
                .collect();
            metrics.record_block(finalized.height, finalized.txs, &bytes);
        }
        // No subscriber is not an error.
        let _ = self.inner.blocks.send(finalized.block);
        Ok(response::Commit {
            data: Bytes::new(),
            retain_height: 0u32.into(),
        })
    }

    /// Query: Cosmos SDK and Tandem paths, optionally with ICS23 proofs (see the README).
    pub async fn query(&self, request: request::Query) -> response::Query {
        query::query(self, request).await
    }

    /// Simulates the unsigned tx `bytes` on the mempool's pending state (thrown away after) and
    /// returns the fee it needs and its gas limit.
    pub(crate) async fn simulate(
        &self,
        bytes: &[u8],
    ) -> Result<(u128, u64), crate::error::ExecError> {
        self.inner.mempool.lock().await.simulate(bytes).await
    }

    /// The sequencer block committed at `height`.
    pub async fn sequencer_block(&self, height: u64) -> Result<Option<SequencerBlock>, AppError> {
        Ok(self
            .inner
            .storage
            .latest_snapshot()
            .sequencer_block(height)
            .await?)
    }

    /// The last committed height (0 before the first block).
    pub fn latest_block_height(&self) -> u64 {
        self.inner.latest_height.load(Ordering::SeqCst)
    }

    /// Committed sequencer blocks, sent right after each Commit persists.
    pub fn subscribe_blocks(&self) -> broadcast::Receiver<Arc<SequencerBlock>> {
        self.inner.blocks.subscribe()
    }

    /// `(next sequence, account number)` of `address` including txs pending in the mempool.
    pub async fn pending_sequence(&self, address: &Address) -> Result<(u64, u64), AppError> {
        let mempool = self.inner.mempool.lock().await;
        let (sequence, number) = mempool.pending_sequence(address).await?;
        let number = number.ok_or(AppError::UnknownAccount(*address))?;
        Ok((sequence, number))
    }

    /// Where a tx stands, by hash.
    pub async fn tx_status(&self, hash: &[u8; 32]) -> Result<TxStatus, AppError> {
        let snapshot = self.inner.storage.latest_snapshot();
        if let Some(r) = snapshot.tx_result(hash).await? {
            return Ok(TxStatus::Committed {
                height: r.height,
                index: r.index,
                code: r.code,
                log: r.log,
            });
        }
        if self.inner.mempool.lock().await.is_pending(hash) {
            return Ok(TxStatus::Pending);
        }
        Ok(TxStatus::Unknown)
    }

    /// Closes the storage, waiting until RocksDB is released, so the same data directory can
    /// be reopened in this process. Anything finalized but not committed is dropped, exactly
    /// as in a crash. When other clones of this `App` are alive, they keep the storage open
    /// and this only drops this handle.
    pub async fn shutdown(self) {
        let Ok(inner) = Arc::try_unwrap(self.inner) else {
            return;
        };
        let Inner {
            storage,
            consensus,
            mempool,
            ..
        } = inner;
        drop(consensus);
        drop(mempool);
        storage.release().await;
    }

    fn storage(&self) -> &Storage {
        &self.inner.storage
    }
}

/// Stores each tx result (non-verifiable, for lookups by hash); returns the tx hashes.
fn store_results(
    state: &mut StateDelta<cnidarium::Snapshot>,
    height: u64,
    results: &[crate::exec::TxResult],
) -> Vec<[u8; 32]> {
    for (index, result) in (1u32..).zip(results) {
        state.put_tx_result(
            &result.hash,
            &StoredTxResult {
                height,
                index,
                code: result.code,
                log: result.log.clone(),
            },
        );
    }
    results.iter().map(|r| r.hash).collect()
}

/// The `ExecTxResult`s of a block, the commitment item's first; events are rendered on all
/// cores.
fn render_results(results: Vec<crate::exec::TxResult>) -> Vec<ExecTxResult> {
    let mut tx_results = Vec::with_capacity(results.len() + 1);
    tx_results.push(ExecTxResult {
        log: "block commitments".to_string(),
        ..ExecTxResult::default()
    });
    tx_results.extend(crate::exec::par_map(results, |result| {
        let events = result
            .executed
            .as_deref()
            .map(crate::exec::tx_events)
            .unwrap_or_default();
        ExecTxResult {
            code: Code::from(result.code),
            log: result.log,
            events,
            codespace: if result.code == 0 {
                String::new()
            } else {
                "tandem".to_string()
            },
            ..ExecTxResult::default()
        }
    }));
    tx_results
}

/// The block's validator updates as CometBFT types, sorted by key.
fn validator_updates_of(
    height: u64,
    updates: std::collections::BTreeMap<[u8; 32], u64>,
) -> Result<Vec<validator::Update>, AppError> {
    updates
        .into_iter()
        .map(|(key, power)| {
            Ok(validator::Update {
                pub_key: PublicKey::from_raw_ed25519(&key).ok_or_else(|| {
                    AppError::InvalidBlock {
                        height,
                        reason: format!("validator key {} is not ed25519", hex::encode(key)),
                    }
                })?,
                power: vote::Power::try_from(power).map_err(|e| AppError::InvalidBlock {
                    height,
                    reason: format!("validator power {power}: {e}"),
                })?,
            })
        })
        .collect()
}

/// A block phase being timed: marked in progress from creation, its duration observed and
/// the mark cleared when dropped, on every path out of the phase (metrics only; never feeds
/// state).
struct Phase<'a> {
    metrics: Option<&'a Arc<Metrics>>,
    name: &'static str,
    start: Instant,
}

impl<'a> Phase<'a> {
    fn start(metrics: Option<&'a Arc<Metrics>>, name: &'static str) -> Self {
        if let Some(metrics) = metrics {
            metrics.set_phase_in_progress(name, true);
        }
        Self {
            metrics,
            name,
            start: Instant::now(),
        }
    }
}

impl Drop for Phase<'_> {
    fn drop(&mut self) {
        if let Some(metrics) = self.metrics {
            metrics.observe_phase(self.name, self.start.elapsed().as_secs_f64());
            metrics.set_phase_in_progress(self.name, false);
        }
    }
}

/// Logs why a proposal is rejected and rejects it.
fn reject(info: &BlockInfo, reason: &str) -> response::ProcessProposal {
    tracing::warn!(height = info.height, block_hash = %hex::encode_upper(info.hash), %reason, "rejecting proposal");
    response::ProcessProposal::Reject
}

fn block_error(height: u64, e: BlockError) -> AppError {
    match e {
        BlockError::State(e) => AppError::State(e),
        BlockError::Invalid(reason) => AppError::InvalidBlock { height, reason },
    }
}

fn hash_bytes(hash: &tendermint::Hash) -> [u8; 32] {
    let mut out = [0u8; 32];
    let bytes = hash.as_bytes();
    if bytes.len() == 32 {
        out.copy_from_slice(bytes);
    }
    out
}

fn height_of(height: u64) -> Result<tendermint::block::Height, AppError> {
    tendermint::block::Height::try_from(height)
        .map_err(|e| AppError::Storage(format!("stored height {height} is invalid: {e}")))
}

fn app_hash_of(bytes: Vec<u8>) -> Result<AppHash, AppError> {
    AppHash::try_from(bytes).map_err(|e| AppError::Storage(format!("invalid app hash: {e}")))
}

impl crate::server::Application for App {
    type Error = AppError;

    async fn info(&self, request: request::Info) -> Result<response::Info, AppError> {
        App::info(self, request).await
    }

    async fn query(&self, request: request::Query) -> response::Query {
        App::query(self, request).await
    }

    async fn check_tx(&self, request: request::CheckTx) -> response::CheckTx {
        App::check_tx(self, request).await
    }

    async fn init_chain(
        &self,
        request: request::InitChain,
    ) -> Result<response::InitChain, AppError> {
        App::init_chain(self, request).await
    }

    async fn prepare_proposal(
        &self,
        request: request::PrepareProposal,
    ) -> Result<response::PrepareProposal, AppError> {
        App::prepare_proposal(self, request).await
    }

    async fn process_proposal(
        &self,
        request: request::ProcessProposal,
    ) -> Result<response::ProcessProposal, AppError> {
        App::process_proposal(self, request).await
    }

    async fn finalize_block(
        &self,
        request: request::FinalizeBlock,
    ) -> Result<response::FinalizeBlock, AppError> {
        App::finalize_block(self, request).await
    }

    async fn commit(&self) -> Result<response::Commit, AppError> {
        App::commit(self).await
    }
}

impl crate::grpc::BlockSource for App {
    type Address = Address;

    async fn sequencer_block(
        &self,
        height: u64,
    ) -> Result<Option<Arc<SequencerBlock>>, crate::grpc::SourceError> {
        Ok(App::sequencer_block(self, height).await?.map(Arc::new))
    }

    fn latest_block_height(&self) -> u64 {
        App::latest_block_height(self)
    }

    fn subscribe_blocks(&self) -> broadcast::Receiver<Arc<SequencerBlock>> {
        App::subscribe_blocks(self)
    }

    async fn pending_sequence(
        &self,
        address: &Address,
    ) -> Result<Option<(u64, u64)>, crate::grpc::SourceError> {
        match App::pending_sequence(self, address).await {
            Ok(found) => Ok(Some(found)),
            Err(AppError::UnknownAccount(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn tx_status(
        &self,
        hash: &[u8; 32],
    ) -> Result<crate::grpc::TxLocation, crate::grpc::SourceError> {
        Ok(match App::tx_status(self, hash).await? {
            TxStatus::Unknown => crate::grpc::TxLocation::Unknown,
            TxStatus::Pending => crate::grpc::TxLocation::Pending,
            TxStatus::Committed {
                height,
                index,
                code,
                log,
            } => crate::grpc::TxLocation::Committed {
                height,
                index,
                code,
                log,
            },
        })
    }
}
