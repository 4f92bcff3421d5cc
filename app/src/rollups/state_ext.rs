//! Typed state access for per-rollup totals.

use async_trait::async_trait;
use cnidarium::{StateRead, StateWrite};
use tandem_core::RollupId;

use super::keys;
use crate::state::{get_u64, StateError};

/// Reads of rollup totals.
#[async_trait]
pub(crate) trait StateReadExt: StateRead {
    /// `(bytes, items)` ever sequenced for `rollup_id`.
    async fn rollup_totals(&self, rollup_id: &RollupId) -> Result<(u64, u64), StateError> {
        let bytes = get_u64(self, &keys::bytes_total(rollup_id))
            .await?
            .unwrap_or(0);
        let items = get_u64(self, &keys::items_total(rollup_id))
            .await?
            .unwrap_or(0);
        Ok((bytes, items))
    }
}

impl<T: StateRead + ?Sized> StateReadExt for T {}

/// Writes of rollup totals.
pub(crate) trait StateWriteExt: StateWrite {
    /// Stores `(bytes, items)` for `rollup_id`.
    fn put_rollup_totals(&mut self, rollup_id: &RollupId, bytes: u64, items: u64) {
        self.put_raw(keys::bytes_total(rollup_id), bytes.to_be_bytes().to_vec());
        self.put_raw(keys::items_total(rollup_id), items.to_be_bytes().to_vec());
    }
}

impl<T: StateWrite + ?Sized> StateWriteExt for T {}
