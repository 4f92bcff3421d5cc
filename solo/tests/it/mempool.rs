//! The bounded mempool: limits are enforced with clear errors.

use std::time::Duration;

use tendermint_rpc::Client;

use crate::{
    support::{start_node, wait_height, write_home},
    testapp::TestApp,
};

#[tokio::test]
async fn oversized_full_and_duplicate_txs_are_refused_with_clear_errors() {
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    // No empty blocks and a long commit timeout: after block 1, txs stay in the mempool.
    write_home(dir.path(), app.addr, Duration::from_hours(1), false);
    let (node, client) = start_node(dir.path(), |c| {
        c.mempool.max_txs = 2;
        c.mempool.max_tx_bytes = 64;
    })
    .await;
    wait_height(&client, 1, Duration::from_secs(30)).await;

    let big = vec![b'a'; 65];
    let err = client.broadcast_tx_sync(big).await.unwrap_err().to_string();
    assert!(
        err.contains("tx too large: 65 bytes, the limit is 64 bytes"),
        "{err}"
    );
    assert_eq!(
        app.state.lock().unwrap().check_txs,
        0,
        "refused before CheckTx"
    );

    assert!(client
        .broadcast_tx_sync(b"a=1".to_vec())
        .await
        .unwrap()
        .code
        .is_ok());
    let dup = client
        .broadcast_tx_sync(b"a=1".to_vec())
        .await
        .unwrap_err()
        .to_string();
    assert!(dup.contains("tx already exists in cache"), "{dup}");
    assert!(client
        .broadcast_tx_sync(b"b=2".to_vec())
        .await
        .unwrap()
        .code
        .is_ok());
    let full = client
        .broadcast_tx_sync(b"c=3".to_vec())
        .await
        .unwrap_err()
        .to_string();
    assert!(full.contains("mempool is full: 2 txs (max 2)"), "{full}");

    node.shutdown().await.unwrap();
    app.stop().await;
}

/// A tx that fits the mempool but no block (here: larger than the genesis block size leaves for
/// data) is passed over when proposing, so the txs behind it still get into blocks.
#[tokio::test]
async fn a_tx_too_large_for_any_block_does_not_stall_the_ones_behind_it() {
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_home(dir.path(), app.addr, Duration::from_millis(50), false);
    let genesis_path = dir.path().join("config/genesis.json");
    let mut genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&genesis_path).unwrap()).unwrap();
    genesis["consensus_params"]["block"]["max_bytes"] = "4096".into();
    genesis["consensus_params"]["evidence"]["max_bytes"] = "0".into();
    std::fs::write(&genesis_path, serde_json::to_vec(&genesis).unwrap()).unwrap();
    let (node, client) = start_node(dir.path(), |c| c.mempool.max_tx_bytes = 8192).await;
    wait_height(&client, 1, Duration::from_secs(30)).await;

    let mut big = b"big=".to_vec();
    big.resize(4000, b'x');
    assert!(client.broadcast_tx_sync(big).await.unwrap().code.is_ok());
    let small = client
        .broadcast_tx_commit(b"small=1".to_vec())
        .await
        .unwrap();
    assert!(small.tx_result.code.is_ok(), "{small:?}");
    node.shutdown().await.unwrap();
}
