//! Crash safety with real processes: `SIGKILL` `tandemd` between `FinalizeBlock` and Commit, and
//! during Commit, then restart it on the same home and check what Info reports.

use std::time::Duration;

use bytes::Bytes;
use tendermint_proto::v0_38::abci::{self as pb, request as raw_request};

use crate::node::{header, key, rollup, signed_tx, submit, Driver, Node};

/// The block hash and rollup data count of the sequencer block `node` serves over gRPC at
/// `height`: stored in the same atomic write as the state, so it must exist exactly when
/// Info reports that height.
fn served_block(node: &Node, height: u64) -> Result<([u8; 32], usize), tonic::Code> {
    use tandem_proto::sequencerblock::v1::{
        sequencer_service_client::SequencerServiceClient, GetSequencerBlockRequest,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(format!("http://{}", node.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let raw = SequencerServiceClient::new(channel)
            .get_sequencer_block(GetSequencerBlockRequest { height })
            .await
            .map_err(|status| status.code())?
            .into_inner();
        let block = tandem_core::SequencerBlock::try_from_raw(raw).unwrap();
        let data: usize = block
            .rollup_transactions()
            .iter()
            .map(|r| r.transactions().len())
            .sum();
        Ok((*block.block_hash(), data))
    })
}

fn data_txs(sequence_start: u64, count: u64, size: usize) -> Vec<Vec<u8>> {
    let alice = key("alice");
    (0..count)
        .map(|i| {
            let sequence = sequence_start + i;
            let data = vec![u8::try_from(sequence % 251).unwrap(); size];
            signed_tx(
                &alice,
                0,
                sequence,
                vec![submit(&alice, rollup("crash"), &data)],
            )
        })
        .collect()
}

#[test]
fn sigkill_after_finalize_before_commit_restarts_at_the_previous_height() {
    let home = tempfile::tempdir().unwrap();
    let mut node = Node::start(home.path(), "http://127.0.0.1:9");
    let mut driver = Driver::connect(&node);
    driver.init_chain();
    let mut sequence = 0;
    let mut last_hash = Bytes::new();
    for _ in 0..3 {
        let (_, finalized) = driver.block(data_txs(sequence, 2, 64));
        sequence += 2;
        last_hash = finalized.app_hash;
    }
    let txs = driver.propose(data_txs(sequence, 3, 64));
    let finalized = driver.finalize(&txs);
    node.kill();

    let node = Node::start(home.path(), "http://127.0.0.1:9");
    let mut driver = Driver::connect(&node);
    let info = driver.info();
    assert_eq!(
        info.last_block_height, 3,
        "the uncommitted block must not be visible"
    );
    assert_eq!(info.last_block_app_hash, last_hash);
    // CometBFT's handshake replays the decided block: same txs, same app hash.
    driver.height = 3;
    let replayed = driver.finalize(&txs);
    assert_eq!(replayed.app_hash, finalized.app_hash);
    assert_eq!(replayed.tx_results, finalized.tx_results);
    driver.commit();
    let info = driver.info();
    assert_eq!(info.last_block_height, 4);
    assert_eq!(info.last_block_app_hash, finalized.app_hash);
}

#[test]
fn sigkill_during_commit_never_leaves_half_written_state() {
    let home = tempfile::tempdir().unwrap();
    let mut node = Node::start(home.path(), "http://127.0.0.1:9");
    let mut driver = Driver::connect(&node);
    driver.init_chain();
    let mut sequence = 0;
    let mut committed_hash = driver.block(data_txs(sequence, 1, 16)).1.app_hash;
    sequence += 1;
    // Kill at different points in and around Commit; each run ends in exactly one of the
    // two consistent states.
    let mut outcomes = (0, 0);
    for round in 0_u64..6 {
        let txs = driver.propose(data_txs(sequence, 40, 2048));
        let finalized = driver.finalize(&txs);
        driver
            .consensus
            .send(raw_request::Value::Commit(pb::RequestCommit {}));
        if round > 0 {
            std::thread::sleep(Duration::from_millis(round * 3));
        }
        node.kill();

        node = Node::start(home.path(), "http://127.0.0.1:9");
        driver = Driver::connect(&node);
        let info = driver.info();
        let before = u64::try_from(info.last_block_height).unwrap();
        let expected_height = 2 + round;
        if before == expected_height {
            // Commit landed entirely: the state and the stored sequencer block.
            assert_eq!(info.last_block_app_hash, finalized.app_hash);
            let (hash, data) = served_block(&node, expected_height).unwrap();
            assert_eq!(hash, header(expected_height, &txs).hash().as_bytes());
            assert_eq!(data, 40);
            outcomes.1 += 1;
        } else {
            // Commit did not land at all: the previous state, and the block replays.
            assert_eq!(
                before,
                expected_height - 1,
                "unexpected height after restart"
            );
            assert_eq!(info.last_block_app_hash, committed_hash);
            let previous = served_block(&node, before).unwrap();
            assert_eq!(previous.1, if before == 1 { 1 } else { 40 });
            assert_eq!(
                served_block(&node, expected_height),
                Err(tonic::Code::NotFound)
            );
            driver.height = before;
            let replayed = driver.finalize(&txs);
            assert_eq!(replayed.app_hash, finalized.app_hash);
            driver.commit();
            outcomes.0 += 1;
        }
        driver.height = expected_height;
        committed_hash = finalized.app_hash;
        sequence += 40;
    }
    // The chain goes on from there.
    let (_, finalized) = driver.block(data_txs(sequence, 1, 16));
    assert_eq!(driver.info().last_block_app_hash, finalized.app_hash);
    eprintln!(
        "kill during commit: {} rolled back, {} landed",
        outcomes.0, outcomes.1
    );
}
