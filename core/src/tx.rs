//! Cosmos SDK transactions: building, signing, decoding and verifying.
//!
//! The wire format is `cosmos.tx.v1beta1.TxRaw` signed in `SIGN_MODE_DIRECT` by exactly one
//! key. Verification runs in two stages so that the application can look up the signer's
//! account number in between:
//!
//! ```text
//! bytes ──ParsedTx::decode──► ParsedTx ──verify(chain_id, account_number)──► VerifiedTx
//!        size, structure,              signature over SignDoc{body, auth_info,
//!        messages, signer               chain_id, account_number}
//! ```

use cosmrs::proto::cosmos::{
    base::v1beta1 as base,
    tx::{
        signing::v1beta1::SignMode,
        v1beta1::{mode_info, AuthInfo, Fee, ModeInfo, SignerInfo, TxBody, TxRaw},
    },
};
use std::collections::BTreeMap;

use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::{
    address::Address,
    keys::{PublicKey, SigningKey},
    messages::{parse_amount, Message, MessageError, NATIVE_DENOM},
};

/// Longest memo accepted, as the Cosmos SDK's default `max_memo_characters`.
pub const MAX_MEMO_CHARS: usize = 256;

/// Why a transaction is rejected. [`TxError::code`] gives each reason a stable ABCI code.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TxError {
    /// The encoded transaction exceeds the size limit.
    #[error("tx is {size} bytes, above the limit of {max} bytes")]
    TooLarge {
        /// Size of the tx.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a `TxRaw` with decodable body and auth info.
    #[error("malformed tx: {0}")]
    Malformed(String),
    /// The body has no messages.
    #[error("tx has no messages")]
    NoMessages,
    /// A message has a type this chain does not know.
    #[error("unknown message type `{type_url}`")]
    UnknownMessage {
        /// The type URL.
        type_url: String,
    },
    /// A message is known but invalid.
    #[error("invalid message #{index}: {source}")]
    InvalidMessage {
        /// Position of the message in the body.
        index: usize,
        /// What is wrong with it.
        source: MessageError,
    },
    /// The tx has no signer info or no signature.
    #[error("tx has no signer")]
    NoSigner,
    /// More than one signer info or signature: Tandem txs have exactly one signer.
    #[error(
        "tx has {signers} signers and {signatures} signatures; exactly one of each is allowed"
    )]
    MultipleSigners {
        /// Number of signer infos.
        signers: usize,
        /// Number of signatures.
        signatures: usize,
    },
    /// Not `SIGN_MODE_DIRECT` single-signer mode.
    #[error("unsupported sign mode: {0}; only SIGN_MODE_DIRECT is accepted")]
    UnsupportedSignMode(String),
    /// The signer's public key type is not secp256k1 or ed25519, or is missing.
    #[error("unsupported public key: {0}")]
    UnsupportedPublicKey(String),
    /// A message names a signer other than the tx's key.
    #[error("message #{index} must be signed by {expected}, but the tx is signed by {actual}")]
    SignerMismatch {
        /// Position of the message.
        index: usize,
        /// The address the message names.
        expected: Address,
        /// The address of the tx's key.
        actual: Address,
    },
    /// The fee is in a denom other than `utnd`, or has several coins.
    #[error("fee must be a single amount of {NATIVE_DENOM}, got {0}")]
    InvalidFee(String),
    /// The memo is too long.
    #[error("memo is {0} characters, above the limit of {MAX_MEMO_CHARS}")]
    MemoTooLong(usize),
    /// The body uses a field Tandem does not support (timeout height, extension options).
    #[error("unsupported tx body field: {0}")]
    UnsupportedField(&'static str),
    /// The signature does not verify: wrong chain id, wrong account number, tampered bytes or
    /// wrong key.
    #[error("signature verification failed (check chain id, account number and signer key)")]
    InvalidSignature,
    /// The public key bytes are not a valid curve point, or an ed25519 point of small order
    /// (anyone can sign for such a key).
    #[error("public key is not a valid curve point, or is an ed25519 key of small order")]
    InvalidPublicKey,
}

impl TxError {
    /// The ABCI response code for this reason. Stable: clients may match on it. Codes 1 to 31
    /// are tx decoding and verification; the application uses 32 and above for state checks.
    #[must_use]
    pub fn code(&self) -> u32 {
        match self {
            Self::TooLarge { .. } => 1,
            Self::Malformed(_) => 2,
            Self::NoMessages => 3,
            Self::UnknownMessage { .. } => 4,
            Self::InvalidMessage { .. } => 5,
            Self::NoSigner => 6,
            Self::MultipleSigners { .. } => 7,
            Self::UnsupportedSignMode(_) => 8,
            Self::UnsupportedPublicKey(_) => 9,
            Self::SignerMismatch { .. } => 10,
            Self::InvalidFee(_) => 11,
            Self::MemoTooLong(_) => 12,
            Self::UnsupportedField(_) => 13,
            Self::InvalidSignature => 14,
            Self::InvalidPublicKey => 15,
        }
    }

    /// A short machine-readable reason, for logs and metric labels.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::Malformed(_) => "malformed",
            Self::NoMessages => "no_messages",
            Self::UnknownMessage { .. } => "unknown_message",
            Self::InvalidMessage { .. } => "invalid_message",
            Self::NoSigner => "no_signer",
            Self::MultipleSigners { .. } => "multiple_signers",
            Self::UnsupportedSignMode(_) => "unsupported_sign_mode",
            Self::UnsupportedPublicKey(_) => "unsupported_public_key",
            Self::SignerMismatch { .. } => "signer_mismatch",
            Self::InvalidFee(_) => "invalid_fee",
            Self::MemoTooLong(_) => "memo_too_long",
            Self::UnsupportedField(_) => "unsupported_field",
            Self::InvalidSignature => "invalid_signature",
            Self::InvalidPublicKey => "invalid_public_key",
        }
    }
}

/// sha256 of the tx bytes: CometBFT's tx hash.
#[must_use]
pub fn tx_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Builds and signs a transaction.
#[derive(Clone, Debug)]
pub struct TxBuilder {
    chain_id: String,
    account_number: u64,
    sequence: u64,
    messages: Vec<Message>,
    fee: u128,
    gas_limit: u64,
    memo: String,
}

impl TxBuilder {
    /// A transaction for `chain_id` from the account with `account_number`, carrying nonce
    /// `sequence`.
    pub fn new(chain_id: impl Into<String>, account_number: u64, sequence: u64) -> Self {
        Self {
            chain_id: chain_id.into(),
            account_number,
            sequence,
            messages: Vec::new(),
            fee: 0,
            gas_limit: 200_000,
            memo: String::new(),
        }
    }

    /// Appends a message.
    #[must_use]
    pub fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// Sets the fee, in utnd.
    #[must_use]
    pub fn fee(mut self, fee: u128) -> Self {
        self.fee = fee;
        self
    }

    /// Sets the gas limit (accepted and ignored by the chain; wallets expect one).
    #[must_use]
    pub fn gas_limit(mut self, gas_limit: u64) -> Self {
        self.gas_limit = gas_limit;
        self
    }

    /// Sets the memo.
    #[must_use]
    pub fn memo(mut self, memo: impl Into<String>) -> Self {
        self.memo = memo.into();
        self
    }

    /// Signs with `key` and returns the encoded `TxRaw`.
    pub fn sign(self, key: &SigningKey) -> Result<Vec<u8>, TxError> {
        if self.messages.is_empty() {
            return Err(TxError::NoMessages);
        }
        let actual = key.address();
        for (index, message) in self.messages.iter().enumerate() {
            let expected = message.signer();
            if expected != actual {
                return Err(TxError::SignerMismatch {
                    index,
                    expected,
                    actual,
                });
            }
        }
        let body_bytes = TxBody {
            messages: self.messages.iter().map(Message::to_any).collect(),
            memo: self.memo,
            ..TxBody::default()
        }
        .encode_to_vec();
        let auth_info_bytes = AuthInfo {
            signer_infos: vec![SignerInfo {
                public_key: Some(
                    key.public_key()
                        .to_cosmrs()
                        .to_any()
                        .map_err(|e| TxError::UnsupportedPublicKey(e.to_string()))?,
                ),
                mode_info: Some(ModeInfo {
                    sum: Some(mode_info::Sum::Single(mode_info::Single {
                        mode: SignMode::Direct as i32,
                    })),
                }),
                sequence: self.sequence,
            }],
            fee: Some(Fee {
                amount: vec![base::Coin {
                    denom: NATIVE_DENOM.to_owned(),
                    amount: self.fee.to_string(),
                }],
                gas_limit: self.gas_limit,
                ..Fee::default()
            }),
            ..AuthInfo::default()
        }
        .encode_to_vec();
        let sign_doc = sign_doc_bytes(
            &body_bytes,
            &auth_info_bytes,
            &self.chain_id,
            self.account_number,
        );
        let signature = key.sign(&sign_doc);
        Ok(TxRaw {
            body_bytes,
            auth_info_bytes,
            signatures: vec![signature.to_vec()],
        }
        .encode_to_vec())
    }
}

/// The encoded `SignDoc` a `SIGN_MODE_DIRECT` signature covers.
#[must_use]
pub fn sign_doc_bytes(
    body_bytes: &[u8],
    auth_info_bytes: &[u8],
    chain_id: &str,
    account_number: u64,
) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(body_bytes.len() + auth_info_bytes.len() + chain_id.len() + 24);
    for_each_sign_doc_part(
        body_bytes,
        auth_info_bytes,
        chain_id,
        account_number,
        |part| out.extend_from_slice(part),
    );
    out
}

/// Feeds the encoding of `SignDoc { body_bytes = 1, auth_info_bytes = 2, chain_id = 3,
/// account_number = 4 }` to `sink` piece by piece, as prost (and cosmjs) encode it: fields in
/// order, empty or zero fields omitted. The fields are borrowed, so nothing is copied.
fn for_each_sign_doc_part(
    body_bytes: &[u8],
    auth_info_bytes: &[u8],
    chain_id: &str,
    account_number: u64,
    mut sink: impl FnMut(&[u8]),
) {
    use prost::encoding::{encode_key, encode_varint, WireType};
    // A key (at most 1 byte for tags 1..=4) and a varint (at most 10 bytes).
    let mut header = Vec::with_capacity(11);
    for (tag, bytes) in [
        (1u32, body_bytes),
        (2, auth_info_bytes),
        (3, chain_id.as_bytes()),
    ] {
        if !bytes.is_empty() {
            header.clear();
            encode_key(tag, WireType::LengthDelimited, &mut header);
            encode_varint(bytes.len() as u64, &mut header);
            sink(&header);
            sink(bytes);
        }
    }
    if account_number != 0 {
        header.clear();
        encode_key(4, WireType::Varint, &mut header);
        encode_varint(account_number, &mut header);
        sink(&header);
    }
}

/// How many parsed secp256k1 keys [`secp256k1_key`] keeps; about 100 bytes each.
const KEY_CACHE_CAPACITY: usize = 4096;

/// Parsed secp256k1 keys by their compressed encoding. Parsing decompresses the point (a field
/// square root, about 10% of a signature check), and a sequencer sees the same few keys (rollup
/// forwarders, frequent senders) sign tx after tx. Only the speed depends on this cache, never
/// a result: parsing is a pure function of the 33 bytes.
static SECP256K1_KEYS: std::sync::Mutex<BTreeMap<[u8; 33], k256::ecdsa::VerifyingKey>> =
    std::sync::Mutex::new(BTreeMap::new());

/// Parses a compressed secp256k1 key, through [`SECP256K1_KEYS`].
fn secp256k1_key(bytes: &[u8; 33]) -> Result<k256::ecdsa::VerifyingKey, TxError> {
    let cached = SECP256K1_KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(bytes)
        .copied();
    if let Some(key) = cached {
        return Ok(key);
    }
    let key =
        k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map_err(|_| TxError::InvalidPublicKey)?;
    let mut cache = SECP256K1_KEYS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= KEY_CACHE_CAPACITY {
        // Crude but bounded: start over rather than track recency.
        cache.clear();
    }
    cache.insert(*bytes, key);
    Ok(key)
}

/// Decodes `bytes` as `T` and rejects unknown fields and non-minimal encodings (re-encoding
/// must give the same length), as the Cosmos SDK rejects unknown fields in a tx.
fn decode_known_fields<T: prost::Message + Default>(
    what: &str,
    bytes: &[u8],
) -> Result<T, TxError> {
    let value = T::decode(bytes).map_err(|e| TxError::Malformed(format!("{what}: {e}")))?;
    if value.encoded_len() == bytes.len() {
        Ok(value)
    } else {
        Err(TxError::Malformed(format!(
            "{what} has unknown fields or a non-canonical encoding"
        )))
    }
}

/// A structurally valid transaction whose signature is not yet checked.
#[derive(Clone, Debug)]
pub struct ParsedTx {
    hash: [u8; 32],
    len: usize,
    body_bytes: Vec<u8>,
    auth_info_bytes: Vec<u8>,
    signature: [u8; 64],
    public_key: PublicKey,
    signer: Address,
    sequence: u64,
    fee: u128,
    gas_limit: u64,
    messages: Vec<Message>,
}

/// A transaction whose signature verified for a chain id and account number.
#[derive(Clone, Debug)]
pub struct VerifiedTx(ParsedTx);

impl ParsedTx {
    /// Decodes `bytes` as a `TxRaw` and checks everything but the signature. The size limit is
    /// checked before any decoding.
    pub fn decode(bytes: &[u8], max_tx_bytes: usize) -> Result<Self, TxError> {
        Self::decode_as(bytes, max_tx_bytes, false)
    }

    /// [`ParsedTx::decode`] for a tx to simulate, as a client builds it before it can sign
    /// (cosmjs's `simulate`): the sign mode may also be `SIGN_MODE_UNSPECIFIED` and the one
    /// signature may be empty, in which case [`ParsedTx::signature`] is all zeros. Such a tx
    /// never verifies; it is only for executing on a fork that is thrown away.
    pub fn decode_unsigned(bytes: &[u8], max_tx_bytes: usize) -> Result<Self, TxError> {
        Self::decode_as(bytes, max_tx_bytes, true)
    }

    fn decode_as(bytes: &[u8], max_tx_bytes: usize, unsigned: bool) -> Result<Self, TxError> {
        if bytes.len() > max_tx_bytes {
            return Err(TxError::TooLarge {
                size: bytes.len(),
                max: max_tx_bytes,
            });
        }
        let raw = TxRaw::decode(bytes).map_err(|e| TxError::Malformed(format!("TxRaw: {e}")))?;
        // The signature covers body and auth info, not the TxRaw framing: without this check
        // anyone could append an unknown field or reorder fields and so change the tx hash of
        // someone else's signed tx (the Cosmos SDK rejects such txs too, ADR-027).
        if raw.encoded_len() != bytes.len() || raw.encode_to_vec() != bytes {
            return Err(TxError::Malformed(
                "TxRaw is not canonically encoded (unknown fields, fields out of order or \
                 non-minimal encodings)"
                    .to_owned(),
            ));
        }
        let auth_info: AuthInfo = decode_known_fields("auth_info", &raw.auth_info_bytes)?;
        let (signer_info, signature) = match (&auth_info.signer_infos[..], &raw.signatures[..]) {
            ([info], [signature]) => (info, signature),
            ([], _) | (_, []) => return Err(TxError::NoSigner),
            (infos, signatures) => {
                return Err(TxError::MultipleSigners {
                    signers: infos.len(),
                    signatures: signatures.len(),
                })
            }
        };
        match signer_info.mode_info.as_ref().and_then(|m| m.sum.as_ref()) {
            Some(mode_info::Sum::Single(single)) if single.mode == SignMode::Direct as i32 => {}
            Some(mode_info::Sum::Single(single))
                if unsigned && single.mode == SignMode::Unspecified as i32 => {}
            Some(mode_info::Sum::Single(single)) => {
                return Err(TxError::UnsupportedSignMode(format!(
                    "mode {}",
                    single.mode
                )))
            }
            Some(mode_info::Sum::Multi(_)) => {
                return Err(TxError::UnsupportedSignMode("multisig".to_owned()))
            }
            None => return Err(TxError::UnsupportedSignMode("missing mode_info".to_owned())),
        }
        let public_key = decode_public_key(signer_info.public_key.as_ref())?;
        let signature: [u8; 64] = if unsigned && signature.is_empty() {
            [0; 64]
        } else {
            signature.as_slice().try_into().map_err(|_| {
                TxError::Malformed(format!(
                    "signature must be 64 bytes, got {}",
                    signature.len()
                ))
            })?
        };
        let (fee, gas_limit) = decode_fee(auth_info.fee.as_ref())?;

        let body: TxBody = decode_known_fields("body", &raw.body_bytes)?;
        if body.timeout_height != 0 {
            return Err(TxError::UnsupportedField("timeout_height"));
        }
        if !body.extension_options.is_empty() || !body.non_critical_extension_options.is_empty() {
            return Err(TxError::UnsupportedField("extension_options"));
        }
        let memo_chars = body.memo.chars().count();
        if memo_chars > MAX_MEMO_CHARS {
            return Err(TxError::MemoTooLong(memo_chars));
        }
        if body.messages.is_empty() {
            return Err(TxError::NoMessages);
        }
        let signer = public_key.address();
        let messages = body
            .messages
            .iter()
            .enumerate()
            .map(|(index, any)| {
                let message = Message::try_from_any(any).map_err(|source| match source {
                    MessageError::UnknownType { type_url } => TxError::UnknownMessage { type_url },
                    source => TxError::InvalidMessage { index, source },
                })?;
                let expected = message.signer();
                if expected != signer {
                    return Err(TxError::SignerMismatch {
                        index,
                        expected,
                        actual: signer,
                    });
                }
                Ok(message)
            })
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Self {
            hash: tx_hash(bytes),
            len: bytes.len(),
            body_bytes: raw.body_bytes,
            auth_info_bytes: raw.auth_info_bytes,
            signature,
            public_key,
            signer,
            sequence: signer_info.sequence,
            fee,
            gas_limit,
            messages,
        })
    }

    /// Checks the signature over `SignDoc{body, auth_info, chain_id, account_number}`.
    pub fn verify(self, chain_id: &str, account_number: u64) -> Result<VerifiedTx, TxError> {
        self.check_signature(chain_id, account_number)?;
        Ok(VerifiedTx(self))
    }

    /// [`ParsedTx::verify`] without taking the tx: for a caller that executes a tx before its
    /// check ends and throws the result away unless it passes.
    pub fn check_signature(&self, chain_id: &str, account_number: u64) -> Result<(), TxError> {
        match &self.public_key {
            PublicKey::Secp256k1(bytes) => {
                // Hash the sign doc straight from the tx's own buffers: no second copy of the
                // body, one SHA-256 pass, then ECDSA on the prehash.
                use k256::ecdsa::signature::hazmat::PrehashVerifier as _;
                let key = secp256k1_key(bytes)?;
                let signature = k256::ecdsa::Signature::from_slice(&self.signature)
                    .map_err(|_| TxError::InvalidSignature)?;
                let mut hasher = Sha256::new();
                for_each_sign_doc_part(
                    &self.body_bytes,
                    &self.auth_info_bytes,
                    chain_id,
                    account_number,
                    |part| hasher.update(part),
                );
                // k256 rejects high-S signatures, as the Cosmos SDK does.
                key.verify_prehash(&hasher.finalize(), &signature)
                    .map_err(|_| TxError::InvalidSignature)?;
            }
            PublicKey::Ed25519(_) => {
                let sign_doc = self.sign_doc_bytes(chain_id, account_number);
                verify_signature(&self.public_key, &sign_doc, &self.signature)?;
            }
        }
        Ok(())
    }

    /// Treats this tx as verified without checking its signature.
    ///
    /// Only for a caller that already verified a tx with this exact hash for the same chain id
    /// and account number (the application's verified-signature cache), that executes it on a
    /// fork it throws away (a simulation), or that checks the signature
    /// ([`ParsedTx::check_signature`]) before it keeps anything the execution produced.
    #[must_use]
    pub fn into_verified_unchecked(self) -> VerifiedTx {
        VerifiedTx(self)
    }

    /// The bytes a signature for this tx must cover.
    #[must_use]
    pub fn sign_doc_bytes(&self, chain_id: &str, account_number: u64) -> Vec<u8> {
        sign_doc_bytes(
            &self.body_bytes,
            &self.auth_info_bytes,
            chain_id,
            account_number,
        )
    }

    /// The 64-byte signature.
    #[must_use]
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// The signer's public key (not yet proven to be a valid point).
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// sha256 of the tx bytes.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The address of the signing key.
    #[must_use]
    pub fn signer(&self) -> Address {
        self.signer
    }

    /// The account nonce the tx carries.
    #[must_use]
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// The validated messages, in order.
    #[must_use]
    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    /// The fee offered, in utnd.
    #[must_use]
    pub fn fee(&self) -> u128 {
        self.fee
    }

    /// The gas limit (informational).
    #[must_use]
    pub fn gas_limit(&self) -> u64 {
        self.gas_limit
    }

    /// Encoded size in bytes.
    #[must_use]
    #[expect(clippy::len_without_is_empty, reason = "a decoded tx is never empty")]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Total rollup data bytes in the tx's messages (what `fee_per_byte` applies to).
    #[must_use]
    pub fn rollup_data_bytes(&self) -> u64 {
        self.messages.iter().map(Message::rollup_data_bytes).sum()
    }
}

impl VerifiedTx {
    /// The parsed tx.
    #[must_use]
    pub fn parsed(&self) -> &ParsedTx {
        &self.0
    }

    /// The signer's public key, proven valid by the signature check.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.0.public_key
    }

    /// sha256 of the tx bytes.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        self.0.hash
    }

    /// The signer's address.
    #[must_use]
    pub fn signer(&self) -> Address {
        self.0.signer
    }

    /// The account nonce the tx carries.
    #[must_use]
    pub fn sequence(&self) -> u64 {
        self.0.sequence
    }

    /// The validated messages, in order.
    #[must_use]
    pub fn messages(&self) -> &[Message] {
        &self.0.messages
    }

    /// The fee offered, in utnd.
    #[must_use]
    pub fn fee(&self) -> u128 {
        self.0.fee
    }

    /// Encoded size in bytes.
    #[must_use]
    #[expect(clippy::len_without_is_empty, reason = "a decoded tx is never empty")]
    pub fn len(&self) -> usize {
        self.0.len
    }

    /// Total rollup data bytes in the tx's messages.
    #[must_use]
    pub fn rollup_data_bytes(&self) -> u64 {
        self.0.rollup_data_bytes()
    }
}

fn decode_public_key(any: Option<&cosmrs::Any>) -> Result<PublicKey, TxError> {
    use cosmrs::proto::cosmos::crypto::{ed25519, secp256k1};
    let any = any.ok_or_else(|| TxError::UnsupportedPublicKey("missing".to_owned()))?;
    match any.type_url.as_str() {
        PublicKey::SECP256K1_TYPE_URL => {
            let key = secp256k1::PubKey::decode(any.value.as_slice())
                .map_err(|e| TxError::Malformed(format!("secp256k1 public key: {e}")))?;
            let bytes = key.key.as_slice().try_into().map_err(|_| {
                TxError::UnsupportedPublicKey(format!(
                    "secp256k1 key must be 33 compressed bytes, got {}",
                    key.key.len()
                ))
            })?;
            Ok(PublicKey::Secp256k1(bytes))
        }
        PublicKey::ED25519_TYPE_URL => {
            let key = ed25519::PubKey::decode(any.value.as_slice())
                .map_err(|e| TxError::Malformed(format!("ed25519 public key: {e}")))?;
            let bytes = key.key.as_slice().try_into().map_err(|_| {
                TxError::UnsupportedPublicKey(format!(
                    "ed25519 key must be 32 bytes, got {}",
                    key.key.len()
                ))
            })?;
            Ok(PublicKey::Ed25519(bytes))
        }
        other => Err(TxError::UnsupportedPublicKey(format!("type `{other}`"))),
    }
}

fn decode_fee(fee: Option<&Fee>) -> Result<(u128, u64), TxError> {
    let Some(fee) = fee else {
        return Ok((0, 0));
    };
    if !fee.payer.is_empty() || !fee.granter.is_empty() {
        return Err(TxError::UnsupportedField("fee payer/granter"));
    }
    let amount = match fee.amount.as_slice() {
        [] => 0,
        [coin] if coin.denom == NATIVE_DENOM => parse_amount(&coin.amount).ok_or_else(|| {
            TxError::InvalidFee(format!(
                "amount `{}` is not an unsigned integer",
                coin.amount
            ))
        })?,
        [coin] => return Err(TxError::InvalidFee(format!("denom `{}`", coin.denom))),
        coins => return Err(TxError::InvalidFee(format!("{} coins", coins.len()))),
    };
    Ok((amount, fee.gas_limit))
}

/// Verifies a 64-byte signature by `key` over `message`.
pub fn verify_signature(
    key: &PublicKey,
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), TxError> {
    match key {
        PublicKey::Secp256k1(bytes) => {
            use k256::ecdsa::signature::Verifier as _;
            let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                .map_err(|_| TxError::InvalidPublicKey)?;
            let signature = k256::ecdsa::Signature::from_slice(signature)
                .map_err(|_| TxError::InvalidSignature)?;
            // k256 rejects high-S signatures, as the Cosmos SDK does.
            key.verify(message, &signature)
                .map_err(|_| TxError::InvalidSignature)
        }
        PublicKey::Ed25519(bytes) => {
            let key =
                crate::keys::ed25519_verification_key(*bytes).ok_or(TxError::InvalidPublicKey)?;
            key.verify(&ed25519_consensus::Signature::from(*signature), message)
                .map_err(|_| TxError::InvalidSignature)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_order_ed25519_signer_cannot_be_forged_for() {
        let torsion = curve25519_dalek::constants::EIGHT_TORSION[3]
            .compress()
            .to_bytes();
        // R = identity, s = 0: valid under ZIP-215 for any message and any small-order key.
        let mut forged = [0u8; 64];
        forged[0] = 1;
        assert_eq!(
            verify_signature(&PublicKey::Ed25519(torsion), b"sign doc", &forged),
            Err(TxError::InvalidPublicKey)
        );
    }

    #[test]
    fn cached_keys_equal_freshly_parsed_ones_and_bad_points_are_never_cached() {
        let key = SigningKey::secp256k1_from_seed(b"cache");
        let PublicKey::Secp256k1(bytes) = key.public_key() else {
            unreachable!("a secp256k1 key")
        };
        let fresh = k256::ecdsa::VerifyingKey::from_sec1_bytes(&bytes).unwrap();
        assert_eq!(secp256k1_key(&bytes).unwrap(), fresh);
        assert_eq!(
            secp256k1_key(&bytes).unwrap(),
            fresh,
            "second lookup hits the cache"
        );
        // x = 5 has no point on secp256k1 (5^3 + 7 = 132 is not a square mod p).
        let mut not_a_point = [0u8; 33];
        not_a_point[0] = 2;
        not_a_point[32] = 5;
        assert!(k256::ecdsa::VerifyingKey::from_sec1_bytes(&not_a_point).is_err());
        for _ in 0..2 {
            assert_eq!(
                secp256k1_key(&not_a_point).unwrap_err(),
                TxError::InvalidPublicKey
            );
        }
    }
}
