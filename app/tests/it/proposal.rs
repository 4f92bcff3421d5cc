//! Proposal safety: ProcessProposal rejects every kind of bad proposal, and accepts the
//! untampered control it was derived from.

use bytes::Bytes;
use tandem_core::{Params, RollupData};
use tendermint::v0_38::abci::response::ProcessProposal;

use crate::harness::{
    genesis, key, prepare_request, process_request, rollup, send, sign, submit, utnd, Chain,
};

fn item_for(items: Vec<(tandem_core::RollupId, Vec<u8>)>) -> Bytes {
    tandem_core::commitment_item_bytes(&RollupData::from_items(items).commitments()).into()
}

async fn verdict(chain: &Chain, txs: Vec<Bytes>) -> ProcessProposal {
    chain
        .app
        .process_proposal(process_request(chain.height + 1, txs))
        .await
        .unwrap()
}

/// A fresh validator (no shared caches with the proposer) judging `txs`.
async fn fresh_verdict(txs: Vec<Bytes>) -> ProcessProposal {
    let chain = Chain::with_genesis(genesis(small_params())).await;
    verdict(&chain, txs).await
}

fn small_params() -> Params {
    Params {
        max_tx_bytes: 2_048,
        max_rollup_bytes_per_block: 1_500,
        ..Params::default()
    }
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "a table test reads best as one table"
)]
async fn process_proposal_rejects_bad_proposals() {
    let proposer = Chain::with_genesis(genesis(small_params())).await;
    let (alice, bob) = (key("alice"), key("bob"));
    let a = proposer
        .tx(&alice, vec![submit(&alice, rollup("r"), b"alice-1")])
        .await;
    let b = proposer
        .tx(
            &bob,
            vec![
                submit(&bob, rollup("r"), b"bob-1"),
                submit(&bob, rollup("s"), b"bob-2"),
            ],
        )
        .await;
    let prepared = proposer
        .app
        .prepare_proposal(prepare_request(1, vec![a.clone().into(), b.clone().into()]))
        .await
        .unwrap()
        .txs;
    assert_eq!(prepared.len(), 3);
    assert_eq!(
        prepared[0],
        item_for(vec![
            (rollup("r"), b"alice-1".to_vec()),
            (rollup("r"), b"bob-1".to_vec()),
            (rollup("s"), b"bob-2".to_vec()),
        ])
    );

    // Control: the untampered proposal is accepted by a validator that never saw the txs.
    assert_eq!(
        fresh_verdict(prepared.clone()).await,
        ProcessProposal::Accept
    );

    let mut cases: Vec<(&str, Vec<Bytes>)> = Vec::new();

    let mut tampered = prepared.clone();
    let mut item = tampered[0].to_vec();
    let last = item.len() - 1;
    item[last] ^= 1;
    tampered[0] = item.into();
    cases.push(("tampered commitment item", tampered));

    cases.push(("missing commitment item", prepared[1..].to_vec()));
    cases.push(("empty proposal", vec![]));

    let (seq, number) = proposer.account(&alice).await;
    let failing = sign(
        &alice,
        number,
        seq + 5,
        vec![send(&alice, bob.address(), utnd(1))],
        100_000,
    );
    let mut with_failing = prepared.clone();
    with_failing.push(failing.into());
    cases.push(("failing tx", with_failing));

    let mut undecodable = prepared.clone();
    undecodable.push(Bytes::from_static(b"\x0a\xff\xff\xff\xff not a tx"));
    cases.push(("undecodable bytes", undecodable));

    // Rollup data reordered against the commitments: the same two txs swapped, with the item
    // of the original order.
    cases.push((
        "rollup data reordered",
        vec![
            prepared[0].clone(),
            prepared[2].clone(),
            prepared[1].clone(),
        ],
    ));

    // A tx above max_tx_bytes (a long memo, no rollup data), with a matching item.
    let carol = key("carol");
    let (seq, number) = proposer.account(&carol).await;
    let oversized = tandem_core::TxBuilder::new(crate::harness::CHAIN_ID, number, seq)
        .message(send(&carol, bob.address(), utnd(1)))
        .fee(1_000_000)
        .memo("m".repeat(2_100))
        .sign(&carol)
        .unwrap();
    assert!(oversized.len() > 2_048);
    cases.push((
        "tx above max_tx_bytes",
        vec![item_for(vec![]), oversized.into()],
    ));

    let big = sign(
        &carol,
        number,
        seq,
        vec![
            submit(&carol, rollup("t"), &[3; 1_400]),
            submit(&carol, rollup("t"), &[4; 90]),
        ],
        1_000_000,
    );
    assert!(big.len() <= 2_048, "within max_tx_bytes");
    // Two txs each within limits whose rollup data together exceed the block budget, with a
    // matching item.
    let second = sign(
        &alice,
        0,
        0,
        vec![submit(&alice, rollup("t"), &[7; 200])],
        1_000_000,
    );
    cases.push((
        "rollup bytes above the block budget",
        vec![
            item_for(vec![
                (rollup("t"), vec![3; 1_400]),
                (rollup("t"), vec![4; 90]),
                (rollup("t"), vec![7; 200]),
            ]),
            big.clone().into(),
            second.into(),
        ],
    ));
    // Control for the budget case: the first tx alone fits and is accepted.
    assert_eq!(
        fresh_verdict(vec![
            item_for(vec![
                (rollup("t"), vec![3; 1_400]),
                (rollup("t"), vec![4; 90])
            ]),
            big.into(),
        ])
        .await,
        ProcessProposal::Accept
    );

    for (name, txs) in cases {
        assert_eq!(
            verdict(&proposer, txs.clone()).await,
            ProcessProposal::Reject,
            "proposer accepted: {name}"
        );
        assert_eq!(
            fresh_verdict(txs).await,
            ProcessProposal::Reject,
            "validator accepted: {name}"
        );
    }

    // After all the rejections the proposer still accepts its own proposal.
    assert_eq!(verdict(&proposer, prepared).await, ProcessProposal::Accept);
}

#[tokio::test]
async fn prepare_respects_byte_budgets_and_drops_failures() {
    let chain = Chain::with_genesis(genesis(small_params())).await;
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    let a = chain
        .tx(&alice, vec![submit(&alice, rollup("r"), &[1; 1_000])])
        .await;
    let b = chain
        .tx(&bob, vec![submit(&bob, rollup("r"), &[2; 1_000])])
        .await; // over the rollup budget with `a`
    let c = chain
        .tx(&carol, vec![send(&carol, alice.address(), utnd(3))])
        .await;
    let (seq, number) = chain.account(&alice).await;
    let failing = sign(
        &alice,
        number,
        seq + 9,
        vec![send(&alice, bob.address(), utnd(1))],
        100_000,
    );
    let prepared = chain
        .app
        .prepare_proposal(prepare_request(
            1,
            vec![
                a.clone().into(),
                b.into(),
                failing.into(),
                c.clone().into(),
                Bytes::from_static(b"junk"),
            ],
        ))
        .await
        .unwrap()
        .txs;
    assert_eq!(
        prepared[1..],
        [Bytes::from(a.clone()), Bytes::from(c.clone())]
    );

    // CometBFT's max_tx_bytes counts the item and each tx's protobuf framing.
    let mut request = prepare_request(1, vec![a.clone().into(), c.into()]);
    request.max_tx_bytes = i64::try_from(prepared[0].len() + 2 + a.len() + 3).unwrap();
    let tight = chain.app.prepare_proposal(request).await.unwrap().txs;
    assert_eq!(tight.len(), 2, "only the item and the first tx fit");
}

/// ProcessProposal executes a block while it checks the signatures on other cores: a tx that
/// would execute but whose signature does not verify still rejects the proposal, wherever it
/// sits among the checks, and nothing executed for it is kept.
#[tokio::test]
async fn a_forged_signature_rejects_a_proposal_that_executes() {
    let signers = [key("alice"), key("bob"), key("carol")];
    let validator = Chain::new().await;
    let mut numbers = Vec::new();
    for signer in &signers {
        numbers.push(validator.account(signer).await.1);
    }
    // 50 txs per signer, interleaved: 150 txs, so the checks run in several chunks.
    let block = |forged: Option<usize>| {
        let mut items = Vec::new();
        let mut txs = Vec::new();
        for i in 0..150usize {
            let (signer, number) = (&signers[i % 3], numbers[i % 3]);
            let data = format!("tx {i}").into_bytes();
            items.push((rollup("r"), data.clone()));
            let message = vec![submit(signer, rollup("r"), &data)];
            let sequence = u64::try_from(i / 3).unwrap();
            // Signed for another account number: it decodes and would execute, but its
            // signature does not verify for the signer's account.
            let number = if forged == Some(i) {
                number + 7
            } else {
                number
            };
            txs.push(Bytes::from(sign(
                signer, number, sequence, message, 1_000_000,
            )));
        }
        let mut proposal = vec![item_for(items)];
        proposal.extend(txs);
        proposal
    };
    let honest = block(None);

    for forged in [0, 70, 149] {
        let proposal = block(Some(forged));
        assert_ne!(proposal, honest);
        assert_eq!(
            verdict(&validator, proposal).await,
            ProcessProposal::Reject,
            "forged signature at {forged} accepted"
        );
    }

    // The same validator then accepts and finalizes the honest block, exactly as a chain that
    // never saw the forged ones.
    assert_eq!(
        verdict(&validator, honest.clone()).await,
        ProcessProposal::Accept
    );
    let mut validator = validator;
    let finalized = validator.finalize_and_commit(honest.clone()).await;
    assert!(finalized.finalize.tx_results.iter().all(|r| r.code.is_ok()));
    let mut reference = Chain::new().await;
    let expected = reference.finalize_and_commit(honest).await;
    assert_eq!(finalized.app_hash(), expected.app_hash());
}
