//! `tandem-solo`: run a single-validator CometBFT-compatible host on a `CometBFT` home.

use std::path::PathBuf;

use clap::Parser;
use eyre::WrapErr as _;
use tokio::signal::unix::{signal, SignalKind};

/// Single-validator consensus host speaking `CometBFT`'s ABCI and JSON-RPC.
#[derive(Debug, Parser)]
#[command(name = "tandem-solo", version)]
struct Args {
    /// `CometBFT` home directory (reads config/config.toml, config/genesis.json and
    /// `config/priv_validator_key.json`).
    #[arg(long, env = "TANDEM_SOLO_HOME", default_value = ".cometbft")]
    home: PathBuf,
    /// Override `proxy_app` (tcp://HOST:PORT or <unix:///PATH>).
    #[arg(long, env = "TANDEM_SOLO_PROXY_APP")]
    proxy_app: Option<String>,
    /// Override `rpc.laddr` (tcp://IP:PORT).
    #[arg(long, env = "TANDEM_SOLO_RPC_LADDR")]
    rpc_laddr: Option<String>,
    /// Override `consensus.timeout_commit` (Go duration such as 1s or 200ms).
    #[arg(long, env = "TANDEM_SOLO_TIMEOUT_COMMIT")]
    timeout_commit: Option<String>,
    /// Write logs as JSON.
    #[arg(long, env = "TANDEM_SOLO_LOG_JSON", default_value_t = false)]
    log_json: bool,
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let mut config = tandem_solo::NodeConfig::load(&args.home)
        .wrap_err_with(|| format!("failed to load the CometBFT home {}", args.home.display()))?;
    if let Some(proxy_app) = &args.proxy_app {
        config.proxy_app = tandem_solo::config::AppAddress::parse(proxy_app)
            .wrap_err("failed to parse --proxy-app")?;
    }
    if let Some(laddr) = &args.rpc_laddr {
        config.rpc_laddr = tandem_solo::config::parse_listen_addr("--rpc-laddr", laddr)
            .wrap_err("failed to parse --rpc-laddr")?;
    }
    if let Some(timeout) = &args.timeout_commit {
        config.timeout_commit = tandem_solo::config::parse_duration("--timeout-commit", timeout)
            .map_err(|e| eyre::eyre!(e))
            .wrap_err("failed to parse --timeout-commit")?;
    }
    // The handlers go in before the node starts: a signal that arrives once it says it is
    // listening must shut it down cleanly, not kill it with the default action.
    let mut sigterm =
        signal(SignalKind::terminate()).wrap_err("failed to install the SIGTERM handler")?;
    let mut sigint =
        signal(SignalKind::interrupt()).wrap_err("failed to install the SIGINT handler")?;
    let mut node = tandem_solo::start(config)
        .await
        .wrap_err("failed to start tandem-solo")?;
    tracing::info!(rpc = %node.rpc_addr(), "tandem-solo started");
    tokio::select! {
        result = node.wait() => return result.wrap_err("tandem-solo stopped"),
        _ = sigterm.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = sigint.recv() => tracing::info!("interrupt received, shutting down"),
    }
    node.shutdown()
        .await
        .wrap_err("failed to shut down cleanly")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let args = Args::try_parse_from(["tandem-solo"]).unwrap();
        assert_eq!(args.home, PathBuf::from(".cometbft"));
        assert!(args.proxy_app.is_none());
    }
}
