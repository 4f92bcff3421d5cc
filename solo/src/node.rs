//! The node: handshake with the application, then make, sign, store and apply blocks.
//!
//! One consensus task owns the chain state. It connects to the application, runs the
//! handshake (Info, `InitChain` at height 0, replay of stored blocks the application lacks, and
//! the block saved but not yet applied before a crash), then makes one block per round:
//! `PrepareProposal` → `ProcessProposal` → sign the precommit → save → `FinalizeBlock` → save state
//! → Commit → mempool update and recheck → publish events. If the application connection
//! breaks, the task reconnects and repeats the handshake; a restart of this process does the
//! same from the block store.

use std::{sync::Arc, time::Duration};

use tendermint::{account, block::Height, Block, PublicKey, Time};
use tendermint_proto::v0_38::{
    abci::{
        self as pba, RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
        RequestProcessProposal,
    },
    types::ConsensusParams as RawParams,
};
use tokio::{net::TcpListener, sync::broadcast, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tracing::{info, instrument, warn};

use crate::{
    abci::{connect_with_retry, AbciError, AppConnections},
    chain::{self, ChainError, ChainState},
    config::NodeConfig,
    mempool::{Mempool, UpdateGuard},
    rpc,
    store::{BlockStore, StoreError, StoredBlock, StoredResults},
};

/// The `CometBFT` version whose protocol this host speaks, reported by `/status`.
pub const COMETBFT_VERSION: &str = "0.38.17";
/// ABCI protocol version sent in the Info handshake.
pub const ABCI_VERSION: &str = "2.0.0";
/// P2P protocol version reported by `/status` and sent in Info.
pub(crate) const P2P_PROTOCOL: u64 = 8;

/// The `InitChain` request for `genesis`, exactly as the handshake sends it (so that a test or
/// tool can replay a chain against an application the same way).
///
/// # Errors
/// When the genesis `app_state` cannot be encoded as JSON.
pub fn init_chain_request(
    genesis: &tendermint::Genesis<serde_json::Value>,
) -> Result<RequestInitChain, serde_json::Error> {
    Ok(RequestInitChain {
        time: Some(genesis.genesis_time.into()),
        chain_id: genesis.chain_id.to_string(),
        consensus_params: Some(RawParams::from(genesis.consensus_params.clone())),
        validators: genesis
            .validators
            .iter()
            .map(|v| pba::ValidatorUpdate {
                pub_key: Some(v.pub_key.into()),
                power: i64::try_from(v.power.value()).unwrap_or(i64::MAX),
            })
            .collect(),
        app_state_bytes: serde_json::to_vec(&genesis.app_state)?.into(),
        initial_height: genesis.initial_height,
    })
}

/// Fatal node errors.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The block store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The application's answers cannot be applied.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The application is not consistent with the block store.
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The application broke the ABCI contract.
    #[error("application error at height {height}: {message}")]
    App {
        /// The block height.
        height: u64,
        /// What was wrong.
        message: String,
    },
    /// The RPC listener could not be bound.
    #[error("failed to bind the RPC listener on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// A task ended abnormally.
    #[error("node task failed: {0}")]
    Task(String),
    /// The application answered a call with an exception or the wrong response. `CometBFT`
    /// stops on this too; reconnecting would only repeat the call.
    #[error("{0}; stopping, as CometBFT does")]
    Abci(AbciError),
}

/// A block that was committed, with the application's results, as published to subscribers.
#[derive(Debug)]
pub struct BlockEvent {
    /// The block.
    pub block: Block,
    /// Its id.
    pub block_id: tendermint::block::Id,
    /// The application's `FinalizeBlock` answer.
    pub results: pba::ResponseFinalizeBlock,
}

/// State shared between the consensus task and the RPC server.
pub(crate) struct Shared {
    pub(crate) config: NodeConfig,
    pub(crate) store: BlockStore,
    pub(crate) mempool: Arc<Mempool>,
    pub(crate) state: std::sync::RwLock<Option<ChainState>>,
    pub(crate) genesis_validators: std::sync::RwLock<Option<tendermint::validator::Set>>,
    pub(crate) conns: std::sync::RwLock<Option<AppConnections>>,
    pub(crate) events: broadcast::Sender<Arc<BlockEvent>>,
    pub(crate) validator_key: PublicKey,
    /// The last height whose post-Commit work is done: its txs indexed and removed from the
    /// mempool, its event published. It trails the state when a Commit failed (the
    /// application died): the next handshake finishes those heights, so a tx that a block
    /// already holds is never proposed again.
    finished_height: std::sync::Mutex<u64>,
}

impl Shared {
    pub(crate) fn state(&self) -> Option<ChainState> {
        self.state
            .read()
            .expect("state lock is never poisoned: no panics while held")
            .clone()
    }

    pub(crate) fn conns(&self) -> Option<AppConnections> {
        self.conns
            .read()
            .expect("conns lock is never poisoned: no panics while held")
            .clone()
    }

    fn set_conns(&self, conns: Option<AppConnections>) {
        *self
            .conns
            .write()
            .expect("conns lock is never poisoned: no panics while held") = conns;
    }

    fn set_state(&self, state: ChainState) {
        *self
            .state
            .write()
            .expect("state lock is never poisoned: no panics while held") = Some(state);
    }
}

/// A running node.
pub struct NodeHandle {
    rpc_addr: std::net::SocketAddr,
    cancel: CancellationToken,
    consensus: JoinHandle<Result<(), NodeError>>,
    rpc: JoinHandle<()>,
}

impl NodeHandle {
    /// The address the JSON-RPC server listens on.
    pub fn rpc_addr(&self) -> std::net::SocketAddr {
        self.rpc_addr
    }

    /// Stops the node and waits for its tasks.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.cancel.cancel();
        let result = self
            .consensus
            .await
            .map_err(|e| NodeError::Task(e.to_string()))?;
        let _ = self.rpc.await;
        result
    }

    /// Waits until the consensus task ends (a fatal error, or shutdown).
    pub async fn wait(&mut self) -> Result<(), NodeError> {
        let result = (&mut self.consensus)
            .await
            .map_err(|e| NodeError::Task(e.to_string()));
        self.cancel.cancel();
        result?
    }

    /// A token that stops the node when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Opens the block store, binds the RPC listener and starts the node.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    let store = BlockStore::open(&config.db_dir.join("solo-blocks"))?;
    let listener = TcpListener::bind(config.rpc_laddr)
        .await
        .map_err(|source| NodeError::Bind {
            addr: config.rpc_laddr,
            source,
        })?;
    let rpc_addr = listener.local_addr().map_err(|source| NodeError::Bind {
        addr: config.rpc_laddr,
        source,
    })?;
    let (events, _) = broadcast::channel(256);
    let shared = Arc::new(Shared {
        // The store indexed every applied block when it opened, and the mempool starts empty.
        finished_height: std::sync::Mutex::new(store.last_state_height().unwrap_or(0)),
        mempool: Arc::new(Mempool::new(config.mempool)),
        validator_key: config.validator_pub_key(),
        config,
        store,
        state: std::sync::RwLock::new(None),
        genesis_validators: std::sync::RwLock::new(None),
        conns: std::sync::RwLock::new(None),
        events,
    });
    let cancel = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let consensus = tokio::spawn(run_consensus(shared.clone(), cancel.clone(), ready_tx));
    let rpc = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            // Serve only once the first handshake is done, so no client sees a half-built state.
            tokio::select! {
                ready = ready_rx => if ready.is_err() { return },
                () = cancel.cancelled() => return,
            }
            rpc::serve(listener, shared, cancel).await;
        }
    });
    Ok(NodeHandle {
        rpc_addr,
        cancel,
        consensus,
        rpc,
    })
}

async fn run_consensus(
    shared: Arc<Shared>,
    cancel: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
) -> Result<(), NodeError> {
    let mut ready = Some(ready);
    let result = async {
        loop {
            let conns = match connect_with_retry(&shared.config.proxy_app, &cancel, None).await {
                Ok(conns) => conns,
                Err(_) if cancel.is_cancelled() => return Ok(()),
                Err(e) => return Err(NodeError::Handshake(e.to_string())),
            };
            let mut node = Consensus {
                shared: shared.clone(),
                conns: conns.clone(),
                cancel: cancel.clone(),
            };
            match node.handshake().await {
                Ok(()) => {}
                Err(Step::Abci(_)) if cancel.is_cancelled() => return Ok(()),
                Err(Step::Abci(e)) => {
                    warn!(error = %e, "application connection lost during the handshake; reconnecting");
                    conns.close();
                    continue;
                }
                Err(Step::Fatal(e)) => return Err(e),
            }
            shared.set_conns(Some(conns.clone()));
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            match node.produce_blocks().await {
                Ok(()) => return Ok(()),
                Err(Step::Abci(_)) if cancel.is_cancelled() => return Ok(()),
                Err(Step::Abci(e)) => {
                    warn!(error = %e, "application connection lost; reconnecting and repeating the handshake");
                    shared.set_conns(None);
                    conns.close();
                }
                Err(Step::Fatal(e)) => return Err(e),
            }
        }
    }
    .await;
    if let Some(conns) = shared.conns() {
        conns.close();
    }
    if let Err(e) = &result {
        tracing::error!(error = %e, "consensus stopped");
    }
    result
}

/// Why a step stopped: the application connection (retry) or anything else (fatal).
enum Step {
    Abci(AbciError),
    Fatal(NodeError),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Abci(e) => e.fmt(f),
            Self::Fatal(e) => e.fmt(f),
        }
    }
}

impl From<AbciError> for Step {
    fn from(e: AbciError) -> Self {
        match e {
            AbciError::Exception { .. } | AbciError::UnexpectedResponse { .. } => {
                Self::Fatal(NodeError::Abci(e))
            }
            AbciError::Connect { .. } | AbciError::Closed { .. } => Self::Abci(e),
        }
    }
}

impl From<NodeError> for Step {
    fn from(e: NodeError) -> Self {
        Self::Fatal(e)
    }
}

impl From<StoreError> for Step {
    fn from(e: StoreError) -> Self {
        Self::Fatal(e.into())
    }
}

impl From<ChainError> for Step {
    fn from(e: ChainError) -> Self {
        Self::Fatal(e.into())
    }
}

struct Consensus {
    shared: Arc<Shared>,
    conns: AppConnections,
    cancel: CancellationToken,
}

impl Consensus {
    fn config(&self) -> &NodeConfig {
        &self.shared.config
    }

    fn address(&self) -> account::Id {
        account::Id::from(self.shared.validator_key)
    }

    #[instrument(skip_all, err(Display))]
    async fn handshake(&mut self) -> Result<(), Step> {
        let info = self
            .conns
            .query
            .info(RequestInfo {
                version: COMETBFT_VERSION.to_owned(),
                block_version: chain::BLOCK_PROTOCOL,
                p2p_version: P2P_PROTOCOL,
                abci_version: ABCI_VERSION.to_owned(),
            })
            .await?;
        let app_height = u64::try_from(info.last_block_height).map_err(|_| {
            NodeError::Handshake(format!(
                "application reports a negative last_block_height {}",
                info.last_block_height
            ))
        })?;
        let store = &self.shared.store;
        let last_state = store.last_state_height();
        let blocks = store.block_range();
        let genesis = &self.config().genesis;
        let mut genesis_state = ChainState::from_genesis(genesis)?;
        if last_state.is_none() {
            genesis_state.app_version = info.app_version;
        }
        if app_height == 0 {
            self.init_chain(&mut genesis_state).await?;
        }
        *self
            .shared
            .genesis_validators
            .write()
            .expect("lock is never poisoned: no panics while held") =
            Some(genesis_state.validators.clone());
        let mut state = match last_state {
            Some(h) => self.stored_results(h)?.state,
            None => genesis_state,
        };
        let state_height = state.last_block_height;
        if app_height > state_height {
            return Err(NodeError::Handshake(format!(
                "the application is at height {app_height} but this node's block store has applied \
                 only up to {state_height}; use the block store that belongs to this application's \
                 data, or reset the application"
            ))
            .into());
        }
        // Replay blocks the application has not committed.
        let first = if app_height == 0 {
            state.initial_height
        } else {
            app_height + 1
        };
        if first <= state_height {
            info!(
                from = first,
                to = state_height,
                "replaying stored blocks to the application"
            );
        }
        for height in first..=state_height {
            self.replay(height).await?;
        }
        // A block saved before a crash but not applied yet.
        if let Some((_, last_block)) = blocks {
            if last_block == state.next_height() {
                let stored = self.stored_block(last_block)?;
                info!(
                    height = last_block,
                    "applying the block saved before the last stop"
                );
                state = self.apply(&state, &stored).await?;
            }
        }
        // Finish heights whose Commit failed last time, and recheck what the mempool holds:
        // the application's view of it was lost with the connection.
        let guard = self.shared.mempool.lock_for_update().await;
        self.finish_committed(&guard, state.last_block_height, None)
            .await?;
        drop(guard);
        info!(height = state.last_block_height, app_hash = %state.app_hash, "handshake complete");
        self.shared.set_state(state);
        Ok(())
    }

    /// `InitChain` with the genesis; what the application returns replaces the genesis values.
    async fn init_chain(&self, genesis_state: &mut ChainState) -> Result<(), Step> {
        let genesis = &self.config().genesis;
        let response =
            self.conns
                .consensus
                .init_chain(init_chain_request(genesis).map_err(|e| {
                    NodeError::Handshake(format!("failed to encode app_state: {e}"))
                })?)
                .await?;
        genesis_state.apply_init_chain(&response)?;
        info!(app_hash = %genesis_state.app_hash, "InitChain done");
        Ok(())
    }

    async fn replay(&self, height: u64) -> Result<(), Step> {
        let stored = self.stored_block(height)?;
        let expected = self.stored_results(height)?;
        let last_validators = if height > expected.state.initial_height {
            self.stored_block(height - 1)?.validators
        } else {
            tendermint::validator::Set::without_proposer(Vec::new())
        };
        let response = self
            .conns
            .consensus
            .finalize_block(finalize_request(&stored.block, &last_validators))
            .await?;
        if response.app_hash != expected.results.app_hash {
            return Err(NodeError::App {
                height,
                message: format!(
                    "replay produced app hash {} but the stored block has {}: the application is \
                     not deterministic or its data belongs to another chain",
                    hex::encode_upper(&response.app_hash),
                    hex::encode_upper(&expected.results.app_hash)
                ),
            }
            .into());
        }
        self.conns.consensus.commit().await?;
        Ok(())
    }

    /// `FinalizeBlock`, save the state, Commit, update the mempool and publish.
    async fn apply(&self, state: &ChainState, stored: &StoredBlock) -> Result<ChainState, Step> {
        let height = stored.block.header.height.value();
        let results = self
            .conns
            .consensus
            .finalize_block(finalize_request(&stored.block, &state.last_validators))
            .await?;
        if results.tx_results.len() != stored.block.data.len() {
            return Err(NodeError::App {
                height,
                message: format!(
                    "FinalizeBlock returned {} tx results for {} txs",
                    results.tx_results.len(),
                    stored.block.data.len()
                ),
            }
            .into());
        }
        let next = state.apply_block(&stored.block, stored.block_id, &results)?;
        self.shared.store.save_results(&StoredResults {
            results: results.clone(),
            state: next.clone(),
        })?;
        let guard = self.shared.mempool.lock_for_update().await;
        self.conns.consensus.commit().await?;
        self.shared.set_state(next.clone());
        self.finish_committed(
            &guard,
            height,
            Some(BlockEvent {
                block: stored.block.clone(),
                block_id: stored.block_id,
                results,
            }),
        )
        .await?;
        drop(guard);
        Ok(next)
    }

    /// The post-Commit work for every height up to `through` not finished yet: index the
    /// txs, drop them from the mempool and recheck the rest, then publish the block events
    /// (`current` is `through`'s own, already in memory; earlier heights come from the store).
    async fn finish_committed(
        &self,
        guard: &UpdateGuard<'_>,
        through: u64,
        current: Option<BlockEvent>,
    ) -> Result<(), Step> {
        let from = {
            let mut finished = self
                .shared
                .finished_height
                .lock()
                .expect("finished_height lock is never poisoned: no panics while held");
            let from = *finished + 1;
            *finished = (*finished).max(through);
            from
        };
        let mut current = current;
        let mut events = Vec::new();
        for height in from..=through {
            let event =
                if let Some(event) = current.take_if(|e| e.block.header.height.value() == height) {
                    event
                } else {
                    let stored = self.stored_block(height)?;
                    BlockEvent {
                        block: stored.block,
                        block_id: stored.block_id,
                        results: self.stored_results(height)?.results,
                    }
                };
            self.shared
                .store
                .index_block_txs(&event.block, &event.block_id, &event.results);
            events.push(event);
        }
        let committed: Vec<(Vec<u8>, u32)> = events
            .iter()
            .flat_map(|e| {
                e.block.data.iter().enumerate().map(|(i, tx)| {
                    let code = e.results.tx_results.get(i).map_or(0, |r| r.code);
                    (tx.clone(), code)
                })
            })
            .collect();
        // The mempool drops the committed txs before its first await, so a subscriber that
        // hears of a block can no longer get its txs admitted again.
        let updated = self
            .shared
            .mempool
            .update(guard, &committed, &self.conns.mempool)
            .await;
        for event in events {
            let _ = self.shared.events.send(Arc::new(event));
        }
        Ok(updated?)
    }

    async fn produce_blocks(&mut self) -> Result<(), Step> {
        let mut sizes = self.shared.mempool.watch_size();
        let mut next_round = tokio::time::Instant::now();
        // As `CometBFT`: no block before the genesis time. The first block's time is the
        // genesis time, so this wait is all the wall clock decides.
        let genesis_time = self.shared.config.genesis.genesis_time;
        let wait = self
            .shared
            .state()
            .filter(|s| s.last_block_height == 0)
            .and_then(|_| genesis_time.duration_since(tendermint::Time::now()).ok())
            .filter(|wait| !wait.is_zero());
        if let Some(wait) = wait {
            info!(%genesis_time, ?wait, "genesis time is in the future; waiting for it");
            next_round += wait;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next_round) => {}
                () = self.cancel.cancelled() => return Ok(()),
                () = self.conns.closed() => return Err(Self::closed_error()),
            }
            let state = self.shared.state().ok_or_else(|| {
                NodeError::Handshake("no chain state after the handshake".to_owned())
            })?;
            if !self.config().create_empty_blocks && !self.need_proof_block(&state)? {
                let interval = self.config().create_empty_blocks_interval;
                let wait_txs = sizes.wait_for(|n| *n > 0);
                let wait_interval = async {
                    if interval.is_zero() {
                        std::future::pending::<()>().await;
                    } else {
                        tokio::time::sleep(interval).await;
                    }
                };
                tokio::select! {
                    r = wait_txs => { let _ = r; }
                    () = wait_interval => {}
                    () = self.cancel.cancelled() => return Ok(()),
                    () = self.conns.closed() => return Err(Self::closed_error()),
                }
            }
            self.make_block(&state).await?;
            next_round = tokio::time::Instant::now() + self.config().timeout_commit;
        }
    }

    fn closed_error() -> Step {
        Step::Abci(AbciError::Closed {
            connection: "consensus",
            message: "an application connection failed".to_owned(),
        })
    }

    /// Block `height`, which the block store must hold.
    fn stored_block(&self, height: u64) -> Result<StoredBlock, Step> {
        self.shared
            .store
            .block(height)?
            .ok_or_else(|| missing_record("block", height))
    }

    /// The results and state after block `height`, which the block store must hold.
    fn stored_results(&self, height: u64) -> Result<StoredResults, Step> {
        self.shared
            .store
            .results(height)?
            .ok_or_else(|| missing_record("state", height))
    }

    /// `CometBFT` makes a block even without txs at the first height and when the last block
    /// changed the app hash, so that the new app hash is committed in a header.
    fn need_proof_block(&self, state: &ChainState) -> Result<bool, Step> {
        if state.last_block_height == 0 {
            return Ok(true);
        }
        let last = self.stored_block(state.last_block_height)?;
        Ok(last.block.header.app_hash != state.app_hash)
    }

    /// Reaps the mempool and asks the application for the block's txs (`PrepareProposal`).
    async fn prepare(
        &self,
        state: &ChainState,
        last_commit: Option<&tendermint::block::Commit>,
        time: Time,
    ) -> Result<Vec<Vec<u8>>, Step> {
        let height = state.next_height();
        let max_data_bytes = state.max_data_bytes();
        let txs = self.shared.mempool.reap(max_data_bytes, state.max_gas());
        let height_i64 = i64::try_from(height).map_err(|_| NodeError::App {
            height,
            message: "height overflows i64".to_owned(),
        })?;
        let next_validators_hash = state.next_validators.hash().as_bytes().to_vec();
        let proposer = self.address();
        let prepared = self
            .conns
            .consensus
            .prepare_proposal(RequestPrepareProposal {
                max_tx_bytes: max_data_bytes,
                txs: txs.into_iter().map(Into::into).collect(),
                local_last_commit: Some(extended_commit_info(&chain::commit_info(
                    last_commit,
                    &state.last_validators,
                ))),
                misbehavior: Vec::new(),
                height: height_i64,
                time: Some(time.into()),
                next_validators_hash: next_validators_hash.into(),
                proposer_address: proposer.as_bytes().to_vec().into(),
            })
            .await?;
        let total: i64 = prepared
            .txs
            .iter()
            .map(|tx| i64::try_from(tx.len()).unwrap_or(i64::MAX))
            .fold(0, i64::saturating_add);
        if total > max_data_bytes {
            return Err(NodeError::App {
                height,
                message: format!(
                    "PrepareProposal returned {total} bytes of txs, more than max_tx_bytes {max_data_bytes}"
                ),
            }
            .into());
        }
        let txs: Vec<Vec<u8>> = prepared.txs.into_iter().map(|tx| tx.to_vec()).collect();
        Ok(txs)
    }

    #[instrument(skip_all, fields(height = state.next_height()), err(Display))]
    async fn make_block(&self, state: &ChainState) -> Result<(), Step> {
        state.check_proposer_power(&self.shared.validator_key)?;
        let height = state.next_height();
        let (last_commit, time) = if state.last_block_height == 0 {
            (None, state.last_block_time)
        } else {
            let last = self.stored_block(state.last_block_height)?;
            let time = commit_time(&last.commit).unwrap_or(state.last_block_time);
            (Some(last.commit), time)
        };
        let height_i64 = i64::try_from(height).map_err(|_| NodeError::App {
            height,
            message: "height overflows i64".to_owned(),
        })?;
        let next_validators_hash = state.next_validators.hash().as_bytes().to_vec();
        let proposer = self.address();
        let txs = self.prepare(state, last_commit.as_ref(), time).await?;
        let block = state.make_block(txs, last_commit, time, proposer)?;
        let block_id = chain::block_id(&block)?;
        let processed = self
            .conns
            .consensus
            .process_proposal(RequestProcessProposal {
                txs: block.data.iter().cloned().map(Into::into).collect(),
                proposed_last_commit: Some(chain::commit_info(
                    block.last_commit.as_ref(),
                    &state.last_validators,
                )),
                misbehavior: Vec::new(),
                hash: block_id.hash.as_bytes().to_vec().into(),
                height: height_i64,
                time: Some(time.into()),
                next_validators_hash: next_validators_hash.into(),
                proposer_address: proposer.as_bytes().to_vec().into(),
            })
            .await?;
        if processed.status != i32::from(pba::response_process_proposal::ProposalStatus::Accept) {
            warn!(
                height,
                "the application rejected this node's own proposal; proposing again next round"
            );
            return Ok(());
        }
        let vote_time = vote_time(time);
        let commit = chain::sign_commit(
            self.config().validator_key.private_key(),
            &state.chain_id,
            Height::try_from(height).map_err(|e| ChainError::Invalid {
                what: "height",
                message: e.to_string(),
            })?,
            block_id,
            vote_time,
            &state.validators,
        )?;
        let stored = StoredBlock {
            block,
            block_id,
            validators: state.validators.clone(),
            commit,
        };
        self.shared.store.save_block(&stored)?;
        self.apply(state, &stored).await?;
        Ok(())
    }
}

fn missing_record(what: &str, height: u64) -> Step {
    Step::Fatal(NodeError::Handshake(format!(
        "the block store has no {what} record for height {height}"
    )))
}

/// The time of a commit: the timestamp of its first signature (one validator signs).
fn commit_time(commit: &tendermint::block::Commit) -> Option<Time> {
    commit.signatures.iter().find_map(|sig| match sig {
        tendermint::block::CommitSig::BlockIdFlagCommit { timestamp, .. } => Some(*timestamp),
        _ => None,
    })
}

/// `CometBFT`'s vote time: now, but always after the block time.
fn vote_time(block_time: Time) -> Time {
    let min = (block_time + Duration::from_millis(1)).unwrap_or(block_time);
    let now = Time::now();
    if now > min {
        now
    } else {
        min
    }
}

fn extended_commit_info(info: &pba::CommitInfo) -> pba::ExtendedCommitInfo {
    pba::ExtendedCommitInfo {
        round: info.round,
        votes: info
            .votes
            .iter()
            .map(|v| pba::ExtendedVoteInfo {
                validator: v.validator.clone(),
                vote_extension: bytes::Bytes::new(),
                extension_signature: bytes::Bytes::new(),
                block_id_flag: v.block_id_flag,
            })
            .collect(),
    }
}

/// The `FinalizeBlock` request for a block.
pub(crate) fn finalize_request(
    block: &Block,
    last_validators: &tendermint::validator::Set,
) -> RequestFinalizeBlock {
    RequestFinalizeBlock {
        txs: block.data.iter().cloned().map(Into::into).collect(),
        decided_last_commit: Some(chain::commit_info(
            block.last_commit.as_ref(),
            last_validators,
        )),
        misbehavior: Vec::new(),
        hash: block.header.hash().as_bytes().to_vec().into(),
        height: i64::try_from(block.header.height.value()).unwrap_or(i64::MAX),
        time: Some(block.header.time.into()),
        next_validators_hash: block.header.next_validators_hash.as_bytes().to_vec().into(),
        proposer_address: block.header.proposer_address.as_bytes().to_vec().into(),
    }
}
