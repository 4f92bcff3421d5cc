//! Helpers shared by the integration tests: raw ABCI frames, deadlines, request builders.

use prost::Message as _;
use tendermint_proto::{
    google::protobuf::Timestamp,
    v0_38::abci::{self as pb, request, response},
};

/// A minimal blocking ABCI client over any stream, for the requests `tendermint-abci`'s
/// client does not offer (`PrepareProposal`, `ProcessProposal`) and for Unix sockets. It writes
/// the frames with `tendermint-proto` `v0_38` types and prost's length delimiting.
pub(crate) struct RawClient<S> {
    stream: S,
}

impl<S: std::io::Read + std::io::Write> RawClient<S> {
    pub(crate) fn new(stream: S) -> Self {
        Self { stream }
    }

    pub(crate) fn send(&mut self, value: request::Value) {
        let frame = pb::Request { value: Some(value) }.encode_length_delimited_to_vec();
        self.stream.write_all(&frame).unwrap();
    }

    pub(crate) fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one response; `None` when the server closed the connection.
    pub(crate) fn receive(&mut self) -> Option<response::Value> {
        let mut length: u64 = 0;
        for shift in 0..10 {
            let mut byte = [0u8; 1];
            if self.stream.read_exact(&mut byte).is_err() {
                return None;
            }
            length |= u64::from(byte[0] & 0x7f) << (7 * shift);
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut frame = vec![0; usize::try_from(length).unwrap()];
        self.stream.read_exact(&mut frame).ok()?;
        Some(
            pb::Response::decode(frame.as_slice())
                .unwrap()
                .value
                .unwrap(),
        )
    }

    pub(crate) fn call(&mut self, value: request::Value) -> response::Value {
        self.send(value);
        self.receive().expect("server closed the connection")
    }
}

impl RawClient<std::net::TcpStream> {
    /// Closes the sending half: the server reads the end of the stream.
    pub(crate) fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

/// A block time derived from the height (no wall clock).
pub(crate) fn block_time(height: i64) -> Timestamp {
    Timestamp {
        seconds: 1_700_000_000 + height,
        nanos: 0,
    }
}

/// A `FinalizeBlock` request for `height` carrying `txs`.
pub(crate) fn finalize_request(
    height: i64,
    txs: Vec<Vec<u8>>,
    hash: [u8; 32],
) -> pb::RequestFinalizeBlock {
    pb::RequestFinalizeBlock {
        txs: txs.into_iter().map(Into::into).collect(),
        decided_last_commit: Some(pb::CommitInfo {
            round: 0,
            votes: Vec::new(),
        }),
        misbehavior: Vec::new(),
        hash: hash.to_vec().into(),
        height,
        time: Some(block_time(height)),
        next_validators_hash: vec![0; 32].into(),
        proposer_address: vec![7; 20].into(),
    }
}
