//! The gRPC services over real TCP with tonic clients, reading from an in-memory block source
//! filled with real `SequencerBlock`s (real CometBFT headers, real commitments), and
//! forwarding `SubmitTransaction` to a stand-in CometBFT JSON-RPC server.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use axum::{routing::post, Json, Router};
use base64::Engine as _;
use futures::StreamExt as _;
use sha2::{Digest as _, Sha256};
use tandem_app::grpc::{BlockSource, GrpcConfig, GrpcServer, SourceError, TxLocation};
use tandem_core::{
    commitment_item_bytes, data_hash, verify_filtered_block, FilteredSequencerBlock, RollupData,
    RollupId, SequencerBlock, SequencerBlockHeader,
};
use tandem_proto::sequencerblock::v1::{
    sequencer_service_client::SequencerServiceClient,
    transaction_service_client::TransactionServiceClient, GetFilteredSequencerBlockRequest,
    GetPendingSequenceRequest, GetSequencerBlockRequest, GetTransactionStatusRequest,
    StreamFilteredSequencerBlocksRequest, SubmitTransactionRequest, TransactionStatus,
};
use tendermint::{
    account,
    block::{self, Header, Height},
    Hash, Time,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tonic::{transport::Channel, Code};

const DEADLINE: Duration = Duration::from_secs(30);

/// A bech32-looking address type for the test source: must start with `tandem1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TestAddress(String);

impl std::str::FromStr for TestAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.starts_with("tandem1") {
            Ok(Self(text.to_owned()))
        } else {
            Err("expected prefix tandem1".to_owned())
        }
    }
}

impl std::fmt::Display for TestAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct MemorySource {
    blocks: Mutex<BTreeMap<u64, Arc<SequencerBlock>>>,
    latest: AtomicU64,
    sender: broadcast::Sender<Arc<SequencerBlock>>,
    accounts: BTreeMap<TestAddress, (u64, u64)>,
    txs: Mutex<BTreeMap<[u8; 32], TxLocation>>,
}

impl MemorySource {
    fn new(channel_capacity: usize) -> Self {
        Self {
            blocks: Mutex::new(BTreeMap::new()),
            latest: AtomicU64::new(0),
            sender: broadcast::channel(channel_capacity).0,
            accounts: BTreeMap::from([(TestAddress("tandem1alice".to_owned()), (7, 3))]),
            txs: Mutex::new(BTreeMap::new()),
        }
    }

    /// Persists, then publishes (the order the application guarantees).
    fn commit(&self, block: SequencerBlock) {
        let height = block.height();
        let block = Arc::new(block);
        self.blocks.lock().unwrap().insert(height, block.clone());
        self.latest.store(height, Ordering::SeqCst);
        let _ = self.sender.send(block);
    }
}

impl BlockSource for MemorySource {
    type Address = TestAddress;

    async fn sequencer_block(
        &self,
        height: u64,
    ) -> Result<Option<Arc<SequencerBlock>>, SourceError> {
        Ok(self.blocks.lock().unwrap().get(&height).cloned())
    }

    fn latest_block_height(&self) -> u64 {
        self.latest.load(Ordering::SeqCst)
    }

    fn subscribe_blocks(&self) -> broadcast::Receiver<Arc<SequencerBlock>> {
        self.sender.subscribe()
    }

    async fn pending_sequence(
        &self,
        address: &TestAddress,
    ) -> Result<Option<(u64, u64)>, SourceError> {
        Ok(self.accounts.get(address).copied())
    }

    async fn tx_status(&self, hash: &[u8; 32]) -> Result<TxLocation, SourceError> {
        Ok(self
            .txs
            .lock()
            .unwrap()
            .get(hash)
            .cloned()
            .unwrap_or(TxLocation::Unknown))
    }
}

fn header(height: u64, txs: &[Vec<u8>]) -> Header {
    Header {
        version: block::header::Version { block: 11, app: 1 },
        chain_id: "tandem-grpc".parse().unwrap(),
        height: Height::try_from(height).unwrap(),
        time: Time::from_unix_timestamp(1_700_000_000 + i64::try_from(height).unwrap(), 0).unwrap(),
        last_block_id: None,
        last_commit_hash: None,
        data_hash: Some(Hash::Sha256(data_hash(txs))),
        validators_hash: Hash::Sha256([1; 32]),
        next_validators_hash: Hash::Sha256([1; 32]),
        consensus_hash: Hash::Sha256([2; 32]),
        app_hash: tendermint::AppHash::default(),
        last_results_hash: None,
        evidence_hash: None,
        proposer_address: account::Id::new([7; 20]),
    }
}

/// A real sequencer block: the commitment item first, then opaque user txs.
fn make_block(height: u64, items: &[(RollupId, Vec<u8>)]) -> (Header, SequencerBlock) {
    let rollup_data = RollupData::from_items(items.iter().cloned());
    let mut txs = vec![commitment_item_bytes(&rollup_data.commitments())];
    txs.push(format!("user tx at {height}").into_bytes());
    let header = header(height, &txs);
    let block = SequencerBlock::new(
        SequencerBlockHeader::from_cometbft_header(&header).unwrap(),
        header.hash().as_bytes().try_into().unwrap(),
        &txs,
        rollup_data,
    )
    .unwrap();
    (header, block)
}

fn rollup(name: &str) -> RollupId {
    RollupId::from_name(name)
}

fn items_at(height: u64) -> Vec<(RollupId, Vec<u8>)> {
    let mut items = vec![(rollup("a"), format!("a@{height}").into_bytes())];
    if height.is_multiple_of(2) {
        items.push((rollup("b"), format!("b@{height}").into_bytes()));
    }
    items
}

async fn start(source: Arc<MemorySource>, rpc: &str) -> (GrpcServer, Channel, CancellationToken) {
    let cancel = CancellationToken::new();
    let server = GrpcServer::spawn(
        &GrpcConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            cometbft_rpc: rpc.to_owned(),
        },
        source,
        &cancel,
    )
    .await
    .unwrap();
    let channel = Channel::from_shared(format!("http://{}", server.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (server, channel, cancel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[expect(clippy::too_many_lines, reason = "one scenario over every method")]
async fn sequencer_service_answers_every_method() {
    let source = Arc::new(MemorySource::new(16));
    let mut headers = Vec::new();
    for height in 1..=3 {
        let (header, block) = make_block(height, &items_at(height));
        headers.push(header);
        source.commit(block);
    }
    let (server, channel, _cancel) = start(source.clone(), "http://127.0.0.1:9").await;
    let mut client = SequencerServiceClient::new(channel);

    let raw = client
        .get_sequencer_block(GetSequencerBlockRequest { height: 2 })
        .await
        .unwrap()
        .into_inner();
    let block = SequencerBlock::try_from_raw(raw).unwrap();
    assert_eq!(block.height(), 2);
    assert_eq!(block.block_hash(), headers[1].hash().as_bytes());
    assert_eq!(block.rollup_transactions().len(), 2);
    let error = client
        .get_sequencer_block(GetSequencerBlockRequest { height: 0 })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    let error = client
        .get_sequencer_block(GetSequencerBlockRequest { height: 4 })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert!(
        error.message().contains("latest committed height is 3"),
        "{}",
        error.message()
    );

    // Filtered: b is absent at height 3 and c never exists; both are proven absent.
    let ids = [rollup("b"), rollup("a"), rollup("c")];
    let raw = client
        .get_filtered_sequencer_block(GetFilteredSequencerBlockRequest {
            height: 3,
            rollup_ids: ids.iter().map(|id| id.as_bytes().to_vec()).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    let filtered = FilteredSequencerBlock::try_from_raw(raw).unwrap();
    let mut sorted = ids.to_vec();
    sorted.sort_unstable();
    let verified = verify_filtered_block(&headers[2], &filtered, &sorted).unwrap();
    assert_eq!(
        verified.transactions(&rollup("a")).unwrap(),
        &[b"a@3".to_vec()]
    );
    assert!(verified
        .transactions(&rollup("b"))
        .unwrap_or_default()
        .is_empty());
    assert!(verified
        .transactions(&rollup("c"))
        .unwrap_or_default()
        .is_empty());
    assert!(
        verify_filtered_block(&headers[1], &filtered, &sorted).is_err(),
        "a filtered block must not verify against another header"
    );
    let error = client
        .get_filtered_sequencer_block(GetFilteredSequencerBlockRequest {
            height: 3,
            rollup_ids: vec![vec![1, 2, 3]],
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("rollup_ids[0]"),
        "{}",
        error.message()
    );

    let pending = client
        .get_pending_sequence(GetPendingSequenceRequest {
            address: "tandem1alice".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((pending.sequence, pending.account_number), (7, 3));
    let error = client
        .get_pending_sequence(GetPendingSequenceRequest {
            address: "tandem1nobody".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    let error = client
        .get_pending_sequence(GetPendingSequenceRequest {
            address: "cosmos1x".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("cosmos1x"), "{}", error.message());

    let error = client
        .stream_filtered_sequencer_blocks(StreamFilteredSequencerBlocksRequest {
            from_height: 0,
            rollup_ids: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    server.shutdown();
    server.wait().await.unwrap();
}

/// Opens a stream from height 1 while a producer keeps committing; checks heights are
/// consecutive and every block verifies against its header.
async fn stream_across_the_seam(channel_capacity: usize, pause_every: u64) {
    const TOTAL: u64 = 40;
    let source = Arc::new(MemorySource::new(channel_capacity));
    let headers = Arc::new(Mutex::new(BTreeMap::new()));
    for height in 1..=4 {
        let (header, block) = make_block(height, &items_at(height));
        headers.lock().unwrap().insert(height, header);
        source.commit(block);
    }
    let (server, channel, _cancel) = start(source.clone(), "http://127.0.0.1:9").await;
    let producer = {
        let (source, headers) = (source.clone(), headers.clone());
        tokio::spawn(async move {
            for height in 5..=TOTAL {
                let (header, block) = make_block(height, &items_at(height));
                headers.lock().unwrap().insert(height, header);
                source.commit(block);
                if height.is_multiple_of(pause_every) {
                    tokio::task::yield_now().await;
                }
            }
        })
    };
    let mut client = SequencerServiceClient::new(channel);
    let ids = [rollup("b")];
    let mut stream = client
        .stream_filtered_sequencer_blocks(StreamFilteredSequencerBlocksRequest {
            from_height: 1,
            rollup_ids: ids.iter().map(|id| id.as_bytes().to_vec()).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    for height in 1..=TOTAL {
        let raw = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("stream stalled")
            .expect("stream ended early")
            .unwrap();
        let block = FilteredSequencerBlock::try_from_raw(raw).unwrap();
        assert_eq!(
            block.height(),
            height,
            "heights must be consecutive, without gaps or repeats"
        );
        let header = headers.lock().unwrap()[&height].clone();
        let verified = verify_filtered_block(&header, &block, &ids).unwrap();
        let expected: Vec<Vec<u8>> = if height.is_multiple_of(2) {
            vec![format!("b@{height}").into_bytes()]
        } else {
            Vec::new()
        };
        assert_eq!(
            verified.transactions(&rollup("b")).unwrap_or_default(),
            expected.as_slice()
        );
    }
    producer.await.unwrap();
    // Live: the next block arrives once, and nothing else is pending.
    let (_, block) = make_block(TOTAL + 1, &items_at(TOTAL + 1));
    source.commit(block);
    let raw = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(raw.header.unwrap().height, TOTAL + 1);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), stream.next())
            .await
            .is_err()
    );
    // Shutdown ends open streams.
    server.shutdown();
    let end = tokio::time::timeout(DEADLINE, stream.next())
        .await
        .expect("stream not ended by shutdown");
    assert!(!matches!(end, Some(Ok(_))), "{end:?}");
    tokio::time::timeout(DEADLINE, server.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_backfills_then_goes_live_without_gaps_or_duplicates() {
    stream_across_the_seam(64, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_recovers_from_a_lagging_subscription_through_the_store() {
    // A 2-slot channel and a producer that rarely yields: the subscription lags.
    stream_across_the_seam(2, 12).await;
}

/// A stand-in for CometBFT's JSON-RPC `broadcast_tx_sync`: accepts txs starting with
/// `ok`, rejects others with code 7, and answers with the sha256 hash.
async fn fake_cometbft_rpc(cancel: CancellationToken) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    async fn handle(Json(body): Json<serde_json::Value>) -> Json<serde_json::Value> {
        assert_eq!(body["method"], "broadcast_tx_sync");
        let tx = base64::engine::general_purpose::STANDARD
            .decode(body["params"]["tx"].as_str().unwrap())
            .unwrap();
        let hash = hex::encode_upper(Sha256::digest(&tx));
        let (code, log) = if tx.starts_with(b"ok") {
            (0, "")
        } else {
            (7, "rejected by CheckTx")
        };
        Json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": body["id"],
            "result": {"code": code, "data": "", "log": log, "codespace": "tandem", "hash": hash}
        }))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().route("/", post(handle));
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(cancel.cancelled_owned())
            .await
            .unwrap();
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_service_forwards_and_reports_status() {
    let rpc_cancel = CancellationToken::new();
    let (rpc, rpc_task) = fake_cometbft_rpc(rpc_cancel.clone()).await;
    let source = Arc::new(MemorySource::new(4));
    let (server, channel, _cancel) = start(source.clone(), &format!("http://{rpc}")).await;
    let mut client = TransactionServiceClient::new(channel);

    let submitted = client
        .submit_transaction(SubmitTransactionRequest {
            tx_bytes: b"ok tx".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(submitted.code, 0);
    assert_eq!(submitted.hash, Sha256::digest(b"ok tx").to_vec());
    let rejected = client
        .submit_transaction(SubmitTransactionRequest {
            tx_bytes: b"bad tx".to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            rejected.code,
            rejected.log.as_str(),
            rejected.codespace.as_str()
        ),
        (7, "rejected by CheckTx", "tandem")
    );
    let error = client
        .submit_transaction(SubmitTransactionRequest {
            tx_bytes: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    let hash: [u8; 32] = Sha256::digest(b"ok tx").into();
    let status = |hash: &[u8]| GetTransactionStatusRequest {
        hash: hash.to_vec(),
    };
    let answer = client
        .get_transaction_status(status(&hash))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status, TransactionStatus::Unknown as i32);
    source.txs.lock().unwrap().insert(hash, TxLocation::Pending);
    let answer = client
        .get_transaction_status(status(&hash))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status, TransactionStatus::Pending as i32);
    source.txs.lock().unwrap().insert(
        hash,
        TxLocation::Committed {
            height: 9,
            index: 2,
            code: 0,
            log: "ok".to_owned(),
        },
    );
    let answer = client
        .get_transaction_status(status(&hash))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status, TransactionStatus::Committed as i32);
    assert_eq!(
        (
            answer.height,
            answer.index,
            answer.code,
            answer.log.as_str()
        ),
        (9, 2, 0, "ok")
    );
    let error = client
        .get_transaction_status(status(&[1; 5]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    // The consensus node is gone: Unavailable, naming the RPC address.
    rpc_cancel.cancel();
    rpc_task.await.unwrap();
    let error = client
        .submit_transaction(SubmitTransactionRequest {
            tx_bytes: b"ok again".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert!(
        error.message().contains(&rpc.to_string()),
        "{}",
        error.message()
    );
    server.shutdown();
    server.wait().await.unwrap();
}
