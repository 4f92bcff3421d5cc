//! The `tandem-evm` binary: starts from flags, serves both ports, exits cleanly on SIGTERM.

use std::{
    io::{BufRead as _, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use serde_json::json;

use crate::support::{post, request};

/// Kills the child if the test fails before it is stopped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn address_after(line: &str, key: &str) -> Option<std::net::SocketAddr> {
    let start = line.find(key)? + key.len();
    line[start..].split_whitespace().next()?.parse().ok()
}

/// Starts the binary on free loopback ports with the given JWT secret file and extra flags; the
/// receiver yields its log lines.
fn spawn(secret_path: &std::path::Path, extra: &[&std::ffi::OsStr]) -> (Child, Receiver<String>) {
    let mut child = Child(
        Command::new(env!("CARGO_BIN_EXE_tandem-evm"))
            .args([
                "--engine-addr",
                "127.0.0.1:0",
                "--rpc-addr",
                "127.0.0.1:0",
                "--log",
                "info",
            ])
            .arg("--jwt-secret")
            .arg(secret_path)
            .args(extra)
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, lines_rx)
}

/// The engine and RPC addresses from the line that says both servers listen.
fn listening(lines: &Receiver<String>) -> (SocketAddr, SocketAddr) {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no listening line");
        if let (Some(engine), Some(rpc)) = (
            address_after(&line, "engine_addr="),
            address_after(&line, "rpc_addr="),
        ) {
            return (engine, rpc);
        }
    }
}

/// Sends SIGTERM and asserts that the binary exits with success within 30 s.
fn terminate(child: &mut Child) {
    let status = tandem_testkit::terminate(&mut child.0, Duration::from_secs(30));
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn binary_serves_both_ports_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("jwt.hex");
    let secret_hex = "11".repeat(32);
    std::fs::write(&secret_path, &secret_hex).unwrap();
    let datadir = dir.path().join("data");
    let (mut child, lines) = spawn(&secret_path, &["--datadir".as_ref(), datadir.as_os_str()]);
    let (engine, rpc) = listening(&lines);

    let (status, body) = post(rpc, &request("eth_chainId", &json!([])), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"0x539\""), "{body}");
    let secret = tandem_evm::jwt::parse_secret(&secret_hex).unwrap();
    let token = secret
        .encode(&alloy_rpc_types_engine::Claims::with_current_timestamp())
        .unwrap();
    let call = request("engine_exchangeCapabilities", &json!([[]]));
    assert_eq!(
        post(engine, &call, Some(&format!("Bearer {token}")))
            .await
            .0,
        200
    );
    assert_eq!(post(engine, &call, None).await.0, 401);

    terminate(&mut child);
    assert!(datadir.join("genesis_hash").exists());
}

/// The handlers are in place by the time the node says it listens: a SIGTERM sent at once is a
/// clean shutdown, never the default action's kill. (Installed after the servers started, one
/// start in three died of the signal on a loaded machine.)
#[tokio::test]
async fn sigterm_as_soon_as_the_node_listens_is_a_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("jwt.hex");
    std::fs::write(&secret_path, "22".repeat(32)).unwrap();
    for _ in 0..8 {
        let (mut child, lines) = spawn(&secret_path, &[]);
        listening(&lines);
        terminate(&mut child);
    }
}
