//! `tandem-core`: the domain types every Tandem component shares.
//!
//! How data flows through it:
//! - clients build and sign Cosmos SDK txs; `tandemd` decodes and verifies
//!   them (rollup ids, addresses, messages, txs);
//! - `tandemd` groups a block's rollup data per rollup ([`RollupData`]),
//!   commits to it in `txs[0]` ([`BlockCommitments`]) and serves the block
//!   split per rollup ([`SequencerBlock`], [`FilteredSequencerBlock`]) with
//!   RFC 6962 proofs ([`merkle`]);
//! - a conductor checks a filtered block against a CometBFT header it trusts
//!   with [`verify_filtered_block`] and gets its rollup's ordered data.

pub mod block;
pub mod commitments;
pub mod merkle;
pub mod rollup_id;
pub mod verify;

pub use block::{
    BlockError, FilteredSequencerBlock, RollupTransactions, SequencerBlock, SequencerBlockHeader,
};
pub use commitments::{
    commitment_item_bytes, decode_commitment_item, BlockCommitments, CommitmentError, RollupData,
};
pub use merkle::{data_hash, MerkleProof, MerkleTree, ProofError};
pub use rollup_id::{RollupId, RollupIdError};
pub use verify::{verify_filtered_block, VerifiedRollupData, VerifyError};
