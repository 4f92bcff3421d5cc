//! Crash safety at the state level: an app dropped after FinalizeBlock and before Commit
//! reopens at the previous height, and replaying the block yields the same app hash.

use tandem_app::{App, AppConfig};
use tendermint::v0_38::abci::request;

use crate::harness::{finalize_request, key, rollup, send, submit, utnd, Chain};

fn info() -> request::Info {
    request::Info {
        version: "0.38.17".to_string(),
        block_version: 11,
        p2p_version: 8,
        abci_version: "2.0.0".to_string(),
    }
}

#[tokio::test]
async fn restart_between_finalize_and_commit_replays_to_the_same_hash() {
    let mut chain = Chain::new().await;
    let (alice, bob) = (key("alice"), key("bob"));
    for i in 0..3u8 {
        let tx = chain
            .tx(&alice, vec![submit(&alice, rollup("r"), &[i; 10])])
            .await;
        chain.block(vec![tx]).await;
    }
    let committed = chain.app.info(info()).await.unwrap();
    assert_eq!(committed.last_block_height.value(), 3);

    // Block 4: prepared and finalized, never committed.
    let tx = chain
        .tx(
            &bob,
            vec![
                send(&bob, alice.address(), utnd(9)),
                submit(&bob, rollup("s"), b"x"),
            ],
        )
        .await;
    let prepared = chain
        .app
        .prepare_proposal(crate::harness::prepare_request(4, vec![tx.into()]))
        .await
        .unwrap();
    let finalized = chain
        .app
        .finalize_block(finalize_request(4, prepared.txs.clone()))
        .await
        .unwrap();

    let Chain { app, dir, .. } = chain;
    app.shutdown().await;

    let reopened = App::open(AppConfig::new(dir.path())).await.unwrap();
    let info = reopened.info(info()).await.unwrap();
    assert_eq!(
        info.last_block_height.value(),
        3,
        "the uncommitted block is gone"
    );
    assert_eq!(info.last_block_app_hash, committed.last_block_app_hash);
    assert_eq!(reopened.latest_block_height(), 3);
    assert!(reopened.sequencer_block(4).await.unwrap().is_none());

    // CometBFT's handshake replays block 4 with FinalizeBlock + Commit.
    let replayed = reopened
        .finalize_block(finalize_request(4, prepared.txs))
        .await
        .unwrap();
    assert_eq!(replayed.app_hash, finalized.app_hash);
    assert_eq!(replayed.tx_results, finalized.tx_results);
    reopened.commit().await.unwrap();
    let info = reopened.info(info_default()).await.unwrap();
    assert_eq!(info.last_block_height.value(), 4);
    assert_eq!(info.last_block_app_hash, finalized.app_hash);
}

fn info_default() -> request::Info {
    info()
}

#[tokio::test]
async fn repeated_init_chain_after_a_crash_returns_the_genesis_hash() {
    let dir = tempfile::tempdir().unwrap();
    let genesis = crate::harness::genesis(tandem_core::Params::default());
    let init = crate::harness::init_request(&genesis, &[crate::harness::validator_key(1)]);
    let app = App::open(AppConfig::new(dir.path())).await.unwrap();
    let first = app.init_chain(init.clone()).await.unwrap();
    app.shutdown().await;

    let app = App::open(AppConfig::new(dir.path())).await.unwrap();
    let again = app.init_chain(init.clone()).await.unwrap();
    assert_eq!(first.app_hash, again.app_hash);

    let mut other = genesis.clone();
    other.accounts.pop();
    let mut different = init;
    different.app_state_bytes = serde_json::to_vec(&other).unwrap().into();
    let err = app.init_chain(different).await.unwrap_err();
    assert!(err.to_string().contains("different genesis"), "{err}");
}

#[tokio::test]
async fn consensus_calls_out_of_order_are_errors() {
    let mut chain = Chain::new().await;
    assert!(
        chain.app.commit().await.is_err(),
        "Commit without FinalizeBlock"
    );
    let err = chain
        .app
        .finalize_block(finalize_request(5, vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("height 5"), "{err}");
    // A decided block without a commitment item cannot be executed.
    let err = chain
        .app
        .finalize_block(finalize_request(1, vec![]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("commitment item"), "{err}");
    chain.block(vec![]).await;
}

/// Blocks without user txs survive a restart: every block writes verifiable state (the
/// height), which is what makes cnidarium persist its version.
#[tokio::test]
async fn blocks_without_txs_survive_a_restart() {
    let mut chain = Chain::new().await;
    chain.block(vec![]).await;
    let last = chain.block(vec![]).await;
    let Chain { app, dir, .. } = chain;
    app.shutdown().await;
    let reopened = App::open(AppConfig::new(dir.path())).await.unwrap();
    let info = reopened.info(info()).await.unwrap();
    assert_eq!(info.last_block_height.value(), 2);
    assert_eq!(
        hex::encode(info.last_block_app_hash.as_bytes()),
        last.app_hash()
    );
}
