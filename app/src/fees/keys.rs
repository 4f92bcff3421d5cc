//! Storage keys of the fees component (verifiable):
//!
//! | key | value |
//! |---|---|
//! | `fees/collector` | bech32 address of the fee collector, UTF-8 |
//! | `fees/collected_total` | all fees ever collected, in utnd, `u128` BE |

/// The fee collector address.
pub(crate) const COLLECTOR: &str = "fees/collector";
/// Running total of collected fees.
pub(crate) const COLLECTED_TOTAL: &str = "fees/collected_total";
