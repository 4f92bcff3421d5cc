//! Arbitrary and mutated bytes through the tx decoder: errors, never panics.

use proptest::prelude::*;
use tandem_core::{messages::SubmitRollupData, Message, ParsedTx, RollupId, SigningKey, TxBuilder};

fn valid_tx() -> Vec<u8> {
    let key = SigningKey::secp256k1_from_seed(b"fuzz");
    TxBuilder::new("fuzz", 1, 0)
        .message(Message::SubmitRollupData(SubmitRollupData {
            signer: key.address(),
            rollup_id: RollupId::from_name("fuzz"),
            data: vec![7; 64],
        }))
        .fee(1_000)
        .sign(&key)
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: tandem_testkit::scaled(2_000), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(tx) = ParsedTx::decode(&bytes, 4096) {
            let _ = tx.verify("fuzz", 1);
        }
    }

    #[test]
    fn mutated_valid_tx_never_panics_and_never_verifies_changed(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
    ) {
        let original = valid_tx();
        let mut bytes = original.clone();
        for (index, mask) in flips {
            let i = index.index(bytes.len());
            bytes[i] ^= mask;
        }
        if let Ok(tx) = ParsedTx::decode(&bytes, 4096) {
            // Only canonical encodings decode and the signature covers everything else, so
            // a mutated tx verifies only if the flips cancelled out: no second hash for the
            // same signed tx.
            if tx.verify("fuzz", 1).is_ok() {
                prop_assert_eq!(&bytes, &original);
            }
        }
    }
}
