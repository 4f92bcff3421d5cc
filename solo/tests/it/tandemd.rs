//! Against the real application: `tandemd` as a process under an in-process `tandem-solo`.
//! Commits verify with the light client, and a `tandemd` killed with SIGKILL is picked up again by
//! the handshake with the chain continuing on the same app hashes.

use std::{path::PathBuf, process::Stdio, time::Duration};

use tandem_solo::home;
use tendermint::{block::Height, Time};
use tendermint_rpc::{Client, HttpClient};
use tokio::process::{Child, Command};

use crate::support::{eventually, start_node, validator_key, wait_height};

const DEADLINE: Duration = Duration::from_mins(1);

/// The `tandemd` binary of this workspace: next to this test binary's `deps/` directory,
/// built on demand when a run selected only this crate.
fn tandemd_bin() -> PathBuf {
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Tandemd {
    home: PathBuf,
    abci: String,
    child: Option<Child>,
}

impl Tandemd {
    fn start(&mut self) {
        let child = Command::new(tandemd_bin())
            .arg("start")
            .arg("--home")
            .arg(&self.home)
            .args(["--abci-listen", &format!("tcp://{}", self.abci)])
            .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--metrics-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--log-filter", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn tandemd");
        self.child = Some(child);
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("SIGKILL tandemd");
        }
    }
}

async fn app_hash_chain_holds(client: &HttpClient, to: u64) {
    for h in 1..to {
        let results = client
            .block_results(Height::try_from(h).unwrap())
            .await
            .unwrap();
        let next = client
            .block(Height::try_from(h + 1).unwrap())
            .await
            .unwrap();
        assert_eq!(
            next.block.header.app_hash,
            results.app_hash,
            "header {} carries the app hash of block {h}",
            h + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandemd_under_solo_verifies_and_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let app_home = dir.path().join("tandemd");
    let status = Command::new(tandemd_bin())
        .args(["init", "--home"])
        .arg(&app_home)
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "tandemd init failed");
    let app_state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(app_home.join("genesis_app_state.json")).unwrap(),
    )
    .unwrap();

    let abci = format!("127.0.0.1:{}", free_port());
    let solo_home = dir.path().join("solo");
    let key = validator_key();
    home::write_validator_key(&solo_home, &key).unwrap();
    home::write_node_key(&solo_home, &home::ed25519_key([9; 32])).unwrap();
    let genesis = home::genesis(
        "tandem-solo-test",
        (Time::now() - Duration::from_secs(1)).unwrap(),
        &[("solo".to_owned(), key.public_key(), 10)],
        app_state,
    )
    .unwrap();
    home::write_genesis(&solo_home, &genesis).unwrap();
    let mut config = home::ConfigToml::one_second_blocks("solo", &format!("tcp://{abci}"));
    "tcp://127.0.0.1:0".clone_into(&mut config.rpc_laddr);
    config.timeout_commit = Duration::from_millis(20);
    config.write(&solo_home).unwrap();

    let mut app = Tandemd {
        home: app_home,
        abci,
        child: None,
    };
    app.start();
    let (node, client) = start_node(&solo_home, |_| {}).await;
    let h = wait_height(&client, 5, DEADLINE).await;
    let info = client.abci_info().await.unwrap();
    assert!(info.last_block_height.value() >= h - 1);

    // SIGKILL tandemd: the host reconnects once it is back and the chain continues.
    app.kill().await;
    app.start();
    let after = wait_height(&client, h + 5, DEADLINE).await;
    app_hash_chain_holds(&client, after).await;
    let mut previous = crate::light_client::light_block(&client, 1).await;
    for height in 2..=after {
        let next = crate::light_client::light_block(&client, height).await;
        assert_eq!(
            crate::light_client::verify(&previous, &next),
            tendermint_light_client_verifier::Verdict::Success,
            "height {height}"
        );
        previous = next;
    }
    let info = eventually("abci_info after restart", DEADLINE, || async {
        client.abci_info().await.ok()
    })
    .await;
    assert!(info.last_block_height.value() >= after - 1);

    node.shutdown().await.unwrap();
    app.kill().await;
}
