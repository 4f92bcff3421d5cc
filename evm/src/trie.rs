//! Merkle-Patricia trie roots with every leaf hashed in one batch.
//!
//! alloy-trie's `HashBuilder` hashes each node as it completes it, one at a time. Most of a
//! block's trie hashing is leaves (one per account, transaction or receipt), and a leaf's
//! encoding depends only on its key, its value and how many nibbles it shares with its two
//! neighbours in key order. [`ordered_root`] and [`OrderedRoot`] therefore encode the leaves
//! first and hash them together with [`tandem_keccak::keccak256_many`] (eight per pass on
//! AVX-512), then build the extension and branch nodes above them; [`OrderedShape`] lets
//! several threads hash the leaves of one ordered trie, each a range of indices. The result
//! is the same root; the tests check it against alloy-trie. [`Leaves`] and [`root_hash`] also serve the
//! persistent state tries ([`crate::hashed_trie`]).

use alloy_primitives::{keccak256, B256};
use alloy_rlp::Encodable as _;
use alloy_trie::{
    nodes::{BranchNodeRef, ExtensionNodeRef, LeafNodeRef, RlpNode},
    Nibbles, TrieMask, EMPTY_ROOT_HASH,
};

/// The root of the trie with a leaf at each of `keys`, holding the bytes `value(i, buf)`
/// writes for `keys[i]`.
///
/// `keys` must be sorted, distinct and prefix-free (no key starts another), as the keys of
/// one trie always are: hashed keys all have 64 nibbles, and RLP-encoded indices are
/// prefix-free. (The tries of blocks use [`ordered_root`] and
/// [`crate::hashed_trie::HashedTrie`]; this one checks the shared builder on hashed keys.)
#[cfg(test)]
pub(crate) fn root(keys: &[Nibbles], mut value: impl FnMut(usize, &mut Vec<u8>)) -> B256 {
    debug_assert!(
        keys.windows(2)
            .all(|w| w[0] < w[1] && w[0].common_prefix_length(&w[1]) < w[0].len()),
        "keys are sorted and prefix-free"
    );
    if keys.is_empty() {
        return EMPTY_ROOT_HASH;
    }
    let depths = leaf_depths(keys);
    let mut leaves = Leaves::with_capacity(keys.len());
    let mut leaf_value = Vec::with_capacity(128);
    for (i, key) in keys.iter().enumerate() {
        leaf_value.clear();
        value(i, &mut leaf_value);
        leaves.push(i, &key.slice(depths[i]..), &leaf_value);
    }
    let mut references = vec![None; keys.len()];
    leaves.hash_into(&mut references);
    let references: Vec<RlpNode> = references
        .into_iter()
        .map(|r| r.expect("every leaf was hashed"))
        .collect();
    root_above(keys, &references)
}

/// The depth of each leaf: one nibble below the deeper of the branches that separate it from
/// its neighbours in key order (0 for a lone leaf).
fn leaf_depths(keys: &[Nibbles]) -> Vec<usize> {
    if keys.len() == 1 {
        return vec![0];
    }
    // Nibbles each key shares with the next.
    let shared: Vec<usize> = keys
        .windows(2)
        .map(|w| w[0].common_prefix_length(&w[1]))
        .collect();
    (0..keys.len())
        .map(|i| {
            let before = if i == 0 { 0 } else { shared[i - 1] };
            let after = shared.get(i).copied().unwrap_or(0);
            before.max(after) + 1
        })
        .collect()
}

/// The root over leaves whose references are `references` (in key order).
fn root_above(keys: &[Nibbles], references: &[RlpNode]) -> B256 {
    if let [only] = references {
        // A lone leaf is the root.
        return root_hash(only);
    }
    let builder = Builder {
        keys,
        leaves: references,
    };
    let mut node = Vec::with_capacity(600);
    builder.encode(0, keys.len(), 0, &mut node);
    keccak256(&node)
}

/// The hash of a trie whose root node has `reference`: the root is always referred to by its
/// hash, even when its encoding is under 32 bytes (and so its reference is the node itself).
pub(crate) fn root_hash(reference: &RlpNode) -> B256 {
    reference
        .as_hash()
        .unwrap_or_else(|| keccak256(reference.as_slice()))
}

/// Encoded leaves waiting to be hashed together, each with the position of its reference.
/// Also used by [`crate::hashed_trie`] for the leaves a change left without a hash.
pub(crate) struct Leaves {
    encoded: Vec<u8>,
    /// `(position, end of its encoding in encoded)`.
    ends: Vec<(usize, usize)>,
}

impl Leaves {
    pub(crate) fn with_capacity(count: usize) -> Self {
        Self {
            encoded: Vec::with_capacity(count * 128),
            ends: Vec::with_capacity(count),
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Adds the leaf with `path` (the rest of its key below its branch) and `value`, whose
    /// reference goes to `position`.
    pub(crate) fn push(&mut self, position: usize, path: &Nibbles, value: &[u8]) {
        self.push_node(position, |buf| LeafNodeRef::new(path, value).encode(buf));
    }

    /// Adds the node that `encode` writes (any kind), whose reference goes to `position`.
    pub(crate) fn push_node(&mut self, position: usize, encode: impl FnOnce(&mut Vec<u8>)) {
        encode(&mut self.encoded);
        self.ends.push((position, self.encoded.len()));
    }

    /// Sets `references[position]` of every leaf: its hash (all hashed in one batch), or the
    /// leaf itself when under 32 bytes. Leaves none waiting.
    pub(crate) fn hash_into(&mut self, references: &mut [Option<RlpNode>]) {
        let mut start = 0;
        let spans: Vec<(usize, &[u8])> = self
            .ends
            .iter()
            .map(|(position, end)| {
                let span = (*position, &self.encoded[start..*end]);
                start = *end;
                span
            })
            .collect();
        let long: Vec<&[u8]> = spans
            .iter()
            .map(|(_, leaf)| *leaf)
            .filter(|leaf| leaf.len() >= 32)
            .collect();
        let mut hashes = tandem_keccak::keccak256_many(&long).into_iter();
        for (position, leaf) in spans {
            references[position] = Some(if leaf.len() >= 32 {
                RlpNode::word_rlp(&hashes.next().expect("one hash per long leaf"))
            } else {
                RlpNode::from_rlp(leaf)
            });
        }
        self.encoded.clear();
        self.ends.clear();
    }
}

/// The RLP encoding of each index `0..count` as a trie key, sorted, with the sorted position
/// of each index.
fn index_keys(count: usize) -> (Vec<Nibbles>, Vec<usize>) {
    let mut keyed: Vec<(Nibbles, usize)> = (0..count)
        .map(|i| {
            let mut key = Vec::with_capacity(9);
            i.encode(&mut key);
            (Nibbles::unpack(&key), i)
        })
        .collect();
    keyed.sort_unstable();
    let mut positions = vec![0; count];
    for (position, (_, index)) in keyed.iter().enumerate() {
        positions[*index] = position;
    }
    (keyed.into_iter().map(|(key, _)| key).collect(), positions)
}

/// The root of the trie that maps the RLP encoding of each index `i` to `encode(items[i])`:
/// the transactions, receipts and withdrawals tries.
pub(crate) fn ordered_root<T>(items: &[T], mut encode: impl FnMut(&T, &mut Vec<u8>)) -> B256 {
    let mut root = OrderedRoot::new(items.len());
    for item in items {
        root.push(|buf| encode(item, buf));
    }
    root.finish().expect("one item per index")
}

/// The shape of an ordered trie ([`ordered_root`]) of a known number of items: the key of each
/// index, and the depth of each leaf. It depends only on the count, so any leaf can be encoded
/// and hashed before the others exist, in any order and on any thread.
pub(crate) struct OrderedShape {
    keys: Vec<Nibbles>,
    /// The sorted position of each index.
    positions: Vec<usize>,
    /// The depth of the leaf at each sorted position.
    depths: Vec<usize>,
}

impl OrderedShape {
    /// The shape of the ordered trie of `count` items.
    pub(crate) fn new(count: usize) -> Self {
        let (keys, positions) = index_keys(count);
        let depths = if count == 0 {
            vec![]
        } else {
            leaf_depths(&keys)
        };
        Self {
            keys,
            positions,
            depths,
        }
    }

    /// The sorted position of item `index`, and its leaf's path (the rest of its key).
    fn leaf_path(&self, index: usize) -> (usize, Nibbles) {
        let position = self.positions[index];
        (position, self.keys[position].slice(self.depths[position]..))
    }

    /// The references of the leaves of `items`, the items at indices `first..`, hashed in one
    /// batch; each item's value is what `encode` writes.
    pub(crate) fn leaves<T>(
        &self,
        first: usize,
        items: &[T],
        mut encode: impl FnMut(&T, &mut Vec<u8>),
    ) -> Vec<RlpNode> {
        let mut batch = Leaves::with_capacity(items.len());
        let mut value = Vec::with_capacity(128);
        for (offset, item) in items.iter().enumerate() {
            value.clear();
            encode(item, &mut value);
            let (_, path) = self.leaf_path(first + offset);
            batch.push(offset, &path, &value);
        }
        let mut references = vec![None; items.len()];
        batch.hash_into(&mut references);
        references
            .into_iter()
            .map(|reference| reference.expect("every leaf was hashed"))
            .collect()
    }

    /// The root over the leaves whose references are `leaves`, in index order; `None` unless
    /// there is one per item.
    pub(crate) fn root(&self, leaves: Vec<RlpNode>) -> Option<B256> {
        if leaves.len() != self.keys.len() {
            return None;
        }
        let mut sorted = vec![None; leaves.len()];
        for (index, leaf) in leaves.into_iter().enumerate() {
            sorted[self.positions[index]] = Some(leaf);
        }
        self.root_of_sorted(sorted)
    }

    /// The root over the leaves whose references are `sorted`, in key order; `None` if one
    /// is missing.
    fn root_of_sorted(&self, sorted: Vec<Option<RlpNode>>) -> Option<B256> {
        if sorted.is_empty() {
            return Some(EMPTY_ROOT_HASH);
        }
        let sorted: Vec<RlpNode> = sorted.into_iter().collect::<Option<_>>()?;
        Some(root_above(&self.keys, &sorted))
    }
}

/// The root of an ordered trie ([`ordered_root`]) of a known number of items, built as they
/// come in index order: each leaf is encoded as soon as its item is pushed ([`OrderedShape`]),
/// and hashed with others in batches of [`OrderedRoot::BATCH`]. Only the branches are left
/// for [`OrderedRoot::finish`].
pub(crate) struct OrderedRoot {
    shape: OrderedShape,
    /// The reference of the leaf at each sorted position.
    references: Vec<Option<RlpNode>>,
    pending: Leaves,
    pushed: usize,
    value: Vec<u8>,
}

impl OrderedRoot {
    /// Leaves hashed together.
    const BATCH: usize = 64;

    /// A root over `count` items, none pushed yet.
    pub(crate) fn new(count: usize) -> Self {
        Self {
            shape: OrderedShape::new(count),
            references: vec![None; count],
            pending: Leaves::with_capacity(Self::BATCH),
            pushed: 0,
            value: Vec::with_capacity(128),
        }
    }

    /// Adds the next item, whose value `encode` writes. Items beyond the count are counted
    /// but otherwise ignored: [`OrderedRoot::finish`] then gives `None`.
    pub(crate) fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        let index = self.pushed;
        self.pushed += 1;
        if index >= self.references.len() {
            return;
        }
        self.value.clear();
        encode(&mut self.value);
        let (position, path) = self.shape.leaf_path(index);
        self.pending.push(position, &path, &self.value);
        if self.pending.len() == Self::BATCH {
            self.pending.hash_into(&mut self.references);
        }
    }

    /// The root, or `None` unless exactly the announced number of items was pushed.
    pub(crate) fn finish(mut self) -> Option<B256> {
        if self.pushed != self.references.len() {
            return None;
        }
        self.pending.hash_into(&mut self.references);
        self.shape.root_of_sorted(self.references)
    }
}

/// The nodes above the leaves.
struct Builder<'a> {
    keys: &'a [Nibbles],
    /// The reference to each leaf: its hash, or the leaf itself when under 32 bytes.
    leaves: &'a [RlpNode],
}

impl Builder<'_> {
    /// Writes the node that holds the leaves `start..end` (two or more, sharing at least
    /// `depth` nibbles) at `depth`: an extension when they share more, else a branch.
    fn encode(&self, start: usize, end: usize, depth: usize, out: &mut Vec<u8>) {
        let shared = self.keys[start].common_prefix_length(&self.keys[end - 1]);
        if shared == depth {
            self.branch(start, end, depth, out);
        } else {
            let mut branch = Vec::with_capacity(600);
            self.branch(start, end, shared, &mut branch);
            let child = RlpNode::from_rlp(&branch);
            let path = self.keys[start].slice(depth..shared);
            ExtensionNodeRef::new(&path, &child).encode(out);
        }
    }

    /// Writes the branch at `depth` over the leaves `start..end`, which differ at that nibble.
    fn branch(&self, start: usize, end: usize, depth: usize, out: &mut Vec<u8>) {
        let mut children = Vec::with_capacity(16);
        let mut mask = TrieMask::default();
        let mut first = start;
        while first < end {
            let nibble = self.keys[first].get_unchecked(depth);
            let mut last = first + 1;
            while last < end && self.keys[last].get_unchecked(depth) == nibble {
                last += 1;
            }
            mask.set_bit(nibble);
            children.push(if last - first == 1 {
                self.leaves[first].clone()
            } else {
                let mut child = Vec::with_capacity(600);
                self.encode(first, last, depth + 1, &mut child);
                RlpNode::from_rlp(&child)
            });
            first = last;
        }
        BranchNodeRef::new(&children, mask).encode(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_trie::HashBuilder;
    use proptest::prelude::*;

    fn reference(keys: &[Nibbles], values: &[Vec<u8>]) -> B256 {
        let mut builder = HashBuilder::default();
        for (key, value) in keys.iter().zip(values) {
            builder.add_leaf(*key, value);
        }
        builder.root()
    }

    fn hashed_trie(seeds: &[u64], value_len: usize) -> (Vec<Nibbles>, Vec<Vec<u8>>) {
        let mut keys: Vec<B256> = seeds.iter().map(|s| keccak256(s.to_be_bytes())).collect();
        keys.sort_unstable();
        keys.dedup();
        let values = keys
            .iter()
            .map(|k| k.iter().cycle().take(value_len).copied().collect())
            .collect();
        (keys.iter().map(Nibbles::unpack).collect(), values)
    }

    #[test]
    fn empty_and_single_leaf() {
        assert_eq!(root(&[], |_, _| unreachable!()), EMPTY_ROOT_HASH);
        let (keys, values) = hashed_trie(&[7], 40);
        assert_eq!(
            root(&keys, |i, buf| buf.extend_from_slice(&values[i])),
            reference(&keys, &values)
        );
    }

    #[test]
    fn keys_sharing_long_prefixes_get_extensions() {
        // Keys that agree on their first 30 nibbles, then split three ways, then again.
        let mut keys: Vec<Nibbles> = [[0xab; 32], [0xab; 32], [0xab; 32], [0xab; 32]]
            .into_iter()
            .enumerate()
            .map(|(i, mut key)| {
                key[15] = [0x01, 0x02, 0x02, 0xf0][i];
                key[31] = u8::try_from(i).unwrap();
                Nibbles::unpack(key)
            })
            .collect();
        keys.sort_unstable();
        let values: Vec<Vec<u8>> = (0..keys.len()).map(|i| vec![1; i + 1]).collect();
        assert_eq!(
            root(&keys, |i, buf| buf.extend_from_slice(&values[i])),
            reference(&keys, &values)
        );
    }

    #[test]
    fn ordered_root_needs_exactly_its_count() {
        let values: Vec<Vec<u8>> = (0..70u8).map(|i| vec![i; 40]).collect();
        let push_all = |count: usize, items: &[Vec<u8>]| {
            let mut root = OrderedRoot::new(count);
            for item in items {
                root.push(|buf| buf.extend_from_slice(item));
            }
            root.finish()
        };
        let expected = alloy_trie::root::ordered_trie_root_with_encoder(&values, |v, buf| {
            buf.extend_from_slice(v);
        });
        assert_eq!(push_all(70, &values), Some(expected));
        assert_eq!(push_all(71, &values), None);
        assert_eq!(push_all(69, &values), None);
        assert_eq!(push_all(0, &[]), Some(EMPTY_ROOT_HASH));
    }

    proptest! {
        #[test]
        fn hashed_keys_give_alloys_root(
            seeds in prop::collection::vec(any::<u64>(), 0..400),
            value_len in 1usize..120,
        ) {
            let (keys, values) = hashed_trie(&seeds, value_len);
            prop_assert_eq!(
                root(&keys, |i, buf| buf.extend_from_slice(&values[i])),
                reference(&keys, &values)
            );
        }

        /// Short keys and values: leaves and branches under 32 bytes are inlined.
        #[test]
        fn ordered_tries_give_alloys_root(
            values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..300),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        ) {
            let ours = ordered_root(&values, |value, buf| buf.extend_from_slice(value));
            let theirs = alloy_trie::root::ordered_trie_root_with_encoder(&values, |value, buf| {
                buf.extend_from_slice(value);
            });
            prop_assert_eq!(ours, theirs);
            // The leaves hashed in pieces (as threads would), then the root over them all.
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(values.len() + 1)).collect();
            cuts.extend([0, values.len()]);
            cuts.sort_unstable();
            let shape = OrderedShape::new(values.len());
            let leaves: Vec<RlpNode> = cuts
                .windows(2)
                .flat_map(|piece| {
                    shape.leaves(piece[0], &values[piece[0]..piece[1]], |value, buf| {
                        buf.extend_from_slice(value);
                    })
                })
                .collect();
            prop_assert_eq!(shape.root(leaves.clone()), Some(theirs));
            if let Some((_, missing_one)) = leaves.split_first() {
                prop_assert_eq!(shape.root(missing_one.to_vec()), None);
            }
        }
    }
}
