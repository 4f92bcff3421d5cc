//! Light-client verification of a filtered sequencer block.
//!
//! Given a CometBFT header whose commit the caller has already verified
//! (more than 2/3 of voting power, see DESIGN.md "The conductor / Verify"),
//! [`verify_filtered_block`] checks, in order:
//! 1. the filtered block is that header's block (block hash, height, chain id,
//!    time, proposer, `data_hash`);
//! 2. the commitment item is `txs[0]` under `data_hash`, and decodes;
//! 3. `all_rollup_ids` is sorted and hashes to `rollup_ids_root`;
//! 4. the entries are sorted, each is a requested rollup listed in
//!    `all_rollup_ids`, sits at its position in the tree, and proves
//!    `rollup_id ‖ MTH(transactions)` into `rollup_transactions_root`;
//! 5. every requested rollup listed in `all_rollup_ids` has its entry.
//!
//! A requested rollup that is not in `all_rollup_ids` has no data in this
//! block; that is proven by step 3, and it gets an empty list.

use std::collections::{BTreeMap, BTreeSet};

use tendermint::Time;

use crate::block::FilteredSequencerBlock;
use crate::commitments::{decode_commitment_item, CommitmentError};
use crate::merkle::{self, Hash, ProofError};
use crate::RollupId;

/// The verified, ordered data of each requested rollup in one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedRollupData {
    block_hash: Hash,
    height: u64,
    time: Time,
    rollups: BTreeMap<RollupId, Vec<Vec<u8>>>,
}

impl VerifiedRollupData {
    /// The CometBFT block hash.
    pub fn block_hash(&self) -> &Hash {
        &self.block_hash
    }

    /// The block height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The block time (from the verified header).
    pub fn time(&self) -> Time {
        self.time
    }

    /// The ordered transactions of a requested rollup (empty when it has
    /// none in this block), or `None` if it was not requested.
    pub fn transactions(&self, rollup_id: &RollupId) -> Option<&[Vec<u8>]> {
        self.rollups.get(rollup_id).map(Vec::as_slice)
    }

    /// Every requested rollup with its transactions, sorted by id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&RollupId, &[Vec<u8>])> {
        self.rollups.iter().map(|(id, txs)| (id, txs.as_slice()))
    }

    /// Takes the transactions of every requested rollup.
    pub fn into_rollups(self) -> BTreeMap<RollupId, Vec<Vec<u8>>> {
        self.rollups
    }
}

/// Why a filtered block was rejected. Never execute a block that fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The block claims another block hash than the header's.
    #[error(
        "block hash mismatch: the verified header hashes to {}, the block claims {}",
        hex::encode(header),
        hex::encode(block)
    )]
    BlockHashMismatch {
        /// `header.hash()`.
        header: Hash,
        /// The block's claim.
        block: Hash,
    },
    /// The block claims another height than the header's.
    #[error("height mismatch: the verified header is at {header}, the block claims {block}")]
    HeightMismatch {
        /// The header's height.
        header: u64,
        /// The block's claim.
        block: u64,
    },
    /// The block claims another chain id than the header's.
    #[error("chain id mismatch: the verified header is on `{header}`, the block claims `{block}`")]
    ChainIdMismatch {
        /// The header's chain id.
        header: String,
        /// The block's claim.
        block: String,
    },
    /// The block claims another time than the header's.
    #[error("time mismatch: the verified header has {header}, the block claims {block}")]
    TimeMismatch {
        /// The header's time.
        header: Time,
        /// The block's claim.
        block: Time,
    },
    /// The block claims another proposer than the header's.
    #[error(
        "proposer mismatch: the verified header names {}, the block claims {}",
        hex::encode(header),
        hex::encode(block)
    )]
    ProposerMismatch {
        /// The header's proposer.
        header: [u8; 20],
        /// The block's claim.
        block: [u8; 20],
    },
    /// The header has no `data_hash`, so it commits to no txs.
    #[error("the verified header has no data_hash")]
    MissingDataHash,
    /// The block claims another `data_hash` than the header's.
    #[error(
        "data_hash mismatch: the verified header has {}, the block claims {}",
        hex::encode(header),
        hex::encode(block)
    )]
    DataHashMismatch {
        /// The header's `data_hash`.
        header: Hash,
        /// The block's claim.
        block: Hash,
    },
    /// The commitment proof is not for `txs[0]`.
    #[error("the commitment proof is for tx {leaf_index}, the commitment item is tx 0")]
    CommitmentNotFirst {
        /// The index the proof claims.
        leaf_index: u64,
    },
    /// The commitment item is not proven by `data_hash`.
    #[error("the commitment item is not proven by the header's data_hash: {0}")]
    CommitmentItemNotProven(#[source] ProofError),
    /// The proven `txs[0]` is not a commitment item.
    #[error("txs[0] is proven but is not a valid commitment item: {0}")]
    MalformedCommitmentItem(#[source] CommitmentError),
    /// `all_rollup_ids` is not strictly increasing.
    #[error("all_rollup_ids entry {index} ({rollup_id}) is not after the entry before it")]
    UnsortedRollupIds {
        /// Position of the offending id.
        index: usize,
        /// The id.
        rollup_id: RollupId,
    },
    /// `all_rollup_ids` does not hash to `rollup_ids_root`.
    #[error(
        "all_rollup_ids hash to {}, the commitments say rollup_ids_root is {}",
        hex::encode(computed),
        hex::encode(committed)
    )]
    RollupIdsRootMismatch {
        /// `rollup_ids_root` from the commitments.
        committed: Hash,
        /// MTH of `all_rollup_ids`.
        computed: Hash,
    },
    /// An entry is not after the one before it (reordered or duplicated).
    #[error("rollup entry {index} ({rollup_id}) is out of order or duplicated")]
    ReorderedRollupEntries {
        /// Position of the offending entry.
        index: usize,
        /// Its rollup.
        rollup_id: RollupId,
    },
    /// An entry for a rollup that was not requested.
    #[error("the block holds an entry for rollup {rollup_id}, which was not requested")]
    UnexpectedRollup {
        /// The unexpected rollup.
        rollup_id: RollupId,
    },
    /// An entry for a rollup that `all_rollup_ids` says has no data.
    #[error("the block holds an entry for rollup {rollup_id}, which all_rollup_ids does not list")]
    RollupNotInBlock {
        /// The rollup.
        rollup_id: RollupId,
    },
    /// A requested rollup has data in the block but no entry.
    #[error("rollup {rollup_id} has data in this block, but the block holds no entry for it")]
    MissingRollup {
        /// The rollup whose entry is missing.
        rollup_id: RollupId,
    },
    /// An entry's proof is not at the rollup's position in the tree.
    #[error(
        "the proof of rollup {rollup_id} is for leaf {leaf_index} of {tree_size}, its position \
         is leaf {expected_index} of {expected_size}"
    )]
    RollupProofPosition {
        /// The rollup.
        rollup_id: RollupId,
        /// The proof's index.
        leaf_index: u64,
        /// The proof's tree size.
        tree_size: u64,
        /// The position of the id in `all_rollup_ids`.
        expected_index: u64,
        /// The length of `all_rollup_ids`.
        expected_size: u64,
    },
    /// An entry's transactions are not proven into `rollup_transactions_root`
    /// (tampered, missing, extra or reordered transactions, or a wrong proof).
    #[error(
        "the transactions of rollup {rollup_id} are not proven by rollup_transactions_root: \
         {source}"
    )]
    RollupTransactionsNotProven {
        /// The rollup.
        rollup_id: RollupId,
        /// Why.
        source: ProofError,
    },
}

/// Verifies `block` against the CometBFT `header` (whose commit the caller
/// verified) and returns each requested rollup's ordered transactions.
pub fn verify_filtered_block(
    header: &tendermint::block::Header,
    block: &FilteredSequencerBlock,
    rollup_ids: &[RollupId],
) -> Result<VerifiedRollupData, VerifyError> {
    let data_hash = verify_header(header, block)?;

    // 2. The commitment item is txs[0] under data_hash.
    let proof = block.commitment_proof();
    if proof.leaf_index != 0 {
        return Err(VerifyError::CommitmentNotFirst {
            leaf_index: proof.leaf_index,
        });
    }
    proof
        .verify_leaf_hash(merkle::tx_leaf_hash(block.commitment_item()), &data_hash)
        .map_err(VerifyError::CommitmentItemNotProven)?;
    let commitments = decode_commitment_item(block.commitment_item())
        .map_err(VerifyError::MalformedCommitmentItem)?;

    // 3. all_rollup_ids is exactly the committed, sorted id list.
    let all_ids = block.all_rollup_ids();
    for (index, pair) in all_ids.windows(2).enumerate() {
        if pair[0] >= pair[1] {
            return Err(VerifyError::UnsortedRollupIds {
                index: index + 1,
                rollup_id: pair[1],
            });
        }
    }
    let ids_root = merkle::root(&all_ids.iter().map(RollupId::as_bytes).collect::<Vec<_>>());
    if ids_root != commitments.rollup_ids_root {
        return Err(VerifyError::RollupIdsRootMismatch {
            committed: commitments.rollup_ids_root,
            computed: ids_root,
        });
    }

    // 4. Each entry is requested, listed, in order and proven.
    let requested: BTreeSet<RollupId> = rollup_ids.iter().copied().collect();
    let mut rollups: BTreeMap<RollupId, Vec<Vec<u8>>> =
        requested.iter().map(|id| (*id, Vec::new())).collect();
    let entries = block.rollup_transactions();
    for (index, entry) in entries.iter().enumerate() {
        let rollup_id = *entry.rollup_id();
        if index > 0 && entries[index - 1].rollup_id() >= &rollup_id {
            return Err(VerifyError::ReorderedRollupEntries { index, rollup_id });
        }
        if !requested.contains(&rollup_id) {
            return Err(VerifyError::UnexpectedRollup { rollup_id });
        }
        let position = all_ids
            .binary_search(&rollup_id)
            .map_err(|_| VerifyError::RollupNotInBlock { rollup_id })?;
        let proof = entry.proof();
        let (expected_index, expected_size) = (position as u64, all_ids.len() as u64);
        if proof.leaf_index != expected_index || proof.tree_size != expected_size {
            return Err(VerifyError::RollupProofPosition {
                rollup_id,
                leaf_index: proof.leaf_index,
                tree_size: proof.tree_size,
                expected_index,
                expected_size,
            });
        }
        proof
            .verify(&entry.leaf(), &commitments.rollup_transactions_root)
            .map_err(|source| VerifyError::RollupTransactionsNotProven { rollup_id, source })?;
        rollups.insert(rollup_id, entry.transactions().to_vec());
    }

    // 5. Every requested rollup with data has its entry.
    for rollup_id in &requested {
        let has_data = all_ids.binary_search(rollup_id).is_ok();
        let has_entry = entries
            .binary_search_by(|entry| entry.rollup_id().cmp(rollup_id))
            .is_ok();
        if has_data && !has_entry {
            return Err(VerifyError::MissingRollup {
                rollup_id: *rollup_id,
            });
        }
    }

    Ok(VerifiedRollupData {
        block_hash: *block.block_hash(),
        height: block.height(),
        time: header.time,
        rollups,
    })
}

/// Step 1: the block is the header's block. Returns the header's `data_hash`.
fn verify_header(
    header: &tendermint::block::Header,
    block: &FilteredSequencerBlock,
) -> Result<Hash, VerifyError> {
    let header_hash = header_hash(header);
    if header_hash != *block.block_hash() {
        return Err(VerifyError::BlockHashMismatch {
            header: header_hash,
            block: *block.block_hash(),
        });
    }
    let claimed = block.header();
    if header.height.value() != claimed.height {
        return Err(VerifyError::HeightMismatch {
            header: header.height.value(),
            block: claimed.height,
        });
    }
    if header.chain_id.as_str() != claimed.chain_id {
        return Err(VerifyError::ChainIdMismatch {
            header: header.chain_id.to_string(),
            block: claimed.chain_id.clone(),
        });
    }
    if header.time != claimed.time {
        return Err(VerifyError::TimeMismatch {
            header: header.time,
            block: claimed.time,
        });
    }
    if header.proposer_address.as_bytes() != claimed.proposer_address {
        return Err(VerifyError::ProposerMismatch {
            header: header
                .proposer_address
                .as_bytes()
                .try_into()
                .expect("an account id is always 20 bytes"),
            block: claimed.proposer_address,
        });
    }
    let data_hash = header
        .data_hash
        .and_then(|hash| Hash::try_from(hash.as_bytes()).ok())
        .ok_or(VerifyError::MissingDataHash)?;
    if data_hash != claimed.data_hash {
        return Err(VerifyError::DataHashMismatch {
            header: data_hash,
            block: claimed.data_hash,
        });
    }
    Ok(data_hash)
}

/// The header's hash as 32 bytes (`Header::hash` is always SHA-256).
fn header_hash(header: &tendermint::block::Header) -> Hash {
    Hash::try_from(header.hash().as_bytes()).expect("Header::hash is always a 32-byte SHA-256 hash")
}
