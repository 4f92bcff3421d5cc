//! A real `tandemd` process on loopback, and a test driver that plays `CometBFT` over its
//! ABCI socket with real signed txs and real `CometBFT` headers.

use std::{
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use bytes::Bytes;
use tandem_app::{GenesisAccount, GenesisAppState, GenesisCoin};
use tandem_core::{Coin, Message, Params, RollupId, SigningKey, TxBuilder, NATIVE_DENOM};
use tendermint::{
    abci::types::CommitInfo,
    account,
    block::{self, Header, Height},
    v0_38::abci::request,
    Hash, Time,
};
use tendermint_abci::{Client, ClientBuilder};
use tendermint_proto::v0_38::abci::{self as pb, request as raw_request, response as raw_response};

use crate::support::RawClient;

/// Polls `condition` until it holds or `timeout` passes.
pub(crate) fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub(crate) const CHAIN_ID: &str = "tandem-it";
pub(crate) const STARTUP: Duration = Duration::from_mins(1);

pub(crate) fn key(name: &str) -> SigningKey {
    SigningKey::secp256k1_from_seed(name.as_bytes())
}

pub(crate) fn rollup(name: &str) -> RollupId {
    RollupId::from_name(name)
}

pub(crate) fn genesis() -> GenesisAppState {
    GenesisAppState {
        accounts: ["alice", "bob", "authority"]
            .iter()
            .map(|name| GenesisAccount {
                address: key(name).address(),
                coins: vec![GenesisCoin {
                    denom: NATIVE_DENOM.to_owned(),
                    amount: 1_000_000_000_000,
                }],
            })
            .collect(),
        params: Params::default(),
        authority: key("authority").address(),
        fee_collector: key("fees").address(),
    }
}

/// A `tandemd start` child process.
pub(crate) struct Node {
    child: Option<Child>,
    pub(crate) abci: SocketAddr,
    pub(crate) grpc: SocketAddr,
    pub(crate) metrics: SocketAddr,
    log: PathBuf,
}

impl Node {
    /// Starts `tandemd` with its home in `home` on ports the kernel picks (port 0), and waits
    /// until its "tandemd is running" log line names the addresses it bound. No port is
    /// chosen by the test, so no other process can take one between choice and bind.
    pub(crate) fn start(home: &Path, cometbft_rpc: &str) -> Self {
        static STARTS: AtomicUsize = AtomicUsize::new(0);
        let log = home.join(format!(
            "tandemd-{}.log",
            STARTS.fetch_add(1, Ordering::Relaxed)
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_tandemd"))
            .arg("start")
            .args(["--home", home.to_str().unwrap()])
            .args(["--abci-listen", "tcp://127.0.0.1:0"])
            .args(["--grpc-listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--cometbft-rpc", cometbft_rpc])
            .args(["--log-filter", "info"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("failed to start tandemd");
        let unbound: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let mut node = Self {
            child: Some(child),
            abci: unbound,
            grpc: unbound,
            metrics: unbound,
            log,
        };
        let deadline = Instant::now() + STARTUP;
        loop {
            let logs = node.logs();
            if let Some(line) = logs.lines().find(|l| l.contains("tandemd is running")) {
                let field = |name: &str| -> SocketAddr {
                    let value = line
                        .split_whitespace()
                        .find_map(|word| word.strip_prefix(name))
                        .unwrap_or_else(|| panic!("no `{name}` in `{line}`"));
                    value.trim_start_matches("tcp://").parse().unwrap()
                };
                node.abci = field("abci=");
                node.grpc = field("grpc=");
                node.metrics = field("metrics=");
                return node;
            }
            if let Some(status) = node.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("tandemd exited with {status} during startup:\n{logs}");
            }
            assert!(
                Instant::now() < deadline,
                "tandemd did not report its addresses:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn client(&self) -> Client {
        ClientBuilder::default().connect(self.abci).unwrap()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// `SIGKILL`, and reap.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `SIGTERM` and waits (with a deadline) for the exit status.
    pub(crate) fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_exit(Duration::from_secs(30))
    }

    /// Waits (with a deadline) for the process to exit on its own.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("already stopped");
        let mut status = None;
        wait_until(timeout, "tandemd to exit", || {
            status = child.try_wait().unwrap();
            status.is_some()
        });
        self.child = None;
        status.unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn block_time(height: u64) -> Time {
    Time::from_unix_timestamp(1_700_000_000 + i64::try_from(height).unwrap(), 0).unwrap()
}

pub(crate) fn proposer() -> account::Id {
    account::Id::new([7; 20])
}

/// The `CometBFT` header of a block with these txs: what a light client would hold.
pub(crate) fn header(height: u64, txs: &[Bytes]) -> Header {
    Header {
        version: block::header::Version { block: 11, app: 1 },
        chain_id: CHAIN_ID.parse().unwrap(),
        height: Height::try_from(height).unwrap(),
        time: block_time(height),
        last_block_id: None,
        last_commit_hash: None,
        data_hash: Some(Hash::Sha256(tandem_core::data_hash(txs))),
        validators_hash: Hash::Sha256([1; 32]),
        next_validators_hash: Hash::Sha256([1; 32]),
        consensus_hash: Hash::Sha256([2; 32]),
        app_hash: tendermint::AppHash::default(),
        last_results_hash: None,
        evidence_hash: None,
        proposer_address: proposer(),
    }
}

fn consensus_params() -> tendermint::consensus::Params {
    serde_json::from_value(serde_json::json!({
        "block": {"max_bytes": "22020096", "max_gas": "-1", "time_iota_ms": "1000"},
        "evidence": {"max_age_num_blocks": "100000", "max_age_duration": "172800000000000", "max_bytes": "1048576"},
        "validator": {"pub_key_types": ["ed25519"]},
        "version": {"app": "1"}
    }))
    .unwrap()
}

pub(crate) fn init_chain_request() -> pb::RequestInitChain {
    let validator =
        tendermint::crypto::ed25519::SigningKey::try_from([1_u8; 32].as_slice()).unwrap();
    request::InitChain {
        time: block_time(0),
        chain_id: CHAIN_ID.to_owned(),
        consensus_params: consensus_params(),
        validators: vec![tendermint::validator::Update {
            pub_key: tendermint::PublicKey::from_raw_ed25519(
                validator.verification_key().as_bytes(),
            )
            .unwrap(),
            power: 10_u32.into(),
        }],
        app_state_bytes: serde_json::to_vec(&genesis()).unwrap().into(),
        initial_height: Height::from(1_u32),
    }
    .into()
}

pub(crate) fn finalize_request(height: u64, txs: &[Bytes]) -> pb::RequestFinalizeBlock {
    request::FinalizeBlock {
        hash: header(height, txs).hash(),
        txs: txs.to_vec(),
        decided_last_commit: CommitInfo {
            round: 0_u16.into(),
            votes: Vec::new(),
        },
        misbehavior: Vec::new(),
        height: Height::try_from(height).unwrap(),
        time: block_time(height),
        next_validators_hash: Hash::Sha256([1; 32]),
        proposer_address: proposer(),
    }
    .into()
}

/// A signed tx of `key` with a sufficient fee.
pub(crate) fn signed_tx(
    key: &SigningKey,
    account_number: u64,
    sequence: u64,
    messages: Vec<Message>,
) -> Vec<u8> {
    let rollup_bytes: u64 = messages
        .iter()
        .map(|m| match m {
            Message::SubmitRollupData(m) => m.data.len() as u64,
            _ => 0,
        })
        .sum();
    let mut builder = TxBuilder::new(CHAIN_ID, account_number, sequence)
        .fee(Params::default().required_fee(rollup_bytes) * 2);
    for message in messages {
        builder = builder.message(message);
    }
    builder.sign(key).unwrap()
}

pub(crate) fn submit(signer: &SigningKey, rollup_id: RollupId, data: &[u8]) -> Message {
    Message::SubmitRollupData(tandem_core::SubmitRollupData {
        signer: signer.address(),
        rollup_id,
        data: data.to_vec(),
    })
}

pub(crate) fn send(from: &SigningKey, to: &SigningKey, amount: u128) -> Message {
    Message::Send(tandem_core::Send {
        from: from.address(),
        to: to.address(),
        amount: vec![Coin {
            denom: NATIVE_DENOM.to_owned(),
            amount,
        }],
    })
}

/// Plays `CometBFT` against a node: one consensus connection, blocks built by the app's
/// `PrepareProposal`, checked by `ProcessProposal`, then finalized and committed.
pub(crate) struct Driver {
    pub(crate) consensus: RawClient<TcpStream>,
    pub(crate) height: u64,
}

impl Driver {
    pub(crate) fn connect(node: &Node) -> Self {
        Self::connect_to(node.abci)
    }

    pub(crate) fn connect_to(abci: SocketAddr) -> Self {
        Self {
            consensus: RawClient::new(TcpStream::connect(abci).unwrap()),
            height: 0,
        }
    }

    pub(crate) fn info(&mut self) -> pb::ResponseInfo {
        let raw_response::Value::Info(info) =
            self.consensus
                .call(raw_request::Value::Info(pb::RequestInfo {
                    version: "0.38.17".to_owned(),
                    block_version: 11,
                    p2p_version: 8,
                    abci_version: "2.0.0".to_owned(),
                }))
        else {
            panic!("expected Info")
        };
        info
    }

    pub(crate) fn init_chain(&mut self) -> pb::ResponseInitChain {
        match self
            .consensus
            .call(raw_request::Value::InitChain(init_chain_request()))
        {
            raw_response::Value::InitChain(r) => r,
            other => panic!("InitChain answered {other:?}"),
        }
    }

    /// `PrepareProposal` + `ProcessProposal` for the next height; returns the block txs.
    pub(crate) fn propose(&mut self, candidates: Vec<Vec<u8>>) -> Vec<Bytes> {
        let height = self.height + 1;
        let prepare: pb::RequestPrepareProposal = request::PrepareProposal {
            max_tx_bytes: 22 * 1024 * 1024,
            txs: candidates.into_iter().map(Bytes::from).collect(),
            local_last_commit: None,
            misbehavior: Vec::new(),
            height: Height::try_from(height).unwrap(),
            time: block_time(height),
            next_validators_hash: Hash::Sha256([1; 32]),
            proposer_address: proposer(),
        }
        .into();
        let raw_response::Value::PrepareProposal(prepared) = self
            .consensus
            .call(raw_request::Value::PrepareProposal(prepare))
        else {
            panic!("expected PrepareProposal")
        };
        let txs = prepared.txs;
        let process: pb::RequestProcessProposal = request::ProcessProposal {
            txs: txs.clone(),
            proposed_last_commit: None,
            misbehavior: Vec::new(),
            hash: header(height, &txs).hash(),
            height: Height::try_from(height).unwrap(),
            time: block_time(height),
            next_validators_hash: Hash::Sha256([1; 32]),
            proposer_address: proposer(),
        }
        .into();
        let raw_response::Value::ProcessProposal(processed) = self
            .consensus
            .call(raw_request::Value::ProcessProposal(process))
        else {
            panic!("expected ProcessProposal")
        };
        assert_eq!(
            processed.status,
            pb::response_process_proposal::ProposalStatus::Accept as i32
        );
        txs
    }

    pub(crate) fn finalize(&mut self, txs: &[Bytes]) -> pb::ResponseFinalizeBlock {
        let height = self.height + 1;
        match self
            .consensus
            .call(raw_request::Value::FinalizeBlock(finalize_request(
                height, txs,
            ))) {
            raw_response::Value::FinalizeBlock(r) => r,
            other => panic!("FinalizeBlock answered {other:?}"),
        }
    }

    pub(crate) fn commit(&mut self) {
        match self
            .consensus
            .call(raw_request::Value::Commit(pb::RequestCommit {}))
        {
            raw_response::Value::Commit(_) => self.height += 1,
            other => panic!("Commit answered {other:?}"),
        }
    }

    /// A whole block; returns its txs and `FinalizeBlock` answer.
    pub(crate) fn block(
        &mut self,
        candidates: Vec<Vec<u8>>,
    ) -> (Vec<Bytes>, pb::ResponseFinalizeBlock) {
        let txs = self.propose(candidates);
        let finalized = self.finalize(&txs);
        self.commit();
        (txs, finalized)
    }
}
