//! The ABCI 2.0 (`CometBFT` v0.38) socket server.
//!
//! `CometBFT` opens four connections to the application (consensus, mempool, query, snapshot)
//! over TCP or a Unix socket. Each connection carries length-delimited protobuf
//! `tendermint.abci.Request`s (unsigned varint length, then the message) and expects the
//! responses in the same order.
//!
//! Every connection gets its own task that answers its requests one after the other, so
//! responses keep their order. The calls that change state (`InitChain`, `PrepareProposal`,
//! `ProcessProposal`, `FinalizeBlock`, Commit and the vote-extension calls) additionally go
//! through one lock, so they run strictly one at a time even if they arrive on several
//! connections. Info, Query and `CheckTx` never take that lock: they are answered while a
//! block is being finalized.
//!
//! An [`Application`] error from a consensus call is fatal: the server logs it with its
//! context, answers nothing more on any connection and [`Service::wait`] returns
//! [`ServerError::Application`], on which `tandemd` exits non-zero. Answering a consensus
//! call wrongly would fork the chain; stopping lets `CometBFT` replay after a restart.

use std::{
    fmt,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Instant,
};

use bytes::Bytes;
use prost::Message as _;
use tendermint::v0_38::abci::{request, response, ConsensusRequest, Request, Response};
use tendermint_proto::v0_38::abci as pb;
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader, BufWriter},
    net::{TcpListener, UnixListener},
    sync::Mutex,
    task::JoinSet,
};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::{
    metrics::Metrics,
    service::{Panicked, Service},
};

/// Default bound on one ABCI frame. `CometBFT` caps a block at 100 MiB, and a `FinalizeBlock`
/// request carries the whole block.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 128 * 1024 * 1024;

/// The application behind the ABCI server.
///
/// The consensus methods (`init_chain`, `prepare_proposal`, `process_proposal`,
/// `finalize_block`, `commit`) are called one at a time, in the order `CometBFT` sends them.
/// `info`, `query` and `check_tx` may be called at any time, concurrently with them.
pub trait Application: Send + Sync + 'static {
    /// An internal failure. Returned from a consensus call it stops the server.
    type Error: std::error::Error + Send + Sync + 'static;

    /// `Info`: the last committed height and app hash. An error is fatal (the state cannot
    /// be read).
    fn info(
        &self,
        request: request::Info,
    ) -> impl Future<Output = Result<response::Info, Self::Error>> + Send;
    /// `Query`.
    fn query(&self, request: request::Query) -> impl Future<Output = response::Query> + Send;
    /// `CheckTx` (new and recheck).
    fn check_tx(&self, request: request::CheckTx)
        -> impl Future<Output = response::CheckTx> + Send;
    /// `InitChain`.
    fn init_chain(
        &self,
        request: request::InitChain,
    ) -> impl Future<Output = Result<response::InitChain, Self::Error>> + Send;
    /// `PrepareProposal`.
    fn prepare_proposal(
        &self,
        request: request::PrepareProposal,
    ) -> impl Future<Output = Result<response::PrepareProposal, Self::Error>> + Send;
    /// `ProcessProposal`.
    fn process_proposal(
        &self,
        request: request::ProcessProposal,
    ) -> impl Future<Output = Result<response::ProcessProposal, Self::Error>> + Send;
    /// `FinalizeBlock`: executes the block without persisting it.
    fn finalize_block(
        &self,
        request: request::FinalizeBlock,
    ) -> impl Future<Output = Result<response::FinalizeBlock, Self::Error>> + Send;
    /// `Commit`: persists the finalized block atomically.
    fn commit(&self) -> impl Future<Output = Result<response::Commit, Self::Error>> + Send;
}

/// Where the ABCI server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    /// `tcp://HOST:PORT` (or a bare `HOST:PORT`).
    Tcp(SocketAddr),
    /// `unix:///path/to/socket`.
    Unix(PathBuf),
}

/// A listen address that does not parse.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid listen address `{input}`: expected `tcp://IP:PORT`, `IP:PORT` or `unix:///path` ({reason})"
)]
pub struct ListenAddrError {
    input: String,
    reason: String,
}

impl FromStr for ListenAddr {
    type Err = ListenAddrError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| ListenAddrError {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = input.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(error("empty socket path"));
            }
            return Ok(Self::Unix(PathBuf::from(path)));
        }
        let address = input.strip_prefix("tcp://").unwrap_or(input);
        address
            .parse()
            .map(Self::Tcp)
            .map_err(|e: std::net::AddrParseError| error(&e.to_string()))
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

impl serde::Serialize for ListenAddr {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The application failed on a consensus call.
    #[error("application failed on {method} (last finalized height {height:?})")]
    Application {
        /// ABCI method name.
        method: &'static str,
        /// Height of the last `FinalizeBlock` seen, if any.
        height: Option<u64>,
        /// The application's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Accepting connections failed.
    #[error("failed to accept an ABCI connection on {listen}")]
    Accept {
        /// The listen address.
        listen: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The server task panicked.
    #[error("ABCI server task panicked")]
    Panicked,
}

impl From<Panicked> for ServerError {
    fn from(_: Panicked) -> Self {
        Self::Panicked
    }
}

/// Server options.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Largest accepted request frame in bytes.
    pub max_frame_bytes: usize,
    /// Where block-phase latencies are recorded.
    pub metrics: Option<Arc<Metrics>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            metrics: None,
        }
    }
}

/// Consensus bookkeeping, behind the consensus lock.
#[derive(Debug, Default)]
struct ConsensusState {
    /// Set once a consensus call failed: nothing more is answered.
    failed: bool,
    last_finalized_height: Option<u64>,
}

struct Shared<A> {
    app: A,
    consensus: Mutex<ConsensusState>,
    config: ServerConfig,
}

/// The running ABCI server.
pub type AbciServer = Service<ListenAddr, ServerError>;

impl Service<ListenAddr, ServerError> {
    /// Binds `listen` and serves ABCI connections until [`Service::shutdown`], until
    /// `cancel` (a parent token) is cancelled, or until a consensus call fails.
    ///
    /// A Unix socket file left over from a previous run is removed before binding.
    pub async fn spawn<A: Application>(
        listen: &ListenAddr,
        app: A,
        config: ServerConfig,
        cancel: &CancellationToken,
    ) -> std::io::Result<Self> {
        let cancel = cancel.child_token();
        let shared = Arc::new(Shared {
            app,
            consensus: Mutex::new(ConsensusState::default()),
            config,
        });
        let (local_addr, task) = match listen {
            ListenAddr::Tcp(addr) => {
                let listener = TcpListener::bind(addr).await?;
                let local = ListenAddr::Tcp(listener.local_addr()?);
                let task = tokio::spawn(accept_loop(
                    TcpAcceptor(listener),
                    local.to_string(),
                    shared,
                    cancel.clone(),
                ));
                (local, task)
            }
            ListenAddr::Unix(path) => {
                remove_stale_socket(path)?;
                let listener = UnixListener::bind(path)?;
                let task = tokio::spawn(accept_loop(
                    UnixAcceptor {
                        listener,
                        path: path.clone(),
                    },
                    listen.to_string(),
                    shared,
                    cancel.clone(),
                ));
                (listen.clone(), task)
            }
        };
        info!(listen = %local_addr, "ABCI server listening");
        Ok(Self::new("ABCI", local_addr, cancel, task))
    }
}

fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::FileTypeExt as _;
            if meta.file_type().is_socket() {
                std::fs::remove_file(path)
            } else {
                Err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!(
                        "{} exists and is not a socket; refusing to replace it",
                        path.display()
                    ),
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

trait Acceptor: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Stream, String)>> + Send;
}

struct TcpAcceptor(TcpListener);

impl Acceptor for TcpAcceptor {
    type Stream = tokio::net::TcpStream;

    async fn accept(&self) -> std::io::Result<(Self::Stream, String)> {
        let (stream, peer) = self.0.accept().await?;
        stream.set_nodelay(true)?;
        Ok((stream, peer.to_string()))
    }
}

struct UnixAcceptor {
    listener: UnixListener,
    path: PathBuf,
}

impl Acceptor for UnixAcceptor {
    type Stream = tokio::net::UnixStream;

    async fn accept(&self) -> std::io::Result<(Self::Stream, String)> {
        let (stream, _) = self.listener.accept().await?;
        Ok((stream, "unix".to_owned()))
    }
}

impl Drop for UnixAcceptor {
    fn drop(&mut self) {
        // Best effort: a stale file is also removed at the next start.
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn accept_loop<A: Application, L: Acceptor>(
    listener: L,
    listen: String,
    shared: Arc<Shared<A>>,
    cancel: CancellationToken,
) -> Result<(), ServerError> {
    let mut connections: JoinSet<Result<(), ServerError>> = JoinSet::new();
    let mut outcome = Ok(());
    loop {
        tokio::select! {
            () = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    debug!(%peer, "ABCI connection accepted");
                    connections.spawn(serve_connection(stream, peer, shared.clone(), cancel.clone()));
                }
                Err(source) => {
                    outcome = Err(ServerError::Accept { listen: listen.clone(), source });
                    break;
                }
            },
            Some(joined) = connections.join_next() => {
                if let Some(error) = connection_failure(joined) {
                    outcome = Err(error);
                    break;
                }
            }
        }
    }
    cancel.cancel();
    while let Some(joined) = connections.join_next().await {
        if let Some(error) = connection_failure(joined) {
            if outcome.is_ok() {
                outcome = Err(error);
            }
        }
    }
    info!(listen, "ABCI server stopped");
    outcome
}

fn connection_failure(
    joined: Result<Result<(), ServerError>, tokio::task::JoinError>,
) -> Option<ServerError> {
    match joined {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(error),
        Err(_) => Some(ServerError::Panicked),
    }
}

/// Reads one length-delimited frame. `Ok(None)` on a clean end of stream before a frame.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max_frame_bytes: usize,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut length: u64 = 0;
    for index in 0..10_u32 {
        let byte = match reader.read_u8().await {
            Ok(byte) => byte,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && index == 0 => {
                return Ok(None)
            }
            Err(e) => return Err(FrameError::Io(e)),
        };
        length |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            let length = usize::try_from(length)
                .ok()
                .filter(|len| *len <= max_frame_bytes)
                .ok_or(FrameError::TooLarge {
                    length,
                    max: max_frame_bytes,
                })?;
            let mut frame = vec![0; length];
            reader
                .read_exact(&mut frame)
                .await
                .map_err(FrameError::Io)?;
            return Ok(Some(frame));
        }
    }
    Err(FrameError::BadLength)
}

async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    response: Response,
) -> std::io::Result<()> {
    let raw: pb::Response = response.into();
    let frame = raw.encode_length_delimited_to_vec();
    writer.write_all(&frame).await
}

#[derive(Debug, thiserror::Error)]
enum FrameError {
    #[error("frame of {length} bytes exceeds the limit of {max} bytes")]
    TooLarge { length: u64, max: usize },
    #[error("frame length prefix is not a valid varint")]
    BadLength,
    #[error("failed to read a frame")]
    Io(#[source] std::io::Error),
}

async fn serve_connection<A: Application, S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    peer: String,
    shared: Arc<Shared<A>>,
    cancel: CancellationToken,
) -> Result<(), ServerError> {
    let (read_half, write_half) = tokio::io::split(stream);
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let mut writer = BufWriter::with_capacity(64 * 1024, write_half);
    loop {
        // Answers go out as soon as no further request is already buffered.
        if reader.buffer().is_empty() {
            if let Err(e) = writer.flush().await {
                debug!(%peer, error = %e, "ABCI connection closed while writing");
                return Ok(());
            }
        }
        let frame = tokio::select! {
            () = cancel.cancelled() => {
                let _ = writer.flush().await;
                return Ok(());
            }
            frame = read_frame(&mut reader, shared.config.max_frame_bytes) => frame,
        };
        let request = match frame {
            Ok(None) => {
                debug!(%peer, "ABCI connection closed by peer");
                return Ok(());
            }
            Ok(Some(bytes)) => decode_request(&bytes),
            Err(FrameError::Io(e)) => {
                debug!(%peer, error = %e, "ABCI connection closed mid-frame");
                return Ok(());
            }
            Err(e) => Err(e.to_string()),
        };
        let request = match request {
            Ok(request) => request,
            Err(reason) => {
                warn!(%peer, %reason, "malformed ABCI request; answering with an exception and closing the connection");
                let exception = Response::Exception(response::Exception {
                    error: format!("malformed request: {reason}"),
                });
                let _ = write_frame(&mut writer, exception).await;
                let _ = writer.flush().await;
                return Ok(());
            }
        };
        let Some(response) = handle(&shared, request).await? else {
            // The application failed earlier on another connection: answer nothing.
            return Ok(());
        };
        if let Err(e) = write_frame(&mut writer, response).await {
            debug!(%peer, error = %e, "ABCI connection closed while writing");
            return Ok(());
        }
    }
}

fn decode_request(bytes: &[u8]) -> Result<Request, String> {
    let raw = pb::Request::decode(bytes).map_err(|e| format!("undecodable protobuf: {e}"))?;
    if raw.value.is_none() {
        return Err("request without a value".to_owned());
    }
    Request::try_from(raw).map_err(|e| format!("invalid request: {e}"))
}

/// Answers one request. `Ok(None)`: the server has failed and answers nothing more.
async fn handle<A: Application>(
    shared: &Shared<A>,
    request: Request,
) -> Result<Option<Response>, ServerError> {
    let app = &shared.app;
    let response = match request {
        Request::Echo(echo) => Response::Echo(response::Echo {
            message: echo.message,
        }),
        Request::Flush => Response::Flush,
        Request::Info(info) => match app.info(info).await {
            Ok(info) => Response::Info(info),
            Err(source) => {
                let mut state = shared.consensus.lock().await;
                return Err(fail(&mut state, "info", Box::new(source)));
            }
        },
        Request::Query(query) => Response::Query(app.query(query).await),
        Request::CheckTx(check) => Response::CheckTx(app.check_tx(check).await),
        Request::ListSnapshots => Response::ListSnapshots(response::ListSnapshots::default()),
        // State sync is not offered: every snapshot is rejected.
        Request::OfferSnapshot(_) => Response::OfferSnapshot(response::OfferSnapshot::Reject),
        Request::LoadSnapshotChunk(_) => {
            Response::LoadSnapshotChunk(response::LoadSnapshotChunk::default())
        }
        Request::ApplySnapshotChunk(_) => {
            Response::ApplySnapshotChunk(response::ApplySnapshotChunk {
                result: tendermint::abci::response::ApplySnapshotChunkResult::Abort,
                refetch_chunks: Vec::new(),
                reject_senders: Vec::new(),
            })
        }
        Request::InitChain(req) => {
            return handle_consensus(shared, ConsensusRequest::InitChain(req)).await
        }
        Request::PrepareProposal(req) => {
            return handle_consensus(shared, ConsensusRequest::PrepareProposal(req)).await
        }
        Request::ProcessProposal(req) => {
            return handle_consensus(shared, ConsensusRequest::ProcessProposal(req)).await
        }
        Request::FinalizeBlock(req) => {
            return handle_consensus(shared, ConsensusRequest::FinalizeBlock(req)).await
        }
        Request::Commit => return handle_consensus(shared, ConsensusRequest::Commit).await,
        Request::ExtendVote(req) => {
            return handle_consensus(shared, ConsensusRequest::ExtendVote(req)).await
        }
        Request::VerifyVoteExtension(req) => {
            return handle_consensus(shared, ConsensusRequest::VerifyVoteExtension(req)).await
        }
    };
    Ok(Some(response))
}

async fn handle_consensus<A: Application>(
    shared: &Shared<A>,
    request: ConsensusRequest,
) -> Result<Option<Response>, ServerError> {
    let mut state = shared.consensus.lock().await;
    if state.failed {
        return Ok(None);
    }
    let app = &shared.app;
    let started = Instant::now();
    let (method, result) = match request {
        ConsensusRequest::InitChain(req) => (
            "init_chain",
            app.init_chain(req).await.map(Response::InitChain),
        ),
        ConsensusRequest::PrepareProposal(req) => (
            "prepare_proposal",
            app.prepare_proposal(req)
                .await
                .map(Response::PrepareProposal),
        ),
        ConsensusRequest::ProcessProposal(req) => (
            "process_proposal",
            app.process_proposal(req)
                .await
                .map(Response::ProcessProposal),
        ),
        ConsensusRequest::FinalizeBlock(req) => {
            state.last_finalized_height = Some(req.height.value());
            (
                "finalize_block",
                app.finalize_block(req).await.map(Response::FinalizeBlock),
            )
        }
        ConsensusRequest::Commit => ("commit", app.commit().await.map(Response::Commit)),
        // Vote extensions are not used: extend with nothing, accept only nothing.
        ConsensusRequest::ExtendVote(_) => (
            "extend_vote",
            Ok(Response::ExtendVote(response::ExtendVote {
                vote_extension: Bytes::new(),
            })),
        ),
        ConsensusRequest::VerifyVoteExtension(req) => (
            "verify_vote_extension",
            Ok(Response::VerifyVoteExtension(
                if req.vote_extension.is_empty() {
                    response::VerifyVoteExtension::Accept
                } else {
                    response::VerifyVoteExtension::Reject
                },
            )),
        ),
    };
    match result {
        Ok(response) => {
            if let Some(metrics) = &shared.config.metrics {
                if !matches!(method, "extend_vote" | "verify_vote_extension") {
                    metrics.observe_phase(method, started.elapsed().as_secs_f64());
                }
            }
            Ok(Some(response))
        }
        Err(source) => Err(fail(&mut state, method, Box::new(source))),
    }
}

/// Marks the server failed and logs why.
fn fail(
    state: &mut ConsensusState,
    method: &'static str,
    source: Box<dyn std::error::Error + Send + Sync>,
) -> ServerError {
    state.failed = true;
    let error = ServerError::Application {
        method,
        height: state.last_finalized_height,
        source,
    };
    error!(
        error = %error_chain(&error),
        "application failed; stopping without answering so CometBFT can replay after a restart"
    );
    error
}

/// Formats an error and its sources as `a: b: c`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            "tcp://127.0.0.1:26658".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:26658".parse().unwrap())
        );
        assert_eq!(
            "127.0.0.1:1".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(
            "unix:///tmp/x.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/tmp/x.sock".into())
        );
        let error = "tcp://localhost"
            .parse::<ListenAddr>()
            .unwrap_err()
            .to_string();
        assert!(error.contains("tcp://localhost"), "{error}");
        assert!("unix://".parse::<ListenAddr>().is_err());
    }

    #[tokio::test]
    async fn frames_are_bounded_and_validated() {
        let mut too_large: &[u8] = &[0x81, 0x01]; // 129
        assert!(matches!(
            read_frame(&mut too_large, 128).await,
            Err(FrameError::TooLarge { length: 129, .. })
        ));
        let mut bad: &[u8] = &[0xff; 11];
        assert!(matches!(
            read_frame(&mut bad, 128).await,
            Err(FrameError::BadLength)
        ));
        let mut empty: &[u8] = &[];
        assert!(matches!(read_frame(&mut empty, 128).await, Ok(None)));
        let mut truncated: &[u8] = &[0x05, 1, 2];
        assert!(matches!(
            read_frame(&mut truncated, 128).await,
            Err(FrameError::Io(_))
        ));
        let mut ok: &[u8] = &[0x02, 7, 8];
        assert_eq!(read_frame(&mut ok, 128).await.unwrap(), Some(vec![7, 8]));
    }

    #[test]
    fn undecodable_requests_are_reported() {
        assert!(decode_request(&[0xff, 0xff])
            .unwrap_err()
            .contains("undecodable"));
        assert!(decode_request(&[]).unwrap_err().contains("without a value"));
    }
}
