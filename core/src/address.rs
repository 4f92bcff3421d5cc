//! Account addresses: 20 bytes, bech32 with prefix `tandem`.

use std::{fmt, str::FromStr};

use ripemd::Ripemd160;
use sha2::{Digest as _, Sha256};

use crate::keys::PublicKey;

/// The bech32 human-readable prefix of Tandem account addresses.
pub const ADDRESS_PREFIX: &str = "tandem";

/// A Tandem account address.
///
/// Derived from a public key as the Cosmos SDK does: `ripemd160(sha256(compressed key))` for
/// secp256k1 and `sha256(key)[..20]` for ed25519. Written as bech32 with prefix `tandem`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address([u8; 20]);

/// Longest string bech32 allows (BIP-173); longer input is rejected before decoding.
const MAX_BECH32_LEN: usize = 90;

/// Why a string or bytes are not a Tandem [`Address`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    /// Valid bech32 characters and prefix, but the checksum does not match: a typo.
    #[error("address `{input}` has an invalid bech32 checksum (typo?)")]
    InvalidChecksum {
        /// The rejected input.
        input: String,
    },
    /// Not valid bech32 (bad characters, mixed case, missing separator, too long).
    #[error("`{input}` is not a valid bech32 address: {reason}")]
    Bech32 {
        /// The rejected input.
        input: String,
        /// What the bech32 decoder said.
        reason: String,
    },
    /// Valid bech32, but for another chain.
    #[error("address `{input}` has prefix `{prefix}`, expected `{ADDRESS_PREFIX}`")]
    WrongPrefix {
        /// The rejected input.
        input: String,
        /// Its prefix.
        prefix: String,
    },
    /// The payload is not 20 bytes.
    #[error("address must be 20 bytes, got {0}")]
    WrongLength(usize),
}

impl Address {
    /// Wraps 20 raw bytes.
    #[must_use]
    pub const fn new(bytes: [u8; 20]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// Parses 20 raw bytes.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, AddressError> {
        <[u8; 20]>::try_from(bytes)
            .map(Self)
            .map_err(|_| AddressError::WrongLength(bytes.len()))
    }

    /// The address of a public key.
    #[must_use]
    pub fn from_public_key(key: &PublicKey) -> Self {
        match key {
            PublicKey::Secp256k1(compressed) => Self::from_secp256k1_bytes(compressed),
            PublicKey::Ed25519(bytes) => Self::from_ed25519_bytes(bytes),
        }
    }

    /// `ripemd160(sha256(compressed_key))`.
    #[must_use]
    pub fn from_secp256k1_bytes(compressed: &[u8; 33]) -> Self {
        Self(Ripemd160::digest(Sha256::digest(compressed)).into())
    }

    /// `sha256(key)[..20]`.
    #[must_use]
    pub fn from_ed25519_bytes(key: &[u8; 32]) -> Self {
        let digest = Sha256::digest(key);
        let mut bytes = [0u8; 20];
        bytes.copy_from_slice(&digest[..20]);
        Self(bytes)
    }
}

/// The bech32 alphabet (BIP-173).
const BECH32_CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
/// The generator of the bech32 checksum's BCH code (BIP-173).
const BECH32_GENERATOR: [u32; 5] = [
    0x3b6a_57b2,
    0x2650_8e6d,
    0x1ea1_19fa,
    0x3d42_33dd,
    0x2a14_62b3,
];

/// One step of the bech32 checksum over a 5-bit value.
const fn polymod_step(checksum: u32, value: u8) -> u32 {
    let top = checksum >> 25;
    let mut next = ((checksum & 0x01ff_ffff) << 5) ^ value as u32;
    let mut i = 0;
    while i < 5 {
        if (top >> i) & 1 == 1 {
            next ^= BECH32_GENERATOR[i];
        }
        i += 1;
    }
    next
}

/// The checksum state after the expanded prefix `tandem`, computed once at compile time.
const PREFIX_CHECKSUM: u32 = {
    let hrp = ADDRESS_PREFIX.as_bytes();
    let mut checksum = 1;
    let mut i = 0;
    while i < hrp.len() {
        checksum = polymod_step(checksum, hrp[i] >> 5);
        i += 1;
    }
    checksum = polymod_step(checksum, 0);
    let mut i = 0;
    while i < hrp.len() {
        checksum = polymod_step(checksum, hrp[i] & 31);
        i += 1;
    }
    checksum
};

/// Length of an address in bech32: prefix, `1`, 32 data characters and 6 of checksum.
const ENCODED_LEN: usize = ADDRESS_PREFIX.len() + 1 + 32 + 6;

impl Address {
    /// Bech32 with prefix `tandem`, into a stack buffer. Addresses are written into every
    /// state key and event, so this avoids the allocations of a general bech32 encoder.
    fn encode_bech32(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        let prefix = ADDRESS_PREFIX.len();
        out[..prefix].copy_from_slice(ADDRESS_PREFIX.as_bytes());
        out[prefix] = b'1';
        // 160 bits regroup into exactly 32 five-bit values: no padding.
        let mut checksum = PREFIX_CHECKSUM;
        let (mut acc, mut bits, mut pos) = (0u32, 0u32, prefix + 1);
        for byte in self.0 {
            acc = (acc << 8) | u32::from(byte);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                let value = ((acc >> bits) & 31) as u8;
                checksum = polymod_step(checksum, value);
                out[pos] = BECH32_CHARSET[usize::from(value)];
                pos += 1;
            }
        }
        for _ in 0..6 {
            checksum = polymod_step(checksum, 0);
        }
        checksum ^= 1;
        for i in 0..6 {
            let value = (checksum >> (5 * (5 - i))) & 31;
            out[pos + i] = BECH32_CHARSET[value as usize];
        }
        out
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let encoded = self.encode_bech32();
        // The buffer holds only ASCII from the prefix and the bech32 alphabet.
        f.write_str(std::str::from_utf8(&encoded).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_BECH32_LEN {
            return Err(AddressError::Bech32 {
                input: s.chars().take(MAX_BECH32_LEN).collect(),
                reason: format!("longer than {MAX_BECH32_LEN} characters"),
            });
        }
        let (prefix, bytes) = subtle_encoding::bech32::decode(s).map_err(|e| match e {
            subtle_encoding::Error::ChecksumInvalid => AddressError::InvalidChecksum {
                input: s.to_owned(),
            },
            other => AddressError::Bech32 {
                input: s.to_owned(),
                reason: other.to_string(),
            },
        })?;
        if prefix != ADDRESS_PREFIX {
            return Err(AddressError::WrongPrefix {
                input: s.to_owned(),
                prefix,
            });
        }
        Self::try_from_slice(&bytes)
    }
}

crate::serde_text::serde_via_text!(Address);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bech32_round_trip() {
        let address = Address::new([0xab; 20]);
        let text = address.to_string();
        assert!(text.starts_with("tandem1"), "{text}");
        assert_eq!(text.parse::<Address>().unwrap(), address);
    }

    proptest::proptest! {
        #[test]
        fn bech32_matches_the_reference_encoder(bytes in proptest::array::uniform20(0u8..)) {
            let address = Address::new(bytes);
            let reference = subtle_encoding::bech32::encode(ADDRESS_PREFIX, bytes);
            proptest::prop_assert_eq!(address.to_string(), reference);
        }
    }

    #[test]
    fn secp256k1_derivation_matches_cosmos_sdk() {
        // cosmrs derives account ids independently, as the Cosmos SDK does.
        let key = crate::keys::SigningKey::secp256k1_from_seed(b"vector");
        let cosmrs_id = key
            .public_key()
            .to_cosmrs()
            .account_id(ADDRESS_PREFIX)
            .unwrap();
        assert_eq!(key.address().to_string(), cosmrs_id.to_string());
    }

    #[test]
    fn ed25519_derivation_matches_cosmos_sdk() {
        // CometBFT derives ed25519 addresses as `sha256(key)[..20]`; tendermint-rs agrees.
        let key = crate::keys::SigningKey::ed25519_from_seed(b"vector");
        let crate::keys::PublicKey::Ed25519(bytes) = key.public_key() else {
            unreachable!("an ed25519 key")
        };
        let tm_key = tendermint::PublicKey::from_raw_ed25519(&bytes).unwrap();
        let tm_id = tendermint::account::Id::from(tm_key.ed25519().unwrap());
        assert_eq!(key.address().as_bytes(), tm_id.as_bytes());
    }

    #[test]
    fn rejects_other_prefix_bad_checksum_and_length() {
        let other = subtle_encoding::bech32::encode("cosmos", [1u8; 20]);
        assert!(matches!(
            other.parse::<Address>(),
            Err(AddressError::WrongPrefix { .. })
        ));

        let mut text = Address::new([1; 20]).to_string();
        let last = text.pop().unwrap();
        text.push(if last == 'q' { 'p' } else { 'q' });
        assert!(matches!(
            text.parse::<Address>(),
            Err(AddressError::InvalidChecksum { .. })
        ));
        assert!(matches!(
            "not an address".parse::<Address>(),
            Err(AddressError::Bech32 { .. })
        ));
        assert!(matches!(
            "tandem1".repeat(20).parse::<Address>(),
            Err(AddressError::Bech32 { reason, .. }) if reason.contains("longer than")
        ));

        let short = subtle_encoding::bech32::encode(ADDRESS_PREFIX, [1u8; 19]);
        assert_eq!(short.parse::<Address>(), Err(AddressError::WrongLength(19)));
    }
}
