//! Fuzzing the JSON-RPC server with proptest: arbitrary bodies, and requests for every method
//! with arbitrary ids and params, over real HTTP. Each gets a JSON-RPC answer (a result or an
//! error object) within the deadline, and the node keeps producing blocks.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{json, Value};
use tandem_testkit::cases;
use tendermint_rpc::Client as _;

use crate::support::{raw_get, raw_rpc, start_test_node, wait_height, TestNode};

const DEADLINE: Duration = Duration::from_secs(20);

const METHODS: &[&str] = &[
    "health",
    "status",
    "genesis",
    "abci_info",
    "abci_query",
    "broadcast_tx_sync",
    "broadcast_tx_async",
    "broadcast_tx_commit",
    "block",
    "block_results",
    "commit",
    "validators",
    "tx",
    "num_unconfirmed_txs",
    "unconfirmed_txs",
    "blockchain",
    "header",
    "header_by_hash",
    "block_by_hash",
    "consensus_params",
    "net_info",
    "genesis_chunked",
    "tx_search",
    "block_search",
    "subscribe",
    "no_such_method",
];

/// The params the served methods read.
const PARAM_NAMES: &[&str] = &[
    "height",
    "tx",
    "hash",
    "path",
    "data",
    "prove",
    "query",
    "page",
    "per_page",
    "minHeight",
    "maxHeight",
    "limit",
    "chunk",
];

/// A param name: one the methods read, or any other.
fn param_name() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(PARAM_NAMES).prop_map(str::to_owned),
        "[a-z_]{1,8}",
    ]
}

/// JSON values two levels deep, with the strings and numbers params are made of.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[0-9]{0,20}".prop_map(Value::String),
        "[A-Za-z0-9+/=]{0,64}".prop_map(Value::String),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(param_name(), inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (proptest::sample::select(METHODS), json_value(), json_value()).prop_map(
            |(method, id, params)| json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()
        ),
        1 => proptest::collection::vec(json_value(), 0..4).prop_map(|batch| Value::Array(batch).to_string()),
        1 => ".{0,256}",
    ]
}

/// A node with 20 ms blocks over the test app, past its first block, on its own runtime.
fn running_node() -> (tokio::runtime::Runtime, TestNode) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, dir, node, client) =
        runtime.block_on(start_test_node(Duration::from_millis(20), true, |config| {
            config.timeout_broadcast_tx_commit = Duration::from_secs(5);
        }));
    runtime.block_on(wait_height(&client, 1, DEADLINE));
    (runtime, (app, dir, node, client))
}

/// A JSON-RPC 2.0 answer with exactly one of `result` and `error` (with a numeric code).
fn one_answer(answer: &Value, request: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(&answer["jsonrpc"], "2.0", "{} for {}", answer, request);
    let has_result = answer.get("result").is_some_and(|r| !r.is_null());
    let has_error = answer.get("error").is_some_and(|e| e["code"].is_i64());
    prop_assert!(
        has_result != has_error,
        "exactly one of result and error: {} for {}",
        answer,
        request
    );
    Ok(())
}

/// Waits for two more blocks (the fuzzing left the node working), then stops it.
fn still_producing_then_stop(
    runtime: &tokio::runtime::Runtime,
    client: &tendermint_rpc::HttpClient,
    node: tandem_solo::NodeHandle,
) {
    let before = runtime
        .block_on(client.status())
        .unwrap()
        .sync_info
        .latest_block_height
        .value();
    runtime.block_on(wait_height(client, before + 2, DEADLINE));
    runtime.block_on(node.shutdown()).unwrap();
}

#[test]
fn every_body_gets_a_json_rpc_answer() {
    let (runtime, (_app, _dir, node, client)) = running_node();
    let addr = node.rpc_addr();
    proptest!(cases(256), |(body in body())| {
        let answer = runtime
            .block_on(async { tokio::time::timeout(DEADLINE, raw_rpc(addr, &body)).await })
            .map_err(|_| TestCaseError::fail(format!("no answer within {DEADLINE:?} to {body}")))?;
        let bad_id = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|request| request.get("id").cloned())
            .is_some_and(|id| !(id.is_null() || id.is_string() || id.is_i64()));
        if bad_id {
            prop_assert_eq!(&answer["error"]["code"], -32600, "an id that is no string or number: {}", answer);
        }
        let answers = match answer {
            Value::Array(answers) => answers,
            single => vec![single],
        };
        for answer in answers {
            one_answer(&answer, &body)?;
        }
    });
    still_producing_then_stop(&runtime, &client, node);
}

/// One URI param: a known or arbitrary name, and `0x` hex, a quoted (`%22`) string, a number
/// or other URI-safe text as its value.
fn uri_param() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        "0x[0-9a-fA-F]{0,70}",
        "%22[A-Za-z0-9=+/.%]{0,40}%22",
        "[0-9]{0,22}",
        "[A-Za-z0-9=+/.%-]{0,48}",
    ];
    (param_name(), value).prop_map(|(name, value)| format!("{name}={value}"))
}

/// URI requests (`GET /<method>?…`) for every method with arbitrary params, as curl sends
/// them: each gets a JSON-RPC answer, and the node keeps producing blocks.
#[test]
fn every_uri_request_gets_a_json_rpc_answer() {
    let (runtime, (_app, _dir, node, client)) = running_node();
    let addr = node.rpc_addr();
    let request = (
        proptest::sample::select(METHODS),
        proptest::collection::vec(uri_param(), 0..4),
    );
    proptest!(cases(256), |((method, params) in request)| {
        let path = format!("{method}?{}", params.join("&"));
        let answer = runtime
            .block_on(async { tokio::time::timeout(DEADLINE, raw_get(addr, &path)).await })
            .map_err(|_| TestCaseError::fail(format!("no answer within {DEADLINE:?} to {path}")))?;
        one_answer(&answer, &path)?;
    });
    still_producing_then_stop(&runtime, &client, node);
}

/// Base64 that tendermint-rpc's decoder (subtle-encoding 0.5) panics on: a last group that
/// starts with padding. Found by the fuzz test above; each gets an Invalid Params error.
#[test]
fn malformed_base64_params_are_invalid_params() {
    let (runtime, (_app, _dir, node, _client)) = running_node();
    for (method, field) in [
        ("broadcast_tx_sync", "tx"),
        ("broadcast_tx_async", "tx"),
        ("broadcast_tx_commit", "tx"),
        ("tx", "hash"),
        ("block_by_hash", "hash"),
    ] {
        for text in ["AAAA====", "AAAA=", "====", "A", "AB=C", "AA!A"] {
            let body =
                json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {field: text}})
                    .to_string();
            let answer = runtime.block_on(raw_rpc(node.rpc_addr(), &body));
            assert_eq!(answer["error"]["code"], -32602, "{method} {text}: {answer}");
        }
    }
    runtime.block_on(node.shutdown()).unwrap();
}

/// `/status`'s app hash is its latest header's. Batches are answered as one array in request order, up to 1,000 requests; a larger batch,
/// or a body past the limit, gets one error. A URI request whose escape runs into a
/// multi-byte character is answered (its decoding used to panic).
#[test]
fn batches_bodies_and_uri_bytes_are_bounded_and_answered() {
    let (runtime, (_app, _dir, node, client)) = running_node();
    let addr = node.rpc_addr();
    // /status pairs the latest height with that block header's app hash, as CometBFT does.
    let status = runtime.block_on(client.status()).unwrap().sync_info;
    let latest = runtime
        .block_on(client.block(status.latest_block_height))
        .unwrap();
    assert_eq!(status.latest_app_hash, latest.block.header.app_hash);
    let request = |id: usize| format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"health"}}"#);
    let batch = |n: usize| format!("[{}]", (0..n).map(request).collect::<Vec<_>>().join(","));

    let answers = runtime.block_on(raw_rpc(addr, &batch(1_000)));
    let answers = answers.as_array().expect("a batch gets an array");
    assert_eq!(answers.len(), 1_000);
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer["id"], i, "{answer}");
        assert!(answer["result"].is_object(), "{answer}");
    }
    let refused = runtime.block_on(raw_rpc(addr, &batch(1_001)));
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    assert!(
        refused["error"]["data"].as_str().unwrap().contains("1000"),
        "{refused}"
    );

    let huge = format!("\"{}\"", "a".repeat(2_000_000));
    let refused = runtime.block_on(raw_rpc(addr, &huge));
    assert!(
        refused["error"]["data"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{refused}"
    );

    let answer = runtime.block_on(async {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /abci_query?path=%a\u{e9} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        tokio::time::timeout(DEADLINE, stream.read_to_end(&mut response))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&response).into_owned()
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"jsonrpc\":\"2.0\""), "{answer}");
    runtime.block_on(node.shutdown()).unwrap();
}
