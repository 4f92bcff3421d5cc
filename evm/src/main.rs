//! The `tandem-evm` binary: parse flags, start logging, start the node, wait for a signal.

use clap::Parser as _;
use eyre::WrapErr as _;
use tandem_evm::{cli::Args, genesis, jwt, node};
use tokio::signal::unix::{signal, SignalKind};

#[tokio::main]
async fn main() -> eyre::Result<()> {
    let args = Args::parse();
    init_tracing(&args)?;
    if tandem_evm::malloc::keep_freed_memory() {
        tracing::debug!("malloc keeps freed memory for the next block");
    }

    let genesis = match &args.genesis {
        Some(path) => genesis::load_genesis(path).wrap_err("failed to load the genesis")?,
        None => genesis::dev_genesis(),
    };
    let jwt_secret = jwt::read_secret(&args.jwt_secret)
        .map_err(|e| eyre::eyre!(e))
        .wrap_err("failed to load the JWT secret")?;
    let config = node::Config {
        genesis,
        datadir: args.datadir.clone(),
        jwt_secret,
        engine_addr: args.engine_addr,
        rpc_addr: args.rpc_addr,
        forwarder: args.forwarder_url.clone().map(|url| (url, args.rollup_id)),
        metrics_addr: args.metrics_addr,
    };
    // The handlers go in before the servers start: a signal that arrives once the node says it
    // is listening must shut it down cleanly, not kill it with the default action.
    let mut sigterm =
        signal(SignalKind::terminate()).wrap_err("failed to install the SIGTERM handler")?;
    let mut sigint =
        signal(SignalKind::interrupt()).wrap_err("failed to install the SIGINT handler")?;
    let handle = node::start(config)
        .await
        .wrap_err("failed to start tandem-evm")?;

    tokio::select! {
        _ = sigterm.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = sigint.recv() => tracing::info!("interrupt received, shutting down"),
        () = handle.stopped() => eyre::bail!("a server stopped unexpectedly"),
    }
    handle.shutdown().await;
    Ok(())
}

fn init_tracing(args: &Args) -> eyre::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&args.log).wrap_err("failed to parse --log")?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if args.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    Ok(())
}
