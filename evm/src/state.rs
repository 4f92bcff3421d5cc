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

use alloy_primitives::{
    keccak256,
    map::{AddressMap, B256Map, U256Map},
    Address, Bytes, B256, U256,
};
use alloy_rlp::Encodable as _;
use alloy_trie::{TrieAccount, EMPTY_ROOT_HASH, KECCAK_EMPTY};
use imbl::OrdMap;
use revm::{
    bytecode::Bytecode, database_interface::DBErrorMarker, state::AccountInfo, Database,
    DatabaseCommit, DatabaseRef,
};

use crate::{
    hashed_trie::{nibble, HashedTrie, Subtries},
    parallel::MIN_PARALLEL_ITEMS,
};

/// One account of the world state.
#[derive(Clone, Debug)]
pub(crate) struct Account {
    pub(crate) nonce: u64,
    pub(crate) balance: U256,
    pub(crate) code_hash: B256,
    /// Storage keyed by `keccak256(slot)`, holding `(slot, value)`; zero values are never stored.
    pub(crate) storage: HashedTrie<(U256, U256)>,
    /// The root of `storage`, as of the last [`Account::recompute_storage_root`].
    pub(crate) storage_root: B256,
}

impl Account {
    fn empty() -> Self {
        Self {
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
        self.storage_root = self.storage.root(parallel, &encode_slot);
    }
}

/// The value of a slot's leaf in a storage trie.
fn encode_slot((_, value): &(U256, U256), buf: &mut Vec<u8>) {
    value.encode(buf);
}

/// The trie key of a storage slot.
fn slot_key(slot: U256) -> B256 {
    keccak256(slot.to_be_bytes::<32>())
}

/// Trie keys of storage slots (`keccak256(index)`, the same for every account), kept across
/// blocks as the sender cache is: a contract's busy slots (token balances) come back block
/// after block, and each read of a slot a block has not seen yet needs its key. Bounded: when
/// full, it starts over.
#[derive(Debug, Default)]
pub(crate) struct SlotKeys(U256Map<B256>);

impl SlotKeys {
    /// Keys kept at most.
    const MAX: usize = 200_000;

    /// The trie key of slot `index`, if known.
    fn get(&self, index: U256) -> Option<B256> {
        self.0.get(&index).copied()
    }

    /// Takes in keys computed since (as [`BlockDb::new_slot_keys`] gives them).
    pub(crate) fn extend(&mut self, keys: Vec<(U256, B256)>) {
        if self.0.len() + keys.len() > Self::MAX {
            self.0.clear();
        }
        self.0.extend(keys.into_iter().take(Self::MAX));
    }

    /// The number of keys kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// The full world state after some block.
#[derive(Clone, Debug, Default)]
pub(crate) struct WorldState {
    accounts: HashedTrie<Account>,
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
            let mut account = Account::empty();
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
            if state.accounts.insert(key, account).is_some() {
                return Err(StateError::DuplicateAccount(entry.address));
            }
        }
        Ok(state)
    }

    /// Returns the account at `address`, if it exists.
    pub(crate) fn account(&self, address: Address) -> Option<&Account> {
        self.accounts.get(&keccak256(address))
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
        self.accounts.root(parallel, &encode_account)
    }

    /// Iterates over all accounts with their trie keys, in key order.
    #[cfg_attr(not(test), expect(dead_code, reason = "used by tests"))]
    pub(crate) fn accounts(&self) -> impl Iterator<Item = (&B256, &Account)> {
        self.accounts.iter()
    }

    /// The revm view of `account`, with its code.
    fn account_info(&self, account: &Account) -> AccountInfo {
        AccountInfo {
            code: self.bytecode(account.code_hash),
            ..info_without_code(account)
        }
    }

    /// The code whose hash is `code_hash`, ready to run; `None` when unknown. Accounts without
    /// code (most of them) skip the code map: it never holds the empty code.
    fn bytecode(&self, code_hash: B256) -> Option<Bytecode> {
        (code_hash != KECCAK_EMPTY)
            .then(|| self.codes.get(&code_hash))
            .flatten()
            .map(|code| Bytecode::new_raw(code.clone()))
    }

    /// Applies what a block's execution changed ([`BlockDb`], which read this same state).
    ///
    /// Only accounts the EVM touched are applied; accounts that end up empty are removed
    /// (EIP-161), accounts created or self-destructed had their storage replaced. From
    /// [`MIN_PARALLEL_ITEMS`] accounts on, the two halves of the account trie are updated on
    /// two threads ([`HashedTrie::update`]); each account is written once, under its own key,
    /// so neither that nor the order of the accounts matters.
    pub(crate) fn apply(&mut self, db: BlockDb<'_>) {
        for (hash, code) in db.new_codes {
            self.codes.entry(hash).or_insert(code);
        }
        let touched = touched(&db.parts);
        let parallel = touched.len() >= MIN_PARALLEL_ITEMS;
        self.accounts.update(
            &touched,
            |(key, _)| *key,
            |(_, entry)| post_account(entry),
            &encode_account,
            parallel,
        );
    }

    /// [`WorldState::apply`] shared out between threads that exist already, a subtrie of the
    /// account trie at a time ([`SharedApply::work`]): whichever thread is free takes the next
    /// one, so that a thread that starts later does not leave the other waiting. The subtries
    /// that cost most (by their changed accounts and storage slots) go first, so that one
    /// holding a contract whose storage changed a lot is not taken last. Returns a copy of this
    /// state with the code `db`'s block deployed, whose account trie lacks its subtries until
    /// [`SharedApply::finish`]. A block that changed too few accounts to share out, or a trie
    /// whose root is not a branch, is applied at once by `finish`.
    pub(crate) fn share_apply<'a>(&self, db: BlockDb<'a>) -> (WorldState, SharedApply<'a>) {
        let mut state = self.clone();
        // The changed accounts by first nibble, and what each nibble's changes cost.
        let mut buckets: [Vec<Changed>; 16] = Default::default();
        let mut costs = [0usize; 16];
        for (part, Part { entries, .. }) in db.parts.iter().enumerate() {
            for (position, entry) in entries.iter().enumerate() {
                if entry.touched {
                    let first = nibble(&entry.key, 0);
                    buckets[first].push((entry.key, part, position));
                    costs[first] += 1 + entry.slots.len();
                }
            }
        }
        let mut shared = SharedApply {
            db,
            buckets,
            subtries: Vec::new(),
            next: std::sync::atomic::AtomicUsize::new(0),
        };
        if shared.buckets.iter().map(Vec::len).sum::<usize>() < MIN_PARALLEL_ITEMS {
            return (state, shared);
        }
        // Nibbles by what their changes cost, most first (ties by nibble).
        let mut nibbles: Vec<usize> = (0..16).collect();
        nibbles.sort_by_key(|nibble| (std::cmp::Reverse(costs[*nibble]), *nibble));
        for nibble in nibbles {
            // Only the first can fail (the root is not a branch), before any is taken.
            let Some(taken) = state.accounts.take_subtries(nibble..nibble + 1) else {
                return (state, shared);
            };
            shared.subtries.push(std::sync::Mutex::new(taken));
        }
        for (hash, code) in &shared.db.new_codes {
            state.codes.entry(*hash).or_insert_with(|| code.clone());
        }
        (state, shared)
    }
}

/// A changed account: its trie key, and where its entry lies (part, position).
type Changed = (B256, usize, usize);

/// A block's account update shared out between threads ([`WorldState::share_apply`]).
#[derive(Debug)]
pub(crate) struct SharedApply<'a> {
    db: BlockDb<'a>,
    /// The changed accounts by first nibble.
    buckets: [Vec<Changed>; 16],
    /// The sixteen subtries under the root, each taken once by [`SharedApply::work`].
    subtries: Vec<std::sync::Mutex<Subtries<Account>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl SharedApply<'_> {
    /// Updates subtries (and hashes them) until none is left.
    pub(crate) fn work(&self) {
        while let Some(subtries) = self
            .subtries
            .get(self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
        {
            let mut subtries = subtries.lock().expect("each subtrie is taken once");
            let bucket = &self.buckets[subtries.first()];
            subtries.update(
                bucket,
                &|(key, _, _): &Changed| *key,
                &|(_, part, position): &Changed| {
                    post_account(&self.db.parts[*part].entries[*position])
                },
                &encode_account,
            );
        }
    }

    /// The post-state (`state`, from [`WorldState::share_apply`]) once the work is done.
    pub(crate) fn finish(self, mut state: WorldState) -> WorldState {
        if self.subtries.is_empty() {
            // Nothing was shared out: applied here, at once.
            state.apply(self.db);
        } else {
            state.accounts.put_subtries(
                self.subtries
                    .into_iter()
                    .map(|subtries| subtries.into_inner().expect("each subtrie is taken once")),
            );
        }
        state
    }
}

/// The accounts a block changed, with their keys, in the order their entries lie in memory.
fn touched(parts: &[Part]) -> Vec<(B256, &Entry)> {
    parts
        .iter()
        .flat_map(|part| &part.entries)
        .filter(|entry| entry.touched)
        .map(|entry| (entry.key, entry))
        .collect()
}

/// The value of `account`'s leaf in the account trie.
fn encode_account(account: &Account, buf: &mut Vec<u8>) {
    account.trie_account().encode(buf);
}

/// The account `entry` leaves in the post-state, with its storage changes applied; `None`
/// when it does not exist or is empty (EIP-161).
fn post_account(entry: &Entry) -> Option<Account> {
    let mut account = entry.account.clone()?;
    let changed: Vec<(&U256, &Slot)> = entry
        .slots
        .iter()
        .filter(|(_, slot)| slot.original != slot.present)
        .collect();
    if !changed.is_empty() {
        account.storage.update(
            &changed,
            |(_, slot)| slot.key,
            |(index, slot)| (!slot.present.is_zero()).then_some((**index, slot.present)),
            &encode_slot,
            false,
        );
        account.recompute_storage_root(changed.len() >= MIN_PARALLEL_ITEMS);
    }
    (!account.is_empty() || !account.storage.is_empty()).then_some(account)
}

/// The revm view of `account` without its code, which revm asks for when it runs it.
fn info_without_code(account: &Account) -> AccountInfo {
    AccountInfo {
        balance: account.balance,
        nonce: account.nonce,
        code_hash: account.code_hash,
        // Not the default, which is the empty code.
        code: None,
        ..AccountInfo::default()
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

/// The hash of block `number` among `block_hashes` (`(number, hash)` of recent ancestors).
fn recent_block_hash(block_hashes: &[(u64, B256)], number: u64) -> Result<B256, StateError> {
    block_hashes
        .iter()
        .find(|(n, _)| *n == number)
        .map(|(_, hash)| *hash)
        .ok_or(StateError::MissingBlockHash(number))
}

/// An account as a block's execution sees it, in [`BlockDb`].
#[derive(Debug)]
struct Entry {
    /// The account's trie key, `keccak256(address)`.
    key: B256,
    /// The account as of the last commit (the parent's until then); `None` when it does not
    /// exist. Its storage trie is the parent's, or empty once the account was created or
    /// self-destructed in this block; `slots` holds what changed since.
    account: Option<Account>,
    /// Every storage slot read or written in this block (since the account's storage was last
    /// replaced), by index.
    slots: U256Map<Slot>,
    /// Changed by a commit, so part of the post-state.
    touched: bool,
}

/// A storage slot a block read or wrote.
#[derive(Debug)]
struct Slot {
    /// Its trie key, `keccak256(index)`.
    key: B256,
    /// Its value in the account's storage trie (the parent's, or the empty one that replaced
    /// it), which the block's changes are measured against.
    original: U256,
    /// Its value as of the last commit.
    present: U256,
}

impl Slot {
    /// A slot first seen holding `value`.
    fn new(key: B256, value: U256) -> Self {
        Self {
            key,
            original: value,
            present: value,
        }
    }
}

impl Entry {
    /// The entry of the account whose trie key is `key`, as `state` holds it.
    fn read(state: &WorldState, key: B256) -> Self {
        Self::new(key, state.accounts.get(&key).cloned())
    }

    /// The entry of `account` (`None`: it does not exist), whose trie key is `key`.
    fn new(key: B256, account: Option<Account>) -> Self {
        Self {
            key,
            account,
            slots: U256Map::default(),
            touched: false,
        }
    }
}

/// The revm database a block executes on: the parent state, plus every account the block read
/// or changed, as of the last transaction. [`WorldState::apply`] (or, over threads,
/// [`WorldState::share_apply`]) turns it into the post-state.
///
/// The accounts a block's transactions name are read ahead ([`preload`]), split by address
/// ([`part_of`]) into [`Part`]s that separate threads fill: each hashes its addresses in one
/// batch, looks them up and fills its own part. Transactions then find them without hashing
/// an address, as on revm's in-memory database. Which part an account lands in depends on
/// the number of parts, but nothing read from them does.
#[derive(Debug)]
pub(crate) struct BlockDb<'a> {
    state: &'a WorldState,
    /// Hashes of recent ancestors, `(number, hash)`, highest first.
    block_hashes: &'a [(u64, B256)],
    /// The accounts; `parts[part_of(address, parts.len())]` holds `address`.
    parts: Vec<Part>,
    /// Code that revm asked for, ready to run, by hash.
    codes: B256Map<Bytecode>,
    /// Code deployed by the block, by hash.
    new_codes: B256Map<Bytes>,
    /// Slot keys: those known from earlier blocks, and those this block computed.
    slot_keys: BlockSlotKeys<'a>,
}

/// The slot keys a block uses: [`SlotKeys`] from earlier blocks, and those it computes, kept
/// for [`SlotKeys::extend`].
#[derive(Debug)]
struct BlockSlotKeys<'a> {
    known: &'a SlotKeys,
    new: Vec<(U256, B256)>,
}

impl BlockSlotKeys<'_> {
    /// The trie key of slot `index`.
    fn key(&mut self, index: U256) -> B256 {
        self.known.get(index).unwrap_or_else(|| {
            let key = slot_key(index);
            self.new.push((index, key));
            key
        })
    }
}

impl<'a> BlockDb<'a> {
    /// A database over `state`, with `block_hashes` for `BLOCKHASH` and the accounts read
    /// ahead into `parts` by [`preload`] (`parts[i]` from part `i` of `parts.len()`).
    pub(crate) fn new(
        state: &'a WorldState,
        block_hashes: &'a [(u64, B256)],
        parts: Vec<Preloaded>,
        slot_keys: &'a SlotKeys,
    ) -> Self {
        assert!(!parts.is_empty(), "at least one part");
        Self {
            state,
            block_hashes,
            parts: parts.into_iter().map(|part| part.0).collect(),
            codes: B256Map::default(),
            new_codes: B256Map::default(),
            slot_keys: BlockSlotKeys {
                known: slot_keys,
                new: Vec::new(),
            },
        }
    }

    /// The slot keys this block computed that `slot_keys` did not have.
    pub(crate) fn new_slot_keys(&mut self) -> Vec<(U256, B256)> {
        std::mem::take(&mut self.slot_keys.new)
    }

    /// The entry of `address`, read from the parent state on first use.
    fn entry(&mut self, address: Address) -> &mut Entry {
        entry_in(&mut self.parts, self.state, address)
    }

    /// Adds `amount` to the balance of `address` (an EIP-4895 withdrawal), creating the
    /// account if needed.
    pub(crate) fn credit(&mut self, address: Address, amount: U256) {
        let entry = self.entry(address);
        let account = entry.account.get_or_insert_with(Account::empty);
        account.balance = account.balance.saturating_add(amount);
        entry.touched = true;
    }

    /// The account at `address` as of the last commit.
    pub(crate) fn account(&mut self, address: Address) -> Option<&Account> {
        self.entry(address).account.as_ref()
    }

    /// Takes in the changes of one transaction (or system call), as revm's in-memory
    /// database does.
    fn commit_account(&mut self, address: Address, changed: revm::state::Account) {
        if !changed.is_touched() {
            return;
        }
        let created = changed.is_created();
        let selfdestructed = changed.is_selfdestructed();
        let revm::state::Account { info, storage, .. } = changed;
        if let Some(code) = &info.code {
            if info.code_hash != KECCAK_EMPTY && !self.state.codes.contains_key(&info.code_hash) {
                self.new_codes
                    .entry(info.code_hash)
                    .or_insert_with(|| code.original_bytes());
                self.codes
                    .entry(info.code_hash)
                    .or_insert_with(|| code.clone());
            }
        }
        let entry = entry_in(&mut self.parts, self.state, address);
        entry.touched = true;
        if selfdestructed {
            entry.account = None;
            entry.slots.clear();
            return;
        }
        let account = entry.account.get_or_insert_with(Account::empty);
        if created {
            account.storage = HashedTrie::default();
            account.storage_root = EMPTY_ROOT_HASH;
            entry.slots.clear();
        }
        account.nonce = info.nonce;
        account.balance = info.balance;
        account.code_hash = info.code_hash;
        for (index, value) in storage {
            let value = value.present_value();
            entry
                .slots
                .entry(index)
                .and_modify(|slot| slot.present = value)
                .or_insert_with(|| {
                    // Written without a read through this database: revm knew it (a created
                    // account's storage is empty).
                    let key = self.slot_keys.key(index);
                    Slot {
                        present: value,
                        ..Slot::new(key, account.value_at(&key))
                    }
                });
        }
    }
}

/// The entry of `address` among `parts`, read from `state` on first use.
fn entry_in<'p>(parts: &'p mut [Part], state: &WorldState, address: Address) -> &'p mut Entry {
    let count = parts.len();
    let Part { positions, entries } = &mut parts[part_of(address, count)];
    let position = *positions.entry(address).or_insert_with(|| {
        entries.push(Entry::read(state, keccak256(address)));
        position_of(entries.len() - 1)
    });
    &mut entries[position as usize]
}

/// Some of a block's accounts ([`part_of`]): their entries in the order the block first used
/// them, and where each lies by address. The entries of consecutive transactions lie side by
/// side, and the map of positions is small enough to stay in cache.
#[derive(Debug, Default)]
struct Part {
    positions: AddressMap<u32>,
    entries: Vec<Entry>,
}

/// A position in [`Part::entries`].
fn position_of(index: usize) -> u32 {
    u32::try_from(index).expect("a block uses fewer than 2^32 accounts")
}

/// Which of `parts` maps holds `address`: by all of its bytes, so that addresses sharing a
/// prefix or a suffix (as contract-derived or test addresses do) still spread evenly.
fn part_of(address: Address, parts: usize) -> usize {
    usize::from(address.iter().fold(0u8, |folded, byte| folded ^ byte)) % parts
}

/// Accounts read ahead of a block into one part of its [`BlockDb`] ([`preload`]).
#[derive(Debug)]
pub(crate) struct Preloaded(Part);

/// Reads the accounts among `addresses` (repeats allowed, in the order the block uses them)
/// that fall in `part` of `parts` ([`part_of`]) from `state`, each once and in that order,
/// with their trie keys hashed in one batch. The parts are independent, so each can be read
/// on its own thread.
pub(crate) fn preload(
    state: &WorldState,
    addresses: &[Address],
    part: usize,
    parts: usize,
) -> Preloaded {
    // Room for the share of distinct addresses, the fee recipient and the accounts
    // transactions reach without naming them.
    let room = addresses.len() / parts + addresses.len() / 8 + 8;
    let mut positions = AddressMap::default();
    positions.reserve(room);
    let mut mine = Vec::with_capacity(room);
    for address in addresses {
        if part_of(*address, parts) == part {
            positions.entry(*address).or_insert_with(|| {
                mine.push(*address);
                position_of(mine.len() - 1)
            });
        }
    }
    let keys = tandem_keccak::keccak256_many(&mine);
    let accounts = state.accounts.get_many(&keys);
    let mut entries = Vec::with_capacity(room);
    entries.extend(
        keys.into_iter()
            .zip(accounts)
            .map(|(key, account)| Entry::new(key, account.cloned())),
    );
    Preloaded(Part { positions, entries })
}

impl Database for BlockDb<'_> {
    type Error = StateError;

    fn basic(&mut self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self.account(address).map(info_without_code))
    }

    fn code_by_hash(&mut self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        let state = self.state;
        Ok(self
            .codes
            .entry(code_hash)
            .or_insert_with(|| state.bytecode(code_hash).unwrap_or_default())
            .clone())
    }

    fn storage(&mut self, address: Address, index: U256) -> Result<U256, Self::Error> {
        let entry = entry_in(&mut self.parts, self.state, address);
        if let Some(slot) = entry.slots.get(&index) {
            return Ok(slot.present);
        }
        let key = self.slot_keys.key(index);
        let value = entry
            .account
            .as_ref()
            .map_or(U256::ZERO, |account| account.value_at(&key));
        entry.slots.insert(index, Slot::new(key, value));
        Ok(value)
    }

    fn block_hash(&mut self, number: u64) -> Result<B256, Self::Error> {
        recent_block_hash(self.block_hashes, number)
    }
}

impl DatabaseCommit for BlockDb<'_> {
    fn commit(&mut self, changes: AddressMap<revm::state::Account>) {
        for (address, account) in changes {
            self.commit_account(address, account);
        }
    }
}

/// A read-only revm database over a [`WorldState`] plus the recent block hashes, for calls
/// that change nothing (`eth_call`, `eth_estimateGas`).
#[derive(Debug)]
pub(crate) struct StateDb<'a> {
    state: &'a WorldState,
    /// Hashes of recent ancestors, `(number, hash)`, highest first.
    block_hashes: &'a [(u64, B256)],
}

impl<'a> StateDb<'a> {
    /// A database over `state`, with `block_hashes` for `BLOCKHASH`.
    pub(crate) fn new(state: &'a WorldState, block_hashes: &'a [(u64, B256)]) -> Self {
        Self {
            state,
            block_hashes,
        }
    }
}

impl DatabaseRef for StateDb<'_> {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, Self::Error> {
        Ok(self
            .state
            .account(address)
            .map(|account| self.state.account_info(account)))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, Self::Error> {
        Ok(self.state.bytecode(code_hash).unwrap_or_default())
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, Self::Error> {
        Ok(self.state.storage(address, index))
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, Self::Error> {
        recent_block_hash(self.block_hashes, number)
    }
}

#[cfg(test)]
mod tests {
    use alloy_primitives::TxKind;

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
    fn an_update_shared_out_between_threads_is_the_update_in_one() {
        /// A block crediting 100 accounts on `state`.
        fn block<'a>(state: &'a WorldState, slot_keys: &'a SlotKeys) -> BlockDb<'a> {
            let mut db = BlockDb::new(state, &[], vec![preload(state, &[], 0, 1)], slot_keys);
            for byte in 1..=100u8 {
                db.credit(Address::repeat_byte(byte), U256::from(byte));
            }
            db
        }
        let slot_keys = SlotKeys::default();
        // On a state whose root is a branch (half of the accounts new), and on one whose
        // root is a single leaf, which cannot be shared out.
        let many =
            WorldState::from_accounts((1..=50u8).map(|byte| entry(byte, 7, vec![]))).unwrap();
        let one = WorldState::from_accounts([entry(1, 7, vec![])]).unwrap();
        for (state, shared) in [(&many, true), (&one, false)] {
            let mut expected = state.clone();
            expected.apply(block(state, &slot_keys));
            let mut expected_root = expected.clone();
            let expected_root = expected_root.state_root(false);
            for threads in [1, 2] {
                let (post, work) = state.share_apply(block(state, &slot_keys));
                assert_eq!(work.subtries.len(), if shared { 16 } else { 0 });
                std::thread::scope(|scope| {
                    for _ in 1..threads {
                        scope.spawn(|| work.work());
                    }
                    work.work();
                });
                let mut applied = work.finish(post);
                assert_eq!(
                    applied.state_root(false),
                    expected_root,
                    "{threads} threads"
                );
                assert_eq!(applied.state_root(false), alloys_state_root(&applied));
                assert_eq!(
                    applied.account(Address::repeat_byte(80)).map(|a| a.balance),
                    Some(U256::from(80))
                );
            }
        }
    }

    #[test]
    fn slot_keys_start_over_when_full() {
        let keys = |range: std::ops::Range<u64>| -> Vec<(U256, B256)> {
            range
                .map(|n| (U256::from(n), B256::from(U256::from(n))))
                .collect()
        };
        let mut slot_keys = SlotKeys::default();
        slot_keys.extend(keys(0..SlotKeys::MAX as u64));
        assert_eq!(slot_keys.len(), SlotKeys::MAX);
        assert_eq!(
            slot_keys.get(U256::from(7)),
            Some(B256::from(U256::from(7)))
        );
        slot_keys.extend(keys(1_000_000..1_000_002));
        assert_eq!(slot_keys.len(), 2);
        assert_eq!(slot_keys.get(U256::from(7)), None);
    }

    /// alloy's state root of `state`, every storage root included, computed from scratch.
    fn alloys_state_root(state: &WorldState) -> B256 {
        alloy_trie::root::state_root_unsorted(state.accounts().map(|(key, account)| {
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
            (*key, trie)
        }))
    }

    #[test]
    fn state_root_matches_alloy_trie_reference() {
        let mut state = WorldState::from_accounts([
            entry(1, 10, vec![]),
            entry(2, 0, vec![(1, 5), (2, 0), (300, 7)]),
            entry(3, 99, vec![(0, 1)]),
        ])
        .unwrap();
        assert_eq!(state.state_root(false), alloys_state_root(&state));
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
        let mut account = Account::empty();
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
            alloy_trie::root::state_root_unsorted(
                state
                    .accounts()
                    .map(|(key, account)| (*key, account.trie_account())),
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
                let mut account = Account::empty();
                account.nonce = step;
                account.balance = U256::from(step + 1);
                state.accounts.insert(key, account);
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

    /// What a differential transaction does.
    #[derive(Clone, Debug)]
    enum Op {
        /// Sends `value` wei to one of a few addresses (some existing, some new).
        Transfer { to: u8, value: u8 },
        /// Calls the store contract: slot `slot` (some preset) becomes `value` (0 clears it).
        Store { slot: u8, value: u8 },
        /// Creates a contract that stores `value` at slot 1 and keeps the code `STOP`.
        CreateKeep { value: u8 },
        /// Creates a contract that self-destructs to one of the addresses (EIP-6780).
        CreateDestroy { heir: u8, value: u8 },
    }

    const CALLER: Address = Address::repeat_byte(0xca);
    const STORE: Address = Address::repeat_byte(0x5e);
    /// `SSTORE(calldata[0..32], calldata[32..64])`.
    const STORE_CODE: [u8; 8] = [0x60, 0x20, 0x35, 0x60, 0x00, 0x35, 0x55, 0x00];

    fn target(index: u8) -> Address {
        // 0..2 exist in the genesis state (2 is the store contract), the others do not.
        match index % 6 {
            0 => CALLER,
            1 => Address::repeat_byte(0x01),
            2 => STORE,
            n => Address::with_last_byte(0x90 + n),
        }
    }

    fn tx(nonce: u64, op: &Op) -> revm::context::TxEnv {
        let word = |n: u8| U256::from(n).to_be_bytes::<32>();
        let (kind, value, data) = match op {
            Op::Transfer { to, value } => {
                (TxKind::Call(target(*to)), U256::from(*value), Bytes::new())
            }
            Op::Store { slot, value } => (
                TxKind::Call(STORE),
                U256::ZERO,
                [word(*slot % 6), word(*value % 3)].concat().into(),
            ),
            Op::CreateKeep { value } => (
                TxKind::Create,
                U256::ZERO,
                // SSTORE(1, value); MSTORE8(0, 0); RETURN(0, 1)
                vec![
                    0x60, *value, 0x60, 0x01, 0x55, 0x60, 0x00, 0x60, 0x00, 0x53, 0x60, 0x01, 0x60,
                    0x00, 0xf3,
                ]
                .into(),
            ),
            Op::CreateDestroy { heir, value } => {
                let mut init = vec![0x73];
                init.extend_from_slice(target(*heir).as_slice());
                init.push(0xff);
                (TxKind::Create, U256::from(*value), init.into())
            }
        };
        revm::context::TxEnv {
            caller: CALLER,
            gas_limit: 200_000,
            gas_price: 0,
            kind,
            value,
            data,
            nonce,
            chain_id: Some(1),
            ..Default::default()
        }
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (any::<u8>(), 0u8..3).prop_map(|(to, value)| Op::Transfer { to, value }),
            (any::<u8>(), any::<u8>()).prop_map(|(slot, value)| Op::Store { slot, value }),
            any::<u8>().prop_map(|value| Op::CreateKeep { value }),
            (any::<u8>(), 0u8..3).prop_map(|(heir, value)| Op::CreateDestroy { heir, value }),
        ]
    }

    proptest::proptest! {
        /// A block run on [`BlockDb`] and applied leaves every account as revm's own
        /// `CacheDB` does after the same transactions, whichever accounts were read ahead and
        /// into however many parts.
        #[test]
        fn block_db_agrees_with_revms_cache_db(
            ops in proptest::collection::vec(op(), 1..16),
            read_ahead in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..8),
            parts in 1usize..4,
            known_slots in proptest::prelude::any::<bool>(),
            parallel_root in proptest::prelude::any::<bool>(),
        ) {
            use proptest::prelude::*;
            use revm::{
                context::{BlockEnv, Context},
                database::{CacheDB, EmptyDB},
                ExecuteCommitEvm as _, MainBuilder as _, MainContext as _,
            };

            let genesis = || {
                [
                    (CALLER, U256::from(10u64).pow(U256::from(20)), Bytes::new(), vec![]),
                    (Address::repeat_byte(0x01), U256::from(5), Bytes::new(), vec![]),
                    (
                        STORE,
                        U256::ZERO,
                        Bytes::from_static(&STORE_CODE),
                        (0..3u64).map(|n| (U256::from(n), U256::from(1))).collect(),
                    ),
                ]
            };
            let state = WorldState::from_accounts(genesis().into_iter().map(
                |(address, balance, code, storage)| GenesisEntry {
                    address,
                    nonce: 0,
                    balance,
                    code,
                    storage,
                },
            ))
            .unwrap();
            let mut reference = CacheDB::new(EmptyDB::default());
            for (address, balance, code, storage) in genesis() {
                let code = (!code.is_empty()).then(|| Bytecode::new_raw(code));
                let info = AccountInfo {
                    balance,
                    code_hash: code.as_ref().map_or(KECCAK_EMPTY, Bytecode::hash_slow),
                    code,
                    ..AccountInfo::default()
                };
                reference.insert_account_info(address, info);
                for (slot, value) in storage {
                    reference.insert_account_storage(address, slot, value).unwrap();
                }
            }
            let addresses: Vec<Address> = read_ahead.iter().map(|i| target(*i)).collect();
            // Slot keys known from "earlier blocks", or none.
            let mut slot_keys = SlotKeys::default();
            if known_slots {
                slot_keys.extend((0..=255u64).map(|n| (U256::from(n), slot_key(U256::from(n)))).collect());
            }
            let ours = BlockDb::new(
                &state,
                &[],
                (0..parts).map(|part| preload(&state, &addresses, part, parts)).collect(),
                &slot_keys,
            );
            let block = BlockEnv {
                gas_limit: 30_000_000,
                prevrandao: Some(B256::ZERO),
                ..BlockEnv::default()
            };
            let mut cfg = revm::context::CfgEnv::new_with_spec(
                revm::primitives::hardfork::SpecId::CANCUN,
            );
            cfg.chain_id = 1;
            let mut ours = Context::mainnet()
                .with_db(ours)
                .with_block(block.clone())
                .with_cfg(cfg.clone())
                .build_mainnet();
            let mut theirs = Context::mainnet()
                .with_db(reference)
                .with_block(block)
                .with_cfg(cfg)
                .build_mainnet();
            for (nonce, op) in (0u64..).zip(&ops) {
                let a = ours.transact_commit(tx(nonce, op)).expect("runs on BlockDb");
                let b = theirs.transact_commit(tx(nonce, op)).expect("runs on CacheDB");
                prop_assert_eq!(a.is_success(), b.is_success(), "{:?}", op);
            }
            let mut post = state.clone();
            post.apply(ours.ctx.journaled_state.database);
            let reference = theirs.ctx.journaled_state.database;
            for (address, account) in &reference.cache.accounts {
                let info = &account.info;
                let storage_empty = account.storage.values().all(U256::is_zero);
                let gone = matches!(
                    account.account_state,
                    revm::database::AccountState::NotExisting
                ) || (info.nonce == 0
                    && info.balance.is_zero()
                    && info.code_hash == KECCAK_EMPTY
                    && storage_empty);
                let expected = (!gone).then_some((info.nonce, info.balance, info.code_hash));
                let got = post
                    .account(*address)
                    .map(|a| (a.nonce, a.balance, a.code_hash));
                prop_assert_eq!(got, expected, "account {}", address);
                if !gone {
                    for (slot, value) in &account.storage {
                        prop_assert_eq!(post.storage(*address, *slot), *value);
                    }
                }
            }
            // The hashes the tries kept through the changes are those of the final tries.
            prop_assert_eq!(post.state_root(parallel_root), alloys_state_root(&post));
        }
    }
}
