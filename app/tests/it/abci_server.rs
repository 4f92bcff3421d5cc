//! The ABCI socket server against an instrumented application, driven over real sockets by
//! `tendermint-abci`'s client (and raw frames where that client has no method).
//!
//! The instrumented application lets a test hold a `FinalizeBlock` open for as long as it
//! likes, so "answered while a block is being finalized" is checked without timing guesses.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use tandem_app::{
    metrics::Metrics,
    server::{AbciServer, Application, ListenAddr, ServerConfig, ServerError},
};
use tendermint::v0_38::abci::{request, response};
use tendermint_abci::ClientBuilder;
use tendermint_proto::v0_38::abci::{self as pb, request as raw_request, response as raw_response};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::support::{finalize_request, RawClient};

const DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
#[error("injected commit failure")]
struct Injected;

struct Gated {
    finalize_entered: Notify,
    release_finalize: Semaphore,
    finalize_done: AtomicBool,
    in_consensus: AtomicUsize,
    max_in_consensus: AtomicUsize,
    calls: Mutex<Vec<String>>,
    fail_commit: AtomicBool,
}

impl Default for Gated {
    fn default() -> Self {
        Self {
            finalize_entered: Notify::new(),
            release_finalize: Semaphore::new(0),
            finalize_done: AtomicBool::new(false),
            in_consensus: AtomicUsize::new(0),
            max_in_consensus: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
            fail_commit: AtomicBool::new(false),
        }
    }
}

#[derive(Clone, Default)]
struct GatedApp(Arc<Gated>);

impl GatedApp {
    fn enter(&self, call: String) {
        let now = self.0.in_consensus.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.max_in_consensus.fetch_max(now, Ordering::SeqCst);
        self.0.calls.lock().unwrap().push(call);
    }

    fn leave(&self) {
        self.0.in_consensus.fetch_sub(1, Ordering::SeqCst);
    }

    fn calls(&self) -> Vec<String> {
        self.0.calls.lock().unwrap().clone()
    }
}

impl Application for GatedApp {
    type Error = Injected;

    async fn info(&self, _request: request::Info) -> Result<response::Info, Injected> {
        Ok(response::Info {
            data: "gated".to_owned(),
            ..response::Info::default()
        })
    }

    async fn query(&self, request: request::Query) -> response::Query {
        response::Query {
            value: request.data,
            ..response::Query::default()
        }
    }

    async fn check_tx(&self, request: request::CheckTx) -> response::CheckTx {
        response::CheckTx {
            code: if request.tx.is_empty() {
                1.into()
            } else {
                0.into()
            },
            ..response::CheckTx::default()
        }
    }

    async fn init_chain(
        &self,
        _request: request::InitChain,
    ) -> Result<response::InitChain, Injected> {
        self.enter("init_chain".to_owned());
        self.leave();
        Ok(response::InitChain::default())
    }

    async fn prepare_proposal(
        &self,
        request: request::PrepareProposal,
    ) -> Result<response::PrepareProposal, Injected> {
        self.enter("prepare_proposal".to_owned());
        self.leave();
        Ok(response::PrepareProposal { txs: request.txs })
    }

    async fn process_proposal(
        &self,
        _request: request::ProcessProposal,
    ) -> Result<response::ProcessProposal, Injected> {
        self.enter("process_proposal".to_owned());
        self.leave();
        Ok(response::ProcessProposal::Accept)
    }

    async fn finalize_block(
        &self,
        request: request::FinalizeBlock,
    ) -> Result<response::FinalizeBlock, Injected> {
        self.enter(format!("finalize_block:{}", request.height));
        self.0.finalize_entered.notify_one();
        self.0
            .release_finalize
            .acquire()
            .await
            .expect("semaphore is never closed")
            .forget();
        self.0.finalize_done.store(true, Ordering::SeqCst);
        self.leave();
        Ok(response::FinalizeBlock {
            events: Vec::new(),
            tx_results: Vec::new(),
            validator_updates: Vec::new(),
            consensus_param_updates: None,
            app_hash: vec![u8::try_from(request.height.value()).unwrap(); 32]
                .try_into()
                .unwrap(),
        })
    }

    async fn commit(&self) -> Result<response::Commit, Injected> {
        self.enter("commit".to_owned());
        self.leave();
        if self.0.fail_commit.load(Ordering::SeqCst) {
            return Err(Injected);
        }
        Ok(response::Commit::default())
    }
}

async fn start(app: GatedApp) -> (AbciServer, std::net::SocketAddr, Arc<Metrics>) {
    let cancel = CancellationToken::new();
    let metrics = Arc::new(Metrics::new());
    let server = AbciServer::spawn(
        &"tcp://127.0.0.1:0".parse().unwrap(),
        app,
        ServerConfig {
            max_frame_bytes: 1 << 20,
            metrics: Some(metrics.clone()),
        },
        &cancel,
    )
    .await
    .unwrap();
    let ListenAddr::Tcp(addr) = server.local_addr().clone() else {
        panic!("expected a TCP address")
    };
    (server, addr, metrics)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::time::timeout(DEADLINE, tokio::task::spawn_blocking(f))
        .await
        .expect("client call timed out")
        .expect("client thread panicked")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_check_tx_are_answered_while_finalize_block_runs() {
    let app = GatedApp::default();
    let (server, addr, metrics) = start(app.clone()).await;

    let finalize = tokio::task::spawn_blocking(move || {
        let mut consensus = ClientBuilder::default().connect(addr).unwrap();
        consensus
            .finalize_block(finalize_request(5, vec![b"tx".to_vec()], [1; 32]))
            .map_err(|e| e.to_string())
    });
    tokio::time::timeout(DEADLINE, app.0.finalize_entered.notified())
        .await
        .expect("FinalizeBlock never reached the application");

    let (query, check, info) = blocking(move || {
        let mut query = ClientBuilder::default().connect(addr).unwrap();
        let mut mempool = ClientBuilder::default().connect(addr).unwrap();
        let answer = query
            .query(pb::RequestQuery {
                data: b"ping".to_vec().into(),
                ..Default::default()
            })
            .unwrap();
        let check = mempool
            .check_tx(pb::RequestCheckTx {
                tx: b"tx".to_vec().into(),
                r#type: 0,
            })
            .unwrap();
        let info = query.info(pb::RequestInfo::default()).unwrap();
        (answer, check, info)
    })
    .await;
    assert_eq!(query.value, Bytes::from_static(b"ping"));
    assert_eq!(check.code, 0);
    assert_eq!(info.data, "gated");
    assert!(
        !app.0.finalize_done.load(Ordering::SeqCst),
        "the answers must arrive while FinalizeBlock is still running"
    );

    app.0.release_finalize.add_permits(1);
    let finalized = tokio::time::timeout(DEADLINE, finalize)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(finalized.app_hash, Bytes::from(vec![5; 32]));
    // The server records consensus-call latencies when given metrics.
    let text = metrics.encode();
    assert!(
        text.contains("tandem_block_phase_seconds_count{phase=\"finalize_block\"} 1"),
        "{text}"
    );
    server.shutdown();
    server.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consensus_calls_run_one_at_a_time_in_arrival_order() {
    let app = GatedApp::default();
    let (server, addr, _metrics) = start(app.clone()).await;

    let first = tokio::task::spawn_blocking(move || {
        let mut client = ClientBuilder::default().connect(addr).unwrap();
        client
            .finalize_block(finalize_request(1, Vec::new(), [1; 32]))
            .unwrap();
        client.commit().unwrap();
    });
    tokio::time::timeout(DEADLINE, app.0.finalize_entered.notified())
        .await
        .unwrap();
    // A second connection tries a consensus call while the first holds FinalizeBlock.
    let second = tokio::task::spawn_blocking(move || {
        let mut client = ClientBuilder::default().connect(addr).unwrap();
        client.commit().map_err(|e| e.to_string())
    });
    // Give the second request time to reach the server. This pause cannot make the test
    // fail wrongly; it only gives a broken server the chance to let the Commit overtake.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.calls(), vec!["finalize_block:1".to_owned()]);
    app.0.release_finalize.add_permits(1);
    tokio::time::timeout(DEADLINE, first)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(DEADLINE, second)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let calls = app.calls();
    assert_eq!(calls[0], "finalize_block:1");
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(app.0.max_in_consensus.load(Ordering::SeqCst), 1);
    server.shutdown();
    server.wait().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_error_on_a_consensus_call_stops_the_server_without_answering() {
    let app = GatedApp::default();
    app.0.fail_commit.store(true, Ordering::SeqCst);
    app.0.release_finalize.add_permits(1);
    let (server, addr, _metrics) = start(app.clone()).await;

    let outcome = blocking(move || {
        let mut client = ClientBuilder::default().connect(addr).unwrap();
        client
            .finalize_block(finalize_request(9, Vec::new(), [2; 32]))
            .unwrap();
        client.commit().map_err(|e| e.to_string())
    })
    .await;
    assert!(
        outcome.is_err(),
        "a failed Commit must not be answered: {outcome:?}"
    );

    let error = tokio::time::timeout(DEADLINE, server.wait())
        .await
        .expect("server did not stop")
        .unwrap_err();
    match &error {
        ServerError::Application { method, height, .. } => {
            assert_eq!(*method, "commit");
            assert_eq!(*height, Some(9));
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(tandem_app::server::error_chain(&error).contains("injected commit failure"));
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_serves_all_connection_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("abci.sock");
    // A stale socket file from an earlier run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let app = GatedApp::default();
    app.0.release_finalize.add_permits(1);
    let cancel = CancellationToken::new();
    let server = AbciServer::spawn(
        &ListenAddr::Unix(path.clone()),
        app.clone(),
        ServerConfig::default(),
        &cancel,
    )
    .await
    .unwrap();

    let answers = blocking(move || {
        let connect = || RawClient::new(std::os::unix::net::UnixStream::connect(&path).unwrap());
        let (mut consensus, mut mempool, mut query, mut snapshot) =
            (connect(), connect(), connect(), connect());
        let echo = query.call(raw_request::Value::Echo(pb::RequestEcho {
            message: "hello".to_owned(),
        }));
        let check = mempool.call(raw_request::Value::CheckTx(pb::RequestCheckTx {
            tx: Bytes::new(),
            r#type: 0,
        }));
        let prepare = consensus.call(raw_request::Value::PrepareProposal(
            pb::RequestPrepareProposal {
                max_tx_bytes: 1000,
                txs: vec![Bytes::from_static(b"a")],
                local_last_commit: Some(pb::ExtendedCommitInfo::default()),
                misbehavior: Vec::new(),
                height: 1,
                time: Some(crate::support::block_time(1)),
                next_validators_hash: vec![0; 32].into(),
                proposer_address: vec![7; 20].into(),
            },
        ));
        let snapshots = snapshot.call(raw_request::Value::ListSnapshots(
            pb::RequestListSnapshots {},
        ));
        // Pipelined requests are answered in order.
        query.send(raw_request::Value::Echo(pb::RequestEcho {
            message: "1".to_owned(),
        }));
        query.send(raw_request::Value::Flush(pb::RequestFlush {}));
        query.send(raw_request::Value::Echo(pb::RequestEcho {
            message: "2".to_owned(),
        }));
        let pipelined = [query.receive(), query.receive(), query.receive()];
        (echo, check, prepare, snapshots, pipelined)
    })
    .await;
    let (echo, check, prepare, snapshots, pipelined) = answers;
    assert_eq!(
        echo,
        raw_response::Value::Echo(pb::ResponseEcho {
            message: "hello".to_owned()
        })
    );
    let raw_response::Value::CheckTx(check) = check else {
        panic!("{check:?}")
    };
    assert_eq!(check.code, 1);
    let raw_response::Value::PrepareProposal(prepare) = prepare else {
        panic!("{prepare:?}")
    };
    assert_eq!(prepare.txs, vec![Bytes::from_static(b"a")]);
    assert_eq!(
        snapshots,
        raw_response::Value::ListSnapshots(pb::ResponseListSnapshots::default())
    );
    assert_eq!(
        pipelined,
        [
            Some(raw_response::Value::Echo(pb::ResponseEcho {
                message: "1".to_owned()
            })),
            Some(raw_response::Value::Flush(pb::ResponseFlush {})),
            Some(raw_response::Value::Echo(pb::ResponseEcho {
                message: "2".to_owned()
            })),
        ]
    );
    server.shutdown();
    server.wait().await.unwrap();
    assert!(
        !dir.path().join("abci.sock").exists(),
        "socket file is removed on shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_frames_get_an_exception_and_the_server_keeps_running() {
    let app = GatedApp::default();
    let cancel = CancellationToken::new();
    let server = AbciServer::spawn(
        &"tcp://127.0.0.1:0".parse().unwrap(),
        app,
        ServerConfig {
            max_frame_bytes: 1024,
            metrics: None,
        },
        &cancel,
    )
    .await
    .unwrap();
    let ListenAddr::Tcp(addr) = server.local_addr().clone() else {
        panic!()
    };
    let (garbage, oversized, still_fine) = blocking(move || {
        let mut client = RawClient::new(std::net::TcpStream::connect(addr).unwrap());
        client.send_bytes(&[3, 0xff, 0xff, 0xff]);
        let garbage = (client.receive(), client.receive());
        let mut client = RawClient::new(std::net::TcpStream::connect(addr).unwrap());
        client.send_bytes(&[0x80, 0x80, 0x04]); // 65536 > 1024
        let oversized = (client.receive(), client.receive());
        let mut client = ClientBuilder::default().connect(addr).unwrap();
        let echo = client
            .echo(pb::RequestEcho {
                message: "ok".to_owned(),
            })
            .unwrap();
        (garbage, oversized, echo)
    })
    .await;
    for (answer, closed) in [garbage, oversized] {
        let Some(raw_response::Value::Exception(exception)) = answer else {
            panic!("expected an exception, got {answer:?}")
        };
        assert!(
            exception.error.contains("malformed request"),
            "{}",
            exception.error
        );
        assert_eq!(closed, None, "the connection is closed after an exception");
    }
    assert_eq!(still_fine.message, "ok");
    server.shutdown();
    server.wait().await.unwrap();
}
