//! Signing and public keys: secp256k1 (the Cosmos default) and ed25519.

use k256::ecdsa::signature::Signer as _;
use sha2::{Digest as _, Sha256};

use crate::address::Address;

/// A public key as it appears in a transaction's `SignerInfo`, kept in its raw encoding.
///
/// Parsing the curve point is deferred to signature verification, so a transaction whose
/// signature was already verified never pays for it twice.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PublicKey {
    /// A compressed SEC1 secp256k1 point (`/cosmos.crypto.secp256k1.PubKey`).
    Secp256k1([u8; 33]),
    /// An ed25519 key (`/cosmos.crypto.ed25519.PubKey`).
    Ed25519([u8; 32]),
}

impl PublicKey {
    /// Type URL of a secp256k1 key inside an `Any`.
    pub const SECP256K1_TYPE_URL: &'static str = "/cosmos.crypto.secp256k1.PubKey";
    /// Type URL of an ed25519 key inside an `Any`.
    pub const ED25519_TYPE_URL: &'static str = "/cosmos.crypto.ed25519.PubKey";

    /// The raw key bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Secp256k1(bytes) => bytes,
            Self::Ed25519(bytes) => bytes,
        }
    }

    /// The address this key controls.
    #[must_use]
    pub fn address(&self) -> Address {
        Address::from_public_key(self)
    }

    /// The same key as a `cosmrs` public key.
    ///
    /// # Panics
    /// Never for keys produced by a [`SigningKey`]; for a key decoded from a transaction, only
    /// call this after the transaction's signature verified (which proves the point valid).
    #[must_use]
    pub fn to_cosmrs(&self) -> cosmrs::crypto::PublicKey {
        let key = match self {
            Self::Secp256k1(bytes) => tendermint::PublicKey::from_raw_secp256k1(bytes),
            Self::Ed25519(bytes) => tendermint::PublicKey::from_raw_ed25519(bytes),
        };
        key.expect("key bytes were validated by signing or by signature verification")
            .into()
    }
}

/// Parses an ed25519 public key for verification, refusing the keys of small order.
///
/// ed25519-consensus verifies under ZIP-215, which accepts a public key of small order (one
/// of the 8 torsion points, in any encoding). For such a key `A`, the signature `R` = identity,
/// `s` = 0 passes the cofactored check for every message, so anyone could sign for its
/// address (as a tx signer) or its voting power (as a validator). No honestly generated key
/// has small order.
///
/// Returns `None` when the bytes are not a curve point or the point has small order.
#[must_use]
pub fn ed25519_verification_key(bytes: [u8; 32]) -> Option<ed25519_consensus::VerificationKey> {
    let point = curve25519_dalek::edwards::CompressedEdwardsY(bytes).decompress()?;
    if point.is_small_order() {
        return None;
    }
    ed25519_consensus::VerificationKey::try_from(bytes).ok()
}

/// A key that signs transactions.
#[derive(Clone)]
pub enum SigningKey {
    /// secp256k1 ECDSA over SHA-256 of the sign bytes, low-S, 64-byte `r‖s` signatures.
    Secp256k1(k256::ecdsa::SigningKey),
    /// ed25519 over the raw sign bytes.
    Ed25519(ed25519_consensus::SigningKey),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret material.
        f.debug_struct("SigningKey")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// Why bytes are not a signing key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not a valid secp256k1 secret scalar (zero, or not below the curve order, or not 32 bytes).
    #[error("invalid secp256k1 secret key")]
    InvalidSecp256k1,
    /// Not 32 bytes.
    #[error("ed25519 secret key must be 32 bytes, got {0}")]
    InvalidEd25519Length(usize),
}

impl SigningKey {
    /// A secp256k1 key derived deterministically from `seed` (for tests and devnets): the first
    /// valid scalar among `sha256(seed ‖ counter)`.
    #[must_use]
    pub fn secp256k1_from_seed(seed: &[u8]) -> Self {
        (0u32..)
            .find_map(|counter| {
                let digest = Sha256::new()
                    .chain_update(seed)
                    .chain_update(counter.to_be_bytes())
                    .finalize();
                k256::ecdsa::SigningKey::from_slice(&digest).ok()
            })
            .map(Self::Secp256k1)
            .expect("a valid scalar is found within a few attempts")
    }

    /// An ed25519 key whose secret is `sha256(seed)` (for tests and devnets).
    #[must_use]
    pub fn ed25519_from_seed(seed: &[u8]) -> Self {
        let secret: [u8; 32] = Sha256::digest(seed).into();
        Self::Ed25519(ed25519_consensus::SigningKey::from(secret))
    }

    /// A fresh random secp256k1 key.
    pub fn generate_secp256k1(rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore)) -> Self {
        Self::Secp256k1(k256::ecdsa::SigningKey::random(rng))
    }

    /// A fresh random ed25519 key.
    pub fn generate_ed25519(rng: &mut (impl rand_core::CryptoRng + rand_core::RngCore)) -> Self {
        Self::Ed25519(ed25519_consensus::SigningKey::new(rng))
    }

    /// A secp256k1 key from its 32-byte secret scalar.
    pub fn secp256k1_from_bytes(secret: &[u8]) -> Result<Self, KeyError> {
        k256::ecdsa::SigningKey::from_slice(secret)
            .map(Self::Secp256k1)
            .map_err(|_| KeyError::InvalidSecp256k1)
    }

    /// An ed25519 key from its 32-byte secret.
    pub fn ed25519_from_bytes(secret: &[u8]) -> Result<Self, KeyError> {
        let secret: [u8; 32] = secret
            .try_into()
            .map_err(|_| KeyError::InvalidEd25519Length(secret.len()))?;
        Ok(Self::Ed25519(ed25519_consensus::SigningKey::from(secret)))
    }

    /// The 32-byte secret, for writing a key file.
    #[must_use]
    pub fn secret_bytes(&self) -> [u8; 32] {
        match self {
            Self::Secp256k1(key) => key.to_bytes().into(),
            Self::Ed25519(key) => key.to_bytes(),
        }
    }

    /// The public half.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Secp256k1(key) => {
                let point = key.verifying_key().to_encoded_point(true);
                PublicKey::Secp256k1(
                    point
                        .as_bytes()
                        .try_into()
                        .expect("a compressed secp256k1 point is 33 bytes"),
                )
            }
            Self::Ed25519(key) => PublicKey::Ed25519(key.verification_key().to_bytes()),
        }
    }

    /// The address this key controls.
    #[must_use]
    pub fn address(&self) -> Address {
        self.public_key().address()
    }

    /// Signs `message` (the encoded `SignDoc`): 64 bytes.
    #[must_use]
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        match self {
            Self::Secp256k1(key) => {
                // k256 signs SHA-256(message) with RFC 6979 nonces and normalizes to low-S.
                let signature: k256::ecdsa::Signature = key.sign(message);
                signature.to_bytes().into()
            }
            Self::Ed25519(key) => key.sign(message).to_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The forgery that small-order keys allow: `R` = identity, `s` = 0.
    fn forged_signature() -> ed25519_consensus::Signature {
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(
            curve25519_dalek::edwards::EdwardsPoint::default()
                .compress()
                .as_bytes(),
        );
        ed25519_consensus::Signature::from(bytes)
    }

    #[test]
    fn small_order_ed25519_keys_are_refused() {
        for torsion in curve25519_dalek::constants::EIGHT_TORSION {
            let bytes = torsion.compress().to_bytes();
            // ZIP-215 alone accepts the forgery for every message...
            let zip215 = ed25519_consensus::VerificationKey::try_from(bytes).unwrap();
            assert!(zip215.verify(&forged_signature(), b"any message").is_ok());
            // ...so such a key is refused outright.
            assert!(ed25519_verification_key(bytes).is_none(), "{bytes:?}");
        }
        // An ordinary key still parses, and the forgery does not verify under it.
        let PublicKey::Ed25519(bytes) = SigningKey::ed25519_from_seed(b"a").public_key() else {
            unreachable!("an ed25519 seed gives an ed25519 key")
        };
        let key = ed25519_verification_key(bytes).unwrap();
        assert!(key.verify(&forged_signature(), b"any message").is_err());
    }

    #[test]
    fn seeds_are_deterministic_and_distinct() {
        let a = SigningKey::secp256k1_from_seed(b"a");
        assert_eq!(
            a.public_key(),
            SigningKey::secp256k1_from_seed(b"a").public_key()
        );
        assert_ne!(
            a.public_key(),
            SigningKey::secp256k1_from_seed(b"b").public_key()
        );
        let e = SigningKey::ed25519_from_seed(b"a");
        assert!(matches!(e.public_key(), PublicKey::Ed25519(_)));
    }

    #[test]
    fn secret_bytes_round_trip() {
        for key in [
            SigningKey::secp256k1_from_seed(b"k"),
            SigningKey::ed25519_from_seed(b"k"),
        ] {
            let restored = match key {
                SigningKey::Secp256k1(_) => SigningKey::secp256k1_from_bytes(&key.secret_bytes()),
                SigningKey::Ed25519(_) => SigningKey::ed25519_from_bytes(&key.secret_bytes()),
            }
            .unwrap();
            assert_eq!(restored.public_key(), key.public_key());
        }
        assert_eq!(
            SigningKey::secp256k1_from_bytes(&[0; 32]).unwrap_err(),
            KeyError::InvalidSecp256k1
        );
        assert_eq!(
            SigningKey::ed25519_from_bytes(&[0; 31]).unwrap_err(),
            KeyError::InvalidEd25519Length(31)
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let key = SigningKey::secp256k1_from_seed(b"secret");
        let debug = format!("{key:?}");
        assert!(!debug.contains(&hex::encode(key.secret_bytes())), "{debug}");
    }
}
