//! Chain parameters (`base_fee`, `fee_per_byte`, `max_tx_bytes`, `max_rollup_bytes_per_block`)
//! and `MsgUpdateParams`, which only the genesis authority may send.
//!
//! New params take effect from the next block: a block is built and checked against the params
//! in force when it started, so every tx of one block sees the same limits and fees.

pub(crate) mod keys;
pub(crate) mod state_ext;

use cnidarium::StateWrite;
use tandem_core::{Address, Params, UpdateParams};
use tendermint::abci::Event;

pub(crate) use state_ext::{StateReadExt, StateWriteExt};

use crate::error::ExecError;

/// Checks that `params` can run a chain (`max_tx_bytes` in 1 KiB..=4 MiB,
/// `max_rollup_bytes_per_block` ≥ 1). A `MsgUpdateParams` carrying bad params is already
/// refused when the tx is decoded (`tandem_core::TxError::InvalidMessage`); this check guards
/// the genesis path and any other writer.
pub(crate) fn validate(params: &Params) -> Result<(), ExecError> {
    params.validate().map_err(|e| ExecError::InvalidParams {
        reason: e.to_string(),
    })
}

/// Executes a `MsgUpdateParams` signed by `authority`'s key.
pub(crate) fn execute_update_params<S: StateWrite>(
    state: &mut S,
    authority: &Address,
    msg: &UpdateParams,
) -> Result<(), ExecError> {
    if msg.authority != *authority {
        return Err(ExecError::Unauthorized {
            signer: msg.authority,
            authority: *authority,
            message: "MsgUpdateParams",
        });
    }
    validate(&msg.params)?;
    state.put_params(&msg.params);
    Ok(())
}

/// The `update_params` event of an executed `MsgUpdateParams`.
pub(crate) fn update_params_event(msg: &UpdateParams) -> Event {
    crate::exec::indexed_event(
        "update_params",
        [
            ("base_fee", msg.params.base_fee.to_string()),
            ("fee_per_byte", msg.params.fee_per_byte.to_string()),
            ("max_tx_bytes", msg.params.max_tx_bytes.to_string()),
            (
                "max_rollup_bytes_per_block",
                msg.params.max_rollup_bytes_per_block.to_string(),
            ),
        ],
    )
}
