//! Fees: every tx pays `auth_info.fee` (in utnd) to the fee collector, and that fee must cover
//! `params.base_fee + params.fee_per_byte × rollup data bytes`. The whole offered fee is
//! charged, as the Cosmos SDK does; there is no gas metering.
//!
//! A fee leaves its payer when the tx executes; the collector receives the block's fees
//! together, after the block's last tx (as the Cosmos SDK's fee collector is a module account
//! that no tx spends from mid-block). Every tx of a block therefore touches only its own
//! signer's keys, not one key shared by all of them.

pub(crate) mod keys;
pub(crate) mod state_ext;

use cnidarium::StateWrite;
use tandem_core::{Address, Params, NATIVE_DENOM};
use tendermint::abci::Event;

pub(crate) use state_ext::{StateReadExt, StateWriteExt};

use crate::{accounts::StateWriteExt as _, error::ExecError};

/// Checks that `offered` covers the fee `params` require for `rollup_bytes`.
pub(crate) fn check_sufficient(
    params: &Params,
    rollup_bytes: u64,
    offered: u128,
) -> Result<(), ExecError> {
    let required = params.required_fee(rollup_bytes);
    if offered < required {
        return Err(ExecError::InsufficientFee { required, offered });
    }
    Ok(())
}

/// Takes `fee` utnd from `payer`. The fee reaches the collector with the rest of the
/// block's fees, in [`collect`].
pub(crate) async fn charge<S: StateWrite>(
    state: &mut S,
    payer: &Address,
    fee: u128,
) -> Result<(), ExecError> {
    if fee == 0 {
        return Ok(());
    }
    state.debit(payer, NATIVE_DENOM, fee).await?;
    Ok(())
}

/// Credits `collector` with `total`, the fees of all txs a block executed, after its last
/// tx, and adds them to the running total.
pub(crate) async fn collect<S: StateWrite>(
    state: &mut S,
    collector: &Address,
    total: u128,
) -> Result<(), ExecError> {
    if total == 0 {
        return Ok(());
    }
    state.credit(collector, NATIVE_DENOM, total).await?;
    let collected = state.collected_fees_total().await?.saturating_add(total);
    state.put_collected_fees_total(collected);
    Ok(())
}

/// The `fee` event of a tx that paid `fee` (none for a zero fee).
pub(crate) fn fee_event(payer: &Address, fee: u128) -> Option<Event> {
    (fee > 0).then(|| {
        crate::exec::indexed_event(
            "fee",
            [
                ("payer", payer.to_string()),
                ("amount", format!("{fee}{NATIVE_DENOM}")),
            ],
        )
    })
}
