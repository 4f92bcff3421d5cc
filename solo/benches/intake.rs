//! Sustained intake: txs per second accepted through `broadcast_tx_sync` by `tandem-solo` in
//! front of a real `tandemd` (release build), from 4 concurrent clients sending signed txs
//! with 256 bytes of rollup data, while the host keeps making blocks (`timeout_commit` 1 s).
//!
//! The ceiling is the same one as the `tandemd` CheckTx benchmark: raw secp256k1 verification
//! of the same sign docs on one core (CheckTx is serialized by the application), measured in
//! this run. `cargo bench -p tandem-solo --bench intake`.

#![allow(missing_docs, reason = "benchmark harness")]

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use k256::ecdsa::{signature::Verifier as _, Signature, VerifyingKey};
use tandem_core::{
    Message, ParsedTx, RollupId, SigningKey, SubmitRollupData, TxBuilder, NATIVE_DENOM,
};
use tandem_solo::{home, NodeConfig};
use tendermint::Time;
use tendermint_rpc::{Client, HttpClient};

const CHAIN_ID: &str = "intake-bench";
const CLIENTS: usize = 4;
const SIGNERS_PER_CLIENT: usize = 25;
/// Txs each client sends per iteration.
const PER_CLIENT: usize = 500;
const DATA_BYTES: usize = 256;

struct Signer {
    key: SigningKey,
    number: u64,
    sequence: u64,
}

fn signers() -> Vec<Signer> {
    (0..CLIENTS * SIGNERS_PER_CLIENT)
        .map(|i| Signer {
            key: SigningKey::secp256k1_from_seed(format!("intake-{i}").as_bytes()),
            number: i as u64,
            sequence: 0,
        })
        .collect()
}

fn tx(signer: &mut Signer) -> Vec<u8> {
    let tx = TxBuilder::new(CHAIN_ID, signer.number, signer.sequence)
        .message(Message::SubmitRollupData(SubmitRollupData {
            signer: signer.key.address(),
            rollup_id: RollupId::from_name(&format!("rollup-{}", signer.number % 4)),
            data: vec![0xab; DATA_BYTES],
        }))
        .fee(1_000_000)
        .sign(&signer.key)
        .expect("valid key");
    signer.sequence += 1;
    tx
}

/// `PER_CLIENT` txs for each client, round-robin over that client's own signers (so every
/// client's txs are in sequence order for their signers, and clients never share a signer).
fn batches(signers: &mut [Signer]) -> Vec<Vec<Vec<u8>>> {
    signers
        .chunks_mut(SIGNERS_PER_CLIENT)
        .map(|own| {
            (0..PER_CLIENT)
                .map(|i| tx(&mut own[i % SIGNERS_PER_CLIENT]))
                .collect()
        })
        .collect()
}

/// The release `tandemd` next to this bench binary, built when missing.
fn tandemd_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("bench binary path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("bench binary lives in <target>/release/deps");
    let bin = dir.join("tandemd");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .args(["build", "--release", "-p", "tandem-app", "--bin", "tandemd"])
            .status()
            .expect("run cargo build for tandemd");
        assert!(status.success(), "failed to build tandemd");
    }
    bin
}

/// Starts `tandemd` on a kernel-chosen ABCI port and returns it with that address, read from
/// its "tandemd is running" log line.
#[expect(
    clippy::zombie_processes,
    reason = "the child is returned to the caller, which kills and waits for it"
)]
fn start_tandemd(home: &Path) -> (std::process::Child, String) {
    let status = std::process::Command::new(tandemd_bin())
        .args(["init", "--home"])
        .arg(home)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let log = home.join("tandemd.log");
    let mut child = std::process::Command::new(tandemd_bin())
        .arg("start")
        .arg("--home")
        .arg(home)
        .args(["--abci-listen", "tcp://127.0.0.1:0"])
        .args(["--grpc-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(["--log-filter", "info"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(addr) = text
            .lines()
            .find(|l| l.contains("tandemd is running"))
            .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("abci=")))
        {
            return (child, addr.to_owned());
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tandemd did not start:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn write_home(dir: &Path, abci: &str, signers: &[Signer]) {
    let key = home::ed25519_key([7; 32]);
    home::write_validator_key(dir, &key).unwrap();
    home::write_node_key(dir, &home::ed25519_key([9; 32])).unwrap();
    let accounts: Vec<serde_json::Value> = signers
        .iter()
        .map(|s| {
            serde_json::json!({
                "address": s.key.address().to_string(),
                "coins": [{"denom": NATIVE_DENOM, "amount": "1000000000000000"}]
            })
        })
        .collect();
    let app_state = serde_json::json!({
        "accounts": accounts,
        "params": tandem_core::Params::default(),
        "authority": signers[0].key.address().to_string(),
        "fee_collector": SigningKey::secp256k1_from_seed(b"intake-fees").address().to_string(),
    });
    let genesis = home::genesis(
        CHAIN_ID,
        Time::now(),
        &[("solo".to_owned(), key.public_key(), 10)],
        app_state,
    )
    .unwrap();
    home::write_genesis(dir, &genesis).unwrap();
    let mut config = home::ConfigToml::one_second_blocks("solo", abci);
    "tcp://127.0.0.1:0".clone_into(&mut config.rpc_laddr);
    config.write(dir).unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut signers = signers();
    let (mut tandemd, abci) = start_tandemd(&dir.path().join("tandemd"));
    let solo_home = dir.path().join("solo");
    write_home(&solo_home, &abci, &signers);
    let mut config = NodeConfig::load(&solo_home).unwrap();
    config.mempool.max_txs = 1_000_000;
    config.mempool.max_txs_bytes = 1 << 30;
    let node = rt.block_on(tandem_solo::start(config)).unwrap();
    let url = format!("http://{}", node.rpc_addr());

    // The ceiling: raw verification of a batch of the same txs' sign docs, on one core.
    let sample: Vec<Vec<u8>> = batches(&mut signers_copy(&signers)).concat();
    let raw: Vec<(VerifyingKey, Vec<u8>, Signature)> = sample
        .iter()
        .map(|tx| {
            let parsed = ParsedTx::decode(tx, 1 << 20).unwrap();
            let number = signers
                .iter()
                .find(|s| s.key.address() == parsed.signer())
                .unwrap()
                .number;
            (
                VerifyingKey::from_sec1_bytes(parsed.public_key().as_bytes()).unwrap(),
                parsed.sign_doc_bytes(CHAIN_ID, number),
                Signature::from_slice(parsed.signature()).unwrap(),
            )
        })
        .collect();

    let mut group = c.benchmark_group("tandem-solo/intake_256B");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Elements((CLIENTS * PER_CLIENT) as u64));
    group.bench_function("raw_secp256k1_verify_one_core", |b| {
        b.iter(|| {
            for (key, doc, sig) in &raw {
                assert!(key.verify(doc, sig).is_ok());
            }
        });
    });
    group.bench_function("broadcast_tx_sync_4_clients", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batches = batches(&mut signers);
                let url = url.clone();
                total += rt.block_on(async move {
                    let start = Instant::now();
                    let clients: Vec<_> = batches
                        .into_iter()
                        .map(|txs| {
                            let client = HttpClient::new(url.as_str()).unwrap();
                            tokio::spawn(async move {
                                for tx in txs {
                                    let r = client.broadcast_tx_sync(tx).await.unwrap();
                                    assert!(r.code.is_ok(), "refused: {}", r.log);
                                }
                            })
                        })
                        .collect();
                    for client in clients {
                        client.await.unwrap();
                    }
                    start.elapsed()
                });
            }
            total
        });
    });
    group.finish();
    rt.block_on(node.shutdown()).unwrap();
    let _ = tandemd.kill();
    let _ = tandemd.wait();
}

/// Fresh signers at sequence 0 with the same keys, for the ceiling's sample.
fn signers_copy(signers: &[Signer]) -> Vec<Signer> {
    signers
        .iter()
        .map(|s| Signer {
            key: s.key.clone(),
            number: s.number,
            sequence: 0,
        })
        .collect()
}

criterion_group!(benches, bench);
criterion_main!(benches);
