//! The commitments a proposer puts in `txs[0]` of every block, and the
//! per-rollup data they commit to.
//!
//! From the executed block's ordered `(rollup_id, data)` items:
//! - per rollup (sorted by id), the ordered data items;
//! - `rollup_transactions_root` = MTH over the leaves
//!   `rollup_id ‖ MTH(that rollup's data items)`, one per rollup;
//! - `rollup_ids_root` = MTH over the sorted ids.
//!
//! The item is encoded as a `tandem.sequencerblock.v1.DataItem`, and only its
//! canonical protobuf encoding is accepted, so one set of commitments has
//! exactly one valid `txs[0]`.

use std::collections::BTreeMap;

use prost::Message as _;
use tandem_proto::sequencerblock::v1::{self as raw, data_item};

use crate::merkle::{self, Hash, MerkleTree};
use crate::RollupId;

/// Largest commitment item accepted for decoding. The canonical item is 70
/// bytes.
pub const MAX_COMMITMENT_ITEM_LEN: usize = 256;

/// The two roots committed to in `txs[0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockCommitments {
    /// MTH over `rollup_id ‖ MTH(rollup data items)`, one leaf per rollup,
    /// sorted by rollup id.
    pub rollup_transactions_root: Hash,
    /// MTH over the sorted rollup ids of the block.
    pub rollup_ids_root: Hash,
}

/// Bytes that are not a valid commitment item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentError {
    /// The item is longer than [`MAX_COMMITMENT_ITEM_LEN`].
    #[error("commitment item is {len} bytes, at most {max} are accepted")]
    TooLarge {
        /// Length of the item.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a protobuf `DataItem`.
    #[error("commitment item is not a protobuf DataItem: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The `DataItem` holds no commitments.
    #[error("commitment item DataItem has no `commitments` value")]
    MissingCommitments,
    /// A root is not 32 bytes.
    #[error("commitment item field `{field}` is {len} bytes, expected 32")]
    RootLength {
        /// The field name.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// The bytes decode, but are not the canonical encoding of what they hold.
    #[error(
        "commitment item is not canonically encoded (unknown fields, defaults written out or \
         fields out of order)"
    )]
    NonCanonical,
}

impl BlockCommitments {
    /// Validates raw commitments.
    pub fn try_from_raw(raw: raw::BlockCommitments) -> Result<Self, CommitmentError> {
        Ok(Self {
            rollup_transactions_root: root_field(
                "rollup_transactions_root",
                raw.rollup_transactions_root,
            )?,
            rollup_ids_root: root_field("rollup_ids_root", raw.rollup_ids_root)?,
        })
    }

    /// The wire form.
    pub fn to_raw(&self) -> raw::BlockCommitments {
        raw::BlockCommitments {
            rollup_transactions_root: self.rollup_transactions_root.to_vec(),
            rollup_ids_root: self.rollup_ids_root.to_vec(),
        }
    }
}

fn root_field(field: &'static str, bytes: Vec<u8>) -> Result<Hash, CommitmentError> {
    Hash::try_from(bytes).map_err(|bytes| CommitmentError::RootLength {
        field,
        len: bytes.len(),
    })
}

/// The encoded `DataItem` that goes in `txs[0]`.
pub fn commitment_item_bytes(commitments: &BlockCommitments) -> Vec<u8> {
    raw::DataItem {
        value: Some(data_item::Value::Commitments(commitments.to_raw())),
    }
    .encode_to_vec()
}

/// Decodes `txs[0]`, accepting only the canonical encoding.
pub fn decode_commitment_item(bytes: &[u8]) -> Result<BlockCommitments, CommitmentError> {
    if bytes.len() > MAX_COMMITMENT_ITEM_LEN {
        return Err(CommitmentError::TooLarge {
            len: bytes.len(),
            max: MAX_COMMITMENT_ITEM_LEN,
        });
    }
    let item = raw::DataItem::decode(bytes)?;
    let Some(data_item::Value::Commitments(raw)) = item.value else {
        return Err(CommitmentError::MissingCommitments);
    };
    let commitments = BlockCommitments::try_from_raw(raw)?;
    if commitment_item_bytes(&commitments) != bytes {
        return Err(CommitmentError::NonCanonical);
    }
    Ok(commitments)
}

/// The leaf of one rollup in `rollup_transactions_root`:
/// `rollup_id ‖ MTH(transactions)`.
pub fn rollup_transactions_leaf<T: AsRef<[u8]>>(
    rollup_id: &RollupId,
    transactions: &[T],
) -> [u8; 64] {
    let mut leaf = [0u8; 64];
    leaf[..32].copy_from_slice(rollup_id.as_bytes());
    leaf[32..].copy_from_slice(&merkle::root(transactions));
    leaf
}

/// The data of one block, grouped per rollup (sorted by id), each rollup's
/// items in block order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupData {
    rollups: BTreeMap<RollupId, Vec<Vec<u8>>>,
}

impl RollupData {
    /// Groups a block's ordered `(rollup_id, data)` items per rollup, keeping
    /// the order of items within each rollup.
    pub fn from_items(items: impl IntoIterator<Item = (RollupId, Vec<u8>)>) -> Self {
        let mut rollups: BTreeMap<RollupId, Vec<Vec<u8>>> = BTreeMap::new();
        for (rollup_id, data) in items {
            rollups.entry(rollup_id).or_default().push(data);
        }
        Self { rollups }
    }

    /// The commitments of this data.
    pub fn commitments(&self) -> BlockCommitments {
        BlockCommitments {
            rollup_transactions_root: self.rollup_transactions_tree().root(),
            rollup_ids_root: self.rollup_ids_root(),
        }
    }

    /// MTH over the sorted rollup ids.
    pub fn rollup_ids_root(&self) -> Hash {
        let ids: Vec<&[u8; 32]> = self.rollups.keys().map(RollupId::as_bytes).collect();
        merkle::root(&ids)
    }

    /// The tree behind `rollup_transactions_root`; leaf `i` belongs to the
    /// `i`-th rollup in id order.
    pub fn rollup_transactions_tree(&self) -> MerkleTree {
        let leaves: Vec<[u8; 64]> = self
            .rollups
            .iter()
            .map(|(rollup_id, txs)| rollup_transactions_leaf(rollup_id, txs))
            .collect();
        MerkleTree::from_leaves(&leaves)
    }

    /// The rollups with data, sorted.
    pub fn rollup_ids(&self) -> Vec<RollupId> {
        self.rollups.keys().copied().collect()
    }

    /// The ordered data items of `rollup_id`, if it has any.
    pub fn transactions(&self, rollup_id: &RollupId) -> Option<&[Vec<u8>]> {
        self.rollups.get(rollup_id).map(Vec::as_slice)
    }

    /// Every rollup with its items, sorted by id.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&RollupId, &[Vec<u8>])> {
        self.rollups.iter().map(|(id, txs)| (id, txs.as_slice()))
    }

    /// Number of rollups with data.
    pub fn len(&self) -> usize {
        self.rollups.len()
    }

    /// Whether no rollup has data.
    pub fn is_empty(&self) -> bool {
        self.rollups.is_empty()
    }
}

impl IntoIterator for RollupData {
    type Item = (RollupId, Vec<Vec<u8>>);
    type IntoIter = std::collections::btree_map::IntoIter<RollupId, Vec<Vec<u8>>>;

    /// Every rollup with its items, sorted by id.
    fn into_iter(self) -> Self::IntoIter {
        self.rollups.into_iter()
    }
}

impl FromIterator<(RollupId, Vec<u8>)> for RollupData {
    fn from_iter<I: IntoIterator<Item = (RollupId, Vec<u8>)>>(iter: I) -> Self {
        Self::from_items(iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BlockCommitments {
        BlockCommitments {
            rollup_transactions_root: [7; 32],
            rollup_ids_root: [9; 32],
        }
    }

    #[test]
    fn item_round_trips() {
        let bytes = commitment_item_bytes(&sample());
        assert_eq!(bytes.len(), 70);
        assert_eq!(decode_commitment_item(&bytes), Ok(sample()));
    }

    #[test]
    fn item_rejections() {
        let mut bytes = commitment_item_bytes(&sample());
        bytes.extend_from_slice(&[0x20, 0x01]); // unknown field 4, varint 1
        assert_eq!(
            decode_commitment_item(&bytes),
            Err(CommitmentError::NonCanonical)
        );
        assert_eq!(
            decode_commitment_item(&[]),
            Err(CommitmentError::MissingCommitments)
        );
        assert!(matches!(
            decode_commitment_item(&[0xff; 3]),
            Err(CommitmentError::Decode(_))
        ));
        assert!(matches!(
            decode_commitment_item(&[0; MAX_COMMITMENT_ITEM_LEN + 1]),
            Err(CommitmentError::TooLarge { len: 257, .. })
        ));
        let short = raw::DataItem {
            value: Some(data_item::Value::Commitments(raw::BlockCommitments {
                rollup_transactions_root: vec![1; 31],
                rollup_ids_root: vec![2; 32],
            })),
        }
        .encode_to_vec();
        assert_eq!(
            decode_commitment_item(&short),
            Err(CommitmentError::RootLength {
                field: "rollup_transactions_root",
                len: 31
            })
        );
    }

    #[test]
    fn rollup_data_groups_in_order_and_sorts_ids() {
        let (a, b) = (RollupId::new([2; 32]), RollupId::new([1; 32]));
        let data = RollupData::from_items([
            (a, b"a0".to_vec()),
            (b, b"b0".to_vec()),
            (a, b"a1".to_vec()),
        ]);
        assert_eq!(data.rollup_ids(), vec![b, a]);
        assert_eq!(
            data.transactions(&a),
            Some(&[b"a0".to_vec(), b"a1".to_vec()][..])
        );
        let commitments = data.commitments();
        assert_eq!(
            commitments.rollup_ids_root,
            merkle::root(&[[1u8; 32], [2u8; 32]])
        );
        let leaves = [
            rollup_transactions_leaf(&b, &[b"b0".to_vec()]),
            rollup_transactions_leaf(&a, &[b"a0".to_vec(), b"a1".to_vec()]),
        ];
        assert_eq!(commitments.rollup_transactions_root, merkle::root(&leaves));
    }

    #[test]
    fn empty_rollup_data_commits_to_empty_roots() {
        let commitments = RollupData::default().commitments();
        assert_eq!(commitments.rollup_ids_root, merkle::empty_root());
        assert_eq!(commitments.rollup_transactions_root, merkle::empty_root());
    }
}
