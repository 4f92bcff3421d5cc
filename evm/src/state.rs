//! World state: accounts, storage and code, shared between blocks.
//!
//! Every block keeps its own post-state. Cloning a [`WorldState`] is O(1): the accounts and
//! every account's storage are [`HashedTrie`]s, persistent Merkle-Patricia tries whose nodes
//! are shared between versions, and the code is an `imbl` map. A block built on any known
//! parent starts from that parent's state and shares all untouched data with it.
//!
//! Accounts are keyed by `keccak256(address)` and storage slots by `keccak256(slot)`, the keys
//! of the Merkle-Patricia trie. The tries keep the hash of every node, so a state root (and
//! each account's storage root) hashes only the nodes on the paths to what changed.

use std::{cell::RefCell, sync::Arc};

use alloy_primitives::{
    keccak256,
    map::{AddressMap, U256Map},
    Address, Bytes, B256, U256,
};
use alloy_rlp::Encodable as _;
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY};
use imbl::OrdMap;
use revm::{
    bytecode::Bytecode,
    database::{AccountState as CacheAccountState, CacheDB},
    database_interface::DBErrorMarker,
    state::AccountInfo,
    DatabaseRef,
};

use crate::{hashed_trie::HashedTrie, parallel::MIN_PARALLEL_ITEMS};

/// One account of the world state.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    /// The preimage of the account's trie key, for tests that hash it independently.
    #[cfg_attr(not(test), expect(dead_code, reason = "read by tests"))]
    pub(crate) address: Address,
    pub(crate) nonce: u64,
    pub(crate) balance: U256,
    pub(crate) code_hash: B256,
    /// Storage keyed by `keccak256(slot)`, holding `(slot, value)`; zero values are never stored.
    pub(crate) storage: HashedTrie<(U256, U256)>,
    /// The root of `storage`, as of the last [`Account::recompute_storage_root`].
    pub(crate) storage_root: B256,
}

impl Account {
    fn empty(address: Address) -> Self {
        Self {
            address,
            nonce: 0,
            balance: U256::ZERO,
            code_hash: KECCAK_EMPTY,
            storage: HashedTrie::default(),
            storage_root: EMPTY_ROOT_HASH,
        }
    }

    /// EIP-161 emptiness: such an account does not exist in the trie.
    fn is_empty(&self) -> bool {
        self.nonce == 0 && self.balance.is_zero() && self.code_hash == KECCAK_EMPTY
    }

    pub(crate) fn trie_account(&self) -> TrieAccount {
        TrieAccount::new(self.nonce, self.balance, self.storage_root, self.code_hash)
    }

    /// The value of the storage slot whose trie key is `key` (zero when unset).
    fn value_at(&self, key: &B256) -> U256 {
        self.storage
            .get(key)
            .map_or(U256::ZERO, |(_, value)| *value)
    }

    /// Recomputes the storage root, rehashing only the nodes whose slots changed; with
    /// `parallel`, over two threads.
    fn recompute_storage_root(&mut self, parallel: bool) {
        self.storage_root = self
            .storage
            .root(parallel, &|(_, value): &(U256, U256), buf| {
                value.encode(buf)
            });
    }
}

/// The trie key of a storage slot.
fn slot_key(slot: U256) -> B256 {
    keccak256(slot.to_be_bytes::<32>())
}

/// The full world state after some block.
#[derive(Clone, Debug, Default)]
pub(crate) struct WorldState {
    /// Behind an `Arc`, so that the preloaded accounts of a block ([`Preloaded`]) share them.
    accounts: HashedTrie<Arc<Account>>,
    codes: OrdMap<B256, Bytes>,
}

impl WorldState {
    /// Builds a state from plain accounts (genesis allocation).
    ///
    /// As in geth, every listed account is part of the genesis trie, even an empty one.
    pub(crate) fn from_accounts(
        accounts: impl IntoIterator<Item = GenesisEntry>,
    ) -> Result<Self, StateError> {
        let mut state = Self::default();
        for entry in accounts {
            let mut account = Account::empty(entry.address);
            account.nonce = entry.nonce;
            account.balance = entry.balance;
            if !entry.code.is_empty() {
                account.code_hash = keccak256(&entry.code);
                state.codes.insert(account.code_hash, entry.code);
            }
            for (slot, value) in entry.storage {
                if !value.is_zero() {
                    account.storage.insert(slot_key(slot), (slot, value));
                }
            }
            account.recompute_storage_root(account.storage.len() >= MIN_PARALLEL_ITEMS);
            let key = keccak256(entry.address);
            if state.accounts.insert(key, Arc::new(account)).is_some() {
                return Err(StateError::DuplicateAccount(entry.address));
            }
        }
        Ok(state)
    }

    /// Returns the account at `address`, if it exists.
    pub(crate) fn account(&self, address: Address) -> Option<&Account> {
        self.accounts.get(&keccak256(address)).map(Arc::as_ref)
    }

    /// Returns the value of a storage slot (zero when unset).
    pub(crate) fn storage(&self, address: Address, slot: U256) -> U256 {
        self.account(address)
            .map_or(U256::ZERO, |account| account.value_at(&slot_key(slot)))
    }

    /// Returns the code of the account at `address` (empty when none).
    pub(crate) fn code(&self, address: Address) -> Bytes {
        self.account(address)
            .and_then(|account| self.codes.get(&account.code_hash))
            .cloned()
            .unwrap_or_default()
    }

    /// The Merkle-Patricia root over all accounts, rehashing only the nodes on the paths to
    /// the accounts that changed since the last call; with `parallel`, over two threads.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(crate) fn state_root(&mut self, parallel: bool) -> B256 {
        self.accounts
            .root(parallel, &|account: &Arc<Account>, buf| {
                account.trie_account().encode(buf);
            })
    }

    /// Iterates over all accounts in trie-key order.
    #[cfg_attr(not(test), expect(dead_code, reason = "used by tests"))]
    pub(crate) fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter().map(|(_, account)| account.as_ref())
    }

    /// Reads the account at `address` for [`Preloaded`]: its trie key and the account.
    pub(crate) fn preload(&self, address: Address) -> (B256, Option<Arc<Account>>) {
        let key = keccak256(address);
        (key, self.account_by_key(&key))
    }

    /// The account whose trie key (hashed address) is `key`.
    pub(crate) fn account_by_key(&self, key: &B256) -> Option<Arc<Account>> {
        self.accounts.get(key).cloned()
    }

    /// The revm view of `account`, with its code.
    pub(crate) fn account_info(&self, account: &Account) -> AccountInfo {
        // Accounts without code (most of them) skip the code map: it never holds the empty
        // code.
        let code = (account.code_hash != KECCAK_EMPTY)
            .then(|| self.codes.get(&account.code_hash))
            .flatten()
            .map(|code| Bytecode::new_raw(code.clone()));
        AccountInfo {
            balance: account.balance,
            nonce: account.nonce,
            code_hash: account.code_hash,
            code,
            ..AccountInfo::default()
        }
    }

    /// Applies the changes an execution left in a [`CacheDB`] over this state.
    ///
    /// Only accounts the EVM touched are applied; accounts that end up empty are removed
    /// (EIP-161), accounts created or self-destructed get their storage replaced. The
    /// [`StateDb`] must read this same state: the keys, accounts and slot hashes it learned
    /// are reused instead of being hashed and looked up again.
    pub(crate) fn apply(&mut self, cache: CacheDB<StateDb<'_>>) {
        let CacheDB { cache, db } = cache;
        let StateDb {
            preloaded,
            slot_keys,
            ..
        } = db;
        let slot_keys = slot_keys.into_inner();
        for (hash, code) in cache.contracts {
            if hash != KECCAK_EMPTY && !self.codes.contains_key(&hash) {
                self.codes.insert(hash, code.original_bytes());
            }
        }
        for (address, db_account) in cache.accounts {
            let (key, existing) = match preloaded.get(&address) {
                Some((key, existing)) => (*key, existing.clone()),
                None => self.preload(address),
            };
            let storage_cleared = db_account.account_state.is_storage_cleared();
            match db_account.account_state {
                CacheAccountState::None => continue,
                CacheAccountState::NotExisting => {
                    if existing.is_some() {
                        self.accounts.remove(&key);
                    }
                    continue;
                }
                CacheAccountState::Touched | CacheAccountState::StorageCleared => {}
            }
            let mut account = match existing {
                Some(existing) if !storage_cleared => Account::clone(&existing),
                _ => Account::empty(address),
            };
            account.nonce = db_account.info.nonce;
            account.balance = db_account.info.balance;
            account.code_hash = db_account.info.code_hash;
            let mut storage_changes = 0;
            for (slot, value) in db_account.storage {
                let hashed_slot = slot_keys
                    .get(&slot)
                    .copied()
                    .unwrap_or_else(|| slot_key(slot));
                if value.is_zero() {
                    if account.storage.remove(&hashed_slot).is_some() {
                        storage_changes += 1;
                    }
                } else if account.value_at(&hashed_slot) != value {
                    account.storage.insert(hashed_slot, (slot, value));
                    storage_changes += 1;
                }
            }
            if storage_changes > 0 || storage_cleared {
                account.recompute_storage_root(storage_changes >= MIN_PARALLEL_ITEMS);
            }
            if account.is_empty() && account.storage.is_empty() {
                self.accounts.remove(&key);
            } else {
                self.accounts.insert(key, Arc::new(account));
            }
        }
    }
}

/// Accounts read ahead of a block by [`WorldState::preload`], by address.
pub(crate) type Preloaded = AddressMap<(B256, Option<Arc<Account>>)>;

/// A genesis allocation entry in plain form.
pub(crate) struct GenesisEntry {
    pub(crate) address: Address,
    pub(crate) nonce: u64,
    pub(crate) balance: U256,
    pub(crate) code: Bytes,
    pub(crate) storage: Vec<(U256, U256)>,
}

/// Errors of state handling.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The genesis allocation lists the same address twice.
    #[error("genesis allocation lists account {0} twice")]
    DuplicateAccount(Address),
    /// The EVM asked for a block hash that is not among the 256 most recent.
    #[error("block hash of block {0} is not available")]
    MissingBlockHash(u64),
}

impl DBErrorMarker for StateError {}

/// A read-only revm database over a [`WorldState`] plus the recent block hashes.
///
/// It remembers what reads learned that [`WorldState::apply`] needs again: the accounts
/// preloaded before a block ([`Preloaded`]; an account there is found without hashing its
/// address) and the hash of every storage slot read.
#[derive(Debug)]
pub(crate) struct StateDb<'a> {
    state: &'a WorldState,
    /// Hashes of recent ancestors, `(number, hash)`, highest first.
    block_hashes: &'a [(u64, B256)],
    preloaded: Preloaded,
    /// `keccak256` of every storage slot read, by slot.
    slot_keys: RefCell<U256Map<B256>>,
}

impl<'a> StateDb<'a> {
    /// A database over `state`, with `block_hashes` for `BLOCKHASH`.
    pub(crate) fn new(state: &'a WorldState, block_hashes: &'a [(u64, B256)]) -> Self {
        Self::with_preloaded(state, block_hashes, Preloaded::default())
    }

    /// A database over `state` with accounts already read from it ([`WorldState::preload`]).
    pub(crate) fn with_preloaded(
        state: &'a WorldState,
        block_hashes: &'a [(u64, B256)],
        preloaded: Preloaded,
    ) -> Self {
        Self {
            state,
            block_hashes,
            preloaded,
            slot_keys: RefCell::default(),
        }
    }

    /// The account at `address`, from the preloaded accounts if it is among them.
    fn account(&self, address: Address) -> Option<&Account> {
        match self.preloaded.get(&address) {
            Some((_, account)) => account.as_deref(),
            None => self.state.account(address),
        }
    }
}

impl DatabaseRef for StateDb<'_> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self
            .account(address)
            .map(|account| self.state.account_info(account)))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self
            .state
            .codes
            .get(&code_hash)
            .map(|code| Bytecode::new_raw(code.clone()))
            .unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        let Some(account) = self.account(address) else {
            return Ok(U256::ZERO);
        };
        let key = slot_key(index);
        self.slot_keys.borrow_mut().insert(index, key);
        Ok(account.value_at(&key))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        self.block_hashes
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, hash)| *hash)
            .ok_or(StateError::MissingBlockHash(number))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(byte: u8, balance: u64, storage: Vec<(u64, u64)>) -> GenesisEntry {
        GenesisEntry {
            address: Address::repeat_byte(byte),
            nonce: u64::from(byte),
            balance: U256::from(balance),
            code: if storage.is_empty() {
                Bytes::new()
            } else {
                Bytes::from_static(&[0x60, 0x00])
            },
            storage: storage
                .into_iter()
                .map(|(k, v)| (U256::from(k), U256::from(v)))
                .collect(),
        }
    }

    #[test]
    fn state_root_matches_alloy_trie_reference() {
        let mut state = WorldState::from_accounts([
            entry(1, 10, vec![]),
            entry(2, 0, vec![(1, 5), (2, 0), (300, 7)]),
            entry(3, 99, vec![(0, 1)]),
        ])
        .unwrap();
        let reference = alloy_trie::root::state_root_unhashed(state.accounts().map(|account| {
            let storage_root = alloy_trie::root::storage_root_unhashed(
                account
                    .storage
                    .iter()
                    .map(|(_, (slot, value))| (B256::from(*slot), *value)),
            );
            let trie = TrieAccount::new(
                account.nonce,
                account.balance,
                storage_root,
                account.code_hash,
            );
            (account.address, trie)
        }));
        assert_eq!(state.state_root(false), reference);
        assert_eq!(
            state.storage(Address::repeat_byte(2), U256::from(300)),
            U256::from(7)
        );
        assert_eq!(
            state.storage(Address::repeat_byte(2), U256::from(2)),
            U256::ZERO
        );
    }

    #[test]
    fn cached_storage_root_matches_alloy_through_changes() {
        let reference = |account: &Account| {
            alloy_trie::root::storage_root_unhashed(
                account
                    .storage
                    .iter()
                    .map(|(_, (slot, value))| (B256::from(*slot), *value)),
            )
        };
        let mut account = Account::empty(Address::repeat_byte(1));
        // One slot (a single leaf), then many, then changes and removals.
        for step in 0..300u64 {
            let slot = U256::from(step % 97);
            let hashed = slot_key(slot);
            if step % 5 == 4 {
                account.storage.remove(&hashed);
            } else {
                account.storage.insert(hashed, (slot, U256::from(step + 1)));
            }
            // Both ways of hashing must give the same root.
            account.recompute_storage_root(step % 2 == 0);
            assert_eq!(account.storage_root, reference(&account), "step {step}");
        }
        loop {
            let first = account.storage.iter().next().map(|(k, _)| *k);
            let Some(hashed) = first else { break };
            account.storage.remove(&hashed);
            account.recompute_storage_root(false);
            assert_eq!(account.storage_root, reference(&account));
        }
        assert_eq!(account.storage_root, EMPTY_ROOT_HASH);
    }

    #[test]
    fn cached_state_root_matches_alloy_through_changes() {
        let reference = |state: &WorldState| {
            alloy_trie::root::state_root_unhashed(
                state
                    .accounts()
                    .map(|account| (account.address, account.trie_account())),
            )
        };
        let mut state = WorldState::default();
        // One account (a single leaf), then many, then changes and removals, with and without
        // the second thread.
        for step in 0..400u64 {
            let mut bytes = [0u8; 20];
            bytes[..8].copy_from_slice(&(step % 97).to_be_bytes());
            let address = Address::from(bytes);
            let key = keccak256(address);
            if step % 7 == 6 {
                state.accounts.remove(&key);
            } else {
                let mut account = Account::empty(address);
                account.nonce = step;
                account.balance = U256::from(step + 1);
                state.accounts.insert(key, Arc::new(account));
            }
            assert_eq!(
                state.state_root(step % 2 == 0),
                reference(&state),
                "step {step}"
            );
        }
        loop {
            let first = state.accounts.iter().next().map(|(k, _)| *k);
            let Some(key) = first else { break };
            state.accounts.remove(&key);
            assert_eq!(state.state_root(true), reference(&state));
        }
        assert_eq!(state.state_root(true), EMPTY_ROOT_HASH);
    }

    #[test]
    fn empty_state_has_empty_root() {
        assert_eq!(WorldState::default().state_root(true), EMPTY_ROOT_HASH);
    }

    #[test]
    fn duplicate_genesis_account_is_rejected() {
        let err =
            WorldState::from_accounts([entry(1, 1, vec![]), entry(1, 2, vec![])]).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
