//! Storage keys of the accounts component. All verifiable, under `accounts/`:
//!
//! | key | value |
//! |---|---|
//! | `accounts/next_number` | next account number to assign, `u64` big-endian |
//! | `accounts/<bech32 address>/number` | account number, `u64` BE (present iff the account exists) |
//! | `accounts/<bech32 address>/sequence` | next expected tx sequence, `u64` BE |
//! | `accounts/<bech32 address>/balance/<denom>` | balance, `u128` BE (absent means zero) |

use tandem_core::Address;

/// The global account-number counter.
pub(crate) const NEXT_NUMBER: &str = "accounts/next_number";

/// Account number of `address`.
pub(crate) fn number(address: &Address) -> String {
    format!("accounts/{address}/number")
}

/// Next expected sequence of `address`.
pub(crate) fn sequence(address: &Address) -> String {
    format!("accounts/{address}/sequence")
}

/// Balance of `address` in `denom`.
pub(crate) fn balance(address: &Address, denom: &str) -> String {
    format!("accounts/{address}/balance/{denom}")
}

/// Prefix of all balances of `address`; the denom follows it.
pub(crate) fn balance_prefix(address: &Address) -> String {
    format!("accounts/{address}/balance/")
}

/// The keys a tx signed by `signer` reads and writes in the accounts component: number,
/// sequence and fee balance (prefetched before a block runs).
pub(crate) fn touched_by_signer(signer: &Address) -> [String; 3] {
    [
        number(signer),
        sequence(signer),
        balance(signer, tandem_core::NATIVE_DENOM),
    ]
}
