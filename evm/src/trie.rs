//! Merkle-Patricia trie roots with every leaf hashed in one batch.
//!
//! alloy-trie's `HashBuilder` hashes each node as it completes it, one at a time. Most of a
//! block's trie hashing is leaves (one per account, transaction or receipt), and a leaf's
//! encoding depends only on its key, its value and how many nibbles it shares with its two
//! neighbours in key order. [`root`] therefore encodes every leaf first and hashes them all
//! together with [`tandem_keccak::keccak256_many`] (eight per pass on AVX-512), then builds
//! the extension and branch nodes above them. The result is the same root; the tests check
//! it against alloy-trie.

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
/// prefix-free.
pub(crate) fn root(keys: &[Nibbles], mut value: impl FnMut(usize, &mut Vec<u8>)) -> B256 {
    debug_assert!(
        keys.windows(2)
            .all(|w| w[0] < w[1] && w[0].common_prefix_length(&w[1]) < w[0].len()),
        "keys are sorted and prefix-free"
    );
    let count = keys.len();
    if count == 0 {
        return EMPTY_ROOT_HASH;
    }
    // Nibbles each key shares with the next.
    let shared: Vec<usize> = keys
        .windows(2)
        .map(|w| w[0].common_prefix_length(&w[1]))
        .collect();
    // Every leaf, encoded into one buffer: it hangs one nibble below the deeper of the
    // branches that separate it from its neighbours (at the root when it is alone).
    let mut encoded = Vec::with_capacity(count * 128);
    let mut ends = Vec::with_capacity(count);
    let mut leaf_value = Vec::with_capacity(128);
    for (i, key) in keys.iter().enumerate() {
        let depth = if count == 1 {
            0
        } else {
            let before = if i == 0 { 0 } else { shared[i - 1] };
            let after = shared.get(i).copied().unwrap_or(0);
            before.max(after) + 1
        };
        leaf_value.clear();
        value(i, &mut leaf_value);
        LeafNodeRef::new(&key.slice(depth..), &leaf_value).encode(&mut encoded);
        ends.push(encoded.len());
    }
    let leaf = |i: usize| &encoded[if i == 0 { 0 } else { ends[i - 1] }..ends[i]];
    if count == 1 {
        return keccak256(leaf(0));
    }
    // Leaves of 32 bytes or more are referenced by hash, shorter ones inline.
    let long: Vec<&[u8]> = (0..count).map(leaf).filter(|l| l.len() >= 32).collect();
    let mut hashes = tandem_keccak::keccak256_many(&long).into_iter();
    let leaves: Vec<RlpNode> = (0..count)
        .map(|i| {
            let leaf = leaf(i);
            if leaf.len() >= 32 {
                RlpNode::word_rlp(&hashes.next().expect("one hash per long leaf"))
            } else {
                RlpNode::from_rlp(leaf)
            }
        })
        .collect();
    let builder = Builder {
        keys,
        leaves: &leaves,
    };
    let mut node = Vec::with_capacity(600);
    builder.encode(0, count, 0, &mut node);
    keccak256(&node)
}

/// The root of the trie that maps the RLP encoding of each index `i` to `encode(items[i])`:
/// the transactions, receipts and withdrawals tries.
pub(crate) fn ordered_root<T>(items: &[T], mut encode: impl FnMut(&T, &mut Vec<u8>)) -> B256 {
    let mut keyed: Vec<(Nibbles, usize)> = (0..items.len())
        .map(|i| {
            let mut key = Vec::with_capacity(9);
            i.encode(&mut key);
            (Nibbles::unpack(&key), i)
        })
        .collect();
    keyed.sort_unstable();
    let keys: Vec<Nibbles> = keyed.iter().map(|(key, _)| *key).collect();
    root(&keys, |position, buf| {
        encode(&items[keyed[position].1], buf);
    })
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
            values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..50), 0..300)
        ) {
            let ours = ordered_root(&values, |value, buf| buf.extend_from_slice(value));
            let theirs = alloy_trie::root::ordered_trie_root_with_encoder(&values, |value, buf| {
                buf.extend_from_slice(value);
            });
            prop_assert_eq!(ours, theirs);
        }
    }
}
