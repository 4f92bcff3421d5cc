//! Integration tests of `tandem-app` (one binary, one module per area). The state-machine
//! modules drive the `App`'s ABCI methods directly with real signed txs.

mod abci_peer;
mod abci_server;
mod caching;
mod components;
mod crash;
mod determinism;
mod fuzz;
mod grpc_api;
mod grpc_node;
mod harness;
mod hostile;
mod node;
mod operation;
mod process_crash;
mod proposal;
mod query;
mod support;
