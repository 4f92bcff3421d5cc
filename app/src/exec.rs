//! Transaction and block execution: pure functions of (state, input) → (state writes, output).
//!
//! A block runs in a cnidarium [`StateDelta`] forked from the last committed snapshot; each tx
//! runs in a nested delta that is applied only when the whole tx succeeds, which is what makes
//! bundles atomic. Txs whose hash is in the [`SigCache`] (admitted by CheckTx for the same
//! account number) skip verification; the rest are decoded and verified in parallel across
//! cores. PrepareProposal and FinalizeBlock execute each tx once its signature is checked;
//! ProcessProposal, which rejects the whole block on any failure, executes them while the
//! checks run ([`SignatureAudit`]).
//!
//! The same [`execute_block`] serves PrepareProposal (drop what fails or does not fit),
//! ProcessProposal (reject on anything wrong) and FinalizeBlock (record a failure code).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use bytes::Bytes;
use cnidarium::{Snapshot, StateDelta, StateRead, StateWrite};
use sha2::{Digest as _, Sha256};
use tandem_core::{
    Address, Message, Params, ParsedTx, PublicKey, RollupData, RollupId, VerifiedTx,
};
use tendermint::abci::Event;

use crate::{
    accounts::{self, StateReadExt as _},
    blocks::{StateReadExt as _, StateWriteExt as _},
    cached::{CachedSnapshot, InterBlockCache},
    error::ExecError,
    fees::{self, StateReadExt as _},
    params::{self, StateReadExt as _},
    rollups,
    state::{get_u64, StateError},
    validators,
};

/// Constants of one block (or of the mempool between two commits). Params changed by a
/// `MsgUpdateParams` take effect from the next block.
#[derive(Clone, Debug)]
pub(crate) struct BlockCtx {
    pub(crate) chain_id: String,
    pub(crate) params: Params,
    pub(crate) authority: Address,
    pub(crate) fee_collector: Address,
}

impl BlockCtx {
    /// Loads the constants from `state`; `None` before InitChain.
    pub(crate) async fn load<S: StateRead>(state: &S) -> Result<Option<Self>, StateError> {
        let Some(chain_id) = state.chain_id().await? else {
            return Ok(None);
        };
        Ok(Some(Self {
            chain_id,
            params: state.params().await?,
            authority: state.authority().await?,
            fee_collector: state.fee_collector().await?,
        }))
    }
}

/// What one successful tx produced. Its events are not built here: they are a function of
/// the tx alone ([`tx_events`]), rendered only for the block that is finalized.
#[derive(Debug, Default)]
pub(crate) struct TxOutcome {
    pub(crate) rollup_items: Vec<(RollupId, Vec<u8>)>,
    pub(crate) validator_updates: Vec<([u8; 32], u64)>,
}

/// Executes one verified tx against `state`. On error the caller must discard `state`'s
/// writes (run it in a nested [`StateDelta`]), unless [`writes_only_after_checks`] holds for
/// the tx: then an error leaves `state` untouched. Keep every check that can fail for such a
/// tx before the first write.
pub(crate) async fn execute_tx<S: StateWrite>(
    state: &mut S,
    tx: &VerifiedTx,
    ctx: &BlockCtx,
) -> Result<TxOutcome, ExecError> {
    execute_tx_paying(state, tx, ctx, Fee::Offered).await
}

/// The fee a tx pays when it executes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fee {
    /// `auth_info.fee`, which must cover the required fee (every real execution).
    Offered,
    /// Exactly the required fee, whatever the tx offers (a simulation, which reports it).
    Required,
}

/// [`execute_tx`] with the fee chosen by `fee`.
pub(crate) async fn execute_tx_paying<S: StateWrite>(
    state: &mut S,
    tx: &VerifiedTx,
    ctx: &BlockCtx,
    fee: Fee,
) -> Result<TxOutcome, ExecError> {
    let signer = tx.signer();
    let sequence_key = accounts::keys::sequence(&signer);
    let expected = get_u64(&*state, &sequence_key).await?.unwrap_or(0);
    let got = tx.sequence();
    if got < expected {
        return Err(ExecError::SequenceTooLow {
            address: signer,
            expected,
            got,
        });
    }
    if got > expected {
        return Err(ExecError::SequenceTooHigh {
            address: signer,
            expected,
            got,
        });
    }
    let rollup_bytes = tx.rollup_data_bytes();
    if rollup_bytes > ctx.params.max_rollup_bytes_per_block {
        return Err(ExecError::RollupDataTooLarge {
            bytes: rollup_bytes,
            max: ctx.params.max_rollup_bytes_per_block,
        });
    }
    let paid = match fee {
        Fee::Offered => {
            fees::check_sufficient(&ctx.params, rollup_bytes, tx.fee())?;
            tx.fee()
        }
        Fee::Required => ctx.params.required_fee(rollup_bytes),
    };

    let mut outcome = TxOutcome::default();
    fees::charge(state, &signer, paid).await?;
    state.put_raw(
        sequence_key,
        expected.saturating_add(1).to_be_bytes().to_vec(),
    );

    for message in tx.messages() {
        match message {
            Message::Send(msg) => accounts::execute_send(state, msg).await?,
            Message::SubmitRollupData(msg) => {
                outcome.rollup_items.push(rollups::execute_submit(msg));
            }
            Message::UpdateParams(msg) => {
                params::execute_update_params(state, &ctx.authority, msg)?;
            }
            Message::UpdateValidator(msg) => {
                let update =
                    validators::execute_update_validator(state, &ctx.authority, msg).await?;
                outcome.validator_updates.push(update);
            }
        }
    }
    Ok(outcome)
}

/// An event whose attributes are all marked for indexing, as the Cosmos SDK marks them by
/// default: `CometBFT`'s tx indexer indexes only marked attributes, so this is what lets
/// `tx_search` find a tx by any of them.
pub(crate) fn indexed_event<K: Into<String>, V: Into<String>>(
    kind: &str,
    attributes: impl IntoIterator<Item = (K, V)>,
) -> Event {
    Event::new(
        kind,
        attributes
            .into_iter()
            .map(|(key, value)| (key, value, true)),
    )
}

/// The events of a tx that executed successfully: its fee, then for each message in order a
/// `message` event and the message's own event.
pub(crate) fn tx_events(tx: &VerifiedTx) -> Vec<Event> {
    let mut events = Vec::with_capacity(2 * tx.messages().len() + 1);
    events.extend(fees::fee_event(&tx.signer(), tx.fee()));
    let sender = tx.signer().to_string();
    for message in tx.messages() {
        // The Cosmos SDK's `message` event, which explorers and cosmjs's `searchTx` query
        // (`message.sender='…'`, `message.action='…'`).
        let module = match message {
            Message::Send(_) => "bank",
            _ => "sequencer",
        };
        events.push(indexed_event(
            "message",
            [
                ("action", message.type_url().to_owned()),
                ("sender", sender.clone()),
                ("module", module.to_owned()),
            ],
        ));
        events.push(match message {
            Message::Send(msg) => accounts::send_event(msg),
            Message::SubmitRollupData(msg) => rollups::submit_event(msg),
            Message::UpdateParams(msg) => params::update_params_event(msg),
            Message::UpdateValidator(msg) => validators::update_validator_event(msg),
        });
    }
    events
}

/// A tx whose signature was verified for `account_number` on this chain.
#[derive(Clone)]
pub(crate) struct CachedTx {
    pub(crate) tx: Arc<VerifiedTx>,
    pub(crate) account_number: u64,
}

/// Verified-signature cache keyed by tx hash (sha256 of the tx bytes). Filled by CheckTx,
/// read by block execution, bounded (oldest entries are evicted first). Only lookups are
/// made, never iteration, so its hash map cannot influence block contents.
pub(crate) struct SigCache {
    capacity: usize,
    inner: Mutex<SigCacheInner>,
}

#[derive(Default)]
struct SigCacheInner {
    map: HashMap<[u8; 32], CachedTx>,
    order: VecDeque<[u8; 32]>,
}

impl SigCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(SigCacheInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SigCacheInner> {
        // A poisoned lock only means another thread panicked mid-insert; the map is still a
        // valid cache (at worst missing an entry), so keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn get(&self, hash: &[u8; 32]) -> Option<CachedTx> {
        self.lock().map.get(hash).cloned()
    }

    pub(crate) fn insert(&self, hash: [u8; 32], entry: CachedTx) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        if inner.map.insert(hash, entry).is_none() {
            inner.order.push_back(hash);
        }
        while inner.map.len() > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            inner.map.remove(&oldest);
        }
    }

    pub(crate) fn remove_all<'a>(&self, hashes: impl IntoIterator<Item = &'a [u8; 32]>) {
        let mut inner = self.lock();
        for hash in hashes {
            inner.map.remove(hash);
        }
        if inner.order.len() > inner.map.len().saturating_mul(2).max(1024) {
            let SigCacheInner { map, order } = &mut *inner;
            order.retain(|h| map.contains_key(h));
        }
    }
}

/// sha256 of the tx bytes: CometBFT's tx hash.
pub(crate) fn tx_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Maps `f` over `items` on all cores, keeping the input order in the output. The items are
/// split into one contiguous chunk per core; the calling thread maps the last one, so only the
/// others wait for a thread to start.
pub(crate) fn par_map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if workers <= 1 || items.len() < 32 {
        return items.into_iter().map(f).collect();
    }
    let chunk = items.len().div_ceil(workers);
    let total = items.len();
    let mut chunks: Vec<Vec<T>> = Vec::with_capacity(workers);
    let mut items = items.into_iter();
    loop {
        let part: Vec<T> = items.by_ref().take(chunk).collect();
        if part.is_empty() {
            break;
        }
        chunks.push(part);
    }
    let mine = chunks.pop().expect("at least 32 items make a chunk");
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mine: Vec<R> = mine.into_iter().map(f).collect();
        let mut out = Vec::with_capacity(total);
        for handle in handles {
            match handle.join() {
                Ok(part) => out.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        out.extend(mine);
        out
    })
}

/// A block tx after signature checking.
pub(crate) enum Checked {
    /// Verified (or found in the cache for the right account number).
    Ready(Arc<VerifiedTx>),
    /// Decoded, but its signer has no account in the block's base state: it can only be
    /// verified once earlier txs of the block have run.
    Deferred(ParsedTx),
    /// Refused before execution.
    Failed(ExecError),
}

enum Stage1 {
    Cached(CachedTx),
    Parsed(ParsedTx),
    Failed(ExecError),
}

/// Decodes `txs` and starts verifying them against the account numbers of `state` on all
/// cores; the results come in block order from the returned [`CheckedStream`]. Before the
/// account numbers are read, every account key the txs' signers will touch is prefetched
/// into `base` in one concurrent batch.
///
/// With `ahead`, nothing waits for verification: every tx comes out of the stream at once,
/// those still to verify as if verified, and the returned [`SignatureAudit`] verifies them
/// meanwhile (for [`Mode::Process`], see [`execute_block`]). Without it the audit is empty.
pub(crate) async fn check_signatures<S: StateRead>(
    state: &S,
    base: &CachedSnapshot,
    txs: &[Bytes],
    ctx: &BlockCtx,
    cache: &Arc<SigCache>,
    ahead: bool,
) -> Result<(Vec<[u8; 32]>, CheckedStream, SignatureAudit), ExecError> {
    let max = usize::try_from(ctx.params.max_tx_bytes).unwrap_or(usize::MAX);
    let owned: Vec<Bytes> = txs.to_vec();
    let stage1_cache = Arc::clone(cache);
    let stage1: Vec<([u8; 32], Stage1)> = run_blocking(move || {
        par_map(owned, |bytes| {
            let hash = tx_hash(&bytes);
            if bytes.len() <= max {
                if let Some(hit) = stage1_cache.get(&hash) {
                    return (hash, Stage1::Cached(hit));
                }
            }
            match ParsedTx::decode(&bytes, max) {
                Ok(parsed) => (hash, Stage1::Parsed(parsed)),
                Err(e) => (hash, Stage1::Failed(e.into())),
            }
        })
    })
    .await?;

    let mut numbers: BTreeMap<Address, Option<u64>> = BTreeMap::new();
    for (_, item) in &stage1 {
        let signer = match item {
            Stage1::Cached(c) => c.tx.signer(),
            Stage1::Parsed(p) => p.signer(),
            Stage1::Failed(_) => continue,
        };
        numbers.insert(signer, None);
    }
    let mut keys = Vec::with_capacity(numbers.len() * 3);
    for signer in numbers.keys() {
        keys.extend(accounts::keys::touched_by_signer(signer));
    }
    base.prefetch(keys).await.map_err(|e| StateError::Storage {
        key: "(block account prefetch)".to_string(),
        message: format!("{e:#}"),
    })?;
    for (signer, number) in &mut numbers {
        *number = state.account_number(signer).await?;
    }

    let chain_id = ctx.chain_id.clone();
    let mut hashes = Vec::with_capacity(stage1.len());
    let mut jobs: Vec<Job> = Vec::with_capacity(stage1.len());
    for (i, (hash, stage)) in stage1.into_iter().enumerate() {
        let signer = match &stage {
            Stage1::Cached(c) => Some(c.tx.signer()),
            Stage1::Parsed(p) => Some(p.signer()),
            Stage1::Failed(_) => None,
        };
        let number = signer.and_then(|a| numbers.get(&a).copied().flatten());
        hashes.push(hash);
        jobs.push((i, stage, number));
    }
    if ahead {
        let mut audit = Vec::new();
        let mut ahead_of_check = |i: usize, parsed: ParsedTx, number: Option<u64>| match number {
            Some(n) => {
                let tx = Arc::new(parsed.into_verified_unchecked());
                audit.push((i, hashes[i], Arc::clone(&tx), n));
                Checked::Ready(tx)
            }
            None => Checked::Deferred(parsed),
        };
        let checked = jobs
            .into_iter()
            .map(|job| match settle(job, txs, max) {
                Settled::Done(checked) => checked,
                Settled::ToCheck(i, parsed, number) => ahead_of_check(i, parsed, number),
            })
            .collect();
        let audit = SignatureAudit::start(audit, chain_id);
        return Ok((hashes, CheckedStream::ready(checked), audit));
    }
    let txs_for_reverify: Vec<Bytes> = txs.to_vec();
    let verifier = Arc::new(move |job: Job| match settle(job, &txs_for_reverify, max) {
        Settled::Done(checked) => checked,
        Settled::ToCheck(_, parsed, number) => verify_with(parsed, &chain_id, number),
    });
    let verifier: Arc<dyn Fn(Job) -> Checked + Send + Sync> = verifier;
    Ok((
        hashes,
        CheckedStream::start(jobs, &verifier),
        SignatureAudit::none(),
    ))
}

/// One tx to verify: its index in the block, what stage 1 made of it, its signer's number.
type Job = (usize, Stage1, Option<u64>);

/// What a [`Job`] still needs.
enum Settled {
    /// Nothing: it failed already, or CheckTx verified it for its signer's account number.
    Done(Checked),
    /// Its signature checked: index in the block, the decoded tx, its signer's number.
    ToCheck(usize, ParsedTx, Option<u64>),
}

/// Settles `job` without checking a signature; a cache hit for another account number is
/// decoded again from `txs` (the block's user txs) to be checked.
fn settle(job: Job, txs: &[Bytes], max: usize) -> Settled {
    match job {
        (_, Stage1::Failed(e), _) => Settled::Done(Checked::Failed(e)),
        (_, Stage1::Cached(c), Some(n)) if c.account_number == n => {
            Settled::Done(Checked::Ready(c.tx))
        }
        (i, Stage1::Cached(_), number) => match ParsedTx::decode(&txs[i], max) {
            Ok(parsed) => Settled::ToCheck(i, parsed, number),
            Err(e) => Settled::Done(Checked::Failed(e.into())),
        },
        (i, Stage1::Parsed(parsed), number) => Settled::ToCheck(i, parsed, number),
    }
}

/// Txs per unit of verification work handed to a worker.
const VERIFY_CHUNK: usize = 64;

/// A block's checked txs, in block order, as the verification workers (one per core) finish
/// them: execution starts on the first chunk while the others are still being verified, so
/// a block of unseen txs costs little more than verifying its signatures. Dropping the stream
/// stops the workers (e.g. when ProcessProposal rejects at the first failing tx).
pub(crate) struct CheckedStream {
    /// `None` once nothing more can come (or nothing was ever to come).
    results: Option<Chunks<Checked>>,
    /// Chunks that arrived ahead of their turn, by chunk index.
    early: BTreeMap<usize, Vec<Checked>>,
    current: std::vec::IntoIter<Checked>,
    next_chunk: usize,
    cancel: Arc<AtomicBool>,
}

/// Results of [`spawn_chunk_workers`]: each chunk's, with its index, as workers finish them.
type Chunks<R> = tokio::sync::mpsc::UnboundedReceiver<(usize, Vec<R>)>;

/// Splits `jobs` into chunks of [`VERIFY_CHUNK`] and maps them with `work` on one blocking
/// worker per core; returns the number of chunks and the channel their results come on. A
/// worker stops taking chunks once `cancel` is set, and the channel closes when the last
/// worker ends.
fn spawn_chunk_workers<J: Send + 'static, R: Send + 'static>(
    jobs: Vec<J>,
    work: &Arc<dyn Fn(J) -> R + Send + Sync>,
    cancel: &Arc<AtomicBool>,
) -> (usize, Chunks<R>) {
    let mut chunks = VecDeque::new();
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        let chunk: Vec<J> = jobs.by_ref().take(VERIFY_CHUNK).collect();
        chunks.push_back((chunks.len(), chunk));
    }
    let count = chunks.len();
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(count);
    let queue = Arc::new(Mutex::new(chunks));
    let (sender, results) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..workers {
        let (queue, cancel, sender, work) = (
            Arc::clone(&queue),
            Arc::clone(cancel),
            sender.clone(),
            Arc::clone(work),
        );
        tokio::task::spawn_blocking(move || loop {
            if cancel.load(Ordering::Relaxed) {
                break;
            }
            let next = queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop_front();
            let Some((index, chunk)) = next else { break };
            let done: Vec<R> = chunk.into_iter().map(|job| work(job)).collect();
            if sender.send((index, done)).is_err() {
                break;
            }
        });
    }
    (count, results)
}

impl CheckedStream {
    fn start(jobs: Vec<Job>, verify: &Arc<dyn Fn(Job) -> Checked + Send + Sync>) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        let (_, results) = spawn_chunk_workers(jobs, verify, &cancel);
        Self {
            results: Some(results),
            early: BTreeMap::new(),
            current: Vec::new().into_iter(),
            next_chunk: 0,
            cancel,
        }
    }

    /// A stream of txs that are all there already.
    fn ready(checked: Vec<Checked>) -> Self {
        Self {
            results: None,
            early: BTreeMap::new(),
            current: checked.into_iter(),
            next_chunk: 0,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The next tx in block order. An error only when a worker died before finishing its
    /// chunk (a bug): the block cannot be judged then.
    pub(crate) async fn next(&mut self) -> Result<Checked, StateError> {
        loop {
            if let Some(checked) = self.current.next() {
                return Ok(checked);
            }
            if let Some(chunk) = self.early.remove(&self.next_chunk) {
                self.current = chunk.into_iter();
                self.next_chunk += 1;
                continue;
            }
            let next = match self.results.as_mut() {
                Some(results) => results.recv().await,
                None => None,
            };
            match next {
                Some((index, chunk)) => {
                    self.early.insert(index, chunk);
                }
                None => {
                    return Err(StateError::Storage {
                        key: String::new(),
                        message: "signature verification ended before the block's last tx"
                            .to_string(),
                    })
                }
            }
        }
    }
}

impl Drop for CheckedStream {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// A tx a proposal executed before its signature was checked: index in the block's user txs,
/// hash, the tx, its signer's account number.
type AuditJob = (usize, [u8; 32], Arc<VerifiedTx>, u64);

/// Where an audited tx failed: index, hash and why (boxed: failures are rare, and each
/// checked tx returns one of these or nothing).
type AuditFailure = Box<(usize, [u8; 32], ExecError)>;

/// The signature checks of the txs a proposal executes ahead of them ([`Mode::Process`]), run
/// on one worker per core while the block executes. The proposal stands only if
/// [`SignatureAudit::finish`] passes. The first failure stops the workers, and so does
/// dropping the audit.
pub(crate) struct SignatureAudit {
    chunks: usize,
    results: Option<Chunks<Result<(), AuditFailure>>>,
    cancel: Arc<AtomicBool>,
}

impl SignatureAudit {
    /// An audit with nothing to check: every tx was verified before it ran.
    pub(crate) fn none() -> Self {
        Self {
            chunks: 0,
            results: None,
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    fn start(jobs: Vec<AuditJob>, chain_id: String) -> Self {
        if jobs.is_empty() {
            return Self::none();
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&cancel);
        let check: Arc<dyn Fn(AuditJob) -> Result<(), AuditFailure> + Send + Sync> =
            Arc::new(move |(index, hash, tx, number): AuditJob| {
                check_signature(tx.parsed(), &chain_id, number).map_err(|e| {
                    stop.store(true, Ordering::Relaxed);
                    Box::new((index, hash, e))
                })
            });
        let (chunks, results) = spawn_chunk_workers(jobs, &check, &cancel);
        Self {
            chunks,
            results: Some(results),
            cancel,
        }
    }

    /// Whether a check has failed already (the block is invalid, whatever else it holds).
    pub(crate) fn failed(&self) -> bool {
        self.results.is_some() && self.cancel.load(Ordering::Relaxed)
    }

    /// Waits for every check. A failed signature makes the block invalid (the first such tx
    /// is named); a worker that ended early without one is a bug, and the block cannot be
    /// judged.
    pub(crate) async fn finish(mut self) -> Result<(), BlockError> {
        let Some(mut results) = self.results.take() else {
            return Ok(());
        };
        let mut received = 0;
        let mut failure: Option<AuditFailure> = None;
        while let Some((_, chunk)) = results.recv().await {
            received += 1;
            for failed in chunk.into_iter().filter_map(Result::err) {
                if failure.as_ref().is_none_or(|first| failed.0 < first.0) {
                    failure = Some(failed);
                }
            }
        }
        match failure.map(|failed| *failed) {
            Some((index, hash, e)) => Err(BlockError::Invalid(format!(
                "tx {} at index {} fails: {e}",
                hex::encode_upper(hash),
                index + 1
            ))),
            None if received < self.chunks => Err(BlockError::State(StateError::Storage {
                key: String::new(),
                message: "signature verification ended before the block's last tx".to_string(),
            })),
            None => Ok(()),
        }
    }
}

impl Drop for SignatureAudit {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

fn verify_with(parsed: ParsedTx, chain_id: &str, number: Option<u64>) -> Checked {
    match number {
        Some(n) => match verify(parsed, chain_id, n) {
            Ok(v) => Checked::Ready(Arc::new(v)),
            Err(e) => Checked::Failed(e),
        },
        None => Checked::Deferred(parsed),
    }
}

/// Verifies `parsed` for `chain_id` and `account_number`, telling a signature that is not
/// even a valid encoding apart from one that does not verify.
pub(crate) fn verify(
    parsed: ParsedTx,
    chain_id: &str,
    account_number: u64,
) -> Result<VerifiedTx, ExecError> {
    malformed_signature(&parsed)?;
    Ok(parsed.verify(chain_id, account_number)?)
}

/// [`verify`] without taking the tx.
fn check_signature(
    parsed: &ParsedTx,
    chain_id: &str,
    account_number: u64,
) -> Result<(), ExecError> {
    malformed_signature(parsed)?;
    Ok(parsed.check_signature(chain_id, account_number)?)
}

/// A secp256k1 signature that is not even a valid encoding is told apart from one that does
/// not verify.
fn malformed_signature(parsed: &ParsedTx) -> Result<(), ExecError> {
    if let PublicKey::Secp256k1(_) = parsed.public_key() {
        if k256::ecdsa::Signature::from_slice(parsed.signature()).is_err() {
            return Err(ExecError::MalformedSignature);
        }
    }
    Ok(())
}

async fn run_blocking<R: Send + 'static>(
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, ExecError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ExecError::State(StateError::Storage {
            key: String::new(),
            message: format!("signature verification task failed: {e}"),
        })
    })
}

/// Resolves a [`Checked`] tx into a verified one, verifying a deferred tx against the current
/// (mid-block) account number.
pub(crate) async fn resolve<S: StateRead>(
    state: &S,
    checked: Checked,
    ctx: &BlockCtx,
) -> Result<Arc<VerifiedTx>, ExecError> {
    match checked {
        Checked::Ready(tx) => Ok(tx),
        Checked::Failed(e) => Err(e),
        Checked::Deferred(parsed) => {
            let signer = parsed.signer();
            let number = state
                .account_number(&signer)
                .await?
                .ok_or(ExecError::UnknownAccount { address: signer })?;
            Ok(Arc::new(verify(parsed, &ctx.chain_id, number)?))
        }
    }
}

/// How [`execute_block`] treats a tx that fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// PrepareProposal: drop failing txs and whatever exceeds the budgets.
    Prepare {
        /// CometBFT's byte budget for all txs, including the commitment item.
        max_tx_bytes: u64,
    },
    /// ProcessProposal: any failure rejects the whole proposal.
    Process,
    /// FinalizeBlock: a failure is recorded as the tx's result code.
    Finalize,
}

/// The result of one user tx of a block.
#[derive(Clone)]
pub(crate) struct TxResult {
    pub(crate) hash: [u8; 32],
    pub(crate) code: u32,
    pub(crate) log: String,
    /// The tx, when it executed successfully (its events are rendered from it).
    pub(crate) executed: Option<Arc<VerifiedTx>>,
}

/// A block executed against a fork of committed state, not yet persisted.
pub(crate) struct ExecutedBlock {
    pub(crate) height: u64,
    pub(crate) state: StateDelta<Snapshot>,
    /// User txs of the block (excluding the commitment item), in order.
    pub(crate) txs: Vec<Bytes>,
    /// One result per entry of `txs`.
    pub(crate) results: Vec<TxResult>,
    /// The data of every successful `MsgSubmitRollupData`, grouped by rollup in block order.
    pub(crate) rollup_data: RollupData,
    /// The last update of each validator key in the block.
    pub(crate) validator_updates: BTreeMap<[u8; 32], u64>,
    /// The commitment item computed from the executed block.
    pub(crate) commitment_item: Vec<u8>,
    /// The block's verifiable writes (`None` deletes): all of them, since what FinalizeBlock
    /// adds (the sequencer block, tx results) is non-verifiable. They move the inter-block
    /// cache to the new version at Commit.
    pub(crate) writes: BTreeMap<String, Option<Vec<u8>>>,
}

/// Why a block could not be executed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BlockError {
    /// The proposal is invalid (ProcessProposal rejects it).
    #[error("{0}")]
    Invalid(String),
    /// Reading state failed; the node cannot go on.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Protobuf overhead CometBFT counts per tx in a block's `Data` (tag + length varint).
fn proto_tx_size(len: usize) -> u64 {
    let mut varint = 1u64;
    let mut v = len >> 7;
    while v > 0 {
        varint += 1;
        v >>= 7;
    }
    1 + varint + u64::try_from(len).unwrap_or(u64::MAX)
}

/// Executes the user txs of a block at `height` over `snapshot`. The block is valid only once
/// the returned [`SignatureAudit`] finishes without error (it has work only in
/// [`Mode::Process`]).
pub(crate) async fn execute_block(
    snapshot: Snapshot,
    height: u64,
    user_txs: &[Bytes],
    mode: Mode,
    ctx: &BlockCtx,
    cache: &Arc<SigCache>,
    inter_block: &Arc<InterBlockCache>,
) -> Result<(ExecutedBlock, SignatureAudit), BlockError> {
    let base = CachedSnapshot::new(snapshot, Arc::clone(inter_block));
    let mut state = StateDelta::new(base.clone());
    state.put_block_height(height);

    // A proposal is rejected whole if any tx fails, so its txs may run before their
    // signatures are checked: the checks go on beside execution, and the caller waits for
    // them only after the block is executed and staged.
    let ahead = mode == Mode::Process;
    let checked = check_signatures(&state, &base, user_txs, ctx, cache, ahead).await;
    let (hashes, mut checked, audit) = match checked {
        Ok(v) => v,
        Err(ExecError::State(e)) => return Err(BlockError::State(e)),
        Err(e) => return Err(BlockError::Invalid(e.to_string())),
    };

    let item_len = tandem_core::commitment_item_bytes(&tandem_core::BlockCommitments {
        rollup_transactions_root: [0; 32],
        rollup_ids_root: [0; 32],
    })
    .len();
    let mut bytes_left = match mode {
        Mode::Prepare { max_tx_bytes } => max_tx_bytes.saturating_sub(proto_tx_size(item_len)),
        Mode::Process | Mode::Finalize => u64::MAX,
    };
    let mut rollup_bytes_left = ctx.params.max_rollup_bytes_per_block;

    let mut out = Executing {
        fees: 0,
        txs: Vec::with_capacity(user_txs.len()),
        results: Vec::with_capacity(user_txs.len()),
        rollup_items: Vec::new(),
        validator_updates: BTreeMap::new(),
    };

    for (bytes, hash) in user_txs.iter().zip(hashes) {
        let checked = checked.next().await?;
        let size = proto_tx_size(bytes.len());
        if let Mode::Prepare { .. } = mode {
            if size > bytes_left {
                continue;
            }
        }
        let result = run_one(&mut state, checked, ctx, &mut rollup_bytes_left).await;
        match result {
            Ok((tx, outcome)) => {
                bytes_left = bytes_left.saturating_sub(size);
                out.fees = out.fees.saturating_add(tx.fee());
                out.rollup_items.extend(outcome.rollup_items);
                for (key, power) in outcome.validator_updates {
                    out.validator_updates.insert(key, power);
                }
                out.txs.push(bytes.clone());
                out.results.push(TxResult {
                    hash,
                    code: 0,
                    log: String::new(),
                    executed: Some(tx),
                });
            }
            Err(ExecError::State(e)) => return Err(BlockError::State(e)),
            Err(e) => match mode {
                Mode::Prepare { .. } => {
                    tracing::debug!(tx = %hex::encode(hash), reason = %e, "dropping tx from proposal");
                }
                Mode::Process => {
                    return Err(BlockError::Invalid(format!(
                        "tx {} at index {} fails: {e}",
                        hex::encode_upper(hash),
                        out.txs.len() + 1
                    )));
                }
                Mode::Finalize => {
                    out.txs.push(bytes.clone());
                    out.results.push(TxResult {
                        hash,
                        code: e.code(),
                        log: e.to_string(),
                        executed: None,
                    });
                }
            },
        }
    }

    Ok((out.finish(height, state, &base, ctx).await?, audit))
}

impl Executing {
    /// The block-level writes after the last tx (rollup totals, the block's fees), then the
    /// commitment item; moves the block's writes off the memoizing snapshot onto the plain
    /// one that storage commits against.
    async fn finish(
        self,
        height: u64,
        mut state: StateDelta<CachedSnapshot>,
        base: &CachedSnapshot,
        ctx: &BlockCtx,
    ) -> Result<ExecutedBlock, BlockError> {
        rollups::add_totals(&mut state, &self.rollup_items).await?;
        match fees::collect(&mut state, &ctx.fee_collector, self.fees).await {
            Ok(()) => {}
            Err(ExecError::State(e)) => return Err(BlockError::State(e)),
            Err(e) => {
                return Err(BlockError::Invalid(format!(
                    "collecting the block's fees: {e}"
                )))
            }
        }
        let rollup_data = RollupData::from_items(self.rollup_items);
        let commitment_item = tandem_core::commitment_item_bytes(&rollup_data.commitments());

        let (_, changes) = state.flatten();
        let writes = changes.unwritten_changes().clone();
        let mut state = StateDelta::new(base.snapshot().clone());
        changes.apply_to(&mut state);
        Ok(ExecutedBlock {
            height,
            state,
            txs: self.txs,
            results: self.results,
            rollup_data,
            validator_updates: self.validator_updates,
            commitment_item,
            writes,
        })
    }
}

/// What [`execute_block`] has gathered so far.
struct Executing {
    /// Fees paid by the txs executed so far, credited to the collector at the end.
    fees: u128,
    txs: Vec<Bytes>,
    results: Vec<TxResult>,
    rollup_items: Vec<(RollupId, Vec<u8>)>,
    validator_updates: BTreeMap<[u8; 32], u64>,
}

/// Checks the block rollup budget, then executes one tx in a nested fork that is applied
/// only on success.
async fn run_one(
    state: &mut StateDelta<CachedSnapshot>,
    checked: Checked,
    ctx: &BlockCtx,
    rollup_bytes_left: &mut u64,
) -> Result<(Arc<VerifiedTx>, TxOutcome), ExecError> {
    let tx = resolve(&*state, checked, ctx).await?;
    let rollup_bytes = tx.rollup_data_bytes();
    if rollup_bytes > *rollup_bytes_left {
        return Err(ExecError::RollupDataTooLarge {
            bytes: rollup_bytes,
            max: ctx.params.max_rollup_bytes_per_block,
        });
    }
    let outcome = if writes_only_after_checks(&tx) {
        execute_tx(&mut *state, &tx, ctx).await?
    } else {
        let mut fork = StateDelta::new(&mut *state);
        let outcome = execute_tx(&mut fork, &tx, ctx).await?;
        fork.apply();
        outcome
    };
    *rollup_bytes_left -= rollup_bytes;
    Ok((tx, outcome))
}

/// Whether [`execute_tx`] can only fail before its first write for `tx`, so it may run on
/// the block state directly instead of in a nested fork. True when every message is
/// `MsgSubmitRollupData`: the sequence and fee checks and the fee debit (which checks the
/// balance before it writes) come first, then the sequence write, and the messages
/// themselves touch no state and cannot fail.
fn writes_only_after_checks(tx: &VerifiedTx) -> bool {
    tx.messages()
        .iter()
        .all(|m| matches!(m, Message::SubmitRollupData(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn par_map_keeps_order() {
        // Below, at and above the threshold, and an uneven last chunk.
        for len in [0u32, 31, 32, 33, 1000, 1001] {
            let input: Vec<u32> = (0..len).collect();
            let out = par_map(input.clone(), |x| x * 2);
            assert_eq!(out, input.iter().map(|x| x * 2).collect::<Vec<_>>());
        }
    }

    /// `count` txs of one signer (account number 3), those at `forged` signed for account
    /// number 4, as audit jobs.
    fn audit_jobs(count: usize, forged: &[usize]) -> Vec<AuditJob> {
        let key = tandem_core::SigningKey::secp256k1_from_seed(b"audit");
        (0..count)
            .map(|i| {
                let number = if forged.contains(&i) { 4 } else { 3 };
                let message = Message::SubmitRollupData(tandem_core::SubmitRollupData {
                    signer: key.address(),
                    rollup_id: RollupId::from_name("r"),
                    data: vec![1],
                });
                let bytes = tandem_core::TxBuilder::new("audit-chain", number, i as u64)
                    .message(message)
                    .fee(1)
                    .sign(&key)
                    .unwrap();
                let parsed = ParsedTx::decode(&bytes, 1 << 20).unwrap();
                (
                    i,
                    tx_hash(&bytes),
                    Arc::new(parsed.into_verified_unchecked()),
                    3,
                )
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signature_audit_names_the_first_failure_across_chunks() {
        // 200 txs: four chunks of 64, the last one short.
        let cases: [&[usize]; 8] = [
            &[],
            &[0],
            &[63],
            &[64],
            &[199],
            &[130, 5],
            &[150, 70, 190],
            &[1, 2, 3, 100, 199],
        ];
        for forged in cases {
            let jobs = audit_jobs(200, forged);
            let first = forged
                .iter()
                .min()
                .map(|i| (i + 1, hex::encode_upper(jobs[*i].1)));
            let outcome = SignatureAudit::start(jobs, "audit-chain".to_string())
                .finish()
                .await;
            match (first, outcome) {
                (None, Ok(())) => {}
                (Some((index, hash)), Err(BlockError::Invalid(reason))) => {
                    assert_eq!(
                        reason,
                        format!(
                            "tx {hash} at index {index} fails: {}",
                            ExecError::from(tandem_core::TxError::InvalidSignature)
                        ),
                        "forged at {forged:?}"
                    );
                }
                (first, outcome) => panic!(
                    "forged at {forged:?}: expected a failure at {first:?}, got {:?}",
                    outcome.err()
                ),
            }
        }
        assert!(SignatureAudit::none().finish().await.is_ok());
        assert!(!SignatureAudit::none().failed());
    }

    #[test]
    fn proto_tx_size_counts_tag_and_varint() {
        assert_eq!(proto_tx_size(0), 2);
        assert_eq!(proto_tx_size(127), 129);
        assert_eq!(proto_tx_size(128), 131);
        assert_eq!(proto_tx_size(16_384), 16_388);
    }
}
