//! ABCI 2.0 socket client: the four connections `CometBFT` opens to an application.
//!
//! Frames are protobuf `tendermint.abci.Request`/`Response` messages prefixed with their
//! length as an unsigned varint (`CometBFT` 0.38). Each connection pipelines requests: a writer
//! task sends them in order and follows every burst with a `Flush`, a reader task hands the
//! responses back in the same order. Any I/O or protocol error closes the connection and fails
//! every call waiting on it; the node then reconnects and repeats the handshake.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use bytes::{Buf, BytesMut};
use prost::Message;
use tendermint_proto::v0_38::abci::{
    request, response, Request, RequestCheckTx, RequestCommit, RequestFinalizeBlock, RequestFlush,
    RequestInfo, RequestInitChain, RequestPrepareProposal, RequestProcessProposal, RequestQuery,
    Response, ResponseCheckTx, ResponseCommit, ResponseFinalizeBlock, ResponseInfo,
    ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal, ResponseQuery,
};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::{mpsc, oneshot, Mutex},
};
use tokio_util::sync::CancellationToken;

use crate::config::AppAddress;

/// Largest ABCI response accepted from the application (a block's results can be large).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Errors talking to the application.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AbciError {
    /// The connection could not be opened.
    #[error("failed to connect to the ABCI application at {address}: {message}")]
    Connect {
        /// The application address.
        address: String,
        /// The I/O error.
        message: String,
    },
    /// The connection broke or was closed.
    #[error("ABCI {connection} connection closed: {message}")]
    Closed {
        /// Which of the four connections.
        connection: &'static str,
        /// Why.
        message: String,
    },
    /// The application answered with an exception.
    #[error("ABCI application raised an exception on {method}: {message}")]
    Exception {
        /// The request method.
        method: &'static str,
        /// The exception text.
        message: String,
    },
    /// The application answered with the wrong response type.
    #[error("ABCI application answered {method} with an unexpected response")]
    UnexpectedResponse {
        /// The request method.
        method: &'static str,
    },
}

/// The four ABCI connections to one application.
#[derive(Clone)]
pub struct AppConnections {
    /// Consensus: `InitChain`, `PrepareProposal`, `ProcessProposal`, `FinalizeBlock`, Commit.
    pub consensus: Connection,
    /// Mempool: `CheckTx`.
    pub mempool: Connection,
    /// Query: Info, Query.
    pub query: Connection,
    /// Snapshot: opened as `CometBFT` does, unused by a single validator.
    pub snapshot: Connection,
}

impl AppConnections {
    /// Opens the four connections.
    pub async fn connect(
        address: &AppAddress,
        cancel: &CancellationToken,
    ) -> Result<Self, AbciError> {
        Ok(Self {
            consensus: Connection::open(address, "consensus", cancel).await?,
            mempool: Connection::open(address, "mempool", cancel).await?,
            query: Connection::open(address, "query", cancel).await?,
            snapshot: Connection::open(address, "snapshot", cancel).await?,
        })
    }

    /// Closes all four connections.
    pub fn close(&self) {
        self.consensus.close();
        self.mempool.close();
        self.query.close();
        self.snapshot.close();
    }

    /// Waits until any connection has failed or was closed.
    pub async fn closed(&self) {
        tokio::select! {
            () = self.consensus.stop.cancelled() => {}
            () = self.mempool.stop.cancelled() => {}
            () = self.query.stop.cancelled() => {}
            () = self.snapshot.stop.cancelled() => {}
        }
    }
}

type Pending = oneshot::Sender<Result<Response, AbciError>>;

/// One pipelined ABCI connection.
#[derive(Clone)]
pub struct Connection {
    name: &'static str,
    requests: mpsc::UnboundedSender<(Request, Pending)>,
    stop: CancellationToken,
    failure: Arc<Mutex<Option<String>>>,
}

impl Connection {
    async fn open(
        address: &AppAddress,
        name: &'static str,
        cancel: &CancellationToken,
    ) -> Result<Self, AbciError> {
        let connect_error = |e: std::io::Error| AbciError::Connect {
            address: address.to_string(),
            message: e.to_string(),
        };
        let stop = cancel.child_token();
        let (tx, rx) = mpsc::unbounded_channel();
        let failure = Arc::new(Mutex::new(None));
        match address {
            AppAddress::Tcp(hostport) => {
                let stream = tokio::net::TcpStream::connect(hostport)
                    .await
                    .map_err(connect_error)?;
                stream.set_nodelay(true).map_err(connect_error)?;
                let (read, write) = stream.into_split();
                spawn_io(name, read, write, rx, stop.clone(), failure.clone());
            }
            AppAddress::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(connect_error)?;
                let (read, write) = stream.into_split();
                spawn_io(name, read, write, rx, stop.clone(), failure.clone());
            }
        }
        Ok(Self {
            name,
            requests: tx,
            stop,
            failure,
        })
    }

    /// Closes this connection; calls in flight fail.
    pub fn close(&self) {
        self.stop.cancel();
    }

    async fn closed_error(&self) -> AbciError {
        let message = self
            .failure
            .lock()
            .await
            .clone()
            .unwrap_or_else(|| "closed".to_owned());
        AbciError::Closed {
            connection: self.name,
            message,
        }
    }

    /// Sends one request and waits for its response.
    pub async fn call(&self, request: request::Value) -> Result<response::Value, AbciError> {
        let method = method_name(&request);
        let (done, wait) = oneshot::channel();
        if self
            .requests
            .send((
                Request {
                    value: Some(request),
                },
                done,
            ))
            .is_err()
        {
            return Err(self.closed_error().await);
        }
        let response = match wait.await {
            Ok(result) => result?,
            Err(_) => return Err(self.closed_error().await),
        };
        match response.value {
            Some(response::Value::Exception(e)) => Err(AbciError::Exception {
                method,
                message: e.error,
            }),
            Some(value) => Ok(value),
            None => Err(AbciError::UnexpectedResponse { method }),
        }
    }

    /// `Info`.
    pub async fn info(&self, req: RequestInfo) -> Result<ResponseInfo, AbciError> {
        match self.call(request::Value::Info(req)).await? {
            response::Value::Info(r) => Ok(r),
            _ => Err(AbciError::UnexpectedResponse { method: "Info" }),
        }
    }

    /// `InitChain`.
    pub async fn init_chain(&self, req: RequestInitChain) -> Result<ResponseInitChain, AbciError> {
        match self.call(request::Value::InitChain(req)).await? {
            response::Value::InitChain(r) => Ok(r),
            _ => Err(AbciError::UnexpectedResponse {
                method: "InitChain",
            }),
        }
    }

    /// `Query`.
    pub async fn query(&self, req: RequestQuery) -> Result<ResponseQuery, AbciError> {
        match self.call(request::Value::Query(req)).await? {
            response::Value::Query(r) => Ok(r),
            _ => Err(AbciError::UnexpectedResponse { method: "Query" }),
        }
    }

    /// `CheckTx`.
    pub async fn check_tx(&self, req: RequestCheckTx) -> Result<ResponseCheckTx, AbciError> {
        match self.call(request::Value::CheckTx(req)).await? {
            response::Value::CheckTx(r) => Ok(r),
            _ => Err(AbciError::UnexpectedResponse { method: "CheckTx" }),
        }
    }

    /// `PrepareProposal`.
    pub async fn prepare_proposal(
        &self,
        req: RequestPrepareProposal,
    ) -> Result<ResponsePrepareProposal, AbciError> {
        match self.call(request::Value::PrepareProposal(req)).await? {
            response::Value::PrepareProposal(r) => Ok(r),
            _ => Err(AbciError::UnexpectedResponse {
                method: "PrepareProposal",
            }),
        }
    }

    /// `ProcessProposal`.
    pub async fn process_proposal(
        &self,
        req: RequestProcessProposal,
    ) -> Result<ResponseProcessProposal, AbciError> {
        match self.call(request::Value::ProcessProposal(req)).await? {
            response::Value::ProcessProposal(r) => Ok(r),
            _ => Err(AbciError::UnexpectedResponse {
                method: "ProcessProposal",
            }),
        }
    }

    /// `FinalizeBlock`.
    pub async fn finalize_block(
        &self,
        req: RequestFinalizeBlock,
    ) -> Result<ResponseFinalizeBlock, AbciError> {
        match self.call(request::Value::FinalizeBlock(req)).await? {
            response::Value::FinalizeBlock(r) => Ok(r),
            _ => Err(AbciError::UnexpectedResponse {
                method: "FinalizeBlock",
            }),
        }
    }

    /// `Commit`.
    pub async fn commit(&self) -> Result<ResponseCommit, AbciError> {
        match self.call(request::Value::Commit(RequestCommit {})).await? {
            response::Value::Commit(r) => Ok(r),
            _ => Err(AbciError::UnexpectedResponse { method: "Commit" }),
        }
    }
}

fn method_name(request: &request::Value) -> &'static str {
    match request {
        request::Value::Echo(_) => "Echo",
        request::Value::Flush(_) => "Flush",
        request::Value::Info(_) => "Info",
        request::Value::InitChain(_) => "InitChain",
        request::Value::Query(_) => "Query",
        request::Value::CheckTx(_) => "CheckTx",
        request::Value::Commit(_) => "Commit",
        request::Value::ListSnapshots(_) => "ListSnapshots",
        request::Value::OfferSnapshot(_) => "OfferSnapshot",
        request::Value::LoadSnapshotChunk(_) => "LoadSnapshotChunk",
        request::Value::ApplySnapshotChunk(_) => "ApplySnapshotChunk",
        request::Value::PrepareProposal(_) => "PrepareProposal",
        request::Value::ProcessProposal(_) => "ProcessProposal",
        request::Value::ExtendVote(_) => "ExtendVote",
        request::Value::VerifyVoteExtension(_) => "VerifyVoteExtension",
        request::Value::FinalizeBlock(_) => "FinalizeBlock",
    }
}

/// What the reader expects next: a caller's response, or the response to a `Flush` it sent.
enum Expected {
    Caller(Pending),
    Flush,
}

fn spawn_io<R, W>(
    name: &'static str,
    read: R,
    write: W,
    requests: mpsc::UnboundedReceiver<(Request, Pending)>,
    stop: CancellationToken,
    failure: Arc<Mutex<Option<String>>>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let queue: Arc<std::sync::Mutex<VecDeque<Expected>>> = Arc::default();
    tokio::spawn({
        let queue = queue.clone();
        let stop = stop.clone();
        let failure = failure.clone();
        async move {
            let result = tokio::select! {
                r = write_loop(write, requests, queue.clone()) => r,
                () = stop.cancelled() => Ok(()),
            };
            finish(name, result, &stop, &failure, &queue).await;
        }
    });
    tokio::spawn(async move {
        let result = tokio::select! {
            r = read_loop(read, queue.clone()) => r,
            () = stop.cancelled() => Ok(()),
        };
        finish(name, result, &stop, &failure, &queue).await;
    });
}

async fn finish(
    name: &'static str,
    result: Result<(), String>,
    stop: &CancellationToken,
    failure: &Mutex<Option<String>>,
    queue: &std::sync::Mutex<VecDeque<Expected>>,
) {
    let message = match result {
        Ok(()) => "closed".to_owned(),
        Err(e) => e,
    };
    {
        let mut failure = failure.lock().await;
        if failure.is_none() {
            *failure = Some(message.clone());
        }
    }
    stop.cancel();
    let drained: Vec<Expected> = queue
        .lock()
        .map(|mut q| q.drain(..).collect())
        .unwrap_or_default();
    for expected in drained {
        if let Expected::Caller(done) = expected {
            let _ = done.send(Err(AbciError::Closed {
                connection: name,
                message: message.clone(),
            }));
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut requests: mpsc::UnboundedReceiver<(Request, Pending)>,
    queue: Arc<std::sync::Mutex<VecDeque<Expected>>>,
) -> Result<(), String> {
    let mut buf = BytesMut::new();
    let flush = Request {
        value: Some(request::Value::Flush(RequestFlush {})),
    };
    while let Some((request, done)) = requests.recv().await {
        let mut next = Some((request, done));
        // Write every request already queued, then one Flush for the whole burst.
        while let Some((request, done)) = next.take() {
            encode_frame(&request, &mut buf);
            push(&queue, Expected::Caller(done))?;
            next = requests.try_recv().ok();
        }
        encode_frame(&flush, &mut buf);
        push(&queue, Expected::Flush)?;
        write
            .write_all(&buf)
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        write
            .flush()
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        buf.clear();
    }
    Ok(())
}

fn push(queue: &std::sync::Mutex<VecDeque<Expected>>, expected: Expected) -> Result<(), String> {
    queue
        .lock()
        .map_err(|_| "response queue poisoned".to_owned())?
        .push_back(expected);
    Ok(())
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    queue: Arc<std::sync::Mutex<VecDeque<Expected>>>,
) -> Result<(), String> {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    loop {
        let response = loop {
            if let Some(response) = decode_frame::<Response>(&mut buf, MAX_RESPONSE_BYTES)? {
                break response;
            }
            let n = read
                .read_buf(&mut buf)
                .await
                .map_err(|e| format!("read failed: {e}"))?;
            if n == 0 {
                return Err("the application closed the connection".to_owned());
            }
        };
        let expected = queue
            .lock()
            .map_err(|_| "response queue poisoned".to_owned())?
            .pop_front()
            .ok_or_else(|| "the application sent a response nobody asked for".to_owned())?;
        match (expected, response.value) {
            (Expected::Flush, Some(response::Value::Flush(_))) => {}
            (Expected::Flush, _) => {
                return Err("the application answered Flush with another response".to_owned())
            }
            (Expected::Caller(done), value) => {
                let _ = done.send(Ok(Response { value }));
            }
        }
    }
}

/// Appends `message` to `buf` with its varint length prefix.
pub fn encode_frame<M: Message>(message: &M, buf: &mut BytesMut) {
    let len = message.encoded_len();
    prost::encoding::encode_varint(len as u64, buf);
    message
        .encode(buf)
        .expect("BytesMut grows as needed, so encoding cannot run out of space");
}

/// Takes one length-prefixed message from the front of `buf`, if a whole one is there.
pub fn decode_frame<M: Message + Default>(
    buf: &mut BytesMut,
    max_len: usize,
) -> Result<Option<M>, String> {
    let mut peek = &buf[..];
    let len = match prost::encoding::decode_varint(&mut peek) {
        Ok(len) => len,
        // A varint is at most 10 bytes: fewer means it is not complete yet.
        Err(_) if buf.len() < 10 => return Ok(None),
        Err(e) => return Err(format!("invalid frame length: {e}")),
    };
    let len = usize::try_from(len).map_err(|_| format!("frame length {len} is too large"))?;
    if len > max_len {
        return Err(format!(
            "frame of {len} bytes exceeds the limit of {max_len} bytes"
        ));
    }
    let prefix = buf.len() - peek.len();
    if peek.len() < len {
        buf.reserve(prefix + len - buf.len());
        return Ok(None);
    }
    buf.advance(prefix);
    let frame = buf.split_to(len);
    M::decode(frame.freeze())
        .map(Some)
        .map_err(|e| format!("invalid protobuf frame: {e}"))
}

/// Connects, retrying until `deadline` passes or `cancel` fires.
pub async fn connect_with_retry(
    address: &AppAddress,
    cancel: &CancellationToken,
    deadline: Option<Duration>,
) -> Result<AppConnections, AbciError> {
    let started = tokio::time::Instant::now();
    let mut delay = Duration::from_millis(10);
    loop {
        match AppConnections::connect(address, cancel).await {
            Ok(conns) => return Ok(conns),
            Err(e) => {
                if deadline.is_some_and(|d| started.elapsed() >= d) || cancel.is_cancelled() {
                    return Err(e);
                }
                tracing::debug!(error = %e, "application not reachable yet, retrying");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => {
                return Err(AbciError::Connect {
                    address: address.to_string(),
                    message: "shutting down".to_owned(),
                })
            }
        }
        delay = (delay * 2).min(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_wait_for_whole_messages() {
        let request = Request {
            value: Some(request::Value::CheckTx(RequestCheckTx {
                tx: vec![7; 300].into(),
                r#type: 0,
            })),
        };
        let mut buf = BytesMut::new();
        encode_frame(&request, &mut buf);
        encode_frame(&request, &mut buf);
        let whole = buf.clone();
        let mut partial = BytesMut::from(&whole[..5]);
        assert_eq!(
            decode_frame::<Request>(&mut partial, 1 << 20).unwrap(),
            None
        );
        let first = decode_frame::<Request>(&mut buf, 1 << 20).unwrap();
        assert_eq!(first, Some(request.clone()));
        let second = decode_frame::<Request>(&mut buf, 1 << 20).unwrap();
        assert_eq!(second, Some(request));
        assert!(buf.is_empty());
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        let mut buf = BytesMut::new();
        prost::encoding::encode_varint(1 << 30, &mut buf);
        let err = decode_frame::<Request>(&mut buf, 1 << 20).unwrap_err();
        assert!(err.contains("exceeds"), "{err}");
        let mut bad = BytesMut::from(&[0xff_u8; 12][..]);
        assert!(decode_frame::<Request>(&mut bad, 1 << 20).is_err());
    }
}
