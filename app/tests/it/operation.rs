//! Operating `tandemd`: `init`, `/metrics`, `SIGTERM` and exit codes, on the real binary.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    process::Command,
    time::Duration,
};

use tandem_app::GenesisAppState;
use tendermint_proto::v0_38::abci::{self as pb, request as raw_request, response as raw_response};

use crate::{
    node::{finalize_request, key, rollup, signed_tx, submit, Driver, Node},
    support::RawClient,
};

fn tandemd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tandemd"))
}

fn get_metrics(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"),
        "{response}"
    );
    response
}

#[test]
fn init_writes_a_config_and_a_genesis_template() {
    let home = tempfile::tempdir().unwrap();
    let home_arg = home.path().join("node");
    let output = tandemd()
        .args(["init", "--home", home_arg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let config = std::fs::read_to_string(home_arg.join("config.toml")).unwrap();
    assert_eq!(
        tandem_app::config::Config::from_toml(&config).unwrap(),
        tandem_app::config::Config::default()
    );
    let genesis = std::fs::read(home_arg.join("genesis_app_state.json")).unwrap();
    let parsed: GenesisAppState = serde_json::from_slice(&genesis).unwrap();
    assert_eq!(parsed, GenesisAppState::example());

    // A second init refuses to overwrite; --force does.
    let again = tandemd()
        .args(["init", "--home", home_arg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = tandemd()
        .args(["init", "--force"])
        .env("TANDEM_TANDEMD_HOME", &home_arg)
        .output()
        .unwrap();
    assert!(forced.status.success(), "{forced:?}");

    // Usage errors exit 2 (clap), bad configuration exits 1.
    let usage = tandemd()
        .args(["start", "--no-such-flag"])
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let bad = tandemd()
        .args([
            "start",
            "--home",
            home_arg.to_str().unwrap(),
            "--cometbft-rpc",
            "ftp://x",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ftp://x"));
}

/// A `tandemd` on `home` with a consensus driver that has run InitChain.
fn initialized(home: &std::path::Path) -> (Node, Driver) {
    let node = Node::start(home, "http://127.0.0.1:9");
    let mut driver = Driver::connect(&node);
    driver.init_chain();
    (node, driver)
}

#[test]
fn metrics_endpoint_shows_the_named_series_after_some_blocks() {
    let home = tempfile::tempdir().unwrap();
    let (node, mut driver) = initialized(home.path());
    let alice = key("alice");
    let mut mempool = node.client();
    let accepted = mempool
        .check_tx(pb::RequestCheckTx {
            tx: signed_tx(&alice, 0, 0, vec![submit(&alice, rollup("m"), b"x")]).into(),
            r#type: 0,
        })
        .unwrap();
    assert_eq!(accepted.code, 0, "{}", accepted.log);
    let rejected = mempool
        .check_tx(pb::RequestCheckTx {
            tx: b"junk".to_vec().into(),
            r#type: 0,
        })
        .unwrap();
    assert_ne!(rejected.code, 0);
    let too_high = mempool
        .check_tx(pb::RequestCheckTx {
            tx: signed_tx(&alice, 0, 5, vec![submit(&alice, rollup("m"), b"x")]).into(),
            r#type: 0,
        })
        .unwrap();
    assert_eq!(too_high.code, tandem_app::codes::SEQUENCE_TOO_HIGH);
    for sequence in 0..3 {
        driver.block(vec![signed_tx(
            &alice,
            0,
            sequence,
            vec![submit(&alice, rollup("m"), &[7; 100])],
        )]);
    }
    let text = get_metrics(node.metrics);
    let rollup_hex = rollup("m").to_string();
    for expected in [
        "tandem_height 3".to_owned(),
        "tandem_block_txs 2".to_owned(),
        "tandem_committed_txs_total 6".to_owned(),
        format!("tandem_block_rollup_bytes_total{{rollup_id=\"{rollup_hex}\"}} 300"),
        "tandem_check_tx_total{result=\"accepted\"".to_owned(),
        "tandem_check_tx_total{result=\"rejected\"".to_owned(),
        "tandem_block_phase_seconds_count{phase=\"finalize_block\"} 3".to_owned(),
        "tandem_block_phase_seconds_count{phase=\"commit\"} 3".to_owned(),
        "tandem_block_phase_seconds_bucket{".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing `{expected}` in:\n{text}");
    }
    // One rejection counted under each reason.
    for reason in ["malformed", "sequence_too_high"] {
        let label = format!("reason=\"{reason}\"");
        assert!(
            text.lines()
                .any(|line| line.starts_with("tandem_check_tx_total{")
                    && line.contains("result=\"rejected\"")
                    && line.contains(&label)
                    && line.ends_with(" 1")),
            "no rejection counted as `{reason}` in:\n{text}"
        );
    }
}

#[test]
fn sigterm_shuts_down_cleanly_and_the_state_survives() {
    let home = tempfile::tempdir().unwrap();
    let (mut node, mut driver) = initialized(home.path());
    let alice = key("alice");
    let (_, finalized) = driver.block(vec![signed_tx(
        &alice,
        0,
        0,
        vec![submit(&alice, rollup("t"), b"x")],
    )]);
    let status = node.terminate();
    assert_eq!(status.code(), Some(0), "{}", node.logs());
    assert!(node.logs().contains("tandemd stopped"), "{}", node.logs());

    let node = Node::start(home.path(), "http://127.0.0.1:9");
    let info = Driver::connect(&node).info();
    assert_eq!(info.last_block_height, 1);
    assert_eq!(info.last_block_app_hash, finalized.app_hash);
}

/// SIGTERM while a FinalizeBlock runs: the block is finished and answered, then tandemd
/// exits 0; the block was not committed, so a restart reports the previous height.
#[test]
fn sigterm_during_finalize_block_answers_it_then_stops_cleanly() {
    const TXS: u64 = 2_000;
    let alice = key("alice");
    // A proposer node builds the block; the node under test never saw its txs, so its
    // FinalizeBlock verifies every signature and runs long enough to be interrupted.
    let proposer_home = tempfile::tempdir().unwrap();
    let (_proposer, mut proposing) = initialized(proposer_home.path());
    let candidates = (0..TXS)
        .map(|sequence| signed_tx(&alice, 0, sequence, vec![submit(&alice, rollup("s"), b"x")]))
        .collect();
    let txs = proposing.propose(candidates);
    assert_eq!(txs.len() as u64, TXS + 1);
    let expected = proposing.finalize(&txs);

    let home = tempfile::tempdir().unwrap();
    let (mut node, mut driver) = initialized(home.path());
    driver
        .consensus
        .send(raw_request::Value::FinalizeBlock(finalize_request(1, &txs)));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let text = get_metrics(node.metrics);
        if text.contains("tandem_block_phase_in_progress{phase=\"finalize_block\"} 1") {
            break;
        }
        assert!(
            !text.contains("tandem_block_phase_seconds_count{phase=\"finalize_block\"} 1"),
            "FinalizeBlock ended before it was seen running"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "FinalizeBlock never started"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let sent = Command::new("kill")
        .args(["-TERM", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());

    let Some(raw_response::Value::FinalizeBlock(finalized)) = driver.consensus.receive() else {
        panic!(
            "the FinalizeBlock in flight was not answered:\n{}",
            node.logs()
        )
    };
    assert_eq!(finalized.app_hash, expected.app_hash);
    assert_eq!(finalized.tx_results.len() as u64, TXS + 1);
    let status = node.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", node.logs());

    let node = Node::start(home.path(), "http://127.0.0.1:9");
    let info = Driver::connect(&node).info();
    assert_eq!(info.last_block_height, 0, "the block was never committed");
}

#[test]
fn an_application_error_on_a_consensus_call_exits_3_without_answering() {
    let home = tempfile::tempdir().unwrap();
    let (mut node, mut driver) = initialized(home.path());
    // Commit without FinalizeBlock is out of order: the app refuses, the node stops.
    driver
        .consensus
        .send(raw_request::Value::Commit(pb::RequestCommit {}));
    assert_eq!(driver.consensus.receive(), None, "nothing may be answered");
    let status = node.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(3), "{}", node.logs());
    // The log names the failing call, the last finalized height and the app's reason.
    let logs = node.logs();
    for needle in [
        "application failed on commit (last finalized height None)",
        "Commit without FinalizeBlock",
    ] {
        assert!(logs.contains(needle), "missing `{needle}` in:\n{logs}");
    }
}

#[test]
fn serves_abci_on_a_unix_socket_and_removes_it_at_shutdown() {
    let home = tempfile::tempdir().unwrap();
    let socket = home.path().join("abci.sock");
    let mut child = tandemd()
        .arg("start")
        .args(["--home", home.path().to_str().unwrap()])
        .args(["--abci-listen", &format!("unix://{}", socket.display())])
        .args(["--grpc-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stream = None;
    crate::node::wait_until(Duration::from_mins(1), "the ABCI unix socket", || {
        stream = std::os::unix::net::UnixStream::connect(&socket).ok();
        stream.is_some()
    });
    let mut client = RawClient::new(stream.unwrap());
    let echo = client.call(raw_request::Value::Echo(pb::RequestEcho {
        message: "unix".to_owned(),
    }));
    assert_eq!(
        echo,
        raw_response::Value::Echo(pb::ResponseEcho {
            message: "unix".to_owned()
        })
    );
    let raw_response::Value::Info(info) =
        client.call(raw_request::Value::Info(pb::RequestInfo::default()))
    else {
        panic!("expected Info")
    };
    assert_eq!(info.last_block_height, 0);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut exit = None;
    crate::node::wait_until(Duration::from_secs(30), "tandemd to exit", || {
        exit = child.try_wait().unwrap();
        exit.is_some()
    });
    assert_eq!(exit.unwrap().code(), Some(0));
    assert!(!socket.exists(), "the socket file is removed at shutdown");
}
