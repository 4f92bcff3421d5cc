//! Command line and configuration file of `tandemd`.
//!
//! Every setting has three sources, strongest first: the command-line flag (or its
//! `TANDEM_TANDEMD_<FLAG>` environment variable), `<home>/config.toml`, and the built-in
//! default of [`Config::default`]. `tandemd init` writes the defaults to `config.toml`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::server::{ListenAddr, DEFAULT_MAX_FRAME_BYTES};

/// Name of the configuration file inside the home directory.
pub const CONFIG_FILE: &str = "config.toml";
/// Name of the genesis `app_state` template written by `tandemd init`.
pub const GENESIS_APP_STATE_FILE: &str = "genesis_app_state.json";

/// `tandemd`: the ABCI application of the Tandem shared sequencer.
#[derive(Debug, Parser)]
#[command(name = "tandemd", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `tandemd` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a default `config.toml` and a genesis `app_state` template into the home dir.
    Init(InitArgs),
    /// Run the ABCI application, the gRPC API and the metrics endpoint.
    Start(StartArgs),
}

/// Flags of `tandemd init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Home directory (configuration and data).
    #[arg(long, env = "TANDEM_TANDEMD_HOME", default_value_os_t = default_home())]
    pub home: PathBuf,
    /// Overwrite existing `config.toml` and genesis template.
    #[arg(long, env = "TANDEM_TANDEMD_FORCE")]
    pub force: bool,
}

/// Flags of `tandemd start`. Each overrides the same key of `config.toml`.
#[derive(Debug, Default, Args)]
pub struct StartArgs {
    /// Home directory (configuration and data).
    #[arg(long, env = "TANDEM_TANDEMD_HOME", default_value_os_t = default_home())]
    pub home: PathBuf,
    /// ABCI listen address: `tcp://IP:PORT` or `unix:///path/to/socket`.
    #[arg(long, env = "TANDEM_TANDEMD_ABCI_LISTEN")]
    pub abci_listen: Option<ListenAddr>,
    /// gRPC listen address (`IP:PORT`).
    #[arg(long, env = "TANDEM_TANDEMD_GRPC_LISTEN")]
    pub grpc_listen: Option<SocketAddr>,
    /// Prometheus `/metrics` listen address (`IP:PORT`).
    #[arg(long, env = "TANDEM_TANDEMD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// `CometBFT` RPC endpoint that `SubmitTransaction` forwards to (`broadcast_tx_sync`).
    #[arg(long, env = "TANDEM_TANDEMD_COMETBFT_RPC")]
    pub cometbft_rpc: Option<String>,
    /// Data directory; relative paths are taken from the home directory.
    #[arg(long, env = "TANDEM_TANDEMD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Largest accepted ABCI request frame, in bytes.
    #[arg(long, env = "TANDEM_TANDEMD_ABCI_MAX_FRAME_BYTES")]
    pub abci_max_frame_bytes: Option<usize>,
    /// Log format.
    #[arg(long, env = "TANDEM_TANDEMD_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Log filter, in `tracing-subscriber` `EnvFilter` syntax (e.g. `info,tandem_app=debug`).
    #[arg(long, env = "TANDEM_TANDEMD_LOG_FILTER")]
    pub log_filter: Option<String>,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved configuration of `tandemd start` (the schema of `config.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// ABCI listen address.
    pub abci_listen: ListenAddr,
    /// gRPC listen address.
    pub grpc_listen: SocketAddr,
    /// Prometheus `/metrics` listen address.
    pub metrics_listen: SocketAddr,
    /// `CometBFT` RPC endpoint for `SubmitTransaction`.
    pub cometbft_rpc: String,
    /// Data directory, relative to the home directory unless absolute.
    pub data_dir: PathBuf,
    /// Largest accepted ABCI request frame, in bytes.
    pub abci_max_frame_bytes: usize,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter (`EnvFilter` syntax).
    pub log_filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            abci_listen: ListenAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 26658))),
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 26661)),
            cometbft_rpc: "http://127.0.0.1:26657".to_owned(),
            data_dir: PathBuf::from("data"),
            abci_max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
        }
    }
}

/// A configuration that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("failed to read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for [`Config`].
    #[error("invalid configuration in {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the key).
        message: String,
    },
    /// A value is out of range.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads `<home>/config.toml` (the defaults when the file does not exist) and applies
    /// the flags of `args` over it.
    pub fn load(args: &StartArgs) -> Result<Self, ConfigError> {
        let path = args.home.join(CONFIG_FILE);
        let mut config = match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_toml(&text).map_err(|message| ConfigError::Parse {
                path: path.clone(),
                message,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::default(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        config.apply(args);
        config.validate()?;
        Ok(config)
    }

    /// Parses the TOML text of a `config.toml`.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    fn apply(&mut self, args: &StartArgs) {
        if let Some(value) = &args.abci_listen {
            self.abci_listen = value.clone();
        }
        if let Some(value) = args.grpc_listen {
            self.grpc_listen = value;
        }
        if let Some(value) = args.metrics_listen {
            self.metrics_listen = value;
        }
        if let Some(value) = &args.cometbft_rpc {
            self.cometbft_rpc.clone_from(value);
        }
        if let Some(value) = &args.data_dir {
            self.data_dir.clone_from(value);
        }
        if let Some(value) = args.abci_max_frame_bytes {
            self.abci_max_frame_bytes = value;
        }
        if let Some(value) = args.log_format {
            self.log_format = value;
        }
        if let Some(value) = &args.log_filter {
            self.log_filter.clone_from(value);
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.abci_max_frame_bytes < 1024 {
            return Err(ConfigError::Invalid(format!(
                "abci_max_frame_bytes is {}, it must be at least 1024",
                self.abci_max_frame_bytes
            )));
        }
        if !(self.cometbft_rpc.starts_with("http://") || self.cometbft_rpc.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "cometbft_rpc `{}` must be an http:// or https:// URL",
                self.cometbft_rpc
            )));
        }
        Ok(())
    }

    /// The data directory, resolved against `home`.
    pub fn data_dir(&self, home: &Path) -> PathBuf {
        home.join(&self.data_dir)
    }

    /// The commented `config.toml` that `tandemd init` writes.
    pub fn to_commented_toml(&self) -> String {
        format!(
            "# tandemd configuration. Every key can be overridden by the flag of the same name\n\
             # (`--abci-listen`, ...) or its environment variable (`TANDEM_TANDEMD_ABCI_LISTEN`, ...).\n\
             \n\
             # ABCI socket CometBFT connects to: tcp://IP:PORT or unix:///path/to/socket.\n\
             # CometBFT's `proxy_app` must point here.\n\
             abci_listen = {}\n\
             # gRPC API (SequencerService, TransactionService).\n\
             grpc_listen = {}\n\
             # Prometheus metrics, served on GET /metrics.\n\
             metrics_listen = {}\n\
             # CometBFT RPC that SubmitTransaction forwards to (broadcast_tx_sync).\n\
             cometbft_rpc = {}\n\
             # State and block store; relative to the home directory unless absolute.\n\
             data_dir = {}\n\
             # Largest accepted ABCI request frame in bytes (a FinalizeBlock carries the whole block).\n\
             abci_max_frame_bytes = {}\n\
             # \"text\" or \"json\".\n\
             log_format = {}\n\
             # tracing EnvFilter directives, e.g. \"info,tandem_app=debug\".\n\
             log_filter = {}\n",
            toml_string(&self.abci_listen.to_string()),
            toml_string(&self.grpc_listen.to_string()),
            toml_string(&self.metrics_listen.to_string()),
            toml_string(&self.cometbft_rpc),
            toml_string(&self.data_dir.display().to_string()),
            self.abci_max_frame_bytes,
            toml_string(match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }),
            toml_string(&self.log_filter),
        )
    }
}

/// A string rendered as a TOML basic string (quoted and escaped).
fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// `$HOME/.tandemd`, or `.tandemd` when `HOME` is not set.
pub fn default_home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(
        || PathBuf::from(".tandemd"),
        |home| PathBuf::from(home).join(".tandemd"),
    )
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn cli_is_well_formed_and_every_flag_has_an_env_var() {
        let command = Cli::command();
        command.clone().debug_assert();
        for sub in command.get_subcommands() {
            for arg in sub.get_arguments() {
                if matches!(arg.get_id().as_str(), "help" | "version") {
                    continue;
                }
                let env = arg.get_env().unwrap_or_else(|| {
                    panic!(
                        "flag --{} of `{}` has no env var",
                        arg.get_id(),
                        sub.get_name()
                    )
                });
                let expected = format!(
                    "TANDEM_TANDEMD_{}",
                    arg.get_id().as_str().to_uppercase().replace('-', "_")
                );
                assert_eq!(env.to_str(), Some(expected.as_str()));
            }
        }
    }

    #[test]
    fn defaults_parse_and_resolve() {
        let home = tempfile::tempdir().unwrap();
        let cli =
            Cli::try_parse_from(["tandemd", "start", "--home", home.path().to_str().unwrap()])
                .unwrap();
        let Command::Start(args) = cli.command else {
            panic!("expected start")
        };
        assert_eq!(Config::load(&args).unwrap(), Config::default());
        // The file that init writes parses back to the same defaults.
        assert_eq!(
            Config::from_toml(&Config::default().to_commented_toml()).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn flags_override_the_file() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(
            home.path().join(CONFIG_FILE),
            "grpc_listen = \"127.0.0.1:1\"\nmetrics_listen = \"127.0.0.1:2\"\nabci_listen = \"unix:///tmp/a.sock\"\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "tandemd",
            "start",
            "--home",
            home.path().to_str().unwrap(),
            "--grpc-listen",
            "127.0.0.1:3",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Command::Start(args) = cli.command else {
            panic!("expected start")
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.grpc_listen, "127.0.0.1:3".parse().unwrap());
        assert_eq!(config.metrics_listen, "127.0.0.1:2".parse().unwrap());
        assert_eq!(config.abci_listen, ListenAddr::Unix("/tmp/a.sock".into()));
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join(CONFIG_FILE), "grpc_listn = \"x\"\n").unwrap();
        let args = StartArgs {
            home: home.path().to_owned(),
            ..StartArgs::default()
        };
        let error = Config::load(&args).unwrap_err().to_string();
        assert!(error.contains("grpc_listn"), "{error}");
        std::fs::write(home.path().join(CONFIG_FILE), "abci_listen = \"nowhere\"\n").unwrap();
        let error = Config::load(&args).unwrap_err().to_string();
        assert!(error.contains("nowhere"), "{error}");
        std::fs::write(
            home.path().join(CONFIG_FILE),
            "cometbft_rpc = \"ftp://x\"\n",
        )
        .unwrap();
        let error = Config::load(&args).unwrap_err().to_string();
        assert!(error.contains("ftp://x"), "{error}");
    }
}
