//! Integration tests for `tandem-solo`: a real node on loopback driving a test ABCI app,
//! checked through tendermint-rpc's clients and tendermint-light-client-verifier.

mod kill;
mod kill_tandemd;
mod light_client;
mod mempool;
mod restart;
mod rpc;
mod rpc_fuzz;
mod support;
mod tandemd;
mod testapp;
