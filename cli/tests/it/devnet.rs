//! `tandem devnet` as a user runs it: the real binary on free loopback ports, a transfer signed
//! with the development key, `SIGTERM`, and a second run that resumes the same chain.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use tandem_core::{Coin, Message, Send, SigningKey, TxBuilder, NATIVE_DENOM};
use tendermint_rpc::{Client as _, HttpClient};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const DEADLINE: Duration = Duration::from_mins(2);

/// A port for a process this test restarts on it (see `tandem_testkit::restartable_port`).
fn free_port() -> u16 {
    tandem_testkit::restartable_port()
}

/// The ports one devnet run uses.
struct Ports {
    rpc: u16,
    eth_rpc: u16,
    args: Vec<String>,
}

impl Ports {
    fn free() -> Self {
        let [rpc, abci, grpc, metrics, eth_rpc, engine] = std::array::from_fn(|_| free_port());
        let args = [
            ("--rpc-port", rpc),
            ("--abci-port", abci),
            ("--grpc-port", grpc),
            ("--metrics-port", metrics),
            ("--eth-rpc-port", eth_rpc),
            ("--engine-port", engine),
        ]
        .into_iter()
        .flat_map(|(flag, port)| [flag.to_owned(), port.to_string()])
        .collect();
        Self { rpc, eth_rpc, args }
    }
}

/// A running `tandem devnet`, killed on drop.
struct Devnet {
    child: Option<Child>,
    stdout: mpsc::Receiver<String>,
}

impl Devnet {
    fn spawn(home: &Path, ports: &Ports) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("devnet")
            .arg("--home")
            .arg(home)
            .args(["--block-time", "100ms", "--log", "warn"])
            .args(&ports.args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, stdout) = mpsc::channel();
        let out = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child: Some(child),
            stdout,
        }
    }

    /// Waits for the summary the devnet prints once its first block is committed.
    fn summary(&self) -> String {
        let end = Instant::now() + DEADLINE;
        let mut text = String::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = self
                .stdout
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no summary within {DEADLINE:?} ({e}); got:\n{text}"));
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("Ctrl-C stops the devnet") {
                return text;
            }
        }
    }

    /// Sends `SIGTERM` and waits, with a deadline, for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        tandem_testkit::terminate(&mut child, DEADLINE)
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The development account's sequence, through ABCI Query.
async fn dev_sequence(client: &HttpClient) -> u64 {
    let dev = SigningKey::secp256k1_from_seed(tandem_cli::devnet::DEV_SEED).address();
    let answer = client
        .abci_query(Some(format!("/tandem/sequence/{dev}")), vec![], None, false)
        .await
        .unwrap();
    assert!(answer.code.is_ok(), "{answer:?}");
    let value: serde_json::Value = serde_json::from_slice(&answer.value).unwrap();
    value["sequence"].as_u64().unwrap()
}

/// `eth_chainId` over one HTTP/1.1 POST.
async fn eth_chain_id(port: u16) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    };
    let response = tokio::time::timeout(DEADLINE, io).await.unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    value["result"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devnet_runs_the_stack_and_resumes_after_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("devnet");
    let ports = Ports::free();
    let mut devnet = Devnet::spawn(&home, &ports);
    let summary = devnet.summary();
    let dev = SigningKey::secp256k1_from_seed(tandem_cli::devnet::DEV_SEED);
    assert!(summary.contains(&dev.address().to_string()), "{summary}");
    assert!(
        summary.contains(&format!("http://127.0.0.1:{}", ports.rpc)),
        "{summary}"
    );

    // A transfer signed with the development key lands in a block.
    let client = HttpClient::new(format!("http://127.0.0.1:{}", ports.rpc).as_str()).unwrap();
    let to = SigningKey::secp256k1_from_seed(b"devnet-test-recipient").address();
    let tx = TxBuilder::new("tandem-devnet", 0, 0)
        .message(Message::Send(Send {
            from: dev.address(),
            to,
            amount: vec![Coin {
                denom: NATIVE_DENOM.to_owned(),
                amount: 5,
            }],
        }))
        .fee(1_000_000)
        .sign(&dev)
        .unwrap();
    let committed = tokio::time::timeout(DEADLINE, client.broadcast_tx_commit(tx))
        .await
        .unwrap()
        .unwrap();
    assert!(committed.check_tx.code.is_ok(), "{:?}", committed.check_tx);
    assert!(
        committed.tx_result.code.is_ok(),
        "{:?}",
        committed.tx_result
    );
    assert_eq!(dev_sequence(&client).await, 1);
    // tandem-evm serves its development chain beside the sequencer.
    assert_eq!(eth_chain_id(ports.eth_rpc).await, "0x539");

    assert!(devnet.terminate().success());

    // The second run resumes the same chain from the home directory.
    let ports = Ports::free();
    let devnet = Devnet::spawn(&home, &ports);
    devnet.summary();
    let client = HttpClient::new(format!("http://127.0.0.1:{}", ports.rpc).as_str()).unwrap();
    let status = client.status().await.unwrap();
    assert!(
        status.sync_info.latest_block_height.value() > committed.height.value(),
        "resumed at {} after the transfer at {}",
        status.sync_info.latest_block_height,
        committed.height
    );
    assert_eq!(dev_sequence(&client).await, 1);
    // The tx index, events included, was rebuilt from the block store: the transfer is found
    // by its sender, as explorers and cosmjs's `searchTx` look for it.
    let by_sender = client
        .tx_search(
            tendermint_rpc::query::Query::eq("message.sender", dev.address().to_string()),
            false,
            1,
            30,
            tendermint_rpc::Order::Ascending,
        )
        .await
        .unwrap();
    assert_eq!(by_sender.total_count, 1);
    assert_eq!(by_sender.txs[0].hash, committed.hash);
}

#[test]
fn devnet_refuses_a_home_that_is_not_a_devnet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .arg("devnet")
        .arg("--home")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("holds no devnet") && stderr.contains("--reset"),
        "{stderr}"
    );
    assert!(dir.path().join("notes.txt").exists(), "nothing was deleted");
}

/// The cosmjs project in `tests/cosmjs` (installed by `scripts/setup`).
fn cosmjs_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/cosmjs")
}

/// Stock cosmjs against the devnet, as a wallet or dapp uses it: `tests/cosmjs/interop.mjs`
/// queries accounts and balances, sends a transfer and a two-rollup bundle with
/// `SigningStargateClient` (also with fee `"auto"`), finds them with `getTx` and `searchTx`
/// (by height and by event), and calls the CometBFT RPC methods cosmjs's v0.38 client has and
/// tandem-solo serves, over HTTP and WebSocket. The key it signs with is the one the devnet
/// prints.
#[test]
fn cosmjs_drives_the_devnet() {
    let dir = cosmjs_dir();
    assert!(
        dir.join("node_modules/@cosmjs/stargate").is_dir(),
        "cosmjs is not installed in {}: run scripts/setup (it runs `npm ci` there)",
        dir.display()
    );
    let home = tempfile::tempdir().unwrap();
    let ports = Ports::free();
    let devnet = Devnet::spawn(&home.path().join("devnet"), &ports);
    let summary = devnet.summary();
    let secret = summary
        .lines()
        .find_map(|line| line.trim().strip_prefix("secp256k1 secret"))
        .map_or_else(|| panic!("no secret in the summary:\n{summary}"), str::trim);

    let node = Command::new("node")
        .current_dir(&dir)
        .arg("interop.mjs")
        .arg(format!("http://127.0.0.1:{}", ports.rpc))
        .arg(secret)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node (scripts/setup installs Node.js): {e}"));
    // Both pipes are drained while waiting, so a chatty failure cannot block the child.
    let pid = node.id().to_string();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || done.send(node.wait_with_output()));
    let output = if let Ok(output) = finished.recv_timeout(DEADLINE) {
        output.unwrap()
    } else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        let output = finished.recv().unwrap().unwrap();
        panic!(
            "interop.mjs did not finish within {DEADLINE:?}:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let status = output.status;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        status.success() && stdout.contains("cosmjs interop: all checks passed"),
        "interop.mjs failed ({status}):\n{stdout}\n{stderr}"
    );
    drop(devnet);
}
