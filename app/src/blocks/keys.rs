//! Storage keys of block bookkeeping.
//!
//! Verifiable:
//!
//! | key | value |
//! |---|---|
//! | `chain/id` | CometBFT chain id, UTF-8 |
//! | `chain/height` | height of the last executed block, `u64` BE |
//!
//! Non-verifiable (not part of the app hash; written in the same atomic commit):
//!
//! | key | value |
//! |---|---|
//! | `blocks/by_height/<u64 BE>` | `tandem.sequencerblock.v1.SequencerBlock`, protobuf |
//! | `blocks/tx/<32-byte tx hash>` | tx result: height `u64` BE ‖ index `u32` BE ‖ code `u32` BE ‖ log UTF-8 |
//! | `genesis/app_state_sha256` | sha256 of the InitChain `app_state` bytes |

/// The chain id.
pub(crate) const CHAIN_ID: &str = "chain/id";
/// The last executed height. Verifiable on purpose: it is the one write every block makes,
/// and cnidarium persists a state version only when its JMT changes, so a block that wrote
/// nothing verifiable would be gone after a restart (Info would report an older height).
pub(crate) const HEIGHT: &str = "chain/height";
/// Hash of the genesis `app_state`, to recognise a repeated InitChain.
pub(crate) const GENESIS_HASH: &[u8] = b"genesis/app_state_sha256";

/// The sequencer block at `height`.
pub(crate) fn block(height: u64) -> Vec<u8> {
    let mut key = b"blocks/by_height/".to_vec();
    key.extend_from_slice(&height.to_be_bytes());
    key
}

/// The result of the tx with `hash`.
pub(crate) fn tx(hash: &[u8; 32]) -> Vec<u8> {
    let mut key = b"blocks/tx/".to_vec();
    key.extend_from_slice(hash);
    key
}
