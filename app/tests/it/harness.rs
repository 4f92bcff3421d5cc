//! A test chain: an [`App`] in a temp dir driven through its ABCI methods the way CometBFT
//! does, with real signed txs from `tandem_core::TxBuilder`.

use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use tandem_app::{App, AppConfig, GenesisAccount, GenesisAppState, GenesisCoin};
use tandem_core::{Address, Coin, Message, Params, RollupId, SigningKey, TxBuilder, NATIVE_DENOM};
use tempfile::TempDir;
use tendermint::{
    abci::types::CommitInfo,
    account,
    block::Height,
    v0_38::abci::{request, response},
    Hash, Time,
};

pub(crate) const CHAIN_ID: &str = "tandem-test";
/// CometBFT's default max block bytes minus a header allowance.
pub(crate) const MAX_TX_BYTES: i64 = 22 * 1024 * 1024;

pub(crate) fn key(name: &str) -> SigningKey {
    SigningKey::secp256k1_from_seed(name.as_bytes())
}

pub(crate) fn rollup(name: &str) -> RollupId {
    RollupId::from_name(name)
}

pub(crate) fn utnd(amount: u128) -> Vec<Coin> {
    vec![Coin {
        denom: NATIVE_DENOM.to_string(),
        amount,
    }]
}

/// Standard genesis: `alice`, `bob`, `carol` funded with 10^12 utnd (and `bob` with 500
/// `uatom`), `authority` funded, fee collector `fees`.
pub(crate) fn genesis(params: Params) -> GenesisAppState {
    let mut accounts: Vec<GenesisAccount> = ["alice", "bob", "carol", "authority"]
        .iter()
        .map(|n| GenesisAccount {
            address: key(n).address(),
            coins: vec![GenesisCoin {
                denom: NATIVE_DENOM.to_string(),
                amount: 1_000_000_000_000,
            }],
        })
        .collect();
    accounts[1].coins.push(GenesisCoin {
        denom: "uatom".to_string(),
        amount: 500,
    });
    GenesisAppState {
        accounts,
        params,
        authority: key("authority").address(),
        fee_collector: key("fees").address(),
    }
}

pub(crate) fn validator_key(seed: u8) -> [u8; 32] {
    let signing = tendermint::crypto::ed25519::SigningKey::try_from([seed; 32].as_slice()).unwrap();
    signing.verification_key().as_bytes().try_into().unwrap()
}

pub(crate) struct Chain {
    pub(crate) app: App,
    pub(crate) dir: TempDir,
    pub(crate) height: u64,
}

/// Everything one block produced.
pub(crate) struct BlockOutcome {
    pub(crate) txs: Vec<Bytes>,
    pub(crate) finalize: response::FinalizeBlock,
}

impl BlockOutcome {
    pub(crate) fn app_hash(&self) -> String {
        hex::encode(self.finalize.app_hash.as_bytes())
    }
}

pub(crate) fn block_hash(height: u64, txs: &[Bytes]) -> Hash {
    let mut h = Sha256::new();
    h.update(height.to_be_bytes());
    for tx in txs {
        h.update(Sha256::digest(tx));
    }
    Hash::Sha256(h.finalize().into())
}

pub(crate) fn block_time(height: u64) -> Time {
    Time::from_unix_timestamp(1_700_000_000 + i64::try_from(height).unwrap(), 0).unwrap()
}

pub(crate) fn proposer() -> account::Id {
    account::Id::new([7; 20])
}

pub(crate) fn prepare_request(height: u64, txs: Vec<Bytes>) -> request::PrepareProposal {
    request::PrepareProposal {
        max_tx_bytes: MAX_TX_BYTES,
        txs,
        local_last_commit: None,
        misbehavior: vec![],
        height: Height::try_from(height).unwrap(),
        time: block_time(height),
        next_validators_hash: Hash::None,
        proposer_address: proposer(),
    }
}

pub(crate) fn process_request(height: u64, txs: Vec<Bytes>) -> request::ProcessProposal {
    request::ProcessProposal {
        hash: block_hash(height, &txs),
        txs,
        proposed_last_commit: None,
        misbehavior: vec![],
        height: Height::try_from(height).unwrap(),
        time: block_time(height),
        next_validators_hash: Hash::None,
        proposer_address: proposer(),
    }
}

pub(crate) fn finalize_request(height: u64, txs: Vec<Bytes>) -> request::FinalizeBlock {
    request::FinalizeBlock {
        hash: block_hash(height, &txs),
        txs,
        decided_last_commit: CommitInfo {
            round: 0u16.into(),
            votes: vec![],
        },
        misbehavior: vec![],
        height: Height::try_from(height).unwrap(),
        time: block_time(height),
        next_validators_hash: Hash::None,
        proposer_address: proposer(),
    }
}

pub(crate) fn init_request(
    genesis: &GenesisAppState,
    validators: &[[u8; 32]],
) -> request::InitChain {
    request::InitChain {
        time: block_time(0),
        chain_id: CHAIN_ID.to_string(),
        consensus_params: default_consensus_params(),
        validators: validators
            .iter()
            .map(|k| tendermint::validator::Update {
                pub_key: tendermint::PublicKey::from_raw_ed25519(k).unwrap(),
                power: 10u32.into(),
            })
            .collect(),
        app_state_bytes: serde_json::to_vec(genesis).unwrap().into(),
        initial_height: Height::from(1u32),
    }
}

fn default_consensus_params() -> tendermint::consensus::Params {
    serde_json::from_value(serde_json::json!({
        "block": {"max_bytes": "22020096", "max_gas": "-1", "time_iota_ms": "1000"},
        "evidence": {"max_age_num_blocks": "100000", "max_age_duration": "172800000000000", "max_bytes": "1048576"},
        "validator": {"pub_key_types": ["ed25519"]},
        "version": {"app": "1"}
    }))
    .unwrap()
}

impl Chain {
    /// A fresh chain with the standard genesis and one validator.
    pub(crate) async fn new() -> Self {
        Self::with_genesis(genesis(Params::default())).await
    }

    pub(crate) async fn with_genesis(genesis: GenesisAppState) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::open(genesis, AppConfig::new(dir.path()), dir).await
    }

    /// A fresh chain with the standard genesis whose app keeps no caches at all (no
    /// verified signatures, no committed values between blocks): the reference that the
    /// caches must never change an answer of.
    pub(crate) async fn uncached() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = AppConfig {
            sig_cache_capacity: 0,
            inter_block_cache_capacity: 0,
            ..AppConfig::new(dir.path())
        };
        Self::open(genesis(Params::default()), config, dir).await
    }

    pub(crate) async fn open(genesis: GenesisAppState, config: AppConfig, dir: TempDir) -> Self {
        let app = App::open(config).await.unwrap();
        app.init_chain(init_request(&genesis, &[validator_key(1)]))
            .await
            .unwrap();
        Self {
            app,
            dir,
            height: 0,
        }
    }

    /// `(pending sequence, account number)` of `key`'s account.
    pub(crate) async fn account(&self, key: &SigningKey) -> (u64, u64) {
        self.app.pending_sequence(&key.address()).await.unwrap()
    }

    /// A tx signed by `key` at its pending sequence, paying twice the fee the committed
    /// params require (room for a raise that lands before it in the same block).
    pub(crate) async fn tx(&self, key: &SigningKey, messages: Vec<Message>) -> Vec<u8> {
        let (sequence, number) = self.account(key).await;
        let rollup_bytes: u64 = messages
            .iter()
            .map(|m| match m {
                Message::SubmitRollupData(m) => m.data.len() as u64,
                _ => 0,
            })
            .sum();
        let fee = self.params().await.required_fee(rollup_bytes) * 2;
        sign(key, number, sequence, messages, fee)
    }

    /// The committed params (`/tandem/params`).
    pub(crate) async fn params(&self) -> Params {
        let response = self
            .app
            .query(request::Query {
                data: Bytes::new(),
                path: "/tandem/params".to_string(),
                height: Height::from(0u32),
                prove: false,
            })
            .await;
        assert!(response.code.is_ok(), "{}", response.log);
        serde_json::from_slice(&response.value).unwrap()
    }

    /// CheckTx New; returns the response.
    pub(crate) async fn check(&self, tx: &[u8]) -> response::CheckTx {
        self.app
            .check_tx(request::CheckTx {
                tx: Bytes::copy_from_slice(tx),
                kind: request::CheckTxKind::New,
            })
            .await
    }

    /// Runs Prepare → Process → Finalize → Commit with `txs` as CometBFT's candidates.
    pub(crate) async fn block(&mut self, txs: Vec<Vec<u8>>) -> BlockOutcome {
        let height = self.height + 1;
        let candidates: Vec<Bytes> = txs.into_iter().map(Bytes::from).collect();
        let prepared = self
            .app
            .prepare_proposal(prepare_request(height, candidates))
            .await
            .unwrap();
        let process = self
            .app
            .process_proposal(process_request(height, prepared.txs.clone()))
            .await
            .unwrap();
        assert_eq!(
            process,
            response::ProcessProposal::Accept,
            "own proposal rejected"
        );
        self.finalize_and_commit(prepared.txs).await
    }

    /// Finalize and commit exactly `txs` (commitment item first).
    pub(crate) async fn finalize_and_commit(&mut self, txs: Vec<Bytes>) -> BlockOutcome {
        let height = self.height + 1;
        let finalize = self
            .app
            .finalize_block(finalize_request(height, txs.clone()))
            .await
            .unwrap();
        assert_eq!(finalize.tx_results.len(), txs.len());
        self.app.commit().await.unwrap();
        self.height = height;
        BlockOutcome { txs, finalize }
    }

    pub(crate) async fn balance(&self, address: &Address, denom: &str) -> u128 {
        use cosmrs::proto::cosmos::bank::v1beta1::{QueryBalanceRequest, QueryBalanceResponse};
        use prost::Message as _;
        let response = self
            .app
            .query(request::Query {
                data: QueryBalanceRequest {
                    address: address.to_string(),
                    denom: denom.to_string(),
                }
                .encode_to_vec()
                .into(),
                path: "/cosmos.bank.v1beta1.Query/Balance".to_string(),
                height: Height::from(0u32),
                prove: false,
            })
            .await;
        assert!(response.code.is_ok(), "{}", response.log);
        QueryBalanceResponse::decode(response.value.as_ref())
            .unwrap()
            .balance
            .unwrap()
            .amount
            .parse()
            .unwrap()
    }
}

pub(crate) fn sign(
    key: &SigningKey,
    account_number: u64,
    sequence: u64,
    messages: Vec<Message>,
    fee: u128,
) -> Vec<u8> {
    sign_for(CHAIN_ID, key, account_number, sequence, messages, fee)
}

pub(crate) fn sign_for(
    chain_id: &str,
    key: &SigningKey,
    account_number: u64,
    sequence: u64,
    messages: Vec<Message>,
    fee: u128,
) -> Vec<u8> {
    let mut builder = TxBuilder::new(chain_id, account_number, sequence).fee(fee);
    for message in messages {
        builder = builder.message(message);
    }
    builder.sign(key).unwrap()
}

pub(crate) fn send(from: &SigningKey, to: Address, amount: Vec<Coin>) -> Message {
    Message::Send(tandem_core::Send {
        from: from.address(),
        to,
        amount,
    })
}

pub(crate) fn submit(signer: &SigningKey, rollup_id: RollupId, data: &[u8]) -> Message {
    Message::SubmitRollupData(tandem_core::SubmitRollupData {
        signer: signer.address(),
        rollup_id,
        data: data.to_vec(),
    })
}

pub(crate) fn update_params(signer: &SigningKey, params: Params) -> Message {
    Message::UpdateParams(tandem_core::UpdateParams {
        authority: signer.address(),
        params,
    })
}

pub(crate) fn update_validator(signer: &SigningKey, pub_key: [u8; 32], power: u64) -> Message {
    Message::UpdateValidator(tandem_core::UpdateValidator {
        authority: signer.address(),
        pub_key,
        power,
    })
}

/// `tx` as cosmjs's `simulate` sends it: `SIGN_MODE_UNSPECIFIED` and one empty
/// signature.
pub(crate) fn unsigned(tx: &[u8]) -> Vec<u8> {
    use cosmrs::proto::cosmos::tx::{
        signing::v1beta1::SignMode,
        v1beta1::{mode_info, AuthInfo, TxRaw},
    };
    let mut raw = <TxRaw as prost::Message>::decode(tx).unwrap();
    let mut auth_info =
        <AuthInfo as prost::Message>::decode(raw.auth_info_bytes.as_slice()).unwrap();
    auth_info.signer_infos[0].mode_info = Some(cosmrs::proto::cosmos::tx::v1beta1::ModeInfo {
        sum: Some(mode_info::Sum::Single(mode_info::Single {
            mode: SignMode::Unspecified as i32,
        })),
    });
    raw.auth_info_bytes = prost::Message::encode_to_vec(&auth_info);
    raw.signatures = vec![vec![]];
    prost::Message::encode_to_vec(&raw)
}
