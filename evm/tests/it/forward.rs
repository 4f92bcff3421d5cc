//! `eth_sendRawTransaction` with a forwarder: the bytes reach the conductor's gRPC
//! `ForwarderService` with the rollup id, and nothing enters the local pool.

use std::time::Duration;

use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tandem_proto::conductor::v1::{
    forwarder_service_server::{ForwarderService, ForwarderServiceServer},
    SubmitRollupTransactionRequest, SubmitRollupTransactionResponse,
};
use tokio::sync::mpsc;

use crate::support::{produce_block, raw, sign_1559, signer, TestNode, DEV_KEY};

struct Recorder {
    received: mpsc::UnboundedSender<SubmitRollupTransactionRequest>,
}

#[tonic::async_trait]
impl ForwarderService for Recorder {
    async fn submit_rollup_transaction(
        &self,
        request: tonic::Request<SubmitRollupTransactionRequest>,
    ) -> Result<tonic::Response<SubmitRollupTransactionResponse>, tonic::Status> {
        let request = request.into_inner();
        let hash = Sha256::digest(&request.transaction).to_vec();
        self.received
            .send(request)
            .map_err(|_| tonic::Status::internal("test receiver gone"))?;
        Ok(tonic::Response::new(SubmitRollupTransactionResponse {
            hash,
        }))
    }
}

#[tokio::test]
async fn raw_transactions_are_forwarded_with_the_rollup_id() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(ForwarderServiceServer::new(Recorder {
                received: received_tx,
            }))
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    let rollup_id: tandem_evm::forwarder::RollupId = "name:demo".parse().unwrap();
    let node = TestNode::start_full(
        tandem_evm::genesis::dev_genesis(),
        None,
        Some((format!("http://{addr}"), rollup_id)),
    )
    .await;

    let dev = signer(DEV_KEY);
    let tx = raw(&sign_1559(
        &dev,
        0,
        TxKind::Call(Address::repeat_byte(0x42)),
        U256::from(9),
        Bytes::new(),
        21_000,
    ));
    let hash = node
        .rpc("eth_sendRawTransaction", json!([tx]))
        .await
        .unwrap();
    assert_eq!(hash, json!(alloy_primitives::keccak256(&tx)));
    let request = tokio::time::timeout(Duration::from_secs(10), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(request.rollup_id, Sha256::digest(b"demo").to_vec());
    assert_eq!(request.transaction, tx.to_vec());

    // Forwarded transactions do not enter the local pool.
    let genesis = node
        .rpc("eth_getBlockByNumber", json!(["0x0", false]))
        .await
        .unwrap();
    let genesis: B256 = serde_json::from_value(genesis["hash"].clone()).unwrap();
    let payload = produce_block(&node, genesis, 1_700_000_000, &[], false).await;
    assert_eq!(payload["transactions"], json!([]));

    // A forwarder that is down is an error the caller sees.
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let next = raw(&sign_1559(
        &dev,
        0,
        TxKind::Call(Address::repeat_byte(0x43)),
        U256::from(9),
        Bytes::new(),
        21_000,
    ));
    let err = node
        .rpc("eth_sendRawTransaction", json!([next]))
        .await
        .unwrap_err();
    assert!(err.1.contains("forwarder"), "{err:?}");
    node.stop().await;
}
