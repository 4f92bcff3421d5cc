//! `tandemd`: parses the command line, then either writes a home directory (`init`) or runs
//! the ABCI server, the gRPC API and the metrics endpoint (`start`) until `SIGTERM`/SIGINT or
//! until one of them stops. Exit codes are listed in [`Exit`].

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::Parser as _;
use eyre::WrapErr as _;
use futures::{future::BoxFuture, stream::FuturesUnordered, FutureExt as _, StreamExt as _};
use tandem_app::{
    config::{
        Cli, Command, Config, InitArgs, LogFormat, StartArgs, CONFIG_FILE, GENESIS_APP_STATE_FILE,
    },
    grpc::{GrpcConfig, GrpcServer},
    metrics::{Metrics, MetricsServer},
    server::{error_chain, AbciServer, ServerConfig, ServerError},
    App, AppConfig, GenesisAppState,
};
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long the services get to stop after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Process exit codes of `tandemd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Exit {
    /// 0: `init` succeeded, or `start` shut down cleanly on `SIGTERM`/SIGINT.
    Clean = 0,
    /// 1: could not start (bad configuration, state not openable, port in use, ...).
    StartupFailed = 1,
    // 2 is clap's exit code for a command-line usage error.
    /// 3: the application failed on a consensus call; nothing wrong was answered. Fix the
    /// cause and restart: `CometBFT` replays the missing blocks.
    ApplicationFault = 3,
    /// 4: a server (ABCI, gRPC or metrics) failed or stopped on its own.
    ServiceFailed = 4,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit as u8)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Init(args) => match init(&args) {
            Ok(()) => Exit::Clean.into(),
            Err(e) => {
                eprintln!("tandemd init: {e:?}");
                Exit::StartupFailed.into()
            }
        },
        Command::Start(args) => start(&args).into(),
    }
}

/// `tandemd init`: writes `config.toml` and the genesis `app_state` template.
fn init(args: &InitArgs) -> eyre::Result<()> {
    std::fs::create_dir_all(&args.home)
        .wrap_err_with(|| format!("failed to create home directory {}", args.home.display()))?;
    let genesis = serde_json::to_string_pretty(&GenesisAppState::example())
        .wrap_err("failed to encode the genesis app_state template")?;
    for (name, contents) in [
        (CONFIG_FILE, Config::default().to_commented_toml()),
        (GENESIS_APP_STATE_FILE, genesis + "\n"),
    ] {
        let path = args.home.join(name);
        if path.exists() && !args.force {
            eyre::bail!(
                "{} already exists; pass --force to overwrite it",
                path.display()
            );
        }
        std::fs::write(&path, contents)
            .wrap_err_with(|| format!("failed to write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!(
        "next: put the contents of {GENESIS_APP_STATE_FILE} into the `app_state` of the CometBFT genesis, \
         then run `tandemd start --home {}`",
        args.home.display()
    );
    Ok(())
}

fn start(args: &StartArgs) -> Exit {
    let config = match Config::load(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!(
                "tandemd: failed to load the configuration: {}",
                error_chain(&e)
            );
            return Exit::StartupFailed;
        }
    };
    if let Err(e) = init_tracing(&config) {
        eprintln!("tandemd: {e:?}");
        return Exit::StartupFailed;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!(error = %e, "failed to start the tokio runtime");
            return Exit::StartupFailed;
        }
    };
    runtime.block_on(run(args, config))
}

fn init_tracing(config: &Config) -> eyre::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_filter)
        .wrap_err_with(|| format!("invalid log filter `{}`", config.log_filter))?;
    // Colors only on a terminal: log files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    installed.map_err(|e| eyre::eyre!("failed to install the log subscriber: {e}"))
}

/// Why a service stopped.
enum Stopped {
    Abci(Result<(), ServerError>),
    Grpc(eyre::Result<()>),
    Metrics(eyre::Result<()>),
}

impl Stopped {
    /// The exit code this stop calls for; `expected` is true during shutdown.
    fn exit(&self, expected: bool) -> Exit {
        match self {
            Self::Abci(Err(ServerError::Application { .. })) => Exit::ApplicationFault,
            Self::Abci(Err(_)) | Self::Grpc(Err(_)) | Self::Metrics(Err(_)) => Exit::ServiceFailed,
            _ if expected => Exit::Clean,
            _ => Exit::ServiceFailed,
        }
    }

    fn log(&self) {
        match self {
            Self::Abci(Ok(())) => info!("ABCI server stopped"),
            Self::Grpc(Ok(())) => info!("gRPC server stopped"),
            Self::Metrics(Ok(())) => info!("metrics server stopped"),
            Self::Abci(Err(e)) => error!(error = %error_chain(e), "ABCI server failed"),
            Self::Grpc(Err(e)) => error!(error = ?e, "gRPC server failed"),
            Self::Metrics(Err(e)) => error!(error = ?e, "metrics server failed"),
        }
    }
}

async fn run(args: &StartArgs, config: Config) -> Exit {
    let data_dir = config.data_dir(&args.home);
    info!(home = %args.home.display(), data_dir = %data_dir.display(), "starting tandemd");
    let metrics = Arc::new(Metrics::new());
    let mut app_config = AppConfig::new(data_dir);
    app_config.metrics = Some(metrics.clone());
    let app = match App::open(app_config).await {
        Ok(app) => app,
        Err(e) => {
            error!(error = %error_chain(&e), "failed to open the application state");
            return Exit::StartupFailed;
        }
    };
    metrics.set_height(app.latest_block_height());

    let cancel = CancellationToken::new();
    let services = match spawn_services(&config, &app, &metrics, &cancel).await {
        Ok(services) => services,
        Err(e) => {
            error!(error = ?e, "failed to start");
            cancel.cancel();
            return Exit::StartupFailed;
        }
    };
    let exit = supervise(services, &cancel).await;
    app.shutdown().await;
    info!(code = exit as u8, "tandemd stopped");
    exit
}

async fn spawn_services(
    config: &Config,
    app: &App,
    metrics: &Arc<Metrics>,
    cancel: &CancellationToken,
) -> eyre::Result<FuturesUnordered<BoxFuture<'static, Stopped>>> {
    let metrics_server = MetricsServer::spawn(config.metrics_listen, metrics.clone(), cancel)
        .await
        .wrap_err_with(|| {
            format!(
                "failed to bind the metrics listener on {}",
                config.metrics_listen
            )
        })?;
    let grpc = GrpcServer::spawn(
        &GrpcConfig {
            listen: config.grpc_listen,
            cometbft_rpc: config.cometbft_rpc.clone(),
        },
        Arc::new(app.clone()),
        cancel,
    )
    .await
    .wrap_err("failed to start the gRPC server")?;
    let abci = AbciServer::spawn(
        &config.abci_listen,
        app.clone(),
        ServerConfig {
            max_frame_bytes: config.abci_max_frame_bytes,
            // The application records its own phase latencies.
            metrics: None,
        },
        cancel,
    )
    .await
    .wrap_err_with(|| format!("failed to bind the ABCI listener on {}", config.abci_listen))?;
    info!(
        abci = %abci.local_addr(),
        grpc = %grpc.local_addr(),
        metrics = %metrics_server.local_addr(),
        "tandemd is running"
    );
    let services: FuturesUnordered<BoxFuture<'static, Stopped>> = FuturesUnordered::new();
    services.push(abci.wait().map(Stopped::Abci).boxed());
    services.push(grpc.wait().map(Stopped::Grpc).boxed());
    services.push(
        metrics_server
            .wait()
            .map(|r| Stopped::Metrics(r.wrap_err("metrics server failed")))
            .boxed(),
    );
    Ok(services)
}

/// Waits for `SIGTERM`/SIGINT or for a service to stop, then stops everything.
async fn supervise(
    mut services: FuturesUnordered<BoxFuture<'static, Stopped>>,
    cancel: &CancellationToken,
) -> Exit {
    let (mut sigterm, mut sigint) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            error!(error = %e, "failed to install signal handlers");
            cancel.cancel();
            return Exit::StartupFailed;
        }
    };
    let mut exit = tokio::select! {
        _ = sigterm.recv() => {
            info!("SIGTERM received; shutting down");
            Exit::Clean
        }
        _ = sigint.recv() => {
            info!("SIGINT received; shutting down");
            Exit::Clean
        }
        Some(stopped) = services.next() => {
            stopped.log();
            stopped.exit(false)
        }
    };
    cancel.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while let Some(stopped) = services.next().await {
            stopped.log();
            exit = exit.max(stopped.exit(true));
        }
    })
    .await;
    if drained.is_err() {
        warn!(grace = ?SHUTDOWN_GRACE, "services did not stop in time");
        exit = exit.max(Exit::ServiceFailed);
    }
    exit
}
