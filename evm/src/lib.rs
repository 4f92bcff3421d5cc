//! tandem-evm: a small but real EVM chain driven through the Engine API V3, the reference
//! execution engine of Tandem rollups.
//!
//! Data flow: the conductor calls the Engine API (`engine_api`, behind [`jwt`]) →
//! [`chain::Chain`] keeps the block tree, payloads and pool and applies the spec's rules →
//! `executor` builds or re-executes a block on revm over the parent's `state` (kept in the
//! persistent tries of `hashed_trie`, which keep their node hashes) and computes every root
//! (`trie` for the ordered tries, leaves hashed in batches). Wallets use the public RPC
//! (`eth_api`); `eth_sendRawTransaction` validates and then hands the bytes to the
//! conductor's forwarder ([`forwarder`]) or the local pool.
//! [`genesis`] turns a geth-style genesis.json into block 0; [`node`] wires it all together,
//! with Prometheus [`metrics`] on `/metrics` when asked for.

mod chain;
pub mod cli;
mod engine_api;
mod eth_api;
mod executor;
pub mod forwarder;
pub mod genesis;
mod hashed_trie;
pub mod jwt;
pub mod malloc;
pub mod metrics;
pub mod node;
mod parallel;
mod state;
mod trie;

pub use chain::{Chain, ChainError, EngineError, OpPayloadAttributes};
pub use engine_api::CAPABILITIES;
pub use eth_api::MAX_RAW_TX_BYTES;
pub use executor::BlockError;
pub use node::{start, Config, NodeError, NodeHandle};
pub use state::StateError;
