//! `TransactionService`: submitting transactions through the consensus node and asking
//! where they are.
#![expect(
    clippy::result_large_err,
    reason = "helpers of tonic handlers return tonic::Status, as the handlers do"
)]

use std::{sync::Arc, time::Duration};

use tandem_proto::sequencerblock::v1::{
    transaction_service_server::TransactionService, GetTransactionStatusRequest,
    GetTransactionStatusResponse, SubmitTransactionRequest, SubmitTransactionResponse,
    TransactionStatus,
};
use tendermint_rpc::{client::CompatMode, Client as _, HttpClient, HttpClientUrl};
use tonic::{Request, Response, Status};
use tracing::warn;

use super::{BlockSource, TxLocation};

/// How long `SubmitTransaction` waits for the consensus node's answer.
pub const CHECK_TX_FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// The `TransactionService` implementation.
#[derive(Debug)]
pub struct TransactionApi<S> {
    source: Arc<S>,
    rpc: HttpClient,
    rpc_url: String,
}

impl<S> TransactionApi<S> {
    /// A service forwarding to the `CometBFT` RPC at `rpc_url` (`http://host:port`).
    pub fn new(source: Arc<S>, rpc_url: &str) -> Result<Self, tendermint_rpc::Error> {
        let url: HttpClientUrl = rpc_url.parse()?;
        let rpc = HttpClient::builder(url)
            .compat_mode(CompatMode::V0_38)
            .timeout(CHECK_TX_FORWARD_TIMEOUT)
            .build()?;
        Ok(Self {
            source,
            rpc,
            rpc_url: rpc_url.to_owned(),
        })
    }
}

fn parse_hash(bytes: &[u8]) -> Result<[u8; 32], Status> {
    bytes.try_into().map_err(|_| {
        Status::invalid_argument(format!(
            "hash must be 32 bytes (sha256 of the tx), got {}",
            bytes.len()
        ))
    })
}

#[tonic::async_trait]
impl<S: BlockSource> TransactionService for TransactionApi<S> {
    async fn submit_transaction(
        &self,
        request: Request<SubmitTransactionRequest>,
    ) -> Result<Response<SubmitTransactionResponse>, Status> {
        let tx = request.into_inner().tx_bytes;
        if tx.is_empty() {
            return Err(Status::invalid_argument("tx_bytes is empty"));
        }
        let answer = self.rpc.broadcast_tx_sync(tx).await.map_err(|e| {
            warn!(rpc = %self.rpc_url, error = %e, "failed to forward a transaction");
            Status::unavailable(format!(
                "failed to forward the transaction to CometBFT RPC {}: {e}",
                self.rpc_url
            ))
        })?;
        Ok(Response::new(SubmitTransactionResponse {
            hash: answer.hash.as_bytes().to_vec(),
            code: answer.code.value(),
            log: answer.log,
            codespace: answer.codespace,
        }))
    }

    async fn get_transaction_status(
        &self,
        request: Request<GetTransactionStatusRequest>,
    ) -> Result<Response<GetTransactionStatusResponse>, Status> {
        let hash = parse_hash(&request.into_inner().hash)?;
        let location = self.source.tx_status(&hash).await.map_err(|e| {
            warn!(hash = %hex::encode(hash), error = %crate::server::error_chain(&*e), "failed to read a tx status");
            Status::internal(format!("failed to read the status of tx {}: {e}", hex::encode(hash)))
        })?;
        let response = match location {
            TxLocation::Unknown => GetTransactionStatusResponse {
                status: TransactionStatus::Unknown.into(),
                ..GetTransactionStatusResponse::default()
            },
            TxLocation::Pending => GetTransactionStatusResponse {
                status: TransactionStatus::Pending.into(),
                ..GetTransactionStatusResponse::default()
            },
            TxLocation::Committed {
                height,
                index,
                code,
                log,
            } => GetTransactionStatusResponse {
                status: TransactionStatus::Committed.into(),
                height,
                index,
                code,
                log,
            },
        };
        Ok(Response::new(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_must_be_32_bytes() {
        assert_eq!(parse_hash(&[1; 32]).unwrap(), [1; 32]);
        let error = parse_hash(&[1; 31]).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(error.message().contains("got 31"));
    }
}
