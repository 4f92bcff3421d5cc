//! `tandemd`: parses the command line, then either writes a home directory (`init`) or runs
//! the ABCI server, the gRPC API and the metrics endpoint (`start`) until `SIGTERM`/SIGINT or
//! until one of them stops. Exit codes are listed in [`Exit`].

use std::{process::ExitCode, time::Duration};

use clap::Parser as _;
use eyre::WrapErr as _;
use tandem_app::{
    config::{
        Cli, Command, Config, InitArgs, LogFormat, StartArgs, CONFIG_FILE, GENESIS_APP_STATE_FILE,
    },
    daemon::{Daemon, Stopped},
    server::error_chain,
    GenesisAppState,
};
use tokio::signal::unix::{signal, SignalKind};
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

impl Exit {
    /// The exit code a server's stop calls for; `expected` is true during shutdown.
    fn of(stopped: &Stopped, expected: bool) -> Self {
        if stopped.is_application_fault() {
            Self::ApplicationFault
        } else if stopped.is_failure() || !expected {
            Self::ServiceFailed
        } else {
            Self::Clean
        }
    }
}

async fn run(args: &StartArgs, config: Config) -> Exit {
    let data_dir = config.data_dir(&args.home);
    info!(home = %args.home.display(), data_dir = %data_dir.display(), "starting tandemd");
    let (mut sigterm, mut sigint) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => {
            error!(error = %e, "failed to install signal handlers");
            return Exit::StartupFailed;
        }
    };
    let mut daemon = match Daemon::start(&config, data_dir).await {
        Ok(daemon) => daemon,
        Err(e) => {
            error!(error = %e, "failed to start");
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
        Some(stopped) = daemon.next_stop() => {
            stopped.log();
            Exit::of(&stopped, false)
        }
    };
    let (stopped, in_time) = daemon.shutdown(SHUTDOWN_GRACE).await;
    for stop in &stopped {
        stop.log();
        exit = exit.max(Exit::of(stop, true));
    }
    if !in_time {
        warn!(grace = ?SHUTDOWN_GRACE, "services did not stop in time");
        exit = exit.max(Exit::ServiceFailed);
    }
    info!(code = exit as u8, "tandemd stopped");
    exit
}
