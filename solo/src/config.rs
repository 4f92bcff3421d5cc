//! Reading a standard `CometBFT` home directory.
//!
//! `tandem-solo` reads only the parts of `config/config.toml` it acts on, with the defaults
//! `CometBFT` 0.38 uses, so a home written by `cometbft init` or by `tandem testnet` works
//! unchanged. Relative paths in the config are resolved against the home directory, as
//! `CometBFT` does.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use serde::Deserialize;
use tendermint::{Genesis, PrivateKey, PublicKey};

/// Errors while loading a home directory.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read.
    #[error("failed to read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `config.toml` is not valid.
    #[error("invalid config file {path}: {message}")]
    Toml {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// `genesis.json` is not a valid `CometBFT` genesis.
    #[error("invalid genesis file {path}: {message}")]
    Genesis {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// `priv_validator_key.json` is not valid.
    #[error("invalid validator key file {path}: {message}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A listen or proxy address is not usable.
    #[error("invalid address `{address}` for {field}: expected tcp://HOST:PORT{extra}")]
    Address {
        /// The config field.
        field: &'static str,
        /// The value given.
        address: String,
        /// Further accepted forms.
        extra: &'static str,
    },
}

/// Where the application's ABCI server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppAddress {
    /// `tcp://HOST:PORT`.
    Tcp(String),
    /// `unix:///path/to/socket`.
    Unix(PathBuf),
}

impl AppAddress {
    /// Parses `tcp://host:port`, `host:port` or `unix:///path`.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        if let Some(path) = value.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(address_error("proxy_app", value, " or unix:///PATH"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let hostport = value.strip_prefix("tcp://").unwrap_or(value);
        if hostport
            .rsplit_once(':')
            .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
        {
            return Err(address_error("proxy_app", value, " or unix:///PATH"));
        }
        Ok(Self::Tcp(hostport.to_owned()))
    }
}

impl std::fmt::Display for AppAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(hostport) => write!(f, "tcp://{hostport}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

fn address_error(field: &'static str, value: &str, extra: &'static str) -> ConfigError {
    ConfigError::Address {
        field,
        address: value.to_owned(),
        extra,
    }
}

/// Parses an RPC listen address (`tcp://IP:PORT`).
pub fn parse_listen_addr(field: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    let hostport = value.strip_prefix("tcp://").unwrap_or(value);
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport
        .parse()
        .map_err(|_| address_error(field, value, " with a numeric IP"))
}

/// The mempool limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MempoolLimits {
    /// Maximum number of txs held.
    pub max_txs: usize,
    /// Maximum total bytes of the txs held.
    pub max_txs_bytes: u64,
    /// Maximum size of one tx, checked before `CheckTx`.
    pub max_tx_bytes: usize,
    /// Number of recently seen tx hashes kept to reject duplicates.
    pub cache_size: usize,
    /// Whether the remaining txs are rechecked after every Commit.
    pub recheck: bool,
}

impl Default for MempoolLimits {
    fn default() -> Self {
        Self {
            max_txs: 5000,
            max_txs_bytes: 1024 * 1024 * 1024,
            max_tx_bytes: 1024 * 1024,
            cache_size: 10_000,
            recheck: true,
        }
    }
}

/// Everything `tandem-solo` needs from a home directory.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The home directory.
    pub home: PathBuf,
    /// Moniker reported by `/status`.
    pub moniker: String,
    /// The ABCI application address (`proxy_app`).
    pub proxy_app: AppAddress,
    /// The JSON-RPC listen address (`rpc.laddr`).
    pub rpc_laddr: SocketAddr,
    /// Time between committing a block and proposing the next (`consensus.timeout_commit`).
    pub timeout_commit: Duration,
    /// Whether blocks are made without txs (`consensus.create_empty_blocks`).
    pub create_empty_blocks: bool,
    /// With `create_empty_blocks = false`, the longest wait before an empty block; zero means
    /// never (`consensus.create_empty_blocks_interval`).
    pub create_empty_blocks_interval: Duration,
    /// How long `/broadcast_tx_commit` waits for the tx to be committed.
    pub timeout_broadcast_tx_commit: Duration,
    /// Mempool limits (`[mempool]`).
    pub mempool: MempoolLimits,
    /// Where blocks and state are stored (`db_dir`).
    pub db_dir: PathBuf,
    /// The genesis document.
    pub genesis: Genesis,
    /// The validator signing key.
    pub validator_key: ValidatorKey,
}

impl NodeConfig {
    /// The validator public key.
    pub fn validator_pub_key(&self) -> PublicKey {
        self.validator_key.public_key()
    }

    /// Loads `config/config.toml`, the genesis file and the validator key of a `CometBFT` home.
    pub fn load(home: &Path) -> Result<Self, ConfigError> {
        let config_path = home.join("config").join("config.toml");
        let text = read(&config_path)?;
        let raw: RawConfig = toml::from_str(&text).map_err(|e| ConfigError::Toml {
            path: config_path.clone(),
            message: e.to_string(),
        })?;
        let resolve = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                home.join(p)
            }
        };
        let genesis_path = resolve(&raw.genesis_file);
        let genesis_text = read(&genesis_path)?;
        let genesis: Genesis =
            serde_json::from_str(&genesis_text).map_err(|e| ConfigError::Genesis {
                path: genesis_path.clone(),
                message: e.to_string(),
            })?;
        if genesis.initial_height < 1 {
            return Err(ConfigError::Genesis {
                path: genesis_path,
                message: format!(
                    "initial_height must be at least 1, got {}",
                    genesis.initial_height
                ),
            });
        }
        let key_path = resolve(&raw.priv_validator_key_file);
        let validator_key = load_validator_key(&key_path)?;
        let toml_err = |message: String| ConfigError::Toml {
            path: config_path.clone(),
            message,
        };
        let mempool = MempoolLimits {
            max_txs: usize::try_from(raw.mempool.size)
                .map_err(|_| toml_err("mempool.size is too large".into()))?,
            max_txs_bytes: raw.mempool.max_txs_bytes,
            max_tx_bytes: usize::try_from(raw.mempool.max_tx_bytes)
                .map_err(|_| toml_err("mempool.max_tx_bytes is too large".into()))?,
            cache_size: usize::try_from(raw.mempool.cache_size)
                .map_err(|_| toml_err("mempool.cache_size is too large".into()))?,
            recheck: raw.mempool.recheck,
        };
        Ok(Self {
            home: home.to_path_buf(),
            moniker: raw.moniker,
            proxy_app: AppAddress::parse(&raw.proxy_app)?,
            rpc_laddr: parse_listen_addr("rpc.laddr", &raw.rpc.laddr)?,
            timeout_commit: parse_duration(
                "consensus.timeout_commit",
                &raw.consensus.timeout_commit,
            )
            .map_err(toml_err)?,
            create_empty_blocks: raw.consensus.create_empty_blocks,
            create_empty_blocks_interval: parse_duration(
                "consensus.create_empty_blocks_interval",
                &raw.consensus.create_empty_blocks_interval,
            )
            .map_err(toml_err)?,
            timeout_broadcast_tx_commit: parse_duration(
                "rpc.timeout_broadcast_tx_commit",
                &raw.rpc.timeout_broadcast_tx_commit,
            )
            .map_err(toml_err)?,
            mempool,
            db_dir: resolve(&raw.db_dir),
            genesis,
            validator_key,
        })
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The validator's ed25519 signing key; `Debug` shows only the public key.
#[derive(Clone)]
pub struct ValidatorKey(std::sync::Arc<PrivateKey>);

impl ValidatorKey {
    /// Wraps a private key.
    pub fn new(key: PrivateKey) -> Self {
        Self(std::sync::Arc::new(key))
    }

    /// The private key.
    pub fn private_key(&self) -> &PrivateKey {
        &self.0
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.0.public_key()
    }
}

impl std::fmt::Debug for ValidatorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ValidatorKey")
            .field(&self.public_key())
            .finish()
    }
}

/// The subset of `priv_validator_key.json` that is read.
#[derive(Deserialize)]
struct RawValidatorKey {
    pub_key: PublicKey,
    priv_key: PrivateKey,
}

fn load_validator_key(path: &Path) -> Result<ValidatorKey, ConfigError> {
    let text = read(path)?;
    let key_error = |message: String| ConfigError::Key {
        path: path.to_path_buf(),
        message,
    };
    let raw: RawValidatorKey = serde_json::from_str(&text).map_err(|e| key_error(e.to_string()))?;
    if raw.priv_key.ed25519_signing_key().is_none() {
        return Err(key_error(
            "only ed25519 validator keys are supported".into(),
        ));
    }
    if raw.priv_key.public_key() != raw.pub_key {
        return Err(key_error("pub_key does not match priv_key".into()));
    }
    Ok(ValidatorKey(std::sync::Arc::new(raw.priv_key)))
}

/// Parses a Go duration as `CometBFT` writes it (`1s`, `500ms`, `1m30s`, `0s`).
pub fn parse_duration(field: &str, value: &str) -> Result<Duration, String> {
    let bad = || format!("{field}: `{value}` is not a duration such as 1s, 500ms or 1m30s");
    let value_trimmed = value.trim();
    if value_trimmed == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = value_trimmed;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ns" => Duration::from_nanos(number),
            "us" | "µs" => Duration::from_micros(number),
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(bad)?),
            "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(bad)?),
            _ => return Err(bad()),
        };
        total = total.checked_add(part).ok_or_else(bad)?;
    }
    Ok(total)
}

#[derive(Deserialize)]
#[serde(default)]
struct RawConfig {
    proxy_app: String,
    moniker: String,
    db_dir: String,
    genesis_file: String,
    priv_validator_key_file: String,
    rpc: RawRpc,
    consensus: RawConsensus,
    mempool: RawMempool,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            proxy_app: "tcp://127.0.0.1:26658".into(),
            moniker: "tandem-solo".into(),
            db_dir: "data".into(),
            genesis_file: "config/genesis.json".into(),
            priv_validator_key_file: "config/priv_validator_key.json".into(),
            rpc: RawRpc::default(),
            consensus: RawConsensus::default(),
            mempool: RawMempool::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawRpc {
    laddr: String,
    timeout_broadcast_tx_commit: String,
}

impl Default for RawRpc {
    fn default() -> Self {
        Self {
            laddr: "tcp://127.0.0.1:26657".into(),
            timeout_broadcast_tx_commit: "10s".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawConsensus {
    timeout_commit: String,
    create_empty_blocks: bool,
    create_empty_blocks_interval: String,
}

impl Default for RawConsensus {
    fn default() -> Self {
        Self {
            timeout_commit: "1s".into(),
            create_empty_blocks: true,
            create_empty_blocks_interval: "0s".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawMempool {
    recheck: bool,
    size: u64,
    max_txs_bytes: u64,
    max_tx_bytes: u64,
    cache_size: u64,
}

impl Default for RawMempool {
    fn default() -> Self {
        let limits = MempoolLimits::default();
        Self {
            recheck: limits.recheck,
            size: limits.max_txs as u64,
            max_txs_bytes: limits.max_txs_bytes,
            max_tx_bytes: limits.max_tx_bytes as u64,
            cache_size: limits.cache_size as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        let table = [
            ("0s", Duration::ZERO),
            ("0", Duration::ZERO),
            ("1s", Duration::from_secs(1)),
            ("500ms", Duration::from_millis(500)),
            ("1m30s", Duration::from_secs(90)),
            ("250us", Duration::from_micros(250)),
        ];
        for (text, expected) in table {
            assert_eq!(parse_duration("t", text), Ok(expected), "{text}");
        }
        for bad in ["", "s", "1x", "1.5s", "-1s"] {
            assert!(parse_duration("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn app_addresses() {
        assert_eq!(
            AppAddress::parse("tcp://127.0.0.1:26658").unwrap(),
            AppAddress::Tcp("127.0.0.1:26658".into())
        );
        assert_eq!(
            AppAddress::parse("unix:///tmp/app.sock").unwrap(),
            AppAddress::Unix("/tmp/app.sock".into())
        );
        assert!(AppAddress::parse("tcp://nohost").is_err());
        assert!(AppAddress::parse("unix://").is_err());
    }

    #[test]
    fn empty_config_takes_cometbft_defaults() {
        let raw: RawConfig = toml::from_str("").unwrap();
        assert_eq!(raw.consensus.timeout_commit, "1s");
        assert!(raw.consensus.create_empty_blocks);
        assert_eq!(raw.mempool.size, 5000);
    }
}
