//! Typed access to chain bookkeeping and the non-verifiable block store.

use async_trait::async_trait;
use cnidarium::{StateRead, StateWrite};
use prost::Message as _;
use tandem_core::SequencerBlock;

use super::keys;
use crate::state::{get_raw, get_u64, nonverifiable_get_raw, StateError};

/// Where and how a tx was executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredTxResult {
    pub(crate) height: u64,
    pub(crate) index: u32,
    pub(crate) code: u32,
    pub(crate) log: String,
}

impl StoredTxResult {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.log.len());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.index.to_be_bytes());
        out.extend_from_slice(&self.code.to_be_bytes());
        out.extend_from_slice(self.log.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let corrupt = |reason: &str| StateError::Corrupt {
            key: "blocks/tx/…".to_string(),
            reason: reason.to_string(),
        };
        if bytes.len() < 16 {
            return Err(corrupt("shorter than 16 bytes"));
        }
        let (head, log) = bytes.split_at(16);
        let height = u64::from_be_bytes(head[..8].try_into().expect("8 bytes"));
        let index = u32::from_be_bytes(head[8..12].try_into().expect("4 bytes"));
        let code = u32::from_be_bytes(head[12..16].try_into().expect("4 bytes"));
        let log = String::from_utf8(log.to_vec()).map_err(|_| corrupt("log is not UTF-8"))?;
        Ok(Self {
            height,
            index,
            code,
            log,
        })
    }
}

/// Reads of chain bookkeeping and stored blocks.
#[async_trait]
pub(crate) trait StateReadExt: StateRead {
    /// The chain id, `None` before InitChain.
    async fn chain_id(&self) -> Result<Option<String>, StateError> {
        match get_raw(self, keys::CHAIN_ID).await? {
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|e| StateError::Corrupt {
                    key: keys::CHAIN_ID.to_string(),
                    reason: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    /// The height of the last executed block (0 at genesis).
    async fn block_height(&self) -> Result<u64, StateError> {
        Ok(get_u64(self, keys::HEIGHT).await?.unwrap_or(0))
    }

    /// The sequencer block stored for `height`.
    async fn sequencer_block(&self, height: u64) -> Result<Option<SequencerBlock>, StateError> {
        let key = keys::block(height);
        let Some(bytes) = nonverifiable_get_raw(self, &key).await? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StateError::Corrupt {
            key: format!("blocks/by_height/{height}"),
            reason,
        };
        let raw = tandem_proto::sequencerblock::v1::SequencerBlock::decode(bytes.as_slice())
            .map_err(|e| corrupt(e.to_string()))?;
        SequencerBlock::try_from_raw(raw)
            .map(Some)
            .map_err(|e| corrupt(e.to_string()))
    }

    /// The stored result of the tx with `hash`.
    async fn tx_result(&self, hash: &[u8; 32]) -> Result<Option<StoredTxResult>, StateError> {
        match nonverifiable_get_raw(self, &keys::tx(hash)).await? {
            Some(bytes) => StoredTxResult::decode(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The sha256 of the genesis `app_state` applied by InitChain.
    async fn genesis_hash(&self) -> Result<Option<Vec<u8>>, StateError> {
        nonverifiable_get_raw(self, keys::GENESIS_HASH).await
    }
}

impl<T: StateRead + ?Sized> StateReadExt for T {}

/// Writes of chain bookkeeping and stored blocks.
pub(crate) trait StateWriteExt: StateWrite {
    /// Stores the chain id (InitChain only).
    fn put_chain_id(&mut self, chain_id: &str) {
        self.put_raw(keys::CHAIN_ID.to_string(), chain_id.as_bytes().to_vec());
    }

    /// Stores the height of the block being executed.
    fn put_block_height(&mut self, height: u64) {
        self.put_raw(keys::HEIGHT.to_string(), height.to_be_bytes().to_vec());
    }

    /// Stores a sequencer block.
    fn put_sequencer_block(&mut self, block: &SequencerBlock) {
        self.nonverifiable_put_raw(keys::block(block.height()), block.to_raw().encode_to_vec());
    }

    /// Stores a tx result.
    fn put_tx_result(&mut self, hash: &[u8; 32], result: &StoredTxResult) {
        self.nonverifiable_put_raw(keys::tx(hash), result.encode());
    }

    /// Stores the genesis `app_state` hash.
    fn put_genesis_hash(&mut self, hash: &[u8; 32]) {
        self.nonverifiable_put_raw(keys::GENESIS_HASH.to_vec(), hash.to_vec());
    }
}

impl<T: StateWrite + ?Sized> StateWriteExt for T {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_result_round_trips_and_rejects_short_bytes() {
        let r = StoredTxResult {
            height: 9,
            index: 3,
            code: 35,
            log: "insufficient fee".into(),
        };
        assert_eq!(StoredTxResult::decode(&r.encode()).unwrap(), r);
        assert!(StoredTxResult::decode(&[0; 15]).is_err());
    }
}
