//! Integration tests of `tandem-app` (one binary, one module per area). The state-machine
//! modules drive the `App`'s ABCI methods directly with real signed txs.

mod abci_server;
mod components;
mod crash;
mod determinism;
mod grpc_api;
mod harness;
mod hostile;
mod proposal;
mod query;
mod support;
