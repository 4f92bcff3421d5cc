//! `SequencerService`: committed sequencer blocks for rollups.
#![expect(
    clippy::result_large_err,
    reason = "helpers of tonic handlers return tonic::Status, as the handlers do"
)]

use std::{pin::Pin, sync::Arc};

use futures::Stream;
use tandem_core::{RollupId, SequencerBlock};
use tandem_proto::sequencerblock::v1::{
    self as raw, sequencer_service_server::SequencerService, GetFilteredSequencerBlockRequest,
    GetPendingSequenceRequest, GetPendingSequenceResponse, GetSequencerBlockRequest,
    StreamFilteredSequencerBlocksRequest,
};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};
use tracing::{debug, warn};

use super::BlockSource;

/// Most rollup ids one request may ask for.
pub const MAX_ROLLUP_IDS_PER_REQUEST: usize = 1024;

/// The `SequencerService` implementation.
#[derive(Debug)]
pub struct SequencerApi<S> {
    source: Arc<S>,
    cancel: CancellationToken,
}

impl<S> SequencerApi<S> {
    /// A service reading from `source`; its streams end when `cancel` is cancelled.
    pub fn new(source: Arc<S>, cancel: CancellationToken) -> Self {
        Self { source, cancel }
    }
}

fn parse_rollup_ids(raw_ids: &[Vec<u8>]) -> Result<Vec<RollupId>, Status> {
    if raw_ids.len() > MAX_ROLLUP_IDS_PER_REQUEST {
        return Err(Status::invalid_argument(format!(
            "too many rollup ids: {} (at most {MAX_ROLLUP_IDS_PER_REQUEST})",
            raw_ids.len()
        )));
    }
    let mut ids = raw_ids
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            RollupId::try_from_slice(bytes).map_err(|e| {
                Status::invalid_argument(format!("rollup_ids[{index}] is not a rollup id: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}

fn internal(what: &str, error: &(dyn std::error::Error + 'static)) -> Status {
    warn!(error = %crate::server::error_chain(error), "{what}");
    Status::internal(format!("{what}: {error}"))
}

async fn load_block<S: BlockSource>(
    source: &S,
    height: u64,
) -> Result<Arc<SequencerBlock>, Status> {
    if height == 0 {
        return Err(Status::invalid_argument("height must be at least 1"));
    }
    match source.sequencer_block(height).await {
        Ok(Some(block)) => Ok(block),
        Ok(None) => Err(Status::not_found(format!(
            "no sequencer block at height {height} (latest committed height is {})",
            source.latest_block_height()
        ))),
        Err(e) => Err(internal(
            &format!("failed to read the sequencer block at height {height}"),
            &*e,
        )),
    }
}

type FilteredStream =
    Pin<Box<dyn Stream<Item = Result<raw::FilteredSequencerBlock, Status>> + Send>>;

#[tonic::async_trait]
impl<S: BlockSource> SequencerService for SequencerApi<S> {
    type StreamFilteredSequencerBlocksStream = FilteredStream;

    async fn get_sequencer_block(
        &self,
        request: Request<GetSequencerBlockRequest>,
    ) -> Result<Response<raw::SequencerBlock>, Status> {
        let block = load_block(&*self.source, request.into_inner().height).await?;
        Ok(Response::new(block.to_raw()))
    }

    async fn get_filtered_sequencer_block(
        &self,
        request: Request<GetFilteredSequencerBlockRequest>,
    ) -> Result<Response<raw::FilteredSequencerBlock>, Status> {
        let request = request.into_inner();
        let rollup_ids = parse_rollup_ids(&request.rollup_ids)?;
        let block = load_block(&*self.source, request.height).await?;
        Ok(Response::new(block.to_filtered(&rollup_ids).to_raw()))
    }

    async fn stream_filtered_sequencer_blocks(
        &self,
        request: Request<StreamFilteredSequencerBlocksRequest>,
    ) -> Result<Response<Self::StreamFilteredSequencerBlocksStream>, Status> {
        let request = request.into_inner();
        let rollup_ids = parse_rollup_ids(&request.rollup_ids)?;
        if request.from_height == 0 {
            return Err(Status::invalid_argument("from_height must be at least 1"));
        }
        // Subscribe before looking at the store: every block committed from now on is in
        // the subscription, every earlier one in the store, so nothing falls between.
        let live = self.source.subscribe_blocks();
        let state = BlockFeed {
            source: self.source.clone(),
            live,
            next: request.from_height,
            cancel: self.cancel.clone(),
        };
        let stream = futures::stream::unfold(Some(state), move |state| {
            let rollup_ids = rollup_ids.clone();
            async move {
                let mut state = state?;
                match state.next_block().await {
                    Some(Ok(block)) => {
                        Some((Ok(block.to_filtered(&rollup_ids).to_raw()), Some(state)))
                    }
                    Some(Err(status)) => Some((Err(status), None)),
                    None => None,
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_pending_sequence(
        &self,
        request: Request<GetPendingSequenceRequest>,
    ) -> Result<Response<GetPendingSequenceResponse>, Status> {
        let text = request.into_inner().address;
        let address: S::Address = text
            .parse()
            .map_err(|e| Status::invalid_argument(format!("invalid address `{text}`: {e}")))?;
        let (sequence, account_number) = self
            .source
            .pending_sequence(&address)
            .await
            .map_err(|e| {
                internal(
                    &format!("failed to read the pending sequence of {address}"),
                    &*e,
                )
            })?
            .ok_or_else(|| Status::not_found(format!("account {address} does not exist")))?;
        Ok(Response::new(GetPendingSequenceResponse {
            sequence,
            account_number,
        }))
    }
}

/// Committed blocks in height order from a start height: stored ones first, then live ones,
/// with neither gaps nor duplicates.
struct BlockFeed<S> {
    source: Arc<S>,
    live: broadcast::Receiver<Arc<SequencerBlock>>,
    next: u64,
    cancel: CancellationToken,
}

impl<S: BlockSource> BlockFeed<S> {
    /// The block at `self.next`, waiting for it to be committed. `None` at shutdown.
    async fn next_block(&mut self) -> Option<Result<Arc<SequencerBlock>, Status>> {
        loop {
            // Stored blocks first; also fills any gap a lagging subscription left.
            if self.next <= self.source.latest_block_height() {
                let height = self.next;
                let block = load_block(&*self.source, height).await;
                if block.is_ok() {
                    self.next += 1;
                }
                return Some(block);
            }
            let received = tokio::select! {
                () = self.cancel.cancelled() => return None,
                received = self.live.recv() => received,
            };
            match received {
                Ok(block) if block.height() == self.next => {
                    self.next += 1;
                    return Some(Ok(block));
                }
                // Already sent from the store.
                Ok(block) if block.height() < self.next => {}
                // A later block: the ones before it are stored; the loop reads them.
                Ok(_) => {}
                Err(RecvError::Lagged(skipped)) => {
                    debug!(
                        skipped,
                        "block stream lagged; reading the missed blocks from the store"
                    );
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_ids_are_validated_sorted_and_deduplicated() {
        let a = RollupId::from_name("a");
        let b = RollupId::from_name("b");
        let ids = parse_rollup_ids(&[
            b.as_bytes().to_vec(),
            a.as_bytes().to_vec(),
            b.as_bytes().to_vec(),
        ])
        .unwrap();
        let mut expected = vec![a, b];
        expected.sort_unstable();
        assert_eq!(ids, expected);
        let error = parse_rollup_ids(&[b"short".to_vec()]).unwrap_err();
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        assert!(
            error.message().contains("rollup_ids[0]"),
            "{}",
            error.message()
        );
        let too_many = vec![a.as_bytes().to_vec(); MAX_ROLLUP_IDS_PER_REQUEST + 1];
        assert!(parse_rollup_ids(&too_many)
            .unwrap_err()
            .message()
            .contains("too many"));
    }
}
