//! Public RPC: transfer, deployment, call and event, each signed with alloy's signer and checked
//! through `eth_` methods.

use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use serde_json::{json, Value};

use crate::support::{produce_block, raw, sign_1559, signer, TestNode, DEV_KEY};

/// Topic of the test contract's event.
pub(crate) const TOPIC: B256 = B256::repeat_byte(0xaa);

/// Runtime: `sstore(0, calldata[0..32])`, `log1(value, TOPIC)`, return the value.
pub(crate) fn runtime() -> Vec<u8> {
    let mut code = vec![
        0x60, 0x00, 0x35, 0x80, 0x60, 0x00, 0x55, 0x60, 0x00, 0x52, 0x7f,
    ];
    code.extend_from_slice(TOPIC.as_slice());
    code.extend_from_slice(&[0x60, 0x20, 0x60, 0x00, 0xa1, 0x60, 0x20, 0x60, 0x00, 0xf3]);
    code
}

/// Init code copying [`runtime`] into memory and returning it.
pub(crate) fn initcode() -> Bytes {
    let runtime = runtime();
    let len = u8::try_from(runtime.len()).unwrap();
    let mut code = vec![
        0x60, len, 0x80, 0x60, 0x0b, 0x60, 0x00, 0x39, 0x60, 0x00, 0xf3,
    ];
    code.extend_from_slice(&runtime);
    code.into()
}

fn u(value: &Value) -> U256 {
    serde_json::from_value(value.clone()).unwrap()
}

async fn head(node: &TestNode) -> (B256, u64) {
    let block = node
        .rpc("eth_getBlockByNumber", json!(["latest", false]))
        .await
        .unwrap();
    (
        serde_json::from_value(block["hash"].clone()).unwrap(),
        u(&block["timestamp"]).to(),
    )
}

/// Sends through `eth_sendRawTransaction` and includes the pool in the next block.
async fn send_and_include(node: &TestNode, tx: Bytes) -> Value {
    let tx_hash = node
        .rpc("eth_sendRawTransaction", json!([tx]))
        .await
        .unwrap();
    assert_eq!(tx_hash, json!(alloy_primitives::keccak256(&tx)));
    let (parent, timestamp) = head(node).await;
    produce_block(node, parent, timestamp.max(1_700_000_000) + 1, &[], false).await;
    let receipt = node
        .rpc("eth_getTransactionReceipt", json!([tx_hash]))
        .await
        .unwrap();
    assert!(receipt.is_object(), "no receipt for {tx_hash}");
    receipt
}

#[tokio::test]
#[expect(
    clippy::too_many_lines,
    reason = "one end-to-end scenario, read top to bottom"
)]
async fn transfer_deploy_call_and_event_through_eth_rpc() {
    let node = TestNode::start().await;
    let dev = signer(DEV_KEY);
    let from = dev.address();
    assert_eq!(node.rpc("eth_chainId", json!([])).await.unwrap(), "0x539");
    assert_eq!(node.rpc("net_version", json!([])).await.unwrap(), "1337");
    assert!(node
        .rpc("web3_clientVersion", json!([]))
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .starts_with("tandem-evm/"));
    let start_balance = u(&node
        .rpc("eth_getBalance", json!([from, "latest"]))
        .await
        .unwrap());

    // 1. EIP-1559 transfer.
    let to = Address::repeat_byte(0x77);
    let value = U256::from(123_456_789u64);
    let receipt = send_and_include(
        &node,
        raw(&sign_1559(
            &dev,
            0,
            TxKind::Call(to),
            value,
            Bytes::new(),
            21_000,
        )),
    )
    .await;
    assert_eq!(receipt["status"], "0x1");
    assert_eq!(receipt["gasUsed"], "0x5208");
    assert_eq!(receipt["from"], json!(from));
    assert_eq!(
        u(&node
            .rpc("eth_getBalance", json!([to, "latest"]))
            .await
            .unwrap()),
        value
    );
    let fee = u(&receipt["gasUsed"]) * u(&receipt["effectiveGasPrice"]);
    assert_eq!(
        u(&node
            .rpc("eth_getBalance", json!([from, "latest"]))
            .await
            .unwrap()),
        start_balance - value - fee
    );
    assert_eq!(
        node.rpc("eth_getTransactionCount", json!([from, "latest"]))
            .await
            .unwrap(),
        "0x1"
    );

    // 2. Contract deployment.
    let deploy = sign_1559(&dev, 1, TxKind::Create, U256::ZERO, initcode(), 200_000);
    let receipt = send_and_include(&node, raw(&deploy)).await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let contract = from.create(1);
    assert_eq!(receipt["contractAddress"], json!(contract));
    let code = node
        .rpc("eth_getCode", json!([contract, "latest"]))
        .await
        .unwrap();
    assert_eq!(code, json!(Bytes::from(runtime())));

    // 3. A call that stores 42 and emits the event.
    let word = B256::from(U256::from(42));
    let estimate = u(&node
        .rpc(
            "eth_estimateGas",
            json!([{"from": from, "to": contract, "input": word}]),
        )
        .await
        .unwrap());
    assert!(
        estimate > U256::from(21_000) && estimate < U256::from(100_000),
        "{estimate}"
    );
    let call = sign_1559(
        &dev,
        2,
        TxKind::Call(contract),
        U256::ZERO,
        word.into(),
        estimate.to(),
    );
    let receipt = send_and_include(&node, raw(&call)).await;
    assert_eq!(receipt["status"], "0x1", "{receipt}");
    let stored = node
        .rpc("eth_getStorageAt", json!([contract, "0x0", "latest"]))
        .await
        .unwrap();
    assert_eq!(stored, json!(word));

    // 4. The event log, from the receipt and from eth_getLogs.
    let logs = receipt["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0]["address"], json!(contract));
    assert_eq!(logs[0]["topics"], json!([TOPIC]));
    assert_eq!(logs[0]["data"], json!(word));
    let found = node
        .rpc("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "latest", "address": contract, "topics": [TOPIC]}]))
        .await
        .unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["transactionHash"], receipt["transactionHash"]);
    let unmatched = node
        .rpc(
            "eth_getLogs",
            json!([{"fromBlock": "0x0", "address": contract, "topics": [B256::repeat_byte(1)]}]),
        )
        .await
        .unwrap();
    assert_eq!(unmatched, json!([]));

    // eth_call runs without changing state.
    let seven = B256::from(U256::from(7));
    let output = node
        .rpc(
            "eth_call",
            json!([{"to": contract, "input": seven}, "latest"]),
        )
        .await
        .unwrap();
    assert_eq!(output, json!(seven));
    assert_eq!(
        node.rpc("eth_getStorageAt", json!([contract, "0x0", "latest"]))
            .await
            .unwrap(),
        json!(word)
    );

    // Blocks and transactions by hash and number.
    let tx = node
        .rpc(
            "eth_getTransactionByHash",
            json!([receipt["transactionHash"]]),
        )
        .await
        .unwrap();
    assert_eq!(tx["from"], json!(from));
    assert_eq!(tx["blockHash"], receipt["blockHash"]);
    let block = node
        .rpc("eth_getBlockByHash", json!([receipt["blockHash"], true]))
        .await
        .unwrap();
    assert_eq!(block["transactions"][0]["hash"], receipt["transactionHash"]);
    let by_number = node
        .rpc("eth_getBlockByNumber", json!([block["number"], false]))
        .await
        .unwrap();
    assert_eq!(by_number["hash"], block["hash"]);
    assert_eq!(
        node.rpc("eth_getBlockByNumber", json!(["0x99", false]))
            .await
            .unwrap(),
        Value::Null
    );

    // Fee methods.
    let gas_price = u(&node.rpc("eth_gasPrice", json!([])).await.unwrap());
    let tip = u(&node
        .rpc("eth_maxPriorityFeePerGas", json!([]))
        .await
        .unwrap());
    assert!(gas_price > tip);
    let history = node
        .rpc("eth_feeHistory", json!(["0x3", "latest", [50.0]]))
        .await
        .unwrap();
    assert_eq!(history["baseFeePerGas"].as_array().unwrap().len(), 4);
    assert_eq!(history["reward"].as_array().unwrap().len(), 3);
    assert_eq!(history["reward"][2][0], "0x3b9aca00", "{history}");
    node.stop().await;
}

#[tokio::test]
async fn send_raw_transaction_rejects_bad_transactions_with_a_reason() {
    let node = TestNode::start().await;
    let dev = signer(DEV_KEY);
    let send = |tx: Bytes| node.rpc("eth_sendRawTransaction", json!([tx]));

    let ok = raw(&sign_1559(
        &dev,
        0,
        TxKind::Call(Address::repeat_byte(1)),
        U256::from(1),
        Bytes::new(),
        21_000,
    ));
    send(ok.clone()).await.unwrap();
    let err = send(ok).await.unwrap_err();
    assert!(err.1.contains("already known"), "{err:?}");

    let err = send(Bytes::from_static(&[0x02, 0x01])).await.unwrap_err();
    assert!(err.1.contains("undecodable"), "{err:?}");

    let low_gas = raw(&sign_1559(
        &dev,
        1,
        TxKind::Call(Address::repeat_byte(1)),
        U256::from(1),
        Bytes::new(),
        20_000,
    ));
    let err = send(low_gas).await.unwrap_err();
    assert!(err.1.to_lowercase().contains("gas"), "{err:?}");

    let pauper = signer("0101010101010101010101010101010101010101010101010101010101010101");
    let broke = raw(&sign_1559(
        &pauper,
        0,
        TxKind::Call(Address::repeat_byte(1)),
        U256::from(1),
        Bytes::new(),
        21_000,
    ));
    let err = send(broke).await.unwrap_err();
    assert!(err.1.contains("insufficient funds"), "{err:?}");
    node.stop().await;
}
