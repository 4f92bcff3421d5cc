//! RFC 6962 SHA-256 Merkle trees, inclusion proofs and CometBFT's `data_hash`.
//!
//! The tree is the one of RFC 6962 §2.1: `MTH({}) = sha256()`,
//! leaf = `sha256(0x00 ‖ d)`, node = `sha256(0x01 ‖ left ‖ right)`, and a list
//! of `n > 1` leaves splits at the largest power of two smaller than `n`.
//! Built bottom-up, that is the same as pairing neighbours on every level and
//! carrying an unpaired last node up unchanged, which is how [`MerkleTree`]
//! computes each level exactly once.
//!
//! CometBFT (v0.34 through v0.38) uses this same tree: `crypto/merkle`'s
//! `HashFromByteSlices`. Its header `data_hash` is `Txs.Hash()`, the tree over
//! the *sha256 of each tx* (not the raw txs); see [`data_hash`].

use sha2::{Digest as _, Sha256};
use tandem_proto::sequencerblock::v1 as raw;

/// Length of every hash in the tree.
pub const HASH_LEN: usize = 32;

/// Longest audit path accepted from the wire. A tree with at most `2^64`
/// leaves never needs more.
pub const MAX_AUDIT_PATH_LEN: usize = 64;

/// A 32-byte SHA-256 hash.
pub type Hash = [u8; HASH_LEN];

/// Root of the empty tree: `sha256()`.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Leaf hash `sha256(0x00 ‖ data)`.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(data)
        .finalize()
        .into()
}

/// Interior node hash `sha256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 1 + 2 * HASH_LEN];
    buf[0] = 0x01;
    buf[1..=HASH_LEN].copy_from_slice(left);
    buf[1 + HASH_LEN..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// The RFC 6962 root (`MTH`) of `leaves`.
pub fn root<T: AsRef<[u8]>>(leaves: &[T]) -> Hash {
    root_of_leaf_hashes(leaf_hashes(leaves))
}

/// [`leaf_hash`] of every leaf. The `0x00 ‖ leaf` message is copied into one
/// reused buffer so each leaf is a single hasher update.
fn leaf_hashes<T: AsRef<[u8]>>(leaves: &[T]) -> Vec<Hash> {
    let mut message = Vec::new();
    leaves
        .iter()
        .map(|leaf| {
            message.clear();
            message.push(0x00);
            message.extend_from_slice(leaf.as_ref());
            Sha256::digest(&message).into()
        })
        .collect()
}

/// CometBFT v0.38 header `data_hash` of a block's txs: the RFC 6962 root over
/// the leaves `sha256(tx)` (`types.Txs.Hash()`, which calls
/// `merkle.HashFromByteSlices` on each tx's `tmhash`). Zero txs give
/// `sha256()`.
pub fn data_hash<T: AsRef<[u8]>>(txs: &[T]) -> Hash {
    root_of_leaf_hashes(txs.iter().map(|tx| tx_leaf_hash(tx.as_ref())).collect())
}

/// The leaf hash of one tx in the `data_hash` tree: `sha256(0x00 ‖ sha256(tx))`.
pub fn tx_leaf_hash(tx: &[u8]) -> Hash {
    leaf_hash(&Sha256::digest(tx))
}

/// Reduces a level of hashes to the root in place, one level at a time.
fn root_of_leaf_hashes(mut level: Vec<Hash>) -> Hash {
    if level.is_empty() {
        return empty_root();
    }
    while level.len() > 1 {
        let len = level.len();
        for i in 0..len / 2 {
            level[i] = node_hash(&level[2 * i], &level[2 * i + 1]);
        }
        if len % 2 == 1 {
            level[len / 2] = level[len - 1];
        }
        level.truncate(len.div_ceil(2));
    }
    level[0]
}

/// A whole tree kept level by level, so that every inclusion proof is a walk
/// of `log2(n)` lookups with no hashing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    /// `levels[0]` holds the leaf hashes, the last level holds the root.
    /// Empty for the empty tree.
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// Builds the tree over `leaves` (raw leaf data, hashed as leaves here).
    pub fn from_leaves<T: AsRef<[u8]>>(leaves: &[T]) -> Self {
        Self::from_leaf_hashes(leaf_hashes(leaves))
    }

    /// Builds the tree whose `data_hash`-style leaves are `sha256(tx)`; its
    /// root is [`data_hash`] of `txs`.
    pub fn from_txs<T: AsRef<[u8]>>(txs: &[T]) -> Self {
        Self::from_leaf_hashes(txs.iter().map(|tx| tx_leaf_hash(tx.as_ref())).collect())
    }

    /// Builds the `data_hash` tree from the CometBFT hashes (`sha256(tx)`) of the txs, for
    /// a caller that already hashed them; its root equals [`data_hash`] of the txs.
    pub fn from_tx_hashes(tx_hashes: &[Hash]) -> Self {
        Self::from_leaf_hashes(tx_hashes.iter().map(|hash| leaf_hash(hash)).collect())
    }

    /// Builds the tree over already computed leaf hashes.
    pub fn from_leaf_hashes(leaf_hashes: Vec<Hash>) -> Self {
        if leaf_hashes.is_empty() {
            return Self { levels: Vec::new() };
        }
        // ceil(log2(n)) + 1 levels.
        let depth = usize::BITS - (leaf_hashes.len() - 1).leading_zeros();
        let mut levels = Vec::with_capacity(depth as usize + 1);
        levels.push(leaf_hashes);
        loop {
            let below = levels.last().expect("levels starts with the leaves");
            if below.len() == 1 {
                break;
            }
            let next: Vec<Hash> = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node_hash(left, right),
                    [single] => *single,
                    _ => unreachable!("chunks(2) yields one or two items"),
                })
                .collect();
            levels.push(next);
        }
        Self { levels }
    }

    /// Number of leaves.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The root (`sha256()` for the empty tree).
    pub fn root(&self) -> Hash {
        self.levels
            .last()
            .and_then(|top| top.first().copied())
            .unwrap_or_else(empty_root)
    }

    /// The inclusion proof of leaf `index`, or `None` when out of range.
    pub fn proof(&self, index: usize) -> Option<MerkleProof> {
        let tree_size = self.len();
        if index >= tree_size {
            return None;
        }
        let mut audit_path = Vec::with_capacity(self.levels.len().saturating_sub(1));
        let mut i = index;
        for level in &self.levels[..self.levels.len() - 1] {
            if let Some(sibling) = level.get(i ^ 1) {
                audit_path.push(*sibling);
            }
            i >>= 1;
        }
        Some(MerkleProof {
            leaf_index: index as u64,
            tree_size: tree_size as u64,
            audit_path,
        })
    }
}

/// An RFC 6962 inclusion proof: the sibling hashes from the leaf up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleProof {
    /// Index of the proven leaf.
    pub leaf_index: u64,
    /// Number of leaves in the tree.
    pub tree_size: u64,
    /// Sibling hashes from the leaf upwards.
    pub audit_path: Vec<Hash>,
}

/// A proof that does not prove its leaf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// A proof into an empty tree proves nothing.
    #[error("the proof is for an empty tree (tree_size 0)")]
    EmptyTree,
    /// The leaf index is not inside the tree.
    #[error("leaf index {leaf_index} is out of range for a tree of {tree_size} leaves")]
    IndexOutOfRange {
        /// Index claimed by the proof.
        leaf_index: u64,
        /// Tree size claimed by the proof.
        tree_size: u64,
    },
    /// The audit path has the wrong number of hashes for this index and size.
    #[error(
        "the audit path has {actual} hashes, but leaf {leaf_index} of a tree of {tree_size} \
         needs {expected}"
    )]
    PathLength {
        /// Index claimed by the proof.
        leaf_index: u64,
        /// Tree size claimed by the proof.
        tree_size: u64,
        /// Hashes that index and size need.
        expected: usize,
        /// Hashes in the proof.
        actual: usize,
    },
    /// The path leads to a different root.
    #[error(
        "the proof leads to root {}, expected {}",
        hex::encode(computed),
        hex::encode(expected)
    )]
    RootMismatch {
        /// Root the proof was checked against.
        expected: Hash,
        /// Root the leaf and path hash to.
        computed: Hash,
    },
}

/// A raw `MerkleProof` that cannot be a proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MerkleProofError {
    /// `tree_size` is 0.
    #[error("merkle proof has tree_size 0; a proof needs at least one leaf")]
    EmptyTree,
    /// `leaf_index >= tree_size`.
    #[error("merkle proof leaf_index {leaf_index} is not below tree_size {tree_size}")]
    IndexOutOfRange {
        /// The raw index.
        leaf_index: u64,
        /// The raw tree size.
        tree_size: u64,
    },
    /// More hashes than any tree of `u64` size needs.
    #[error("merkle proof audit path has {len} hashes, at most {max} are accepted")]
    PathTooLong {
        /// Hashes in the raw path.
        len: usize,
        /// [`MAX_AUDIT_PATH_LEN`].
        max: usize,
    },
    /// A path entry is not 32 bytes.
    #[error("merkle proof audit path entry {index} is {len} bytes, expected 32")]
    HashLength {
        /// Position in the path.
        index: usize,
        /// Its length.
        len: usize,
    },
}

impl MerkleProof {
    /// Checks that `leaf_data` is leaf `leaf_index` of the tree with `root`.
    pub fn verify(&self, leaf_data: &[u8], root: &Hash) -> Result<(), ProofError> {
        self.verify_leaf_hash(leaf_hash(leaf_data), root)
    }

    /// As [`Self::verify`], for a caller that already holds the leaf hash.
    pub fn verify_leaf_hash(&self, leaf_hash: Hash, root: &Hash) -> Result<(), ProofError> {
        let computed = self.root_from_leaf_hash(leaf_hash)?;
        if computed == *root {
            Ok(())
        } else {
            Err(ProofError::RootMismatch {
                expected: *root,
                computed,
            })
        }
    }

    /// The root that `leaf_hash` and this path hash to.
    pub fn root_from_leaf_hash(&self, leaf_hash: Hash) -> Result<Hash, ProofError> {
        let (leaf_index, tree_size) = (self.leaf_index, self.tree_size);
        if tree_size == 0 {
            return Err(ProofError::EmptyTree);
        }
        if leaf_index >= tree_size {
            return Err(ProofError::IndexOutOfRange {
                leaf_index,
                tree_size,
            });
        }
        let expected = audit_path_len(leaf_index, tree_size);
        if self.audit_path.len() != expected {
            return Err(ProofError::PathLength {
                leaf_index,
                tree_size,
                expected,
                actual: self.audit_path.len(),
            });
        }
        // Walk up the levels as `MerkleTree` built them: a node whose sibling
        // exists is hashed with it, an unpaired last node is carried up.
        let mut hash = leaf_hash;
        let mut path = self.audit_path.iter();
        let (mut i, mut n) = (leaf_index, tree_size);
        while n > 1 {
            if (i ^ 1) < n {
                let sibling = path.next().expect("path length checked above");
                hash = if i & 1 == 1 {
                    node_hash(sibling, &hash)
                } else {
                    node_hash(&hash, sibling)
                };
            }
            i >>= 1;
            n = n.div_ceil(2);
        }
        Ok(hash)
    }

    /// Validates a raw proof's shape (the hashes are checked by `verify`).
    pub fn try_from_raw(raw: raw::MerkleProof) -> Result<Self, MerkleProofError> {
        let raw::MerkleProof {
            leaf_index,
            tree_size,
            audit_path,
        } = raw;
        if tree_size == 0 {
            return Err(MerkleProofError::EmptyTree);
        }
        if leaf_index >= tree_size {
            return Err(MerkleProofError::IndexOutOfRange {
                leaf_index,
                tree_size,
            });
        }
        if audit_path.len() > MAX_AUDIT_PATH_LEN {
            return Err(MerkleProofError::PathTooLong {
                len: audit_path.len(),
                max: MAX_AUDIT_PATH_LEN,
            });
        }
        let audit_path = audit_path
            .iter()
            .enumerate()
            .map(|(index, hash)| {
                Hash::try_from(hash.as_slice()).map_err(|_| MerkleProofError::HashLength {
                    index,
                    len: hash.len(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            leaf_index,
            tree_size,
            audit_path,
        })
    }

    /// The wire form.
    pub fn to_raw(&self) -> raw::MerkleProof {
        raw::MerkleProof {
            leaf_index: self.leaf_index,
            tree_size: self.tree_size,
            audit_path: self.audit_path.iter().map(|hash| hash.to_vec()).collect(),
        }
    }
}

/// How many siblings leaf `index` of a tree of `size` leaves has on its way up.
fn audit_path_len(index: u64, size: u64) -> usize {
    let (mut i, mut n, mut len) = (index, size, 0);
    while n > 1 {
        if (i ^ 1) < n {
            len += 1;
        }
        i >>= 1;
        n = n.div_ceil(2);
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recursive definition of RFC 6962 §2.1, as an independent oracle.
    fn mth(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaf_hash(&leaves[0]),
            n => {
                let k = n.next_power_of_two() / 2;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
    }

    #[test]
    fn levels_match_the_recursive_definition() {
        for n in 0..=70 {
            let leaves = leaves(n);
            let tree = MerkleTree::from_leaves(&leaves);
            assert_eq!(tree.root(), mth(&leaves), "n = {n}");
            assert_eq!(root(&leaves), mth(&leaves), "n = {n}");
            assert_eq!(tree.len(), n);
        }
    }

    #[test]
    fn path_length_matches_built_proofs() {
        for n in 1..=40usize {
            let tree = MerkleTree::from_leaves(&leaves(n));
            for i in 0..n {
                let proof = tree.proof(i).expect("in range");
                assert_eq!(proof.audit_path.len(), audit_path_len(i as u64, n as u64));
            }
        }
        assert_eq!(audit_path_len(0, u64::MAX), 64);
        assert_eq!(audit_path_len(u64::MAX - 1, u64::MAX), 63);
    }

    #[test]
    fn proof_out_of_range_is_none() {
        let tree = MerkleTree::from_leaves(&leaves(3));
        assert!(tree.proof(3).is_none());
        assert!(MerkleTree::from_leaves::<Vec<u8>>(&[]).proof(0).is_none());
    }

    #[test]
    fn data_hash_hashes_each_tx_first() {
        let txs = leaves(5);
        let hashed: Vec<Vec<u8>> = txs.iter().map(|tx| Sha256::digest(tx).to_vec()).collect();
        assert_eq!(data_hash(&txs), mth(&hashed));
        assert_eq!(MerkleTree::from_txs(&txs).root(), data_hash(&txs));
    }
}
