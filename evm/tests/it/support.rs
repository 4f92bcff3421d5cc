//! Test node, raw JSON-RPC over HTTP, JWT tokens, signed transactions.

use std::{net::SocketAddr, time::Duration};

use alloy_consensus::{SignableTransaction as _, TxEip1559, TxEnvelope};
use alloy_eips::eip2718::Encodable2718 as _;
use alloy_genesis::Genesis;
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_rpc_types_engine::{Claims, JwtSecret};
use alloy_signer::SignerSync as _;
use alloy_signer_local::PrivateKeySigner;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The development key of the built-in genesis (a widely published test key).
pub(crate) const DEV_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

pub(crate) struct TestNode {
    pub(crate) handle: Option<tandem_evm::NodeHandle>,
    pub(crate) secret: JwtSecret,
    pub(crate) secret_hex: String,
    pub(crate) engine: SocketAddr,
    pub(crate) rpc: SocketAddr,
}

impl TestNode {
    pub(crate) async fn start() -> Self {
        Self::start_with(tandem_evm::genesis::dev_genesis(), None).await
    }

    pub(crate) async fn start_with(genesis: Genesis, datadir: Option<std::path::PathBuf>) -> Self {
        Self::start_full(genesis, datadir, None).await
    }

    pub(crate) async fn start_full(
        genesis: Genesis,
        datadir: Option<std::path::PathBuf>,
        forwarder: Option<(String, tandem_evm::forwarder::RollupId)>,
    ) -> Self {
        let secret_hex =
            "7365637265742d6b65792d666f722d74616e64656d2d65766d2d746573747321".to_owned();
        let secret = tandem_evm::jwt::parse_secret(&secret_hex).unwrap();
        let config = tandem_evm::Config {
            genesis,
            datadir,
            jwt_secret: secret,
            engine_addr: "127.0.0.1:0".parse().unwrap(),
            rpc_addr: "127.0.0.1:0".parse().unwrap(),
            forwarder,
            metrics_addr: Some("127.0.0.1:0".parse().unwrap()),
        };
        let handle = tandem_evm::start(config).await.unwrap();
        let (engine, rpc) = (handle.engine_addr(), handle.rpc_addr());
        Self {
            handle: Some(handle),
            secret,
            secret_hex,
            engine,
            rpc,
        }
    }

    pub(crate) async fn stop(mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await;
        }
    }

    pub(crate) fn token(&self) -> String {
        self.secret
            .encode(&Claims {
                iat: now(),
                exp: None,
            })
            .unwrap()
    }

    /// An authenticated Engine API call.
    pub(crate) async fn engine(&self, method: &str, params: Value) -> Result<Value, (i64, String)> {
        let token = self.token();
        let (status, body) = post(
            self.engine,
            &request(method, &params),
            Some(&format!("Bearer {token}")),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        into_result(&body)
    }

    /// A public RPC call.
    pub(crate) async fn rpc(&self, method: &str, params: Value) -> Result<Value, (i64, String)> {
        let (status, body) = post(self.rpc, &request(method, &params), None).await;
        assert_eq!(status, 200, "{body}");
        into_result(&body)
    }
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub(crate) fn request(method: &str, params: &Value) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}).to_string()
}

fn into_result(body: &str) -> Result<Value, (i64, String)> {
    let value: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    if let Some(error) = value.get("error") {
        return Err((
            error["code"].as_i64().unwrap(),
            error["message"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    Ok(value["result"].clone())
}

/// One HTTP/1.1 POST over a fresh connection; returns status and body.
pub(crate) async fn post(
    addr: SocketAddr,
    body: &str,
    authorization: Option<&str>,
) -> (u16, String) {
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = authorization
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(body.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).unwrap()
    };
    let response = tokio::time::timeout(Duration::from_mins(1), io)
        .await
        .expect("HTTP request timed out");
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, rest) = response.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
}

pub(crate) fn signer(key: &str) -> PrivateKeySigner {
    key.parse().unwrap()
}

/// Signs an EIP-1559 transaction for the dev chain.
pub(crate) fn sign_1559(
    signer: &PrivateKeySigner,
    nonce: u64,
    to: TxKind,
    value: U256,
    input: Bytes,
    gas_limit: u64,
) -> TxEnvelope {
    let tx = TxEip1559 {
        chain_id: tandem_evm::genesis::DEV_CHAIN_ID,
        nonce,
        gas_limit,
        max_fee_per_gas: 20_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to,
        value,
        access_list: alloy_eips::eip2930::AccessList::default(),
        input,
    };
    let signature = signer.sign_hash_sync(&tx.signature_hash()).unwrap();
    TxEnvelope::from(tx.into_signed(signature))
}

pub(crate) fn raw(tx: &TxEnvelope) -> Bytes {
    tx.encoded_2718().into()
}

/// Standard V3 attributes with OP fields.
pub(crate) fn attributes(timestamp: u64, txs: &[Bytes], no_tx_pool: bool) -> Value {
    json!({
        "timestamp": format!("{timestamp:#x}"),
        "prevRandao": B256::repeat_byte(0x11),
        "suggestedFeeRecipient": Address::repeat_byte(0xfe),
        "withdrawals": [],
        "parentBeaconBlockRoot": B256::repeat_byte(0x22),
        "transactions": txs,
        "noTxPool": no_tx_pool,
        "gasLimit": "0x1c9c380"
    })
}

pub(crate) fn fcs(head: B256) -> Value {
    json!({"headBlockHash": head, "safeBlockHash": head, "finalizedBlockHash": head})
}

pub(crate) fn hash(value: &Value) -> B256 {
    serde_json::from_value(value.clone()).unwrap()
}

/// Runs FCU(attrs) → getPayload → newPayload → FCU(new head) and returns the payload.
pub(crate) async fn produce_block(
    node: &TestNode,
    parent: B256,
    timestamp: u64,
    txs: &[Bytes],
    no_tx_pool: bool,
) -> Value {
    let updated = node
        .engine(
            "engine_forkchoiceUpdatedV3",
            json!([fcs(parent), attributes(timestamp, txs, no_tx_pool)]),
        )
        .await
        .unwrap();
    assert_eq!(updated["payloadStatus"]["status"], "VALID", "{updated}");
    let envelope = node
        .engine("engine_getPayloadV3", json!([updated["payloadId"]]))
        .await
        .unwrap();
    let payload = envelope["executionPayload"].clone();
    let status = node
        .engine(
            "engine_newPayloadV3",
            json!([payload, [], B256::repeat_byte(0x22)]),
        )
        .await
        .unwrap();
    assert_eq!(status["status"], "VALID", "{status}");
    let head = hash(&payload["blockHash"]);
    let updated = node
        .engine("engine_forkchoiceUpdatedV3", json!([fcs(head), null]))
        .await
        .unwrap();
    assert_eq!(updated["payloadStatus"]["status"], "VALID", "{updated}");
    payload
}
