//! Storage keys of the validators component (verifiable):
//!
//! | key | value |
//! |---|---|
//! | `validators/<ed25519 pubkey hex>/power` | voting power, `u64` BE (absent: not a validator) |
//! | `validators/count` | number of validators with power > 0, `u64` BE |
//! | `validators/total_power` | sum of all powers, `u64` BE |

/// Power of the validator with `pub_key`.
pub(crate) fn power(pub_key: &[u8; 32]) -> String {
    format!("validators/{}/power", hex::encode(pub_key))
}

/// Number of validators.
pub(crate) const COUNT: &str = "validators/count";
/// Total voting power.
pub(crate) const TOTAL_POWER: &str = "validators/total_power";
