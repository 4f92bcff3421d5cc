//! Validated transaction messages and chain parameters.
//!
//! Each message is decoded from a `google.protobuf.Any` with [`Message::try_from_any`], which
//! checks every field (addresses, ids, amounts), and goes back with [`Message::to_any`].

use cosmrs::proto::cosmos::{bank::v1beta1 as bank, base::v1beta1 as base};
use prost::Message as _;
use tandem_proto::sequencer::v1 as raw;

use crate::{
    address::{Address, AddressError},
    rollup_id::{RollupId, RollupIdError},
};

/// The native denomination: fees and balances are in `utnd`.
pub const NATIVE_DENOM: &str = "utnd";

/// Type URL of the Cosmos SDK bank transfer.
pub const MSG_SEND_TYPE_URL: &str = "/cosmos.bank.v1beta1.MsgSend";

/// Largest number of coins in one transfer.
pub const MAX_COINS_PER_SEND: usize = 16;

/// Longest accepted denom.
pub const MAX_DENOM_LENGTH: usize = 128;

/// Why a message is invalid.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    /// The `Any` carries a type this chain does not know.
    #[error("unknown message type `{type_url}`")]
    UnknownType {
        /// The offending type URL.
        type_url: String,
    },
    /// The protobuf bytes do not decode.
    #[error("{type_url}: undecodable message bytes: {reason}")]
    Undecodable {
        /// The message type.
        type_url: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// An address field is not a Tandem address.
    #[error("{type_url}: field `{field}`: {source}")]
    Address {
        /// The message type.
        type_url: &'static str,
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        source: AddressError,
    },
    /// The rollup id is not 32 bytes.
    #[error("{type_url}: field `rollup_id`: {source}")]
    RollupId {
        /// The message type.
        type_url: &'static str,
        /// What is wrong with it.
        source: RollupIdError,
    },
    /// Any other field-level violation.
    #[error("{type_url}: {reason}")]
    Invalid {
        /// The message type.
        type_url: &'static str,
        /// What is wrong.
        reason: String,
    },
}

/// An amount of one denomination.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
pub struct Coin {
    /// The denomination, e.g. `utnd`.
    pub denom: String,
    /// The amount, in the smallest unit.
    #[serde(with = "u128_as_string")]
    pub amount: u128,
}

impl Coin {
    /// `amount` of the native denom.
    #[must_use]
    pub fn native(amount: u128) -> Self {
        Self {
            denom: NATIVE_DENOM.to_owned(),
            amount,
        }
    }

    fn try_from_raw(raw: &base::Coin, type_url: &'static str) -> Result<Self, MessageError> {
        let invalid = |reason: String| MessageError::Invalid { type_url, reason };
        if raw.denom.is_empty() || raw.denom.len() > MAX_DENOM_LENGTH {
            return Err(invalid(format!(
                "denom must be 1 to {MAX_DENOM_LENGTH} characters, got {}",
                raw.denom.len()
            )));
        }
        if !raw
            .denom
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/:._-".contains(c))
        {
            return Err(invalid(format!(
                "denom `{}` has invalid characters",
                raw.denom
            )));
        }
        let amount = parse_amount(&raw.amount).ok_or_else(|| {
            invalid(format!(
                "amount `{}` is not an unsigned integer",
                raw.amount
            ))
        })?;
        Ok(Self {
            denom: raw.denom.clone(),
            amount,
        })
    }

    fn to_raw(&self) -> base::Coin {
        base::Coin {
            denom: self.denom.clone(),
            amount: self.amount.to_string(),
        }
    }
}

/// Parses a Cosmos `Int` amount that must be plain decimal digits (no sign, no spaces) and
/// fit `u128`. Rust's `u128::from_str` alone would also take a leading `+`.
pub(crate) fn parse_amount(s: &str) -> Option<u128> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

mod u128_as_string {
    pub(super) fn serialize<S: serde::Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Repr<'a> {
            Text(std::borrow::Cow<'a, str>),
            Number(u64),
        }
        match <Repr<'de> as serde::Deserialize>::deserialize(d)? {
            Repr::Text(s) => s.parse().map_err(serde::de::Error::custom),
            Repr::Number(n) => Ok(u128::from(n)),
        }
    }
}

/// Chain parameters, changed only by the authority through [`UpdateParams`].
#[derive(Clone, Copy, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Params {
    /// Flat fee in utnd that every transaction pays.
    pub base_fee: u64,
    /// Fee in utnd per byte of rollup data.
    pub fee_per_byte: u64,
    /// Largest encoded `TxRaw`, in bytes.
    pub max_tx_bytes: u64,
    /// Largest sum of rollup data bytes in one block.
    pub max_rollup_bytes_per_block: u64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            base_fee: 1_000,
            fee_per_byte: 10,
            max_tx_bytes: 256 * 1024,
            max_rollup_bytes_per_block: 16 * 1024 * 1024,
        }
    }
}

/// Why parameters are invalid.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ParamsError {
    /// `max_tx_bytes` is below the floor or above the hard limit.
    #[error("max_tx_bytes must be between {min} and {max}, got {got}")]
    MaxTxBytes {
        /// Requested value.
        got: u64,
        /// [`Params::MIN_TX_BYTES`].
        min: u64,
        /// Hard limit.
        max: u64,
    },
    /// `max_rollup_bytes_per_block` is zero.
    #[error("max_rollup_bytes_per_block must be at least 1")]
    MaxRollupBytesPerBlock,
}

impl Params {
    /// Hard upper bound on `max_tx_bytes`: CometBFT's default `max_tx_bytes` is 1 MiB and
    /// its block limit 21 MiB; a tx above 4 MiB is never sensible here.
    pub const MAX_TX_BYTES_LIMIT: u64 = 4 * 1024 * 1024;

    /// Floor of `max_tx_bytes`: a signed `MsgUpdateParams` or `MsgUpdateValidator` takes a
    /// few hundred bytes, so the authority can always send the tx that raises the limit again.
    pub const MIN_TX_BYTES: u64 = 1024;

    /// Validates raw parameters.
    pub fn try_from_raw(raw: &raw::Params) -> Result<Self, ParamsError> {
        let params = Self {
            base_fee: raw.base_fee,
            fee_per_byte: raw.fee_per_byte,
            max_tx_bytes: raw.max_tx_bytes,
            max_rollup_bytes_per_block: raw.max_rollup_bytes_per_block,
        };
        params.validate()?;
        Ok(params)
    }

    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if !(Self::MIN_TX_BYTES..=Self::MAX_TX_BYTES_LIMIT).contains(&self.max_tx_bytes) {
            return Err(ParamsError::MaxTxBytes {
                got: self.max_tx_bytes,
                min: Self::MIN_TX_BYTES,
                max: Self::MAX_TX_BYTES_LIMIT,
            });
        }
        if self.max_rollup_bytes_per_block == 0 {
            return Err(ParamsError::MaxRollupBytesPerBlock);
        }
        Ok(())
    }

    /// The raw form.
    #[must_use]
    pub fn to_raw(&self) -> raw::Params {
        raw::Params {
            base_fee: self.base_fee,
            fee_per_byte: self.fee_per_byte,
            max_tx_bytes: self.max_tx_bytes,
            max_rollup_bytes_per_block: self.max_rollup_bytes_per_block,
        }
    }

    /// The fee a transaction carrying `rollup_bytes` of rollup data must pay:
    /// `base_fee + fee_per_byte × rollup_bytes`. Cannot overflow.
    #[must_use]
    pub fn required_fee(&self, rollup_bytes: u64) -> u128 {
        u128::from(self.base_fee) + u128::from(self.fee_per_byte) * u128::from(rollup_bytes)
    }
}

/// `/cosmos.bank.v1beta1.MsgSend`: a transfer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Send {
    /// Sender; must be the tx signer.
    pub from: Address,
    /// Recipient.
    pub to: Address,
    /// Non-empty, at most [`MAX_COINS_PER_SEND`] coins, distinct denoms, positive amounts.
    pub amount: Vec<Coin>,
}

/// `/tandem.sequencer.v1.MsgSubmitRollupData`: opaque data for one rollup.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SubmitRollupData {
    /// Must be the tx signer.
    pub signer: Address,
    /// The rollup namespace.
    pub rollup_id: RollupId,
    /// Non-empty opaque bytes.
    pub data: Vec<u8>,
}

/// `/tandem.sequencer.v1.MsgUpdateParams`: replaces all parameters (authority only).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UpdateParams {
    /// Must be the tx signer (the app checks it is the authority).
    pub authority: Address,
    /// The new parameters.
    pub params: Params,
}

/// `/tandem.sequencer.v1.MsgUpdateValidator`: sets a validator's power (authority only).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct UpdateValidator {
    /// Must be the tx signer (the app checks it is the authority).
    pub authority: Address,
    /// ed25519 consensus key.
    pub pub_key: [u8; 32],
    /// New voting power; 0 removes the validator.
    pub power: u64,
}

impl Send {
    /// Validates a raw `MsgSend` (cosmrs' protobuf type): both addresses are Tandem
    /// addresses; 1 to [`MAX_COINS_PER_SEND`] coins with valid denoms, distinct denoms and
    /// positive amounts.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "every message's try_from_raw takes its raw type by value"
    )]
    pub fn try_from_raw(raw: bank::MsgSend) -> Result<Self, MessageError> {
        let t = MSG_SEND_TYPE_URL;
        let invalid = |reason: &str| MessageError::Invalid {
            type_url: t,
            reason: reason.to_owned(),
        };
        if raw.amount.is_empty() {
            return Err(invalid("amount must not be empty"));
        }
        if raw.amount.len() > MAX_COINS_PER_SEND {
            return Err(invalid("too many coins in one transfer"));
        }
        let amount = raw
            .amount
            .iter()
            .map(|c| Coin::try_from_raw(c, t))
            .collect::<Result<Vec<_>, _>>()?;
        if amount.iter().any(|c| c.amount == 0) {
            return Err(invalid("every coin amount must be positive"));
        }
        let mut denoms: Vec<&str> = amount.iter().map(|c| c.denom.as_str()).collect();
        denoms.sort_unstable();
        if denoms.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid("duplicate denom in amount"));
        }
        Ok(Self {
            from: address(&raw.from_address, t, "from_address")?,
            to: address(&raw.to_address, t, "to_address")?,
            amount,
        })
    }

    /// The raw `MsgSend`.
    #[must_use]
    pub fn to_raw(&self) -> bank::MsgSend {
        bank::MsgSend {
            from_address: self.from.to_string(),
            to_address: self.to.to_string(),
            amount: self.amount.iter().map(Coin::to_raw).collect(),
        }
    }
}

impl SubmitRollupData {
    /// Validates a raw `MsgSubmitRollupData`: signer address, 32-byte rollup id, non-empty
    /// data.
    pub fn try_from_raw(raw: raw::MsgSubmitRollupData) -> Result<Self, MessageError> {
        let t = raw::MSG_SUBMIT_ROLLUP_DATA_TYPE_URL;
        let rollup_id =
            RollupId::try_from_slice(&raw.rollup_id).map_err(|source| MessageError::RollupId {
                type_url: t,
                source,
            })?;
        if raw.data.is_empty() {
            return Err(MessageError::Invalid {
                type_url: t,
                reason: "data must not be empty".to_owned(),
            });
        }
        Ok(Self {
            signer: address(&raw.signer, t, "signer")?,
            rollup_id,
            data: raw.data,
        })
    }

    /// The raw `MsgSubmitRollupData`.
    #[must_use]
    pub fn to_raw(&self) -> raw::MsgSubmitRollupData {
        raw::MsgSubmitRollupData {
            signer: self.signer.to_string(),
            rollup_id: self.rollup_id.as_bytes().to_vec(),
            data: self.data.clone(),
        }
    }
}

impl UpdateParams {
    /// Validates a raw `MsgUpdateParams`: authority address, params present and in bounds.
    #[expect(
        clippy::needless_pass_by_value,
        reason = "every message's try_from_raw takes its raw type by value"
    )]
    pub fn try_from_raw(raw: raw::MsgUpdateParams) -> Result<Self, MessageError> {
        let t = raw::MSG_UPDATE_PARAMS_TYPE_URL;
        let params = raw.params.as_ref().ok_or_else(|| MessageError::Invalid {
            type_url: t,
            reason: "params must be set".to_owned(),
        })?;
        let params = Params::try_from_raw(params).map_err(|e| MessageError::Invalid {
            type_url: t,
            reason: e.to_string(),
        })?;
        Ok(Self {
            authority: address(&raw.authority, t, "authority")?,
            params,
        })
    }

    /// The raw `MsgUpdateParams`.
    #[must_use]
    pub fn to_raw(&self) -> raw::MsgUpdateParams {
        raw::MsgUpdateParams {
            authority: self.authority.to_string(),
            params: Some(self.params.to_raw()),
        }
    }
}

impl UpdateValidator {
    /// Validates a raw `MsgUpdateValidator`: authority address; `pub_key` a 32-byte ed25519
    /// point (CometBFT would halt on a validator update it cannot parse); `power` in
    /// `0..=MAX_VALIDATOR_POWER` (a negative raw power is rejected).
    #[expect(
        clippy::needless_pass_by_value,
        reason = "every message's try_from_raw takes its raw type by value"
    )]
    pub fn try_from_raw(raw: raw::MsgUpdateValidator) -> Result<Self, MessageError> {
        let t = raw::MSG_UPDATE_VALIDATOR_TYPE_URL;
        let invalid = |reason: String| MessageError::Invalid {
            type_url: t,
            reason,
        };
        let pub_key: [u8; 32] = raw.pub_key.as_slice().try_into().map_err(|_| {
            invalid(format!(
                "pub_key must be a 32-byte ed25519 key, got {} bytes",
                raw.pub_key.len()
            ))
        })?;
        crate::keys::ed25519_verification_key(pub_key).ok_or_else(|| {
            invalid("pub_key is not a valid ed25519 point, or has small order".to_owned())
        })?;
        let power = u64::try_from(raw.power)
            .ok()
            .filter(|p| *p <= MAX_VALIDATOR_POWER)
            .ok_or_else(|| {
                invalid(format!(
                    "power must be between 0 and {MAX_VALIDATOR_POWER}, got {}",
                    raw.power
                ))
            })?;
        Ok(Self {
            authority: address(&raw.authority, t, "authority")?,
            pub_key,
            power,
        })
    }

    /// The raw `MsgUpdateValidator`.
    #[must_use]
    pub fn to_raw(&self) -> raw::MsgUpdateValidator {
        raw::MsgUpdateValidator {
            authority: self.authority.to_string(),
            pub_key: self.pub_key.to_vec(),
            power: i64::try_from(self.power).expect("power is bounded by MAX_VALIDATOR_POWER"),
        }
    }
}

/// A validated transaction message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Message {
    /// A transfer.
    Send(Send),
    /// Rollup data.
    SubmitRollupData(SubmitRollupData),
    /// A parameter change.
    UpdateParams(UpdateParams),
    /// A validator change.
    UpdateValidator(UpdateValidator),
}

/// CometBFT rejects voting power above `i64::MAX / 8`.
pub const MAX_VALIDATOR_POWER: u64 = (i64::MAX / 8) as u64;

fn address(
    value: &str,
    type_url: &'static str,
    field: &'static str,
) -> Result<Address, MessageError> {
    value.parse().map_err(|source| MessageError::Address {
        type_url,
        field,
        source,
    })
}

fn decode<M: prost::Message + Default>(
    bytes: &[u8],
    type_url: &'static str,
) -> Result<M, MessageError> {
    M::decode(bytes).map_err(|e| MessageError::Undecodable {
        type_url,
        reason: e.to_string(),
    })
}

impl Message {
    /// The type URL this message travels under.
    #[must_use]
    pub fn type_url(&self) -> &'static str {
        match self {
            Self::Send(_) => MSG_SEND_TYPE_URL,
            Self::SubmitRollupData(_) => raw::MSG_SUBMIT_ROLLUP_DATA_TYPE_URL,
            Self::UpdateParams(_) => raw::MSG_UPDATE_PARAMS_TYPE_URL,
            Self::UpdateValidator(_) => raw::MSG_UPDATE_VALIDATOR_TYPE_URL,
        }
    }

    /// The address that must sign a transaction carrying this message.
    #[must_use]
    pub fn signer(&self) -> Address {
        match self {
            Self::Send(m) => m.from,
            Self::SubmitRollupData(m) => m.signer,
            Self::UpdateParams(m) => m.authority,
            Self::UpdateValidator(m) => m.authority,
        }
    }

    /// Decodes and validates a message from an `Any`.
    pub fn try_from_any(any: &cosmrs::Any) -> Result<Self, MessageError> {
        match any.type_url.as_str() {
            MSG_SEND_TYPE_URL => {
                Send::try_from_raw(decode(&any.value, MSG_SEND_TYPE_URL)?).map(Self::Send)
            }
            raw::MSG_SUBMIT_ROLLUP_DATA_TYPE_URL => SubmitRollupData::try_from_raw(decode(
                &any.value,
                raw::MSG_SUBMIT_ROLLUP_DATA_TYPE_URL,
            )?)
            .map(Self::SubmitRollupData),
            raw::MSG_UPDATE_PARAMS_TYPE_URL => {
                UpdateParams::try_from_raw(decode(&any.value, raw::MSG_UPDATE_PARAMS_TYPE_URL)?)
                    .map(Self::UpdateParams)
            }
            raw::MSG_UPDATE_VALIDATOR_TYPE_URL => UpdateValidator::try_from_raw(decode(
                &any.value,
                raw::MSG_UPDATE_VALIDATOR_TYPE_URL,
            )?)
            .map(Self::UpdateValidator),
            other => Err(MessageError::UnknownType {
                type_url: other.chars().take(256).collect(),
            }),
        }
    }

    /// Encodes the message into an `Any`.
    #[must_use]
    pub fn to_any(&self) -> cosmrs::Any {
        let value = match self {
            Self::Send(m) => m.to_raw().encode_to_vec(),
            Self::SubmitRollupData(m) => m.to_raw().encode_to_vec(),
            Self::UpdateParams(m) => m.to_raw().encode_to_vec(),
            Self::UpdateValidator(m) => m.to_raw().encode_to_vec(),
        };
        cosmrs::Any {
            type_url: self.type_url().to_owned(),
            value,
        }
    }

    /// Rollup data bytes this message carries (0 for other messages).
    #[must_use]
    pub fn rollup_data_bytes(&self) -> u64 {
        match self {
            Self::SubmitRollupData(m) => m.data.len() as u64,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn max_tx_bytes_stays_between_the_floor_and_the_limit() {
        let with = |max_tx_bytes| Params {
            max_tx_bytes,
            ..Params::default()
        };
        for bad in [
            0,
            1,
            Params::MIN_TX_BYTES - 1,
            Params::MAX_TX_BYTES_LIMIT + 1,
        ] {
            assert_eq!(
                with(bad).validate(),
                Err(ParamsError::MaxTxBytes {
                    got: bad,
                    min: Params::MIN_TX_BYTES,
                    max: Params::MAX_TX_BYTES_LIMIT,
                })
            );
        }
        for good in [Params::MIN_TX_BYTES, Params::MAX_TX_BYTES_LIMIT] {
            assert_eq!(with(good).validate(), Ok(()));
        }
    }
    use super::*;

    fn alice() -> Address {
        Address::new([1; 20])
    }

    fn round_trip(message: &Message) {
        let any = message.to_any();
        assert_eq!(&Message::try_from_any(&any).unwrap(), message);
    }

    #[test]
    fn every_message_round_trips() {
        round_trip(&Message::Send(Send {
            from: alice(),
            to: Address::new([2; 20]),
            amount: vec![
                Coin::native(5),
                Coin {
                    denom: "ibc/ABC".into(),
                    amount: 7,
                },
            ],
        }));
        round_trip(&Message::SubmitRollupData(SubmitRollupData {
            signer: alice(),
            rollup_id: RollupId::from_name("r"),
            data: vec![1, 2, 3],
        }));
        round_trip(&Message::UpdateParams(UpdateParams {
            authority: alice(),
            params: Params::default(),
        }));
        round_trip(&Message::UpdateValidator(UpdateValidator {
            authority: alice(),
            pub_key: ed25519_consensus::SigningKey::from([9; 32])
                .verification_key()
                .to_bytes(),
            power: 0,
        }));
    }

    fn any(type_url: &str, value: &impl prost::Message) -> cosmrs::Any {
        cosmrs::Any {
            type_url: type_url.to_owned(),
            value: value.encode_to_vec(),
        }
    }

    #[test]
    fn validator_keys_must_be_ed25519_points() {
        // About half of all 32-byte strings are not the encoding of a curve point.
        let not_a_point = (0u8..=255)
            .map(|y| {
                let mut bytes = [0u8; 32];
                bytes[0] = y;
                bytes
            })
            .find(|bytes| ed25519_consensus::VerificationKey::try_from(*bytes).is_err())
            .expect("some small y is not on the curve");
        let raw = raw::MsgUpdateValidator {
            authority: alice().to_string(),
            pub_key: not_a_point.to_vec(),
            power: 1,
        };
        assert!(matches!(
            UpdateValidator::try_from_raw(raw.clone()),
            Err(MessageError::Invalid { reason, .. }) if reason.contains("ed25519 point")
        ));
        // A point of small order: anyone could sign votes for it.
        let small_order = curve25519_dalek::constants::EIGHT_TORSION[1].compress();
        assert!(matches!(
            UpdateValidator::try_from_raw(raw::MsgUpdateValidator {
                pub_key: small_order.as_bytes().to_vec(),
                ..raw.clone()
            }),
            Err(MessageError::Invalid { reason, .. }) if reason.contains("small order")
        ));
        let valid = ed25519_consensus::SigningKey::from([2; 32])
            .verification_key()
            .to_bytes();
        let update = UpdateValidator::try_from_raw(raw::MsgUpdateValidator {
            pub_key: valid.to_vec(),
            ..raw
        })
        .unwrap();
        assert_eq!(
            UpdateValidator::try_from_raw(update.to_raw()).unwrap(),
            update
        );
    }

    #[test]
    fn amounts_are_plain_digits() {
        assert_eq!(parse_amount("42"), Some(42));
        assert_eq!(parse_amount("0"), Some(0));
        for bad in [
            "",
            "+5",
            "-5",
            " 5",
            "5 ",
            "1e3",
            "340282366920938463463374607431768211456",
        ] {
            assert_eq!(parse_amount(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rejections_name_the_problem() {
        let unknown = cosmrs::Any {
            type_url: "/x.Y".into(),
            value: vec![],
        };
        assert!(matches!(
            Message::try_from_any(&unknown),
            Err(MessageError::UnknownType { .. })
        ));

        let garbage = cosmrs::Any {
            type_url: MSG_SEND_TYPE_URL.into(),
            value: vec![0xff, 0xff],
        };
        assert!(matches!(
            Message::try_from_any(&garbage),
            Err(MessageError::Undecodable { .. })
        ));

        let bad_id = any(
            raw::MSG_SUBMIT_ROLLUP_DATA_TYPE_URL,
            &raw::MsgSubmitRollupData {
                signer: alice().to_string(),
                rollup_id: vec![1; 31],
                data: vec![1],
            },
        );
        assert!(matches!(
            Message::try_from_any(&bad_id),
            Err(MessageError::RollupId { .. })
        ));

        let empty = any(
            raw::MSG_SUBMIT_ROLLUP_DATA_TYPE_URL,
            &raw::MsgSubmitRollupData {
                signer: alice().to_string(),
                rollup_id: vec![1; 32],
                data: vec![],
            },
        );
        assert!(matches!(
            Message::try_from_any(&empty),
            Err(MessageError::Invalid { .. })
        ));

        let bad_signer = any(
            raw::MSG_SUBMIT_ROLLUP_DATA_TYPE_URL,
            &raw::MsgSubmitRollupData {
                signer: "cosmos1xyz".into(),
                rollup_id: vec![1; 32],
                data: vec![1],
            },
        );
        assert!(matches!(
            Message::try_from_any(&bad_signer),
            Err(MessageError::Address { .. })
        ));

        let zero = any(
            MSG_SEND_TYPE_URL,
            &bank::MsgSend {
                from_address: alice().to_string(),
                to_address: alice().to_string(),
                amount: vec![base::Coin {
                    denom: "utnd".into(),
                    amount: "0".into(),
                }],
            },
        );
        assert!(matches!(
            Message::try_from_any(&zero),
            Err(MessageError::Invalid { .. })
        ));

        let negative_power = any(
            raw::MSG_UPDATE_VALIDATOR_TYPE_URL,
            &raw::MsgUpdateValidator {
                authority: alice().to_string(),
                pub_key: ed25519_consensus::SigningKey::from([1; 32])
                    .verification_key()
                    .to_bytes()
                    .to_vec(),
                power: -1,
            },
        );
        assert!(matches!(
            Message::try_from_any(&negative_power),
            Err(MessageError::Invalid { reason, .. }) if reason.contains("power")
        ));

        let no_params = any(
            raw::MSG_UPDATE_PARAMS_TYPE_URL,
            &raw::MsgUpdateParams {
                authority: alice().to_string(),
                params: None,
            },
        );
        assert!(matches!(
            Message::try_from_any(&no_params),
            Err(MessageError::Invalid { .. })
        ));
    }

    #[test]
    fn required_fee_is_base_plus_per_byte() {
        let params = Params {
            base_fee: 100,
            fee_per_byte: 3,
            ..Params::default()
        };
        assert_eq!(params.required_fee(0), 100);
        assert_eq!(params.required_fee(256), 100 + 768);
        let max = Params {
            base_fee: u64::MAX,
            fee_per_byte: u64::MAX,
            ..Params::default()
        };
        assert!(max.required_fee(u64::MAX) > u128::from(u64::MAX));
    }

    #[test]
    fn coin_json_accepts_string_and_number_amounts() {
        let c: Coin = serde_json::from_str(
            r#"{"denom":"utnd","amount":"340282366920938463463374607431768211455"}"#,
        )
        .unwrap();
        assert_eq!(c.amount, u128::MAX);
        let c: Coin = serde_json::from_str(r#"{"denom":"utnd","amount":5}"#).unwrap();
        assert_eq!(c.amount, 5);
    }
}
