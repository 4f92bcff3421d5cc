//! Block building and block validation: pure functions of a parent block and inputs.
//!
//! Both paths run the same steps: the EIP-4788 system call storing the parent beacon block root,
//! the transactions on revm (Cancun rules), the withdrawals, then the roots. Building skips a
//! transaction that cannot be included (and reports why); validation rejects the whole block.

use std::sync::Arc;

use alloy_consensus::{
    proofs::calculate_withdrawals_root, Block, BlockBody, Eip658Value, Header, Receipt,
    ReceiptEnvelope, ReceiptWithBloom, Transaction as _, TxEnvelope, TxType, EMPTY_OMMER_ROOT_HASH,
};
use alloy_eips::{
    eip1559::BaseFeeParams,
    eip2718::Encodable2718 as _,
    eip4788::{BEACON_ROOTS_ADDRESS, SYSTEM_ADDRESS},
    eip4895::Withdrawal,
    eip7840::BlobParams,
    Typed2718 as _,
};
use alloy_primitives::{Address, Bloom, BloomInput, Bytes, B256, B64, U256};
use revm::{
    context::{BlockEnv, CfgEnv, TxEnv},
    context_interface::block::BlobExcessGasAndPrice,
    handler::{MainnetContext, MainnetEvm},
    primitives::{eip4844::BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN, hardfork::SpecId},
    Context, ExecuteCommitEvm as _, MainBuilder as _, MainContext as _, SystemCallEvm as _,
};

use crate::{
    parallel::MIN_PARALLEL_ITEMS,
    state::{preload, BlockDb, SharedApply, SlotKeys, WorldState},
    trie,
};

/// Smallest block gas limit accepted.
pub(crate) const MIN_GAS_LIMIT: u64 = 5_000;
/// Largest extra-data accepted in a header.
const MAX_EXTRA_DATA: usize = 32;

/// A block that was executed, with everything needed to serve it.
#[derive(Clone, Debug)]
pub(crate) struct ExecutedBlock {
    pub(crate) block: Block<TxEnvelope>,
    pub(crate) hash: B256,
    pub(crate) senders: Vec<Address>,
    pub(crate) receipts: Vec<ReceiptEnvelope>,
    /// Post-state of the block.
    pub(crate) state: WorldState,
    /// Priority fees paid to the fee recipient.
    pub(crate) block_value: U256,
}

impl ExecutedBlock {
    /// The genesis block.
    pub(crate) fn genesis(header: Header, state: WorldState) -> Self {
        let block = Block {
            header,
            body: BlockBody {
                transactions: vec![],
                ommers: vec![],
                withdrawals: Some(alloy_eips::eip4895::Withdrawals::default()),
            },
        };
        let hash = block.header.hash_slow();
        Self {
            block,
            hash,
            senders: vec![],
            receipts: vec![],
            state,
            block_value: U256::ZERO,
        }
    }

    pub(crate) fn number(&self) -> u64 {
        self.block.header.number
    }

    pub(crate) fn header(&self) -> &Header {
        &self.block.header
    }
}

/// What a new block is built from, besides its parent (the payload attributes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BuildInput {
    pub(crate) timestamp: u64,
    pub(crate) prev_randao: B256,
    pub(crate) fee_recipient: Address,
    pub(crate) withdrawals: Vec<Withdrawal>,
    pub(crate) parent_beacon_block_root: B256,
    pub(crate) gas_limit: u64,
}

/// A transaction with its recovered sender.
#[derive(Clone, Debug)]
pub(crate) struct Candidate {
    pub(crate) tx: TxEnvelope,
    pub(crate) sender: Address,
}

/// Transactions with their recovered senders (`senders[i]` signed `txs[i]`), in order.
///
/// Kept as two lists so that a block's transactions, decoded once, move into the block as a
/// whole: a transaction is 400 bytes, and a block of thousands would otherwise be copied
/// from list to list on its way.
#[derive(Clone, Debug, Default)]
pub(crate) struct Candidates {
    pub(crate) txs: Vec<TxEnvelope>,
    pub(crate) senders: Vec<Address>,
}

impl Candidates {
    /// The number of transactions.
    pub(crate) fn len(&self) -> usize {
        self.txs.len()
    }

    /// Adds one at the end.
    pub(crate) fn push(&mut self, Candidate { tx, sender }: Candidate) {
        self.txs.push(tx);
        self.senders.push(sender);
    }

    /// Each transaction with its sender.
    fn iter(&self) -> impl Iterator<Item = (&TxEnvelope, Address)> {
        self.txs.iter().zip(self.senders.iter().copied())
    }

    /// Keeps the transactions at `included` (increasing positions).
    fn keep(&mut self, included: &[usize]) {
        if included.len() == self.len() {
            return;
        }
        let mut wanted = vec![false; self.len()];
        for index in included {
            wanted[*index] = true;
        }
        retain_flagged(&mut self.txs, &wanted);
        retain_flagged(&mut self.senders, &wanted);
    }
}

/// Keeps the items of `items` whose flag in `keep` (one per item) is set, in order.
pub(crate) fn retain_flagged<T>(items: &mut Vec<T>, keep: &[bool]) {
    debug_assert_eq!(items.len(), keep.len(), "one flag per item");
    let mut kept = keep.iter();
    items.retain(|_| *kept.next().expect("one flag per item"));
}

/// A transaction that building left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Skipped {
    pub(crate) hash: B256,
    pub(crate) reason: String,
}

/// Why a block is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    /// A header field does not match its recomputed value.
    #[error("{field} mismatch: header has {got}, execution gives {expected}")]
    Mismatch {
        /// The field.
        field: &'static str,
        /// Value in the header.
        got: String,
        /// Recomputed value.
        expected: String,
    },
    /// A header field breaks a rule that does not need execution.
    #[error("invalid header: {0}")]
    Header(String),
    /// A transaction could not be executed.
    #[error("transaction {index} ({hash}) is invalid: {reason}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Its hash.
        hash: B256,
        /// What was wrong.
        reason: String,
    },
    /// The EVM failed outside any transaction rule (state access).
    #[error("execution failed: {0}")]
    Execution(String),
}

/// The environment of one block's execution.
struct BlockContext<'a> {
    chain_id: u64,
    parent: &'a ExecutedBlock,
    block_hashes: &'a [(u64, B256)],
    header: Header,
    /// Storage slot keys known from earlier blocks.
    slot_keys: &'a SlotKeys,
}

/// The EVM that runs a block.
type BlockEvm<'a> = MainnetEvm<MainnetContext<BlockDb<'a>>>;

/// The result of running a block's transactions.
struct Outcome {
    /// Indices of the candidates the block includes, in order.
    included: Vec<usize>,
    /// The included transactions and their senders, moved from the candidates after
    /// execution ([`execute_beside_root`]).
    included_candidates: Candidates,
    receipts: Vec<ReceiptEnvelope>,
    /// The root of `receipts`.
    receipts_root: B256,
    /// Storage slot keys computed by this block that the context did not know.
    new_slot_keys: Vec<(U256, B256)>,
    gas_used: u64,
    block_value: U256,
    state: WorldState,
    skipped: Vec<Skipped>,
}

/// Builds the block on `parent` from `input` and the candidate transactions, in order.
///
/// `block_hashes` are the hashes of up to 256 ancestors (parent included), for `BLOCKHASH`.
#[tracing::instrument(level = "debug", skip_all)]
pub(crate) fn build_block(
    chain_id: u64,
    parent: &ExecutedBlock,
    block_hashes: &[(u64, B256)],
    input: &BuildInput,
    candidates: Candidates,
    slot_keys: &mut SlotKeys,
) -> Result<(ExecutedBlock, Vec<Skipped>), BlockError> {
    let parent_header = parent.header();
    let header = Header {
        parent_hash: parent.hash,
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: input.fee_recipient,
        difficulty: U256::ZERO,
        number: parent_header.number + 1,
        gas_limit: input.gas_limit,
        timestamp: input.timestamp,
        extra_data: Bytes::new(),
        mix_hash: input.prev_randao,
        nonce: B64::ZERO,
        base_fee_per_gas: Some(next_base_fee(parent_header)),
        withdrawals_root: Some(calculate_withdrawals_root(&input.withdrawals)),
        blob_gas_used: Some(0),
        excess_blob_gas: Some(next_excess_blob_gas(parent_header)),
        parent_beacon_block_root: Some(input.parent_beacon_block_root),
        ..Header::default()
    };
    let context = BlockContext {
        chain_id,
        parent,
        block_hashes,
        header,
        slot_keys,
    };
    let (outcome, transactions_root) =
        execute_beside_root(&context, candidates, &input.withdrawals, Mode::Build, true);
    let mut outcome = outcome?;
    let new_slot_keys = std::mem::take(&mut outcome.new_slot_keys);
    let skipped = outcome.skipped.clone();
    // The root of the candidates is the block's unless building left some out.
    let transactions_root = transactions_root.filter(|_| skipped.is_empty());
    let block = seal(
        context.header,
        outcome,
        input.withdrawals.clone(),
        transactions_root,
    );
    slot_keys.extend(new_slot_keys);
    Ok((block, skipped))
}

/// What the caller of [`validate_block`] already knows of the block.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Known {
    /// The hash the block claims: a payload's `blockHash`, or the key of a replayed block.
    /// With `root_from_body`, the caller has checked the header against it already; otherwise
    /// it is checked here, first of all. The sealed result must still hash to it.
    pub(crate) hash: B256,
    /// The header's transactions root was computed from this very body (as a payload's is,
    /// [`crate::chain`]'s `payload_block` with a root): it is then taken as is instead of
    /// being computed a second time. Otherwise the header's root is not used (a block read
    /// back from disk claims one; a new payload's is not computed yet): it is computed from
    /// the body beside the execution, and the header with it must hash to `hash`, which is
    /// checked before anything else is answered.
    pub(crate) root_from_body: bool,
}

/// Re-executes `block` (whose transactions `senders` signed) on `parent` and checks every
/// header field against the result. The storage slot keys it computes join `slot_keys`.
#[tracing::instrument(level = "debug", skip_all)]
pub(crate) fn validate_block(
    chain_id: u64,
    parent: &ExecutedBlock,
    block_hashes: &[(u64, B256)],
    (block, senders): (Block<TxEnvelope>, Vec<Address>),
    known: Known,
    slot_keys: &mut SlotKeys,
) -> Result<ExecutedBlock, BlockError> {
    let Known {
        hash: claimed_hash,
        root_from_body,
    } = known;
    let Block { mut header, body } = block;
    debug_assert!(
        !root_from_body || header.hash_slow() == claimed_hash,
        "the caller hashed this header"
    );
    // With the root computed here, the block hash is checked first of all (execution-apis:
    // a payload that does not hash to its `blockHash` is answered so, whatever else is wrong).
    let hash_first = |header: &mut Header, root: B256| {
        header.transactions_root = root;
        compare("blockHash", &claimed_hash, &header.hash_slow())
    };
    if let Err(err) = check_header(&header, parent) {
        if !root_from_body {
            hash_first(&mut header, root_of(&body.transactions))?;
        }
        return Err(err);
    }
    let parent_header = parent.header();
    let withdrawals = body
        .withdrawals
        .map(alloy_eips::eip4895::Withdrawals::into_inner)
        .unwrap_or_default();
    if body.transactions.len() != senders.len() {
        return Err(BlockError::Execution(format!(
            "{} transactions but {} senders",
            body.transactions.len(),
            senders.len()
        )));
    }
    let candidates = Candidates {
        txs: body.transactions,
        senders,
    };
    let expected_header = Header {
        base_fee_per_gas: Some(next_base_fee(parent_header)),
        excess_blob_gas: Some(next_excess_blob_gas(parent_header)),
        ..header.clone()
    };
    let context = BlockContext {
        chain_id,
        parent,
        block_hashes,
        header: expected_header,
        slot_keys,
    };
    let (outcome, computed_root) = execute_beside_root(
        &context,
        candidates,
        &withdrawals,
        Mode::Validate,
        !root_from_body,
    );
    // Validation includes every transaction or fails, so the candidates' root is the block's.
    if !root_from_body {
        let Some(root) = computed_root else {
            return Err(BlockError::Execution(
                "the transactions root was not computed".into(),
            ));
        };
        hash_first(&mut header, root)?;
    }
    let header = &header;
    let transactions_root = Some(header.transactions_root);
    let mut outcome = outcome?;
    let new_slot_keys = std::mem::take(&mut outcome.new_slot_keys);
    let executed = seal(context.header, outcome, withdrawals, transactions_root);
    // Whether the block turns out valid or not, the keys are right.
    slot_keys.extend(new_slot_keys);
    let computed = executed.header();
    compare(
        "baseFeePerGas",
        &header.base_fee_per_gas,
        &computed.base_fee_per_gas,
    )?;
    compare(
        "excessBlobGas",
        &header.excess_blob_gas,
        &computed.excess_blob_gas,
    )?;
    compare("gasUsed", &header.gas_used, &computed.gas_used)?;
    compare("stateRoot", &header.state_root, &computed.state_root)?;
    compare(
        "receiptsRoot",
        &header.receipts_root,
        &computed.receipts_root,
    )?;
    compare("logsBloom", &header.logs_bloom, &computed.logs_bloom)?;
    compare(
        "transactionsRoot",
        &header.transactions_root,
        &computed.transactions_root,
    )?;
    compare(
        "withdrawalsRoot",
        &header.withdrawals_root,
        &computed.withdrawals_root,
    )?;
    compare("blockHash", &claimed_hash, &executed.hash)?;
    Ok(executed)
}

fn compare<T: PartialEq + std::fmt::Debug>(
    field: &'static str,
    got: &T,
    expected: &T,
) -> Result<(), BlockError> {
    if got == expected {
        Ok(())
    } else {
        Err(BlockError::Mismatch {
            field,
            got: format!("{got:?}"),
            expected: format!("{expected:?}"),
        })
    }
}

/// Rules on a header that do not need execution.
fn check_header(header: &Header, parent: &ExecutedBlock) -> Result<(), BlockError> {
    let parent_header = parent.header();
    let fail = |msg: String| Err(BlockError::Header(msg));
    if header.number != parent_header.number + 1 {
        return fail(format!(
            "number {} does not follow parent number {}",
            header.number, parent_header.number
        ));
    }
    if header.timestamp <= parent_header.timestamp {
        return fail(format!(
            "timestamp {} is not after parent timestamp {}",
            header.timestamp, parent_header.timestamp
        ));
    }
    if header.gas_limit < MIN_GAS_LIMIT {
        return fail(format!(
            "gas limit {} is below the minimum {MIN_GAS_LIMIT}",
            header.gas_limit
        ));
    }
    if header.gas_used > header.gas_limit {
        return fail(format!(
            "gas used {} exceeds gas limit {}",
            header.gas_used, header.gas_limit
        ));
    }
    if header.extra_data.len() > MAX_EXTRA_DATA {
        return fail(format!(
            "extra data is {} bytes, at most {MAX_EXTRA_DATA} allowed",
            header.extra_data.len()
        ));
    }
    if header.blob_gas_used != Some(0) {
        return fail(format!(
            "blob gas used {:?}: blob transactions are not supported",
            header.blob_gas_used
        ));
    }
    if header.parent_beacon_block_root.is_none() {
        return fail("missing parent beacon block root".to_owned());
    }
    Ok(())
}

/// The EIP-1559 base fee of the child of `parent`.
pub(crate) fn next_base_fee(parent: &Header) -> u64 {
    parent
        .next_block_base_fee(BaseFeeParams::ethereum())
        .unwrap_or(alloy_eips::eip1559::INITIAL_BASE_FEE)
}

/// The EIP-4844 excess blob gas of the child of `parent`.
fn next_excess_blob_gas(parent: &Header) -> u64 {
    parent
        .next_block_excess_blob_gas(BlobParams::cancun())
        .unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Build,
    Validate,
}

/// Turns a header template and an execution outcome into a sealed block.
///
/// The state root (its changed subtries split over two threads) is computed here, beside the
/// transactions root when it is still missing (a build that left transactions out); both are
/// independent, so the result does not depend on the split.
#[tracing::instrument(level = "debug", skip_all)]
fn seal(
    mut header: Header,
    mut outcome: Outcome,
    withdrawals: Vec<Withdrawal>,
    transactions_root: Option<B256>,
) -> ExecutedBlock {
    let Outcome {
        state,
        included_candidates,
        ..
    } = &mut outcome;
    let transactions = &included_candidates.txs;
    let parallel = transactions.len() >= MIN_PARALLEL_ITEMS;
    let (state_root, transactions_root) = match transactions_root {
        Some(root) => (state.state_root(parallel), root),
        None if !parallel => (state.state_root(false), root_of(transactions)),
        None => std::thread::scope(|scope| {
            let state_root = scope.spawn(|| state.state_root(true));
            let transactions_root = root_of(transactions);
            (
                state_root
                    .join()
                    .expect("state root computation does not panic"),
                transactions_root,
            )
        }),
    };
    header.state_root = state_root;
    header.transactions_root = transactions_root;
    header.receipts_root = outcome.receipts_root;
    header.logs_bloom = outcome
        .receipts
        .iter()
        .fold(Bloom::ZERO, |acc, r| acc | *r.logs_bloom());
    header.gas_used = outcome.gas_used;
    header.withdrawals_root = Some(calculate_withdrawals_root(&withdrawals));
    let block = Block {
        header,
        body: BlockBody {
            transactions: outcome.included_candidates.txs,
            ommers: vec![],
            withdrawals: Some(withdrawals.into()),
        },
    };
    let hash = block.header.hash_slow();
    ExecutedBlock {
        block,
        hash,
        senders: outcome.included_candidates.senders,
        receipts: outcome.receipts,
        state: outcome.state,
        block_value: outcome.block_value,
    }
}

/// The transactions root of `transactions`.
pub(crate) fn root_of(transactions: &[TxEnvelope]) -> B256 {
    trie::ordered_root(transactions, |tx, buf| tx.encode_2718(buf))
}

/// The revm transaction environment of a signed transaction.
pub(crate) fn tx_env(tx: &TxEnvelope, sender: Address) -> TxEnv {
    TxEnv {
        tx_type: tx.ty(),
        caller: sender,
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: tx.max_priority_fee_per_gas(),
        blob_hashes: tx
            .blob_versioned_hashes()
            .map(<[B256]>::to_vec)
            .unwrap_or_default(),
        max_fee_per_blob_gas: tx.max_fee_per_blob_gas().unwrap_or(0),
        authorization_list: vec![],
    }
}

/// The revm block environment of a header.
pub(crate) fn block_env(header: &Header) -> BlockEnv {
    BlockEnv {
        number: U256::from(header.number),
        beneficiary: header.beneficiary,
        timestamp: U256::from(header.timestamp),
        gas_limit: header.gas_limit,
        basefee: header.base_fee_per_gas.unwrap_or(0),
        difficulty: U256::ZERO,
        prevrandao: Some(header.mix_hash),
        blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new(
            header.excess_blob_gas.unwrap_or(0),
            BLOB_BASE_FEE_UPDATE_FRACTION_CANCUN,
        )),
        ..BlockEnv::default()
    }
}

/// The revm configuration: Cancun rules for `chain_id`.
pub(crate) fn cfg_env(chain_id: u64) -> CfgEnv {
    let mut cfg = CfgEnv::new_with_spec(SpecId::CANCUN);
    cfg.chain_id = chain_id;
    cfg
}

/// Receipts are handed over in chunks of this many while the block runs.
const RECEIPT_CHUNK: usize = 256;

/// Reads ahead the accounts the block names, runs [`execute`], builds the receipts (with
/// their blooms) and their root, and with `root` the transactions root of all `candidates`,
/// then applies the block's changes to a copy of the parent state.
///
/// From [`MIN_PARALLEL_ITEMS`] candidates on, a second thread shares the work: it reads half
/// of the accounts ahead ([`preload`]), then while the transactions run computes the
/// transactions root (it does not depend on execution) and the receipts, taken in chunks as
/// they come ([`RECEIPT_CHUNK`]), hashing the leaves of their trie as it goes
/// ([`trie::OrderedRoot`]), and last takes its share of the account update
/// ([`WorldState::share_apply`]).
/// The included candidates then move into the outcome.
fn execute_beside_root(
    context: &BlockContext<'_>,
    candidates: Candidates,
    withdrawals: &[Withdrawal],
    mode: Mode,
    root: bool,
) -> (Result<Outcome, BlockError>, Option<B256>) {
    let transactions_root = |candidates: &Candidates| root_of(&candidates.txs);
    let state = &context.parent.state;
    let addresses = named_addresses(&candidates, context.header.beneficiary);
    let (outcome, root) = if candidates.len() < MIN_PARALLEL_ITEMS {
        let parts = vec![preload(state, &addresses, 0, 1)];
        let db = BlockDb::new(state, context.block_hashes, parts, context.slot_keys);
        let mut receipts = Vec::with_capacity(candidates.len());
        let outcome = execute(context, &candidates, db, withdrawals, mode, |chunk| {
            receipts.extend(chunk);
        });
        let outcome = outcome.map(|(mut outcome, db)| {
            outcome.receipts.reserve(receipts.len());
            add_with_blooms(receipts, &mut outcome.receipts);
            outcome.receipts_root = receipts_root(&outcome.receipts);
            outcome.state = state.clone();
            outcome.state.apply(db);
            outcome
        });
        (outcome, root.then(|| transactions_root(&candidates)))
    } else {
        std::thread::scope(|scope| {
            let (part_sender, part) = std::sync::mpsc::sync_channel(1);
            let (sender, chunks) = std::sync::mpsc::channel::<Vec<(TxType, Receipt)>>();
            let (job_sender, job) = std::sync::mpsc::channel::<Arc<SharedApply<'_>>>();
            let (candidates, addresses) = (&candidates, &addresses);
            let side = scope.spawn(move || {
                // The block waits for this part, so it comes first.
                let _ = part_sender.send(preload(state, addresses, 1, 2));
                let root = root.then(|| transactions_root(candidates));
                // Each receipt's leaf is hashed as it comes, for a block that includes every
                // candidate; otherwise the root is computed again at the end.
                let mut receipts = Vec::with_capacity(candidates.len());
                let mut early_root = trie::OrderedRoot::new(candidates.len());
                for chunk in chunks {
                    let start = receipts.len();
                    add_with_blooms(chunk, &mut receipts);
                    for receipt in &receipts[start..] {
                        early_root.push(|buf| receipt.encode_2718(buf));
                    }
                }
                let receipts_root = early_root
                    .finish()
                    .unwrap_or_else(|| receipts_root(&receipts));
                // Then, once the block has run, its part of the account update: this thread
                // is running on the other core already, where a thread spawned for it might
                // wait for the busy one.
                if let Ok(shared) = job.recv() {
                    shared.work();
                }
                (root, receipts, receipts_root)
            });
            let mine = preload(state, addresses, 0, 2);
            // Without the other part the side thread panicked, which `join` passes on.
            let outcome = if let Ok(theirs) = part.recv() {
                let db = BlockDb::new(
                    state,
                    context.block_hashes,
                    vec![mine, theirs],
                    context.slot_keys,
                );
                // The closure owns the sender: dropping it, once the last chunk is sent, ends
                // the side thread's loop.
                execute(context, candidates, db, withdrawals, mode, move |chunk| {
                    // The side thread only stops early by panicking, which `join` passes on.
                    let _ = sender.send(chunk);
                })
            } else {
                Err(BlockError::Execution(
                    "reading accounts ahead failed".into(),
                ))
            };
            // The block's changes, shared out between the side thread and this one.
            let outcome = outcome.map(|(outcome, db)| {
                let (post, shared) = state.share_apply(db);
                let shared = Arc::new(shared);
                // Should the side thread be gone (it panicked, which `join` passes on), this
                // thread does all the work.
                let _ = job_sender.send(Arc::clone(&shared));
                shared.work();
                (outcome, post, shared)
            });
            // Without work to share (the block failed), the side thread stops waiting for it.
            drop(job_sender);
            let (root, receipts, receipts_root) = match side.join() {
                Ok(side) => side,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            let outcome = outcome.map(|(mut outcome, post, shared)| {
                outcome.receipts = receipts;
                outcome.receipts_root = receipts_root;
                outcome.state = Arc::into_inner(shared)
                    .expect("the side thread is done")
                    .finish(post);
                outcome
            });
            (outcome, root)
        })
    };
    let outcome = outcome.map(|mut outcome| {
        let mut candidates = candidates;
        candidates.keep(&outcome.included);
        outcome.included_candidates = candidates;
        outcome
    });
    (outcome, root)
}

/// The accounts the block reads ahead: the candidates' senders and call targets, and the fee
/// recipient.
fn named_addresses(candidates: &Candidates, beneficiary: Address) -> Vec<Address> {
    candidates
        .iter()
        .flat_map(|(tx, sender)| [Some(sender), tx.kind().to().copied()])
        .flatten()
        .chain([beneficiary])
        .collect()
}

/// The EVM of `context`'s block on `db`, after the EIP-4788 system call.
fn block_evm<'a>(context: &BlockContext<'a>, db: BlockDb<'a>) -> Result<BlockEvm<'a>, BlockError> {
    let header = &context.header;
    let state = &context.parent.state;
    let mut evm = Context::mainnet()
        .with_db(db)
        .with_block(block_env(header))
        .with_cfg(cfg_env(context.chain_id))
        .build_mainnet();

    // EIP-4788: store the parent beacon block root, if the contract is deployed.
    let beacon_root = header.parent_beacon_block_root.unwrap_or_default();
    if state
        .account(BEACON_ROOTS_ADDRESS)
        .is_some_and(|a| a.code_hash != alloy_trie::KECCAK_EMPTY)
    {
        let result = evm
            .system_call_with_caller(SYSTEM_ADDRESS, BEACON_ROOTS_ADDRESS, beacon_root.into())
            .map_err(|err| BlockError::Execution(format!("beacon roots system call: {err}")))?;
        if !result.result.is_success() {
            return Err(BlockError::Execution(format!(
                "beacon roots system call failed: {:?}",
                result.result
            )));
        }
        let mut state = result.state;
        state.retain(|address, _| *address == BEACON_ROOTS_ADDRESS);
        evm.commit(state);
    }
    Ok(evm)
}

/// Runs the candidates in order, handing their receipts (without blooms) to `receipts` in
/// chunks (`receipts` is dropped after the last), then credits the withdrawals. The outcome's
/// receipts, receipts root and post-state are left for the caller to fill in: the post-state
/// applies the returned database to a copy of the parent state ([`WorldState::apply`], or
/// [`WorldState::share_apply`] over two threads).
#[tracing::instrument(level = "debug", skip_all)]
fn execute<'a>(
    context: &BlockContext<'a>,
    candidates: &Candidates,
    db: BlockDb<'a>,
    withdrawals: &[Withdrawal],
    mode: Mode,
    mut receipts: impl FnMut(Vec<(TxType, Receipt)>),
) -> Result<(Outcome, BlockDb<'a>), BlockError> {
    let header = &context.header;
    let mut evm = block_evm(context, db)?;
    let base_fee = header.base_fee_per_gas.unwrap_or(0);
    let mut chunk = Vec::with_capacity(RECEIPT_CHUNK.min(candidates.len()));
    let mut outcome = Outcome {
        included: Vec::with_capacity(candidates.len()),
        included_candidates: Candidates::default(),
        receipts: vec![],
        gas_used: 0,
        block_value: U256::ZERO,
        receipts_root: B256::ZERO,
        new_slot_keys: vec![],
        state: WorldState::default(),
        skipped: vec![],
    };
    for (index, (tx, sender)) in candidates.iter().enumerate() {
        let result = match rejection(tx, header.gas_limit - outcome.gas_used) {
            Some(reason) => Err(reason),
            None => match evm.transact_commit(tx_env(tx, sender)) {
                Ok(result) => Ok(result),
                Err(revm::context::result::EVMError::Transaction(err)) => Err(err.to_string()),
                Err(revm::context::result::EVMError::Header(err)) => Err(err.to_string()),
                Err(err) => return Err(BlockError::Execution(err.to_string())),
            },
        };
        let result = match (result, mode) {
            (Ok(result), _) => result,
            (Err(reason), Mode::Build) => {
                outcome.skipped.push(Skipped {
                    hash: *tx.tx_hash(),
                    reason,
                });
                continue;
            }
            (Err(reason), Mode::Validate) => {
                return Err(BlockError::Transaction {
                    index,
                    hash: *tx.tx_hash(),
                    reason,
                });
            }
        };
        let gas_used = result.tx_gas_used();
        outcome.gas_used += gas_used;
        let tip = tx.effective_tip_per_gas(base_fee).unwrap_or(0);
        outcome.block_value += U256::from(tip) * U256::from(gas_used);
        chunk.push((
            tx.tx_type(),
            Receipt {
                status: Eip658Value::Eip658(result.is_success()),
                cumulative_gas_used: outcome.gas_used,
                logs: result.into_logs(),
            },
        ));
        if chunk.len() == RECEIPT_CHUNK {
            receipts(std::mem::replace(
                &mut chunk,
                Vec::with_capacity(RECEIPT_CHUNK),
            ));
        }
        outcome.included.push(index);
    }
    receipts(chunk);
    drop(receipts);

    let mut db = evm.ctx.journaled_state.database;
    outcome.new_slot_keys = db.new_slot_keys();
    apply_withdrawals(&mut db, withdrawals);
    Ok((outcome, db))
}

/// Adds the typed receipts to `out`, each with its bloom.
///
/// A bloom takes in the hash of every log's address and of each of its topics: four hashes
/// for an ERC-20 `Transfer`. All of them are computed in one batch.
fn add_with_blooms(receipts: Vec<(TxType, Receipt)>, out: &mut Vec<ReceiptEnvelope>) {
    let inputs: Vec<&[u8]> = receipts
        .iter()
        .flat_map(|(_, receipt)| &receipt.logs)
        .flat_map(|log| {
            std::iter::once(log.address.as_slice()).chain(log.topics().iter().map(B256::as_slice))
        })
        .collect();
    let mut hashes = tandem_keccak::keccak256_many(&inputs).into_iter();
    out.extend(receipts.into_iter().map(|(ty, receipt)| {
        let mut logs_bloom = Bloom::ZERO;
        for log in &receipt.logs {
            for _ in 0..=log.topics().len() {
                let hash = hashes.next().expect("one hash per address and topic");
                logs_bloom.accrue(BloomInput::Hash(hash));
            }
        }
        ReceiptEnvelope::from_typed(
            ty,
            ReceiptWithBloom {
                receipt,
                logs_bloom,
            },
        )
    }));
}

/// The root of the receipts trie.
fn receipts_root(receipts: &[ReceiptEnvelope]) -> B256 {
    trie::ordered_root(receipts, |receipt, buf| receipt.encode_2718(buf))
}

/// Why `tx` cannot run at all in a block with `gas_left`, before revm sees it.
fn rejection(tx: &TxEnvelope, gas_left: u64) -> Option<String> {
    if tx.is_eip4844() || tx.is_eip7702() {
        Some(format!("transaction type {} is not supported", tx.ty()))
    } else if tx.gas_limit() > gas_left {
        Some(format!(
            "gas limit {} exceeds the {gas_left} gas left in the block",
            tx.gas_limit()
        ))
    } else {
        None
    }
}

/// Credits EIP-4895 withdrawals (amounts in gwei).
fn apply_withdrawals(db: &mut BlockDb<'_>, withdrawals: &[Withdrawal]) {
    for withdrawal in withdrawals {
        db.credit(withdrawal.address, withdrawal.amount_wei());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::{Log, LogData};

    #[test]
    fn batched_blooms_are_alloys() {
        // Receipts with no log, a log without topics, and logs of one to four topics.
        let receipts: Vec<(TxType, Receipt)> = (0..40u8)
            .map(|i| {
                let logs = (0..i % 4)
                    .map(|j| {
                        let topics = (0..(i + j) % 5)
                            .map(|t| B256::repeat_byte(i ^ j ^ t))
                            .collect();
                        Log {
                            address: Address::repeat_byte(i.wrapping_mul(7) ^ j),
                            data: LogData::new_unchecked(topics, Bytes::from(vec![i; 3])),
                        }
                    })
                    .collect();
                let receipt = Receipt {
                    status: Eip658Value::Eip658(i % 3 != 0),
                    cumulative_gas_used: 21_000 * u64::from(i),
                    logs,
                };
                (
                    if i % 2 == 0 {
                        TxType::Eip1559
                    } else {
                        TxType::Legacy
                    },
                    receipt,
                )
            })
            .collect();
        let expected: Vec<ReceiptEnvelope> = receipts
            .iter()
            .cloned()
            .map(|(ty, receipt)| ReceiptEnvelope::from_typed(ty, ReceiptWithBloom::from(receipt)))
            .collect();
        assert!(expected.iter().any(|r| *r.logs_bloom() != Bloom::ZERO));
        let mut built = Vec::new();
        add_with_blooms(receipts, &mut built);
        assert_eq!(built, expected);
        assert_eq!(
            receipts_root(&built),
            alloy_consensus::proofs::calculate_receipt_root(&expected)
        );
    }
}
