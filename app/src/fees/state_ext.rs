//! Typed state access for the fee collector.

use async_trait::async_trait;
use cnidarium::{StateRead, StateWrite};
use tandem_core::Address;

use super::keys;
use crate::state::{get_raw, get_u128, StateError};

/// Reads of fees state.
#[async_trait]
pub(crate) trait StateReadExt: StateRead {
    /// The fee collector; an error when genesis never stored it.
    async fn fee_collector(&self) -> Result<Address, StateError> {
        let bytes = get_raw(self, keys::COLLECTOR)
            .await?
            .ok_or_else(|| StateError::Corrupt {
                key: keys::COLLECTOR.to_string(),
                reason: "missing; was InitChain run?".to_string(),
            })?;
        let text = String::from_utf8(bytes).map_err(|e| corrupt(&e))?;
        text.parse().map_err(|e| corrupt(&e))
    }

    /// All fees collected since genesis.
    async fn collected_fees_total(&self) -> Result<u128, StateError> {
        Ok(get_u128(self, keys::COLLECTED_TOTAL).await?.unwrap_or(0))
    }
}

impl<T: StateRead + ?Sized> StateReadExt for T {}

/// Writes of fees state.
pub(crate) trait StateWriteExt: StateWrite {
    /// Stores the fee collector (genesis only).
    fn put_fee_collector(&mut self, collector: &Address) {
        self.put_raw(
            keys::COLLECTOR.to_string(),
            collector.to_string().into_bytes(),
        );
    }

    /// Stores the running total of collected fees.
    fn put_collected_fees_total(&mut self, total: u128) {
        self.put_raw(
            keys::COLLECTED_TOTAL.to_string(),
            total.to_be_bytes().to_vec(),
        );
    }
}

impl<T: StateWrite + ?Sized> StateWriteExt for T {}

fn corrupt(error: &dyn std::fmt::Display) -> StateError {
    StateError::Corrupt {
        key: keys::COLLECTOR.to_string(),
        reason: error.to_string(),
    }
}
