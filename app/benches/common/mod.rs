//! Shared setup of the tandemd benchmarks: a chain with many funded signers, 256-byte
//! single-message txs, and peak-RSS reporting.

#![allow(dead_code, clippy::missing_panics_doc)]

use bytes::Bytes;
use tandem_app::{App, AppConfig, GenesisAccount, GenesisAppState, GenesisCoin};
use tandem_core::{
    Message, Params, RollupId, SigningKey, SubmitRollupData, TxBuilder, NATIVE_DENOM,
};
use tendermint::{
    abci::types::CommitInfo,
    account,
    block::Height,
    v0_38::abci::{request, response},
    Hash, Time,
};

pub(crate) const CHAIN_ID: &str = "tandem-bench";
/// Rollup data bytes per tx.
pub(crate) const DATA_BYTES: usize = 256;

pub(crate) struct Signer {
    pub(crate) key: SigningKey,
    pub(crate) number: u64,
    pub(crate) sequence: u64,
}

pub(crate) fn signers(n: usize) -> Vec<Signer> {
    (0..n)
        .map(|i| Signer {
            key: SigningKey::secp256k1_from_seed(format!("bench-signer-{i}").as_bytes()),
            number: i as u64,
            sequence: 0,
        })
        .collect()
}

pub(crate) fn genesis(signers: &[Signer]) -> GenesisAppState {
    let params = Params {
        max_rollup_bytes_per_block: 64 * 1024 * 1024,
        ..Params::default()
    };
    GenesisAppState {
        accounts: signers
            .iter()
            .map(|s| GenesisAccount {
                address: s.key.address(),
                coins: vec![GenesisCoin {
                    denom: NATIVE_DENOM.to_string(),
                    amount: 1_000_000_000_000_000,
                }],
            })
            .collect(),
        params,
        authority: signers[0].key.address(),
        fee_collector: SigningKey::secp256k1_from_seed(b"bench-fees").address(),
    }
}

fn sign_with(signer: &Signer, data_len: usize) -> Vec<u8> {
    let message = Message::SubmitRollupData(SubmitRollupData {
        signer: signer.key.address(),
        rollup_id: RollupId::from_name(&format!("rollup-{}", signer.number % 8)),
        data: vec![0xab; data_len],
    });
    TxBuilder::new(CHAIN_ID, signer.number, signer.sequence)
        .message(message)
        .fee(1_000_000)
        .sign(&signer.key)
        .expect("signing cannot fail for a valid key")
}

/// A signed tx with one `MsgSubmitRollupData` carrying [`DATA_BYTES`] of rollup data (the
/// same shape as tandem-core's signature benchmark; a whole tx cannot be 256 bytes, since
/// signature, key, bech32 signer and rollup id alone take ~290); advances the sequence.
pub(crate) fn tx_256(signer: &mut Signer) -> Vec<u8> {
    let tx = sign_with(signer, DATA_BYTES);
    signer.sequence += 1;
    tx
}

/// `count` txs round-robin over `signers`, signed on all cores.
pub(crate) fn txs(signers: &mut [Signer], count: usize) -> Vec<Bytes> {
    let n = signers.len();
    let mut jobs: Vec<(usize, u64)> = Vec::with_capacity(count);
    for i in 0..count {
        let s = &mut signers[i % n];
        jobs.push((i % n, s.sequence));
        s.sequence += 1;
    }
    let keys: Vec<(SigningKey, u64)> = signers.iter().map(|s| (s.key.clone(), s.number)).collect();
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = jobs.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                let keys = &keys;
                scope.spawn(move || {
                    part.iter()
                        .map(|(i, seq)| {
                            let mut s = Signer {
                                key: keys[*i].0.clone(),
                                number: keys[*i].1,
                                sequence: *seq,
                            };
                            Bytes::from(tx_256(&mut s))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signing thread panicked"))
            .collect()
    })
}

pub(crate) async fn open_app(dir: &std::path::Path, genesis: &GenesisAppState) -> App {
    let app = App::open(AppConfig::new(dir)).await.expect("open app");
    app.init_chain(request::InitChain {
        time: Time::from_unix_timestamp(1_700_000_000, 0).expect("valid time"),
        chain_id: CHAIN_ID.to_string(),
        consensus_params: serde_json::from_value(serde_json::json!({
            "block": {"max_bytes": "104857600", "max_gas": "-1", "time_iota_ms": "1000"},
            "evidence": {"max_age_num_blocks": "100000", "max_age_duration": "172800000000000", "max_bytes": "1048576"},
            "validator": {"pub_key_types": ["ed25519"]},
            "version": {"app": "1"}
        }))
        .expect("valid consensus params"),
        validators: vec![],
        app_state_bytes: serde_json::to_vec(genesis).expect("genesis json").into(),
        initial_height: Height::from(1u32),
    })
    .await
    .expect("init chain");
    app
}

pub(crate) async fn check(app: &App, tx: Bytes) -> bool {
    app.check_tx(request::CheckTx {
        tx,
        kind: request::CheckTxKind::New,
    })
    .await
    .code
    .is_ok()
}

fn hash(height: u64, txs: &[Bytes]) -> Hash {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(height.to_be_bytes());
    h.update(txs.len().to_be_bytes());
    Hash::Sha256(h.finalize().into())
}

fn time(height: u64) -> Time {
    Time::from_unix_timestamp(1_700_000_000 + height.cast_signed(), 0).expect("valid time")
}

pub(crate) async fn prepare(app: &App, height: u64, txs: Vec<Bytes>) -> Vec<Bytes> {
    app.prepare_proposal(request::PrepareProposal {
        max_tx_bytes: 100 * 1024 * 1024,
        txs,
        local_last_commit: None,
        misbehavior: vec![],
        height: Height::try_from(height).expect("height"),
        time: time(height),
        next_validators_hash: Hash::None,
        proposer_address: account::Id::new([1; 20]),
    })
    .await
    .expect("prepare")
    .txs
}

/// Process → Finalize → Commit; returns the app hash.
pub(crate) async fn process_finalize_commit(app: &App, height: u64, txs: Vec<Bytes>) -> Vec<u8> {
    process_finalize_commit_timed(app, height, txs).await.0
}

/// Process → Finalize → Commit; returns the app hash and the time each of the three took.
pub(crate) async fn process_finalize_commit_timed(
    app: &App,
    height: u64,
    txs: Vec<Bytes>,
) -> (Vec<u8>, [std::time::Duration; 3]) {
    let block_hash = hash(height, &txs);
    let start = std::time::Instant::now();
    let verdict = app
        .process_proposal(request::ProcessProposal {
            txs: txs.clone(),
            proposed_last_commit: None,
            misbehavior: vec![],
            hash: block_hash,
            height: Height::try_from(height).expect("height"),
            time: time(height),
            next_validators_hash: Hash::None,
            proposer_address: account::Id::new([1; 20]),
        })
        .await
        .expect("process");
    assert_eq!(verdict, response::ProcessProposal::Accept);
    let processed = start.elapsed();
    let start = std::time::Instant::now();
    let finalized = app
        .finalize_block(request::FinalizeBlock {
            txs,
            decided_last_commit: CommitInfo {
                round: 0u16.into(),
                votes: vec![],
            },
            misbehavior: vec![],
            hash: block_hash,
            height: Height::try_from(height).expect("height"),
            time: time(height),
            next_validators_hash: Hash::None,
            proposer_address: account::Id::new([1; 20]),
        })
        .await
        .expect("finalize");
    assert!(finalized.tx_results.iter().all(|r| r.code.is_ok()));
    let finalize = start.elapsed();
    let start = std::time::Instant::now();
    app.commit().await.expect("commit");
    (
        finalized.app_hash.as_bytes().to_vec(),
        [processed, finalize, start.elapsed()],
    )
}

/// Peak resident set size of this process, from `/proc/self/status` (`VmHWM`).
pub(crate) fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "unknown".to_string())
}
