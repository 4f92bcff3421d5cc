//! Call order, restarts of the host and of the application.

use std::time::Duration;

use tendermint::block::Height;
use tendermint_rpc::{Client, HttpClient};

use crate::{
    kill::{chain, send_tx_until_committed},
    support::{eventually, raw_rpc, start_node, start_test_node, wait_height, write_home},
    testapp::TestApp,
};

const DEADLINE: Duration = Duration::from_secs(30);

async fn app_hashes(client: &HttpClient, to: u64) -> Vec<tendermint::AppHash> {
    let mut out = Vec::new();
    for h in 1..=to {
        let block = client.block(Height::try_from(h).unwrap()).await.unwrap();
        assert_eq!(block.block.header.height.value(), h);
        out.push(block.block.header.app_hash);
    }
    out
}

#[tokio::test]
async fn abci_calls_follow_cometbft_order() {
    let (app, _dir, node, client) = start_test_node(Duration::from_millis(10), true, |_| {}).await;
    wait_height(&client, 3, DEADLINE).await;
    node.shutdown().await.unwrap();
    let calls = app.calls();
    assert_eq!(calls[0], "InitChain");
    let blocks: Vec<&[&str]> = calls[1..].chunks(4).collect();
    for chunk in &blocks[..blocks.len() - 1] {
        assert_eq!(
            *chunk,
            [
                "PrepareProposal",
                "ProcessProposal",
                "FinalizeBlock",
                "Commit"
            ]
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn host_restart_resumes_and_app_restart_replays() {
    let app = TestApp::start().await;
    let app_addr = app.addr;
    let dir = tempfile::tempdir().unwrap();
    write_home(dir.path(), app.addr, Duration::from_millis(10), true);

    let (node, client) = start_node(dir.path(), |_| {}).await;
    client.broadcast_tx_commit(b"k=1".to_vec()).await.unwrap();
    let h1 = wait_height(&client, 5, DEADLINE).await;
    node.shutdown().await.unwrap();

    // Host restart: the app keeps its state, the host resumes at the next height.
    let (node, client) = start_node(dir.path(), |_| {}).await;
    let h2 = wait_height(&client, h1 + 3, DEADLINE).await;
    assert_eq!(
        app.state.lock().unwrap().init_chains,
        1,
        "no InitChain when the app has state"
    );
    let hashes = app_hashes(&client, h2).await;

    // App crash: a fresh app on the same address gets InitChain and a replay of every block,
    // and must reach the same app hashes.
    app.stop().await;
    let app = TestApp::start_on(&app_addr.to_string()).await;
    let h3 = wait_height(&client, h2 + 3, DEADLINE).await;
    assert_eq!(app.state.lock().unwrap().init_chains, 1);
    let replayed = app_hashes(&client, h2).await;
    assert_eq!(hashes, replayed);
    let query = client
        .abci_query(None, b"k".to_vec(), None, false)
        .await
        .unwrap();
    assert_eq!(query.value, b"1", "replayed state holds the tx");
    assert!(app.committed_height() >= i64::try_from(h3).unwrap() - 1);

    node.shutdown().await.unwrap();
    app.stop().await;
}

/// The application dies inside Commit while the host lives on. The block is saved, so the host
/// replays it after reconnecting; the tx it holds must leave the mempool and be found by hash,
/// never be proposed a second time.
#[tokio::test]
async fn a_failed_commit_is_finished_after_the_reconnect() {
    let (app, _dir, node, client) = start_test_node(Duration::from_millis(10), false, |_| {}).await;
    wait_height(&client, 1, DEADLINE).await;

    app.state.lock().unwrap().fail_next_commit = true;
    send_tx_until_committed(&client, b"k=1").await;
    assert!(
        !app.state.lock().unwrap().fail_next_commit,
        "the app dropped a Commit"
    );
    // Idle: the proof block after the tx's block is made and nothing else waits.
    let blocks = eventually("an idle chain", DEADLINE, || async {
        let blocks = chain(&client).await;
        let unconfirmed = raw_rpc(
            node.rpc_addr(),
            r#"{"jsonrpc":"2.0","id":1,"method":"num_unconfirmed_txs","params":{}}"#,
        )
        .await;
        (blocks.last().is_some_and(|(_, txs)| txs.is_empty())
            && unconfirmed["result"]["total"] == "0")
            .then_some(blocks)
    })
    .await;
    let copies = blocks
        .iter()
        .flat_map(|(_, txs)| txs)
        .filter(|tx| tx.as_slice() == b"k=1")
        .count();
    assert_eq!(copies, 1, "the tx is in exactly one block");
    assert_eq!(app.committed_height(), i64::try_from(blocks.len()).unwrap());

    node.shutdown().await.unwrap();
    app.stop().await;
}

/// An ABCI exception on a consensus call stops the node with an error naming the call, as
/// `CometBFT` stops, instead of reconnecting and asking again in a loop.
#[tokio::test]
async fn an_application_exception_stops_the_node() {
    let (app, _dir, mut node, client) =
        start_test_node(Duration::from_millis(10), true, |_| {}).await;
    wait_height(&client, 1, DEADLINE).await;
    let sent = client
        .broadcast_tx_sync(b"raise:now".to_vec())
        .await
        .unwrap();
    assert!(sent.code.is_ok(), "admitted by CheckTx");
    let stopped = tokio::time::timeout(DEADLINE, node.wait())
        .await
        .expect("the node stops within the deadline");
    let error = stopped.unwrap_err().to_string();
    assert!(
        error.contains("exception on FinalizeBlock") && error.contains("raised on purpose"),
        "{error}"
    );
    // The consensus task has ended: nothing asks the application again.
    assert_eq!(
        app.calls()
            .iter()
            .filter(|c| **c == "FinalizeBlock")
            .count(),
        app.calls().iter().filter(|c| **c == "Commit").count() + 1,
        "one FinalizeBlock more than Commits: the one that raised, asked once"
    );
    app.stop().await;
}

/// A genesis time in the future holds the first block until then, as `CometBFT` sleeps until
/// it; the first block carries the genesis time.
#[tokio::test]
async fn no_block_before_the_genesis_time() {
    let genesis_time = (tendermint::Time::now() + Duration::from_millis(1500)).unwrap();
    let (app, _dir, node, client) = start_test_node(Duration::from_millis(10), true, |config| {
        config.genesis.genesis_time = genesis_time;
    })
    .await;
    wait_height(&client, 1, DEADLINE).await;
    let now = tendermint::Time::now();
    assert!(
        now >= genesis_time,
        "block 1 committed at {now}, before {genesis_time}"
    );
    let first = client.block(Height::from(1_u32)).await.unwrap();
    assert_eq!(first.block.header.time, genesis_time);
    node.shutdown().await.unwrap();
    app.stop().await;
}
