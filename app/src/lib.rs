//! `tandem-app`: `tandemd`, the ABCI 2.0 application of the Tandem shared sequencer.
//!
//! Data flow: `CometBFT` drives the state machine ([`App`]) over the ABCI socket
//! ([`server`]), which calls the consensus methods one at a time and answers Query/CheckTx
//! concurrently. Inside the state machine:
//! - **CheckTx** decodes a Cosmos SDK `TxRaw`, verifies its signature (caching the result by
//!   tx hash) and executes it against the mempool's pending state (`mempool`);
//! - **PrepareProposal / ProcessProposal / FinalizeBlock** execute a block's txs against a
//!   fork of committed state (`exec`), through the components: `accounts` (bank), `fees`,
//!   `rollups`, `params` and `validators`, each with its keys and typed state access;
//! - the block's rollup data is committed to in `txs[0]` and, at **Commit**, the state writes
//!   and the resulting `SequencerBlock` are persisted atomically in cnidarium (JMT over
//!   `RocksDB`; the app hash is the JMT root) and published to subscribers;
//! - **Query** answers Cosmos SDK and Tandem paths, with ICS23 proofs on request.
//!
//! Committed sequencer blocks are served to rollups over gRPC, [`metrics`] exposes what
//! happens on `/metrics`, and [`config`] holds the command line and the `config.toml` schema
//! of the `tandemd` binary.

pub mod config;
pub mod daemon;
pub mod grpc;
pub mod metrics;
pub mod server;
pub mod service;

mod accounts;
mod app;
mod blocks;
mod cached;
mod error;
mod exec;
mod fees;
pub mod genesis;
mod mempool;
mod params;
mod rollups;
mod state;
mod validators;

pub use app::{App, AppConfig, AppError, TxStatus, PROTOCOL_VERSION};
pub use error::codes;
pub use genesis::{GenesisAccount, GenesisAppState, GenesisCoin, GenesisError};
pub use state::StateError;

/// Answer codes of ABCI Query.
pub use app::query_codes;
