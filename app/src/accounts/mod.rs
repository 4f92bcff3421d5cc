//! Accounts and bank: account numbers, sequences, balances and `MsgSend`.
//!
//! An account exists from the first time it is seen receiving coins (genesis, a transfer or a
//! fee payment); at that moment it gets the next account number, which never changes. Its
//! sequence starts at 0 and advances by one per executed transaction it signs.

pub(crate) mod keys;
pub(crate) mod state_ext;

use cnidarium::StateWrite;
use tandem_core::Send;
use tendermint::abci::Event;

pub(crate) use state_ext::{StateReadExt, StateWriteExt};

use crate::error::ExecError;

/// Executes a `MsgSend`: every coin moves from `from` to `to`, or (on any failure) none does,
/// because the caller discards the transaction's state fork.
pub(crate) async fn execute_send<S: StateWrite>(
    state: &mut S,
    msg: &Send,
) -> Result<(), ExecError> {
    if msg.amount.is_empty() {
        return Err(ExecError::InvalidAmount {
            denom: String::new(),
        });
    }
    for coin in &msg.amount {
        if coin.amount == 0 {
            return Err(ExecError::InvalidAmount {
                denom: coin.denom.clone(),
            });
        }
        state.debit(&msg.from, &coin.denom, coin.amount).await?;
        state.credit(&msg.to, &coin.denom, coin.amount).await?;
    }
    Ok(())
}

/// The `transfer` event of an executed `MsgSend`.
pub(crate) fn send_event(msg: &Send) -> Event {
    let amounts: Vec<String> = msg
        .amount
        .iter()
        .map(|coin| format!("{}{}", coin.amount, coin.denom))
        .collect();
    crate::exec::indexed_event(
        "transfer",
        [
            ("sender", msg.from.to_string()),
            ("recipient", msg.to.to_string()),
            ("amount", amounts.join(",")),
        ],
    )
}
