//! The mempool's pending state: CheckTx executes every tx it admits against a fork of the last
//! committed state, so the pending sequence of an account advances with each accepted tx (as
//! the Cosmos SDK's check state does) and balances already promised to pending txs cannot be
//! spent twice. After every Commit the fork is rebuilt from the new committed state, and
//! CometBFT's Recheck re-admits the txs still in its mempool, in order.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use cnidarium::{Snapshot, StateDelta};
use tandem_core::{Address, ParsedTx};

use crate::{
    accounts::StateReadExt as _,
    cached::{CachedSnapshot, InterBlockCache},
    error::ExecError,
    exec::{execute_tx, execute_tx_paying, tx_hash, verify, BlockCtx, CachedTx, Fee, SigCache},
    state::StateError,
};

/// Bound on the committed account-number cache.
const MAX_CACHED_NUMBERS: usize = 1_000_000;

/// Pending state over the last committed snapshot.
pub(crate) struct Mempool {
    state: StateDelta<CachedSnapshot>,
    /// The committed snapshot under `state`, memoizing what CheckTx reads from it.
    base: CachedSnapshot,
    ctx: Option<Arc<BlockCtx>>,
    pending: HashSet<[u8; 32]>,
    /// Account numbers read from committed state. An account number never changes once
    /// committed, so entries stay valid across resets (lookups only, never iterated).
    committed_numbers: HashMap<Address, u64>,
}

impl Mempool {
    /// A mempool over `snapshot` with no pending txs.
    pub(crate) async fn new(
        snapshot: Snapshot,
        inter_block: Arc<InterBlockCache>,
    ) -> Result<Self, StateError> {
        let ctx = BlockCtx::load(&snapshot).await?.map(Arc::new);
        let base = CachedSnapshot::new(snapshot, inter_block);
        Ok(Self {
            state: StateDelta::new(base.clone()),
            base,
            ctx,
            pending: HashSet::new(),
            committed_numbers: HashMap::new(),
        })
    }

    /// Drops all pending state and starts over from `snapshot` (after a Commit).
    pub(crate) async fn reset(
        &mut self,
        snapshot: Snapshot,
        inter_block: &Arc<InterBlockCache>,
    ) -> Result<(), StateError> {
        let numbers = std::mem::take(&mut self.committed_numbers);
        *self = Self::new(snapshot, Arc::clone(inter_block)).await?;
        self.committed_numbers = numbers;
        Ok(())
    }

    /// The account number of `address`: from the cache of committed numbers, else committed
    /// state (then cached), else the pending state (an account created by a pending tx,
    /// whose number may still change with block order, so it is not cached).
    async fn account_number(&mut self, address: &Address) -> Result<Option<u64>, StateError> {
        if let Some(number) = self.committed_numbers.get(address) {
            return Ok(Some(*number));
        }
        if let Some(number) = self.base.account_number(address).await? {
            if self.committed_numbers.len() >= MAX_CACHED_NUMBERS {
                self.committed_numbers.clear();
            }
            self.committed_numbers.insert(*address, number);
            return Ok(Some(number));
        }
        self.state.account_number(address).await
    }

    /// Whether a tx with `hash` was admitted since the last Commit.
    pub(crate) fn is_pending(&self, hash: &[u8; 32]) -> bool {
        self.pending.contains(hash)
    }

    /// `(pending sequence, account number)` of `address`.
    pub(crate) async fn pending_sequence(
        &self,
        address: &Address,
    ) -> Result<(u64, Option<u64>), StateError> {
        let sequence = self.state.account_sequence(address).await?;
        let number = self.state.account_number(address).await?;
        Ok((sequence, number))
    }

    /// Executes the unsigned tx `bytes` (see [`ParsedTx::decode_unsigned`]) on a fork of the
    /// pending state that is thrown away, paying exactly the required fee, and returns that
    /// fee and the tx's gas limit. The signature is not checked; every other CheckTx rule is.
    pub(crate) async fn simulate(&mut self, bytes: &[u8]) -> Result<(u128, u64), ExecError> {
        let ctx = self.ctx.clone().ok_or(ExecError::NotInitialized)?;
        let max = usize::try_from(ctx.params.max_tx_bytes).unwrap_or(usize::MAX);
        let parsed = ParsedTx::decode_unsigned(bytes, max)?;
        let signer = parsed.signer();
        if self.account_number(&signer).await?.is_none() {
            return Err(ExecError::UnknownAccount { address: signer });
        }
        let required = ctx.params.required_fee(parsed.rollup_data_bytes());
        let gas_limit = parsed.gas_limit();
        let tx = parsed.into_verified_unchecked();
        // Dropped, never applied: the pending state is untouched.
        let mut fork = StateDelta::new(&mut self.state);
        execute_tx_paying(&mut fork, &tx, &ctx, Fee::Required).await?;
        Ok((required, gas_limit))
    }

    /// Checks `bytes` and, when it would execute, admits it into the pending state.
    pub(crate) async fn check(
        &mut self,
        bytes: &[u8],
        cache: &Arc<SigCache>,
    ) -> Result<[u8; 32], ExecError> {
        let ctx = self.ctx.clone().ok_or(ExecError::NotInitialized)?;
        let max = ctx.params.max_tx_bytes;
        let max_usize = usize::try_from(max).unwrap_or(usize::MAX);
        let hash = tx_hash(bytes);

        let cached = if bytes.len() <= max_usize {
            cache.get(&hash)
        } else {
            None
        };
        let entry = match cached {
            Some(hit)
                if self.account_number(&hit.tx.signer()).await? == Some(hit.account_number) =>
            {
                hit
            }
            _ => {
                let parsed = ParsedTx::decode(bytes, max_usize)?;
                let signer = parsed.signer();
                let number = self
                    .account_number(&signer)
                    .await?
                    .ok_or(ExecError::UnknownAccount { address: signer })?;
                let verified = verify(parsed, &ctx.chain_id, number)?;
                CachedTx {
                    tx: Arc::new(verified),
                    account_number: number,
                }
            }
        };

        let mut fork = StateDelta::new(&mut self.state);
        execute_tx(&mut fork, &entry.tx, &ctx).await?;
        fork.apply();
        cache.insert(hash, entry);
        self.pending.insert(hash);
        Ok(hash)
    }
}
