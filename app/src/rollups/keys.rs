//! Storage keys of the rollups component (verifiable). Rollup data itself is not state: it
//! lives in the block (and in the non-verifiable sequencer block store). State keeps totals:
//!
//! | key | value |
//! |---|---|
//! | `rollups/<rollup id hex>/bytes_total` | data bytes ever sequenced for the rollup, `u64` BE |
//! | `rollups/<rollup id hex>/items_total` | data items ever sequenced for the rollup, `u64` BE |

use tandem_core::RollupId;

/// Total data bytes of `rollup_id`.
pub(crate) fn bytes_total(rollup_id: &RollupId) -> String {
    format!("rollups/{rollup_id}/bytes_total")
}

/// Total data items of `rollup_id`.
pub(crate) fn items_total(rollup_id: &RollupId) -> String {
    format!("rollups/{rollup_id}/items_total")
}
