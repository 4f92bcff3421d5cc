//! `tandem-solo`: a single-validator consensus host that speaks `CometBFT`'s protocols.
//!
//! It is what a one-validator `CometBFT` network does, so the Tandem stack runs where no
//! `cometbft` binary exists. Data flows like this:
//!
//! ```text
//! clients ──JSON-RPC/WebSocket──► rpc ──CheckTx──► mempool
//!                                                    │ reap
//! node (consensus task) ── PrepareProposal/ProcessProposal/FinalizeBlock/Commit ──► app (abci)
//!   │  chain: build header, sign precommit, apply validator/param updates (pure)
//!   └► store: blocks, commits, results, state (on disk) ──► rpc answers + events
//! ```
//!
//! - [`config`] reads a standard `CometBFT` home (`config.toml`, genesis, validator key).
//! - [`abci`] is the ABCI socket client with `CometBFT`'s four connections.
//! - [`chain`] builds headers, block ids and signed commits as `CometBFT` does.
//! - [`store`] keeps blocks and states so a restart resumes.
//! - [`mempool`] is the bounded mempool.
//! - `node` runs the handshake and the block loop; `rpc` serves `CometBFT`'s JSON-RPC.

pub mod abci;
pub mod chain;
pub mod config;
pub mod home;
pub mod mempool;
mod node;
mod rpc;
pub mod store;

pub use config::NodeConfig;
pub use node::{
    init_chain_request, start, BlockEvent, NodeError, NodeHandle, ABCI_VERSION, COMETBFT_VERSION,
};
