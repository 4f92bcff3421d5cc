//! A small ABCI 2.0 application for driving `tandem-solo` in tests.
//!
//! Txs are `key=value` (stored), `val:<hex ed25519 pubkey>:<power>` (a validator update) or
//! `fail:<anything>` (admitted, then failed in its block with code 7, codespace `testapp`) or
//! `raise:<anything>` (admitted, then `FinalizeBlock` of its block answers an exception).
//! Anything else fails `CheckTx` with code 1. The app hash is the SHA-256 of
//! every key and value in order, so it is deterministic and does not change in empty blocks. State is in memory: stopping the app
//! loses it, and the host must replay from `InitChain`.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use bytes::BytesMut;
use sha2::{Digest, Sha256};
use tandem_solo::abci::{decode_frame, encode_frame};
use tendermint_proto::v0_38::abci::{
    request, response, response_process_proposal::ProposalStatus, Event, EventAttribute,
    ExecTxResult, Request, Response, ResponseCheckTx, ResponseCommit, ResponseFinalizeBlock,
    ResponseFlush, ResponseInfo, ResponseInitChain, ResponsePrepareProposal,
    ResponseProcessProposal, ResponseQuery, ValidatorUpdate,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;

#[derive(Default)]
pub(crate) struct AppState {
    committed: BTreeMap<Vec<u8>, Vec<u8>>,
    pending: Option<BTreeMap<Vec<u8>, Vec<u8>>>,
    height: i64,
    app_hash: Vec<u8>,
    pending_hash: Vec<u8>,
    pending_height: i64,
    /// Consensus-connection methods in call order.
    pub(crate) calls: Vec<&'static str>,
    /// Number of `CheckTx` calls.
    pub(crate) check_txs: u32,
    /// Number of `InitChain` calls.
    pub(crate) init_chains: u32,
    /// Drop the connection instead of answering the next `Commit`, keeping the block
    /// uncommitted (an application that dies inside Commit, seen from the host).
    pub(crate) fail_next_commit: bool,
}

pub(crate) struct TestApp {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) state: Arc<Mutex<AppState>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TestApp {
    pub(crate) async fn start() -> Self {
        Self::start_on("127.0.0.1:0").await
    }

    pub(crate) async fn start_on(addr: &str) -> Self {
        let listener = TcpListener::bind(addr).await.expect("bind test app");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(AppState::default()));
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let state = state.clone();
            let cancel = cancel.clone();
            async move {
                let mut conns = JoinSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            // As tandemd does: small ABCI frames must not wait for Nagle.
                            let _ = stream.set_nodelay(true);
                            conns.spawn(serve(stream, state.clone(), cancel.clone()));
                        }
                        () = cancel.cancelled() => break,
                    }
                }
                conns.shutdown().await;
            }
        });
        Self {
            addr,
            state,
            cancel,
            task,
        }
    }

    /// Stops the app and closes every connection (as a crash would).
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }

    pub(crate) fn calls(&self) -> Vec<&'static str> {
        self.state.lock().unwrap().calls.clone()
    }

    pub(crate) fn committed_height(&self) -> i64 {
        self.state.lock().unwrap().height
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    state: Arc<Mutex<AppState>>,
    cancel: CancellationToken,
) {
    let mut buf = BytesMut::new();
    let mut out = BytesMut::new();
    loop {
        loop {
            match decode_frame::<Request>(&mut buf, 64 << 20) {
                Ok(Some(req)) => {
                    let Some(resp) = handle(&state, req) else {
                        return;
                    };
                    encode_frame(&resp, &mut out);
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        tokio::select! {
            n = stream.read_buf(&mut buf) => match n {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            () = cancel.cancelled() => return,
        }
    }
}

fn app_hash(kv: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<u8> {
    let mut h = Sha256::new();
    for (k, v) in kv {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k);
        h.update((v.len() as u64).to_be_bytes());
        h.update(v);
    }
    h.finalize().to_vec()
}

enum Tx {
    Set(Vec<u8>, Vec<u8>),
    Validator(ValidatorUpdate),
    Fail,
}

fn parse_tx(tx: &[u8]) -> Option<Tx> {
    let text = std::str::from_utf8(tx).ok()?;
    if text.starts_with("fail:") || text.starts_with("raise:") {
        return Some(Tx::Fail);
    }
    if let Some(rest) = text.strip_prefix("val:") {
        let (key, power) = rest.split_once(':')?;
        let key: [u8; 32] = hex::decode(key).ok()?.try_into().ok()?;
        let pub_key = tendermint::PublicKey::from_raw_ed25519(&key)?;
        return Some(Tx::Validator(ValidatorUpdate {
            pub_key: Some(pub_key.into()),
            power: power.parse().ok()?,
        }));
    }
    let (k, v) = text.split_once('=')?;
    Some(Tx::Set(k.as_bytes().to_vec(), v.as_bytes().to_vec()))
}

/// The answer to `req`, or `None` to drop the connection.
#[expect(
    clippy::too_many_lines,
    reason = "one match arm per ABCI method reads best in one place"
)]
fn handle(state: &Mutex<AppState>, req: Request) -> Option<Response> {
    let mut s = state.lock().unwrap();
    let value = match req.value {
        Some(request::Value::Flush(_)) => response::Value::Flush(ResponseFlush {}),
        Some(request::Value::Info(_)) => response::Value::Info(ResponseInfo {
            data: "solo-testapp".into(),
            version: "1".into(),
            app_version: 1,
            last_block_height: s.height,
            last_block_app_hash: s.app_hash.clone().into(),
        }),
        Some(request::Value::InitChain(_)) => {
            s.calls.push("InitChain");
            s.init_chains += 1;
            response::Value::InitChain(ResponseInitChain::default())
        }
        Some(request::Value::CheckTx(r)) => {
            s.check_txs += 1;
            let ok = parse_tx(&r.tx).is_some();
            response::Value::CheckTx(ResponseCheckTx {
                code: u32::from(!ok),
                log: if ok {
                    String::new()
                } else {
                    "malformed tx".into()
                },
                gas_wanted: 1,
                ..Default::default()
            })
        }
        Some(request::Value::PrepareProposal(r)) => {
            s.calls.push("PrepareProposal");
            let mut total = 0_i64;
            let txs = r
                .txs
                .into_iter()
                .take_while(|tx| {
                    total += i64::try_from(tx.len()).unwrap_or(i64::MAX);
                    total <= r.max_tx_bytes
                })
                .collect();
            response::Value::PrepareProposal(ResponsePrepareProposal { txs })
        }
        Some(request::Value::ProcessProposal(r)) => {
            s.calls.push("ProcessProposal");
            let ok = r.txs.iter().all(|tx| parse_tx(tx).is_some());
            response::Value::ProcessProposal(ResponseProcessProposal {
                status: if ok {
                    ProposalStatus::Accept
                } else {
                    ProposalStatus::Reject
                }
                .into(),
            })
        }
        Some(request::Value::FinalizeBlock(r))
            if r.txs.iter().any(|tx| tx.starts_with(b"raise:")) =>
        {
            s.calls.push("FinalizeBlock");
            response::Value::Exception(tendermint_proto::v0_38::abci::ResponseException {
                error: "raised on purpose".into(),
            })
        }
        Some(request::Value::FinalizeBlock(r)) => {
            s.calls.push("FinalizeBlock");
            let mut kv = s.committed.clone();
            let mut results = Vec::new();
            let mut updates = Vec::new();
            for tx in &r.txs {
                match parse_tx(tx) {
                    Some(Tx::Set(k, v)) => {
                        kv.insert(k.clone(), v.clone());
                        results.push(ExecTxResult {
                            code: 0,
                            events: vec![Event {
                                r#type: "kv".into(),
                                attributes: vec![
                                    EventAttribute {
                                        key: "key".into(),
                                        value: String::from_utf8_lossy(&k).into_owned(),
                                        index: true,
                                    },
                                    // Not marked: a tx indexer must not find txs by it.
                                    EventAttribute {
                                        key: "value".into(),
                                        value: String::from_utf8_lossy(&v).into_owned(),
                                        index: false,
                                    },
                                ],
                            }],
                            ..Default::default()
                        });
                    }
                    Some(Tx::Validator(u)) => {
                        updates.push(u);
                        results.push(ExecTxResult::default());
                    }
                    Some(Tx::Fail) => results.push(ExecTxResult {
                        code: 7,
                        codespace: "testapp".into(),
                        info: "failed on purpose".into(),
                        data: b"f".to_vec().into(),
                        log: "failed on purpose".into(),
                        ..Default::default()
                    }),
                    None => results.push(ExecTxResult {
                        code: 1,
                        log: "malformed".into(),
                        ..Default::default()
                    }),
                }
            }
            let hash = app_hash(&kv);
            s.pending = Some(kv);
            s.pending_hash.clone_from(&hash);
            s.pending_height = r.height;
            response::Value::FinalizeBlock(ResponseFinalizeBlock {
                events: vec![Event {
                    r#type: "block".into(),
                    attributes: vec![EventAttribute {
                        key: "height".into(),
                        value: r.height.to_string(),
                        index: true,
                    }],
                }],
                tx_results: results,
                validator_updates: updates,
                consensus_param_updates: None,
                app_hash: hash.into(),
            })
        }
        Some(request::Value::Commit(_)) => {
            if std::mem::take(&mut s.fail_next_commit) {
                s.pending = None;
                return None;
            }
            s.calls.push("Commit");
            if let Some(kv) = s.pending.take() {
                s.committed = kv;
                s.app_hash = std::mem::take(&mut s.pending_hash);
                s.height = s.pending_height;
            }
            response::Value::Commit(ResponseCommit::default())
        }
        Some(request::Value::Query(r)) => {
            let value = s
                .committed
                .get(r.data.as_ref())
                .cloned()
                .unwrap_or_default();
            response::Value::Query(ResponseQuery {
                code: u32::from(value.is_empty()),
                key: r.data,
                value: value.into(),
                height: s.height,
                ..Default::default()
            })
        }
        _ => response::Value::Exception(tendermint_proto::v0_38::abci::ResponseException {
            error: "unsupported request".into(),
        }),
    };
    Some(Response { value: Some(value) })
}
