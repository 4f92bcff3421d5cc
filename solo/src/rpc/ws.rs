//! The `/websocket` endpoint: JSON-RPC calls plus `subscribe`/`unsubscribe` to events.

use std::sync::Arc;

use async_tungstenite::{
    tokio::TokioAdapter,
    tungstenite::{handshake::derive_accept_key, protocol::Role, Message},
    WebSocketStream,
};
use futures::{SinkExt, StreamExt};
use http_body_util::Full;
use hyper::{body::Incoming, header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tendermint_rpc::{event::v0_38::SerEvent, response::Wrapper, Id, ResponseError};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{
    encode_error, encode_result,
    events::{event_for_block, tx_events_for_block, Query},
    methods, parse_request, Body,
};
use crate::node::Shared;

/// Most subscriptions one WebSocket client may hold (`CometBFT`'s default).
const MAX_SUBSCRIPTIONS: usize = 5;

pub(super) fn upgrade(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> Response<Body> {
    let Some(key) = req.headers().get(header::SEC_WEBSOCKET_KEY) else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Full::new("expected a WebSocket upgrade request".into()))
            .expect("static headers always build a response");
    };
    let accept = derive_accept_key(key.as_bytes());
    // A WebSocket message is held as a whole: bound it as an HTTP body is.
    let limit = super::max_body_bytes(shared.mempool.limits().max_tx_bytes);
    let config = async_tungstenite::tungstenite::protocol::WebSocketConfig {
        max_message_size: Some(limit),
        max_frame_size: Some(limit),
        ..Default::default()
    };
    tokio::spawn(async move {
        match hyper::upgrade::on(req).await {
            Ok(upgraded) => {
                let io = TokioAdapter::new(TokioIo::new(upgraded));
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                session(ws, shared, cancel).await;
            }
            Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(header::SEC_WEBSOCKET_ACCEPT, accept)
        .body(Full::default())
        .expect("static headers always build a response")
}

struct Subscription {
    text: String,
    query: Query,
    id: Id,
}

async fn session<S>(ws: WebSocketStream<S>, shared: Arc<Shared>, cancel: CancellationToken)
where
    S: futures::AsyncRead + futures::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    let mut events = shared.events.subscribe();
    let mut subs: Vec<Subscription> = Vec::new();
    loop {
        let outgoing: Vec<Vec<u8>> = tokio::select! {
            () = cancel.cancelled() => break,
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(text))) => vec![handle_text(&text, &shared, &mut subs).await],
                Some(Ok(Message::Binary(bytes))) => {
                    match String::from_utf8(bytes) {
                        Ok(text) => vec![handle_text(&text, &shared, &mut subs).await],
                        Err(_) => vec![encode_error(Id::None, ResponseError::invalid_params("binary frames must hold UTF-8 JSON"))],
                    }
                }
                Some(Ok(Message::Ping(payload))) => {
                    if sink.send(Message::Pong(payload)).await.is_err() { break; }
                    continue;
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => continue,
            },
            event = events.recv() => match event {
                Ok(block) => {
                    // Only the first block has the fields CometBFT writes as empty structures.
                    let first = block.block.header.last_block_id.is_none();
                    let mut out = Vec::new();
                    let mut all = vec![event_for_block(&block)];
                    all.extend(tx_events_for_block(&block));
                    for event in all {
                        let attrs = event.events.clone().unwrap_or_default();
                        let result = super::events::tx_result_of(&event, &block);
                        for sub in subs.iter().filter(|s| s.query.matches(&attrs)) {
                            let mut event = event.clone();
                            event.query.clone_from(&sub.text);
                            let wrapper = Wrapper::new_with_id(sub.id.clone(), Some(SerEvent::from(event)), None);
                            let encoded = if first || result.is_some() {
                                let mut wrapper = serde_json::to_value(&wrapper).unwrap_or_default();
                                if first {
                                    super::cometbft_empty_structs(&mut wrapper);
                                }
                                if let Some(result) = result {
                                    super::events::add_result_fields(&mut wrapper, result);
                                }
                                serde_json::to_vec(&wrapper)
                            } else {
                                serde_json::to_vec(&wrapper)
                            };
                            out.push(encoded.unwrap_or_default());
                        }
                    }
                    out
                }
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "WebSocket subscriber is too slow; closing it");
                    break;
                }
                Err(RecvError::Closed) => break,
            },
        };
        for bytes in outgoing {
            let text = String::from_utf8(bytes).unwrap_or_default();
            if sink.send(Message::Text(text)).await.is_err() {
                return;
            }
        }
    }
    let _ = sink.close().await;
}

async fn handle_text(text: &str, shared: &Shared, subs: &mut Vec<Subscription>) -> Vec<u8> {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return encode_error(Id::None, ResponseError::parse_error(e)),
    };
    let request = match parse_request(value) {
        Ok(r) => r,
        Err((id, e)) => return encode_error(id, e),
    };
    let query_text = request
        .params
        .get("query")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match request.method.as_str() {
        "subscribe" => {
            let Some(text) = query_text else {
                return encode_error(
                    request.id,
                    ResponseError::invalid_params("subscribe needs params.query"),
                );
            };
            if subs.len() >= MAX_SUBSCRIPTIONS {
                return encode_error(
                    request.id,
                    super::methods::internal_error(format!(
                        "max_subscriptions_per_client {MAX_SUBSCRIPTIONS} reached"
                    )),
                );
            }
            match Query::parse(&text) {
                Ok(query) => {
                    subs.push(Subscription {
                        text,
                        query,
                        id: request.id.clone(),
                    });
                    encode_result(request.id, json!({}))
                }
                Err(e) => encode_error(request.id, super::methods::internal_error(e)),
            }
        }
        "unsubscribe" => {
            let Some(text) = query_text else {
                return encode_error(
                    request.id,
                    ResponseError::invalid_params("unsubscribe needs params.query"),
                );
            };
            let before = subs.len();
            subs.retain(|s| s.text != text);
            if subs.len() == before {
                return encode_error(
                    request.id,
                    super::methods::internal_error("subscription not found"),
                );
            }
            encode_result(request.id, json!({}))
        }
        "unsubscribe_all" => {
            subs.clear();
            encode_result(request.id, json!({}))
        }
        method => match methods::call(shared, method, request.params).await {
            Ok(result) => encode_result(request.id, result),
            Err(e) => encode_error(request.id, e),
        },
    }
}
