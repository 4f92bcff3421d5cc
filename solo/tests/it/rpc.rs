//! tendermint-rpc's HTTP and WebSocket clients against a running node.

use std::time::Duration;

use futures::StreamExt;
use tendermint::block::Height;
use tendermint_rpc::{
    event::EventData, query::EventType, Client, SubscriptionClient, WebSocketClient,
};

use crate::{
    support::{
        abci_info_app_hash, raw_get, raw_rpc, start_node, start_test_node, wait_height, write_home,
        CHAIN_ID,
    },
    testapp::TestApp,
};

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn http_client_reads_chain_and_broadcasts() {
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_home(dir.path(), app.addr, Duration::from_millis(50), true);
    let (node, client) = start_node(dir.path(), |_| {}).await;

    let status = client.status().await.unwrap();
    assert!(status.node_info.version.to_string().starts_with("0.38."));
    assert_eq!(status.node_info.network.as_str(), CHAIN_ID);
    assert!(client.health().await.is_ok());
    let genesis: tendermint::Genesis<serde_json::Value> = client.genesis().await.unwrap();
    assert_eq!(genesis.chain_id.as_str(), CHAIN_ID);

    wait_height(&client, 3, DEADLINE).await;
    let b2 = client.block(Height::from(2_u32)).await.unwrap();
    let b3 = client.block(Height::from(3_u32)).await.unwrap();
    assert_eq!(b2.block.header.height.value(), 2);
    assert_eq!(b3.block.header.last_block_id, Some(b2.block_id));
    assert_eq!(b2.block_id.hash, b2.block.header.hash());
    let latest = client.latest_block().await.unwrap();
    assert!(latest.block.header.height.value() >= 3);

    let results = client.block_results(Height::from(2_u32)).await.unwrap();
    assert_eq!(results.height.value(), 2);
    assert_eq!(b3.block.header.app_hash, results.app_hash);

    let commit = client.commit(Height::from(2_u32)).await.unwrap();
    assert_eq!(commit.signed_header.commit.block_id, b2.block_id);
    assert!(commit.canonical);

    let vals = client
        .validators(Height::from(2_u32), tendermint_rpc::Paging::All)
        .await
        .unwrap();
    assert_eq!(vals.validators.len(), 1);
    assert_eq!(vals.validators[0].power.value(), 10);

    // broadcast_tx_commit, then the tx is visible through abci_query and /tx.
    let committed = client
        .broadcast_tx_commit(b"color=blue".to_vec())
        .await
        .unwrap();
    assert!(committed.check_tx.code.is_ok());
    assert!(committed.tx_result.code.is_ok());
    assert!(committed.height.value() > 0);
    let query = client
        .abci_query(None, b"color".to_vec(), None, false)
        .await
        .unwrap();
    assert_eq!(query.value, b"blue");
    let tx = client.tx(committed.hash, false).await.unwrap();
    assert_eq!(tx.height, committed.height);
    assert_eq!(tx.tx, b"color=blue");
    assert!(tx.proof.is_none());
    assert_tx_proof(&client, committed.hash, committed.height, b"color=blue").await;

    let sync = client
        .broadcast_tx_sync(b"shape=round".to_vec())
        .await
        .unwrap();
    assert!(sync.code.is_ok());
    let bad = client
        .broadcast_tx_sync(b"no-equals-sign".to_vec())
        .await
        .unwrap();
    assert!(bad.code.is_err(), "malformed tx must fail CheckTx");
    let asynced = client
        .broadcast_tx_async(b"size=big".to_vec())
        .await
        .unwrap();
    assert!(asynced.code.is_ok());
    crate::support::eventually("async tx committed", DEADLINE, || async {
        client
            .abci_query(None, b"size".to_vec(), None, false)
            .await
            .ok()
            .filter(|q| q.value == b"big")
    })
    .await;

    let info = client.abci_info().await.unwrap();
    assert_eq!(info.data, "solo-testapp");

    // Unknown methods and malformed requests.
    let unknown = raw_rpc(
        node.rpc_addr(),
        r#"{"jsonrpc":"2.0","id":7,"method":"no_such_method","params":{}}"#,
    )
    .await;
    assert_eq!(unknown["error"]["code"], -32601);
    assert_eq!(unknown["id"], 7);
    let garbage = raw_rpc(node.rpc_addr(), "{not json").await;
    assert_eq!(garbage["error"]["code"], -32700);
    let too_high = raw_rpc(
        node.rpc_addr(),
        r#"{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":"999999"}}"#,
    )
    .await;
    assert!(too_high["error"]["data"]
        .as_str()
        .unwrap()
        .contains("must be less than or equal"));

    node.shutdown().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn websocket_new_block_and_tx_subscriptions() {
    let (app, _dir, node, client) = start_test_node(Duration::from_millis(50), true, |_| {}).await;
    wait_height(&client, 1, DEADLINE).await;

    let url = format!("ws://{}/websocket", node.rpc_addr());
    let (ws, driver) = WebSocketClient::new(url.as_str()).await.unwrap();
    let driver = tokio::spawn(driver.run());

    let mut blocks = ws.subscribe(EventType::NewBlock.into()).await.unwrap();
    let mut heights = Vec::new();
    while heights.len() < 4 {
        let event = tokio::time::timeout(DEADLINE, blocks.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match event.data {
            EventData::NewBlock {
                block,
                result_finalize_block,
                ..
            } => {
                heights.push(block.unwrap().header.height.value());
                assert!(result_finalize_block.is_some());
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    for pair in heights.windows(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "NewBlock heights must be consecutive: {heights:?}"
        );
    }

    let mut txs = ws.subscribe(EventType::Tx.into()).await.unwrap();
    let sent = client.broadcast_tx_sync(b"ws=ok".to_vec()).await.unwrap();
    assert!(sent.code.is_ok());
    let event = tokio::time::timeout(DEADLINE, txs.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match event.data {
        EventData::Tx { tx_result } => assert_eq!(tx_result.tx, b"ws=ok"),
        other => panic!("unexpected event {other:?}"),
    }
    // Calls work over the WebSocket too.
    let status = ws.status().await.unwrap();
    assert_eq!(status.node_info.network.as_str(), CHAIN_ID);

    ws.close().unwrap();
    let _ = tokio::time::timeout(DEADLINE, driver).await;
    node.shutdown().await.unwrap();
    app.stop().await;
}

/// A `Tx` event over the WebSocket carries the tx's `code`, `codespace`, `info` and `data`
/// as `CometBFT` writes them (left out when empty): tendermint-rs's event type has no field
/// for them, and without `code` cosmjs reads a failed tx as a success.
#[tokio::test]
async fn tx_events_carry_the_result_code() {
    use async_tungstenite::{tokio::connect_async, tungstenite::Message};
    use futures::SinkExt as _;
    let (_app, _dir, node, client) = start_test_node(Duration::from_millis(50), true, |_| {}).await;
    let url = format!("ws://{}/websocket", node.rpc_addr());
    let (mut ws, _) = connect_async(url.as_str()).await.unwrap();
    let subscribe =
        r#"{"jsonrpc":"2.0","id":9,"method":"subscribe","params":{"query":"tm.event='Tx'"}}"#;
    ws.send(Message::Text(subscribe.to_owned())).await.unwrap();
    let mut next_tx_result = async || loop {
        let message = tokio::time::timeout(DEADLINE, ws.next())
            .await
            .expect("a Tx event within the deadline")
            .unwrap()
            .unwrap();
        let Message::Text(text) = message else {
            continue;
        };
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        if let Some(tx) = value.pointer("/result/data/value/TxResult") {
            return tx.clone();
        }
    };
    let failed = client
        .broadcast_tx_sync(b"fail:now".to_vec())
        .await
        .unwrap();
    assert!(failed.code.is_ok(), "admitted by CheckTx");
    let event = next_tx_result().await;
    let result = &event["result"];
    assert_eq!(result["code"], 7, "{event}");
    assert_eq!(result["codespace"], "testapp");
    assert_eq!(result["info"], "failed on purpose");
    assert_eq!(result["data"], "Zg==");
    assert_eq!(result["log"], "failed on purpose");
    client.broadcast_tx_sync(b"ok=1".to_vec()).await.unwrap();
    let event = next_tx_result().await;
    assert!(
        event["result"].get("code").is_none(),
        "0 is left out: {event}"
    );
    assert!(event["result"].get("codespace").is_none(), "{event}");

    // As in CometBFT, the duplicate cache keeps a committed tx only if it succeeded: the
    // failed one may be sent again, the successful one may not.
    let again = client.broadcast_tx_sync(b"fail:now".to_vec()).await;
    assert!(
        again.unwrap().code.is_ok(),
        "a tx that failed in its block is not cached"
    );
    let duplicate = client.broadcast_tx_sync(b"ok=1".to_vec()).await;
    assert!(
        duplicate
            .unwrap_err()
            .to_string()
            .contains("tx already exists in cache"),
        "a committed tx is"
    );
    node.shutdown().await.unwrap();
}

/// `/tx` with `prove=true`: a `TxProof` whose path leads from the tx to the header's
/// `data_hash`, and not from another tx.
async fn assert_tx_proof(
    client: &tendermint_rpc::HttpClient,
    hash: tendermint::Hash,
    height: Height,
    tx: &[u8],
) {
    let proven = client.tx(hash, true).await.unwrap();
    let proof = proven.proof.expect("a proof was asked for");
    let header = client.block(height).await.unwrap().block.header;
    assert_eq!(Some(proof.root_hash), header.data_hash);
    assert_eq!(proof.data, tx);
    let path = tandem_core::MerkleProof {
        leaf_index: proof.proof.index,
        tree_size: proof.proof.total,
        audit_path: proof
            .proof
            .aunts
            .iter()
            .map(|a| a.as_bytes().try_into().unwrap())
            .collect(),
    };
    let root: [u8; 32] = proof.root_hash.as_bytes().try_into().unwrap();
    path.verify_leaf_hash(tandem_core::merkle::tx_leaf_hash(&proof.data), &root)
        .expect("the proof leads to data_hash");
    assert!(path
        .verify_leaf_hash(tandem_core::merkle::tx_leaf_hash(b"another tx"), &root)
        .is_err());
}

/// `tx_search` with the queries cosmjs sends (`getTx`: `tx.hash='HEX'`; `searchTx` by height:
/// `tx.height=N`), paged, and `tx` without `prove` (cosmjs leaves an undefined one out).
#[tokio::test]
async fn tx_search_finds_txs_by_hash_and_height() {
    let (_app, _dir, node, client) = start_test_node(Duration::from_millis(50), true, |_| {}).await;
    let committed = client
        .broadcast_tx_commit(b"fruit=pear".to_vec())
        .await
        .unwrap();
    assert!(committed.tx_result.code.is_ok());
    let hex_hash = committed.hash.to_string();
    let addr = node.rpc_addr();

    let by_hash = raw_rpc(
        addr,
        &format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tx_search","params":{{"query":"tx.hash='{hex_hash}'","page":"1","per_page":"30","order_by":"asc"}}}}"#
        ),
    )
    .await;
    let result = &by_hash["result"];
    assert_eq!(result["total_count"], "1", "{by_hash}");
    assert_eq!(result["txs"][0]["hash"], hex_hash);
    assert_eq!(result["txs"][0]["height"], committed.height.to_string());

    // The tendermint-rpc client's spelling (spaces around `=`) and a height query.
    let search = client
        .tx_search(
            tendermint_rpc::query::Query::eq("tx.height", committed.height.value()),
            true,
            1,
            10,
            tendermint_rpc::Order::Descending,
        )
        .await
        .unwrap();
    assert_eq!(search.total_count, 1);
    assert_eq!(search.txs[0].hash, committed.hash);
    assert!(search.txs[0].proof.is_some());

    let mut params = serde_json::to_value(tendermint_rpc::endpoint::tx::Request::new(
        committed.hash,
        true,
    ))
    .unwrap();
    params.as_object_mut().unwrap().remove("prove");
    let request = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tx", "params": params});
    let no_prove = raw_rpc(addr, &request.to_string()).await;
    assert!(no_prove["result"]["proof"].is_null(), "{no_prove}");
    assert_eq!(no_prove["result"]["hash"], hex_hash, "{no_prove}");

    for (query, page) in [
        ("tx.height > 1", 1),
        ("tx.height=1", 9),
        ("kv.key=fruit", 1),
    ] {
        let refused = raw_rpc(
            addr,
            &format!(
                r#"{{"jsonrpc":"2.0","id":3,"method":"tx_search","params":{{"query":"{query}","page":"{page}"}}}}"#
            ),
        )
        .await;
        // As `CometBFT`: an error of the method, after its params were read, is -32603
        // `Internal error` with the reason in `data`.
        assert_eq!(refused["error"]["code"], -32603, "{query}: {refused}");
        assert_eq!(refused["error"]["message"], "Internal error");
        assert!(!refused["error"]["data"].as_str().unwrap().is_empty());
    }
    node.shutdown().await.unwrap();
}

/// `tx_search` on the event attributes the app marked for indexing, alone or with other
/// conditions; an unmarked attribute finds nothing, as with CometBFT's kv indexer.
#[tokio::test]
async fn tx_search_finds_txs_by_indexed_event_attributes() {
    let (_app, _dir, node, client) = start_test_node(Duration::from_millis(50), true, |_| {}).await;
    let addr = node.rpc_addr();
    let committed = client
        .broadcast_tx_commit(b"fruit=pear".to_vec())
        .await
        .unwrap();
    let hex_hash = committed.hash.to_string();
    let search = |query: String| async move {
        let answer = raw_rpc(
            addr,
            &serde_json::json!({"jsonrpc": "2.0", "id": 4, "method": "tx_search",
                "params": {"query": query}})
            .to_string(),
        )
        .await;
        let hashes: Vec<String> = answer["result"]["txs"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|tx| tx["hash"].as_str().unwrap().to_owned())
            .collect();
        hashes
    };
    let other = client
        .broadcast_tx_commit(b"veg=leek".to_vec())
        .await
        .unwrap();
    assert_eq!(
        search("kv.key='fruit'".to_owned()).await,
        [hex_hash.as_str()]
    );
    assert_eq!(
        search("kv.key = 'veg'".to_owned()).await,
        [other.hash.to_string().as_str()]
    );
    assert_eq!(
        search(format!("kv.key='fruit' AND tx.height={}", committed.height)).await,
        [hex_hash.as_str()]
    );
    assert!(
        search(format!("kv.key='fruit' AND tx.height={}", other.height))
            .await
            .is_empty()
    );
    assert_eq!(
        search(format!(
            "kv.key='fruit' AND tx.hash='{}'",
            hex_hash.to_lowercase()
        ))
        .await,
        [hex_hash.as_str()]
    );
    assert!(
        search("kv.value='pear'".to_owned()).await.is_empty(),
        "not indexed"
    );
    assert!(search("kv.key='none'".to_owned()).await.is_empty());

    node.shutdown().await.unwrap();
}

/// `block_search` on `block.height` and on the marked attributes of `FinalizeBlock`'s events
/// (the test app marks `block.height`), read back with tendermint-rs's client.
#[tokio::test]
async fn block_search_finds_blocks_by_height_and_events() {
    use tendermint_rpc::{query::Query, Order};
    let (_app, _dir, node, client) = start_test_node(Duration::from_millis(50), true, |_| {}).await;
    wait_height(&client, 4, DEADLINE).await;
    let heights = |response: tendermint_rpc::endpoint::block_search::Response| {
        response
            .blocks
            .iter()
            .map(|b| b.block.header.height.value())
            .collect::<Vec<_>>()
    };
    let third = client
        .block_search(Query::eq("block.height", 3_u64), 1, 10, Order::Ascending)
        .await
        .unwrap();
    assert_eq!(third.total_count, 1);
    assert_eq!(heights(third), [3]);
    let both = client
        .block_search(
            Query::eq("block.height", 3_u64).and_eq("block.height", 4_u64),
            1,
            10,
            Order::Ascending,
        )
        .await
        .unwrap();
    assert!(both.blocks.is_empty());
    let missing = client
        .block_search(Query::eq("block.missing", "x"), 1, 10, Order::Descending)
        .await
        .unwrap();
    assert_eq!(missing.total_count, 0);
    let refused = raw_rpc(
        node.rpc_addr(),
        r#"{"jsonrpc":"2.0","id":1,"method":"block_search","params":{"query":"block.height > 2"}}"#,
    )
    .await;
    assert_eq!(refused["error"]["code"], -32603, "{refused}");
    node.shutdown().await.unwrap();
}

/// The first block's `last_block_id` and `last_commit` are CometBFT's empty structures, never
/// null (cosmjs reads their `hash` fields unguarded), and tendermint-rs still reads them as
/// absent, with the same block hash.
#[tokio::test]
async fn the_first_block_has_empty_structures_where_go_has_no_null() {
    let (_app, _dir, node, client) = start_test_node(Duration::from_millis(50), true, |_| {}).await;
    wait_height(&client, 2, DEADLINE).await;
    let addr = node.rpc_addr();
    let block = raw_rpc(
        addr,
        r#"{"jsonrpc":"2.0","id":1,"method":"block","params":{"height":"1"}}"#,
    )
    .await;
    let block = &block["result"]["block"];
    assert_eq!(block["header"]["last_block_id"]["hash"], "", "{block}");
    assert_eq!(block["header"]["last_block_id"]["parts"]["total"], 0);
    assert_eq!(block["last_commit"]["block_id"]["hash"], "", "{block}");
    assert_eq!(block["last_commit"]["signatures"], serde_json::json!([]));
    let commit = raw_rpc(
        addr,
        r#"{"jsonrpc":"2.0","id":2,"method":"commit","params":{"height":"1"}}"#,
    )
    .await;
    assert_eq!(
        commit["result"]["signed_header"]["header"]["last_block_id"]["hash"], "",
        "{commit}"
    );
    // Block 2 has real ones.
    let second = raw_rpc(
        addr,
        r#"{"jsonrpc":"2.0","id":3,"method":"block","params":{"height":"2"}}"#,
    )
    .await;
    assert_ne!(
        second["result"]["block"]["header"]["last_block_id"]["hash"],
        ""
    );

    let first = client.block(Height::from(1_u32)).await.unwrap();
    assert_eq!(first.block.header.last_block_id, None);
    assert!(first.block.last_commit.is_none());
    assert_eq!(first.block_id.hash, first.block.header.hash());
    node.shutdown().await.unwrap();
}

/// The fields cosmjs reads where tendermint-rs writes another form: the validators'
/// `voting_power` (tendermint-rs writes `power`), `count`, `proposer_priority`, the app hash
/// in `abci_info` as base64 (tendermint-rs writes an array of numbers), `blockchain`, and
/// requests that leave optional params out. tendermint-rs's client reads all of them back.
#[tokio::test]
async fn answers_have_cometbft_json_shapes() {
    let (_app, _dir, node, client) = start_test_node(Duration::from_millis(50), true, |_| {}).await;
    wait_height(&client, 4, DEADLINE).await;
    let addr = node.rpc_addr();

    let status = raw_rpc(addr, r#"{"jsonrpc":"2.0","id":1,"method":"status"}"#).await;
    let info = &status["result"]["validator_info"];
    assert_eq!(info["voting_power"], "10", "{info}");
    assert!(info.get("power").is_none(), "{info}");
    assert_eq!(info["pub_key"]["type"], "tendermint/PubKeyEd25519");
    assert_eq!(
        client.status().await.unwrap().validator_info.power.value(),
        10
    );

    // `page` and `per_page` left out, as cosmjs and URI requests may.
    let validators = raw_rpc(
        addr,
        r#"{"jsonrpc":"2.0","id":2,"method":"validators","params":{"height":"2"}}"#,
    )
    .await;
    let result = &validators["result"];
    assert_eq!(result["block_height"], "2", "{validators}");
    assert_eq!(result["count"], "1");
    assert_eq!(result["total"], "1");
    assert_eq!(result["validators"][0]["voting_power"], "10");
    assert_eq!(result["validators"][0]["proposer_priority"], "0");
    let read = client
        .validators(Height::from(2_u32), tendermint_rpc::Paging::All)
        .await
        .unwrap();
    assert_eq!(read.validators[0].power.value(), 10);
    for method in ["block", "commit", "block_results"] {
        let answer = raw_rpc(
            addr,
            &format!(r#"{{"jsonrpc":"2.0","id":3,"method":"{method}","params":{{}}}}"#),
        )
        .await;
        assert!(answer["error"].is_null(), "{method}: {answer}");
    }

    let abci_info = raw_rpc(addr, r#"{"jsonrpc":"2.0","id":4,"method":"abci_info"}"#).await;
    let response = &abci_info["result"]["response"];
    assert!(response["last_block_app_hash"].is_string(), "{abci_info}");
    let info: tendermint::abci::response::Info = serde_json::from_value(response.clone()).unwrap();
    // The next block's header commits the state `abci_info` describes.
    let next = info.last_block_height.increment();
    let header = crate::support::eventually("the next block", DEADLINE, || async {
        client.block(next).await.ok().map(|b| b.block.header)
    })
    .await;
    assert_eq!(abci_info_app_hash(&info), header.app_hash.as_bytes());

    // `blockchain`: newest first, within the bounds asked for.
    let chain = client
        .blockchain(Height::from(1_u32), Height::from(3_u32))
        .await
        .unwrap();
    let heights: Vec<u64> = chain
        .block_metas
        .iter()
        .map(|m| m.header.height.value())
        .collect();
    assert_eq!(heights, [3, 2, 1]);
    assert!(chain.last_height.value() >= 4);
    for meta in &chain.block_metas {
        let block = client.block(meta.header.height).await.unwrap();
        assert_eq!(meta.block_id, block.block_id);
        assert_eq!(meta.block_id.hash, meta.header.hash());
        assert_eq!(meta.num_txs, i64::try_from(block.block.data.len()).unwrap());
        assert!(meta.block_size > 0);
    }
    let all = raw_rpc(addr, r#"{"jsonrpc":"2.0","id":5,"method":"blockchain"}"#).await;
    let metas = all["result"]["block_metas"].as_array().unwrap();
    assert!((4..=20).contains(&metas.len()), "{all}");
    assert_eq!(
        metas[metas.len() - 1]["header"]["last_block_id"]["hash"],
        "",
        "block 1 as Go writes it"
    );
    let backwards = raw_rpc(
        addr,
        r#"{"jsonrpc":"2.0","id":6,"method":"blockchain","params":{"minHeight":"3","maxHeight":"2"}}"#,
    )
    .await;
    assert!(backwards["error"]["data"]
        .as_str()
        .unwrap()
        .contains("can't be greater than max height"));
    node.shutdown().await.unwrap();
}

/// The rest of `CometBFT`'s read methods that explorers and relayers call: `header`,
/// `header_by_hash`, `block_by_hash`, `consensus_params`, `net_info`, `unconfirmed_txs`,
/// `genesis_chunked`, read back with tendermint-rs's client; and URI requests whose bytes
/// params are `0x` hex or a quoted string, as CometBFT's docs write them.
#[tokio::test]
async fn header_hash_params_net_and_uri_requests() {
    let (_app, _dir, node, client) = start_test_node(Duration::from_millis(50), true, |_| {}).await;
    wait_height(&client, 3, DEADLINE).await;
    let addr = node.rpc_addr();

    let block = client.block(Height::from(2_u32)).await.unwrap();
    let header = client.header(Height::from(2_u32)).await.unwrap().header;
    assert_eq!(header, block.block.header);
    let by_hash = client.header_by_hash(block.block_id.hash).await.unwrap();
    assert_eq!(by_hash.header, Some(block.block.header.clone()));
    let full = client.block_by_hash(block.block_id.hash).await.unwrap();
    assert_eq!(full.block_id, block.block_id);
    assert_eq!(full.block.unwrap().header, block.block.header);
    let unknown = tendermint::Hash::Sha256([7; 32]);
    assert!(client
        .header_by_hash(unknown)
        .await
        .unwrap()
        .header
        .is_none());
    assert!(client.block_by_hash(unknown).await.unwrap().block.is_none());
    let short = raw_get(addr, "header_by_hash?hash=0xABCD").await;
    assert!(
        short["error"]["data"]
            .as_str()
            .unwrap()
            .contains("32 bytes"),
        "{short}"
    );

    let params = client.consensus_params(Height::from(2_u32)).await.unwrap();
    assert_eq!(params.block_height.value(), 2);
    let genesis: tendermint::Genesis<serde_json::Value> = client.genesis().await.unwrap();
    assert_eq!(params.consensus_params, genesis.consensus_params);
    let latest = client.latest_consensus_params().await.unwrap();
    assert!(
        latest.block_height.value() >= 4,
        "the next height by default"
    );

    let net = client.net_info().await.unwrap();
    assert!(net.listening);
    assert_eq!(net.n_peers, 0);

    let chunk = client.genesis_chunked(0).await.unwrap();
    assert_eq!(chunk.total, 1);
    let doc: tendermint::Genesis<serde_json::Value> = serde_json::from_slice(&chunk.data).unwrap();
    assert_eq!(doc.chain_id, genesis.chain_id);
    let past_end = raw_get(addr, "genesis_chunked?chunk=1").await;
    assert!(past_end["error"]["data"]
        .as_str()
        .unwrap()
        .contains("1 chunks"));

    // URI requests as CometBFT's docs write them.
    let sent = raw_get(addr, "broadcast_tx_commit?tx=%22uri=quoted%22").await;
    assert_eq!(sent["result"]["tx_result"]["code"], 0, "{sent}");
    let height = sent["result"]["height"].as_str().unwrap().to_owned();
    let hash = sent["result"]["hash"].as_str().unwrap().to_owned();
    let found = raw_get(addr, &format!("tx?hash=0x{hash}")).await;
    assert_eq!(found["result"]["height"], height.as_str(), "{found}");
    let queried = raw_get(addr, &format!("abci_query?data=0x{}", hex::encode("uri"))).await;
    let value = queried["result"]["response"]["value"].as_str().unwrap();
    assert_eq!(value, "cXVvdGVk", "base64 of `quoted`: {queried}");
    let block_hash = raw_get(
        addr,
        &format!("block_by_hash?hash=0x{}", block.block_id.hash),
    )
    .await;
    assert_eq!(
        block_hash["result"]["block"]["header"]["height"], "2",
        "{block_hash}"
    );
    node.shutdown().await.unwrap();
}

/// `unconfirmed_txs` lists the waiting txs in arrival order, at most `limit` of them, with the
/// mempool's totals. The node waits an hour between blocks, so the txs stay.
#[tokio::test]
async fn unconfirmed_txs_lists_the_mempool() {
    let (_app, _dir, node, client) = start_test_node(Duration::from_hours(1), true, |_| {}).await;
    let addr = node.rpc_addr();
    // The first block comes at once; after it, the next is an hour away.
    wait_height(&client, 1, DEADLINE).await;
    for tx in ["a=1", "b=2", "c=3"] {
        let sync = client
            .broadcast_tx_sync(tx.as_bytes().to_vec())
            .await
            .unwrap();
        assert!(sync.code.is_ok(), "{sync:?}");
    }
    let pending = raw_get(addr, "unconfirmed_txs?limit=2").await;
    let result = &pending["result"];
    assert_eq!(result["n_txs"], "2", "{pending}");
    assert_eq!(result["total"], "3");
    assert_eq!(result["total_bytes"], "9");
    assert_eq!(
        result["txs"],
        serde_json::json!(["YT0x", "Yj0y"]),
        "base64 of a=1, b=2"
    );
    let all = raw_get(addr, "unconfirmed_txs").await;
    assert_eq!(all["result"]["n_txs"], "3", "{all}");
    node.shutdown().await.unwrap();
}

/// Heights as `CometBFT` reads them: without one, `validators` answers for the next block;
/// height 0 is an error for every method that takes a height, not the latest.
#[tokio::test]
async fn missing_and_zero_heights_follow_cometbft() {
    let (_app, _dir, node, client) = start_test_node(Duration::from_millis(50), true, |_| {}).await;
    wait_height(&client, 2, DEADLINE).await;
    let addr = node.rpc_addr();
    // Without a height, the validators of the next block (`CometBFT`'s default).
    let before = crate::support::height(&client).await.unwrap();
    let next = raw_rpc(addr, r#"{"jsonrpc":"2.0","id":1,"method":"validators"}"#).await;
    let after = crate::support::height(&client).await.unwrap();
    let at: u64 = next["result"]["block_height"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((before + 1..=after + 1).contains(&at), "{next}");
    // Height 0 is an error, as in `CometBFT`, not the latest.
    for method in [
        "block",
        "commit",
        "block_results",
        "validators",
        "consensus_params",
    ] {
        let zero = raw_rpc(
            addr,
            &format!(r#"{{"jsonrpc":"2.0","id":3,"method":"{method}","params":{{"height":"0"}}}}"#),
        )
        .await;
        assert_eq!(
            zero["error"]["data"], "height must be greater than 0, but got 0",
            "{method}: {zero}"
        );
    }
    node.shutdown().await.unwrap();
}
