//! Rollup data: `MsgSubmitRollupData` appends one opaque item to a rollup's ordered data for
//! the block. Several such messages in one tx form an atomic bundle: the tx executes in a
//! state fork that is applied whole or dropped whole, so all its items land in one block, in
//! message order, or none does. State keeps only per-rollup totals, updated once per block.

pub(crate) mod keys;
pub(crate) mod state_ext;

use std::collections::BTreeMap;

use cnidarium::StateWrite;
use tandem_core::{RollupId, SubmitRollupData};
use tendermint::abci::Event;

pub(crate) use state_ext::{StateReadExt, StateWriteExt};

use crate::state::StateError;

/// Executes a `MsgSubmitRollupData`: the item to sequence. It touches no state; the rollup's
/// totals grow once per block by all of its sequenced items ([`add_totals`]).
pub(crate) fn execute_submit(msg: &SubmitRollupData) -> (RollupId, Vec<u8>) {
    (msg.rollup_id, <[u8]>::to_vec(&msg.data))
}

/// The `rollup_data` event of an executed `MsgSubmitRollupData`.
pub(crate) fn submit_event(msg: &SubmitRollupData) -> Event {
    crate::exec::indexed_event(
        "rollup_data",
        [
            ("rollup_id", msg.rollup_id.to_string()),
            ("bytes", msg.data.len().to_string()),
        ],
    )
}

/// Adds a block's sequenced `items` to the per-rollup totals, one read and one write per
/// rollup, in rollup-id order.
pub(crate) async fn add_totals<S: StateWrite>(
    state: &mut S,
    items: &[(RollupId, Vec<u8>)],
) -> Result<(), StateError> {
    let mut sums: BTreeMap<RollupId, (u64, u64)> = BTreeMap::new();
    for (rollup_id, data) in items {
        let sum = sums.entry(*rollup_id).or_default();
        sum.0 = sum
            .0
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        sum.1 = sum.1.saturating_add(1);
    }
    for (rollup_id, (bytes, count)) in sums {
        let (total_bytes, total_items) = state.rollup_totals(&rollup_id).await?;
        state.put_rollup_totals(
            &rollup_id,
            total_bytes.saturating_add(bytes),
            total_items.saturating_add(count),
        );
    }
    Ok(())
}
