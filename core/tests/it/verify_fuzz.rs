//! Untrusted bytes through the decoders and the verifier: arbitrary bytes and
//! mutated valid blocks never panic, and a mutated block that still verifies
//! yields exactly the original rollup data.

use proptest::prelude::*;
use prost::Message as _;
use tandem_core::{
    verify_filtered_block, FilteredSequencerBlock, MerkleProof, RollupId, SequencerBlock,
};
use tandem_proto::sequencerblock::v1 as raw;

use crate::verify::{rollup, Fixture};

fn requested() -> [RollupId; 3] {
    [rollup("a"), rollup("c"), rollup("d")]
}

/// Decodes, validates and verifies; `Some` only when all three succeed.
fn decode_and_verify(fx: &Fixture, bytes: &[u8]) -> Option<tandem_core::VerifiedRollupData> {
    let raw = raw::FilteredSequencerBlock::decode(bytes).ok()?;
    let block = FilteredSequencerBlock::try_from_raw(raw).ok()?;
    verify_filtered_block(&fx.header, &block, &requested()).ok()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: prop::sample::Index, mask: u8 },
    Truncate { at: prop::sample::Index },
    Insert { at: prop::sample::Index, byte: u8 },
    Remove { at: prop::sample::Index },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<prop::sample::Index>(), 1u8..=255)
            .prop_map(|(at, mask)| Mutation::Flip { at, mask }),
        any::<prop::sample::Index>().prop_map(|at| Mutation::Truncate { at }),
        (any::<prop::sample::Index>(), any::<u8>())
            .prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<prop::sample::Index>().prop_map(|at| Mutation::Remove { at }),
    ]
}

fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match mutation {
        Mutation::Flip { at, mask } => {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        Mutation::Truncate { at } => bytes.truncate(at.index(bytes.len())),
        Mutation::Insert { at, byte } => bytes.insert(at.index(bytes.len() + 1), *byte),
        Mutation::Remove { at } => {
            bytes.remove(at.index(bytes.len()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: tandem_testkit::scaled(1000), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let fx = Fixture::standard();
        prop_assert!(decode_and_verify(&fx, &bytes).is_none());
    }

    #[test]
    fn mutated_blocks_never_panic_and_never_lie(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let fx = Fixture::standard();
        let original = fx.filtered_raw(&requested()).encode_to_vec();
        let expected = decode_and_verify(&fx, &original).expect("the unmutated block verifies");
        let mut bytes = original;
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Some(verified) = decode_and_verify(&fx, &bytes) {
            prop_assert_eq!(verified, expected);
        }
    }

    #[test]
    fn mutated_whole_blocks_never_panic_and_keep_their_data(
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let fx = Fixture::standard();
        let mut bytes = fx.block.to_raw().encode_to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Ok(raw) = raw::SequencerBlock::decode(bytes.as_slice()) {
            if let Ok(block) = SequencerBlock::try_from_raw(raw) {
                // Whatever survives the re-check commits to the same data.
                // (Header fields other than data_hash, and the block hash,
                // are bound only by `verify_filtered_block` against a full
                // CometBFT header.)
                prop_assert_eq!(block.commitments(), fx.block.commitments());
                prop_assert_eq!(block.header().data_hash, fx.block.header().data_hash);
                let txs = |b: &SequencerBlock| -> Vec<(RollupId, Vec<Vec<u8>>)> {
                    b.rollup_transactions()
                        .iter()
                        .map(|r| (*r.rollup_id(), r.transactions().to_vec()))
                        .collect()
                };
                prop_assert_eq!(txs(&block), txs(&fx.block));
            }
        }
    }

    #[test]
    fn arbitrary_proofs_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        leaf in prop::collection::vec(any::<u8>(), 0..64),
        root in any::<[u8; 32]>(),
    ) {
        if let Ok(raw) = raw::MerkleProof::decode(bytes.as_slice()) {
            if let Ok(proof) = MerkleProof::try_from_raw(raw) {
                // A random path proving a random leaf under a random root
                // would be a SHA-256 preimage.
                prop_assert!(proof.verify(&leaf, &root).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_raw_proof_fields_never_panic(
        leaf_index in any::<u64>(),
        tree_size in any::<u64>(),
        path in prop::collection::vec(prop::collection::vec(any::<u8>(), 30..34), 0..70),
    ) {
        let raw = raw::MerkleProof { leaf_index, tree_size, audit_path: path };
        if let Ok(proof) = MerkleProof::try_from_raw(raw) {
            prop_assert!(proof.verify(b"leaf", &[0; 32]).is_err());
        }
    }
}
