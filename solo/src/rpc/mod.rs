//! `CometBFT` JSON-RPC over HTTP (POST `/` or GET `/<method>?…`) and WebSocket (`/websocket`).
//!
//! Every result is a `tendermint_rpc::endpoint::*::Response` in a JSON-RPC 2.0 wrapper, so
//! tendermint-rpc, cosmjs and other `CometBFT` clients parse it. Unknown methods get the
//! JSON-RPC "method not found" error (-32601).

mod events;
mod methods;
mod ws;

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Incoming, header, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tendermint_rpc::{response::Wrapper, Id, ResponseError};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::node::Shared;

/// `CometBFT`'s `rpc.max_body_bytes` default.
const COMETBFT_MAX_BODY_BYTES: usize = 1_000_000;

/// Most requests in one JSON-RPC batch: each is answered in memory before the batch is sent.
pub(crate) const MAX_BATCH_REQUESTS: usize = 1_000;

/// Largest JSON-RPC request body accepted: `CometBFT`'s default, or enough for the largest tx
/// the mempool admits (`mempool.max_tx_bytes`, base64 in a `broadcast_tx_*` request) when
/// that is more.
pub(crate) fn max_body_bytes(max_tx_bytes: usize) -> usize {
    COMETBFT_MAX_BODY_BYTES.max(
        max_tx_bytes
            .div_ceil(3)
            .saturating_mul(4)
            .saturating_add(64 * 1024),
    )
}

/// Serves JSON-RPC on `listener` until `cancel` fires.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "failed to accept an RPC connection");
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let cancel = cancel.clone();
        // Reap the connections that ended, so that they do not pile up until shutdown.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                let cancel = cancel.clone();
                async move { Ok::<_, Infallible>(handle(req, shared, cancel).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            let _ = conn.await;
        });
    }
    // Connections end on their own once the node stops; do not leave any running.
    tasks.shutdown().await;
}

type Body = Full<Bytes>;

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("static headers always build a response")
}

async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> Response<Body> {
    let path = req.uri().path().trim_start_matches('/').to_owned();
    if path == "websocket" && req.method() == Method::GET {
        return ws::upgrade(req, shared, cancel);
    }
    match *req.method() {
        Method::POST => {
            let limit = max_body_bytes(shared.mempool.limits().max_tx_bytes);
            let body = match Limited::new(req.into_body(), limit).collect().await {
                Ok(body) => body.to_bytes(),
                Err(e) => {
                    let err = ResponseError::invalid_params(&format!(
                        "request body unreadable or larger than {limit} bytes: {e}"
                    ));
                    return json_response(StatusCode::OK, encode_error(Id::None, err));
                }
            };
            json_response(StatusCode::OK, handle_body(&body, &shared).await)
        }
        Method::GET => {
            let params = uri_params(&path, req.uri().query().unwrap_or(""));
            let id = Id::Num(-1);
            let out = match methods::call(&shared, &path, params).await {
                Ok(result) => encode_result(id, result),
                Err(e) => encode_error(id, e),
            };
            json_response(StatusCode::OK, out)
        }
        _ => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            b"{\"error\":\"use POST for JSON-RPC or GET for URI requests\"}".to_vec(),
        ),
    }
}

/// Handles a JSON-RPC request body (single request or batch).
pub(crate) async fn handle_body(body: &[u8], shared: &Shared) -> Vec<u8> {
    let value: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return encode_error(Id::None, ResponseError::parse_error(e)),
    };
    if let Value::Array(requests) = value {
        if requests.len() > MAX_BATCH_REQUESTS {
            return encode_error(
                Id::None,
                invalid_request(&format!(
                    "batch of {} requests, at most {MAX_BATCH_REQUESTS} are served",
                    requests.len()
                )),
            );
        }
        // Each answer is already a JSON object: join them into an array as they are.
        let mut out = b"[".to_vec();
        for (i, request) in requests.into_iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend(handle_one(request, shared).await);
        }
        out.push(b']');
        return out;
    }
    handle_one(value, shared).await
}

/// A parsed JSON-RPC request.
pub(crate) struct RpcRequest {
    pub(crate) id: Id,
    pub(crate) method: String,
    pub(crate) params: Value,
}

fn invalid_request(message: &str) -> ResponseError {
    ResponseError::new(
        tendermint_rpc::Code::InvalidRequest,
        Some(message.to_owned()),
    )
}

pub(crate) fn parse_request(value: Value) -> Result<RpcRequest, (Id, ResponseError)> {
    let Value::Object(mut map) = value else {
        return Err((
            Id::None,
            ResponseError::invalid_params("request must be a JSON object"),
        ));
    };
    // JSON-RPC 2.0: an id is a string, a number or null.
    let id: Id = match map.remove("id") {
        None | Some(Value::Null) => Id::None,
        Some(value @ (Value::String(_) | Value::Number(_))) => serde_json::from_value(value)
            .map_err(|e| (Id::None, invalid_request(&format!("unusable id: {e}"))))?,
        Some(_) => {
            return Err((
                Id::None,
                invalid_request("id must be a string, a number or null"),
            ))
        }
    };
    let Some(Value::String(method)) = map.remove("method") else {
        return Err((id, ResponseError::invalid_params("request has no method")));
    };
    let params = map.remove("params").unwrap_or(Value::Null);
    Ok(RpcRequest { id, method, params })
}

async fn handle_one(value: Value, shared: &Shared) -> Vec<u8> {
    match parse_request(value) {
        Ok(request) => match methods::call(shared, &request.method, request.params).await {
            Ok(result) => encode_result(request.id, result),
            Err(e) => encode_error(request.id, e),
        },
        Err((id, e)) => encode_error(id, e),
    }
}

pub(crate) fn encode_result(id: Id, result: Value) -> Vec<u8> {
    serde_json::to_vec(&Wrapper::new_with_id(id, Some(result), None))
        .expect("a JSON value always serializes")
}

pub(crate) fn encode_error(id: Id, error: ResponseError) -> Vec<u8> {
    serde_json::to_vec(&Wrapper::<Value>::new_with_id(id, None, Some(error)))
        .expect("a JSON-RPC error always serializes")
}

/// Writes `CometBFT`'s empty structures where tendermint-rs serializes `null`: the first block's
/// `last_block_id` and `last_commit`. Go has no null there (zero-value structs), and cosmjs reads
/// `last_block_id.hash` and `last_commit.block_id.hash` without a null check, so `block(1)`,
/// `commit(1)` and the first `NewBlock` event would throw in cosmjs. tendermint-rs reads the
/// empty structures back as `None`. Applied to the answers and events that carry a block.
pub(crate) fn cometbft_empty_structs(value: &mut Value) {
    let empty_id = || serde_json::json!({"hash": "", "parts": {"total": 0, "hash": ""}});
    match value {
        Value::Object(map) => {
            for (key, field) in map.iter_mut() {
                match (key.as_str(), &*field) {
                    ("last_block_id", Value::Null) => *field = empty_id(),
                    ("last_commit", Value::Null) => {
                        *field = serde_json::json!({
                            "height": "0",
                            "round": 0,
                            "block_id": empty_id(),
                            "signatures": [],
                        });
                    }
                    _ => cometbft_empty_structs(field),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(cometbft_empty_structs),
        _ => {}
    }
}

/// How a bytes param travels in a JSON-RPC body, as `CometBFT`'s Go types encode it:
/// `[]byte` as base64, `bytes.HexBytes` as hex.
#[derive(Clone, Copy)]
enum BytesParam {
    Base64,
    Hex,
}

fn bytes_param(method: &str, name: &str) -> Option<BytesParam> {
    match (method, name) {
        ("broadcast_tx_sync" | "broadcast_tx_async" | "broadcast_tx_commit", "tx")
        | ("tx" | "block_by_hash", "hash") => Some(BytesParam::Base64),
        ("abci_query", "data") | ("header_by_hash", "hash") => Some(BytesParam::Hex),
        _ => None,
    }
}

/// Turns the query of a URI request for `method` into its JSON params, as `CometBFT` reads
/// URI args: a quoted value is a string, and a bytes param is either `0x`-prefixed hex or a
/// quoted string of raw bytes (`broadcast_tx_sync?tx="name=satoshi"`); it is re-encoded as the
/// method's JSON body carries it. Anything else is passed on as a string.
fn uri_params(method: &str, query: &str) -> Value {
    let mut map = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        let decoded = percent_decode_bytes(raw);
        let quoted = decoded.len() >= 2 && decoded.starts_with(b"\"") && decoded.ends_with(b"\"");
        let bytes = match bytes_param(method, &key) {
            Some(encoding) => {
                let raw_bytes = if quoted {
                    Some(decoded[1..decoded.len() - 1].to_vec())
                } else {
                    decoded
                        .strip_prefix(b"0x")
                        .and_then(|h| hex::decode(h).ok())
                };
                raw_bytes.map(|b| match encoding {
                    BytesParam::Hex => hex::encode_upper(b),
                    BytesParam::Base64 => methods::base64_value(&b)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                })
            }
            None => None,
        };
        let value = bytes.unwrap_or_else(|| {
            String::from_utf8_lossy(&decoded)
                .trim_matches('"')
                .to_owned()
        });
        map.insert(key, Value::String(value));
    }
    Value::Object(map)
}

fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s)).into_owned()
}

/// Decodes `%XX` escapes; anything else, a malformed escape included, is kept as it is.
fn percent_decode_bytes(s: &str) -> Vec<u8> {
    let hex = |b: u8| {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let (Some(high), Some(low)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_params_strip_quotes_and_decode() {
        let v = uri_params("block", "height=5&path=%22%2Fstore%22");
        assert_eq!(v["height"], "5");
        assert_eq!(v["path"], "/store");
    }

    #[test]
    fn uri_bytes_params_take_hex_or_a_quoted_string() {
        // `[]byte` params travel as base64, `HexBytes` params as hex.
        let v = uri_params("broadcast_tx_sync", "tx=%22name=satoshi%22");
        assert_eq!(v["tx"], "bmFtZT1zYXRvc2hp");
        assert_eq!(uri_params("tx", "hash=0x00ff")["hash"], "AP8=");
        assert_eq!(uri_params("block_by_hash", "hash=0xAB")["hash"], "qw==");
        assert_eq!(uri_params("abci_query", "data=0xab01")["data"], "AB01");
        assert_eq!(uri_params("abci_query", "data=%22ab%22")["data"], "6162");
        assert_eq!(uri_params("header_by_hash", "hash=0x0a")["hash"], "0A");
        // Not hex: passed on as it is, for the method to refuse with a message.
        assert_eq!(uri_params("tx", "hash=0xzz")["hash"], "0xzz");
        // Other params keep the string form.
        assert_eq!(uri_params("tx", "prove=true")["prove"], "true");
        assert_eq!(uri_params("status", "x=0x00")["x"], "0x00");
    }

    #[test]
    fn percent_decoding_never_splits_a_character() {
        // A `%` followed by one hex digit and a multi-byte character used to slice the
        // string inside that character and panic.
        assert_eq!(percent_decode("%a\u{e9}"), "%a\u{e9}");
        assert_eq!(percent_decode("%\u{e9}"), "%\u{e9}");
        assert_eq!(percent_decode("x%4"), "x%4");
        assert_eq!(percent_decode("%41%2f%"), "A/%");
        assert_eq!(percent_decode("%c3%a9"), "\u{e9}");
    }

    #[test]
    fn the_body_limit_fits_the_largest_admitted_tx() {
        assert_eq!(max_body_bytes(1024), COMETBFT_MAX_BODY_BYTES);
        let four_mib = 4 * 1024 * 1024;
        assert!(max_body_bytes(four_mib) >= four_mib / 3 * 4 + 4);
        assert!(max_body_bytes(four_mib) < 6 * 1024 * 1024);
    }

    #[test]
    fn ids_are_strings_numbers_or_null() {
        let id_of = |id: Value| {
            parse_request(serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "status"}))
                .map(|request| request.id)
        };
        assert_eq!(id_of(serde_json::json!(5)).unwrap(), Id::Num(5));
        assert_eq!(id_of(serde_json::json!("a")).unwrap(), Id::Str("a".into()));
        assert_eq!(id_of(Value::Null).unwrap(), Id::None);
        for bad in [
            serde_json::json!({"x": 1}),
            serde_json::json!([1]),
            serde_json::json!(true),
        ] {
            let (id, error) = id_of(bad).unwrap_err();
            assert_eq!(id, Id::None);
            assert_eq!(error.code(), tendermint_rpc::Code::InvalidRequest);
        }
    }
}
