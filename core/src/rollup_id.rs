//! Rollup namespaces.

use std::{fmt, str::FromStr};

use sha2::{Digest as _, Sha256};

/// A rollup's 32-byte namespace.
///
/// Derived from a human-readable name as `sha256(name)` ([`RollupId::from_name`]). Prints as
/// lower-case hex; parses from 64 hex characters or from `name:<string>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RollupId([u8; 32]);

/// Why bytes or a string are not a [`RollupId`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RollupIdError {
    /// The byte slice is not 32 bytes long.
    #[error("rollup id must be 32 bytes, got {0}")]
    WrongLength(usize),
    /// The string is neither 64 hex characters nor `name:<string>`.
    #[error("rollup id `{0}` is neither 64 hex characters nor `name:<rollup name>`")]
    Unparseable(String),
}

impl RollupId {
    /// Length of a rollup id in bytes.
    pub const LENGTH: usize = 32;

    /// Wraps 32 raw bytes.
    #[must_use]
    pub const fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The id of the rollup called `name`: `sha256(name)`.
    #[must_use]
    pub fn from_name(name: &str) -> Self {
        Self(Sha256::digest(name.as_bytes()).into())
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses raw bytes, which must be exactly 32 long.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, RollupIdError> {
        <[u8; 32]>::try_from(bytes)
            .map(Self)
            .map_err(|_| RollupIdError::WrongLength(bytes.len()))
    }
}

impl AsRef<[u8]> for RollupId {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for RollupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 64];
        hex::encode_to_slice(self.0, &mut buf).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for RollupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RollupId({self})")
    }
}

impl FromStr for RollupId {
    type Err = RollupIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(name) = s.strip_prefix("name:") {
            return Ok(Self::from_name(name));
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes)
            .map_err(|_| RollupIdError::Unparseable(s.to_owned()))?;
        Ok(Self(bytes))
    }
}

crate::serde_text::serde_via_text!(RollupId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_sha256_of_the_name() {
        let id = RollupId::from_name("alpha");
        assert_eq!(
            id.to_string(),
            "8ed3f6ad685b959ead7022518e1af76cd816f8e8ec7ccdda1ed4018e8f2223f8"
        );
        assert_eq!("name:alpha".parse::<RollupId>().unwrap(), id);
        assert_eq!(id.to_string().parse::<RollupId>().unwrap(), id);
    }

    #[test]
    fn rejects_bad_text_and_lengths() {
        assert!(matches!(
            "abc".parse::<RollupId>(),
            Err(RollupIdError::Unparseable(_))
        ));
        assert!(matches!(
            "zz".repeat(32).parse::<RollupId>(),
            Err(RollupIdError::Unparseable(_))
        ));
        assert_eq!(
            RollupId::try_from_slice(&[0; 31]),
            Err(RollupIdError::WrongLength(31))
        );
        assert!(RollupId::try_from_slice(&[7; 32]).is_ok());
    }

    #[test]
    fn serde_uses_the_text_form() {
        let id = RollupId::from_name("beta");
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<RollupId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<RollupId>("\"nope\"").is_err());
    }
}
