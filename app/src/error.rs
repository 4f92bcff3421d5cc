//! Why a transaction was refused, and the stable ABCI code of each reason.
//!
//! Codes 1..=31 come from `tandem_core::TxError::code` (decoding and signature checks);
//! the state machine's own reasons are the constants in [`codes`].

use tandem_core::{Address, TxError};

use crate::state::StateError;

/// ABCI codes of the state machine's refusal reasons (stable; part of the API).
pub mod codes {
    /// A state read failed; the node is unhealthy, the tx itself may be fine.
    pub const INTERNAL: u32 = 32;
    /// The tx sequence is below the account's next sequence (replay or already included).
    pub const SEQUENCE_TOO_LOW: u32 = 33;
    /// The tx sequence is above the account's next sequence (a gap).
    pub const SEQUENCE_TOO_HIGH: u32 = 34;
    /// `auth_info.fee` is below `base_fee + fee_per_byte × rollup bytes`.
    pub const INSUFFICIENT_FEE: u32 = 35;
    /// The signer cannot pay the fee or a transfer.
    pub const INSUFFICIENT_BALANCE: u32 = 36;
    /// The signer has no account (it never received coins).
    pub const UNKNOWN_ACCOUNT: u32 = 37;
    /// An authority-only message signed by someone else.
    pub const UNAUTHORIZED: u32 = 38;
    /// `MsgUpdateParams` carries params the chain cannot run with.
    pub const INVALID_PARAMS: u32 = 39;
    /// The tx carries more rollup data than a whole block may.
    pub const ROLLUP_DATA_TOO_LARGE: u32 = 40;
    /// A transfer of a zero amount or of no coins.
    pub const INVALID_AMOUNT: u32 = 41;
    /// A credit would overflow a balance.
    pub const BALANCE_OVERFLOW: u32 = 42;
    /// Removal of a key that is not a validator.
    pub const UNKNOWN_VALIDATOR: u32 = 43;
    /// Removal of the last validator.
    pub const LAST_VALIDATOR: u32 = 44;
    /// A validator power beyond CometBFT's total power cap.
    pub const INVALID_VALIDATOR_POWER: u32 = 45;
    /// The chain has not been initialized (no InitChain yet).
    pub const NOT_INITIALIZED: u32 = 46;
    /// The signature bytes are not a valid secp256k1 signature encoding at all (as opposed to
    /// a well-formed signature that does not verify: `tandem_core::TxError::InvalidSignature`,
    /// which is what a wrong chain id or account number gives).
    pub const MALFORMED_SIGNATURE: u32 = 47;
}

/// Why a transaction cannot execute. Every variant names what was wrong.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExecError {
    #[error("{0}")]
    Tx(#[from] TxError),
    #[error("internal state error: {0}")]
    State(#[from] StateError),
    #[error("sequence too low: account {address} expects {expected}, tx has {got}")]
    SequenceTooLow {
        address: Address,
        expected: u64,
        got: u64,
    },
    #[error("sequence too high: account {address} expects {expected}, tx has {got}")]
    SequenceTooHigh {
        address: Address,
        expected: u64,
        got: u64,
    },
    #[error("insufficient fee: {required}utnd required, {offered}utnd offered")]
    InsufficientFee { required: u128, offered: u128 },
    #[error(
        "insufficient balance: account {address} needs {needed}{denom}, has {available}{denom}"
    )]
    InsufficientBalance {
        address: Address,
        denom: String,
        needed: u128,
        available: u128,
    },
    #[error("unknown account {address}: it must receive coins before it can sign")]
    UnknownAccount { address: Address },
    #[error("unauthorized: {message} must be signed by the authority {authority}, not {signer}")]
    Unauthorized {
        signer: Address,
        authority: Address,
        message: &'static str,
    },
    #[error("invalid params: {reason}")]
    InvalidParams { reason: String },
    #[error("rollup data too large: tx carries {bytes} bytes, a block may carry {max}")]
    RollupDataTooLarge { bytes: u64, max: u64 },
    #[error(
        "invalid amount: a transfer needs at least one coin and no zero amount (denom `{denom}`)"
    )]
    InvalidAmount { denom: String },
    #[error("balance overflow: crediting {address} in {denom}")]
    BalanceOverflow { address: Address, denom: String },
    #[error("unknown validator {pub_key}: cannot remove a key that is not a validator")]
    UnknownValidator { pub_key: String },
    #[error("cannot remove the last validator")]
    LastValidator,
    #[error("invalid validator power {power}: total power may not exceed {max_total}")]
    InvalidValidatorPower { power: u64, max_total: u64 },
    #[error("chain not initialized: InitChain has not run")]
    NotInitialized,
    #[error("malformed signature: the 64 signature bytes are not a valid secp256k1 signature (r and s must be in 1..n)")]
    MalformedSignature,
}

impl ExecError {
    /// The stable ABCI code of this reason.
    pub(crate) fn code(&self) -> u32 {
        match self {
            Self::Tx(e) => e.code(),
            Self::State(_) => codes::INTERNAL,
            Self::SequenceTooLow { .. } => codes::SEQUENCE_TOO_LOW,
            Self::SequenceTooHigh { .. } => codes::SEQUENCE_TOO_HIGH,
            Self::InsufficientFee { .. } => codes::INSUFFICIENT_FEE,
            Self::InsufficientBalance { .. } => codes::INSUFFICIENT_BALANCE,
            Self::UnknownAccount { .. } => codes::UNKNOWN_ACCOUNT,
            Self::Unauthorized { .. } => codes::UNAUTHORIZED,
            Self::InvalidParams { .. } => codes::INVALID_PARAMS,
            Self::RollupDataTooLarge { .. } => codes::ROLLUP_DATA_TOO_LARGE,
            Self::InvalidAmount { .. } => codes::INVALID_AMOUNT,
            Self::BalanceOverflow { .. } => codes::BALANCE_OVERFLOW,
            Self::UnknownValidator { .. } => codes::UNKNOWN_VALIDATOR,
            Self::LastValidator => codes::LAST_VALIDATOR,
            Self::InvalidValidatorPower { .. } => codes::INVALID_VALIDATOR_POWER,
            Self::NotInitialized => codes::NOT_INITIALIZED,
            Self::MalformedSignature => codes::MALFORMED_SIGNATURE,
        }
    }

    /// A short label for metrics (`check_tx` reject reasons).
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Self::Tx(e) => e.reason(),
            Self::State(_) => "internal",
            Self::SequenceTooLow { .. } => "sequence_too_low",
            Self::SequenceTooHigh { .. } => "sequence_too_high",
            Self::InsufficientFee { .. } => "insufficient_fee",
            Self::InsufficientBalance { .. } => "insufficient_balance",
            Self::UnknownAccount { .. } => "unknown_account",
            Self::Unauthorized { .. } => "unauthorized",
            Self::InvalidParams { .. } => "invalid_params",
            Self::RollupDataTooLarge { .. } => "rollup_data_too_large",
            Self::InvalidAmount { .. } => "invalid_amount",
            Self::BalanceOverflow { .. } => "balance_overflow",
            Self::UnknownValidator { .. } => "unknown_validator",
            Self::LastValidator => "last_validator",
            Self::InvalidValidatorPower { .. } => "invalid_validator_power",
            Self::NotInitialized => "not_initialized",
            Self::MalformedSignature => "malformed_signature",
        }
    }
}
