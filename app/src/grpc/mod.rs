//! The gRPC API of `tandemd` (tonic), on its own port.
//!
//! - [`SequencerApi`] serves `tandem.sequencerblock.v1.SequencerService`: committed sequencer
//!   blocks, whole or filtered to some rollups with their proofs, as a stream (stored blocks
//!   first, then live ones), and the pending mempool sequence of an account.
//! - [`TransactionApi`] serves `tandem.sequencerblock.v1.TransactionService`: it forwards a
//!   `TxRaw` to the consensus node's `broadcast_tx_sync` and reports where a tx is.
//!
//! Both read through [`BlockSource`], which the application implements without waiting on
//! the consensus connection.

mod sequencer;
mod transaction;

use std::{future::Future, net::SocketAddr, sync::Arc};

use tandem_core::SequencerBlock;
use tandem_proto::sequencerblock::v1::{
    sequencer_service_server::SequencerServiceServer,
    transaction_service_server::TransactionServiceServer,
};
use tokio::{net::TcpListener, sync::broadcast};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::service::Service;

pub use self::{
    sequencer::{SequencerApi, MAX_ROLLUP_IDS_PER_REQUEST},
    transaction::{TransactionApi, CHECK_TX_FORWARD_TIMEOUT},
};

/// A boxed error from the block source.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Where a transaction is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxLocation {
    /// Never seen, or dropped from the mempool.
    Unknown,
    /// Accepted into the mempool, not yet committed.
    Pending,
    /// Committed in a block.
    Committed {
        /// Block height.
        height: u64,
        /// Index of the tx in the block.
        index: u32,
        /// Execution result code.
        code: u32,
        /// Execution log.
        log: String,
    },
}

/// What the gRPC services read. Every method answers without waiting on a block being
/// finalized.
pub trait BlockSource: Send + Sync + 'static {
    /// The account address type (bech32 text on the wire).
    type Address: std::str::FromStr<Err: std::fmt::Display> + std::fmt::Display + Send + Sync;

    /// The committed sequencer block at `height`, if stored.
    fn sequencer_block(
        &self,
        height: u64,
    ) -> impl Future<Output = Result<Option<Arc<SequencerBlock>>, SourceError>> + Send;
    /// Height of the last committed block (0 before the first).
    fn latest_block_height(&self) -> u64;
    /// Committed blocks as they are persisted (sent after Commit).
    fn subscribe_blocks(&self) -> broadcast::Receiver<Arc<SequencerBlock>>;
    /// `(sequence, account_number)` the next mempool tx of `address` must carry; `None`
    /// when the account does not exist.
    fn pending_sequence(
        &self,
        address: &Self::Address,
    ) -> impl Future<Output = Result<Option<(u64, u64)>, SourceError>> + Send;
    /// Where the tx with this hash is.
    fn tx_status(
        &self,
        hash: &[u8; 32],
    ) -> impl Future<Output = Result<TxLocation, SourceError>> + Send;
}

/// gRPC server options.
#[derive(Clone, Debug)]
pub struct GrpcConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// `CometBFT` RPC URL for `SubmitTransaction`.
    pub cometbft_rpc: String,
}

/// The running gRPC server.
pub type GrpcServer = Service<SocketAddr, eyre::Report>;

/// Why the gRPC server could not start.
#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    /// The listen address cannot be bound.
    #[error("failed to bind the gRPC listener on {listen}")]
    Bind {
        /// The address.
        listen: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `CometBFT` RPC URL is not usable.
    #[error("invalid CometBFT RPC URL `{url}`")]
    RpcUrl {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: tendermint_rpc::Error,
    },
}

impl Service<SocketAddr, eyre::Report> {
    /// Binds and serves both services until [`Service::shutdown`] or until `cancel`
    /// (a parent token) is cancelled. Open streams end at shutdown.
    pub async fn spawn<S: BlockSource>(
        config: &GrpcConfig,
        source: Arc<S>,
        cancel: &CancellationToken,
    ) -> Result<Self, GrpcError> {
        let cancel = cancel.child_token();
        let transactions =
            TransactionApi::new(source.clone(), &config.cometbft_rpc).map_err(|source| {
                GrpcError::RpcUrl {
                    url: config.cometbft_rpc.clone(),
                    source,
                }
            })?;
        let sequencer = SequencerApi::new(source, cancel.clone());
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| GrpcError::Bind {
                    listen: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| GrpcError::Bind {
            listen: config.listen,
            source,
        })?;
        let shutdown = cancel.clone();
        let serve = tonic::transport::Server::builder()
            .add_service(SequencerServiceServer::new(sequencer))
            .add_service(TransactionServiceServer::new(transactions))
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(listener),
                shutdown.cancelled_owned(),
            );
        let task = tokio::spawn(async move {
            use eyre::WrapErr as _;
            serve.await.wrap_err("gRPC server failed")
        });
        info!(listen = %local_addr, "gRPC server listening");
        Ok(Self::new("gRPC", local_addr, cancel, task))
    }
}
