//! `tandem-app`: `tandemd`, the ABCI 2.0 application of the Tandem shared sequencer.
//!
//! Data flow: `CometBFT` drives the state machine over the ABCI socket ([`server`]), which
//! calls the application's consensus methods one at a time and answers Query/CheckTx
//! concurrently. Committed sequencer blocks are served to rollups over gRPC, and
//! [`metrics`] exposes what happens on `/metrics`. [`config`] holds the command line and
//! the `config.toml` schema of the `tandemd` binary.

pub mod config;
pub mod grpc;
pub mod metrics;
pub mod server;
