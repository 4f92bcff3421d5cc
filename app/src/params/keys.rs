//! Storage keys of the params component (verifiable):
//!
//! | key | value |
//! |---|---|
//! | `params/current` | `tandem.sequencer.v1.Params`, protobuf |
//! | `params/authority` | bech32 address of the authority, UTF-8 |

/// The current chain parameters.
pub(crate) const CURRENT: &str = "params/current";
/// The authority allowed to update params and validators.
pub(crate) const AUTHORITY: &str = "params/authority";
