//! `tandem-core`: the domain types every Tandem component shares.
//!
//! How data flows through it:
//! - clients build and sign Cosmos SDK txs ([`TxBuilder`]); `tandemd` decodes them
//!   ([`ParsedTx::decode`]: size, structure, validated [`Message`]s) and verifies the signature
//!   ([`ParsedTx::verify`]) once it knows the signer's account number;
//! - `tandemd` groups a block's rollup data per rollup ([`RollupData`]),
//!   commits to it in `txs[0]` ([`BlockCommitments`]) and serves the block
//!   split per rollup ([`SequencerBlock`], [`FilteredSequencerBlock`]) with
//!   RFC 6962 proofs ([`merkle`]);
//! - a conductor checks a filtered block against a CometBFT header it trusts
//!   with [`verify_filtered_block`] and gets its rollup's ordered data.

pub mod address;
pub mod block;
pub mod commitments;
pub mod keys;
pub mod merkle;
pub mod messages;
pub mod rollup_id;
mod serde_text;
pub mod tx;
pub mod verify;

pub use address::{Address, AddressError, ADDRESS_PREFIX};
pub use block::{
    BlockError, FilteredSequencerBlock, RollupTransactions, SequencerBlock, SequencerBlockHeader,
};
pub use commitments::{
    commitment_item_bytes, decode_commitment_item, BlockCommitments, CommitmentError, RollupData,
};
pub use keys::{PublicKey, SigningKey};
pub use merkle::{data_hash, MerkleProof, MerkleTree, ProofError};
pub use messages::{
    Coin, Message, MessageError, Params, Send, SubmitRollupData, UpdateParams, UpdateValidator,
    NATIVE_DENOM,
};
pub use rollup_id::{RollupId, RollupIdError};
pub use tx::{ParsedTx, TxBuilder, TxError, VerifiedTx};
pub use verify::{verify_filtered_block, VerifiedRollupData, VerifyError};
