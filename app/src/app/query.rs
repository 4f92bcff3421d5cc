//! ABCI Query.
//!
//! | path | request `data` | response `value` |
//! |---|---|---|
//! | `/cosmos.auth.v1beta1.Query/Account` | `QueryAccountRequest` | `QueryAccountResponse { Any(BaseAccount) }` |
//! | `/cosmos.bank.v1beta1.Query/Balance` | `QueryBalanceRequest` | `QueryBalanceResponse` |
//! | `/cosmos.bank.v1beta1.Query/AllBalances` | `QueryAllBalancesRequest` | `QueryAllBalancesResponse` (all denoms, no paging) |
//! | `/tandem/params` | — | JSON `Params` |
//! | `/tandem/account/<bech32>` | — | JSON `{address, account_number, sequence, balances}` |
//! | `/tandem/sequence/<bech32>` | — | JSON `{sequence, pending_sequence}` |
//! | `/cosmos.tx.v1beta1.Service/Simulate` | `SimulateRequest` | `SimulateResponse`; `gas_used` is the fee the tx needs, in `utnd` |
//!
//! `height` 0 means the latest committed state; other heights are served while their snapshot
//! is still cached. With `prove = true` the response carries one `ProofOp` (type
//! `ics23:jmt`, data a protobuf `ics23.CommitmentProof`) per state key the answer is read
//! from, each verifiable against the app hash of that height with `cnidarium::ics23_spec()`.

use cnidarium::Snapshot;
use cosmrs::proto::cosmos::{
    auth::v1beta1::{BaseAccount, QueryAccountRequest, QueryAccountResponse},
    bank::v1beta1::{
        QueryAllBalancesRequest, QueryAllBalancesResponse, QueryBalanceRequest,
        QueryBalanceResponse,
    },
    base::{abci::v1beta1::GasInfo, abci::v1beta1::Result as AbciResult, v1beta1::Coin},
    tx::v1beta1::{SimulateRequest, SimulateResponse},
};
use prost::{Message as _, Name as _};
use tandem_core::Address;
use tendermint::{
    abci::Code,
    merkle::proof::{ProofOp, ProofOps},
    v0_38::abci::{request, response},
};

use super::App;
use crate::{
    accounts::{self, StateReadExt as _},
    blocks::StateReadExt as _,
    params::{self, StateReadExt as _},
};

/// Query answer codes (separate from tx codes).
pub mod codes {
    /// The request data or path argument is malformed.
    pub const BAD_REQUEST: u32 = 60;
    /// The account or key does not exist.
    pub const NOT_FOUND: u32 = 61;
    /// The path is not served.
    pub const UNKNOWN_PATH: u32 = 62;
    /// The requested height is not available.
    pub const HEIGHT_UNAVAILABLE: u32 = 63;
    /// Reading state failed.
    pub const INTERNAL: u32 = 64;
}

/// Largest request `data` accepted.
const MAX_QUERY_DATA: usize = 4096;

struct Answer {
    value: Vec<u8>,
    /// State keys the answer was read from (proven when `prove` is set).
    keys: Vec<String>,
}

struct Failure {
    code: u32,
    log: String,
}

impl Failure {
    fn new(code: u32, log: impl Into<String>) -> Self {
        Self {
            code,
            log: log.into(),
        }
    }
}

impl From<crate::state::StateError> for Failure {
    fn from(e: crate::state::StateError) -> Self {
        Self::new(codes::INTERNAL, e.to_string())
    }
}

pub(super) async fn query(app: &App, request: request::Query) -> response::Query {
    match answer(app, &request).await {
        Ok((height, answer, proof)) => response::Query {
            key: answer
                .keys
                .first()
                .map(|k| k.clone().into_bytes())
                .unwrap_or_default()
                .into(),
            value: answer.value.into(),
            proof,
            height: tendermint::block::Height::try_from(height).unwrap_or_default(),
            ..response::Query::default()
        },
        Err(f) => {
            if f.code == codes::INTERNAL {
                tracing::error!(path = %request.path, height = request.height.value(), error = %f.log, "query failed reading state");
            }
            response::Query {
                code: Code::from(f.code),
                log: f.log,
                codespace: "tandem".to_string(),
                height: request.height,
                ..response::Query::default()
            }
        }
    }
}

async fn answer(
    app: &App,
    request: &request::Query,
) -> Result<(u64, Answer, Option<ProofOps>), Failure> {
    if request.path == SIMULATE {
        return simulate(app, &request.data).await;
    }
    if request.data.len() > MAX_QUERY_DATA {
        return Err(Failure::new(
            codes::BAD_REQUEST,
            format!(
                "query data is {} bytes, at most {MAX_QUERY_DATA} are accepted",
                request.data.len()
            ),
        ));
    }
    let snapshot = snapshot_at(app, request.height.value()).await?;
    let height = snapshot.block_height().await?;
    let answer = route(app, &snapshot, &request.path, &request.data).await?;
    let proof = if request.prove {
        let mut ops = Vec::with_capacity(answer.keys.len());
        for key in &answer.keys {
            let (_, proof) = snapshot
                .get_with_proof(key.clone().into_bytes())
                .await
                .map_err(|e| {
                    Failure::new(codes::INTERNAL, format!("failed to prove `{key}`: {e:#}"))
                })?;
            for commitment in proof.proofs {
                ops.push(ProofOp {
                    field_type: "ics23:jmt".to_string(),
                    key: key.clone().into_bytes(),
                    data: commitment.encode_to_vec(),
                });
            }
        }
        Some(ProofOps { ops })
    } else {
        None
    };
    Ok((height, answer, proof))
}

/// The Cosmos SDK's simulation path, which cosmjs calls for a fee of `"auto"`.
const SIMULATE: &str = "/cosmos.tx.v1beta1.Service/Simulate";

/// `Simulate`: executes the unsigned tx on the mempool's pending state, on a fork that is
/// thrown away. Tandem has no gas metering, so `gas_used` is the fee the tx needs in `utnd`:
/// a client with a gas price of `1utnd` pays at least that fee (cosmjs adds its 1.4 margin).
/// `gas_wanted` echoes the tx's gas limit. A tx that would fail answers its CheckTx code.
async fn simulate(app: &App, data: &[u8]) -> Result<(u64, Answer, Option<ProofOps>), Failure> {
    let snapshot = snapshot_at(app, 0).await?;
    let height = snapshot.block_height().await?;
    let max = usize::try_from(snapshot.params().await?.max_tx_bytes).unwrap_or(usize::MAX);
    // The request wraps one tx; allow its framing on top of the tx limit.
    if data.len() > max.saturating_add(64) {
        return Err(Failure::new(
            codes::BAD_REQUEST,
            format!(
                "simulation request is {} bytes, larger than a tx may be",
                data.len()
            ),
        ));
    }
    let request: SimulateRequest = decode(data)?;
    #[expect(
        deprecated,
        reason = "older clients send the decoded `tx` instead of `tx_bytes`"
    )]
    let bytes = match (request.tx_bytes.is_empty(), request.tx) {
        (false, _) => request.tx_bytes,
        (true, Some(tx)) => tx.encode_to_vec(),
        (true, None) => {
            return Err(Failure::new(
                codes::BAD_REQUEST,
                "simulation request has no tx",
            ))
        }
    };
    let (required, gas_limit) = app
        .simulate(&bytes)
        .await
        .map_err(|e| Failure::new(e.code(), e.to_string()))?;
    let response = SimulateResponse {
        gas_info: Some(GasInfo {
            gas_wanted: gas_limit,
            gas_used: u64::try_from(required).unwrap_or(u64::MAX),
        }),
        result: Some(AbciResult::default()),
    };
    Ok((
        height,
        Answer {
            value: response.encode_to_vec(),
            keys: Vec::new(),
        },
        None,
    ))
}

async fn snapshot_at(app: &App, height: u64) -> Result<Snapshot, Failure> {
    let storage = app.storage();
    if storage.latest_version() == u64::MAX {
        return Err(Failure::new(
            codes::HEIGHT_UNAVAILABLE,
            "chain not initialized",
        ));
    }
    let latest = storage.latest_snapshot();
    if height == 0 {
        return Ok(latest);
    }
    let latest_height = latest.block_height().await?;
    let unavailable = || {
        Failure::new(
            codes::HEIGHT_UNAVAILABLE,
            format!("height {height} is not available: latest is {latest_height}, and only recent heights are kept"),
        )
    };
    let back = latest_height.checked_sub(height).ok_or_else(unavailable)?;
    let version = latest.version().checked_sub(back).ok_or_else(unavailable)?;
    storage.snapshot(version).ok_or_else(unavailable)
}

fn parse_address(text: &str) -> Result<Address, Failure> {
    text.parse()
        .map_err(|e| Failure::new(codes::BAD_REQUEST, format!("invalid address `{text}`: {e}")))
}

fn decode<M: prost::Message + Default>(data: &[u8]) -> Result<M, Failure> {
    M::decode(data).map_err(|e| {
        Failure::new(
            codes::BAD_REQUEST,
            format!(
                "query data is not a valid {}: {e}",
                std::any::type_name::<M>()
            ),
        )
    })
}

fn json(value: &serde_json::Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

#[expect(
    clippy::too_many_lines,
    reason = "one match arm per query path reads best in one place"
)]
async fn route(app: &App, snapshot: &Snapshot, path: &str, data: &[u8]) -> Result<Answer, Failure> {
    match path {
        "/cosmos.auth.v1beta1.Query/Account" => {
            let request: QueryAccountRequest = decode(data)?;
            let address = parse_address(&request.address)?;
            let number = snapshot.account_number(&address).await?.ok_or_else(|| {
                Failure::new(
                    codes::NOT_FOUND,
                    format!("rpc error: code = NotFound desc = account {address} not found"),
                )
            })?;
            let sequence = snapshot.account_sequence(&address).await?;
            let account = BaseAccount {
                address: address.to_string(),
                pub_key: None,
                account_number: number,
                sequence,
            };
            let response = QueryAccountResponse {
                account: Some(cosmrs::Any {
                    type_url: format!("/{}", BaseAccount::full_name()),
                    value: account.encode_to_vec(),
                }),
            };
            Ok(Answer {
                value: response.encode_to_vec(),
                keys: vec![
                    accounts::keys::number(&address),
                    accounts::keys::sequence(&address),
                ],
            })
        }
        "/cosmos.bank.v1beta1.Query/Balance" => {
            let request: QueryBalanceRequest = decode(data)?;
            let address = parse_address(&request.address)?;
            if request.denom.is_empty() {
                return Err(Failure::new(codes::BAD_REQUEST, "denom must not be empty"));
            }
            let amount = snapshot.balance(&address, &request.denom).await?;
            let response = QueryBalanceResponse {
                balance: Some(Coin {
                    denom: request.denom.clone(),
                    amount: amount.to_string(),
                }),
            };
            Ok(Answer {
                value: response.encode_to_vec(),
                keys: vec![accounts::keys::balance(&address, &request.denom)],
            })
        }
        "/cosmos.bank.v1beta1.Query/AllBalances" => {
            let request: QueryAllBalancesRequest = decode(data)?;
            let address = parse_address(&request.address)?;
            let balances = snapshot.balances(&address).await?;
            let keys = balances
                .iter()
                .map(|(denom, _)| accounts::keys::balance(&address, denom))
                .collect();
            let response = QueryAllBalancesResponse {
                balances: balances
                    .into_iter()
                    .map(|(denom, amount)| Coin {
                        denom,
                        amount: amount.to_string(),
                    })
                    .collect(),
                pagination: None,
            };
            Ok(Answer {
                value: response.encode_to_vec(),
                keys,
            })
        }
        "/tandem/params" => {
            let params = snapshot.params().await?;
            let value = serde_json::to_value(params)
                .map_err(|e| Failure::new(codes::INTERNAL, e.to_string()))?;
            Ok(Answer {
                value: json(&value),
                keys: vec![params::keys::CURRENT.to_string()],
            })
        }
        _ => {
            if let Some(text) = path.strip_prefix("/tandem/account/") {
                let address = parse_address(text)?;
                let number = snapshot.account_number(&address).await?.ok_or_else(|| {
                    Failure::new(codes::NOT_FOUND, format!("account {address} not found"))
                })?;
                let sequence = snapshot.account_sequence(&address).await?;
                let balances = snapshot.balances(&address).await?;
                // Every value of the answer is proven: the number, the sequence and each
                // balance.
                let mut keys = vec![
                    accounts::keys::number(&address),
                    accounts::keys::sequence(&address),
                ];
                keys.extend(
                    balances
                        .iter()
                        .map(|(denom, _)| accounts::keys::balance(&address, denom)),
                );
                let balances: Vec<serde_json::Value> = balances
                    .into_iter()
                    .map(|(denom, amount)| serde_json::json!({"denom": denom, "amount": amount.to_string()}))
                    .collect();
                let value = serde_json::json!({
                    "address": address.to_string(),
                    "account_number": number,
                    "sequence": sequence,
                    "balances": balances,
                });
                return Ok(Answer {
                    value: json(&value),
                    keys,
                });
            }
            if let Some(text) = path.strip_prefix("/tandem/sequence/") {
                let address = parse_address(text)?;
                let sequence = snapshot.account_sequence(&address).await?;
                let pending = app
                    .inner
                    .mempool
                    .lock()
                    .await
                    .pending_sequence(&address)
                    .await?
                    .0;
                let value = serde_json::json!({"sequence": sequence, "pending_sequence": pending});
                return Ok(Answer {
                    value: json(&value),
                    keys: vec![accounts::keys::sequence(&address)],
                });
            }
            Err(Failure::new(
                codes::UNKNOWN_PATH,
                format!("unknown query path `{path}`"),
            ))
        }
    }
}
