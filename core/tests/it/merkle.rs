//! RFC 6962 Merkle trees: published test vectors, every proof of small trees,
//! tampering, the wire form, and CometBFT's `data_hash`.

use proptest::prelude::*;
use sha2::{Digest as _, Sha256};
use tandem_core::merkle::{
    self, data_hash, empty_root, leaf_hash, MerkleProof, MerkleProofError, MerkleTree, ProofError,
    MAX_AUDIT_PATH_LEN,
};
use tandem_proto::sequencerblock::v1 as raw;

fn h(hex_str: &str) -> [u8; 32] {
    hex::decode(hex_str)
        .expect("test vector is hex")
        .try_into()
        .expect("test vector is 32 bytes")
}

/// The eight leaves of the Certificate Transparency reference test data
/// (google/certificate-transparency, now transparency-dev/merkle).
fn ct_leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|leaf| hex::decode(leaf).expect("hex"))
    .collect()
}

/// Roots of the first 0..=8 leaves.
const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// Inclusion proofs of the reference data: (leaf index, tree size, path).
const CT_PATHS: [(usize, usize, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

#[test]
fn rfc6962_reference_roots() {
    let leaves = ct_leaves();
    for (size, expected) in CT_ROOTS.iter().enumerate() {
        let expected = h(expected);
        assert_eq!(merkle::root(&leaves[..size]), expected, "root of {size}");
        assert_eq!(
            MerkleTree::from_leaves(&leaves[..size]).root(),
            expected,
            "tree root of {size}"
        );
    }
}

#[test]
fn rfc6962_reference_inclusion_proofs() {
    let leaves = ct_leaves();
    for (index, size, path) in CT_PATHS {
        let tree = MerkleTree::from_leaves(&leaves[..size]);
        let proof = tree.proof(index).expect("index in range");
        let expected: Vec<[u8; 32]> = path.iter().map(|p| h(p)).collect();
        assert_eq!(proof.audit_path, expected, "path of leaf {index} in {size}");
        assert_eq!(proof.leaf_index, index as u64);
        assert_eq!(proof.tree_size, size as u64);
        let root = h(CT_ROOTS[size]);
        assert_eq!(proof.verify(&leaves[index], &root), Ok(()));
        // The published path alone (not ours) proves the leaf too.
        let published = MerkleProof {
            leaf_index: index as u64,
            tree_size: size as u64,
            audit_path: expected,
        };
        assert_eq!(published.verify(&leaves[index], &root), Ok(()));
    }
}

#[test]
fn empty_tree() {
    let empty: [&[u8]; 0] = [];
    let sha256_of_nothing = h(CT_ROOTS[0]);
    assert_eq!(empty_root(), sha256_of_nothing);
    assert_eq!(merkle::root(&empty), sha256_of_nothing);
    let tree = MerkleTree::from_leaves(&empty);
    assert!(tree.is_empty());
    assert_eq!(tree.root(), sha256_of_nothing);
    assert_eq!(tree.proof(0), None);
    let proof = MerkleProof {
        leaf_index: 0,
        tree_size: 0,
        audit_path: vec![],
    };
    assert_eq!(
        proof.verify(b"", &sha256_of_nothing),
        Err(ProofError::EmptyTree)
    );
}

fn numbered_leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("leaf number {i}").into_bytes())
        .collect()
}

#[test]
fn every_proof_of_trees_of_1_to_33_leaves() {
    for size in 1..=33 {
        let leaves = numbered_leaves(size);
        let tree = MerkleTree::from_leaves(&leaves);
        let root = tree.root();
        assert_eq!(root, merkle::root(&leaves));
        for (index, leaf) in leaves.iter().enumerate() {
            let proof = tree.proof(index).expect("in range");
            assert_eq!(proof.verify(leaf, &root), Ok(()), "leaf {index} of {size}");
            // Another leaf's data does not verify at this index.
            let other = &leaves[(index + 1) % size];
            if size > 1 {
                assert!(
                    matches!(
                        proof.verify(other, &root),
                        Err(ProofError::RootMismatch { .. })
                    ),
                    "leaf {index} of {size} accepted another leaf's data"
                );
            }
            // The proof does not verify at any other index.
            for wrong in 0..size {
                if wrong == index {
                    continue;
                }
                let moved = MerkleProof {
                    leaf_index: wrong as u64,
                    ..proof.clone()
                };
                assert!(
                    moved.verify(leaf, &root).is_err(),
                    "leaf {index} of {size} verified at index {wrong}"
                );
            }
        }
        assert_eq!(tree.proof(size), None);
    }
}

#[test]
fn proof_errors_name_the_problem() {
    let leaves = numbered_leaves(5);
    let tree = MerkleTree::from_leaves(&leaves);
    let root = tree.root();
    let proof = tree.proof(1).expect("in range");

    let out_of_range = MerkleProof {
        leaf_index: 5,
        ..proof.clone()
    };
    assert_eq!(
        out_of_range.verify(&leaves[1], &root),
        Err(ProofError::IndexOutOfRange {
            leaf_index: 5,
            tree_size: 5
        })
    );
    let mut short = proof.clone();
    short.audit_path.pop();
    assert_eq!(
        short.verify(&leaves[1], &root),
        Err(ProofError::PathLength {
            leaf_index: 1,
            tree_size: 5,
            expected: 3,
            actual: 2
        })
    );
    let mut long = proof.clone();
    long.audit_path.push([0; 32]);
    assert!(matches!(
        long.verify(&leaves[1], &root),
        Err(ProofError::PathLength { actual: 4, .. })
    ));
    assert!(matches!(
        proof.verify(&leaves[1], &[0; 32]),
        Err(ProofError::RootMismatch { expected, .. }) if expected == [0; 32]
    ));
}

#[test]
fn proof_wire_form_round_trips_and_is_bounded() {
    let tree = MerkleTree::from_leaves(&numbered_leaves(9));
    let proof = tree.proof(8).expect("in range");
    assert_eq!(MerkleProof::try_from_raw(proof.to_raw()), Ok(proof.clone()));

    let mut raw = proof.to_raw();
    raw.audit_path[0].push(0);
    assert_eq!(
        MerkleProof::try_from_raw(raw),
        Err(MerkleProofError::HashLength { index: 0, len: 33 })
    );
    let raw = raw::MerkleProof {
        leaf_index: 0,
        tree_size: u64::MAX,
        audit_path: vec![vec![0; 32]; MAX_AUDIT_PATH_LEN + 1],
    };
    assert_eq!(
        MerkleProof::try_from_raw(raw),
        Err(MerkleProofError::PathTooLong { len: 65, max: 64 })
    );
    let raw = raw::MerkleProof {
        leaf_index: 0,
        tree_size: 0,
        audit_path: vec![],
    };
    assert_eq!(
        MerkleProof::try_from_raw(raw),
        Err(MerkleProofError::EmptyTree)
    );
    let raw = raw::MerkleProof {
        leaf_index: 3,
        tree_size: 3,
        audit_path: vec![],
    };
    assert_eq!(
        MerkleProof::try_from_raw(raw),
        Err(MerkleProofError::IndexOutOfRange {
            leaf_index: 3,
            tree_size: 3
        })
    );
}

/// CometBFT's `data_hash`: the tree over sha256 of each tx, computed by the
/// `tendermint` crate's own Merkle code.
fn tendermint_data_hash(txs: &[Vec<u8>]) -> [u8; 32] {
    let tx_hashes: Vec<Vec<u8>> = txs.iter().map(|tx| Sha256::digest(tx).to_vec()).collect();
    tendermint::merkle::simple_hash_from_byte_vectors::<tendermint::crypto::default::Sha256>(
        &tx_hashes,
    )
}

#[test]
fn data_hash_equals_the_tendermint_crate() {
    for count in [0usize, 1, 2, 3, 7, 100] {
        let txs: Vec<Vec<u8>> = (0..count)
            .map(|i| {
                let len = (i * 37) % 300;
                (0..len).map(|j| (i + j).to_le_bytes()[0]).collect()
            })
            .collect();
        let expected = tendermint_data_hash(&txs);
        assert_eq!(data_hash(&txs), expected, "{count} txs");
        assert_eq!(MerkleTree::from_txs(&txs).root(), expected, "{count} txs");
        // It is not the tree over the raw txs (except by accident).
        if count > 0 {
            assert_ne!(merkle::root(&txs), expected, "{count} txs");
        }
    }
    // The empty block's data_hash is sha256() in CometBFT.
    assert_eq!(data_hash::<Vec<u8>>(&[]), h(CT_ROOTS[0]));
}

#[test]
fn leaf_and_node_hashes_are_domain_separated() {
    let leaf = leaf_hash(b"x");
    let mut expected = Sha256::new();
    expected.update([0u8]);
    expected.update(b"x");
    assert_eq!(leaf, <[u8; 32]>::from(expected.finalize()));
    let node = merkle::node_hash(&[1; 32], &[2; 32]);
    let mut expected = Sha256::new();
    expected.update([1u8]);
    expected.update([1u8; 32]);
    expected.update([2u8; 32]);
    assert_eq!(node, <[u8; 32]>::from(expected.finalize()));
}

/// Distinct leaves (each starts with its index) and one index among them.
/// Distinct, because two equal subtrees make a proof hold at both positions.
fn tree_and_leaf() -> impl Strategy<Value = (Vec<Vec<u8>>, usize)> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..70).prop_flat_map(
        |leaves| {
            let leaves: Vec<Vec<u8>> = leaves
                .into_iter()
                .enumerate()
                .map(|(i, leaf)| [&(i as u64).to_le_bytes()[..], &leaf].concat())
                .collect();
            let len = leaves.len();
            (Just(leaves), 0..len)
        },
    )
}

/// The side of each sibling on the way up (`true`: sibling on the left), for
/// the levels where leaf `index` of a tree of `size` has one.
fn path_shape(index: u64, size: u64) -> Vec<bool> {
    let (mut i, mut n, mut shape) = (index, size, Vec::new());
    while n > 1 {
        if (i ^ 1) < n {
            shape.push(i & 1 == 1);
        }
        i >>= 1;
        n = n.div_ceil(2);
    }
    shape
}

/// RFC 6962 binds the tree size through the root only (in CT the signed tree
/// head carries both): for leaf 0, trees of 5 to 8 leaves hash the same path
/// the same way. Callers that care check `tree_size` themselves, as
/// `verify_filtered_block` does for rollup proofs.
#[test]
fn tree_size_is_bound_only_through_the_path_shape() {
    let leaves = numbered_leaves(5);
    let tree = MerkleTree::from_leaves(&leaves);
    let proof = tree.proof(0).expect("in range");
    for size in 5..=8 {
        assert_eq!(path_shape(0, size), path_shape(0, 5));
        let resized = MerkleProof {
            tree_size: size,
            ..proof.clone()
        };
        assert_eq!(resized.verify(&leaves[0], &tree.root()), Ok(()));
    }
    let resized = MerkleProof {
        tree_size: 9,
        ..proof
    };
    assert!(resized.verify(&leaves[0], &tree.root()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: tandem_testkit::scaled(256), ..ProptestConfig::default() })]

    #[test]
    fn flipped_leaf_bit_is_rejected((leaves, index) in tree_and_leaf(), bit in any::<prop::sample::Index>()) {
        let tree = MerkleTree::from_leaves(&leaves);
        let proof = tree.proof(index).expect("in range");
        let mut leaf = leaves[index].clone();
        prop_assume!(!leaf.is_empty());
        let bit = bit.index(leaf.len() * 8);
        leaf[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(proof.verify(&leaf, &tree.root()).is_err());
    }

    #[test]
    fn flipped_path_bit_is_rejected((leaves, index) in tree_and_leaf(), bit in any::<prop::sample::Index>()) {
        let tree = MerkleTree::from_leaves(&leaves);
        let mut proof = tree.proof(index).expect("in range");
        prop_assume!(!proof.audit_path.is_empty());
        let bit = bit.index(proof.audit_path.len() * 256);
        proof.audit_path[bit / 256][(bit % 256) / 8] ^= 1 << (bit % 8);
        prop_assert!(proof.verify(&leaves[index], &tree.root()).is_err());
    }

    #[test]
    fn flipped_root_bit_is_rejected((leaves, index) in tree_and_leaf(), bit in 0usize..256) {
        let tree = MerkleTree::from_leaves(&leaves);
        let proof = tree.proof(index).expect("in range");
        let mut root = tree.root();
        root[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(proof.verify(&leaves[index], &root).is_err());
    }

    #[test]
    fn wrong_index_or_tree_size_is_rejected(
        (leaves, index) in tree_and_leaf(),
        wrong_index in 0u64..200,
        wrong_size in 0u64..200,
    ) {
        let tree = MerkleTree::from_leaves(&leaves);
        let proof = tree.proof(index).expect("in range");
        let root = tree.root();
        prop_assert_eq!(proof.verify(&leaves[index], &root), Ok(()));
        if wrong_index != proof.leaf_index {
            let moved = MerkleProof { leaf_index: wrong_index, ..proof.clone() };
            prop_assert!(moved.verify(&leaves[index], &root).is_err());
        }
        // A size whose tree hashes this path differently (see
        // `tree_size_is_bound_only_through_the_path_shape`).
        if wrong_size <= proof.leaf_index
            || path_shape(proof.leaf_index, wrong_size) != path_shape(proof.leaf_index, proof.tree_size)
        {
            let resized = MerkleProof { tree_size: wrong_size, ..proof.clone() };
            prop_assert!(resized.verify(&leaves[index], &root).is_err());
        }
    }
}
