//! The JSON-RPC methods. Each parses its params with tendermint-rpc's request type and
//! answers with its response type.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tendermint::{abci, block, Hash};
use tendermint_proto::v0_38::abci::{RequestInfo, RequestQuery};
use tendermint_rpc::{endpoint, ResponseError};

use super::events::exec_tx_result;
use crate::{
    chain::ChainState,
    mempool::MempoolError,
    node::{Shared, ABCI_VERSION, COMETBFT_VERSION, P2P_PROTOCOL},
    store::{StoredBlock, StoredResults},
};

type RpcResult = Result<Value, ResponseError>;

/// An error of the method itself (after its params were read), as `CometBFT`'s
/// `RPCInternalError`: code -32603, message `Internal error`, the reason in `data`. Params
/// that cannot be read at all are -32602 (`ResponseError::invalid_params`).
pub(super) fn internal_error(message: impl std::fmt::Display) -> ResponseError {
    ResponseError::new(
        tendermint_rpc::Code::InternalError,
        Some(message.to_string()),
    )
}

fn to_value<T: serde::Serialize>(value: &T) -> RpcResult {
    serde_json::to_value(value).map_err(internal_error)
}

/// [`to_value`] for an answer that holds a block header, written as `CometBFT` writes the
/// first one ([`super::cometbft_empty_structs`]).
fn header_value<T: serde::Serialize>(value: &T) -> RpcResult {
    let mut value = to_value(value)?;
    super::cometbft_empty_structs(&mut value);
    Ok(value)
}

fn params<T: DeserializeOwned + Default>(params: Value) -> Result<T, ResponseError> {
    match params {
        Value::Null => Ok(T::default()),
        Value::Array(a) if a.is_empty() => Ok(T::default()),
        p => serde_json::from_value(p).map_err(|e| ResponseError::invalid_params(&e.to_string())),
    }
}

/// Makes the boolean param `name` of an object a JSON bool, as `CometBFT` reads it: false when
/// absent (cosmjs leaves out an undefined `prove`), and `"true"`/`"false"` from a URI request.
fn with_flag(mut params: Value, name: &str) -> Result<Value, ResponseError> {
    if let Value::Object(map) = &mut params {
        let flag = match map.get(name) {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => *flag,
            Some(Value::String(text)) if text == "true" => true,
            Some(Value::String(text)) if text == "false" => false,
            Some(other) => {
                return Err(ResponseError::invalid_params(&format!(
                    "{name} must be true or false, got {other}"
                )))
            }
        };
        map.insert(name.to_owned(), Value::Bool(flag));
    }
    Ok(params)
}

/// [`params`] for a request whose `fields` are all optional: a missing one reads as `null`.
/// tendermint-rpc's request types require such fields to be present, while `CometBFT` (and a
/// URI request such as `/validators?height=5`) may leave them out.
fn optional_params<T: DeserializeOwned + Default>(
    mut p: Value,
    fields: &[&str],
) -> Result<T, ResponseError> {
    if let Value::Object(map) = &mut p {
        for field in fields {
            map.entry(*field).or_insert(Value::Null);
        }
    }
    params(p)
}

fn required<T: DeserializeOwned>(params: Value) -> Result<T, ResponseError> {
    serde_json::from_value(params).map_err(|e| ResponseError::invalid_params(&e.to_string()))
}

/// Refuses the base64 param `name` (or the first positional param) unless it is padded
/// standard base64. tendermint-rpc decodes these with subtle-encoding 0.5, which panics on some
/// malformed input (a last group that starts with `=`), so they are checked first.
fn check_base64(params: &Value, name: &str) -> Result<(), ResponseError> {
    let value = match params {
        Value::Object(map) => map.get(name),
        Value::Array(items) => items.first(),
        _ => None,
    };
    match value {
        Some(Value::String(text)) if !is_padded_base64(text) => Err(ResponseError::invalid_params(
            &format!("`{name}` is not padded standard base64"),
        )),
        _ => Ok(()),
    }
}

fn is_padded_base64(text: &str) -> bool {
    let bytes = text.as_bytes();
    let body = bytes
        .strip_suffix(b"==")
        .or_else(|| bytes.strip_suffix(b"="))
        .unwrap_or(bytes);
    bytes.len().is_multiple_of(4)
        && body
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// The base64 param of `method` that [`check_base64`] must see first, if it has one.
fn base64_param(method: &str) -> Option<&'static str> {
    match method {
        "broadcast_tx_sync" | "broadcast_tx_async" | "broadcast_tx_commit" => Some("tx"),
        "tx" | "block_by_hash" => Some("hash"),
        _ => None,
    }
}

/// Dispatches one method call.
pub(super) async fn call(shared: &Shared, method: &str, p: Value) -> RpcResult {
    if let Some(name) = base64_param(method) {
        check_base64(&p, name)?;
    }
    match method {
        "health" => to_value(&endpoint::health::Response {}),
        "status" => status(shared),
        "genesis" => to_value(&endpoint::genesis::Response {
            genesis: shared.config.genesis.clone(),
        }),
        "abci_info" => abci_info(shared).await,
        "abci_query" => abci_query(shared, required(p)?).await,
        "broadcast_tx_sync" => broadcast_sync(shared, required(p)?).await,
        "broadcast_tx_async" => broadcast_async(shared, required(p)?),
        "broadcast_tx_commit" => broadcast_commit(shared, required(p)?).await,
        "tx" => tx(shared, &required(with_flag(p, "prove")?)?),
        "tx_search" => tx_search(shared, &with_flag(p, "prove")?),
        "block_search" => block_search(shared, &p),
        "block" => {
            let r: endpoint::block::Request = optional_params(p, &["height"])?;
            let stored = load_block(shared, r.height)?;
            header_value(&endpoint::block::Response {
                block_id: stored.block_id,
                block: stored.block,
            })
        }
        "block_results" => {
            let r: endpoint::block_results::Request = optional_params(p, &["height"])?;
            block_results(shared, r.height)
        }
        "commit" => {
            let r: endpoint::commit::Request = optional_params(p, &["height"])?;
            commit(shared, r.height)
        }
        "validators" => {
            let r: endpoint::validators::Request =
                optional_params(p, &["height", "page", "per_page"])?;
            validators(shared, &r)
        }
        "blockchain" => blockchain(shared, &p),
        "header" => {
            let r: endpoint::header::Request = optional_params(p, &["height"])?;
            let stored = load_block(shared, r.height)?;
            header_value(&json!({ "header": to_value(&stored.block.header)? }))
        }
        "header_by_hash" | "block_by_hash" => by_hash(shared, method, &p),
        "consensus_params" => {
            let r: endpoint::consensus_params::Request = optional_params(p, &["height"])?;
            consensus_params(shared, r.height)
        }
        "net_info" => Ok(json!({
            "listening": true,
            "listeners": [format!("Listener(@{})", shared.config.rpc_laddr)],
            "n_peers": "0",
            "peers": [],
        })),
        "unconfirmed_txs" => {
            let limit = count_param(&p, "limit", 30)?.clamp(1, 100);
            let txs: Vec<Value> = shared
                .mempool
                .txs(usize::try_from(limit).unwrap_or(usize::MAX))
                .iter()
                .map(base64_value)
                .collect::<Result<_, _>>()?;
            Ok(json!({
                "n_txs": txs.len().to_string(),
                "total": shared.mempool.len().to_string(),
                "total_bytes": shared.mempool.total_bytes().to_string(),
                "txs": txs,
            }))
        }
        "genesis_chunked" => genesis_chunked(shared, &p),
        "num_unconfirmed_txs" => Ok(json!({
            "n_txs": shared.mempool.len().to_string(),
            "total": shared.mempool.len().to_string(),
            "total_bytes": shared.mempool.total_bytes().to_string(),
            "txs": null,
        })),
        "subscribe" | "unsubscribe" | "unsubscribe_all" => Err(ResponseError::new(
            tendermint_rpc::Code::MethodNotFound,
            Some(format!(
                "{method} is only available over the WebSocket endpoint /websocket"
            )),
        )),
        other => Err(ResponseError::method_not_found(other)),
    }
}

fn state(shared: &Shared) -> Result<ChainState, ResponseError> {
    shared.state().ok_or_else(|| {
        internal_error("node is starting: handshake with the application in progress")
    })
}

fn latest_height(shared: &Shared) -> Result<u64, ResponseError> {
    let s = state(shared)?;
    if s.last_block_height == 0 {
        return Err(internal_error("no block committed yet"));
    }
    Ok(s.last_block_height)
}

/// Resolves an optional height to a committed one, with `CometBFT`'s error texts.
fn resolve_height(shared: &Shared, height: Option<block::Height>) -> Result<u64, ResponseError> {
    let latest = latest_height(shared)?;
    let Some(h) = height.map(|h| h.value()) else {
        return Ok(latest);
    };
    if h == 0 {
        return Err(internal_error("height must be greater than 0, but got 0"));
    }
    if h > latest {
        return Err(internal_error(format!(
            "height {h} must be less than or equal to the current blockchain height {latest}"
        )));
    }
    let base = shared.store.block_range().map_or(latest, |(b, _)| b);
    if h < base {
        return Err(internal_error(format!(
            "height {h} is not available, lowest height is {base}"
        )));
    }
    Ok(h)
}

fn load_block(
    shared: &Shared,
    height: Option<block::Height>,
) -> Result<StoredBlock, ResponseError> {
    block_at(shared, resolve_height(shared, height)?)
}

/// The stored block at `height`, which must exist.
fn block_at(shared: &Shared, height: u64) -> Result<StoredBlock, ResponseError> {
    shared
        .store
        .block(height)
        .map_err(internal_error)?
        .ok_or_else(|| internal_error(format!("block {height} not found")))
}

/// The stored results of block `height`, which must exist.
fn results_at(shared: &Shared, height: u64) -> Result<StoredResults, ResponseError> {
    shared
        .store
        .results(height)
        .map_err(internal_error)?
        .ok_or_else(|| internal_error(format!("results for height {height} not found")))
}

/// A height for a method whose default is the next block (`validators`,
/// `consensus_params`): the next height when none is given or it is the next one, else a
/// committed height ([`resolve_height`]).
fn height_or_next(
    shared: &Shared,
    next: u64,
    height: Option<block::Height>,
) -> Result<u64, ResponseError> {
    match height {
        None => Ok(next),
        Some(h) if h.value() == next => Ok(next),
        Some(h) => resolve_height(shared, Some(h)),
    }
}

fn status(shared: &Shared) -> RpcResult {
    let s = state(shared)?;
    let genesis = &shared.config.genesis;
    let address = tendermint::account::Id::from(shared.validator_key);
    let node_id = hex::encode(address.as_bytes());
    let (latest, earliest) = match shared.store.block_range() {
        Some((low, _)) if s.last_block_height > 0 => {
            let latest = shared
                .store
                .block(s.last_block_height)
                .map_err(internal_error)?;
            let earliest = shared.store.block(low).map_err(internal_error)?;
            (latest, earliest)
        }
        _ => (None, None),
    };
    let hash_of = |b: &Option<StoredBlock>| b.as_ref().map_or(Hash::None, |b| b.block_id.hash);
    let time_of = |b: &Option<StoredBlock>| {
        b.as_ref()
            .map_or(genesis.genesis_time, |b| b.block.header.time)
    };
    let power = s
        .validators
        .validator(address)
        .map_or(0, |v| v.power.value());
    let node_info = json!({
        "protocol_version": {
            "p2p": P2P_PROTOCOL.to_string(),
            "block": crate::chain::BLOCK_PROTOCOL.to_string(),
            "app": s.app_version.to_string(),
        },
        "id": node_id,
        "listen_addr": shared.config.rpc_laddr.to_string(),
        "network": s.chain_id.to_string(),
        "version": COMETBFT_VERSION,
        "channels": "40202122233038606100",
        "moniker": shared.config.moniker,
        "other": { "tx_index": "on", "rpc_address": format!("tcp://{}", shared.config.rpc_laddr) },
    });
    let response = endpoint::status::Response {
        node_info: serde_json::from_value(node_info).map_err(internal_error)?,
        sync_info: endpoint::status::SyncInfo {
            earliest_block_hash: hash_of(&earliest),
            earliest_app_hash: earliest
                .as_ref()
                .map(|b| b.block.header.app_hash.clone())
                .unwrap_or_default(),
            earliest_block_height: earliest
                .as_ref()
                .map_or(block::Height::default(), |b| b.block.header.height),
            earliest_block_time: time_of(&earliest),
            latest_block_hash: hash_of(&latest),
            // As `CometBFT`: the app hash in the latest block's header (the state before that
            // block), which is what a light client can check against that header.
            latest_app_hash: latest
                .as_ref()
                .map(|b| b.block.header.app_hash.clone())
                .unwrap_or_default(),
            latest_block_height: block::Height::try_from(s.last_block_height)
                .map_err(internal_error)?,
            latest_block_time: time_of(&latest),
            catching_up: false,
        },
        validator_info: tendermint::validator::Info {
            address,
            pub_key: shared.validator_key,
            power: tendermint::vote::Power::try_from(power).map_err(internal_error)?,
            name: None,
            proposer_priority: tendermint::validator::ProposerPriority::default(),
        },
    };
    let mut value = to_value(&response)?;
    if let Some(info) = value.get_mut("validator_info") {
        *info = cometbft_validator(&response.validator_info, false)?;
    }
    Ok(value)
}

/// A validator as `CometBFT` writes it in `/status` (`ValidatorInfo`, without the priority)
/// and `/validators` (`Validator`). tendermint-rs writes `power` and `name` instead of
/// `voting_power` and leaves out `proposer_priority`; it reads both forms, but cosmjs requires
/// `CometBFT`'s.
fn cometbft_validator(validator: &tendermint::validator::Info, with_priority: bool) -> RpcResult {
    let mut value = json!({
        "address": to_value(&validator.address)?,
        "pub_key": to_value(&validator.pub_key)?,
        "voting_power": validator.power.value().to_string(),
    });
    if with_priority {
        value["proposer_priority"] = json!(validator.proposer_priority.value().to_string());
    }
    Ok(value)
}

fn conns(shared: &Shared) -> Result<crate::abci::AppConnections, ResponseError> {
    shared.conns().ok_or_else(|| {
        internal_error("the application connection is down; the node is reconnecting")
    })
}

async fn abci_info(shared: &Shared) -> RpcResult {
    let info = conns(shared)?
        .query
        .info(RequestInfo {
            version: COMETBFT_VERSION.to_owned(),
            block_version: crate::chain::BLOCK_PROTOCOL,
            p2p_version: P2P_PROTOCOL,
            abci_version: ABCI_VERSION.to_owned(),
        })
        .await
        .map_err(internal_error)?;
    let app_hash = base64_value(&info.last_block_app_hash)?;
    let response = endpoint::abci_info::Response {
        response: abci::response::Info::try_from(info).map_err(internal_error)?,
    };
    // tendermint-rs writes the app hash as an array of numbers; `CometBFT` (and so cosmjs)
    // as base64, like every other byte field. tendermint-rs reads both.
    let mut value = to_value(&response)?;
    value["response"]["last_block_app_hash"] = app_hash;
    Ok(value)
}

/// Bytes as `CometBFT`'s JSON writes them: a padded standard base64 string.
pub(super) fn base64_value(bytes: &impl AsRef<[u8]>) -> RpcResult {
    tendermint::serializers::bytes::base64string::serialize(bytes, serde_json::value::Serializer)
        .map_err(internal_error)
}

async fn abci_query(shared: &Shared, r: endpoint::abci_query::Request) -> RpcResult {
    let height = r
        .height
        .map_or(0, |h| i64::try_from(h.value()).unwrap_or(i64::MAX));
    let q = conns(shared)?
        .query
        .query(RequestQuery {
            data: r.data.into(),
            path: r.path.unwrap_or_default(),
            height,
            prove: r.prove,
        })
        .await
        .map_err(internal_error)?;
    let proof = q
        .proof_ops
        .map(tendermint::merkle::proof::ProofOps::try_from)
        .transpose()
        .map_err(internal_error)?;
    let response = endpoint::abci_query::Response {
        response: endpoint::abci_query::AbciQuery {
            code: q.code.into(),
            log: q.log,
            info: q.info,
            index: q.index,
            key: q.key.to_vec(),
            value: q.value.to_vec(),
            proof,
            height: block::Height::try_from(q.height).map_err(internal_error)?,
            codespace: q.codespace,
        },
    };
    to_value(&response)
}

fn tx_hash(tx: &[u8]) -> Hash {
    Hash::Sha256(Sha256::digest(tx).into())
}

fn mempool_error(e: MempoolError) -> ResponseError {
    internal_error(e)
}

async fn broadcast_sync(shared: &Shared, r: endpoint::broadcast::tx_sync::Request) -> RpcResult {
    let hash = tx_hash(&r.tx);
    let conns = conns(shared)?;
    let check = shared
        .mempool
        .check_tx(r.tx, &conns.mempool)
        .await
        .map_err(mempool_error)?;
    to_value(&endpoint::broadcast::tx_sync::Response {
        codespace: check.codespace,
        code: check.code.into(),
        data: check.data,
        log: check.log,
        hash,
    })
}

fn broadcast_async(shared: &Shared, r: endpoint::broadcast::tx_async::Request) -> RpcResult {
    let hash = tx_hash(&r.tx);
    let conns = conns(shared)?;
    let limits = *shared.mempool.limits();
    if r.tx.len() > limits.max_tx_bytes {
        return Err(mempool_error(MempoolError::TooLarge {
            size: r.tx.len(),
            max: limits.max_tx_bytes,
        }));
    }
    let mempool = shared.mempool.clone();
    tokio::spawn(async move {
        if let Err(e) = mempool.check_tx(r.tx, &conns.mempool).await {
            tracing::debug!(error = %e, "broadcast_tx_async: tx not admitted");
        }
    });
    to_value(&endpoint::broadcast::tx_async::Response {
        codespace: String::new(),
        code: abci::Code::Ok,
        data: bytes::Bytes::new(),
        log: String::new(),
        hash,
    })
}

async fn broadcast_commit(
    shared: &Shared,
    r: endpoint::broadcast::tx_commit::Request,
) -> RpcResult {
    let hash = tx_hash(&r.tx);
    let hash_bytes: [u8; 32] = Sha256::digest(&r.tx).into();
    let conns = conns(shared)?;
    let mut events = shared.events.subscribe();
    let check = shared
        .mempool
        .check_tx(r.tx, &conns.mempool)
        .await
        .map_err(mempool_error)?;
    let check_domain = abci::response::CheckTx::try_from(check.clone()).map_err(internal_error)?;
    if check.code != 0 {
        return to_value(&endpoint::broadcast::tx_commit::Response {
            check_tx: check_domain,
            tx_result: abci::types::ExecTxResult::default(),
            hash,
            height: block::Height::default(),
        });
    }
    let timeout = shared.config.timeout_broadcast_tx_commit;
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(index) = event
                        .block
                        .data
                        .iter()
                        .position(|tx| <[u8; 32]>::from(Sha256::digest(tx)) == hash_bytes)
                    {
                        let result = event
                            .results
                            .tx_results
                            .get(index)
                            .cloned()
                            .unwrap_or_default();
                        return Ok((event.block.header.height, result));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    if let Some((height, index)) = shared.store.tx_location(&hash_bytes) {
                        let results = shared.store.results(height).map_err(internal_error)?;
                        let result = results
                            .and_then(|r| r.results.tx_results.get(index as usize).cloned())
                            .unwrap_or_default();
                        return Ok((
                            block::Height::try_from(height).map_err(internal_error)?,
                            result,
                        ));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    return Err(internal_error("node is shutting down"))
                }
            }
        }
    };
    let (height, result) = match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r?,
        Err(_) => {
            return Err(internal_error(format!(
                "timed out waiting for tx to be included in a block after {}",
                humanize(timeout)
            )))
        }
    };
    to_value(&endpoint::broadcast::tx_commit::Response {
        check_tx: check_domain,
        tx_result: exec_tx_result(&result)?,
        hash,
        height,
    })
}

fn humanize(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn block_results(shared: &Shared, height: Option<block::Height>) -> RpcResult {
    let h = resolve_height(shared, height)?;
    let stored = results_at(shared, h)?;
    let domain = abci::response::FinalizeBlock::try_from(stored.results).map_err(internal_error)?;
    let response = endpoint::block_results::Response {
        height: block::Height::try_from(h).map_err(internal_error)?,
        txs_results: Some(domain.tx_results),
        finalize_block_events: domain.events,
        begin_block_events: None,
        end_block_events: None,
        validator_updates: domain.validator_updates,
        consensus_param_updates: domain.consensus_param_updates,
        app_hash: domain.app_hash,
    };
    to_value(&response)
}

fn commit(shared: &Shared, height: Option<block::Height>) -> RpcResult {
    let stored = load_block(shared, height)?;
    let latest = latest_height(shared)?;
    let canonical = stored.block.header.height.value() < latest;
    let response = endpoint::commit::Response {
        signed_header: tendermint::block::signed_header::SignedHeader::new(
            stored.block.header,
            stored.commit,
        )
        .map_err(internal_error)?,
        canonical,
    };
    header_value(&response)
}

fn validators(shared: &Shared, r: &endpoint::validators::Request) -> RpcResult {
    let s = state(shared)?;
    // The set for the next height is known before its block exists, and is `CometBFT`'s
    // default.
    let next = s.next_height();
    let h = height_or_next(shared, next, r.height)?;
    let set = if h == next {
        s.validators.clone()
    } else {
        block_at(shared, h)?.validators
    };
    let all = set.validators().clone();
    let per_page = r
        .per_page
        .and_then(|p| p.to_string().parse::<usize>().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page = r
        .page
        .and_then(|p| p.to_string().parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let start = (page - 1).saturating_mul(per_page);
    if start >= all.len() && !(all.is_empty() && page == 1) {
        return Err(internal_error(format!(
            "page should be within [1, {}] range, given {page}",
            all.len().div_ceil(per_page).max(1)
        )));
    }
    let validators = all
        .iter()
        .skip(start)
        .take(per_page)
        .map(|v| cometbft_validator(v, true))
        .collect::<Result<Vec<_>, _>>()?;
    // The envelope from tendermint-rpc's type, the validators in `CometBFT`'s form.
    let mut value = to_value(&endpoint::validators::Response::new(
        block::Height::try_from(h).map_err(internal_error)?,
        Vec::new(),
        i32::try_from(all.len()).map_err(internal_error)?,
    ))?;
    // `CometBFT` also counts the validators on this page.
    value["count"] = json!(validators.len().to_string());
    value["validators"] = Value::Array(validators);
    Ok(value)
}

fn tx(shared: &Shared, r: &endpoint::tx::Request) -> RpcResult {
    let hash: [u8; 32] = r
        .hash
        .as_bytes()
        .try_into()
        .map_err(|_| ResponseError::invalid_params("tx hash must be 32 bytes"))?;
    let (height, index) = shared
        .store
        .tx_location(&hash)
        .ok_or_else(|| internal_error(format!("tx ({}) not found", hex::encode_upper(hash))))?;
    let answer = tx_responses(shared, height, &[index], r.prove)?;
    to_value(&answer[0])
}

/// The `/tx` answers for the txs at `indices` of block `height`. The block and its results are
/// read once, and its tx tree is built once when proofs are asked for.
fn tx_responses(
    shared: &Shared,
    height: u64,
    indices: &[u32],
    prove: bool,
) -> Result<Vec<endpoint::tx::Response>, ResponseError> {
    let stored = block_at(shared, height)?;
    let results = results_at(shared, height)?;
    let txs = &stored.block.data;
    let tree = prove.then(|| tandem_core::MerkleTree::from_txs(txs));
    indices
        .iter()
        .map(|&index| {
            let i = index as usize;
            let tx = txs
                .get(i)
                .cloned()
                .ok_or_else(|| internal_error(format!("block {height} has no tx {index}")))?;
            let result = results
                .results
                .tx_results
                .get(i)
                .cloned()
                .unwrap_or_default();
            let proof = tree
                .as_ref()
                .map(|tree| tx_proof(tree, txs, i))
                .transpose()?;
            Ok(endpoint::tx::Response {
                hash: tx_hash(&tx),
                height: block::Height::try_from(height).map_err(internal_error)?,
                index,
                tx_result: exec_tx_result(&result)?,
                tx,
                proof,
            })
        })
        .collect()
}

/// A count param (`page`, `per_page`) given as a number or a decimal string.
fn count_param(params: &Value, name: &str, default: u64) -> Result<u64, ResponseError> {
    match params.get(name) {
        None | Some(Value::Null) => Some(default),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(text)) if text.is_empty() => Some(default),
        Some(Value::String(text)) => text.parse().ok(),
        Some(_) => None,
    }
    .ok_or_else(|| ResponseError::invalid_params(&format!("{name} must be a positive integer")))
}

/// `blockchain`: the metas of at most 20 blocks from `maxHeight` (default: the latest) down
/// to `minHeight` (default: 1), clamped to the stored range, as `CometBFT`'s `BlockchainInfo`.
fn blockchain(shared: &Shared, p: &Value) -> RpcResult {
    const LIMIT: u64 = 20;
    let latest = latest_height(shared)?;
    let base = shared.store.block_range().map_or(latest, |(b, _)| b);
    let min = count_param(p, "minHeight", 0)?;
    let max = count_param(p, "maxHeight", 0)?;
    let max = if max == 0 { latest } else { max.min(latest) };
    let min = min.max(1).max(base).max((max + 1).saturating_sub(LIMIT));
    if min > max {
        return Err(internal_error(format!(
            "min height {min} can't be greater than max height {max}"
        )));
    }
    let mut block_metas = Vec::new();
    for height in (min..=max).rev() {
        let Some(stored) = shared.store.block(height).map_err(internal_error)? else {
            continue;
        };
        let block_size = prost::Message::encoded_len(&tendermint_proto::v0_38::types::Block::from(
            stored.block.clone(),
        ));
        block_metas.push(block::Meta {
            block_id: stored.block_id,
            block_size: i64::try_from(block_size).map_err(internal_error)?,
            num_txs: i64::try_from(stored.block.data.len()).map_err(internal_error)?,
            header: stored.block.header,
        });
    }
    header_value(&endpoint::blockchain::Response {
        last_height: block::Height::try_from(latest).map_err(internal_error)?,
        block_metas,
    })
}

/// `header_by_hash` and `block_by_hash`. The hash is hex for the first and base64 for the
/// second, as `CometBFT`'s Go types (`HexBytes`, `[]byte`) have it; 32 bytes either way. An
/// unknown hash answers an empty result, as `CometBFT` does.
fn by_hash(shared: &Shared, method: &str, p: &Value) -> RpcResult {
    let text = p
        .get("hash")
        .and_then(Value::as_str)
        .ok_or_else(|| ResponseError::invalid_params("hash is required"))?;
    let bytes = if method == "header_by_hash" {
        hex::decode(text)
            .map_err(|e| ResponseError::invalid_params(&format!("hash is not hex ({e}): {text}")))?
    } else {
        tendermint::serializers::bytes::base64string::deserialize::<_, Vec<u8>>(Value::String(
            text.to_owned(),
        ))
        .map_err(|e| ResponseError::invalid_params(&format!("hash is not base64 ({e})")))?
    };
    let hash: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        ResponseError::invalid_params(&format!("hash must be 32 bytes, got {}", b.len()))
    })?;
    let stored = match shared.store.block_height_by_hash(&hash) {
        Some(height) => shared.store.block(height).map_err(internal_error)?,
        None => None,
    };
    match (method, stored) {
        ("header_by_hash", stored) => header_value(&endpoint::header_by_hash::Response {
            header: stored.map(|s| s.block.header),
        }),
        (_, Some(stored)) => header_value(&endpoint::block_by_hash::Response {
            block_id: stored.block_id,
            block: Some(stored.block),
        }),
        (_, None) => header_value(&endpoint::block_by_hash::Response {
            block_id: block::Id::default(),
            block: None,
        }),
    }
}

/// `consensus_params`: the params in force at a height (default: the next one), from the
/// state saved after the block before it, or the genesis.
fn consensus_params(shared: &Shared, height: Option<block::Height>) -> RpcResult {
    let s = state(shared)?;
    let next = s.next_height();
    let h = height_or_next(shared, next, height)?;
    let params = if h == next {
        s.consensus_params
    } else if h <= s.initial_height {
        shared.config.genesis.consensus_params.clone()
    } else {
        shared
            .store
            .results(h - 1)
            .map_err(internal_error)?
            .ok_or_else(|| internal_error(format!("the state before block {h} is not stored")))?
            .state
            .consensus_params
    };
    to_value(&endpoint::consensus_params::Response {
        block_height: block::Height::try_from(h).map_err(internal_error)?,
        consensus_params: params,
    })
}

/// `genesis_chunked`: the genesis document's JSON in base64 chunks of 16 MiB, as `CometBFT`.
fn genesis_chunked(shared: &Shared, p: &Value) -> RpcResult {
    const CHUNK: usize = 16 * 1024 * 1024;
    let doc = serde_json::to_vec(&shared.config.genesis).map_err(internal_error)?;
    let chunks: Vec<&[u8]> = doc.chunks(CHUNK).collect();
    let chunk = count_param(p, "chunk", 0)?;
    let index = usize::try_from(chunk).unwrap_or(usize::MAX);
    let Some(data) = chunks.get(index) else {
        return Err(internal_error(format!(
            "there are {} chunks, {chunk} is invalid",
            chunks.len()
        )));
    };
    Ok(json!({
        "chunk": chunk.to_string(),
        "total": chunks.len().to_string(),
        "data": base64_value(data)?,
    }))
}

/// The query, and the ordering, of a `tx_search` or `block_search`: `key = 'value'`
/// conditions joined by AND, `order_by` `asc` (default) or `desc`.
fn search_query(p: &Value, method: &str) -> Result<(super::events::Query, bool), ResponseError> {
    let query = p
        .get("query")
        .and_then(Value::as_str)
        .ok_or_else(|| ResponseError::invalid_params("query is required"))?;
    let descending = match p.get("order_by").and_then(Value::as_str) {
        None | Some("" | "asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(internal_error(format!(
                "order_by must be asc or desc, got {other}"
            )))
        }
    };
    let query = super::events::Query::parse(query).map_err(|e| {
        internal_error(format!(
            "{e} ({method} takes `key = 'value'` conditions joined by AND, on the heights, \
             hashes and indexed event attributes it knows)"
        ))
    })?;
    Ok((query, descending))
}

/// The page of `found` that `page` and `per_page` select, as `CometBFT` pages (`page` from 1,
/// `per_page` 30 by default and at most 100; a page past the end is an error).
fn page_of<'a, T>(p: &Value, found: &'a [T]) -> Result<&'a [T], ResponseError> {
    let per_page = count_param(p, "per_page", 30)?.clamp(1, 100);
    let pages = u64::try_from(found.len())
        .map_err(internal_error)?
        .div_ceil(per_page)
        .max(1);
    let page = count_param(p, "page", 1)?;
    if !(1..=pages).contains(&page) {
        return Err(internal_error(format!(
            "page should be within [1, {pages}] range, given {page}"
        )));
    }
    let start = usize::try_from((page - 1) * per_page).map_err(internal_error)?;
    let end = start
        .saturating_add(usize::try_from(per_page).map_err(internal_error)?)
        .min(found.len());
    Ok(&found[start..end])
}

/// `tx_search` over the tx index: `tx.hash`, `tx.height` and the tx event attributes the
/// application marked for indexing.
fn tx_search(shared: &Shared, p: &Value) -> RpcResult {
    let (query, descending) = search_query(p, "tx_search")?;
    let prove = p.get("prove").and_then(Value::as_bool).unwrap_or(false);
    let mut found = shared.store.search_txs(query.conditions());
    if descending {
        found.reverse();
    }
    let page = page_of(p, &found)?;
    let mut txs = Vec::with_capacity(page.len());
    // One read of each block for all of its txs on the page.
    for run in page.chunk_by(|a, b| a.0 == b.0) {
        let indices: Vec<u32> = run.iter().map(|(_, index)| *index).collect();
        txs.extend(tx_responses(shared, run[0].0, &indices, prove)?);
    }
    to_value(&endpoint::tx_search::Response {
        txs,
        total_count: u32::try_from(found.len()).map_err(internal_error)?,
    })
}

/// `block_search` over the block index: `block.height` and the `FinalizeBlock` event
/// attributes the application marked for indexing.
fn block_search(shared: &Shared, p: &Value) -> RpcResult {
    let (query, descending) = search_query(p, "block_search")?;
    let mut found = shared.store.search_blocks(query.conditions());
    if descending {
        found.reverse();
    }
    let mut blocks = Vec::new();
    for height in page_of(p, &found)? {
        let stored = block_at(shared, *height)?;
        blocks.push(endpoint::block::Response {
            block_id: stored.block_id,
            block: stored.block,
        });
    }
    header_value(&endpoint::block_search::Response {
        blocks,
        total_count: u32::try_from(found.len()).map_err(internal_error)?,
    })
}

/// CometBFT's `TxProof` of `txs[index]` under the block's `data_hash`: the tree whose leaves
/// are the txs' sha256 hashes (RFC 6962 hashing, as CometBFT's `merkle.ProofsFromByteSlices`),
/// with the audit path from the leaf's sibling up.
/// `tree` is `MerkleTree::from_txs(txs)`.
fn tx_proof(
    tree: &tandem_core::MerkleTree,
    txs: &[Vec<u8>],
    index: usize,
) -> Result<tendermint::tx::Proof, ResponseError> {
    let proof = tree
        .proof(index)
        .ok_or_else(|| internal_error(format!("tx index {index} is not in its block")))?;
    let tx = &txs[index];
    Ok(tendermint::tx::Proof {
        root_hash: tendermint::Hash::Sha256(tree.root()),
        data: tx.clone(),
        proof: tendermint::merkle::Proof {
            total: proof.tree_size,
            index: proof.leaf_index,
            leaf_hash: tendermint::Hash::Sha256(tandem_core::merkle::tx_leaf_hash(tx)),
            aunts: proof
                .audit_path
                .into_iter()
                .map(tendermint::Hash::Sha256)
                .collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use sha2::{Digest as _, Sha256};

    use super::tx_proof;

    /// CometBFT's `computeHashFromAunts`, written out independently of `tandem-core`.
    fn root_from_aunts(index: u64, total: u64, leaf: [u8; 32], aunts: &[[u8; 32]]) -> [u8; 32] {
        let node = |left: &[u8; 32], right: &[u8; 32]| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update([1u8]);
            h.update(left);
            h.update(right);
            h.finalize().into()
        };
        if total == 1 {
            assert!(aunts.is_empty());
            return leaf;
        }
        let split = total.next_power_of_two() / 2;
        let (last, rest) = aunts.split_last().expect("an aunt per level");
        if index < split {
            node(&root_from_aunts(index, split, leaf, rest), last)
        } else {
            node(
                last,
                &root_from_aunts(index - split, total - split, leaf, rest),
            )
        }
    }

    #[test]
    fn tx_proofs_match_cometbft_hashing() {
        for size in 1..=9_usize {
            let txs: Vec<Vec<u8>> = (0..size).map(|i| format!("tx-{i}").into_bytes()).collect();
            let hashes: Vec<[u8; 32]> = txs.iter().map(|t| Sha256::digest(t).into()).collect();
            let data_hash = tendermint::merkle::simple_hash_from_byte_vectors::<
                tendermint::crypto::default::Sha256,
            >(&hashes);
            for index in 0..size {
                let proof =
                    tx_proof(&tandem_core::MerkleTree::from_txs(&txs), &txs, index).unwrap();
                assert_eq!(proof.root_hash.as_bytes(), data_hash.as_slice());
                assert_eq!(proof.data, txs[index]);
                let mut leaf = Sha256::new();
                leaf.update([0u8]);
                leaf.update(hashes[index]);
                let leaf: [u8; 32] = leaf.finalize().into();
                assert_eq!(proof.proof.leaf_hash.as_bytes(), leaf.as_slice());
                let aunts: Vec<[u8; 32]> = proof
                    .proof
                    .aunts
                    .iter()
                    .map(|a| a.as_bytes().try_into().unwrap())
                    .collect();
                assert_eq!(
                    root_from_aunts(proof.proof.index, proof.proof.total, leaf, &aunts),
                    data_hash,
                    "size {size} index {index}"
                );
            }
        }
        let one = [b"a".to_vec()];
        assert!(tx_proof(&tandem_core::MerkleTree::from_txs(&one), &one, 1).is_err());
    }
}
