//! Typed state access for the validator set.

use async_trait::async_trait;
use cnidarium::{StateRead, StateWrite};

use super::keys;
use crate::state::{get_u64, StateError};

/// Reads of validator state.
#[async_trait]
pub(crate) trait StateReadExt: StateRead {
    /// Power of `pub_key` (0 when it is not a validator).
    async fn validator_power(&self, pub_key: &[u8; 32]) -> Result<u64, StateError> {
        Ok(get_u64(self, &keys::power(pub_key)).await?.unwrap_or(0))
    }

    /// `(count, total_power)` of the validator set.
    async fn validator_set_size(&self) -> Result<(u64, u64), StateError> {
        let count = get_u64(self, keys::COUNT).await?.unwrap_or(0);
        let total = get_u64(self, keys::TOTAL_POWER).await?.unwrap_or(0);
        Ok((count, total))
    }
}

impl<T: StateRead + ?Sized> StateReadExt for T {}

/// Writes of validator state.
pub(crate) trait StateWriteExt: StateWrite {
    /// Stores the power of `pub_key`; 0 removes it.
    fn put_validator_power(&mut self, pub_key: &[u8; 32], power: u64) {
        let key = keys::power(pub_key);
        if power == 0 {
            self.delete(key);
        } else {
            self.put_raw(key, power.to_be_bytes().to_vec());
        }
    }

    /// Stores `(count, total_power)`.
    fn put_validator_set_size(&mut self, count: u64, total_power: u64) {
        self.put_raw(keys::COUNT.to_string(), count.to_be_bytes().to_vec());
        self.put_raw(
            keys::TOTAL_POWER.to_string(),
            total_power.to_be_bytes().to_vec(),
        );
    }
}

impl<T: StateWrite + ?Sized> StateWriteExt for T {}
