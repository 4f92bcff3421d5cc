//! Table tests per component: every message's success and each failure reason, driven through
//! CheckTx and full blocks with real signed txs.

use tandem_app::codes;
use tandem_core::{Coin, Params, NATIVE_DENOM};

use crate::harness::{
    key, rollup, send, sign, submit, update_params, update_validator, utnd, validator_key, Chain,
};

/// Runs each `(name, tx, expected code)` through CheckTx, then checks that a failing tx never
/// makes it into a block.
async fn expect_codes(chain: &mut Chain, table: Vec<(&str, Vec<u8>, u32)>) {
    for (name, tx, code) in table {
        let response = chain.check(&tx).await;
        assert_eq!(
            response.code.value(),
            code,
            "case `{name}`: expected code {code}, got {} ({})",
            response.code.value(),
            response.log
        );
        if code != 0 {
            assert!(!response.log.is_empty(), "case `{name}`: no log");
            let block = chain.block(vec![tx]).await;
            assert_eq!(
                block.txs.len(),
                1,
                "case `{name}`: failing tx reached a block"
            );
        }
    }
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "a table test reads best as one table"
)]
async fn bank_send_table() {
    let mut chain = Chain::new().await;
    let (alice, bob, dave) = (key("alice"), key("bob"), key("dave"));
    let alice_before = chain.balance(&alice.address(), NATIVE_DENOM).await;

    // Success: a transfer to a never-seen address creates it with the next account number.
    let tx = chain
        .tx(&alice, vec![send(&alice, dave.address(), utnd(1_000))])
        .await;
    assert!(chain.check(&tx).await.code.is_ok());
    let block = chain.block(vec![tx]).await;
    assert_eq!(block.txs.len(), 2);
    assert!(block.finalize.tx_results[1].code.is_ok());
    assert_eq!(chain.balance(&dave.address(), NATIVE_DENOM).await, 1_000);
    // Genesis numbered alice, bob, carol, authority (0..=3) and the fee collector (4).
    assert_eq!(chain.account(&dave).await, (0, 5));
    assert_eq!(chain.account(&alice).await.0, 1);
    let fee = Params::default().required_fee(0) * 2;
    assert_eq!(
        chain.balance(&alice.address(), NATIVE_DENOM).await,
        alice_before - 1_000 - fee
    );

    // Success: two denoms at once.
    let coins = vec![
        Coin {
            denom: NATIVE_DENOM.into(),
            amount: 7,
        },
        Coin {
            denom: "uatom".into(),
            amount: 200,
        },
    ];
    let tx = chain
        .tx(&bob, vec![send(&bob, alice.address(), coins)])
        .await;
    let block = chain.block(vec![tx]).await;
    assert!(block.finalize.tx_results[1].code.is_ok());
    assert_eq!(chain.balance(&alice.address(), "uatom").await, 200);
    assert_eq!(chain.balance(&bob.address(), "uatom").await, 300);

    let bob_utnd = chain.balance(&bob.address(), NATIVE_DENOM).await;
    let (_, alice_number) = chain.account(&alice).await;
    let (alice_seq, _) = chain.account(&alice).await;
    let table = vec![
        (
            "insufficient balance",
            chain
                .tx(
                    &bob,
                    vec![send(
                        &bob,
                        alice.address(),
                        vec![Coin {
                            denom: "uatom".into(),
                            amount: 301,
                        }],
                    )],
                )
                .await,
            codes::INSUFFICIENT_BALANCE,
        ),
        (
            "second coin insufficient rolls back the first",
            chain
                .tx(
                    &bob,
                    vec![send(
                        &bob,
                        alice.address(),
                        vec![
                            Coin {
                                denom: NATIVE_DENOM.into(),
                                amount: 10,
                            },
                            Coin {
                                denom: "uatom".into(),
                                amount: 301,
                            },
                        ],
                    )],
                )
                .await,
            codes::INSUFFICIENT_BALANCE,
        ),
        (
            "zero amount",
            chain
                .tx(&bob, vec![send(&bob, alice.address(), utnd(0))])
                .await,
            // Refused while decoding the message: tandem-core's InvalidMessage.
            5,
        ),
        (
            "unknown signer account",
            sign(
                &key("nobody"),
                99,
                0,
                vec![send(&key("nobody"), alice.address(), utnd(1))],
                10_000,
            ),
            codes::UNKNOWN_ACCOUNT,
        ),
        (
            "sequence too low",
            sign(
                &alice,
                alice_number,
                alice_seq - 1,
                vec![send(&alice, bob.address(), utnd(1))],
                10_000,
            ),
            codes::SEQUENCE_TOO_LOW,
        ),
        (
            "sequence too high",
            sign(
                &alice,
                alice_number,
                alice_seq + 1,
                vec![send(&alice, bob.address(), utnd(1))],
                10_000,
            ),
            codes::SEQUENCE_TOO_HIGH,
        ),
    ];
    expect_codes(&mut chain, table).await;
    // Nothing moved: bob paid no fee for his refused txs.
    assert_eq!(chain.balance(&bob.address(), NATIVE_DENOM).await, bob_utnd);
    assert_eq!(chain.balance(&bob.address(), "uatom").await, 300);
}

#[tokio::test]
async fn fees_table() {
    let mut chain = Chain::new().await;
    let (alice, poor, collector) = (key("alice"), key("poor"), key("fees"));
    let params = Params::default();

    // Fund `poor` with less than the base fee.
    let tx = chain
        .tx(
            &alice,
            vec![send(
                &alice,
                poor.address(),
                utnd(params.required_fee(0) - 1),
            )],
        )
        .await;
    chain.block(vec![tx]).await;

    // Success: exactly the required fee for 100 rollup bytes goes to the collector.
    let before = chain.balance(&collector.address(), NATIVE_DENOM).await;
    let (seq, number) = chain.account(&alice).await;
    let exact = params.required_fee(100);
    assert_eq!(
        exact,
        u128::from(params.base_fee) + 100 * u128::from(params.fee_per_byte)
    );
    let tx = sign(
        &alice,
        number,
        seq,
        vec![submit(&alice, rollup("a"), &[1; 100])],
        exact,
    );
    assert!(chain.check(&tx).await.code.is_ok());
    let block = chain.block(vec![tx]).await;
    assert!(block.finalize.tx_results[1].code.is_ok());
    assert_eq!(
        chain.balance(&collector.address(), NATIVE_DENOM).await,
        before + exact
    );

    let (seq, number) = chain.account(&alice).await;
    let (poor_seq, poor_number) = chain.account(&poor).await;
    let table = vec![
        (
            "fee one below required",
            sign(
                &alice,
                number,
                seq,
                vec![submit(&alice, rollup("a"), &[1; 100])],
                exact - 1,
            ),
            codes::INSUFFICIENT_FEE,
        ),
        (
            "balance cannot cover the fee",
            sign(
                &poor,
                poor_number,
                poor_seq,
                vec![send(&poor, alice.address(), utnd(1))],
                params.required_fee(0),
            ),
            codes::INSUFFICIENT_BALANCE,
        ),
    ];
    expect_codes(&mut chain, table).await;
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "a table test reads best as one table"
)]
async fn rollups_table() {
    let params = Params {
        max_rollup_bytes_per_block: 1_000,
        ..Params::default()
    };
    let mut chain = Chain::with_genesis(crate::harness::genesis(params)).await;
    let (alice, bob) = (key("alice"), key("bob"));

    // Success: one item, then an atomic bundle over three rollups.
    let one = chain
        .tx(&alice, vec![submit(&alice, rollup("a"), b"a0")])
        .await;
    let bundle = chain
        .tx(
            &bob,
            vec![
                submit(&bob, rollup("b"), b"b0"),
                submit(&bob, rollup("a"), b"a1"),
                submit(&bob, rollup("c"), b"c0"),
            ],
        )
        .await;
    let block = chain.block(vec![one, bundle]).await;
    assert_eq!(block.txs.len(), 3);
    let stored = chain
        .app
        .sequencer_block(chain.height)
        .await
        .unwrap()
        .unwrap();
    let data: Vec<(String, Vec<Vec<u8>>)> = stored
        .rollup_transactions()
        .iter()
        .map(|r| (r.rollup_id().to_string(), r.transactions().to_vec()))
        .collect();
    let mut expected = vec![
        (
            rollup("a").to_string(),
            vec![b"a0".to_vec(), b"a1".to_vec()],
        ),
        (rollup("b").to_string(), vec![b"b0".to_vec()]),
        (rollup("c").to_string(), vec![b"c0".to_vec()]),
    ];
    expected.sort();
    assert_eq!(data, expected);

    // Failure: a bundle whose last message fails leaves nothing behind, even in a decided
    // block (FinalizeBlock records the code and sequences none of its data).
    let failing_bundle = chain
        .tx(
            &alice,
            vec![
                submit(&alice, rollup("d"), b"d0"),
                send(
                    &alice,
                    bob.address(),
                    vec![Coin {
                        denom: "nothing".into(),
                        amount: 1,
                    }],
                ),
            ],
        )
        .await;
    assert_eq!(
        chain.check(&failing_bundle).await.code.value(),
        codes::INSUFFICIENT_BALANCE
    );
    let empty_item = tandem_core::commitment_item_bytes(
        &tandem_core::RollupData::from_items(Vec::new()).commitments(),
    );
    let block = chain
        .finalize_and_commit(vec![empty_item.into(), failing_bundle.into()])
        .await;
    assert_eq!(
        block.finalize.tx_results[1].code.value(),
        codes::INSUFFICIENT_BALANCE
    );
    let stored = chain
        .app
        .sequencer_block(chain.height)
        .await
        .unwrap()
        .unwrap();
    assert!(stored.rollup_transactions().is_empty());

    let table = vec![
        (
            "more rollup data than a block may carry",
            chain
                .tx(&alice, vec![submit(&alice, rollup("a"), &[0; 1_001])])
                .await,
            codes::ROLLUP_DATA_TOO_LARGE,
        ),
        (
            "fee does not cover the data bytes",
            {
                let (seq, number) = chain.account(&alice).await;
                sign(
                    &alice,
                    number,
                    seq,
                    vec![submit(&alice, rollup("a"), &[0; 500])],
                    Params::default().required_fee(499),
                )
            },
            codes::INSUFFICIENT_FEE,
        ),
    ];
    expect_codes(&mut chain, table).await;
}

#[tokio::test]
async fn params_table() {
    let mut chain = Chain::new().await;
    let (alice, authority) = (key("alice"), key("authority"));
    let new_params = Params {
        base_fee: 50_000,
        ..Params::default()
    };

    // Success: the authority replaces the params; they apply from the next block.
    let tx = chain
        .tx(&authority, vec![update_params(&authority, new_params)])
        .await;
    assert!(chain.check(&tx).await.code.is_ok());
    let block = chain.block(vec![tx]).await;
    assert!(block.finalize.tx_results[1].code.is_ok());
    let (seq, number) = chain.account(&alice).await;
    let cheap = sign(
        &alice,
        number,
        seq,
        vec![send(&alice, authority.address(), utnd(1))],
        2_000,
    );
    assert_eq!(
        chain.check(&cheap).await.code.value(),
        codes::INSUFFICIENT_FEE
    );

    let too_big = Params {
        max_tx_bytes: 64 * 1024 * 1024,
        ..Params::default()
    };
    let table = vec![
        (
            "not the authority",
            {
                let (seq, number) = chain.account(&alice).await;
                sign(
                    &alice,
                    number,
                    seq,
                    vec![update_params(&alice, Params::default())],
                    100_000,
                )
            },
            codes::UNAUTHORIZED,
        ),
        (
            "params the chain cannot run with",
            {
                let (seq, number) = chain.account(&authority).await;
                sign(
                    &authority,
                    number,
                    seq,
                    vec![update_params(&authority, too_big)],
                    100_000,
                )
            },
            // Refused while decoding the message: tandem-core's InvalidMessage.
            5,
        ),
    ];
    expect_codes(&mut chain, table).await;
}

#[tokio::test]
async fn validators_table() {
    let mut chain = Chain::new().await;
    let (alice, authority) = (key("alice"), key("authority"));
    let (v1, v2) = (validator_key(1), validator_key(2));

    let table = vec![
        (
            "removing the last validator",
            chain
                .tx(&authority, vec![update_validator(&authority, v1, 0)])
                .await,
            codes::LAST_VALIDATOR,
        ),
        (
            "removing a key that is not a validator",
            chain
                .tx(&authority, vec![update_validator(&authority, v2, 0)])
                .await,
            codes::UNKNOWN_VALIDATOR,
        ),
        (
            "power beyond the total cap",
            chain
                .tx(
                    &authority,
                    vec![update_validator(&authority, v2, (i64::MAX as u64) / 8)],
                )
                .await,
            codes::INVALID_VALIDATOR_POWER,
        ),
        (
            "not the authority",
            chain
                .tx(&alice, vec![update_validator(&alice, v2, 5)])
                .await,
            codes::UNAUTHORIZED,
        ),
    ];
    expect_codes(&mut chain, table).await;

    // Success: add v2 (updated twice in one block: the last update wins), then remove it.
    let add = chain
        .tx(
            &authority,
            vec![
                update_validator(&authority, v2, 5),
                update_validator(&authority, v2, 6),
            ],
        )
        .await;
    let block = chain.block(vec![add]).await;
    let updates = &block.finalize.validator_updates;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].pub_key.to_bytes(), v2.to_vec());
    assert_eq!(updates[0].power.value(), 6);

    let remove = chain
        .tx(&authority, vec![update_validator(&authority, v2, 0)])
        .await;
    let block = chain.block(vec![remove]).await;
    assert_eq!(block.finalize.validator_updates.len(), 1);
    assert_eq!(block.finalize.validator_updates[0].power.value(), 0);
}

/// The events of each tx in FinalizeBlock: a successful tx reports its fee, then one event
/// per message in message order; a failing tx reports none.
/// Events as `(kind, [(key, value)])`.
fn rendered(events: &[tendermint::abci::Event]) -> Vec<(String, Vec<(String, String)>)> {
    events
        .iter()
        .map(|e| {
            (
                e.kind.clone(),
                e.attributes
                    .iter()
                    .map(|a| {
                        (
                            a.key_str().unwrap().to_string(),
                            a.value_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

#[tokio::test]
async fn finalize_reports_events_per_successful_tx() {
    let mut chain = Chain::new().await;
    let (alice, bob) = (key("alice"), key("bob"));
    let bundle = chain
        .tx(
            &alice,
            vec![
                submit(&alice, rollup("b"), b"b0"),
                send(&alice, bob.address(), utnd(7)),
                submit(&alice, rollup("a"), b"a-0"),
            ],
        )
        .await;
    let prepared = chain.block(vec![bundle]).await;
    assert_eq!(prepared.txs.len(), 2);

    // A decided block may hold a failing tx (here bob signs with a sequence from the future):
    // FinalizeBlock records its code and no events. The commitment item comes from a Prepare
    // over the good tx alone, since the failing one sequences no data.
    let good: bytes::Bytes = chain
        .tx(&alice, vec![submit(&alice, rollup("c"), b"c")])
        .await
        .into();
    let (sequence, number) = chain.account(&bob).await;
    let failing = sign(
        &bob,
        number,
        sequence + 5,
        vec![send(&bob, alice.address(), utnd(1))],
        1_000_000,
    );
    let item = chain
        .app
        .prepare_proposal(crate::harness::prepare_request(
            chain.height + 1,
            vec![good.clone()],
        ))
        .await
        .unwrap()
        .txs[0]
        .clone();
    let decided = chain
        .finalize_and_commit(vec![item, good, failing.into()])
        .await;

    let first = rendered(&prepared.finalize.tx_results[1].events);
    let kinds: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "fee",
            "message",
            "rollup_data",
            "message",
            "transfer",
            "message",
            "rollup_data"
        ]
    );
    assert_eq!(
        first[0].1[0],
        ("payer".to_string(), alice.address().to_string())
    );
    let message = |action: &str, module: &str| {
        vec![
            ("action".to_string(), action.to_string()),
            ("sender".to_string(), alice.address().to_string()),
            ("module".to_string(), module.to_string()),
        ]
    };
    assert_eq!(
        first[1].1,
        message("/tandem.sequencer.v1.MsgSubmitRollupData", "sequencer")
    );
    assert_eq!(
        first[2].1,
        [
            ("rollup_id".to_string(), rollup("b").to_string()),
            ("bytes".to_string(), "2".to_string())
        ]
    );
    assert_eq!(first[3].1, message("/cosmos.bank.v1beta1.MsgSend", "bank"));
    assert_eq!(
        first[4].1,
        [
            ("sender".to_string(), alice.address().to_string()),
            ("recipient".to_string(), bob.address().to_string()),
            ("amount".to_string(), format!("7{NATIVE_DENOM}"))
        ]
    );
    assert_eq!(first[6].1[1], ("bytes".to_string(), "3".to_string()));
    // Every attribute is marked for CometBFT's tx indexer, as the Cosmos SDK marks them.
    assert!(prepared.finalize.tx_results[1]
        .events
        .iter()
        .flat_map(|e| &e.attributes)
        .all(tendermint::abci::EventAttribute::index));

    assert!(decided.finalize.tx_results[1].code.is_ok());
    let second = rendered(&decided.finalize.tx_results[1].events);
    assert_eq!(second.len(), 3);
    assert_eq!(
        second[2].1[0],
        ("rollup_id".to_string(), rollup("c").to_string())
    );
    let failed = &decided.finalize.tx_results[2];
    assert_eq!(failed.code.value(), codes::SEQUENCE_TOO_HIGH);
    assert!(failed.events.is_empty());
}

/// A rollup-data tx runs on the block state without a nested fork; when it fails in a
/// decided block (here: the fee is more than the balance), nothing of it may remain.
#[tokio::test]
async fn a_failing_rollup_tx_in_a_decided_block_changes_nothing() {
    let mut chain = Chain::new().await;
    let (alice, poor) = (key("alice"), key("poor"));
    let fund = chain
        .tx(&alice, vec![send(&alice, poor.address(), utnd(5))])
        .await;
    chain.block(vec![fund]).await;
    let (sequence, number) = chain.account(&poor).await;
    let failing = sign(
        &poor,
        number,
        sequence,
        vec![submit(&poor, rollup("a"), b"x")],
        1_000_000,
    );
    // It sequences no data, so the commitment item is the one of an empty block.
    let item = chain
        .app
        .prepare_proposal(crate::harness::prepare_request(chain.height + 1, vec![]))
        .await
        .unwrap()
        .txs[0]
        .clone();
    let decided = chain.finalize_and_commit(vec![item, failing.into()]).await;
    assert_eq!(
        decided.finalize.tx_results[1].code.value(),
        codes::INSUFFICIENT_BALANCE
    );
    assert_eq!(chain.account(&poor).await, (sequence, number));
    assert_eq!(chain.balance(&poor.address(), NATIVE_DENOM).await, 5);
}
