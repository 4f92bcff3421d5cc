//! The block tree, the canonical chain, built payloads, the local pool and the Engine API rules.
//!
//! [`Chain`] is plain data behind one lock: the RPC layers call its methods and it calls the pure
//! executor. Every valid block is appended to the datadir's block log, and the forkchoice is
//! saved on each update, so a restart replays (re-executes) the log and returns to the same head.

use std::{
    collections::{HashMap, VecDeque},
    io::{Read as _, Write as _},
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use alloy_consensus::{
    transaction::{RlpEcdsaDecodableTx, SignerRecoverable as _},
    Block, BlockBody, Signed, Transaction as _, TxEnvelope,
};
use alloy_eips::eip2718::{Decodable2718 as _, Eip2718Error};
use alloy_genesis::Genesis;
use alloy_primitives::{keccak256, map::B256Map, Address, Bytes, B256, U256};
use alloy_rlp::{Decodable as _, Encodable as _};
use alloy_rpc_types_engine::{
    BlobsBundleV1, ExecutionPayloadEnvelopeV3, ExecutionPayloadV3, ForkchoiceState,
    ForkchoiceUpdated, PayloadAttributes, PayloadError, PayloadId, PayloadStatus,
    PayloadStatusEnum,
};
use serde::{Deserialize, Serialize};

use crate::{
    executor::{self, BuildInput, Candidate, Candidates, ExecutedBlock, MIN_GAS_LIMIT},
    genesis,
    metrics::Metrics,
    parallel::{par_chunks, par_map},
    state::SlotKeys,
    trie,
};

/// How many ancestors `BLOCKHASH` can see.
const BLOCK_HASH_WINDOW: u64 = 256;
/// Built payloads kept for `engine_getPayload`.
const MAX_PAYLOADS: usize = 64;
/// Transactions kept in the local pool.
pub(crate) const MAX_POOL: usize = 10_000;
/// Recovered senders remembered by transaction hash.
const MAX_SENDER_CACHE: usize = 200_000;
/// Largest block record accepted from the block log.
const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// Engine API errors, with their JSON-RPC codes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    /// -38001.
    #[error("unknown payload {0}")]
    UnknownPayload(PayloadId),
    /// -38002.
    #[error("invalid forkchoice state: {0}")]
    InvalidForkchoiceState(String),
    /// -38003.
    #[error("invalid payload attributes: {0}")]
    InvalidPayloadAttributes(String),
    /// -32602.
    #[error("invalid params: {0}")]
    InvalidParams(String),
}

impl EngineError {
    /// The JSON-RPC error code the execution-apis spec assigns.
    pub fn code(&self) -> i32 {
        match self {
            Self::UnknownPayload(_) => -38001,
            Self::InvalidForkchoiceState(_) => -38002,
            Self::InvalidPayloadAttributes(_) => -38003,
            Self::InvalidParams(_) => -32602,
        }
    }
}

/// Errors of opening a chain.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The genesis is unusable.
    #[error(transparent)]
    Genesis(#[from] genesis::GenesisError),
    /// The datadir could not be used.
    #[error("datadir {path}: {reason}")]
    Datadir {
        /// The path involved.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// Payload attributes with the OP Stack extension.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OpPayloadAttributes {
    /// The standard attributes.
    #[serde(flatten)]
    pub inner: PayloadAttributes,
    /// Transactions to include first and in order (EIP-2718 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transactions: Option<Vec<Bytes>>,
    /// If true, no transaction from the local pool is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_tx_pool: Option<bool>,
    /// Gas limit of the block (the parent's when absent).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "alloy_serde::quantity::opt"
    )]
    pub gas_limit: Option<u64>,
}

/// Where a transaction sits in the canonical chain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TxLocation {
    pub(crate) block_hash: B256,
    pub(crate) index: usize,
}

/// The saved forkchoice.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SavedForkchoice {
    head: B256,
    safe: B256,
    finalized: B256,
}

/// A block built for `engine_getPayload`.
#[derive(Debug)]
struct Built {
    block: Arc<ExecutedBlock>,
    /// The execution payload `engine_getPayloadV3` served for it, once it has.
    served: OnceLock<ExecutionPayloadV3>,
}

/// The chain: block tree, canonical chain, payloads, pool.
#[expect(clippy::struct_field_names, reason = "`chain_id` is the Ethereum term")]
pub struct Chain {
    chain_id: u64,
    genesis_hash: B256,
    /// Shared with `payloads`: a built block that comes back through `engine_newPayload` is
    /// not copied.
    blocks: HashMap<B256, Arc<ExecutedBlock>>,
    /// Canonical hashes by number, starting at the genesis number.
    canonical: Vec<B256>,
    first_number: u64,
    safe: B256,
    finalized: B256,
    tx_index: HashMap<B256, TxLocation>,
    payloads: HashMap<PayloadId, Built>,
    payload_order: VecDeque<PayloadId>,
    pool: Vec<Candidate>,
    senders: B256Map<Address>,
    /// Storage slot keys computed by earlier blocks ([`SlotKeys`]).
    slot_keys: SlotKeys,
    datadir: Option<PathBuf>,
    log: Option<std::fs::File>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("chain_id", &self.chain_id)
            .field("head", &self.head().hash)
            .field("blocks", &self.blocks.len())
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// Opens a chain from its genesis, replaying the datadir's block log when there is one.
    pub fn open(genesis: &Genesis, datadir: Option<&Path>) -> Result<Self, ChainError> {
        genesis::check_supported(genesis)?;
        let (header, state) = genesis::build(genesis)?;
        let genesis_block = ExecutedBlock::genesis(header, state);
        let genesis_hash = genesis_block.hash;
        let mut chain = Self {
            chain_id: genesis.config.chain_id,
            genesis_hash,
            first_number: genesis_block.number(),
            canonical: vec![genesis_hash],
            safe: genesis_hash,
            finalized: genesis_hash,
            blocks: HashMap::from([(genesis_hash, Arc::new(genesis_block))]),
            tx_index: HashMap::new(),
            payloads: HashMap::new(),
            payload_order: VecDeque::new(),
            pool: Vec::new(),
            senders: B256Map::default(),
            slot_keys: SlotKeys::default(),
            datadir: datadir.map(Path::to_path_buf),
            log: None,
            metrics: None,
        };
        if let Some(dir) = datadir {
            chain.replay(dir)?;
        }
        Ok(chain)
    }

    /// Records what the chain does from now on into `metrics`.
    pub(crate) fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        metrics.set_head(self.head().number());
        metrics.set_pool(self.pool.len());
        self.metrics = Some(metrics);
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The genesis block hash.
    pub fn genesis_hash(&self) -> B256 {
        self.genesis_hash
    }

    pub(crate) fn head(&self) -> &ExecutedBlock {
        let hash = self
            .canonical
            .last()
            .expect("the canonical chain always holds genesis");
        &self.blocks[hash]
    }

    pub(crate) fn safe_hash(&self) -> B256 {
        self.safe
    }

    pub(crate) fn finalized_hash(&self) -> B256 {
        self.finalized
    }

    pub(crate) fn block(&self, hash: &B256) -> Option<&ExecutedBlock> {
        self.blocks.get(hash).map(Arc::as_ref)
    }

    pub(crate) fn canonical_block(&self, number: u64) -> Option<&ExecutedBlock> {
        let index = usize::try_from(number.checked_sub(self.first_number)?).ok()?;
        self.canonical.get(index).map(|hash| &*self.blocks[hash])
    }

    pub(crate) fn is_canonical(&self, block: &ExecutedBlock) -> bool {
        self.canonical_block(block.number())
            .is_some_and(|b| b.hash == block.hash)
    }

    pub(crate) fn transaction(&self, hash: &B256) -> Option<(&ExecutedBlock, usize)> {
        let location = self.tx_index.get(hash)?;
        Some((&self.blocks[&location.block_hash], location.index))
    }

    /// Recovers the sender of `tx`, remembering it by hash.
    pub(crate) fn recover(&mut self, tx: &TxEnvelope) -> Result<Address, String> {
        let hash = *tx.tx_hash();
        if let Some(sender) = self.senders.get(&hash) {
            return Ok(*sender);
        }
        let sender = tx
            .recover_signer()
            .map_err(|err| format!("invalid signature: {err}"))?;
        if self.senders.len() >= MAX_SENDER_CACHE {
            self.senders.clear();
        }
        self.senders.insert(hash, sender);
        Ok(sender)
    }

    /// Adds a validated transaction to the local pool.
    pub(crate) fn add_to_pool(&mut self, candidate: Candidate) -> Result<(), String> {
        let hash = *candidate.tx.tx_hash();
        if self.pool.iter().any(|c| *c.tx.tx_hash() == hash) || self.tx_index.contains_key(&hash) {
            return Err(format!("transaction {hash} is already known"));
        }
        if self.pool.len() >= MAX_POOL {
            return Err(format!(
                "transaction pool is full ({MAX_POOL} transactions)"
            ));
        }
        self.senders.insert(hash, candidate.sender);
        self.pool.push(candidate);
        if let Some(metrics) = &self.metrics {
            metrics.set_pool(self.pool.len());
        }
        Ok(())
    }

    /// Hashes of up to 256 ancestors of `parent` (itself included), highest first.
    fn block_hashes(&self, parent: &ExecutedBlock) -> Vec<(u64, B256)> {
        let mut hashes = Vec::with_capacity(256);
        let mut cursor = Some(parent);
        while let Some(block) = cursor {
            if hashes.len() as u64 >= BLOCK_HASH_WINDOW {
                break;
            }
            hashes.push((block.number(), block.hash));
            cursor = self.block(&block.header().parent_hash);
        }
        hashes
    }

    fn is_ancestor(&self, ancestor: B256, mut block: B256) -> bool {
        loop {
            if block == ancestor {
                return true;
            }
            match self.blocks.get(&block) {
                Some(b) if b.number() > self.first_number => block = b.header().parent_hash,
                _ => return false,
            }
        }
    }

    /// `engine_forkchoiceUpdatedV3`.
    #[tracing::instrument(skip_all, fields(head = %state.head_block_hash, build = attributes.is_some()))]
    pub fn forkchoice_updated(
        &mut self,
        state: ForkchoiceState,
        attributes: Option<OpPayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        let Some(head) = self.blocks.get(&state.head_block_hash) else {
            tracing::info!(head = %state.head_block_hash, "forkchoice head unknown, syncing");
            return Ok(ForkchoiceUpdated::from_status(PayloadStatusEnum::Syncing));
        };
        let head_hash = head.hash;
        for (name, hash) in [
            ("safe", state.safe_block_hash),
            ("finalized", state.finalized_block_hash),
        ] {
            if !hash.is_zero() && !self.is_ancestor(hash, head_hash) {
                return Err(EngineError::InvalidForkchoiceState(format!(
                    "{name} block {hash} is not a known ancestor of head {head_hash}"
                )));
            }
        }
        self.set_canonical(head_hash);
        if !state.safe_block_hash.is_zero() {
            self.safe = state.safe_block_hash;
        }
        if !state.finalized_block_hash.is_zero() {
            self.finalized = state.finalized_block_hash;
        }
        self.save_forkchoice();
        let status = PayloadStatus::new(PayloadStatusEnum::Valid, Some(head_hash));
        let Some(attrs) = attributes else {
            return Ok(ForkchoiceUpdated::new(status));
        };
        // `build_payload` checks the attributes only now, after the forkchoice update, which a
        // failure there does not undo (execution-apis: forkchoiceUpdatedV1 point 8, V3 point 2).
        let payload_id = self.build_payload(head_hash, &attrs)?;
        Ok(ForkchoiceUpdated::new(status).with_payload_id(payload_id))
    }

    #[tracing::instrument(skip_all, fields(parent = %parent_hash))]
    fn build_payload(
        &mut self,
        parent_hash: B256,
        attrs: &OpPayloadAttributes,
    ) -> Result<PayloadId, EngineError> {
        let start = std::time::Instant::now();
        let Some(withdrawals) = attrs.inner.withdrawals.clone() else {
            return Err(EngineError::InvalidPayloadAttributes(
                "V3 payload attributes need `withdrawals`".into(),
            ));
        };
        let Some(parent_beacon_block_root) = attrs.inner.parent_beacon_block_root else {
            return Err(EngineError::InvalidPayloadAttributes(
                "V3 payload attributes need `parentBeaconBlockRoot`".into(),
            ));
        };
        let parent = &self.blocks[&parent_hash];
        let parent_header = parent.header();
        if attrs.inner.timestamp <= parent_header.timestamp {
            return Err(EngineError::InvalidPayloadAttributes(format!(
                "timestamp {} is not after parent timestamp {}",
                attrs.inner.timestamp, parent_header.timestamp
            )));
        }
        let gas_limit = attrs.gas_limit.unwrap_or(parent_header.gas_limit);
        if gas_limit < MIN_GAS_LIMIT {
            return Err(EngineError::InvalidPayloadAttributes(format!(
                "gasLimit {gas_limit} is below the minimum {MIN_GAS_LIMIT}"
            )));
        }
        let input = BuildInput {
            timestamp: attrs.inner.timestamp,
            prev_randao: attrs.inner.prev_randao,
            fee_recipient: attrs.inner.suggested_fee_recipient,
            withdrawals,
            parent_beacon_block_root,
            gas_limit,
        };
        let Forced {
            txs,
            known_senders,
            positions,
            ids,
        } = Forced::decode(
            attrs.transactions.as_deref().unwrap_or_default(),
            &self.senders,
        );
        let payload_id = payload_id(parent_hash, attrs, &ids);
        if attrs.no_tx_pool.unwrap_or(false) && self.payloads.contains_key(&payload_id) {
            // The same parent and attributes, without the local pool: the block is built
            // already, and building it again would give the same one (as geth does, the
            // payload being built is named again).
            tracing::debug!(%payload_id, "payload already built");
            return Ok(payload_id);
        }
        let mut candidates = self.with_senders(txs, known_senders, &positions);
        if !attrs.no_tx_pool.unwrap_or(false) {
            for candidate in &self.pool {
                candidates.push(candidate.clone());
            }
        }
        let parent = &self.blocks[&parent_hash];
        let hashes = self.block_hashes(parent);
        let (block, skipped) = executor::build_block(
            self.chain_id,
            parent,
            &hashes,
            &input,
            candidates,
            &mut self.slot_keys,
        )
        .map_err(|err| {
            EngineError::InvalidPayloadAttributes(format!("block building failed: {err}"))
        })?;
        for skip in &skipped {
            tracing::warn!(tx = %skip.hash, reason = %skip.reason, "transaction left out of the block");
        }
        tracing::info!(
            number = block.number(),
            hash = %block.hash,
            txs = block.block.body.transactions.len(),
            %payload_id,
            "built payload"
        );
        if let Some(metrics) = &self.metrics {
            metrics.record_block(true, start, &block);
        }
        if !self.payloads.contains_key(&payload_id) {
            self.payload_order.push_back(payload_id);
        }
        self.payloads.insert(
            payload_id,
            Built {
                block: Arc::new(block),
                served: OnceLock::new(),
            },
        );
        while self.payload_order.len() > MAX_PAYLOADS {
            if let Some(old) = self.payload_order.pop_front() {
                self.payloads.remove(&old);
            }
        }
        Ok(payload_id)
    }

    /// The forced transactions `txs` (at `positions` among the forced ones) whose senders are
    /// `known` (found in the sender cache while decoding) or can be recovered
    /// ([`Chain::recover_unknown`]), with them; the others are logged and left out.
    fn with_senders(
        &mut self,
        mut txs: Vec<TxEnvelope>,
        known: Vec<Option<Address>>,
        positions: &[usize],
    ) -> Candidates {
        let refs: Vec<&TxEnvelope> = txs.iter().collect();
        let recovered = self.recover_unknown(&refs, known);
        let mut senders = Vec::with_capacity(txs.len());
        let mut valid = Vec::with_capacity(txs.len());
        for (index, sender) in positions.iter().zip(recovered) {
            valid.push(match sender {
                Ok(sender) => {
                    senders.push(sender);
                    true
                }
                Err(reason) => {
                    tracing::warn!(index, %reason, "skipping forced transaction");
                    false
                }
            });
        }
        executor::retain_flagged(&mut txs, &valid);
        Candidates { txs, senders }
    }

    /// Recovers the senders of `txs`, in order, from the cache or by recovery, both over the
    /// available cores (the result does not depend on how the work is split). The sender
    /// cache is keyed by transaction hash: hashing `txs` first ([`decode_all`], [`hash_all`])
    /// spreads that work over the cores too.
    fn recover_all(&mut self, txs: &[&TxEnvelope]) -> Vec<Result<Address, String>> {
        let cache = &self.senders;
        let known = par_map(txs, |tx| cache.get(tx.tx_hash()).copied());
        self.recover_unknown(txs, known)
    }

    /// Recovers the senders of `txs` that are not `known` (found in the sender cache already,
    /// as [`Forced::decode`] looks them up), over the available cores, and caches them.
    fn recover_unknown(
        &mut self,
        txs: &[&TxEnvelope],
        known: Vec<Option<Address>>,
    ) -> Vec<Result<Address, String>> {
        debug_assert_eq!(txs.len(), known.len(), "one entry per transaction");
        let mut results: Vec<Option<Result<Address, String>>> =
            known.into_iter().map(|sender| sender.map(Ok)).collect();
        let missing: Vec<usize> = (0..txs.len()).filter(|i| results[*i].is_none()).collect();
        let recovered = par_map(&missing, |i| {
            txs[*i]
                .recover_signer()
                .map_err(|err| format!("invalid signature: {err}"))
        });
        if self.senders.len() + missing.len() > MAX_SENDER_CACHE {
            self.senders.clear();
        }
        for (i, result) in missing.into_iter().zip(recovered) {
            if let Ok(sender) = &result {
                self.senders.insert(*txs[i].tx_hash(), *sender);
            }
            results[i] = Some(result);
        }
        results
            .into_iter()
            .map(|r| r.expect("every transaction was resolved"))
            .collect()
    }

    /// `engine_getPayloadV3`.
    #[tracing::instrument(skip(self))]
    pub fn get_payload(&self, id: PayloadId) -> Result<ExecutionPayloadEnvelopeV3, EngineError> {
        let Built { block, served } = self
            .payloads
            .get(&id)
            .ok_or(EngineError::UnknownPayload(id))?;
        let payload = served
            .get_or_init(|| ExecutionPayloadV3::from_block_unchecked(block.hash, &block.block));
        Ok(ExecutionPayloadEnvelopeV3 {
            execution_payload: payload.clone(),
            block_value: block.block_value,
            blobs_bundle: BlobsBundleV1::empty(),
            should_override_builder: false,
        })
    }

    /// `engine_newPayloadV3`.
    #[tracing::instrument(skip_all, fields(block = %payload.payload_inner.payload_inner.block_hash))]
    pub fn new_payload(
        &mut self,
        payload: ExecutionPayloadV3,
        versioned_hashes: &[B256],
        parent_beacon_block_root: B256,
    ) -> PayloadStatus {
        let start = std::time::Instant::now();
        let claimed_hash = payload.payload_inner.payload_inner.block_hash;
        let parent_hash = payload.payload_inner.payload_inner.parent_hash;
        let invalid = |latest, reason| invalid_payload(claimed_hash, latest, reason);
        if !versioned_hashes.is_empty() {
            return invalid(
                None,
                format!(
                    "{} versioned hashes given, but blob transactions are not supported",
                    versioned_hashes.len()
                ),
            );
        }
        // The payload `engine_getPayload` served for a block this node built, back unchanged
        // and with the beacon root it was built with, is that block: it is taken as is,
        // without decoding or executing it again.
        if let Some(built) = self.payloads.values().find(|built| {
            built.served.get() == Some(&payload)
                && built.block.header().parent_beacon_block_root == Some(parent_beacon_block_root)
        }) {
            let built = Arc::clone(&built.block);
            return self.reuse_built(built, start);
        }
        // The usual payload is a new block on a known parent, which is executed whatever its
        // hash: its transactions root, which the hash needs, is then computed beside the
        // execution rather than before it, and the hash is checked first of all once it is
        // known (`root_from_body: false`). Any other payload has its hash checked up front.
        let new_on_known_parent = !self.blocks.contains_key(&claimed_hash)
            && self.blocks.contains_key(&parent_hash)
            && !self
                .payloads
                .values()
                .any(|built| built.block.hash == claimed_hash);
        let (mut block, known_senders) =
            match payload_block(payload, !new_on_known_parent, &self.senders) {
                Ok(decoded) => decoded,
                Err(err) => return invalid(None, format!("malformed payload: {err}")),
            };
        block.header.parent_beacon_block_root = Some(parent_beacon_block_root);
        if new_on_known_parent {
            return self.validate_new(block, known_senders, claimed_hash, start);
        }
        // The block hash is checked first, in all cases (execution-apis: newPayloadV1 point
        // 2): a known hash or an unknown parent says nothing about a payload whose other
        // fields do not hash to it.
        if let Err(mismatch) = check_hash(&block.header, claimed_hash) {
            return invalid(None, mismatch);
        }
        if self.blocks.contains_key(&claimed_hash) {
            return PayloadStatus::new(PayloadStatusEnum::Valid, Some(claimed_hash));
        }
        if !self.blocks.contains_key(&parent_hash) {
            return PayloadStatus::from_status(PayloadStatusEnum::Syncing);
        }
        // A block this node built for `engine_getPayload` is reused without executing it
        // again: the hash, checked above, commits to every header field, and `payload_block`
        // recomputed the transactions and withdrawals roots from the payload's own lists, so
        // an equal hash means the same block.
        if let Some(built) = self
            .payloads
            .values()
            .find(|built| built.block.hash == claimed_hash)
        {
            let built = Arc::clone(&built.block);
            return self.reuse_built(built, start);
        }
        // Not reached: every payload that is not a new block on a known parent was answered
        // above. Validating it again is right all the same.
        self.validate_new(block, known_senders, claimed_hash, start)
    }

    /// Validates `block`, a new block on a known parent whose header's transactions root is
    /// not computed yet ([`payload_block`] without a root), `known_senders` being the senders
    /// its decoding found in the sender cache: the block hash is checked first, once that root
    /// is known, before any other answer.
    fn validate_new(
        &mut self,
        block: Block<TxEnvelope>,
        known_senders: Vec<Option<Address>>,
        claimed_hash: B256,
        start: std::time::Instant,
    ) -> PayloadStatus {
        let parent_hash = block.header.parent_hash;
        let invalid = |latest, reason| invalid_payload(claimed_hash, latest, reason);
        let txs: Vec<&TxEnvelope> = block.body.transactions.iter().collect();
        let recovered = self.recover_unknown(&txs, known_senders);
        let mut senders = Vec::with_capacity(recovered.len());
        for (index, sender) in recovered.into_iter().enumerate() {
            let sender = match sender {
                Ok(sender) => sender,
                Err(err) => {
                    // The hash first: the payload may not be the block it claims to be.
                    let mut header = block.header.clone();
                    header.transactions_root = executor::root_of(&block.body.transactions);
                    if let Err(mismatch) = check_hash(&header, claimed_hash) {
                        return invalid(None, mismatch);
                    }
                    let hash = block.body.transactions[index].tx_hash();
                    return invalid(
                        Some(parent_hash),
                        format!("transaction {index} ({hash}): {err}"),
                    );
                }
            };
            senders.push(sender);
        }
        let parent = &self.blocks[&parent_hash];
        let hashes = self.block_hashes(parent);
        match executor::validate_block(
            self.chain_id,
            parent,
            &hashes,
            (block, senders),
            executor::Known {
                hash: claimed_hash,
                root_from_body: false,
            },
            &mut self.slot_keys,
        ) {
            Ok(executed) => {
                tracing::info!(number = executed.number(), hash = %executed.hash, "new payload valid");
                self.accept_block(Arc::new(executed), start, claimed_hash)
            }
            Err(
                err @ executor::BlockError::Mismatch {
                    field: "blockHash", ..
                },
            ) => invalid(None, err.to_string()),
            Err(err) => invalid(Some(parent_hash), err.to_string()),
        }
    }

    /// Accepts a block this node built as a new payload.
    fn reuse_built(
        &mut self,
        built: Arc<ExecutedBlock>,
        start: std::time::Instant,
    ) -> PayloadStatus {
        let hash = built.hash;
        if self.blocks.contains_key(&hash) {
            return PayloadStatus::new(PayloadStatusEnum::Valid, Some(hash));
        }
        tracing::info!(number = built.number(), %hash, "new payload is the block this node built");
        if let Some(metrics) = &self.metrics {
            metrics.record_reused_payload();
        }
        self.accept_block(built, start, hash)
    }

    /// Records a valid new payload: metrics, the block log and the block tree.
    fn accept_block(
        &mut self,
        executed: Arc<ExecutedBlock>,
        start: std::time::Instant,
        claimed_hash: B256,
    ) -> PayloadStatus {
        if let Some(metrics) = &self.metrics {
            metrics.record_block(false, start, &executed);
        }
        if let Err(err) = self.persist_block(&executed) {
            tracing::error!(%err, "failed to append block to the block log");
        }
        self.blocks.insert(executed.hash, executed);
        PayloadStatus::new(PayloadStatusEnum::Valid, Some(claimed_hash))
    }

    /// Makes `head` and its ancestors canonical and updates the transaction index and pool.
    fn set_canonical(&mut self, head: B256) {
        let mut new_branch = Vec::new();
        let mut cursor = head;
        loop {
            let block = &self.blocks[&cursor];
            if self.is_canonical(block) {
                break;
            }
            new_branch.push(cursor);
            cursor = block.header().parent_hash;
        }
        let keep = usize::try_from(self.blocks[&cursor].number() - self.first_number + 1)
            .expect("canonical length fits in usize");
        for dropped in self.canonical.split_off(keep) {
            for tx in &self.blocks[&dropped].block.body.transactions {
                self.tx_index.remove(tx.tx_hash());
            }
        }
        for hash in new_branch.into_iter().rev() {
            for (index, tx) in self.blocks[&hash]
                .block
                .body
                .transactions
                .iter()
                .enumerate()
            {
                self.tx_index.insert(
                    *tx.tx_hash(),
                    TxLocation {
                        block_hash: hash,
                        index,
                    },
                );
            }
            self.canonical.push(hash);
        }
        let head_state = &self.blocks[&head].state;
        let tx_index = &self.tx_index;
        self.pool.retain(|candidate| {
            !tx_index.contains_key(candidate.tx.tx_hash())
                && head_state.account(candidate.sender).map_or(0, |a| a.nonce)
                    <= candidate.tx.nonce()
        });
        if let Some(metrics) = &self.metrics {
            metrics.set_head(self.blocks[&head].number());
            metrics.set_pool(self.pool.len());
        }
    }

    fn persist_block(&mut self, block: &ExecutedBlock) -> Result<(), String> {
        let Some(log) = self.log.as_mut() else {
            return Ok(());
        };
        let mut record = Vec::new();
        block.block.encode(&mut record);
        let len =
            u32::try_from(record.len()).map_err(|_| "block too large for the log".to_owned())?;
        log.write_all(&len.to_be_bytes())
            .map_err(|e| e.to_string())?;
        log.write_all(&record).map_err(|e| e.to_string())?;
        log.flush().map_err(|e| e.to_string())
    }

    fn save_forkchoice(&self) {
        let Some(dir) = &self.datadir else { return };
        let saved = SavedForkchoice {
            head: self.head().hash,
            safe: self.safe,
            finalized: self.finalized,
        };
        let tmp = dir.join("forkchoice.json.tmp");
        let result = serde_json::to_vec_pretty(&saved)
            .map_err(|e| e.to_string())
            .and_then(|bytes| std::fs::write(&tmp, bytes).map_err(|e| e.to_string()))
            .and_then(|()| {
                std::fs::rename(&tmp, dir.join("forkchoice.json")).map_err(|e| e.to_string())
            });
        if let Err(err) = result {
            tracing::error!(%err, "failed to save the forkchoice");
        }
    }

    /// Re-executes the block log of `dir` and restores the saved forkchoice.
    fn replay(&mut self, dir: &Path) -> Result<(), ChainError> {
        let fail = |path: &Path, reason: String| ChainError::Datadir {
            path: path.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e.to_string()))?;
        let genesis_file = dir.join("genesis_hash");
        match std::fs::read_to_string(&genesis_file) {
            Ok(saved) if saved.trim() != self.genesis_hash.to_string() => {
                return Err(fail(
                    &genesis_file,
                    format!(
                        "datadir belongs to genesis {}, but the configured genesis is {}; use another datadir",
                        saved.trim(),
                        self.genesis_hash
                    ),
                ));
            }
            Ok(_) => {}
            Err(_) => std::fs::write(&genesis_file, self.genesis_hash.to_string())
                .map_err(|e| fail(&genesis_file, e.to_string()))?,
        }
        let log_path = dir.join("blocks.rlp");
        let mut replayed = 0usize;
        if let Ok(mut file) = std::fs::File::open(&log_path) {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|e| fail(&log_path, e.to_string()))?;
            let mut rest = bytes.as_slice();
            while rest.len() >= 4 {
                let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
                if len > MAX_RECORD_BYTES || rest.len() < 4 + len {
                    tracing::warn!(path = %log_path.display(), "block log ends with a partial record; ignoring it");
                    break;
                }
                let mut record = &rest[4..4 + len];
                rest = &rest[4 + len..];
                let block = Block::<TxEnvelope>::decode(&mut record).map_err(|e| {
                    fail(&log_path, format!("record {replayed} is not a block: {e}"))
                })?;
                self.replay_block(block)
                    .map_err(|e| fail(&log_path, format!("record {replayed}: {e}")))?;
                replayed += 1;
            }
        }
        let fc_path = dir.join("forkchoice.json");
        if let Ok(bytes) = std::fs::read(&fc_path) {
            let saved: SavedForkchoice =
                serde_json::from_slice(&bytes).map_err(|e| fail(&fc_path, e.to_string()))?;
            // The head's block may not have reached the log (a crash while appending it):
            // then the newest saved block that did is the head, and the consensus side sends
            // the rest again, as after any restart that lost blocks.
            let known = |hash: B256| self.blocks.contains_key(&hash).then_some(hash);
            let head = [saved.head, saved.safe, saved.finalized]
                .into_iter()
                .find_map(known);
            if let Some(head) = head {
                if head != saved.head {
                    tracing::warn!(saved_head = %saved.head, %head, "the saved forkchoice head is not in the block log; resuming from the newest saved block that is");
                }
                let (safe, finalized) = (known(saved.safe), known(saved.finalized));
                self.set_canonical(head);
                self.safe = safe.unwrap_or_default();
                self.finalized = finalized.unwrap_or_default();
            } else {
                tracing::warn!(saved_head = %saved.head, "no block of the saved forkchoice is in the block log; resuming from genesis");
            }
        }
        tracing::info!(replayed, head = %self.head().hash, number = self.head().number(), "restored datadir");
        self.log = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| fail(&log_path, e.to_string()))?,
        );
        Ok(())
    }

    fn replay_block(&mut self, block: Block<TxEnvelope>) -> Result<(), String> {
        let hash = block.header.hash_slow();
        let parent_hash = block.header.parent_hash;
        if !self.blocks.contains_key(&parent_hash) {
            return Err(format!("parent {parent_hash} of block {hash} is unknown"));
        }
        let txs: Vec<&TxEnvelope> = block.body.transactions.iter().collect();
        hash_all(&txs);
        let senders = self
            .recover_all(&txs)
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let parent = &self.blocks[&parent_hash];
        let hashes = self.block_hashes(parent);
        let executed = executor::validate_block(
            self.chain_id,
            parent,
            &hashes,
            (block, senders),
            executor::Known {
                hash,
                root_from_body: false,
            },
            &mut self.slot_keys,
        )
        .map_err(|e| e.to_string())?;
        self.blocks.insert(hash, Arc::new(executed));
        Ok(())
    }
}

/// Computes every transaction's hash (re-encoding and keccak; each envelope keeps its own),
/// over the available cores.
fn hash_all(txs: &[&TxEnvelope]) {
    par_map(txs, |tx| {
        tx.tx_hash();
    });
}

/// The INVALID status of the payload that claims `claimed_hash`, logged.
fn invalid_payload(claimed_hash: B256, latest: Option<B256>, reason: String) -> PayloadStatus {
    tracing::warn!(block = %claimed_hash, %reason, "invalid payload");
    PayloadStatus::new(
        PayloadStatusEnum::Invalid {
            validation_error: reason,
        },
        latest,
    )
}

/// Whether `header` hashes to `claimed_hash`; the mismatch, as an answer, when it does not.
fn check_hash(header: &alloy_consensus::Header, claimed_hash: B256) -> Result<(), String> {
    let computed_hash = header.hash_slow();
    if computed_hash == claimed_hash {
        return Ok(());
    }
    Err(executor::BlockError::Mismatch {
        field: "blockHash",
        got: claimed_hash.to_string(),
        expected: computed_hash.to_string(),
    }
    .to_string())
}

/// The block of `payload`, as [`ExecutionPayloadV3::try_into_block`] makes it (same checks, in
/// the same order), with the transactions decoded and hashed over the available cores. With
/// `root`, each core also hashes its share of the leaves of the transactions trie (from the
/// bytes). Without it, the header's transactions root is left at zero, for
/// [`executor::validate_block`] to compute beside execution (`root_from_body: false`). Beside
/// the block: the sender of each transaction that `senders` (the sender cache) holds, looked up
/// on the threads that decode.
fn payload_block(
    mut payload: ExecutionPayloadV3,
    root: bool,
    senders: &B256Map<Address>,
) -> Result<(Block<TxEnvelope>, Vec<Option<Address>>), PayloadError> {
    let raw = std::mem::take(&mut payload.payload_inner.payload_inner.transactions);
    let shape = trie::OrderedShape::new(raw.len());
    let parts = par_chunks(&raw, |first, chunk| {
        let decoded = decode_chunk(chunk, senders).into_iter();
        if root {
            let leaves = shape.leaves(first, chunk, |tx, buf| buf.extend_from_slice(tx));
            decoded.zip(leaves.into_iter().map(Some)).collect()
        } else {
            decoded.map(|tx| (tx, None)).collect()
        }
    });
    let mut leaves = Vec::with_capacity(if root { raw.len() } else { 0 });
    let mut transactions = Vec::with_capacity(raw.len());
    let mut known = Vec::with_capacity(raw.len());
    let mut undecodable = None;
    for ((tx, sender), leaf) in parts.into_iter().flatten() {
        leaves.extend(leaf);
        match tx {
            Ok(tx) => {
                transactions.push(tx);
                known.push(sender);
            }
            Err(err) => {
                undecodable.get_or_insert(err);
            }
        }
    }
    let transactions_root = if root {
        shape.root(leaves).expect("one leaf per transaction")
    } else {
        B256::ZERO
    };
    let block = payload.into_block_raw_with_transactions_root(transactions_root)?;
    if let Some(err) = undecodable {
        return Err(PayloadError::from(alloy_rlp::Error::from(err)));
    }
    let block = Block {
        header: block.header,
        body: BlockBody {
            transactions,
            ommers: vec![],
            withdrawals: block.body.withdrawals,
        },
    };
    Ok((block, known))
}

/// The forced transactions of payload attributes, decoded.
struct Forced {
    /// The transactions that decode.
    txs: Vec<TxEnvelope>,
    /// The position of each of `txs` among the forced transactions.
    positions: Vec<usize>,
    /// The sender of each of `txs` that the sender cache holds.
    known_senders: Vec<Option<Address>>,
    /// Every forced transaction's hash (of its bytes for one that does not decode), for the
    /// payload id.
    ids: Vec<B256>,
}

impl Forced {
    /// Decodes `raw` ([`decode_all`]), looking up each transaction's sender in `senders` on the
    /// way; those that do not decode are logged and left out.
    fn decode(raw: &[Bytes], senders: &B256Map<Address>) -> Self {
        let mut forced = Self {
            txs: Vec::with_capacity(raw.len()),
            known_senders: Vec::with_capacity(raw.len()),
            positions: Vec::with_capacity(raw.len()),
            ids: Vec::with_capacity(raw.len()),
        };
        for (index, (raw, (tx, sender))) in raw.iter().zip(decode_all(raw, senders)).enumerate() {
            match tx {
                Ok(tx) => {
                    forced.ids.push(*tx.tx_hash());
                    forced.txs.push(tx);
                    forced.known_senders.push(sender);
                    forced.positions.push(index);
                }
                Err(err) => {
                    tracing::warn!(index, %err, "skipping undecodable forced transaction");
                    forced.ids.push(keccak256(raw));
                }
            }
        }
        forced
    }
}

/// Decodes EIP-2718 transactions, each with its hash, over the available cores; each core
/// hashes its share in one batch ([`tandem_keccak::keccak256_many`]) before decoding it, and
/// looks up the sender of each transaction that decodes in `senders` (the sender cache) while
/// its hash is at hand. The results come in order, each moved once by whoever takes it.
fn decode_all(
    raw: &[Bytes],
    senders: &B256Map<Address>,
) -> impl Iterator<Item = (Result<TxEnvelope, Eip2718Error>, Option<Address>)> + use<> {
    par_chunks(raw, |_, chunk| decode_chunk(chunk, senders))
        .into_iter()
        .flatten()
}

/// Decodes `raw`, its hashes computed in one batch ([`decode_all`]), each transaction that
/// decodes with its sender if `senders` (the sender cache) holds it.
fn decode_chunk(
    raw: &[Bytes],
    senders: &B256Map<Address>,
) -> Vec<(Result<TxEnvelope, Eip2718Error>, Option<Address>)> {
    let hashes = tandem_keccak::keccak256_many(raw);
    raw.iter()
        .zip(hashes)
        .map(|(raw, hash)| {
            let tx = decode_hashed(raw, hash);
            let sender = tx
                .as_ref()
                .ok()
                .and_then(|tx| senders.get(tx.tx_hash()).copied());
            (tx, sender)
        })
        .collect()
}

/// Decodes one transaction whose bytes hash to `hash`, as `TxEnvelope::decode_2718_exact`
/// does. EIP-2930, EIP-1559 and EIP-7702 transactions that decode cleanly take `hash` as
/// their own (their hash is that of their bytes); any other, and any that fails, go through
/// alloy's decoding, which hashes them itself and names the error.
fn decode_hashed(raw: &[u8], hash: B256) -> Result<TxEnvelope, Eip2718Error> {
    fn typed<T: RlpEcdsaDecodableTx>(raw: &[u8], hash: B256) -> Option<Signed<T>> {
        let mut body = raw.get(1..)?;
        let (tx, signature) = T::rlp_decode_with_signature(&mut body).ok()?;
        // All of `raw`, and nothing else, is the transaction's encoding (the check of
        // `decode_2718_exact`; the list's own length was checked by the decoding).
        body.is_empty()
            .then(|| Signed::new_unchecked(tx, signature, hash))
    }
    let decoded = match raw.first() {
        Some(1) => typed(raw, hash).map(TxEnvelope::Eip2930),
        Some(2) => typed(raw, hash).map(TxEnvelope::Eip1559),
        Some(4) => typed(raw, hash).map(TxEnvelope::Eip7702),
        _ => None,
    };
    if let Some(tx) = decoded {
        return Ok(tx);
    }
    let tx = TxEnvelope::decode_2718_exact(raw)?;
    tx.tx_hash();
    Ok(tx)
}

/// A payload id derived from the parent and the attributes, so equal requests get equal ids.
/// `ids` stand for the forced transactions, in order: the hash of each that decodes and
/// `keccak256` of the bytes of each that does not, taken in as their number and their
/// [`tree_hash`] (for thousands of transactions, one scalar keccak over all of them would cost
/// a third of a millisecond). Transactions that decode alike build alike, so they may share
/// an id.
fn payload_id(parent: B256, attrs: &OpPayloadAttributes, ids: &[B256]) -> PayloadId {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(parent.as_slice());
    buf.extend_from_slice(&attrs.inner.timestamp.to_be_bytes());
    buf.extend_from_slice(attrs.inner.prev_randao.as_slice());
    buf.extend_from_slice(attrs.inner.suggested_fee_recipient.as_slice());
    attrs
        .inner
        .withdrawals
        .as_deref()
        .unwrap_or_default()
        .to_vec()
        .encode(&mut buf);
    buf.extend_from_slice(
        attrs
            .inner
            .parent_beacon_block_root
            .unwrap_or_default()
            .as_slice(),
    );
    buf.extend_from_slice(&(ids.len() as u64).to_be_bytes());
    buf.extend_from_slice(tree_hash(ids).as_slice());
    buf.push(u8::from(attrs.no_tx_pool.unwrap_or(false)));
    buf.extend_from_slice(&attrs.gas_limit.unwrap_or(0).to_be_bytes());
    let hash = keccak256(&buf);
    PayloadId::new(hash[..8].try_into().expect("8 bytes"))
}

/// One hash standing for `hashes` in order: runs of four are hashed together, all in one batch
/// ([`tandem_keccak::keccak256_many`]), and so on up until one is left (zero for none). For
/// a given number of hashes the shape is fixed, so two lists of the same length share a tree
/// hash only if they are equal (or keccak collides); [`payload_id`] also takes the length.
fn tree_hash(hashes: &[B256]) -> B256 {
    let mut level = hashes.to_vec();
    while level.len() > 1 {
        let bytes: Vec<u8> = level.iter().flat_map(|hash| hash.0).collect();
        let runs: Vec<&[u8]> = bytes.chunks(4 * 32).collect();
        level = tandem_keccak::keccak256_many(&runs);
    }
    level.first().copied().unwrap_or_default()
}

/// Balance needed up front by `tx`: gas at the max fee plus value.
pub(crate) fn max_cost(tx: &TxEnvelope) -> U256 {
    U256::from(tx.gas_limit()) * U256::from(tx.max_fee_per_gas()) + tx.value()
}

#[cfg(test)]
mod tests {
    use alloy_eips::eip4895::Withdrawal;

    use super::*;

    fn attrs(timestamp: u64) -> OpPayloadAttributes {
        OpPayloadAttributes {
            inner: PayloadAttributes {
                timestamp,
                prev_randao: B256::repeat_byte(1),
                suggested_fee_recipient: Address::repeat_byte(2),
                withdrawals: Some(vec![Withdrawal {
                    index: 0,
                    validator_index: 1,
                    address: Address::repeat_byte(9),
                    amount: 5,
                }]),
                parent_beacon_block_root: Some(B256::repeat_byte(3)),
                slot_number: None,
                target_gas_limit: None,
            },
            transactions: Some(vec![]),
            no_tx_pool: Some(true),
            gas_limit: Some(30_000_000),
        }
    }

    #[test]
    fn payload_ids_follow_the_transactions_in_order() {
        let parent = B256::repeat_byte(5);
        let attrs = attrs(12);
        let hashes: Vec<B256> = (0..9u8).map(|i| keccak256([i])).collect();
        let id = |ids: &[B256]| payload_id(parent, &attrs, ids);
        assert_eq!(id(&hashes), id(&hashes.clone()));
        let mut ids = std::collections::HashSet::new();
        // Every prefix, and each one-hash change or swap of the full list.
        for len in 0..=hashes.len() {
            assert!(ids.insert(id(&hashes[..len])), "prefix {len}");
        }
        for at in 0..hashes.len() {
            let mut changed = hashes.clone();
            changed[at] = B256::repeat_byte(0xee);
            assert!(ids.insert(id(&changed)), "change at {at}");
            let mut swapped = hashes.clone();
            swapped.swap(at, (at + 1) % hashes.len());
            assert!(ids.insert(id(&swapped)), "swap at {at}");
        }
        // A list and the tree hash of its runs of four differ in length.
        let runs = [tree_hash(&hashes[..4]), tree_hash(&hashes[4..8])];
        assert!(ids.insert(id(&runs)));
        assert!(ids.insert(id(&[tree_hash(&hashes[..4])])));
    }

    #[test]
    fn op_attributes_parse_from_json() {
        let json = serde_json::json!({
            "timestamp": "0x10",
            "prevRandao": B256::repeat_byte(1),
            "suggestedFeeRecipient": Address::repeat_byte(2),
            "withdrawals": [],
            "parentBeaconBlockRoot": B256::repeat_byte(3),
            "transactions": ["0x01"],
            "noTxPool": true,
            "gasLimit": "0x1c9c380"
        });
        let parsed: OpPayloadAttributes = serde_json::from_value(json).unwrap();
        assert_eq!(parsed.gas_limit, Some(30_000_000));
        assert_eq!(parsed.no_tx_pool, Some(true));
        assert_eq!(parsed.inner.timestamp, 16);
    }

    #[test]
    fn empty_block_builds_and_validates_with_withdrawal_and_beacon_root() {
        let mut chain = Chain::open(&genesis::dev_genesis(), None).unwrap();
        let genesis = chain.genesis_hash();
        let fcs = ForkchoiceState {
            head_block_hash: genesis,
            safe_block_hash: genesis,
            finalized_block_hash: genesis,
        };
        let updated = chain.forkchoice_updated(fcs, Some(attrs(12))).unwrap();
        let envelope = chain.get_payload(updated.payload_id.unwrap()).unwrap();
        let status = chain.new_payload(
            envelope.execution_payload.clone(),
            &[],
            B256::repeat_byte(3),
        );
        assert_eq!(status.status, PayloadStatusEnum::Valid, "{status:?}");
        let block = chain
            .block(
                &envelope
                    .execution_payload
                    .payload_inner
                    .payload_inner
                    .block_hash,
            )
            .unwrap();
        assert_eq!(
            block
                .state
                .account(Address::repeat_byte(9))
                .unwrap()
                .balance,
            U256::from(5_000_000_000u64)
        );
        // EIP-4788 ring buffer: timestamp % 8191 -> timestamp, + 8191 -> root.
        let beacon = alloy_eips::eip4788::BEACON_ROOTS_ADDRESS;
        assert_eq!(block.state.storage(beacon, U256::from(12)), U256::from(12));
        assert_eq!(
            block.state.storage(beacon, U256::from(12 + 8191)),
            U256::from_be_bytes([3u8; 32])
        );
    }

    #[test]
    fn large_blocks_take_the_parallel_paths_and_validate() {
        // A fresh chain recovers every sender itself (no cache) and must agree on every root.
        built_and_accepted(&genesis::dev_genesis(), dev_transfers(), 80);
    }

    /// `payload_block`, with the root and without, fails on `payload` as alloy's conversion
    /// does.
    fn assert_same_error(payload: &ExecutionPayloadV3, expected: &PayloadError) {
        for root in [true, false] {
            assert_eq!(
                payload_block(payload.clone(), root, &B256Map::default())
                    .unwrap_err()
                    .to_string(),
                expected.to_string()
            );
        }
    }

    #[test]
    fn payload_block_is_alloys_conversion() {
        let mut builder = Chain::open(&genesis::dev_genesis(), None).unwrap();
        let large = build_on_genesis(&mut builder, dev_transfers());
        let mut small = large.clone();
        small.payload_inner.payload_inner.transactions.truncate(3);
        for payload in [large, small] {
            let (ours, _) = payload_block(payload.clone(), true, &B256Map::default()).unwrap();
            let alloys: Block<TxEnvelope> = payload.clone().try_into_block().unwrap();
            assert_eq!(ours, alloys);
            assert_eq!(ours.header.hash_slow(), alloys.header.hash_slow());
            // Without the root: the same block but for the root, left at zero.
            let (mut rootless, _) =
                payload_block(payload.clone(), false, &B256Map::default()).unwrap();
            assert_eq!(rootless.header.transactions_root, B256::ZERO);
            rootless.header.transactions_root = alloys.header.transactions_root;
            assert_eq!(rootless, alloys);
            // The senders the builder's cache holds, found while decoding, one per
            // transaction: those that recovery gives.
            let (_, known) = payload_block(payload.clone(), false, &builder.senders).unwrap();
            let recovered: Vec<Option<Address>> = alloys
                .body
                .transactions
                .iter()
                .map(|tx| Some(tx.recover_signer().unwrap()))
                .collect();
            assert_eq!(known, recovered);
            let (_, unknown) = payload_block(payload.clone(), false, &B256Map::default()).unwrap();
            assert!(unknown.iter().all(Option::is_none));
            // Errors, in the same order: an undecodable transaction, then extra data too long
            // (checked first).
            let mut broken = payload;
            broken.payload_inner.payload_inner.transactions[1] = Bytes::from_static(&[0x02, 0xc0]);
            let expected = broken.clone().try_into_block::<TxEnvelope>().unwrap_err();
            assert_same_error(&broken, &expected);
            broken.payload_inner.payload_inner.extra_data = Bytes::from(vec![0; 33]);
            let expected = broken.clone().try_into_block::<TxEnvelope>().unwrap_err();
            assert!(matches!(expected, PayloadError::ExtraData(_)), "{expected}");
            assert_same_error(&broken, &expected);
        }
    }

    /// alloy's state root over every account of `block`'s post-state (by trie key), computed
    /// from scratch.
    fn alloys_state_root(block: &ExecutedBlock) -> B256 {
        alloy_trie::root::state_root_unsorted(
            block
                .state
                .accounts()
                .map(|(key, account)| (*key, account.trie_account())),
        )
    }

    /// `chain` accepts `payload`, and the accepted block's transactions root is alloy's over
    /// its transactions.
    fn accept_with_alloys_transactions_root(chain: &mut Chain, payload: ExecutionPayloadV3) {
        let hash = payload.payload_inner.payload_inner.block_hash;
        let status = chain.new_payload(payload, &[], B256::repeat_byte(3));
        assert_eq!(status.status, PayloadStatusEnum::Valid, "{status:?}");
        let block = &chain.block(&hash).unwrap().block;
        assert_eq!(
            block.header.transactions_root,
            alloy_consensus::proofs::calculate_transaction_root(&block.body.transactions)
        );
    }

    /// Builds a block of `transactions` on `genesis`, checks that it includes `included` of
    /// them, and has a fresh chain accept it ([`accept_with_alloys_transactions_root`]).
    /// Returns that chain and the block's hash.
    fn built_and_accepted(
        genesis: &Genesis,
        transactions: Vec<Bytes>,
        included: usize,
    ) -> (Chain, B256) {
        let mut builder = Chain::open(genesis, None).unwrap();
        let payload = build_on_genesis(&mut builder, transactions);
        assert_eq!(
            payload.payload_inner.payload_inner.transactions.len(),
            included
        );
        let hash = payload.payload_inner.payload_inner.block_hash;
        let mut validator = Chain::open(genesis, None).unwrap();
        accept_with_alloys_transactions_root(&mut validator, payload);
        (validator, hash)
    }

    #[test]
    fn a_block_touching_many_accounts_has_alloys_state_root() {
        // 80 fresh recipients, spread over every subtrie of the account trie.
        let transactions =
            dev_transfers_to(|n| Address::left_padding_from(&(n + 1000).to_be_bytes()));
        let (validator, hash) = built_and_accepted(&genesis::dev_genesis(), transactions, 80);
        let block = validator.block(&hash).unwrap();
        assert_eq!(block.header().state_root, alloys_state_root(block));
        // The recipient of nonce 0 got 0 wei: an empty account, which EIP-161 never creates.
        let balance = |n: u64| {
            let to = Address::left_padding_from(&(n + 1000).to_be_bytes());
            block.state.account(to).map(|a| a.balance)
        };
        assert_eq!(balance(0), None);
        for n in 1..80u64 {
            assert_eq!(balance(n), Some(U256::from(n)));
        }
    }

    #[test]
    fn a_large_build_that_skips_a_transaction_roots_only_the_included_ones() {
        let mut transactions = dev_transfers();
        // Without nonce 60, nonces 61..80 are skipped.
        transactions.remove(60);
        let mut chain = Chain::open(&genesis::dev_genesis(), None).unwrap();
        let payload = build_on_genesis(&mut chain, transactions);
        assert_eq!(payload.payload_inner.payload_inner.transactions.len(), 60);
        accept_with_alloys_transactions_root(&mut chain, payload);
    }

    /// The payload `chain` builds on its genesis from `attrs(12)` with `transactions` forced.
    fn build_on_genesis(chain: &mut Chain, transactions: Vec<Bytes>) -> ExecutionPayloadV3 {
        let fcs = ForkchoiceState {
            head_block_hash: chain.genesis_hash(),
            ..Default::default()
        };
        let mut a = attrs(12);
        a.transactions = Some(transactions);
        let id = chain
            .forkchoice_updated(fcs, Some(a))
            .unwrap()
            .payload_id
            .unwrap();
        chain.get_payload(id).unwrap().execution_payload
    }

    /// 80 EIP-1559 transfers from the dev account to one recipient, nonces 0..80.
    fn dev_transfers() -> Vec<Bytes> {
        dev_transfers_to(|_| Address::with_last_byte(0x80))
    }

    /// 80 EIP-1559 transfers from the dev account, nonces 0..80, the one of nonce `n` to
    /// `to(n)`, as raw EIP-2718 bytes.
    fn dev_transfers_to(to: impl Fn(u64) -> Address) -> Vec<Bytes> {
        dev_transactions(|nonce| (to(nonce), U256::from(nonce), Bytes::new(), 21_000))
    }

    /// 80 EIP-1559 transactions from the dev account, nonces 0..80, the one of nonce `n` with
    /// the recipient, value, input and gas limit `make(n)`, as raw EIP-2718 bytes.
    fn dev_transactions(make: impl Fn(u64) -> (Address, U256, Bytes, u64)) -> Vec<Bytes> {
        (0..80u64)
            .map(|nonce| {
                let (to, value, input, gas_limit) = make(nonce);
                dev_signed(
                    nonce,
                    alloy_primitives::TxKind::Call(to),
                    value,
                    input,
                    gas_limit,
                )
            })
            .collect()
    }

    /// An EIP-1559 transaction of the dev account ([`genesis::DEV_ACCOUNT`]), signed, as raw
    /// EIP-2718 bytes.
    fn dev_signed(
        nonce: u64,
        to: alloy_primitives::TxKind,
        value: U256,
        input: Bytes,
        gas_limit: u64,
    ) -> Bytes {
        let key: alloy_signer_local::PrivateKeySigner =
            "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
                .parse()
                .unwrap();
        let tx = alloy_consensus::TxEip1559 {
            chain_id: genesis::DEV_CHAIN_ID,
            nonce,
            gas_limit,
            max_fee_per_gas: 20_000_000_000,
            max_priority_fee_per_gas: 1,
            to,
            value,
            access_list: alloy_eips::eip2930::AccessList::default(),
            input,
        };
        signed_by(&key, tx)
    }

    /// `tx` signed by `key`, as raw EIP-2718 bytes.
    fn signed_by<T>(key: &alloy_signer_local::PrivateKeySigner, tx: T) -> Bytes
    where
        T: alloy_consensus::SignableTransaction<alloy_primitives::Signature>,
        TxEnvelope: From<Signed<T>>,
    {
        use alloy_eips::eip2718::Encodable2718 as _;
        use alloy_signer::SignerSync as _;

        let signature = key.sign_hash_sync(&tx.signature_hash()).unwrap();
        TxEnvelope::from(tx.into_signed(signature))
            .encoded_2718()
            .into()
    }

    /// One signed transaction of each type, as raw EIP-2718 bytes.
    fn one_of_each_type() -> Vec<Bytes> {
        use alloy_consensus::{TxEip1559, TxEip2930, TxEip4844, TxEip7702, TxLegacy};
        use alloy_eips::eip2930::{AccessList, AccessListItem};

        let key = alloy_signer_local::PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
        let to = Address::repeat_byte(0x42);
        let access_list = AccessList(vec![AccessListItem {
            address: to,
            storage_keys: vec![B256::repeat_byte(1), B256::repeat_byte(2)],
        }]);
        vec![
            signed_by(
                &key,
                TxLegacy {
                    chain_id: Some(genesis::DEV_CHAIN_ID),
                    nonce: 1,
                    gas_price: 7,
                    gas_limit: 21_000,
                    to: to.into(),
                    value: U256::from(5),
                    input: Bytes::from_static(&[1, 2, 3]),
                },
            ),
            signed_by(
                &key,
                TxEip2930 {
                    chain_id: genesis::DEV_CHAIN_ID,
                    nonce: 2,
                    gas_price: 7,
                    gas_limit: 50_000,
                    to: to.into(),
                    value: U256::ZERO,
                    access_list: access_list.clone(),
                    input: Bytes::new(),
                },
            ),
            signed_by(
                &key,
                TxEip1559 {
                    chain_id: genesis::DEV_CHAIN_ID,
                    nonce: 3,
                    gas_limit: 21_000,
                    max_fee_per_gas: 9,
                    max_priority_fee_per_gas: 1,
                    to: to.into(),
                    value: U256::from(1),
                    access_list: access_list.clone(),
                    input: Bytes::from(vec![0xab; 40]),
                },
            ),
            signed_by(
                &key,
                TxEip4844 {
                    chain_id: genesis::DEV_CHAIN_ID,
                    nonce: 4,
                    gas_limit: 21_000,
                    max_fee_per_gas: 9,
                    max_priority_fee_per_gas: 1,
                    to,
                    value: U256::ZERO,
                    access_list: AccessList::default(),
                    blob_versioned_hashes: vec![B256::repeat_byte(1)],
                    max_fee_per_blob_gas: 3,
                    input: Bytes::new(),
                },
            ),
            signed_by(
                &key,
                TxEip7702 {
                    chain_id: genesis::DEV_CHAIN_ID,
                    nonce: 5,
                    gas_limit: 60_000,
                    max_fee_per_gas: 9,
                    max_priority_fee_per_gas: 1,
                    to,
                    value: U256::ZERO,
                    access_list,
                    authorization_list: vec![],
                    input: Bytes::new(),
                },
            ),
        ]
    }

    #[test]
    fn decoding_with_batched_hashes_is_alloys_decoding() {
        let mut inputs = Vec::new();
        for raw in one_of_each_type() {
            for at in 0..raw.len() {
                for flip in [0x01, 0x80, 0xff] {
                    let mut mutated = raw.to_vec();
                    mutated[at] ^= flip;
                    inputs.push(Bytes::from(mutated));
                }
                inputs.push(raw.slice(..at));
            }
            let mut longer = raw.to_vec();
            longer.push(0);
            inputs.push(longer.into());
            inputs.push(raw);
        }
        let decoded = decode_all(&inputs, &B256Map::default()).map(|(tx, _)| tx);
        let mut valid = 0;
        for (raw, ours) in inputs.iter().zip(decoded) {
            let alloys = TxEnvelope::decode_2718_exact(raw);
            match (ours, alloys) {
                (Ok(ours), Ok(alloys)) => {
                    valid += 1;
                    assert_eq!(ours, alloys);
                    assert_eq!(ours.tx_hash(), alloys.tx_hash());
                    assert_eq!(*ours.tx_hash(), keccak256(raw));
                }
                (Err(ours), Err(alloys)) => assert_eq!(ours.to_string(), alloys.to_string()),
                (ours, alloys) => panic!("{raw}: ours {ours:?}, alloy's {alloys:?}"),
            }
        }
        // The unchanged transactions, and mutations that still decode (another value).
        assert!(valid > 5, "{valid} inputs decoded");
    }

    #[test]
    fn created_and_self_destructed_accounts_leave_the_state_as_alloy_computes_it() {
        let heir = Address::repeat_byte(0x4e);
        // Nonce 0 creates a contract whose init code stores 7 at slot 1 and returns the
        // runtime code `STOP`; nonce 1 creates one whose init code self-destructs to `heir`
        // (EIP-6780: created in the same transaction, so it is removed), with 1,000 wei.
        let keeps = [
            0x60, 0x07, 0x60, 0x01, 0x55, // SSTORE(1, 7)
            0x60, 0x00, 0x60, 0x00, 0x53, // MSTORE8(0, 0): runtime code 0x00
            0x60, 0x01, 0x60, 0x00, 0xf3, // RETURN(0, 1)
        ];
        let mut destroys = vec![0x73];
        destroys.extend_from_slice(heir.as_slice());
        destroys.push(0xff);
        let creations: Vec<Bytes> = [(0u64, keeps.to_vec(), 0u64), (1, destroys, 1_000)]
            .into_iter()
            .map(|(nonce, init, value)| {
                let create = alloy_primitives::TxKind::Create;
                dev_signed(nonce, create, U256::from(value), init.into(), 200_000)
            })
            .collect();
        // Alone, and followed by 78 transfers to new accounts: a block large enough for its
        // account update to be shared out between two threads.
        let transfers = (2..80u64).map(|nonce| {
            let to = Address::from_word(B256::from(U256::from(0x5000 + nonce)));
            let call = alloy_primitives::TxKind::Call(to);
            dev_signed(nonce, call, U256::from(1), Bytes::new(), 21_000)
        });
        for transactions in [
            creations.clone(),
            creations.into_iter().chain(transfers).collect(),
        ] {
            check_created_and_self_destructed(transactions, heir);
        }
    }

    /// The block of `transactions`, which start with `created_and_self_destructed_…`'s two
    /// creations, leaves the kept contract with its code and storage, the other gone, and
    /// `heir` with its balance.
    fn check_created_and_self_destructed(transactions: Vec<Bytes>, heir: Address) {
        let count = transactions.len();
        let (validator, hash) = built_and_accepted(&genesis::dev_genesis(), transactions, count);
        let block = validator.block(&hash).unwrap();
        let kept = genesis::DEV_ACCOUNT.create(0);
        let account = block.state.account(kept).unwrap();
        assert_eq!(block.state.storage(kept, U256::from(1)), U256::from(7));
        assert_eq!(block.state.code(kept), Bytes::from_static(&[0x00]));
        assert_eq!(
            account.storage_root,
            alloy_trie::root::storage_root_unhashed([(B256::from(U256::from(1)), U256::from(7))])
        );
        assert!(block
            .state
            .account(genesis::DEV_ACCOUNT.create(1))
            .is_none());
        assert_eq!(
            block.state.account(heir).map(|a| a.balance),
            Some(U256::from(1_000))
        );
        assert_eq!(block.header().state_root, alloys_state_root(block));
    }

    #[test]
    fn a_large_block_that_leaves_a_transaction_out_has_alloys_receipts_root() {
        // 81 candidates, one a replay of nonce 5 that is left out. The receipts trie hashed
        // while the block ran was laid out for 81 leaves, so the builder computes the root of
        // the 80 receipts again; the validator, which includes all 80, keeps its early one.
        let mut transactions = dev_transfers();
        transactions.insert(40, transactions[5].clone());
        let (validator, hash) = built_and_accepted(&genesis::dev_genesis(), transactions, 80);
        let block = validator.block(&hash).unwrap();
        assert_eq!(
            block.header().receipts_root,
            alloy_consensus::proofs::calculate_receipt_root(&block.receipts)
        );
    }

    #[test]
    fn a_block_writing_many_slots_has_alloys_storage_and_state_roots() {
        // A contract that stores calldata word 1 at the slot given by calldata word 0
        // (PUSH1 32 CALLDATALOAD PUSH1 0 CALLDATALOAD SSTORE STOP), with slots 0..10 set.
        let store = Address::repeat_byte(0x5e);
        let mut genesis = genesis::dev_genesis();
        let slot = |n: u64| B256::from(U256::from(n));
        genesis.alloc.insert(
            store,
            alloy_genesis::GenesisAccount {
                code: Some(Bytes::from_static(&[
                    0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x55, 0x00,
                ])),
                storage: Some((0..10).map(|n| (slot(n), slot(1))).collect()),
                ..Default::default()
            },
        );
        // Nonces 0..10 clear the genesis slots; the other 70 write new ones. 80 changed slots
        // take the parallel storage-root path, and every slot was read before its write.
        let value = |n: u64| if n < 10 { 0 } else { 7 * n + 1 };
        let transactions = dev_transactions(|n| {
            let input = [slot(n), slot(value(n))].concat();
            (store, U256::ZERO, input.into(), 100_000)
        });
        let (validator, hash) = built_and_accepted(&genesis, transactions, 80);
        let block = validator.block(&hash).unwrap();
        let account = block.state.account(store).unwrap();
        assert_eq!(account.storage.len(), 70);
        let expected = alloy_trie::root::storage_root_unhashed(
            (10..80).map(|n| (slot(n), U256::from(value(n)))),
        );
        assert_eq!(account.storage_root, expected);
        assert_eq!(block.header().state_root, alloys_state_root(block));

        // The validator knows the slots' keys now ([`SlotKeys`]): a block it builds with them
        // is the block a node without them builds.
        let mut warm = validator;
        assert!(warm.slot_keys.len() >= 80, "{} keys", warm.slot_keys.len());
        let mut cold = Chain::open(&genesis, None).unwrap();
        let transactions = dev_transactions(|n| {
            let input = [slot(n), slot(value(n) + 1)].concat();
            (store, U256::ZERO, input.into(), 100_000)
        });
        let built_warm = build_on_genesis(&mut warm, transactions.clone());
        let built_cold = build_on_genesis(&mut cold, transactions);
        assert_eq!(built_warm, built_cold);
    }

    #[test]
    fn the_same_attributes_without_the_pool_name_the_payload_built_already() {
        let mut chain = Chain::open(&genesis::dev_genesis(), None).unwrap();
        let fcs = ForkchoiceState {
            head_block_hash: chain.genesis_hash(),
            ..Default::default()
        };
        let mut with_txs = attrs(12);
        with_txs.transactions = Some(dev_transfers());
        let mut build = |attrs: &OpPayloadAttributes| {
            let updated = chain.forkchoice_updated(fcs, Some(attrs.clone())).unwrap();
            let id = updated.payload_id.unwrap();
            (id, Arc::clone(&chain.payloads[&id].block))
        };
        let (id, first) = build(&with_txs);
        let (again, second) = build(&with_txs);
        assert_eq!(again, id);
        assert!(Arc::ptr_eq(&first, &second), "built once");
        // With the local pool, whose transactions may have come since, it is built again.
        with_txs.no_tx_pool = Some(false);
        let (pooled, third) = build(&with_txs);
        let (pooled_again, fourth) = build(&with_txs);
        assert_eq!(pooled, pooled_again);
        assert_ne!(pooled, id);
        assert!(!Arc::ptr_eq(&third, &fourth), "built again");
        assert_eq!(third.hash, fourth.hash);
    }

    #[test]
    fn the_payload_this_node_built_is_accepted_without_re_execution_and_a_changed_one_is_not() {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let mut chain = Chain::open(&genesis::dev_genesis(), None).unwrap();
        chain.set_metrics(metrics.clone());
        let payload = build_on_genesis(&mut chain, dev_transfers());
        let hash = payload.payload_inner.payload_inner.block_hash;

        // The same block with its last transaction dropped and the hash kept: the decoded
        // transactions root no longer matches, so it is re-executed and refused.
        let mut changed = payload.clone();
        changed.payload_inner.payload_inner.transactions.pop();
        let status = chain.new_payload(changed, &[], B256::repeat_byte(3));
        assert!(
            matches!(status.status, PayloadStatusEnum::Invalid { .. }),
            "{status:?}"
        );
        assert!(metrics
            .encode()
            .contains("tandem_evm_payloads_reused_total 0"));

        // The served payload under another beacon root is another header: refused by hash.
        let status = chain.new_payload(payload.clone(), &[], B256::repeat_byte(4));
        let PayloadStatusEnum::Invalid { validation_error } = &status.status else {
            panic!("{status:?}")
        };
        assert!(validation_error.contains("blockHash"), "{validation_error}");
        assert!(metrics
            .encode()
            .contains("tandem_evm_payloads_reused_total 0"));

        let status = chain.new_payload(payload, &[], B256::repeat_byte(3));
        assert_eq!(status.status, PayloadStatusEnum::Valid, "{status:?}");
        assert!(metrics
            .encode()
            .contains("tandem_evm_payloads_reused_total 1"));
        // The block tree holds the built block itself, not a copy.
        let built = chain.payloads.values().next().unwrap();
        assert!(Arc::ptr_eq(&built.block, &chain.blocks[&hash]));
        let block = chain.block(&hash).unwrap();
        assert_eq!(block.block.body.transactions.len(), 80);
        // The state root was computed incrementally over the genesis state's cached subtries:
        // it must equal alloy's computation from scratch.
        assert_eq!(block.header().state_root, alloys_state_root(block));
        assert_eq!(
            block
                .state
                .account(Address::with_last_byte(0x80))
                .unwrap()
                .balance,
            U256::from((0..80u64).sum::<u64>())
        );
    }

    /// Builds a block on `parent` through the Engine API calls and makes it the head, with
    /// `safe` as the safe and finalized block.
    fn extend(chain: &mut Chain, parent: B256, timestamp: u64, safe: B256) -> B256 {
        let fcs = ForkchoiceState {
            head_block_hash: parent,
            ..Default::default()
        };
        let id = chain
            .forkchoice_updated(fcs, Some(attrs(timestamp)))
            .unwrap()
            .payload_id
            .unwrap();
        let payload = chain.get_payload(id).unwrap().execution_payload;
        let hash = payload.payload_inner.payload_inner.block_hash;
        let status = chain.new_payload(payload, &[], B256::repeat_byte(3));
        assert_eq!(status.status, PayloadStatusEnum::Valid, "{status:?}");
        let fcs = ForkchoiceState {
            head_block_hash: hash,
            safe_block_hash: safe,
            finalized_block_hash: safe,
        };
        chain.forkchoice_updated(fcs, None).unwrap();
        hash
    }

    #[test]
    fn a_datadir_resumes_its_forkchoice_and_survives_a_cut_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let dev = genesis::dev_genesis();
        let mut chain = Chain::open(&dev, Some(dir.path())).unwrap();
        let genesis = chain.genesis_hash();
        let first = extend(&mut chain, genesis, 12, genesis);
        let second = extend(&mut chain, first, 13, first);
        drop(chain);

        let chain = Chain::open(&dev, Some(dir.path())).unwrap();
        assert_eq!(chain.head().hash, second);
        assert_eq!((chain.safe, chain.finalized), (first, first));
        drop(chain);

        // A crash while appending the second block: its record is cut short.
        let log = dir.path().join("blocks.rlp");
        let bytes = std::fs::read(&log).unwrap();
        std::fs::write(&log, &bytes[..bytes.len() - 10]).unwrap();
        let mut chain = Chain::open(&dev, Some(dir.path())).unwrap();
        assert_eq!(chain.head().hash, first, "the saved safe block is the head");
        assert!(chain.block(&second).is_none());
        // The consensus side sends the lost block again, and the chain goes on from it.
        assert_eq!(extend(&mut chain, first, 13, first), second);
        drop(chain);

        let mut other = dev.clone();
        other.gas_limit += 1;
        let err = Chain::open(&other, Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("belongs to genesis"), "{err}");
    }

    #[test]
    fn attributes_that_are_not_v3_are_invalid_attributes() {
        let mut chain = Chain::open(&genesis::dev_genesis(), None).unwrap();
        let genesis = chain.genesis_hash();
        let fcs = ForkchoiceState {
            head_block_hash: genesis,
            ..Default::default()
        };
        let mut a = attrs(12);
        a.inner.parent_beacon_block_root = None;
        assert_eq!(
            chain.forkchoice_updated(fcs, Some(a)).unwrap_err().code(),
            -38003
        );
        let mut a = attrs(12);
        a.inner.withdrawals = None;
        assert_eq!(
            chain.forkchoice_updated(fcs, Some(a)).unwrap_err().code(),
            -38003
        );
        let a = attrs(0);
        assert_eq!(
            chain.forkchoice_updated(fcs, Some(a)).unwrap_err().code(),
            -38003
        );
    }
}
