//! Rollup identifiers: 32 bytes, usually the sha256 of a rollup's name.
//!
//! Minimal version written by `core-merkle` so the block types compile; the
//! full type (parsing, serde) is owned by `core-tx` and replaces this file.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// The 32-byte namespace of a rollup.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RollupId([u8; 32]);

/// A byte slice that is not a rollup id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollupIdError {
    /// The slice does not hold exactly 32 bytes.
    #[error("a rollup id is 32 bytes, got {len}")]
    Length {
        /// Length of the rejected slice.
        len: usize,
    },
}

impl RollupId {
    /// Wraps 32 bytes.
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The id of the rollup called `name`: `sha256(name)`.
    pub fn from_name(name: &str) -> Self {
        Self(Sha256::digest(name.as_bytes()).into())
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Reads an id from exactly 32 bytes.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, RollupIdError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| RollupIdError::Length { len: bytes.len() })
    }
}

impl fmt::Display for RollupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for RollupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RollupId({self})")
    }
}
