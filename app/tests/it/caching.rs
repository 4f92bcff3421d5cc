//! What the app caches between ABCI calls must never change an answer: Recheck after a block
//! made a pending tx stale, and FinalizeBlock of a block other than the one processed last
//! (a round change) or with another header.

use bytes::Bytes;
use tandem_app::codes;
use tendermint::v0_38::abci::{request, response};

use crate::harness::{
    block_time, finalize_request, key, prepare_request, process_request, rollup, send, submit,
    utnd, Chain,
};

fn recheck(tx: &[u8]) -> request::CheckTx {
    request::CheckTx {
        tx: Bytes::copy_from_slice(tx),
        kind: request::CheckTxKind::Recheck,
    }
}

#[tokio::test]
async fn recheck_refuses_what_the_committed_block_made_stale() {
    let mut chain = Chain::new().await;
    let (alice, bob, carol) = (key("alice"), key("bob"), key("carol"));
    // Admitted here: alice's and bob's sequence-0 txs.
    let alice_pending = chain
        .tx(&alice, vec![send(&alice, carol.address(), utnd(1))])
        .await;
    assert!(chain.check(&alice_pending).await.code.is_ok());
    let bob_pending = chain
        .tx(&bob, vec![submit(&bob, rollup("r"), b"pending")])
        .await;
    assert!(chain.check(&bob_pending).await.code.is_ok());

    // Another validator's proposal commits a different sequence-0 tx of alice's.
    let proposal = first_proposal(vec![send(&alice, carol.address(), utnd(2))]).await;
    assert_eq!(proposal.len(), 2);
    chain.finalize_and_commit(proposal).await;

    // CometBFT rechecks what is left in its mempool, in order.
    let bob_again = chain.app.check_tx(recheck(&bob_pending)).await;
    assert!(bob_again.code.is_ok(), "{}", bob_again.log);
    let alice_again = chain.app.check_tx(recheck(&alice_pending)).await;
    assert_eq!(
        alice_again.code.value(),
        codes::SEQUENCE_TOO_LOW,
        "{}",
        alice_again.log
    );
    assert!(alice_again.log.contains("sequence"), "{}", alice_again.log);
    // The pending state is the committed one plus the rechecked txs: alice goes on from 1,
    // bob from 1.
    assert_eq!(chain.account(&alice).await.0, 1);
    assert_eq!(chain.account(&bob).await.0, 1);
    let next = chain
        .tx(&alice, vec![send(&alice, carol.address(), utnd(3))])
        .await;
    assert!(chain.check(&next).await.code.is_ok());
}

/// The block that another proposer, on a fresh chain, prepares at height 1 from one tx of
/// alice's carrying `messages`.
async fn first_proposal(messages: Vec<tandem_core::Message>) -> Vec<Bytes> {
    let proposer = Chain::new().await;
    let tx = proposer.tx(&key("alice"), messages).await;
    proposer
        .app
        .prepare_proposal(prepare_request(1, vec![Bytes::from(tx)]))
        .await
        .unwrap()
        .txs
}

/// `chain`'s ProcessProposal verdict on `txs` as the block at height 1.
async fn process_first(chain: &Chain, txs: &[Bytes]) -> response::ProcessProposal {
    chain
        .app
        .process_proposal(process_request(1, txs.to_vec()))
        .await
        .unwrap()
}

/// Finalizes `txs` at height 1 on a fresh chain that saw nothing else: the reference answer.
async fn reference(txs: &[Bytes]) -> response::FinalizeBlock {
    let mut chain = Chain::new().await;
    chain.finalize_and_commit(txs.to_vec()).await.finalize
}

#[tokio::test]
async fn finalize_executes_the_decided_block_not_the_one_processed_last() {
    let (alice, bob) = (key("alice"), key("bob"));
    // Two proposals for height 1 from two proposers, with different txs.
    let a = first_proposal(vec![send(&alice, bob.address(), utnd(5))]).await;
    let b = first_proposal(vec![submit(&alice, rollup("b"), b"round one")]).await;
    assert_ne!(a, b);

    // The validator processes A in round 0 and B in round 1, then A is decided; and the
    // other way round. A cached execution of the wrong block would show in the app hash.
    for (first, second, decided) in [(&a, &b, &a), (&a, &b, &b), (&b, &a, &b)] {
        let validator = Chain::new().await;
        for proposal in [first, second] {
            assert_eq!(
                process_first(&validator, proposal).await,
                response::ProcessProposal::Accept
            );
        }
        let finalized = validator
            .app
            .finalize_block(finalize_request(1, decided.clone()))
            .await
            .unwrap();
        validator.app.commit().await.unwrap();
        let expected = reference(decided).await;
        assert_eq!(finalized.app_hash, expected.app_hash);
        assert_eq!(finalized.tx_results, expected.tx_results);
    }
}

/// ProcessProposal stages the block it accepts with the header it was asked about; FinalizeBlock
/// reuses that only for the same header, so a decided block whose time differs from the one
/// processed (which the block hash rules out on a real chain) is staged anew.
#[tokio::test]
async fn finalize_restages_a_block_processed_with_another_header() {
    let proposal = first_proposal(vec![submit(&key("alice"), rollup("r"), b"data")]).await;
    let validator = Chain::new().await;
    assert_eq!(
        process_first(&validator, &proposal).await,
        response::ProcessProposal::Accept
    );

    let mut decided = finalize_request(1, proposal.clone());
    decided.time = block_time(5);
    let finalized = validator.app.finalize_block(decided).await.unwrap();
    validator.app.commit().await.unwrap();
    let block = validator.app.sequencer_block(1).await.unwrap().unwrap();
    assert_eq!(block.header().time, block_time(5));
    assert_eq!(finalized.app_hash, reference(&proposal).await.app_hash);
}
