//! Host overhead per block: empty blocks with `timeout_commit = 0` through `tandem-solo`,
//! against the same ABCI calls (`PrepareProposal`, `ProcessProposal`, `FinalizeBlock`, Commit) made
//! directly to the application. The difference is what the host adds per block: building and
//! hashing the header, signing the commit, the block store and event publishing.

#![allow(missing_docs, reason = "benchmark harness")]

#[path = "../tests/it/testapp.rs"]
#[allow(dead_code, reason = "shared with the integration tests")]
mod testapp;

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use tandem_solo::{abci::AppConnections, config::AppAddress, home, NodeConfig};
use tendermint::Time;
use tendermint_proto::v0_38::abci::{
    RequestFinalizeBlock, RequestInitChain, RequestPrepareProposal, RequestProcessProposal,
};
use tokio_util::sync::CancellationToken;

fn write_home(dir: &std::path::Path, app: std::net::SocketAddr) {
    let key = home::ed25519_key([7; 32]);
    home::write_validator_key(dir, &key).unwrap();
    home::write_node_key(dir, &home::ed25519_key([9; 32])).unwrap();
    let genesis = home::genesis(
        "bench",
        Time::now(),
        &[("solo".to_owned(), key.public_key(), 10)],
        serde_json::json!({}),
    )
    .unwrap();
    home::write_genesis(dir, &genesis).unwrap();
    let mut config = home::ConfigToml::one_second_blocks("solo", &format!("tcp://{app}"));
    "tcp://127.0.0.1:0".clone_into(&mut config.rpc_laddr);
    config.timeout_commit = Duration::ZERO;
    config.write(dir).unwrap();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("tandem-solo");

    // App only: the four consensus calls of an empty block, straight over the socket.
    let app = rt.block_on(testapp::TestApp::start());
    let cancel = CancellationToken::new();
    let conns = rt
        .block_on(AppConnections::connect(
            &AppAddress::Tcp(app.addr.to_string()),
            &cancel,
        ))
        .unwrap();
    rt.block_on(conns.consensus.init_chain(RequestInitChain::default()))
        .unwrap();
    let mut height = 0_i64;
    group.bench_function("app_only_empty_block", |b| {
        b.to_async(&rt).iter(|| {
            height += 1;
            let conns = conns.clone();
            let h = height;
            async move {
                conns
                    .consensus
                    .prepare_proposal(RequestPrepareProposal {
                        max_tx_bytes: 1 << 22,
                        height: h,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                conns
                    .consensus
                    .process_proposal(RequestProcessProposal {
                        height: h,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                conns
                    .consensus
                    .finalize_block(RequestFinalizeBlock {
                        height: h,
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                conns.consensus.commit().await.unwrap();
            }
        });
    });
    conns.close();
    rt.block_on(app.stop());

    // Through the host: time per committed block while it runs with timeout_commit = 0.
    let app = rt.block_on(testapp::TestApp::start());
    let dir = tempfile::tempdir().unwrap();
    write_home(dir.path(), app.addr);
    let node = rt
        .block_on(tandem_solo::start(NodeConfig::load(dir.path()).unwrap()))
        .unwrap();
    let committed = || app.committed_height();
    group.bench_function("host_empty_block", |b| {
        b.iter_custom(|iters| {
            let start_height = committed();
            let start = Instant::now();
            let target = start_height + i64::try_from(iters).unwrap();
            while committed() < target {
                std::thread::sleep(Duration::from_micros(50));
            }
            start.elapsed()
        });
    });
    group.finish();
    rt.block_on(node.shutdown()).unwrap();
    rt.block_on(app.stop());
}

criterion_group!(benches, bench);
criterion_main!(benches);
