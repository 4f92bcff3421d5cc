//! Shared helpers: homes, nodes, polling with deadlines.

use std::{future::Future, path::Path, time::Duration};

use tandem_solo::{home, NodeConfig, NodeHandle};

use crate::testapp::TestApp;
use tendermint::{PrivateKey, Time};
use tendermint_rpc::{Client, HttpClient};

pub(crate) const CHAIN_ID: &str = "solo-test";

pub(crate) fn validator_key() -> PrivateKey {
    home::ed25519_key([7; 32])
}

/// Writes a `CometBFT` home for one validator whose app listens on `app`.
pub(crate) fn write_home(
    dir: &Path,
    app: std::net::SocketAddr,
    timeout_commit: Duration,
    empty_blocks: bool,
) {
    let key = validator_key();
    home::write_validator_key(dir, &key).unwrap();
    home::write_node_key(dir, &home::ed25519_key([9; 32])).unwrap();
    let genesis_time = (Time::now() - Duration::from_secs(1)).unwrap();
    let genesis = home::genesis(
        CHAIN_ID,
        genesis_time,
        &[("solo".to_owned(), key.public_key(), 10)],
        serde_json::json!({}),
    )
    .unwrap();
    home::write_genesis(dir, &genesis).unwrap();
    let mut config = home::ConfigToml::one_second_blocks("solo", &format!("tcp://{app}"));
    "tcp://127.0.0.1:0".clone_into(&mut config.rpc_laddr);
    config.timeout_commit = timeout_commit;
    config.create_empty_blocks = empty_blocks;
    config.write(dir).unwrap();
}

pub(crate) async fn start_node(
    dir: &Path,
    tweak: impl FnOnce(&mut NodeConfig),
) -> (NodeHandle, HttpClient) {
    // Logs are off unless RUST_LOG is set.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let mut config = NodeConfig::load(dir).expect("load home");
    tweak(&mut config);
    let node = tandem_solo::start(config).await.expect("start node");
    let url = format!("http://{}", node.rpc_addr());
    let client = HttpClient::new(url.as_str()).unwrap();
    (node, client)
}

/// A running [`TestApp`], the node's home directory (removed on drop), the node, its client.
pub(crate) type TestNode = (TestApp, tempfile::TempDir, NodeHandle, HttpClient);

/// Starts a [`TestApp`] and a node over it with `timeout_commit` between blocks (and empty
/// blocks when `empty_blocks`), `tweak` applied to its configuration.
pub(crate) async fn start_test_node(
    timeout_commit: Duration,
    empty_blocks: bool,
    tweak: impl FnOnce(&mut NodeConfig),
) -> TestNode {
    let app = TestApp::start().await;
    let dir = tempfile::tempdir().unwrap();
    write_home(dir.path(), app.addr, timeout_commit, empty_blocks);
    let (node, client) = start_node(dir.path(), tweak).await;
    (app, dir, node, client)
}

/// Polls `f` until it returns `Some`, failing after `deadline`.
pub(crate) async fn eventually<T, F, Fut>(what: &str, deadline: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        // One attempt may not outlive the deadline (an RPC call can hang on a node that is
        // restarting).
        if let Ok(Some(v)) = tokio::time::timeout_at(end, f()).await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn height(client: &HttpClient) -> Option<u64> {
    client
        .status()
        .await
        .ok()
        .map(|s| s.sync_info.latest_block_height.value())
}

pub(crate) async fn wait_height(client: &HttpClient, h: u64, deadline: Duration) -> u64 {
    eventually(&format!("height {h}"), deadline, || async {
        height(client).await.filter(|x| *x >= h)
    })
    .await
}

/// Sends a raw JSON-RPC request over HTTP/1.1 and returns the parsed body.
/// The app hash of an `abci_info` answer. `CometBFT` writes it as base64, like every byte
/// field, and tendermint-rs 0.40 keeps that field's JSON string as its bytes (its own
/// serializer writes an array of numbers), so the base64 text is decoded here.
pub(crate) fn abci_info_app_hash(info: &tendermint::abci::response::Info) -> Vec<u8> {
    let text = std::str::from_utf8(info.last_block_app_hash.as_bytes())
        .expect("abci_info's app hash is base64 text");
    tendermint::serializers::bytes::base64string::deserialize(serde_json::Value::String(
        text.to_owned(),
    ))
    .expect("abci_info's app hash is base64")
}

pub(crate) async fn raw_rpc(addr: std::net::SocketAddr, body: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (_, body) = text.split_once("\r\n\r\n").unwrap();
    serde_json::from_str(body).unwrap()
}

/// A URI request (`GET /<path_and_query>`), as curl sends it; the JSON answer.
pub(crate) async fn raw_get(addr: std::net::SocketAddr, path_and_query: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request =
        format!("GET /{path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (_, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP body: {text}"));
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The `tandemd` binary of this workspace: next to this test binary's `deps/` directory,
/// built on demand when a run selected only this crate.
pub(crate) fn tandemd_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("test binary lives in <target>/<profile>/deps");
    let bin = profile_dir.join("tandemd");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "-p", "tandem-app", "--bin", "tandemd"])
            .status()
            .expect("run cargo build for tandemd");
        assert!(status.success(), "failed to build tandemd");
    }
    assert!(bin.exists(), "tandemd not found at {}", bin.display());
    bin
}

/// A `tandemd` process. Its first start takes an ABCI port from the kernel (port 0) and reads
/// it from the "tandemd is running" log line; restarts bind the same port, so the host's
/// `proxy_app` stays valid. gRPC and metrics always take kernel-chosen ports.
pub(crate) struct Tandemd {
    home: std::path::PathBuf,
    abci: Option<std::net::SocketAddr>,
    child: Option<tokio::process::Child>,
    starts: usize,
}

impl Tandemd {
    /// Runs `tandemd init` in `home`.
    pub(crate) async fn init(home: &Path) -> Self {
        let status = tokio::process::Command::new(tandemd_bin())
            .args(["init", "--home"])
            .arg(home)
            .stdout(std::process::Stdio::null())
            .status()
            .await
            .unwrap();
        assert!(status.success(), "tandemd init failed");
        Self {
            home: home.to_owned(),
            abci: None,
            child: None,
            starts: 0,
        }
    }

    /// Starts the process and waits (with a deadline) until it reports its addresses;
    /// returns the ABCI address.
    pub(crate) async fn start(&mut self) -> std::net::SocketAddr {
        let log = self.home.join(format!("tandemd-{}.log", self.starts));
        self.starts += 1;
        let abci = self
            .abci
            .map_or_else(|| "127.0.0.1:0".to_owned(), |a| a.to_string());
        let child = tokio::process::Command::new(tandemd_bin())
            .arg("start")
            .arg("--home")
            .arg(&self.home)
            .args(["--abci-listen", &format!("tcp://{abci}")])
            .args(["--grpc-listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--log-filter", "info"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tandemd");
        self.child = Some(child);
        let child = self.child.as_mut().unwrap();
        let addr = eventually(
            "tandemd to report its addresses",
            Duration::from_mins(1),
            || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("tandemd exited with {status}:\n{text}");
                }
                let found = text
                    .lines()
                    .find(|l| l.contains("tandemd is running"))
                    .and_then(|line| {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix("abci=tcp://"))
                            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                    });
                async move { found }
            },
        )
        .await;
        self.abci = Some(addr);
        addr
    }

    /// SIGKILL, and reap.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL tandemd");
        }
    }
}

/// A `CometBFT` home for one validator (key [`validator_key`], power 10) whose app is the
/// `tandemd` at `app`, with `app_state` as the genesis application state.
pub(crate) fn write_tandemd_home(
    dir: &Path,
    app: std::net::SocketAddr,
    app_state: serde_json::Value,
    timeout_commit: Duration,
) {
    let key = validator_key();
    home::write_validator_key(dir, &key).unwrap();
    home::write_node_key(dir, &home::ed25519_key([9; 32])).unwrap();
    let genesis = home::genesis(
        CHAIN_ID,
        (Time::now() - Duration::from_secs(1)).unwrap(),
        &[("solo".to_owned(), key.public_key(), 10)],
        app_state,
    )
    .unwrap();
    home::write_genesis(dir, &genesis).unwrap();
    let mut config = home::ConfigToml::one_second_blocks("solo", &format!("tcp://{app}"));
    "tcp://127.0.0.1:0".clone_into(&mut config.rpc_laddr);
    config.timeout_commit = timeout_commit;
    config.write(dir).unwrap();
}
