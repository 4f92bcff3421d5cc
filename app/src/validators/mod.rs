//! Validators: the CometBFT validator set as the app knows it (seeded by InitChain) and
//! `MsgUpdateValidator`, which only the authority may send. Accepted updates are returned to
//! CometBFT as `validator_updates` of the block, one per public key (the last update of a key
//! in a block wins), sorted by key.
//!
//! An update CometBFT would refuse (and halt on) is refused here instead: removing a key that
//! is not a validator, removing the last validator, or exceeding CometBFT's total power cap.

pub(crate) mod keys;
pub(crate) mod state_ext;

use cnidarium::StateWrite;
use tandem_core::{Address, UpdateValidator};
use tendermint::abci::Event;

pub(crate) use state_ext::{StateReadExt, StateWriteExt};

use crate::error::ExecError;

/// CometBFT's `MaxTotalVotingPower` (`i64::MAX / 8`).
pub(crate) const MAX_TOTAL_VOTING_POWER: u64 = (i64::MAX as u64) / 8;

/// Sets the power of `pub_key`, keeping count and total in step and refusing updates CometBFT
/// would reject.
pub(crate) async fn set_power<S: StateWrite>(
    state: &mut S,
    pub_key: &[u8; 32],
    power: u64,
) -> Result<(), ExecError> {
    let old = state.validator_power(pub_key).await?;
    let (count, total) = state.validator_set_size().await?;
    if power == 0 && old == 0 {
        return Err(ExecError::UnknownValidator {
            pub_key: hex::encode(pub_key),
        });
    }
    let new_count = match (old, power) {
        (0, _) => count.saturating_add(1),
        (_, 0) => count.saturating_sub(1),
        _ => count,
    };
    if new_count == 0 {
        return Err(ExecError::LastValidator);
    }
    let new_total = total
        .saturating_sub(old)
        .checked_add(power)
        .filter(|t| *t <= MAX_TOTAL_VOTING_POWER)
        .ok_or(ExecError::InvalidValidatorPower {
            power,
            max_total: MAX_TOTAL_VOTING_POWER,
        })?;
    state.put_validator_power(pub_key, power);
    state.put_validator_set_size(new_count, new_total);
    Ok(())
}

/// Executes a `MsgUpdateValidator` signed by `authority`'s key.
pub(crate) async fn execute_update_validator<S: StateWrite>(
    state: &mut S,
    authority: &Address,
    msg: &UpdateValidator,
) -> Result<([u8; 32], u64), ExecError> {
    if msg.authority != *authority {
        return Err(ExecError::Unauthorized {
            signer: msg.authority,
            authority: *authority,
            message: "MsgUpdateValidator",
        });
    }
    set_power(state, &msg.pub_key, msg.power).await?;
    Ok((msg.pub_key, msg.power))
}

/// The `update_validator` event of an executed `MsgUpdateValidator`.
pub(crate) fn update_validator_event(msg: &UpdateValidator) -> Event {
    crate::exec::indexed_event(
        "update_validator",
        [
            ("pub_key", hex::encode(msg.pub_key)),
            ("power", msg.power.to_string()),
        ],
    )
}
