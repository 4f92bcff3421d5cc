//! Integration tests for the `tandem` CLI and the deploy/ files it feeds.

mod deploy;
mod devnet;
mod testnet;
