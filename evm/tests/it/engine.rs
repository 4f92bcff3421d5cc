//! Engine API: the full cycle, determinism, invalid payloads, error codes, restart.

use alloy_consensus::{SignableTransaction as _, TxEnvelope};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_rpc_types_engine::ExecutionPayloadV3;
use serde_json::{json, Value};

use crate::support::{
    attributes, fcs, hash, produce_block, raw, sign_1559, signer, TestNode, DEV_KEY,
};

const BEACON_ROOT: B256 = B256::repeat_byte(0x22);

pub(crate) fn transfers(count: u64) -> Vec<Bytes> {
    let dev = signer(DEV_KEY);
    (0..count)
        .map(|nonce| {
            // Not 0x…01-0x…0a: those are precompiles, and a bare transfer to them runs out of gas.
            let to = Address::repeat_byte(0x40 + u8::try_from(nonce).unwrap());
            raw(&sign_1559(
                &dev,
                nonce,
                TxKind::Call(to),
                U256::from(1000 + nonce),
                Bytes::new(),
                21_000,
            ))
        })
        .collect()
}

/// A transfer from the development account whose signature has s = 0, which recovers no signer
/// at all: it decodes, but has no sender.
fn unrecoverable_transfer(nonce: u64, to: Address, value: u64) -> Bytes {
    let TxEnvelope::Eip1559(signed) = sign_1559(
        &signer(DEV_KEY),
        nonce,
        TxKind::Call(to),
        U256::from(value),
        Bytes::new(),
        21_000,
    ) else {
        unreachable!("sign_1559 signs an EIP-1559 transaction")
    };
    let zero_s = alloy_primitives::Signature::new(signed.signature().r(), U256::ZERO, false);
    raw(&TxEnvelope::from(
        signed.strip_signature().into_signed(zero_s),
    ))
}

pub(crate) async fn genesis_hash(node: &TestNode) -> B256 {
    let block = node
        .rpc("eth_getBlockByNumber", json!(["0x0", false]))
        .await
        .unwrap();
    hash(&block["hash"])
}

#[tokio::test]
async fn full_cycle_includes_exactly_the_forced_transactions_in_order() {
    let node = TestNode::start().await;
    let genesis = genesis_hash(&node).await;
    let capabilities = node
        .engine(
            "engine_exchangeCapabilities",
            json!([["engine_newPayloadV3"]]),
        )
        .await
        .unwrap();
    assert_eq!(
        capabilities,
        json!([
            "engine_forkchoiceUpdatedV3",
            "engine_getPayloadV3",
            "engine_newPayloadV3"
        ]),
        "every method but engine_exchangeCapabilities itself"
    );

    let txs = transfers(3);
    let payload = produce_block(&node, genesis, 1_700_000_000, &txs, true).await;
    let included: Vec<Bytes> = serde_json::from_value(payload["transactions"].clone()).unwrap();
    assert_eq!(included, txs);
    assert_eq!(node.rpc("eth_blockNumber", json!([])).await.unwrap(), "0x1");

    for (index, tx) in txs.iter().enumerate() {
        let tx_hash = alloy_primitives::keccak256(tx);
        let receipt = node
            .rpc("eth_getTransactionReceipt", json!([tx_hash]))
            .await
            .unwrap();
        assert_eq!(receipt["status"], "0x1", "{receipt}");
        assert_eq!(receipt["blockNumber"], "0x1");
        assert_eq!(receipt["transactionIndex"], format!("{index:#x}"));
        assert_eq!(receipt["blockHash"], payload["blockHash"]);
    }
    // EIP-4788: the beacon roots contract stored parentBeaconBlockRoot at timestamp % 8191 + 8191.
    let slot = U256::from(1_700_000_000u64 % 8191 + 8191);
    let stored = node
        .rpc(
            "eth_getStorageAt",
            json!([alloy_eips::eip4788::BEACON_ROOTS_ADDRESS, slot, "latest"]),
        )
        .await
        .unwrap();
    assert_eq!(hash(&stored), BEACON_ROOT);
    node.stop().await;
}

#[tokio::test]
async fn invalid_forced_transactions_are_skipped_not_fatal() {
    let node = TestNode::start().await;
    let genesis = genesis_hash(&node).await;
    let dev = signer(DEV_KEY);
    let good = raw(&sign_1559(
        &dev,
        0,
        TxKind::Call(Address::repeat_byte(1)),
        U256::from(1),
        Bytes::new(),
        21_000,
    ));
    let nonce_gap = raw(&sign_1559(
        &dev,
        5,
        TxKind::Call(Address::repeat_byte(1)),
        U256::from(1),
        Bytes::new(),
        21_000,
    ));
    let pauper = signer("0101010101010101010101010101010101010101010101010101010101010101");
    let no_funds = raw(&sign_1559(
        &pauper,
        0,
        TxKind::Call(Address::repeat_byte(1)),
        U256::from(1),
        Bytes::new(),
        21_000,
    ));
    let mut bad_sig = good.to_vec();
    let last = bad_sig.len() - 1;
    bad_sig[last] ^= 0x01; // flips a bit of `s`: another (unfunded) signer, or no signer at all
    let unrecoverable = unrecoverable_transfer(1, Address::repeat_byte(1), 1);
    let decoded = alloy_eips::eip2718::Decodable2718::decode_2718(&mut unrecoverable.as_ref());
    let decoded: TxEnvelope = decoded.unwrap();
    assert!(alloy_consensus::transaction::SignerRecoverable::recover_signer(&decoded).is_err());
    let garbage = Bytes::from_static(&[0x02, 0xff, 0x00]);
    // A good transaction after the ones left out keeps its place (and its sender).
    let next = raw(&sign_1559(
        &dev,
        1,
        TxKind::Call(Address::repeat_byte(2)),
        U256::from(2),
        Bytes::new(),
        21_000,
    ));
    let forced = vec![
        good.clone(),
        nonce_gap,
        no_funds,
        Bytes::from(bad_sig),
        unrecoverable,
        garbage,
        next.clone(),
    ];
    let payload = produce_block(&node, genesis, 1_700_000_000, &forced, true).await;
    let included: Vec<Bytes> = serde_json::from_value(payload["transactions"].clone()).unwrap();
    assert_eq!(included, vec![good, next]);
    node.stop().await;
}

pub(crate) async fn build(node: &TestNode, parent: B256, txs: &[Bytes]) -> Value {
    let updated = node
        .engine(
            "engine_forkchoiceUpdatedV3",
            json!([fcs(parent), attributes(1_700_000_000, txs, true)]),
        )
        .await
        .unwrap();
    let envelope = node
        .engine("engine_getPayloadV3", json!([updated["payloadId"]]))
        .await
        .unwrap();
    envelope["executionPayload"].clone()
}

#[tokio::test]
async fn same_parent_and_attributes_give_the_same_block() {
    let (a, b) = (TestNode::start().await, TestNode::start().await);
    let genesis = genesis_hash(&a).await;
    assert_eq!(genesis, genesis_hash(&b).await);
    let txs = transfers(4);
    let first = build(&a, genesis, &txs).await;
    let again = build(&a, genesis, &txs).await;
    let other_node = build(&b, genesis, &txs).await;
    assert_eq!(first["blockHash"], again["blockHash"]);
    assert_eq!(first, other_node);
    a.stop().await;
    b.stop().await;
}

/// Recomputes the block hash of a payload after tampering with it.
fn rehash(payload: &mut Value) {
    let parsed: ExecutionPayloadV3 = serde_json::from_value(payload.clone()).unwrap();
    let mut block = parsed.try_into_block::<TxEnvelope>().unwrap();
    block.header.parent_beacon_block_root = Some(BEACON_ROOT);
    payload["blockHash"] = json!(block.header.hash_slow());
}

async fn new_payload(node: &TestNode, payload: &Value) -> Value {
    node.engine("engine_newPayloadV3", json!([payload, [], BEACON_ROOT]))
        .await
        .unwrap()
}

/// Asserts that `status` is INVALID, that its `validationError` names `field`, and that its
/// `latestValidHash` is `latest_valid` (null for a payload that is not even a block).
fn assert_invalid(status: &Value, field: &str, latest_valid: Option<B256>) {
    assert_eq!(status["status"], "INVALID", "{field}: {status}");
    assert!(
        status["validationError"]
            .as_str()
            .is_some_and(|error| error.contains(field)),
        "{field}: {status}"
    );
    assert_eq!(
        status["latestValidHash"],
        json!(latest_valid),
        "{field}: {status}"
    );
}

#[tokio::test]
async fn tampered_payloads_are_invalid_and_unknown_parents_syncing() {
    let node = TestNode::start().await;
    let genesis = genesis_hash(&node).await;
    let payload = build(&node, genesis, &transfers(2)).await;

    let mut bad_state = payload.clone();
    bad_state["stateRoot"] = json!(B256::repeat_byte(0x33));
    rehash(&mut bad_state);
    let status = new_payload(&node, &bad_state).await;
    assert_invalid(&status, "stateRoot", Some(genesis));

    let mut bad_receipts = payload.clone();
    bad_receipts["receiptsRoot"] = json!(B256::repeat_byte(0x44));
    rehash(&mut bad_receipts);
    let status = new_payload(&node, &bad_receipts).await;
    assert_invalid(&status, "receiptsRoot", Some(genesis));

    let mut bad_hash = payload.clone();
    bad_hash["blockHash"] = json!(B256::repeat_byte(0x55));
    let status = new_payload(&node, &bad_hash).await;
    assert_invalid(&status, "blockHash", None);

    let mut bad_tx = payload.clone();
    let dev = signer(DEV_KEY);
    let other = raw(&sign_1559(
        &dev,
        0,
        TxKind::Call(Address::repeat_byte(7)),
        U256::from(5),
        Bytes::new(),
        21_000,
    ));
    bad_tx["transactions"][0] = json!(other);
    let status = new_payload(&node, &bad_tx).await;
    assert_eq!(
        status["status"], "INVALID",
        "swapped transaction, stale hash: {status}"
    );
    rehash(&mut bad_tx);
    let status = new_payload(&node, &bad_tx).await;
    assert_eq!(
        status["status"], "INVALID",
        "swapped transaction, rehashed: {status}"
    );

    let mut orphan = payload.clone();
    orphan["parentHash"] = json!(B256::repeat_byte(0x66));
    rehash(&mut orphan);
    let status = new_payload(&node, &orphan).await;
    assert_eq!(status["status"], "SYNCING", "{status}");
    assert_eq!(status["latestValidHash"], Value::Null);
    // The block hash is checked before the parent is looked up.
    orphan["blockHash"] = json!(B256::repeat_byte(0x67));
    assert_invalid(&new_payload(&node, &orphan).await, "blockHash", None);

    let status = new_payload(&node, &payload).await;
    assert_eq!(
        status["status"], "VALID",
        "the untampered payload: {status}"
    );
    node.stop().await;
}

/// A new block on a known parent, from another node, is executed while its transactions root
/// is computed; its hash is still checked before anything else is answered. Small and large
/// blocks (executed on one thread and on two).
#[tokio::test]
async fn a_new_block_from_another_node_is_answered_by_its_hash_first() {
    let (builder, node) = (TestNode::start().await, TestNode::start().await);
    let genesis = genesis_hash(&builder).await;
    for count in [2, 80] {
        let payload = build(&builder, genesis, &transfers(count)).await;

        // Each tampered payload keeps the original hash, then is rehashed.
        let mut bad_state = payload.clone();
        bad_state["stateRoot"] = json!(B256::repeat_byte(0x33));
        assert_invalid(&new_payload(&node, &bad_state).await, "blockHash", None);
        rehash(&mut bad_state);
        let status = new_payload(&node, &bad_state).await;
        assert_invalid(&status, "stateRoot", Some(genesis));

        let mut swapped = payload.clone();
        swapped["transactions"][0] = swapped["transactions"][1].clone();
        assert_invalid(&new_payload(&node, &swapped).await, "blockHash", None);

        let mut unsigned = payload.clone();
        unsigned["transactions"][0] =
            json!(unrecoverable_transfer(0, Address::repeat_byte(0x40), 1000));
        assert_invalid(&new_payload(&node, &unsigned).await, "blockHash", None);
        rehash(&mut unsigned);
        let status = new_payload(&node, &unsigned).await;
        assert_invalid(&status, "transaction 0", Some(genesis));

        let mut early = payload.clone();
        early["timestamp"] = json!("0x0");
        assert_invalid(&new_payload(&node, &early).await, "blockHash", None);
        rehash(&mut early);
        assert_invalid(
            &new_payload(&node, &early).await,
            "timestamp",
            Some(genesis),
        );

        let status = new_payload(&node, &payload).await;
        assert_eq!(status["status"], "VALID", "{count} transfers: {status}");
        assert_eq!(status["latestValidHash"], payload["blockHash"]);
    }
    builder.stop().await;
    node.stop().await;
}

#[tokio::test]
async fn tampered_execution_fields_and_known_hashes_are_invalid() {
    let node = TestNode::start().await;
    let genesis = genesis_hash(&node).await;
    let payload = build(&node, genesis, &transfers(2)).await;

    // Each header field that execution decides, tampered with and rehashed.
    for (field, value) in [
        ("baseFeePerGas", json!("0x7")),
        ("gasUsed", json!("0x5209")),
        ("logsBloom", json!(format!("0x{}", "ff".repeat(256)))),
        ("excessBlobGas", json!("0x20000")),
    ] {
        let mut tampered = payload.clone();
        tampered[field] = value;
        rehash(&mut tampered);
        assert_invalid(&new_payload(&node, &tampered).await, field, Some(genesis));
    }

    let with_blobs = node
        .engine(
            "engine_newPayloadV3",
            json!([payload, [B256::repeat_byte(1)], BEACON_ROOT]),
        )
        .await
        .unwrap();
    assert_invalid(&with_blobs, "versioned hashes", None);

    let status = new_payload(&node, &payload).await;
    assert_eq!(
        status["status"], "VALID",
        "the untampered payload: {status}"
    );
    assert_eq!(status["latestValidHash"], payload["blockHash"]);
    // Once the block is known, its hash alone does not make a tampered copy valid.
    let mut known_hash = payload.clone();
    known_hash["stateRoot"] = json!(B256::repeat_byte(0x33));
    assert_invalid(&new_payload(&node, &known_hash).await, "blockHash", None);
    let status = new_payload(&node, &payload).await;
    assert_eq!(
        status["status"], "VALID",
        "the same payload again: {status}"
    );
    node.stop().await;
}

#[tokio::test]
async fn engine_errors_use_the_spec_codes() {
    let node = TestNode::start().await;
    let genesis = genesis_hash(&node).await;
    let err = node
        .engine("engine_getPayloadV3", json!(["0x0102030405060708"]))
        .await
        .unwrap_err();
    assert_eq!(err.0, -38001, "{err:?}");

    let unknown = node
        .engine(
            "engine_forkchoiceUpdatedV3",
            json!([fcs(B256::repeat_byte(9)), null]),
        )
        .await
        .unwrap();
    assert_eq!(unknown["payloadStatus"]["status"], "SYNCING");
    assert_eq!(unknown["payloadId"], Value::Null);

    let bad_state = json!({"headBlockHash": genesis, "safeBlockHash": B256::repeat_byte(9), "finalizedBlockHash": genesis});
    let err = node
        .engine("engine_forkchoiceUpdatedV3", json!([bad_state, null]))
        .await
        .unwrap_err();
    assert_eq!(err.0, -38002, "{err:?}");

    let stale = attributes(0, &[], true);
    let err = node
        .engine("engine_forkchoiceUpdatedV3", json!([fcs(genesis), stale]))
        .await
        .unwrap_err();
    assert_eq!(err.0, -38003, "{err:?}");

    let mut low_gas = attributes(1_700_000_000, &[], true);
    low_gas["gasLimit"] = json!("0x1387");
    let err = node
        .engine("engine_forkchoiceUpdatedV3", json!([fcs(genesis), low_gas]))
        .await
        .unwrap_err();
    assert_eq!(err.0, -38003, "gas limit below 5000: {err:?}");

    // A known block that is not yet the head.
    let block = build(&node, genesis, &transfers(1)).await;
    assert_eq!(new_payload(&node, &block).await["status"], "VALID");
    let block_hash = hash(&block["blockHash"]);

    let not_ancestor = json!({"headBlockHash": genesis, "safeBlockHash": genesis, "finalizedBlockHash": block_hash});
    let err = node
        .engine("engine_forkchoiceUpdatedV3", json!([not_ancestor, null]))
        .await
        .unwrap_err();
    assert_eq!(err.0, -38002, "finalized block not an ancestor: {err:?}");

    // V2-shaped attributes (no parentBeaconBlockRoot, or no withdrawals) are invalid
    // attributes, checked after the forkchoice update, which stands.
    for missing in ["parentBeaconBlockRoot", "withdrawals"] {
        let mut v2 = attributes(1_700_000_001, &[], true);
        v2.as_object_mut().unwrap().remove(missing);
        let unknown_head = node
            .engine(
                "engine_forkchoiceUpdatedV3",
                json!([fcs(B256::repeat_byte(9)), v2.clone()]),
            )
            .await
            .unwrap();
        assert_eq!(
            unknown_head["payloadStatus"]["status"], "SYNCING",
            "{missing}"
        );
        let err = node
            .engine("engine_forkchoiceUpdatedV3", json!([fcs(block_hash), v2]))
            .await
            .unwrap_err();
        assert_eq!(err.0, -38003, "without {missing}: {err:?}");
    }
    assert_eq!(node.rpc("eth_blockNumber", json!([])).await.unwrap(), "0x1");

    // Parameters that do not match V3 exactly.
    let mut v2_payload = block.clone();
    for field in ["blobGasUsed", "excessBlobGas"] {
        v2_payload.as_object_mut().unwrap().remove(field);
    }
    for (what, params) in [
        ("not a payload", json!([{"bogus": true}, [], BEACON_ROOT])),
        ("a V2 payload", json!([v2_payload, [], BEACON_ROOT])),
        ("a null beacon root", json!([block, [], null])),
        ("no beacon root", json!([block, []])),
        ("a fourth parameter", json!([block, [], BEACON_ROOT, []])),
    ] {
        let err = node
            .engine("engine_newPayloadV3", params)
            .await
            .unwrap_err();
        assert_eq!(err.0, -32602, "newPayloadV3 with {what}: {err:?}");
    }
    let err = node
        .engine(
            "engine_forkchoiceUpdatedV3",
            json!([fcs(block_hash), null, {}]),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.0, -32602,
        "forkchoiceUpdatedV3 with a third parameter: {err:?}"
    );
    node.stop().await;
}

#[tokio::test]
async fn a_restart_with_datadir_returns_to_the_same_head() {
    let dir = tempfile::tempdir().unwrap();
    let node = TestNode::start_with(
        tandem_evm::genesis::dev_genesis(),
        Some(dir.path().to_path_buf()),
    )
    .await;
    let genesis = genesis_hash(&node).await;
    let first = produce_block(&node, genesis, 1_700_000_000, &transfers(2), true).await;
    let second = produce_block(&node, hash(&first["blockHash"]), 1_700_000_001, &[], true).await;
    let balance = node
        .rpc(
            "eth_getBalance",
            json!([Address::repeat_byte(0x41), "latest"]),
        )
        .await
        .unwrap();
    node.stop().await;

    let node = TestNode::start_with(
        tandem_evm::genesis::dev_genesis(),
        Some(dir.path().to_path_buf()),
    )
    .await;
    assert_eq!(node.rpc("eth_blockNumber", json!([])).await.unwrap(), "0x2");
    let head = node
        .rpc("eth_getBlockByNumber", json!(["latest", false]))
        .await
        .unwrap();
    assert_eq!(head["hash"], second["blockHash"]);
    assert_eq!(
        node.rpc(
            "eth_getBalance",
            json!([Address::repeat_byte(0x41), "latest"])
        )
        .await
        .unwrap(),
        balance
    );
    node.stop().await;
}
