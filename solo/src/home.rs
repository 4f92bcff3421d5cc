//! Writing `CometBFT` home directories: keys, `config.toml` and genesis.
//!
//! Used by `tandem testnet` (N validator homes for real `CometBFT`) and by tests and tools that
//! need a home for `tandem-solo`. The `config.toml` follows `CometBFT` 0.38's layout and also
//! carries the legacy keys (`fast_sync`, `[fastsync]`) that `tendermint-config` still expects,
//! which `CometBFT` accepts with a deprecation note.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use ed25519_consensus::SigningKey;
use serde_json::json;
use tendermint::{account, PrivateKey};

/// Errors writing a home directory.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// File system error.
    #[error("failed to write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A value could not be encoded.
    #[error("failed to encode {what}: {message}")]
    Encode {
        /// What.
        what: &'static str,
        /// Why.
        message: String,
    },
}

/// An ed25519 key from 32 secret bytes (validator or node key).
pub fn ed25519_key(secret: [u8; 32]) -> PrivateKey {
    PrivateKey::from_ed25519_consensus(SigningKey::from(secret))
}

/// The `CometBFT` node id of a node key (hex of its address).
pub fn node_id(key: &PrivateKey) -> String {
    hex::encode(account::Id::from(key.public_key()).as_bytes())
}

fn write(path: &Path, contents: &[u8]) -> Result<(), HomeError> {
    let io = |source| HomeError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    std::fs::write(path, contents).map_err(io)
}

fn to_json(what: &'static str, value: &impl serde::Serialize) -> Result<Vec<u8>, HomeError> {
    serde_json::to_vec_pretty(value).map_err(|e| HomeError::Encode {
        what,
        message: e.to_string(),
    })
}

/// Writes `config/priv_validator_key.json` and `data/priv_validator_state.json`.
pub fn write_validator_key(home: &Path, key: &PrivateKey) -> Result<(), HomeError> {
    let value = json!({
        "address": account::Id::from(key.public_key()),
        "pub_key": key.public_key(),
        "priv_key": key,
    });
    write(
        &home.join("config/priv_validator_key.json"),
        &to_json("validator key", &value)?,
    )?;
    let state = json!({ "height": "0", "round": 0, "step": 0 });
    write(
        &home.join("data/priv_validator_state.json"),
        &to_json("validator state", &state)?,
    )
}

/// Writes `config/node_key.json`.
pub fn write_node_key(home: &Path, key: &PrivateKey) -> Result<(), HomeError> {
    let value = json!({ "priv_key": key });
    write(
        &home.join("config/node_key.json"),
        &to_json("node key", &value)?,
    )
}

/// Writes `config/genesis.json`.
pub fn write_genesis(home: &Path, genesis: &tendermint::Genesis) -> Result<(), HomeError> {
    write(
        &home.join("config/genesis.json"),
        &to_json("genesis", genesis)?,
    )
}

/// The settings of one node's `config.toml`.
#[derive(Clone, Debug)]
pub struct ConfigToml {
    /// Node name.
    pub moniker: String,
    /// The application's ABCI address.
    pub proxy_app: String,
    /// JSON-RPC listen address.
    pub rpc_laddr: String,
    /// P2P listen address.
    pub p2p_laddr: String,
    /// `id@host:port` of the other validators.
    pub persistent_peers: Vec<String>,
    /// Time from commit to the next proposal.
    pub timeout_commit: Duration,
    /// Proposal timeout.
    pub timeout_propose: Duration,
    /// Whether to make blocks without txs.
    pub create_empty_blocks: bool,
    /// Allow several nodes on one IP (local and compose networks).
    pub allow_duplicate_ip: bool,
    /// Prometheus listen address; empty disables metrics.
    pub prometheus_laddr: String,
}

impl ConfigToml {
    /// Defaults for a node whose block interval is about one second.
    pub fn one_second_blocks(moniker: &str, proxy_app: &str) -> Self {
        Self {
            moniker: moniker.to_owned(),
            proxy_app: proxy_app.to_owned(),
            rpc_laddr: "tcp://0.0.0.0:26657".to_owned(),
            p2p_laddr: "tcp://0.0.0.0:26656".to_owned(),
            persistent_peers: Vec::new(),
            timeout_commit: Duration::from_secs(1),
            timeout_propose: Duration::from_secs(3),
            create_empty_blocks: true,
            allow_duplicate_ip: true,
            prometheus_laddr: ":26660".to_owned(),
        }
    }

    /// Renders the file.
    #[expect(
        clippy::too_many_lines,
        reason = "one template of CometBFT's config file"
    )]
    pub fn render(&self) -> String {
        let d = |d: Duration| format!("{}ms", d.as_millis());
        let mut s = String::new();
        let _ = write!(
            s,
            r#"# CometBFT 0.38 node configuration, written by `tandem testnet`.
# `fast_sync` and `[fastsync]` are legacy keys kept for tools built on tendermint-config.
version = "0.38.17"
proxy_app = "{proxy_app}"
moniker = "{moniker}"
block_sync = true
fast_sync = true
db_backend = "goleveldb"
db_dir = "data"
log_level = "info"
log_format = "plain"
genesis_file = "config/genesis.json"
priv_validator_key_file = "config/priv_validator_key.json"
priv_validator_state_file = "data/priv_validator_state.json"
priv_validator_laddr = ""
node_key_file = "config/node_key.json"
abci = "socket"
filter_peers = false

[rpc]
laddr = "{rpc_laddr}"
cors_allowed_origins = []
cors_allowed_methods = ["HEAD", "GET", "POST"]
cors_allowed_headers = ["Origin", "Accept", "Content-Type", "X-Requested-With", "X-Server-Time"]
grpc_laddr = ""
grpc_max_open_connections = 900
unsafe = false
max_open_connections = 900
max_subscription_clients = 100
max_subscriptions_per_client = 5
experimental_subscription_buffer_size = 200
experimental_websocket_write_buffer_size = 200
experimental_close_on_slow_client = false
timeout_broadcast_tx_commit = "10s"
max_request_batch_size = 10
max_body_bytes = 1000000
max_header_bytes = 1048576
tls_cert_file = ""
tls_key_file = ""
pprof_laddr = ""

[p2p]
laddr = "{p2p_laddr}"
external_address = ""
seeds = ""
persistent_peers = "{peers}"
upnp = false
addr_book_file = "config/addrbook.json"
addr_book_strict = {strict}
max_num_inbound_peers = 40
max_num_outbound_peers = 10
unconditional_peer_ids = ""
persistent_peers_max_dial_period = "0s"
flush_throttle_timeout = "100ms"
max_packet_msg_payload_size = 1024
send_rate = 5120000
recv_rate = 5120000
pex = true
seed_mode = false
private_peer_ids = ""
allow_duplicate_ip = {dup}
handshake_timeout = "20s"
dial_timeout = "3s"

[mempool]
type = "flood"
recheck = true
broadcast = true
wal_dir = ""
size = 5000
max_txs_bytes = 1073741824
cache_size = 10000
keep-invalid-txs-in-cache = false
max_tx_bytes = 1048576
max_batch_bytes = 0

[statesync]
enable = false
rpc_servers = ""
trust_height = 0
trust_hash = ""
trust_period = "168h0m0s"
discovery_time = "15s"
temp_dir = ""
chunk_request_timeout = "10s"
chunk_fetchers = "4"

[blocksync]
version = "v0"

[fastsync]
version = "v0"

[consensus]
wal_file = "data/cs.wal/wal"
timeout_propose = "{propose}"
timeout_propose_delta = "500ms"
timeout_prevote = "1s"
timeout_prevote_delta = "500ms"
timeout_precommit = "1s"
timeout_precommit_delta = "500ms"
timeout_commit = "{commit}"
double_sign_check_height = 0
skip_timeout_commit = false
create_empty_blocks = {empty}
create_empty_blocks_interval = "0s"
peer_gossip_sleep_duration = "100ms"
peer_query_maj23_sleep_duration = "2s"

[storage]
discard_abci_responses = false

[tx_index]
indexer = "kv"

[instrumentation]
prometheus = {prom}
prometheus_listen_addr = "{prom_addr}"
max_open_connections = 3
namespace = "cometbft"
"#,
            proxy_app = self.proxy_app,
            moniker = self.moniker,
            rpc_laddr = self.rpc_laddr,
            p2p_laddr = self.p2p_laddr,
            peers = self.persistent_peers.join(","),
            strict = !self.allow_duplicate_ip,
            dup = self.allow_duplicate_ip,
            propose = d(self.timeout_propose),
            commit = d(self.timeout_commit),
            empty = self.create_empty_blocks,
            prom = !self.prometheus_laddr.is_empty(),
            prom_addr = if self.prometheus_laddr.is_empty() {
                ":26660"
            } else {
                &self.prometheus_laddr
            },
        );
        s
    }

    /// Writes `config/config.toml` under `home`.
    pub fn write(&self, home: &Path) -> Result<(), HomeError> {
        write(&home.join("config/config.toml"), self.render().as_bytes())
    }
}

/// `CometBFT` 0.38's default consensus params (4 MiB blocks, ed25519 validators).
pub fn default_consensus_params() -> tendermint::consensus::Params {
    use tendermint::consensus::params::{AbciParams, ValidatorParams, VersionParams};
    tendermint::consensus::Params {
        block: tendermint::block::Size {
            max_bytes: 4 * 1024 * 1024,
            max_gas: -1,
            time_iota_ms: 1000,
        },
        evidence: tendermint::evidence::Params {
            max_age_num_blocks: 100_000,
            max_age_duration: tendermint::evidence::Duration(Duration::from_hours(48)),
            max_bytes: 1024 * 1024,
        },
        validator: ValidatorParams {
            pub_key_types: vec![tendermint::public_key::Algorithm::Ed25519],
        },
        version: Some(VersionParams { app: 0 }),
        abci: AbciParams::default(),
    }
}

/// A genesis document with these validators (name, key, power) and application state.
pub fn genesis(
    chain_id: &str,
    genesis_time: tendermint::Time,
    validators: &[(String, tendermint::PublicKey, u64)],
    app_state: serde_json::Value,
) -> Result<tendermint::Genesis, HomeError> {
    let encode = |what: &'static str, e: &dyn std::fmt::Display| HomeError::Encode {
        what,
        message: e.to_string(),
    };
    let validators = validators
        .iter()
        .map(|(name, key, power)| {
            let power = tendermint::vote::Power::try_from(*power)
                .map_err(|e| encode("validator power", &e))?;
            let mut info = tendermint::validator::Info::new(*key, power);
            info.name = Some(name.clone());
            Ok(info)
        })
        .collect::<Result<Vec<_>, HomeError>>()?;
    Ok(tendermint::Genesis {
        genesis_time,
        chain_id: chain_id.parse().map_err(|e| encode("chain id", &e))?,
        initial_height: 1,
        consensus_params: default_consensus_params(),
        validators,
        app_hash: tendermint::AppHash::default(),
        app_state,
    })
}
