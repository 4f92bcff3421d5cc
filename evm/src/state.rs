//! World state: accounts, storage and code as persistent (structurally shared) maps.
//!
//! Every block keeps its own post-state. Cloning a [`WorldState`] is O(1) because the maps are
//! `imbl` ordered maps, so a block built on any known parent starts from that parent's state and
//! shares all untouched data with it.
//!
//! Accounts are keyed by `keccak256(address)` and storage slots by `keccak256(slot)`, which is
//! exactly the key order of the Merkle-Patricia trie. The state root is then one ordered pass
//! over the accounts through alloy-trie's [`HashBuilder`]; each account caches its storage root,
//! which is recomputed only when its storage changes.

use std::sync::Arc;

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_rlp::Encodable as _;
use alloy_trie::{HashBuilder, Nibbles, TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY};
use imbl::OrdMap;
use revm::{
    bytecode::Bytecode,
    database::{AccountState as CacheAccountState, CacheDB},
    database_interface::DBErrorMarker,
    state::AccountInfo,
    DatabaseRef,
};

/// One account of the world state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) address: Address,
    pub(crate) nonce: u64,
    pub(crate) balance: U256,
    pub(crate) code_hash: B256,
    /// Storage keyed by `keccak256(slot)`, holding `(slot, value)`; zero values are never stored.
    pub(crate) storage: OrdMap<B256, (U256, U256)>,
    pub(crate) storage_root: B256,
    /// Cached hashes of the 16 subtries under the root branch of the storage trie (by the first
    /// nibble of the hashed slot); `None` when empty or changed since the last computation.
    shard_hashes: [Option<B256>; 16],
}

impl Account {
    fn empty(address: Address) -> Self {
        Self {
            address,
            nonce: 0,
            balance: U256::ZERO,
            code_hash: KECCAK_EMPTY,
            storage: OrdMap::new(),
            storage_root: EMPTY_ROOT_HASH,
            shard_hashes: [None; 16],
        }
    }

    /// EIP-161 emptiness: such an account does not exist in the trie.
    fn is_empty(&self) -> bool {
        self.nonce == 0 && self.balance.is_zero() && self.code_hash == KECCAK_EMPTY
    }

    fn trie_account(&self) -> TrieAccount {
        TrieAccount::new(self.nonce, self.balance, self.storage_root, self.code_hash)
    }

    /// Marks the storage subtrie holding `hashed_slot` as changed.
    fn touch_slot(&mut self, hashed_slot: &B256) {
        self.shard_hashes[usize::from(hashed_slot[0] >> 4)] = None;
    }

    /// Recomputes the storage root, rehashing only the subtries whose slots changed.
    ///
    /// When slots fall under at least two first nibbles, the trie root is a branch node whose
    /// children are the subtries by first nibble; each child is a node of more than 32 bytes
    /// (a storage leaf alone carries a 31-byte path and a value), so it is referenced by hash.
    /// Otherwise the whole trie is built at once.
    fn recompute_storage_root(&mut self) {
        let mut occupied = [false; 16];
        for nibble in 0..16u8 {
            let low = first_key(nibble);
            occupied[usize::from(nibble)] = self
                .storage
                .range(low..)
                .next()
                .is_some_and(|(k, _)| k[0] >> 4 == nibble);
        }
        if occupied.iter().filter(|o| **o).count() < 2 {
            self.shard_hashes = [None; 16];
            self.storage_root = full_storage_root(self.storage.iter());
            return;
        }
        for nibble in 0..16u8 {
            let index = usize::from(nibble);
            if !occupied[index] {
                self.shard_hashes[index] = None;
                continue;
            }
            if self.shard_hashes[index].is_some() {
                continue;
            }
            let low = first_key(nibble);
            let mut builder = HashBuilder::default();
            let mut buf = Vec::with_capacity(40);
            for (hashed_slot, (_, value)) in self
                .storage
                .range(low..)
                .take_while(|(k, _)| k[0] >> 4 == nibble)
            {
                buf.clear();
                value.encode(&mut buf);
                builder.add_leaf(Nibbles::unpack(hashed_slot).slice(1..), &buf);
            }
            self.shard_hashes[index] = Some(builder.root());
        }
        let payload_length: usize = self
            .shard_hashes
            .iter()
            .map(|h| if h.is_some() { 33 } else { 1 })
            .sum::<usize>()
            + 1;
        let mut node = Vec::with_capacity(payload_length + 3);
        alloy_rlp::Header {
            list: true,
            payload_length,
        }
        .encode(&mut node);
        for hash in &self.shard_hashes {
            match hash {
                Some(hash) => hash.encode(&mut node),
                None => node.push(alloy_rlp::EMPTY_STRING_CODE),
            }
        }
        node.push(alloy_rlp::EMPTY_STRING_CODE);
        self.storage_root = keccak256(&node);
    }
}

/// The storage root over `(hashed slot, (slot, value))` entries in key order, in one pass.
fn full_storage_root<'a>(entries: impl Iterator<Item = (&'a B256, &'a (U256, U256))>) -> B256 {
    let mut builder = HashBuilder::default();
    let mut buf = Vec::with_capacity(40);
    let mut any = false;
    for (hashed_slot, (_, value)) in entries {
        any = true;
        buf.clear();
        value.encode(&mut buf);
        builder.add_leaf(Nibbles::unpack(hashed_slot), &buf);
    }
    if any {
        builder.root()
    } else {
        EMPTY_ROOT_HASH
    }
}

/// The smallest hashed key whose first nibble is `nibble`.
fn first_key(nibble: u8) -> B256 {
    let mut key = B256::ZERO;
    key[0] = nibble << 4;
    key
}

/// The full world state after some block.
#[derive(Clone, Debug, Default)]
pub(crate) struct WorldState {
    /// Behind an `Arc`: map nodes hold up to 64 entries and an account is ~700 bytes (cached
    /// storage subtrie hashes included), so inline values made every insert shift and every
    /// first write to a shared node copy tens of kilobytes.
    accounts: OrdMap<B256, Arc<Account>>,
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
                    account
                        .storage
                        .insert(keccak256(slot.to_be_bytes::<32>()), (slot, value));
                }
            }
            account.recompute_storage_root();
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
            .and_then(|account| account.storage.get(&keccak256(slot.to_be_bytes::<32>())))
            .map_or(U256::ZERO, |(_, value)| *value)
    }

    /// Returns the code of the account at `address` (empty when none).
    pub(crate) fn code(&self, address: Address) -> Bytes {
        self.account(address)
            .and_then(|account| self.codes.get(&account.code_hash))
            .cloned()
            .unwrap_or_default()
    }

    /// The Merkle-Patricia root over all accounts.
    #[tracing::instrument(level = "debug", skip_all)]
    pub(crate) fn state_root(&self) -> B256 {
        if self.accounts.is_empty() {
            return EMPTY_ROOT_HASH;
        }
        let mut builder = HashBuilder::default();
        let mut buf = Vec::with_capacity(128);
        for (hashed_address, account) in &self.accounts {
            buf.clear();
            account.trie_account().encode(&mut buf);
            builder.add_leaf(Nibbles::unpack(hashed_address), &buf);
        }
        builder.root()
    }

    /// Iterates over all accounts in trie-key order.
    #[cfg_attr(not(test), expect(dead_code, reason = "used by tests"))]
    pub(crate) fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values().map(Arc::as_ref)
    }

    /// Applies the changes an execution left in a [`CacheDB`] over this state.
    ///
    /// Only accounts the EVM touched are applied; accounts that end up empty are removed
    /// (EIP-161), accounts created or self-destructed get their storage replaced.
    pub(crate) fn apply(&mut self, cache: CacheDB<StateDb<'_>>) {
        let CacheDB { cache, .. } = cache;
        for (hash, code) in cache.contracts {
            if hash != KECCAK_EMPTY && !self.codes.contains_key(&hash) {
                self.codes.insert(hash, code.original_bytes());
            }
        }
        for (address, db_account) in cache.accounts {
            let key = keccak256(address);
            let storage_cleared = db_account.account_state.is_storage_cleared();
            match db_account.account_state {
                CacheAccountState::None => continue,
                CacheAccountState::NotExisting => {
                    self.accounts.remove(&key);
                    continue;
                }
                CacheAccountState::Touched | CacheAccountState::StorageCleared => {}
            }
            let mut account = match self.accounts.get(&key) {
                Some(existing) if !storage_cleared => Account::clone(existing),
                _ => Account::empty(address),
            };
            account.nonce = db_account.info.nonce;
            account.balance = db_account.info.balance;
            account.code_hash = db_account.info.code_hash;
            let mut storage_changed = false;
            for (slot, value) in db_account.storage {
                let hashed_slot = keccak256(slot.to_be_bytes::<32>());
                if value.is_zero() {
                    if account.storage.remove(&hashed_slot).is_some() {
                        account.touch_slot(&hashed_slot);
                        storage_changed = true;
                    }
                } else if account.storage.get(&hashed_slot).map(|(_, v)| *v) != Some(value) {
                    account.storage.insert(hashed_slot, (slot, value));
                    account.touch_slot(&hashed_slot);
                    storage_changed = true;
                }
            }
            if storage_changed || storage_cleared {
                account.recompute_storage_root();
            }
            if account.is_empty() && account.storage.is_empty() {
                self.accounts.remove(&key);
            } else {
                self.accounts.insert(key, Arc::new(account));
            }
        }
    }
}

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
#[derive(Clone, Copy, Debug)]
pub(crate) struct StateDb<'a> {
    pub(crate) state: &'a WorldState,
    /// Hashes of recent ancestors, `(number, hash)`, highest first.
    pub(crate) block_hashes: &'a [(u64, B256)],
}

impl DatabaseRef for StateDb<'_> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.state.account(address).map(|account| {
            // Accounts without code (most of them) skip the code map: it never holds the
            // empty code.
            let code = (account.code_hash != KECCAK_EMPTY)
                .then(|| self.state.codes.get(&account.code_hash))
                .flatten()
                .map(|code| Bytecode::new_raw(code.clone()));
            AccountInfo {
                balance: account.balance,
                nonce: account.nonce,
                code_hash: account.code_hash,
                code,
                ..AccountInfo::default()
            }
        }))
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
        Ok(self.state.storage(address, index))
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
        let state = WorldState::from_accounts([
            entry(1, 10, vec![]),
            entry(2, 0, vec![(1, 5), (2, 0), (300, 7)]),
            entry(3, 99, vec![(0, 1)]),
        ])
        .unwrap();
        let reference = alloy_trie::root::state_root_unhashed(state.accounts().map(|account| {
            let storage_root = alloy_trie::root::storage_root_unhashed(
                account
                    .storage
                    .values()
                    .map(|(slot, value)| (B256::from(*slot), *value)),
            );
            let trie = TrieAccount::new(
                account.nonce,
                account.balance,
                storage_root,
                account.code_hash,
            );
            (account.address, trie)
        }));
        assert_eq!(state.state_root(), reference);
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
                    .values()
                    .map(|(slot, value)| (B256::from(*slot), *value)),
            )
        };
        let mut account = Account::empty(Address::repeat_byte(1));
        // One slot (single subtrie), then many, then changes and removals touching few subtries.
        for step in 0..300u64 {
            let slot = U256::from(step % 97);
            let hashed = keccak256(slot.to_be_bytes::<32>());
            if step % 5 == 4 {
                account.storage.remove(&hashed);
            } else {
                account.storage.insert(hashed, (slot, U256::from(step + 1)));
            }
            account.touch_slot(&hashed);
            account.recompute_storage_root();
            assert_eq!(account.storage_root, reference(&account), "step {step}");
        }
        while let Some((hashed, _)) = account.storage.get_min().map(|(k, v)| (*k, *v)) {
            account.storage.remove(&hashed);
            account.touch_slot(&hashed);
            account.recompute_storage_root();
            assert_eq!(account.storage_root, reference(&account));
        }
        assert_eq!(account.storage_root, EMPTY_ROOT_HASH);
    }

    #[test]
    fn empty_state_has_empty_root() {
        assert_eq!(WorldState::default().state_root(), EMPTY_ROOT_HASH);
    }

    #[test]
    fn duplicate_genesis_account_is_rejected() {
        let err =
            WorldState::from_accounts([entry(1, 1, vec![]), entry(1, 2, vec![])]).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }
}
