//! Rollup data: `MsgSubmitRollupData` appends one opaque item to a rollup's ordered data for
//! the block. Several such messages in one tx form an atomic bundle: the tx executes in a
//! state fork that is applied whole or dropped whole, so all its items land in one block, in
//! message order, or none does.

pub(crate) mod keys;
pub(crate) mod state_ext;

use cnidarium::StateWrite;
use tandem_core::{RollupId, SubmitRollupData};
use tendermint::abci::Event;

pub(crate) use state_ext::{StateReadExt, StateWriteExt};

use crate::error::ExecError;

/// Executes a `MsgSubmitRollupData`, returning the item to sequence.
pub(crate) async fn execute_submit<S: StateWrite>(
    state: &mut S,
    msg: &SubmitRollupData,
) -> Result<((RollupId, Vec<u8>), Event), ExecError> {
    let len = u64::try_from(msg.data.len()).unwrap_or(u64::MAX);
    let (bytes, items) = state.rollup_totals(&msg.rollup_id).await?;
    state.put_rollup_totals(
        &msg.rollup_id,
        bytes.saturating_add(len),
        items.saturating_add(1),
    );
    let event = Event::new(
        "rollup_data",
        [
            ("rollup_id", msg.rollup_id.to_string()),
            ("bytes", len.to_string()),
        ],
    );
    Ok(((msg.rollup_id, <[u8]>::to_vec(&msg.data)), event))
}
