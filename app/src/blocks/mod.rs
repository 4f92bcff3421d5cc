//! Block bookkeeping: the chain id and height in verifiable state, and the sequencer blocks
//! and tx results that the gRPC API serves, in non-verifiable storage written atomically with
//! the block's state.

pub(crate) mod keys;
pub(crate) mod state_ext;

pub(crate) use state_ext::{StateReadExt, StateWriteExt, StoredTxResult};
