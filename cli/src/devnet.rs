//! `tandem devnet`: the Tandem stack on one machine, in one process, on loopback.
//!
//! It runs `tandemd` (the sequencer application) under `tandem-solo` (a one-validator
//! `CometBFT` host) and `tandem-evm` (the reference rollup engine) beside them, all on
//! 127.0.0.1. The first run writes a home directory:
//!
//! ```text
//! <home>/node/     CometBFT home of the validator: config, genesis, keys, block store
//! <home>/tandemd/  tandemd's state (cnidarium over RocksDB)
//! <home>/evm/      tandem-evm's blocks and state, and the Engine API JWT secret (jwt.hex)
//! ```
//!
//! Later runs resume the same chains from it; `--reset` deletes it first. The genesis funds one
//! development account, which is also the chain's authority, from a published seed: anyone can
//! sign with it, so it is only for this devnet.

use std::{
    fmt::Write as _,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Args;
use eyre::{bail, WrapErr as _};
use rand::RngCore as _;
use tandem_app::{
    config::Config as TandemdConfig, daemon::Daemon, server::ListenAddr, GenesisAccount,
    GenesisAppState, GenesisCoin,
};
use tandem_core::{Address, SigningKey, NATIVE_DENOM};
use tandem_solo::{config::AppAddress, home};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// Seed of the funded development account (also the authority).
pub const DEV_SEED: &[u8] = b"tandem-devnet-dev-account";
/// Seed of the fee collector's address.
const FEE_COLLECTOR_SEED: &[u8] = b"tandem-devnet-fee-collector";
/// What the development account holds at genesis, in `utnd`.
pub const DEV_BALANCE: u128 = 1_000_000_000_000_000;
/// How long the chain gets to produce its first block.
const FIRST_BLOCK_DEADLINE: Duration = Duration::from_mins(2);
/// How long the servers get to stop.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Flags of `tandem devnet`.
#[derive(Debug, Args)]
pub struct DevnetArgs {
    /// Home directory of the devnet; created on the first run, resumed on later ones.
    #[arg(long, env = "TANDEM_CLI_DEVNET_HOME", default_value = ".tandem-devnet")]
    pub home: PathBuf,
    /// Delete the home directory first and start new chains.
    #[arg(long, env = "TANDEM_CLI_DEVNET_RESET", default_value_t = false)]
    pub reset: bool,
    /// Chain id of the sequencer chain (used when the home is created).
    #[arg(
        long,
        env = "TANDEM_CLI_DEVNET_CHAIN_ID",
        default_value = "tandem-devnet"
    )]
    pub chain_id: String,
    /// Time between sequencer blocks (`CometBFT`'s `timeout_commit`; a Go duration such as 1s
    /// or 200ms).
    #[arg(long, env = "TANDEM_CLI_DEVNET_BLOCK_TIME", default_value = "1s")]
    pub block_time: String,
    /// Port of the `CometBFT` JSON-RPC (tandem-solo): `broadcast_tx_*`, `status`, `block`, ...
    #[arg(long, env = "TANDEM_CLI_DEVNET_RPC_PORT", default_value_t = 26657)]
    pub rpc_port: u16,
    /// Port of tandemd's ABCI server (the host connects to it).
    #[arg(long, env = "TANDEM_CLI_DEVNET_ABCI_PORT", default_value_t = 26658)]
    pub abci_port: u16,
    /// Port of tandemd's gRPC API (`SequencerService`, `TransactionService`).
    #[arg(long, env = "TANDEM_CLI_DEVNET_GRPC_PORT", default_value_t = 9090)]
    pub grpc_port: u16,
    /// Port of tandemd's Prometheus `/metrics`.
    #[arg(long, env = "TANDEM_CLI_DEVNET_METRICS_PORT", default_value_t = 26661)]
    pub metrics_port: u16,
    /// Port of tandem-evm's public JSON-RPC (`eth_*`).
    #[arg(long, env = "TANDEM_CLI_DEVNET_ETH_RPC_PORT", default_value_t = 8545)]
    pub eth_rpc_port: u16,
    /// Port of tandem-evm's Engine API (JWT-authenticated with `<home>/evm/jwt.hex`).
    #[arg(long, env = "TANDEM_CLI_DEVNET_ENGINE_PORT", default_value_t = 8551)]
    pub engine_port: u16,
    /// Log filter (`EnvFilter` syntax); logs go to standard error.
    #[arg(long, env = "TANDEM_CLI_DEVNET_LOG", default_value = "info")]
    pub log: String,
}

/// Where each part of the devnet keeps its files.
struct Paths {
    node: PathBuf,
    tandemd: PathBuf,
    evm: PathBuf,
    jwt: PathBuf,
}

impl Paths {
    fn new(home: &Path) -> Self {
        let evm = home.join("evm");
        Self {
            node: home.join("node"),
            tandemd: home.join("tandemd"),
            jwt: evm.join("jwt.hex"),
            evm,
        }
    }

    fn genesis(&self) -> PathBuf {
        self.node.join("config/genesis.json")
    }
}

/// The genesis `app_state` of the devnet: the development account funded and in charge.
pub fn app_state() -> GenesisAppState {
    let dev = SigningKey::secp256k1_from_seed(DEV_SEED).address();
    GenesisAppState {
        accounts: vec![GenesisAccount {
            address: dev,
            coins: vec![GenesisCoin {
                denom: NATIVE_DENOM.to_owned(),
                amount: DEV_BALANCE,
            }],
        }],
        params: tandem_core::Params::default(),
        authority: dev,
        fee_collector: SigningKey::secp256k1_from_seed(FEE_COLLECTOR_SEED).address(),
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Writes a new home: validator and node keys, the genesis, `config.toml`, the JWT secret.
fn create_home(args: &DevnetArgs, paths: &Paths) -> eyre::Result<()> {
    let secret = || {
        let mut bytes = [0_u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        bytes
    };
    let validator_key = home::ed25519_key(secret());
    let app_state = serde_json::to_value(app_state()).wrap_err("failed to encode app_state")?;
    let genesis = home::genesis(
        &args.chain_id,
        tendermint::Time::now(),
        &[("devnet".to_owned(), validator_key.public_key(), 10)],
        app_state,
    )
    .wrap_err("failed to build the genesis")?;
    home::write_validator_key(&paths.node, &validator_key)?;
    home::write_node_key(&paths.node, &home::ed25519_key(secret()))?;
    home::write_genesis(&paths.node, &genesis)?;
    let mut config = home::ConfigToml::one_second_blocks(
        "devnet",
        &format!("tcp://{}", loopback(args.abci_port)),
    );
    config.rpc_laddr = format!("tcp://{}", loopback(args.rpc_port));
    config.write(&paths.node)?;
    std::fs::create_dir_all(&paths.evm)
        .wrap_err_with(|| format!("failed to create {}", paths.evm.display()))?;
    std::fs::write(&paths.jwt, hex::encode(secret()) + "\n")
        .wrap_err_with(|| format!("failed to write {}", paths.jwt.display()))?;
    Ok(())
}

/// Creates the home on the first run (or after `--reset`); says which it did.
fn prepare_home(args: &DevnetArgs, paths: &Paths) -> eyre::Result<bool> {
    if args.reset && args.home.exists() {
        std::fs::remove_dir_all(&args.home)
            .wrap_err_with(|| format!("failed to delete {}", args.home.display()))?;
    }
    if paths.genesis().exists() {
        return Ok(false);
    }
    if args.home.exists()
        && std::fs::read_dir(&args.home)
            .wrap_err_with(|| format!("failed to read {}", args.home.display()))?
            .next()
            .is_some()
    {
        bail!(
            "{} is not empty and holds no devnet ({} is missing); pass --reset to start over there, \
             or choose another --home",
            args.home.display(),
            paths.genesis().display()
        );
    }
    create_home(args, paths)?;
    Ok(true)
}

/// The three running parts.
struct Running {
    /// The chain id in the genesis (a resumed home keeps its own).
    chain_id: String,
    tandemd: Daemon,
    solo: tandem_solo::NodeHandle,
    evm: tandem_evm::NodeHandle,
}

async fn start(args: &DevnetArgs, paths: &Paths) -> eyre::Result<Running> {
    let block_time = tandem_solo::config::parse_duration("--block-time", &args.block_time)
        .map_err(|e| eyre::eyre!(e))?;
    let tandemd_config = TandemdConfig {
        abci_listen: ListenAddr::Tcp(loopback(args.abci_port)),
        grpc_listen: loopback(args.grpc_port),
        metrics_listen: loopback(args.metrics_port),
        cometbft_rpc: format!("http://{}", loopback(args.rpc_port)),
        ..TandemdConfig::default()
    };
    let tandemd = Daemon::start(&tandemd_config, paths.tandemd.join("data"))
        .await
        .wrap_err("failed to start tandemd")?;

    let evm = tandem_evm::start(tandem_evm::Config {
        genesis: tandem_evm::genesis::dev_genesis(),
        datadir: Some(paths.evm.join("data")),
        jwt_secret: tandem_evm::jwt::read_secret(&paths.jwt).map_err(|e| eyre::eyre!(e))?,
        engine_addr: loopback(args.engine_port),
        rpc_addr: loopback(args.eth_rpc_port),
        forwarder: None,
        metrics_addr: None,
    })
    .await;
    let evm = match evm {
        Ok(evm) => evm,
        Err(e) => {
            let _ = tandemd.shutdown(SHUTDOWN_GRACE).await;
            return Err(e).wrap_err("failed to start tandem-evm");
        }
    };

    let node = async {
        let mut config = tandem_solo::NodeConfig::load(&paths.node)
            .wrap_err_with(|| format!("failed to load {}", paths.node.display()))?;
        // Flags win over the ports written at the first run.
        config.proxy_app = AppAddress::Tcp(loopback(args.abci_port).to_string());
        config.rpc_laddr = loopback(args.rpc_port);
        config.timeout_commit = block_time;
        let chain_id = config.genesis.chain_id.to_string();
        if chain_id != args.chain_id {
            warn!(
                genesis = %chain_id,
                flag = %args.chain_id,
                "--chain-id applies to a new home only; resuming the chain in the genesis"
            );
        }
        let solo = tandem_solo::start(config)
            .await
            .wrap_err("failed to start tandem-solo")?;
        Ok((chain_id, solo))
    }
    .await;
    match node {
        Ok((chain_id, solo)) => Ok(Running {
            chain_id,
            tandemd,
            solo,
            evm,
        }),
        Err(e) => {
            evm.shutdown().await;
            let _ = tandemd.shutdown(SHUTDOWN_GRACE).await;
            Err(e)
        }
    }
}

/// Waits until this run has committed a block (the first one of a new chain, the next one of
/// a resumed chain), or fails at the deadline.
async fn first_block(running: &Running) -> eyre::Result<u64> {
    let deadline = tokio::time::Instant::now() + FIRST_BLOCK_DEADLINE;
    let start = running.tandemd.app().latest_block_height();
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    loop {
        poll.tick().await;
        let height = running.tandemd.app().latest_block_height();
        if height > start {
            return Ok(height);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no new block was committed within {FIRST_BLOCK_DEADLINE:?}; see the log above");
        }
    }
}

/// What the devnet prints once it runs: endpoints and the development accounts.
fn summary(args: &DevnetArgs, paths: &Paths, running: &Running, height: u64) -> String {
    let dev = SigningKey::secp256k1_from_seed(DEV_SEED);
    let dev_address: Address = dev.address();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Tandem devnet is running: chain `{}` at height {height}, home {}",
        running.chain_id,
        args.home.display()
    );
    let rows = [
        (
            "CometBFT RPC (tandem-solo)",
            format!("http://{}", running.solo.rpc_addr()),
        ),
        (
            "tandemd gRPC",
            format!("http://{}", running.tandemd.grpc_addr()),
        ),
        (
            "tandemd metrics",
            format!("http://{}/metrics", running.tandemd.metrics_addr()),
        ),
        ("tandemd ABCI", running.tandemd.abci_addr().to_string()),
        (
            "tandem-evm JSON-RPC",
            format!(
                "http://{} (chain id {})",
                running.evm.rpc_addr(),
                tandem_evm::genesis::DEV_CHAIN_ID
            ),
        ),
        (
            "tandem-evm Engine API",
            format!(
                "http://{} (JWT secret {})",
                running.evm.engine_addr(),
                paths.jwt.display()
            ),
        ),
    ];
    for (what, url) in rows {
        let _ = writeln!(s, "  {what:<28}{url}");
    }
    let _ = writeln!(
        s,
        "Development account (funded with {DEV_BALANCE} {NATIVE_DENOM}, also the authority; \
         its key is published, use it only here):"
    );
    let _ = writeln!(s, "  address  {dev_address}");
    let _ = writeln!(s, "  secp256k1 secret  {}", hex::encode(dev.secret_bytes()));
    let _ = writeln!(
        s,
        "  tandem-evm: {} (hardhat/anvil development key #0)",
        tandem_evm::genesis::DEV_ACCOUNT
    );
    let _ = writeln!(
        s,
        "tandem-evm answers eth_* and the Engine API; the conductor that drives it from the \
         sequencer chain is not built yet, so its chain stays at genesis."
    );
    let _ = write!(
        s,
        "Ctrl-C stops the devnet; run the same command again to resume it, or pass --reset."
    );
    s
}

/// Runs until Ctrl-C/`SIGTERM` or until a part stops on its own, then stops all three.
pub async fn run(args: &DevnetArgs) -> eyre::Result<()> {
    let paths = Paths::new(&args.home);
    let created = prepare_home(args, &paths)?;
    info!(home = %args.home.display(), created, "starting the devnet");
    let (mut sigterm, mut sigint) = (
        signal(SignalKind::terminate()).wrap_err("failed to install the SIGTERM handler")?,
        signal(SignalKind::interrupt()).wrap_err("failed to install the SIGINT handler")?,
    );
    let mut running = start(args, &paths).await?;
    let ready = tokio::select! {
        height = first_block(&running) => height.map(Some),
        _ = sigterm.recv() => Ok(None),
        _ = sigint.recv() => Ok(None),
    };
    let (mut failure, solo_stopped) = match ready {
        Ok(Some(height)) => {
            println!("{}", summary(args, &paths, &running, height));
            watch(&mut running, &mut sigterm, &mut sigint).await
        }
        Ok(None) => (None, false),
        Err(e) => (Some(e), false),
    };
    info!("stopping the devnet");
    let Running {
        tandemd, solo, evm, ..
    } = running;
    if !solo_stopped {
        if let Err(e) = solo.shutdown().await {
            error!(error = %e, "tandem-solo stopped with an error");
            failure.get_or_insert_with(|| eyre::eyre!("tandem-solo failed: {e}"));
        }
    }
    evm.shutdown().await;
    let (stopped, in_time) = tandemd.shutdown(SHUTDOWN_GRACE).await;
    for stop in &stopped {
        stop.log();
        if stop.is_failure() {
            failure.get_or_insert_with(|| eyre::eyre!("a tandemd server failed: {stop:?}"));
        }
    }
    if !in_time {
        warn!(grace = ?SHUTDOWN_GRACE, "tandemd's servers did not stop in time");
    }
    failure.map_or(Ok(()), Err)
}

/// Waits for a signal (no failure) or for a part that stops on its own (the failure); the
/// flag says whether that part was tandem-solo, whose task is then already finished.
async fn watch(
    running: &mut Running,
    sigterm: &mut tokio::signal::unix::Signal,
    sigint: &mut tokio::signal::unix::Signal,
) -> (Option<eyre::Report>, bool) {
    let Running {
        tandemd, solo, evm, ..
    } = running;
    let stopped = |what: &str| Some(eyre::eyre!("{what} stopped on its own"));
    tokio::select! {
        _ = sigterm.recv() => { info!("SIGTERM received"); (None, false) }
        _ = sigint.recv() => { info!("interrupt received"); (None, false) }
        stop = tandemd.next_stop() => {
            if let Some(stop) = &stop { stop.log() }
            (stopped("a tandemd server"), false)
        }
        result = solo.wait() => match result {
            Ok(()) => (stopped("tandem-solo"), true),
            Err(e) => (Some(eyre::Report::new(e).wrap_err("tandem-solo failed")), true),
        },
        () = evm.stopped() => (stopped("tandem-evm"), false),
    }
}

/// Runs the devnet on a new multi-threaded runtime (the `tandem devnet` entry point).
pub fn main(args: &DevnetArgs) -> eyre::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .wrap_err_with(|| format!("invalid --log filter `{}`", args.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init()
        .map_err(|e| eyre::eyre!("failed to install the log subscriber: {e}"))?;
    tokio::runtime::Runtime::new()
        .wrap_err("failed to start the tokio runtime")?
        .block_on(run(args))
}
