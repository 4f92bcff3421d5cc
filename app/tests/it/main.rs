//! Integration tests of `tandem-app` (one binary, one module per area).

mod abci_server;
mod grpc_api;
mod support;
