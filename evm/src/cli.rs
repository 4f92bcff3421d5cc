//! Command-line flags; every flag can also come from `TANDEM_EVM_<FLAG>`.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

use crate::forwarder::RollupId;

/// tandem-evm: a reference EVM execution engine driven through the Engine API V3.
#[derive(Debug, Clone, Parser)]
#[command(name = "tandem-evm", version, about)]
pub struct Args {
    /// geth-style genesis.json; without it the built-in development genesis is used
    /// (chain id 1337, Cancun from block 0, one funded development account).
    #[arg(long, env = "TANDEM_EVM_GENESIS")]
    pub genesis: Option<PathBuf>,
    /// Directory holding the block log and forkchoice; without it the chain lives in memory only.
    #[arg(long, env = "TANDEM_EVM_DATADIR")]
    pub datadir: Option<PathBuf>,
    /// File with the 32-byte hex JWT secret shared with the consensus client (the conductor).
    #[arg(long, env = "TANDEM_EVM_JWT_SECRET")]
    pub jwt_secret: PathBuf,
    /// Listen address of the authenticated Engine API.
    #[arg(long, env = "TANDEM_EVM_ENGINE_ADDR", default_value = "127.0.0.1:8551")]
    pub engine_addr: SocketAddr,
    /// Listen address of the public JSON-RPC (`eth_`, `net_`, `web3_`).
    #[arg(long, env = "TANDEM_EVM_RPC_ADDR", default_value = "127.0.0.1:8545")]
    pub rpc_addr: SocketAddr,
    /// gRPC URL of the conductor's `ForwarderService`; without it `eth_sendRawTransaction` keeps
    /// transactions in the local pool.
    #[arg(long, env = "TANDEM_EVM_FORWARDER_URL")]
    pub forwarder_url: Option<String>,
    /// Rollup id sent with forwarded transactions: 64 hex characters or `name:<s>` (= sha256(s)).
    #[arg(long, env = "TANDEM_EVM_ROLLUP_ID", default_value = "name:tandem-evm")]
    pub rollup_id: RollupId,
    /// Serve Prometheus metrics on `GET /metrics` at this address (not served when unset).
    #[arg(long, env = "TANDEM_EVM_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Log filter (tracing `EnvFilter` syntax).
    #[arg(long, env = "TANDEM_EVM_LOG", default_value = "info")]
    pub log: String,
    /// Emit logs as JSON lines.
    #[arg(long, env = "TANDEM_EVM_LOG_JSON")]
    pub log_json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let args = Args::try_parse_from(["tandem-evm", "--jwt-secret", "/tmp/jwt.hex"]).unwrap();
        assert_eq!(args.engine_addr, "127.0.0.1:8551".parse().unwrap());
        assert_eq!(args.rpc_addr, "127.0.0.1:8545".parse().unwrap());
        assert_eq!(args.rollup_id, "name:tandem-evm".parse().unwrap());
        assert!(args.genesis.is_none() && args.datadir.is_none() && args.forwarder_url.is_none());
        assert!(args.metrics_addr.is_none());
        assert!(!args.log_json);
    }

    #[test]
    fn missing_jwt_secret_is_an_error() {
        assert!(Args::try_parse_from(["tandem-evm"]).is_err());
    }
}
