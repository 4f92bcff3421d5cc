//! Fuzzing tandem-evm's untrusted inputs with proptest, through its real HTTP interfaces:
//! `eth_sendRawTransaction` with arbitrary bytes and mutations of a valid transaction, and
//! `engine_newPayloadV3` with one transaction of a valid payload mutated. Every case gets an
//! answer (never a panic or a hang), and valid input is still accepted afterwards.

use alloy_primitives::{keccak256, Bytes, B256};
use proptest::{prelude::*, test_runner::TestCaseError};
use serde_json::json;
use tandem_testkit::{cases, mutation};

use crate::{
    engine::{build, genesis_hash, transfers},
    support::{hash, TestNode},
};

/// A changed transaction is refused with a message: it no longer decodes, or its signature
/// recovers another (unfunded) sender. The valid one is still accepted afterwards.
#[test]
fn send_raw_transaction_refuses_arbitrary_and_mutated_bytes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let node = runtime.block_on(TestNode::start());
    let valid = transfers(1).remove(0);
    proptest!(cases(256), |(change in mutation(1024))| {
        let bytes = change.apply(&valid);
        prop_assume!(bytes != valid.as_ref());
        let answer = runtime.block_on(node.rpc("eth_sendRawTransaction", json!([Bytes::from(bytes)])));
        match answer {
            Ok(accepted) => return Err(TestCaseError::fail(format!("a changed transaction was accepted: {accepted}"))),
            Err((code, message)) => prop_assert!(code != 0 && !message.is_empty(), "{code} {message}"),
        }
    });
    let accepted = runtime
        .block_on(node.rpc("eth_sendRawTransaction", json!([valid])))
        .unwrap();
    assert_eq!(hash(&accepted), keccak256(&valid));
    runtime.block_on(node.stop());
}

/// A payload with one transaction changed is INVALID (the block hash no longer matches, or the
/// transaction no longer decodes), never VALID or SYNCING; the payload itself is VALID after.
#[test]
fn new_payload_refuses_a_mutated_transaction() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let builder = runtime.block_on(TestNode::start());
    let validator = runtime.block_on(TestNode::start());
    let payload = runtime.block_on(async {
        let genesis = genesis_hash(&builder).await;
        build(&builder, genesis, &transfers(3)).await
    });
    let beacon_root = B256::repeat_byte(0x22);
    let new_payload = |payload: &serde_json::Value| {
        runtime
            .block_on(validator.engine("engine_newPayloadV3", json!([payload, [], beacon_root])))
            .unwrap()
    };
    proptest!(cases(128), |(which in 0..3_usize, change in mutation(1024))| {
        let valid: Bytes = serde_json::from_value(payload["transactions"][which].clone()).unwrap();
        let bytes = change.apply(&valid);
        prop_assume!(bytes != valid.as_ref());
        let mut changed = payload.clone();
        changed["transactions"][which] = json!(Bytes::from(bytes));
        let status = new_payload(&changed);
        prop_assert_eq!(&status["status"], "INVALID", "{}", status);
        prop_assert!(!status["validationError"].as_str().unwrap_or_default().is_empty(), "{}", status);
    });
    assert_eq!(new_payload(&payload)["status"], "VALID");
    runtime.block_on(builder.stop());
    runtime.block_on(validator.stop());
}
