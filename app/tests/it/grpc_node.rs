//! The gRPC API of a real `tandemd` (backed by the real `App`), with blocks driven over its ABCI socket.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{extract::State, routing::post, Json, Router};
use base64::Engine as _;
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tandem_core::{verify_filtered_block, FilteredSequencerBlock, SequencerBlock};
use tandem_proto::sequencerblock::v1::{
    sequencer_service_client::SequencerServiceClient,
    transaction_service_client::TransactionServiceClient, GetFilteredSequencerBlockRequest,
    GetPendingSequenceRequest, GetSequencerBlockRequest, GetTransactionStatusRequest,
    StreamFilteredSequencerBlocksRequest, SubmitTransactionRequest, TransactionStatus,
};
use tendermint_proto::v0_38::abci as pb;
use tokio_util::sync::CancellationToken;
use tonic::{transport::Channel, Code};

use crate::node::{header, key, rollup, send, signed_tx, submit, Driver, Node};

const DEADLINE: Duration = Duration::from_secs(30);

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Runs blocking ABCI driving off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::time::timeout(DEADLINE * 4, tokio::task::spawn_blocking(f))
        .await
        .expect("blocking step timed out")
        .expect("blocking step panicked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_filtered_blocks_and_pending_sequences() {
    let home = tempfile::tempdir().unwrap();
    let node = Node::start(home.path(), "http://127.0.0.1:9");
    let abci = node.abci;
    let (alice, bob) = (key("alice"), key("bob"));
    // Block 1: alice bundles data for rollups a and b; bob sends. Block 2: bob data for b.
    let blocks = blocking(move || {
        let mut driver = Driver::connect_to(abci);
        driver.init_chain();
        let one = driver.block(vec![
            signed_tx(
                &alice,
                0,
                0,
                vec![
                    submit(&alice, rollup("a"), b"a1"),
                    submit(&alice, rollup("b"), b"b1"),
                ],
            ),
            signed_tx(&bob, 1, 0, vec![send(&bob, &alice, 5)]),
        ]);
        let two = driver.block(vec![signed_tx(
            &bob,
            1,
            1,
            vec![submit(&bob, rollup("b"), b"b2")],
        )]);
        vec![one.0, two.0]
    })
    .await;
    assert_eq!(blocks[0].len(), 3, "commitment item + 2 txs");
    let mut client = SequencerServiceClient::new(channel(node.grpc).await);

    // Whole blocks.
    for (index, txs) in blocks.iter().enumerate() {
        let height = index as u64 + 1;
        let raw = client
            .get_sequencer_block(GetSequencerBlockRequest { height })
            .await
            .unwrap()
            .into_inner();
        let block = SequencerBlock::try_from_raw(raw).unwrap();
        assert_eq!(block.height(), height);
        assert_eq!(block.block_hash(), header(height, txs).hash().as_bytes());
    }
    let error = client
        .get_sequencer_block(GetSequencerBlockRequest { height: 0 })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let error = client
        .get_sequencer_block(GetSequencerBlockRequest { height: 99 })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert!(
        error.message().contains("latest committed height is 2"),
        "{}",
        error.message()
    );

    // Filtered blocks verify against the CometBFT header, for present and absent rollups.
    let ids = [rollup("a"), rollup("c")];
    let raw = client
        .get_filtered_sequencer_block(GetFilteredSequencerBlockRequest {
            height: 1,
            rollup_ids: ids.iter().map(|id| id.as_bytes().to_vec()).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    let filtered = FilteredSequencerBlock::try_from_raw(raw).unwrap();
    let verified = verify_filtered_block(&header(1, &blocks[0]), &filtered, &ids).unwrap();
    assert_eq!(
        verified.transactions(&rollup("a")).unwrap(),
        &[b"a1".to_vec()]
    );
    assert!(verified
        .transactions(&rollup("c"))
        .unwrap_or_default()
        .is_empty());
    // The same block does not verify against another header.
    assert!(verify_filtered_block(&header(2, &blocks[1]), &filtered, &ids).is_err());
    let error = client
        .get_filtered_sequencer_block(GetFilteredSequencerBlockRequest {
            height: 1,
            rollup_ids: vec![vec![1, 2, 3]],
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    // Pending sequences.
    let pending = client
        .get_pending_sequence(GetPendingSequenceRequest {
            address: key("bob").address().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((pending.sequence, pending.account_number), (2, 1));
    let error = client
        .get_pending_sequence(GetPendingSequenceRequest {
            address: "cosmos1notours".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_backfills_then_goes_live_without_gaps_or_duplicates() {
    const TOTAL: u64 = 24;
    let home = tempfile::tempdir().unwrap();
    let node = Node::start(home.path(), "http://127.0.0.1:9");
    let abci = node.abci;
    let alice = key("alice");
    // Commit 4 blocks, then keep committing while the stream opens: the seam between
    // stored and live blocks falls somewhere in the middle of the producer's run.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let producer = tokio::task::spawn_blocking(move || {
        let mut driver = Driver::connect_to(abci);
        driver.init_chain();
        let mut all = Vec::new();
        let mut ready = Some(ready_tx);
        for sequence in 0..TOTAL {
            let data = format!("block-{}", sequence + 1).into_bytes();
            let (txs, _) = driver.block(vec![signed_tx(
                &alice,
                0,
                sequence,
                vec![submit(&alice, rollup("a"), &data)],
            )]);
            all.push(txs);
            if sequence == 3 {
                ready.take().unwrap().send(()).unwrap();
            }
        }
        all
    });
    ready_rx.await.unwrap();
    let mut client = SequencerServiceClient::new(channel(node.grpc).await);
    let mut stream = client
        .stream_filtered_sequencer_blocks(StreamFilteredSequencerBlocksRequest {
            from_height: 1,
            rollup_ids: vec![rollup("a").as_bytes().to_vec()],
        })
        .await
        .unwrap()
        .into_inner();
    let mut received = Vec::new();
    while (received.len() as u64) < TOTAL {
        let item = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("stream stalled")
            .expect("stream ended early")
            .unwrap();
        received.push(FilteredSequencerBlock::try_from_raw(item).unwrap());
    }
    let all = tokio::time::timeout(DEADLINE * 4, producer)
        .await
        .unwrap()
        .unwrap();
    let ids = [rollup("a")];
    for (index, block) in received.iter().enumerate() {
        let height = index as u64 + 1;
        assert_eq!(block.height(), height, "heights must be consecutive from 1");
        let verified = verify_filtered_block(&header(height, &all[index]), block, &ids).unwrap();
        assert_eq!(
            verified.transactions(&rollup("a")).unwrap(),
            &[format!("block-{height}").into_bytes()]
        );
    }
    // Nothing more until another block is committed (no duplicate after the seam).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err()
    );

    let error = client
        .stream_filtered_sequencer_blocks(StreamFilteredSequencerBlocksRequest {
            from_height: 0,
            rollup_ids: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
}

/// A stand-in for `CometBFT`'s JSON-RPC `broadcast_tx_sync`: it runs `CheckTx` on the node's
/// mempool connection, exactly what `CometBFT` does before answering.
fn fake_cometbft_rpc(
    listener: tokio::net::TcpListener,
    abci: SocketAddr,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    async fn handle(
        State(abci): State<Arc<SocketAddr>>,
        Json(body): Json<serde_json::Value>,
    ) -> Json<serde_json::Value> {
        assert_eq!(body["method"], "broadcast_tx_sync");
        let tx = base64::engine::general_purpose::STANDARD
            .decode(body["params"]["tx"].as_str().unwrap())
            .unwrap();
        let hash = hex::encode_upper(Sha256::digest(&tx));
        let abci = *abci;
        let check = tokio::task::spawn_blocking(move || {
            let mut client = tendermint_abci::ClientBuilder::default()
                .connect(abci)
                .unwrap();
            client
                .check_tx(pb::RequestCheckTx {
                    tx: tx.into(),
                    r#type: 0,
                })
                .unwrap()
        })
        .await
        .unwrap();
        Json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": body["id"],
            "result": {"code": check.code, "data": "", "log": check.log, "codespace": check.codespace, "hash": hash}
        }))
    }
    let router = Router::new()
        .route("/", post(handle))
        .with_state(Arc::new(abci));
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await
            .unwrap();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_transaction_forwards_to_cometbft_and_status_follows_the_tx() {
    let home = tempfile::tempdir().unwrap();
    // The node learns the RPC address at start and the fake RPC learns the ABCI address
    // after it: bind the RPC listener first (held open, so no one else can take its port).
    let rpc_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let rpc_addr = rpc_listener.local_addr().unwrap();
    let node = Node::start(home.path(), &format!("http://{rpc_addr}"));
    let cancel = CancellationToken::new();
    let abci = node.abci;
    let rpc_task = fake_cometbft_rpc(rpc_listener, abci, cancel.clone());
    let mut driver = blocking(move || {
        let mut driver = Driver::connect_to(abci);
        driver.init_chain();
        driver
    })
    .await;

    let alice = key("alice");
    let tx = signed_tx(&alice, 0, 0, vec![submit(&alice, rollup("a"), b"hello")]);
    let hash: [u8; 32] = Sha256::digest(&tx).into();
    let mut transactions = TransactionServiceClient::new(channel(node.grpc).await);
    let status = |hash: Vec<u8>| GetTransactionStatusRequest { hash };
    assert_eq!(
        transactions
            .get_transaction_status(status(hash.to_vec()))
            .await
            .unwrap()
            .into_inner()
            .status,
        TransactionStatus::Unknown as i32
    );
    let submitted = transactions
        .submit_transaction(SubmitTransactionRequest {
            tx_bytes: tx.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(submitted.code, 0, "{}", submitted.log);
    assert_eq!(submitted.hash, hash.to_vec());
    assert_eq!(
        transactions
            .get_transaction_status(status(hash.to_vec()))
            .await
            .unwrap()
            .into_inner()
            .status,
        TransactionStatus::Pending as i32
    );
    // A rejected tx comes back with its CheckTx code.
    let rejected = transactions
        .submit_transaction(SubmitTransactionRequest {
            tx_bytes: b"garbage".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rejected.code, 0);

    let (txs, finalized) = blocking(move || driver.block(vec![tx])).await;
    assert_eq!(txs.len(), 2);
    let committed = transactions
        .get_transaction_status(status(hash.to_vec()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(committed.status, TransactionStatus::Committed as i32);
    assert_eq!(
        (committed.height, committed.index, committed.code),
        (1, 1, 0)
    );
    assert_eq!(finalized.tx_results[1].code, 0);

    let error = transactions
        .get_transaction_status(status(vec![1; 5]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    // With the RPC gone, submitting reports Unavailable.
    cancel.cancel();
    rpc_task.await.unwrap();
    let error = transactions
        .submit_transaction(SubmitTransactionRequest {
            tx_bytes: b"x".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(
        error.message().contains(&rpc_addr.to_string()),
        "{}",
        error.message()
    );
}
