//! Determinism: two apps in separate data dirs, fed the same 60 blocks (bundles, transfers,
//! param changes, validator changes, failing txs), report the same app hash at every height;
//! an insta snapshot pins the final one. A changed snapshot is a state-breaking change.

use bytes::Bytes;
use tandem_core::{Message, Params, SigningKey};
use tendermint::v0_38::abci::response;

use crate::harness::{
    key, prepare_request, process_request, rollup, send, sign, submit, update_params,
    update_validator, utnd, validator_key, Chain,
};

const BLOCKS: u64 = 60;

/// The txs of block `h`, built against `chain`'s pending state (CheckTx admits each first),
/// and how many of them the block must include: every tx CheckTx admitted (a bundle, a
/// transfer, a param or validator change), none of those it refused.
async fn block_txs(chain: &Chain, h: u64) -> (Vec<Vec<u8>>, usize) {
    let users: Vec<SigningKey> = ["alice", "bob", "carol"].iter().map(|n| key(n)).collect();
    let authority = key("authority");
    let mut txs = Vec::new();
    let mut admitted = 0;
    for (i, user) in users.iter().enumerate() {
        let next = &users[(i + 1) % users.len()];
        let messages: Vec<Message> = match (h + i as u64) % 4 {
            0 => vec![send(
                user,
                next.address(),
                utnd(u128::from(h) * 10 + i as u128 + 1),
            )],
            1 => vec![submit(
                user,
                rollup(&format!("r{}", h % 3)),
                format!("{h}-{i}").as_bytes(),
            )],
            2 => vec![
                submit(
                    user,
                    rollup("bundle-x"),
                    &[u8::try_from(h % 256).unwrap(); 40],
                ),
                submit(user, rollup("bundle-y"), &[u8::try_from(i).unwrap(); 24]),
                send(user, key(&format!("fresh-{h}")).address(), utnd(5)),
            ],
            _ => vec![
                submit(user, rollup("r0"), b"x"),
                send(
                    user,
                    next.address(),
                    vec![tandem_core::Coin {
                        denom: "uatom".into(),
                        amount: 1,
                    }],
                ),
            ],
        };
        let scarce = (h + i as u64) % 4 == 3;
        let tx = chain.tx(user, messages).await;
        // Admitted txs advance the pending sequence. Only a tx moving uatom (which only bob
        // holds, 500 of) may be refused; transfers and bundles must all get in.
        let check = chain.check(&tx).await;
        if check.code.is_ok() {
            admitted += 1;
        } else {
            assert!(scarce, "height {h}, user {i}: {}", check.log);
        }
        txs.push(tx);
    }
    if h % 10 == 5 {
        let params = Params {
            fee_per_byte: 10 + h,
            ..Params::default()
        };
        let tx = chain
            .tx(&authority, vec![update_params(&authority, params)])
            .await;
        let check = chain.check(&tx).await;
        assert!(check.code.is_ok(), "height {h}: {}", check.log);
        admitted += 1;
        txs.push(tx);
    }
    if h % 15 == 7 {
        let tx = chain
            .tx(
                &authority,
                vec![update_validator(
                    &authority,
                    validator_key(2 + (h % 3) as u8),
                    h,
                )],
            )
            .await;
        let check = chain.check(&tx).await;
        assert!(check.code.is_ok(), "height {h}: {}", check.log);
        admitted += 1;
        txs.push(tx);
    }
    // A tx that always fails (sequence far too high); Prepare drops it.
    let (seq, number) = chain.account(&users[0]).await;
    txs.push(sign(
        &users[0],
        number,
        seq + 100,
        vec![send(&users[0], users[1].address(), utnd(1))],
        1_000_000,
    ));
    (txs, admitted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_agree_on_every_app_hash() {
    let mut a = Chain::new().await;
    let mut b = Chain::new().await;
    // `c` replays decided blocks (FinalizeBlock only), as a node catching up does, with
    // every cache disabled: the caches of `a` and `b` must not change a single answer.
    let mut c = Chain::uncached().await;
    let mut last = String::new();
    for h in 1..=BLOCKS {
        let (txs, admitted) = block_txs(&a, h).await;
        // `a` proposes from its mempool; `b` never saw the txs and must agree on the
        // proposal, then finalize it independently.
        let outcome_a = a.block(txs).await;
        let process = b
            .app
            .process_proposal(process_request(h, outcome_a.txs.clone()))
            .await
            .unwrap();
        assert_eq!(process, response::ProcessProposal::Accept, "height {h}");
        let outcome_b = b.finalize_and_commit(outcome_a.txs.clone()).await;
        assert_eq!(
            outcome_a.app_hash(),
            outcome_b.app_hash(),
            "app hash differs at height {h}"
        );
        let codes_a: Vec<u32> = outcome_a
            .finalize
            .tx_results
            .iter()
            .map(|r| r.code.value())
            .collect();
        let codes_b: Vec<u32> = outcome_b
            .finalize
            .tx_results
            .iter()
            .map(|r| r.code.value())
            .collect();
        assert_eq!(codes_a, codes_b);
        let outcome_c = c.finalize_and_commit(outcome_a.txs.clone()).await;
        assert_eq!(
            outcome_a.app_hash(),
            outcome_c.app_hash(),
            "replay differs at height {h}"
        );
        // The commitment item, then exactly the admitted txs.
        assert_eq!(
            outcome_a.txs.len(),
            1 + admitted,
            "height {h}: the block must hold every admitted tx"
        );
        last = outcome_a.app_hash();
    }
    for h in 1..=BLOCKS {
        let block = b.app.sequencer_block(h).await.unwrap().unwrap();
        assert_eq!(block, a.app.sequencer_block(h).await.unwrap().unwrap());
    }
    insta::assert_snapshot!("app_hash_after_60_blocks", last);
}

#[tokio::test]
async fn prepare_is_deterministic_over_the_same_candidates() {
    let a = Chain::new().await;
    let b = Chain::new().await;
    let txs: Vec<Bytes> = block_txs(&a, 2)
        .await
        .0
        .into_iter()
        .map(Bytes::from)
        .collect();
    let pa = a
        .app
        .prepare_proposal(prepare_request(1, txs.clone()))
        .await
        .unwrap();
    let pb = b
        .app
        .prepare_proposal(prepare_request(1, txs))
        .await
        .unwrap();
    assert_eq!(pa.txs, pb.txs);
}
