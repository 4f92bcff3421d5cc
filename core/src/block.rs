//! Sequencer blocks as served to rollups: the whole block split per rollup,
//! and the filtered view of a few rollups, each with the proofs a rollup
//! needs to check it (see [`crate::verify`]).

use std::collections::BTreeSet;

use tandem_proto::sequencerblock::v1 as raw;
use tendermint::Time;

use crate::commitments::{
    decode_commitment_item, rollup_transactions_leaf, BlockCommitments, CommitmentError,
    RollupData, MAX_COMMITMENT_ITEM_LEN,
};
use crate::merkle::{Hash, MerkleProof, MerkleProofError, MerkleTree, ProofError};
use crate::rollup_id::RollupIdError;
use crate::RollupId;

/// Longest chain id CometBFT accepts.
pub const MAX_CHAIN_ID_LEN: usize = 50;

/// The CometBFT header fields a rollup needs. The full header comes from the
/// consensus node (with its commit); the block hash binds the two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencerBlockHeader {
    /// CometBFT chain id.
    pub chain_id: String,
    /// Block height.
    pub height: u64,
    /// Block time, from the header.
    pub time: Time,
    /// CometBFT `data_hash`: [`crate::merkle::data_hash`] of every block tx.
    pub data_hash: Hash,
    /// Address of the proposer.
    pub proposer_address: [u8; 20],
}

/// A raw header, block or filtered block that is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// A required message field is absent.
    #[error("field `{0}` is missing")]
    MissingField(&'static str),
    /// A fixed-length byte field has the wrong length.
    #[error("field `{field}` is {len} bytes, expected {expected}")]
    FieldLength {
        /// The field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The required length.
        expected: usize,
    },
    /// The chain id is empty or longer than CometBFT allows.
    #[error("chain id is {len} bytes, it must be 1 to {MAX_CHAIN_ID_LEN}")]
    ChainIdLength {
        /// Its length.
        len: usize,
    },
    /// Height 0 is not a block.
    #[error("height 0 is not a block height")]
    ZeroHeight,
    /// A height above `i64::MAX` cannot be a CometBFT height.
    #[error("height {0} is out of CometBFT's range")]
    HeightOutOfRange(u64),
    /// The timestamp is outside the range CometBFT accepts.
    #[error("block time (seconds {seconds}, nanos {nanos}) is not a valid timestamp")]
    InvalidTime {
        /// Raw seconds.
        seconds: i64,
        /// Raw nanos.
        nanos: i32,
    },
    /// The commitment item is larger than any valid one.
    #[error("commitment item is {len} bytes, at most {max} are accepted")]
    CommitmentItemTooLarge {
        /// Its length.
        len: usize,
        /// [`MAX_COMMITMENT_ITEM_LEN`].
        max: usize,
    },
    /// A proof is malformed.
    #[error("field `{field}` is not a valid merkle proof: {source}")]
    Proof {
        /// Which proof.
        field: &'static str,
        /// Why.
        source: MerkleProofError,
    },
    /// A rollup id is malformed.
    #[error("rollup id in `{field}` entry {index} is invalid: {source}")]
    RollupId {
        /// Which list.
        field: &'static str,
        /// Position in that list.
        index: usize,
        /// Why.
        source: RollupIdError,
    },
    /// A block has no txs, so no commitment item.
    #[error("a sequencer block needs at least one tx (the commitment item)")]
    NoTransactions,
    /// The txs do not hash to the header's `data_hash`.
    #[error(
        "the block txs hash to data_hash {}, the header says {}",
        hex::encode(computed),
        hex::encode(header)
    )]
    DataHashMismatch {
        /// `data_hash` in the header.
        header: Hash,
        /// `data_hash` of the txs.
        computed: Hash,
    },
    /// `txs[0]` is not a commitment item.
    #[error("txs[0] is not a valid commitment item: {0}")]
    CommitmentItem(#[source] CommitmentError),
    /// The commitment item does not commit to the rollup data.
    #[error("the commitment item does not match the block's rollup data")]
    CommitmentsMismatch,
    /// The commitment proof is not at leaf 0 of the `data_hash` tree.
    #[error("the commitment proof does not prove txs[0] under data_hash: {0}")]
    CommitmentProof(#[source] ProofError),
    /// Rollup entries are not strictly sorted by id.
    #[error("rollup entry {index} ({rollup_id}) is not after the entry before it")]
    UnsortedRollups {
        /// Position of the offending entry.
        index: usize,
        /// Its id.
        rollup_id: RollupId,
    },
    /// A rollup entry of a whole block has a proof that is not its own.
    #[error("the proof of rollup {rollup_id} does not prove its transactions: {source}")]
    RollupProof {
        /// The rollup.
        rollup_id: RollupId,
        /// Why.
        source: ProofError,
    },
}

impl SequencerBlockHeader {
    /// Takes the fields from a CometBFT header.
    pub fn from_cometbft_header(header: &tendermint::block::Header) -> Result<Self, BlockError> {
        let data_hash = header
            .data_hash
            .ok_or(BlockError::MissingField("data_hash"))?;
        Ok(Self {
            chain_id: header.chain_id.to_string(),
            height: header.height.value(),
            time: header.time,
            data_hash: hash_field("data_hash", data_hash.as_bytes())?,
            proposer_address: fixed_field("proposer_address", header.proposer_address.as_bytes())?,
        })
    }

    /// Validates a raw header.
    pub fn try_from_raw(raw: raw::SequencerBlockHeader) -> Result<Self, BlockError> {
        if raw.chain_id.is_empty() || raw.chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(BlockError::ChainIdLength {
                len: raw.chain_id.len(),
            });
        }
        if raw.height == 0 {
            return Err(BlockError::ZeroHeight);
        }
        if i64::try_from(raw.height).is_err() {
            return Err(BlockError::HeightOutOfRange(raw.height));
        }
        let ts = raw.time.ok_or(BlockError::MissingField("time"))?;
        let time = Time::try_from(tendermint_proto::google::protobuf::Timestamp {
            seconds: ts.seconds,
            nanos: ts.nanos,
        })
        .map_err(|_| BlockError::InvalidTime {
            seconds: ts.seconds,
            nanos: ts.nanos,
        })?;
        Ok(Self {
            chain_id: raw.chain_id,
            height: raw.height,
            time,
            data_hash: hash_field("data_hash", &raw.data_hash)?,
            proposer_address: fixed_field("proposer_address", &raw.proposer_address)?,
        })
    }

    /// The wire form.
    pub fn to_raw(&self) -> raw::SequencerBlockHeader {
        let ts = tendermint_proto::google::protobuf::Timestamp::from(self.time);
        raw::SequencerBlockHeader {
            chain_id: self.chain_id.clone(),
            height: self.height,
            time: Some(prost_types::Timestamp {
                seconds: ts.seconds,
                nanos: ts.nanos,
            }),
            data_hash: self.data_hash.to_vec(),
            proposer_address: self.proposer_address.to_vec(),
        }
    }
}

fn fixed_field<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], BlockError> {
    <[u8; N]>::try_from(bytes).map_err(|_| BlockError::FieldLength {
        field,
        len: bytes.len(),
        expected: N,
    })
}

fn hash_field(field: &'static str, bytes: &[u8]) -> Result<Hash, BlockError> {
    fixed_field(field, bytes)
}

fn proof_field(
    field: &'static str,
    raw: Option<raw::MerkleProof>,
) -> Result<MerkleProof, BlockError> {
    let raw = raw.ok_or(BlockError::MissingField(field))?;
    MerkleProof::try_from_raw(raw).map_err(|source| BlockError::Proof { field, source })
}

fn commitment_item_field(bytes: Vec<u8>) -> Result<Vec<u8>, BlockError> {
    if bytes.len() > MAX_COMMITMENT_ITEM_LEN {
        return Err(BlockError::CommitmentItemTooLarge {
            len: bytes.len(),
            max: MAX_COMMITMENT_ITEM_LEN,
        });
    }
    Ok(bytes)
}

/// The ordered data of one rollup in one block, with the proof of the leaf
/// `rollup_id ‖ MTH(transactions)` in `rollup_transactions_root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollupTransactions {
    rollup_id: RollupId,
    transactions: Vec<Vec<u8>>,
    proof: MerkleProof,
}

impl RollupTransactions {
    /// The rollup.
    pub fn rollup_id(&self) -> &RollupId {
        &self.rollup_id
    }

    /// Its data items, in block order.
    pub fn transactions(&self) -> &[Vec<u8>] {
        &self.transactions
    }

    /// The proof of its leaf in `rollup_transactions_root`.
    pub fn proof(&self) -> &MerkleProof {
        &self.proof
    }

    /// The leaf this entry claims in `rollup_transactions_root`.
    pub fn leaf(&self) -> [u8; 64] {
        rollup_transactions_leaf(&self.rollup_id, &self.transactions)
    }

    /// Validates the shape of a raw entry (`index` names it in errors).
    fn try_from_raw_at(raw: raw::RollupTransactions, index: usize) -> Result<Self, BlockError> {
        let rollup_id =
            RollupId::try_from_slice(&raw.rollup_id).map_err(|source| BlockError::RollupId {
                field: "rollup_transactions",
                index,
                source,
            })?;
        Ok(Self {
            rollup_id,
            transactions: raw.transactions,
            proof: proof_field("rollup_transactions.proof", raw.proof)?,
        })
    }

    /// Validates the shape of a raw entry. Whether it is proven is checked
    /// by [`crate::verify_filtered_block`].
    pub fn try_from_raw(raw: raw::RollupTransactions) -> Result<Self, BlockError> {
        Self::try_from_raw_at(raw, 0)
    }

    /// The wire form.
    pub fn to_raw(&self) -> raw::RollupTransactions {
        raw::RollupTransactions {
            rollup_id: self.rollup_id.as_bytes().to_vec(),
            transactions: self.transactions.clone(),
            proof: Some(self.proof.to_raw()),
        }
    }
}

/// A whole sequencer block: header fields, the proven commitment item and
/// every rollup's data with its proof. Consistent by construction: built by
/// [`SequencerBlock::new`] from the block's txs, or by `try_from_raw`, which
/// re-checks every proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequencerBlock {
    block_hash: Hash,
    header: SequencerBlockHeader,
    commitment_item: Vec<u8>,
    commitment_proof: MerkleProof,
    commitments: BlockCommitments,
    rollup_transactions: Vec<RollupTransactions>,
}

impl SequencerBlock {
    /// Builds the block from ALL of its txs (`txs[0]` being the commitment
    /// item) and the rollup data the app derived from executing them.
    ///
    /// Checks that the txs hash to `header.data_hash` and that `txs[0]`
    /// commits to exactly `rollup_data`.
    pub fn new(
        header: SequencerBlockHeader,
        block_hash: Hash,
        txs: &[Vec<u8>],
        rollup_data: RollupData,
    ) -> Result<Self, BlockError> {
        let commitment_item = txs.first().ok_or(BlockError::NoTransactions)?;
        Self::from_tx_tree(
            header,
            block_hash,
            commitment_item.clone(),
            &MerkleTree::from_txs(txs),
            rollup_data,
        )
    }

    /// As [`SequencerBlock::new`], for a caller that already built the block's `data_hash`
    /// tree (e.g. with [`MerkleTree::from_tx_hashes`] from tx hashes it had anyway).
    ///
    /// Checks that the tree's root is `header.data_hash`, that its leaf 0 is
    /// `commitment_item` and that `commitment_item` commits to exactly `rollup_data`.
    pub fn from_tx_tree(
        header: SequencerBlockHeader,
        block_hash: Hash,
        commitment_item: Vec<u8>,
        tx_tree: &MerkleTree,
        rollup_data: RollupData,
    ) -> Result<Self, BlockError> {
        if tx_tree.is_empty() {
            return Err(BlockError::NoTransactions);
        }
        if tx_tree.root() != header.data_hash {
            return Err(BlockError::DataHashMismatch {
                header: header.data_hash,
                computed: tx_tree.root(),
            });
        }
        let commitments =
            decode_commitment_item(&commitment_item).map_err(BlockError::CommitmentItem)?;
        let rollup_tree = rollup_data.rollup_transactions_tree();
        if commitments.rollup_transactions_root != rollup_tree.root()
            || commitments.rollup_ids_root != rollup_data.rollup_ids_root()
        {
            return Err(BlockError::CommitmentsMismatch);
        }
        let commitment_proof = tx_tree.proof(0).expect("the tree is not empty");
        commitment_proof
            .verify_leaf_hash(
                crate::merkle::tx_leaf_hash(&commitment_item),
                &header.data_hash,
            )
            .map_err(BlockError::CommitmentProof)?;
        let rollup_transactions = rollup_data
            .into_iter()
            .enumerate()
            .map(|(index, (rollup_id, transactions))| RollupTransactions {
                rollup_id,
                transactions,
                proof: rollup_tree
                    .proof(index)
                    .expect("the tree has one leaf per rollup"),
            })
            .collect();
        Ok(Self {
            block_hash,
            header,
            commitment_item,
            commitment_proof,
            commitments,
            rollup_transactions,
        })
    }

    /// The CometBFT block hash.
    pub fn block_hash(&self) -> &Hash {
        &self.block_hash
    }

    /// The block height.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// The header fields.
    pub fn header(&self) -> &SequencerBlockHeader {
        &self.header
    }

    /// The commitments in `txs[0]`.
    pub fn commitments(&self) -> &BlockCommitments {
        &self.commitments
    }

    /// The encoded commitment item, as in `txs[0]`.
    pub fn commitment_item(&self) -> &[u8] {
        &self.commitment_item
    }

    /// The proof of `txs[0]` under `data_hash`.
    pub fn commitment_proof(&self) -> &MerkleProof {
        &self.commitment_proof
    }

    /// Every rollup's data with its proof, sorted by id.
    pub fn rollup_transactions(&self) -> &[RollupTransactions] {
        &self.rollup_transactions
    }

    /// The rollups with data in this block, sorted.
    pub fn rollup_ids(&self) -> Vec<RollupId> {
        self.rollup_transactions
            .iter()
            .map(|r| r.rollup_id)
            .collect()
    }

    /// The block reduced to `rollup_ids` (the ones without data in this block
    /// get no entry; their absence is shown by `all_rollup_ids`).
    pub fn to_filtered(&self, rollup_ids: &[RollupId]) -> FilteredSequencerBlock {
        let wanted: BTreeSet<&RollupId> = rollup_ids.iter().collect();
        FilteredSequencerBlock {
            block_hash: self.block_hash,
            header: self.header.clone(),
            commitment_item: self.commitment_item.clone(),
            commitment_proof: self.commitment_proof.clone(),
            rollup_transactions: self
                .rollup_transactions
                .iter()
                .filter(|entry| wanted.contains(&entry.rollup_id))
                .cloned()
                .collect(),
            all_rollup_ids: self.rollup_ids(),
        }
    }

    /// Validates a raw block and re-checks it: the commitment item is proven
    /// under `data_hash`, the entries are sorted and each proves its data.
    /// The block hash and the header fields other than `data_hash` cannot be
    /// checked without the full CometBFT header; `verify_filtered_block` binds
    /// them.
    pub fn try_from_raw(raw: raw::SequencerBlock) -> Result<Self, BlockError> {
        let block_hash = hash_field("block_hash", &raw.block_hash)?;
        let header = SequencerBlockHeader::try_from_raw(
            raw.header.ok_or(BlockError::MissingField("header"))?,
        )?;
        let commitment_item = commitment_item_field(raw.commitment_item)?;
        let commitment_proof = proof_field("commitment_proof", raw.commitment_proof)?;
        let commitments =
            decode_commitment_item(&commitment_item).map_err(BlockError::CommitmentItem)?;
        if commitment_proof.leaf_index != 0 {
            return Err(BlockError::CommitmentProof(ProofError::IndexOutOfRange {
                leaf_index: commitment_proof.leaf_index,
                tree_size: commitment_proof.tree_size,
            }));
        }
        commitment_proof
            .verify_leaf_hash(
                crate::merkle::tx_leaf_hash(&commitment_item),
                &header.data_hash,
            )
            .map_err(BlockError::CommitmentProof)?;

        let rollup_transactions = raw
            .rollup_transactions
            .into_iter()
            .enumerate()
            .map(|(index, entry)| RollupTransactions::try_from_raw_at(entry, index))
            .collect::<Result<Vec<_>, _>>()?;
        for (index, pair) in rollup_transactions.windows(2).enumerate() {
            if pair[0].rollup_id >= pair[1].rollup_id {
                return Err(BlockError::UnsortedRollups {
                    index: index + 1,
                    rollup_id: pair[1].rollup_id,
                });
            }
        }
        let rollup_data = RollupData::from_items(rollup_transactions.iter().flat_map(|entry| {
            entry
                .transactions
                .iter()
                .map(|tx| (entry.rollup_id, tx.clone()))
        }));
        // An entry with no transactions is not in `rollup_data`; it makes
        // the commitments differ, as it should.
        if rollup_data.len() != rollup_transactions.len()
            || rollup_data.commitments() != commitments
        {
            return Err(BlockError::CommitmentsMismatch);
        }
        for (index, entry) in rollup_transactions.iter().enumerate() {
            let at_position = entry.proof.leaf_index == index as u64
                && entry.proof.tree_size == rollup_transactions.len() as u64;
            let proven = entry
                .proof
                .verify(&entry.leaf(), &commitments.rollup_transactions_root);
            match (at_position, proven) {
                (_, Err(source)) => {
                    return Err(BlockError::RollupProof {
                        rollup_id: entry.rollup_id,
                        source,
                    })
                }
                (false, Ok(())) => {
                    return Err(BlockError::RollupProof {
                        rollup_id: entry.rollup_id,
                        source: ProofError::IndexOutOfRange {
                            leaf_index: entry.proof.leaf_index,
                            tree_size: entry.proof.tree_size,
                        },
                    })
                }
                (true, Ok(())) => {}
            }
        }
        Ok(Self {
            block_hash,
            header,
            commitment_item,
            commitment_proof,
            commitments,
            rollup_transactions,
        })
    }

    /// The wire form.
    pub fn to_raw(&self) -> raw::SequencerBlock {
        raw::SequencerBlock {
            block_hash: self.block_hash.to_vec(),
            header: Some(self.header.to_raw()),
            commitment_item: self.commitment_item.clone(),
            commitment_proof: Some(self.commitment_proof.to_raw()),
            rollup_transactions: self
                .rollup_transactions
                .iter()
                .map(RollupTransactions::to_raw)
                .collect(),
        }
    }
}

/// A sequencer block reduced to the rollups a client asked for, as received
/// from the wire. Only its shape is validated here; whether it is what the
/// chain committed is checked by [`crate::verify_filtered_block`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilteredSequencerBlock {
    block_hash: Hash,
    header: SequencerBlockHeader,
    commitment_item: Vec<u8>,
    commitment_proof: MerkleProof,
    rollup_transactions: Vec<RollupTransactions>,
    all_rollup_ids: Vec<RollupId>,
}

impl FilteredSequencerBlock {
    /// The CometBFT block hash the block claims.
    pub fn block_hash(&self) -> &Hash {
        &self.block_hash
    }

    /// The block height the block claims.
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// The header fields the block claims.
    pub fn header(&self) -> &SequencerBlockHeader {
        &self.header
    }

    /// The commitment item the block claims was `txs[0]`.
    pub fn commitment_item(&self) -> &[u8] {
        &self.commitment_item
    }

    /// The claimed proof of `txs[0]` under `data_hash`.
    pub fn commitment_proof(&self) -> &MerkleProof {
        &self.commitment_proof
    }

    /// The entries of the requested rollups that have data.
    pub fn rollup_transactions(&self) -> &[RollupTransactions] {
        &self.rollup_transactions
    }

    /// Every rollup id with data in the block, as claimed.
    pub fn all_rollup_ids(&self) -> &[RollupId] {
        &self.all_rollup_ids
    }

    /// Validates the shape of a raw filtered block: lengths of hashes, ids,
    /// proofs and the header. Order, completeness and proofs are checked by
    /// [`crate::verify_filtered_block`].
    pub fn try_from_raw(raw: raw::FilteredSequencerBlock) -> Result<Self, BlockError> {
        let block_hash = hash_field("block_hash", &raw.block_hash)?;
        let header = SequencerBlockHeader::try_from_raw(
            raw.header.ok_or(BlockError::MissingField("header"))?,
        )?;
        let commitment_item = commitment_item_field(raw.commitment_item)?;
        let commitment_proof = proof_field("commitment_proof", raw.commitment_proof)?;
        let rollup_transactions = raw
            .rollup_transactions
            .into_iter()
            .enumerate()
            .map(|(index, entry)| RollupTransactions::try_from_raw_at(entry, index))
            .collect::<Result<Vec<_>, _>>()?;
        let all_rollup_ids = raw
            .all_rollup_ids
            .iter()
            .enumerate()
            .map(|(index, id)| {
                RollupId::try_from_slice(id).map_err(|source| BlockError::RollupId {
                    field: "all_rollup_ids",
                    index,
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            block_hash,
            header,
            commitment_item,
            commitment_proof,
            rollup_transactions,
            all_rollup_ids,
        })
    }

    /// The wire form.
    pub fn to_raw(&self) -> raw::FilteredSequencerBlock {
        raw::FilteredSequencerBlock {
            block_hash: self.block_hash.to_vec(),
            header: Some(self.header.to_raw()),
            commitment_item: self.commitment_item.clone(),
            commitment_proof: Some(self.commitment_proof.to_raw()),
            rollup_transactions: self
                .rollup_transactions
                .iter()
                .map(RollupTransactions::to_raw)
                .collect(),
            all_rollup_ids: self
                .all_rollup_ids
                .iter()
                .map(|id| id.as_bytes().to_vec())
                .collect(),
        }
    }
}
