//! Prometheus metrics on `GET /metrics`, scraped over real HTTP around an Engine API cycle.

use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{
    engine::{genesis_hash, transfers},
    support::{produce_block, TestNode},
};

async fn scrape(node: &TestNode) -> String {
    let addr = node
        .handle
        .as_ref()
        .unwrap()
        .metrics_addr()
        .expect("metrics are served");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the series line starting with `series ` (labels included in `series`), as
/// the integer every series but a histogram sum holds.
fn value(body: &str, series: &str) -> u64 {
    let text = body
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in\n{body}"));
    text.parse()
        .unwrap_or_else(|_| panic!("`{series}` is `{text}`, not an integer"))
}

fn seconds(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no `{series}` in\n{body}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_follow_an_engine_api_cycle() {
    let node = TestNode::start().await;
    let before = scrape(&node).await;
    assert_eq!(value(&before, "tandem_evm_head_number"), 0);
    assert_eq!(value(&before, "tandem_evm_block_build_seconds_count"), 0);

    let genesis = genesis_hash(&node).await;
    let txs = transfers(3);
    let payload = produce_block(&node, genesis, 1_700_000_000, &txs, true).await;
    let gas_used = u64::from_str_radix(
        payload["gasUsed"]
            .as_str()
            .unwrap()
            .trim_start_matches("0x"),
        16,
    )
    .unwrap();
    // An unknown payload id is an Engine API error, counted as such.
    assert!(node
        .engine("engine_getPayloadV3", json!(["0x0000000000000001"]))
        .await
        .is_err());

    let after = scrape(&node).await;
    assert_eq!(value(&after, "tandem_evm_head_number"), 1);
    assert_eq!(value(&after, "tandem_evm_block_build_seconds_count"), 1);
    assert!(seconds(&after, "tandem_evm_block_build_seconds_sum") > 0.0);
    assert_eq!(value(&after, "tandem_evm_block_txs"), 3);
    assert_eq!(value(&after, "tandem_evm_block_gas_used"), gas_used);
    assert_eq!(value(&after, "tandem_evm_pool_txs"), 0);
    let calls = |method: &str, result: &str| {
        value(
            &after,
            &format!(r#"tandem_evm_engine_calls_total{{method="{method}",result="{result}"}}"#),
        )
    };
    assert_eq!(calls("engine_forkchoiceUpdatedV3", "ok"), 2);
    assert_eq!(calls("engine_getPayloadV3", "ok"), 1);
    assert_eq!(calls("engine_getPayloadV3", "error"), 1);
    assert_eq!(calls("engine_newPayloadV3", "VALID"), 1);
    node.stop().await;
}
