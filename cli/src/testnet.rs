//! `tandem testnet`: N `CometBFT` validator homes for a Tandem network.
//!
//! Each `node<i>/` is a complete `CometBFT` home: a fresh node key and validator key, the
//! shared genesis (every validator with equal power and the Tandem `app_state`), a
//! `config.toml` whose `persistent_peers` lists the other validators, whose `proxy_app`
//! points at that node's `tandemd`, and whose timeouts give a block about every second.
//! By default peers and apps are addressed by host name (`node<i>`, `tandemd<i>`), as in the
//! docker compose and Kubernetes setups; `--local` puts everything on 127.0.0.1 with
//! distinct ports instead.

use std::{fmt::Write as _, path::PathBuf, time::Duration};

use clap::Args;
use eyre::{bail, WrapErr as _};
use rand::RngCore as _;
use tandem_solo::home;

/// Flags of `tandem testnet`.
#[derive(Debug, Args)]
pub struct TestnetArgs {
    /// Number of validators.
    #[arg(long, env = "TANDEM_CLI_VALIDATORS", default_value_t = 4)]
    pub validators: usize,
    /// Directory to write `node0` … `node<N-1>` into.
    #[arg(long, env = "TANDEM_CLI_OUTPUT")]
    pub output: PathBuf,
    /// Chain id.
    #[arg(long, env = "TANDEM_CLI_CHAIN_ID", default_value = "tandem-testnet")]
    pub chain_id: String,
    /// JSON file with the genesis `app_state` (`tandemd init` writes a template as
    /// `genesis_app_state.json`).
    #[arg(long, env = "TANDEM_CLI_APP_STATE")]
    pub app_state: PathBuf,
    /// Voting power of each validator.
    #[arg(long, env = "TANDEM_CLI_POWER", default_value_t = 10)]
    pub power: u64,
    /// Host name prefix of the `CometBFT` nodes (`node` gives node0, node1, …).
    #[arg(long, env = "TANDEM_CLI_HOSTNAME_PREFIX", default_value = "node")]
    pub hostname_prefix: String,
    /// Host name prefix of each node's tandemd (`tandemd` gives tandemd0, …).
    #[arg(
        long,
        env = "TANDEM_CLI_APP_HOSTNAME_PREFIX",
        default_value = "tandemd"
    )]
    pub app_hostname_prefix: String,
    /// One host for every node's tandemd (e.g. 127.0.0.1 when tandemd runs beside `CometBFT` in
    /// the same pod or machine); overrides --app-hostname-prefix.
    #[arg(long, env = "TANDEM_CLI_APP_HOST")]
    pub app_host: Option<String>,
    /// Put every node and app on 127.0.0.1: node i uses ports 26656+100·i (p2p),
    /// 26657+100·i (RPC) and 26658+100·i (ABCI).
    #[arg(long, env = "TANDEM_CLI_LOCAL", default_value_t = false)]
    pub local: bool,
    /// Overwrite an output directory that is not empty.
    #[arg(long, env = "TANDEM_CLI_FORCE", default_value_t = false)]
    pub force: bool,
}

/// One generated validator.
struct Node {
    name: String,
    validator_key: tendermint::PrivateKey,
    p2p_key: tendermint::PrivateKey,
    p2p: String,
    rpc: String,
    app: String,
}

fn read_app_state(path: &std::path::Path) -> eyre::Result<serde_json::Value> {
    let app_state_text = std::fs::read_to_string(path)
        .wrap_err_with(|| format!("failed to read --app-state {}", path.display()))?;
    let app_state: serde_json::Value = serde_json::from_str(&app_state_text)
        .wrap_err_with(|| format!("failed to parse --app-state {} as JSON", path.display()))?;
    if !app_state.is_object() {
        bail!("--app-state {} must hold a JSON object", path.display());
    }
    Ok(app_state)
}

/// Fresh keys and addresses for every validator.
fn generate_nodes(args: &TestnetArgs) -> Vec<Node> {
    let mut rng = rand::rngs::OsRng;
    let mut secret = || {
        let mut bytes = [0_u8; 32];
        rng.fill_bytes(&mut bytes);
        bytes
    };
    (0..args.validators)
        .map(|i| {
            let (host, app_host, base) = if args.local {
                (
                    "127.0.0.1".to_owned(),
                    "127.0.0.1".to_owned(),
                    26656 + 100 * i,
                )
            } else {
                (
                    format!("{}{i}", args.hostname_prefix),
                    format!("{}{i}", args.app_hostname_prefix),
                    26656,
                )
            };
            Node {
                name: format!("node{i}"),
                validator_key: home::ed25519_key(secret()),
                p2p_key: home::ed25519_key(secret()),
                p2p: format!("{host}:{base}"),
                rpc: format!(
                    "{}:{}",
                    if args.local { "127.0.0.1" } else { "0.0.0.0" },
                    base + 1
                ),
                app: format!("{}:{}", args.app_host.clone().unwrap_or(app_host), base + 2),
            }
        })
        .collect()
}

/// The `config.toml` of node `i`: its addresses, the other validators as peers, 1 s blocks.
fn node_config(args: &TestnetArgs, nodes: &[Node], i: usize) -> home::ConfigToml {
    let node = &nodes[i];
    let mut config =
        home::ConfigToml::one_second_blocks(&node.name, &format!("tcp://{}", node.app));
    config.rpc_laddr = format!("tcp://{}", node.rpc);
    config.p2p_laddr = if args.local {
        format!("tcp://{}", node.p2p)
    } else {
        "tcp://0.0.0.0:26656".to_owned()
    };
    config.persistent_peers = nodes
        .iter()
        .enumerate()
        .filter(|(j, _)| *j != i)
        .map(|(_, peer)| format!("{}@{}", home::node_id(&peer.p2p_key), peer.p2p))
        .collect();
    config.timeout_commit = Duration::from_secs(1);
    config.prometheus_laddr = if args.local {
        format!("127.0.0.1:{}", 26660 + 100 * i)
    } else {
        ":26660".to_owned()
    };
    config
}

/// Writes the homes and returns a summary for the terminal.
pub fn run(args: &TestnetArgs) -> eyre::Result<String> {
    if args.validators == 0 {
        bail!("--validators must be at least 1");
    }
    if args.validators > 100 {
        bail!(
            "--validators {} is more than 100; write fewer homes",
            args.validators
        );
    }
    if args.output.exists()
        && std::fs::read_dir(&args.output)
            .wrap_err_with(|| format!("failed to read {}", args.output.display()))?
            .next()
            .is_some()
        && !args.force
    {
        bail!(
            "output directory {} is not empty; pass --force to overwrite",
            args.output.display()
        );
    }
    let app_state = read_app_state(&args.app_state)?;
    let nodes = generate_nodes(args);
    let validators: Vec<_> = nodes
        .iter()
        .map(|n| (n.name.clone(), n.validator_key.public_key(), args.power))
        .collect();
    let genesis = home::genesis(
        &args.chain_id,
        tendermint::Time::now(),
        &validators,
        app_state,
    )
    .wrap_err("failed to build the genesis")?;
    let mut summary = String::new();
    let _ = writeln!(
        summary,
        "wrote {} validator homes to {}",
        nodes.len(),
        args.output.display()
    );
    for (i, node) in nodes.iter().enumerate() {
        let dir = args.output.join(&node.name);
        home::write_validator_key(&dir, &node.validator_key)
            .wrap_err_with(|| format!("failed to write the keys of {}", node.name))?;
        home::write_node_key(&dir, &node.p2p_key)
            .wrap_err_with(|| format!("failed to write the node key of {}", node.name))?;
        home::write_genesis(&dir, &genesis)
            .wrap_err_with(|| format!("failed to write the genesis of {}", node.name))?;
        let config = node_config(args, &nodes, i);
        config
            .write(&dir)
            .wrap_err_with(|| format!("failed to write the config of {}", node.name))?;
        let _ = writeln!(
            summary,
            "  {}: id {} p2p {} rpc {} app {}",
            node.name,
            home::node_id(&node.p2p_key),
            node.p2p,
            node.rpc,
            node.app
        );
    }
    Ok(summary)
}
