//! Hostile CheckTx input: each kind of bad tx gets its own code and a log naming the reason;
//! nothing panics.

use std::collections::BTreeMap;

use bytes::Bytes;
use tandem_core::Params;
use tendermint::v0_38::abci::request;

use crate::harness::{genesis, key, rollup, send, sign, sign_for, submit, utnd, Chain};

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "a table test reads best as one table"
)]
async fn hostile_check_tx_input_gets_distinct_codes() {
    let params = Params {
        max_tx_bytes: 4_096,
        ..Params::default()
    };
    let chain = Chain::with_genesis(genesis(params)).await;
    let (alice, bob) = (key("alice"), key("bob"));
    let (seq, number) = chain.account(&alice).await;
    let fee = params.required_fee(0) * 2;

    // Admit one tx so that sequence 0 is "too low".
    let first = sign(
        &alice,
        number,
        seq,
        vec![send(&alice, bob.address(), utnd(1))],
        fee,
    );
    assert!(chain.check(&first).await.code.is_ok());
    let seq = seq + 1;

    let good = sign(
        &alice,
        number,
        seq,
        vec![send(&alice, bob.address(), utnd(1))],
        fee,
    );
    // The signature is the last field of TxRaw: its final 64 bytes. All-ones is not a valid
    // secp256k1 signature encoding (r and s must be below the group order).
    let mut bad_signature = good.clone();
    let n = bad_signature.len();
    bad_signature[n - 64..].fill(0xff);

    let poor = key("poor");
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "malformed bytes",
            b"\x0a\x05hello\xff\xff".to_vec(),
            &["malformed", "decode"],
        ),
        (
            "wrong chain id",
            sign_for(
                "other-chain",
                &alice,
                number,
                seq,
                vec![send(&alice, bob.address(), utnd(1))],
                fee,
            ),
            &["signature", "chain"],
        ),
        ("bad signature", bad_signature, &["signature"]),
        (
            "sequence too low",
            sign(
                &alice,
                number,
                seq - 1,
                vec![send(&alice, bob.address(), utnd(1))],
                fee,
            ),
            &["sequence too low"],
        ),
        (
            "sequence too high",
            sign(
                &alice,
                number,
                seq + 1,
                vec![send(&alice, bob.address(), utnd(1))],
                fee,
            ),
            &["sequence too high"],
        ),
        (
            "insufficient fee",
            sign(
                &alice,
                number,
                seq,
                vec![submit(&alice, rollup("r"), &[0; 64])],
                params.required_fee(63),
            ),
            &["insufficient fee"],
        ),
        (
            "insufficient balance",
            sign(
                &alice,
                number,
                seq,
                vec![send(&alice, bob.address(), utnd(10u128.pow(15)))],
                fee,
            ),
            &["insufficient balance"],
        ),
        (
            "oversized",
            sign(
                &alice,
                number,
                seq,
                vec![submit(&alice, rollup("r"), &[0; 5_000])],
                10u128.pow(9),
            ),
            &["above the limit", "too large"],
        ),
        (
            "unknown account",
            sign(&poor, 42, 0, vec![send(&poor, bob.address(), utnd(1))], fee),
            &["unknown account"],
        ),
    ];

    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for (name, tx, needles) in cases {
        let response = chain.check(&tx).await;
        let code = response.code.value();
        assert_ne!(code, 0, "{name} was accepted");
        let log = response.log.to_lowercase();
        assert!(
            needles.iter().any(|n| log.contains(n)),
            "{name}: log `{}` names none of {needles:?}",
            response.log
        );
        if let Some(other) = seen.insert(code, name) {
            panic!("{name} and {other} share code {code}");
        }
    }
    // The good tx is still admissible after all that.
    assert!(chain.check(&good).await.code.is_ok());
}

#[tokio::test]
async fn random_garbage_never_panics() {
    let chain = Chain::new().await;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for len in [0usize, 1, 2, 3, 7, 31, 64, 300, 4_000, 300_000] {
        for _ in 0..20 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            let response = chain
                .app
                .check_tx(request::CheckTx {
                    tx: Bytes::from(bytes),
                    kind: request::CheckTxKind::New,
                })
                .await;
            assert!(!response.code.is_ok());
            assert!(!response.log.is_empty());
        }
    }
}

#[tokio::test]
async fn a_credit_past_u128_and_a_chain_not_yet_initialized_have_their_codes() {
    let (alice, bob) = (key("alice"), key("bob"));
    let mut state = genesis(Params::default());
    state.accounts[1].coins[0].amount = u128::MAX - 2;
    let chain = Chain::with_genesis(state).await;
    let tx = chain
        .tx(&alice, vec![send(&alice, bob.address(), utnd(5))])
        .await;
    let response = chain.check(&tx).await;
    assert_eq!(
        response.code.value(),
        tandem_app::codes::BALANCE_OVERFLOW,
        "{}",
        response.log
    );
    assert!(response.log.contains("overflow"), "{}", response.log);

    let dir = tempfile::tempdir().unwrap();
    let fresh = tandem_app::App::open(tandem_app::AppConfig::new(dir.path()))
        .await
        .unwrap();
    let response = fresh
        .check_tx(request::CheckTx {
            tx: Bytes::from(tx),
            kind: request::CheckTxKind::New,
        })
        .await;
    assert_eq!(
        response.code.value(),
        tandem_app::codes::NOT_INITIALIZED,
        "{}",
        response.log
    );
    assert!(response.log.contains("InitChain"), "{}", response.log);
}
