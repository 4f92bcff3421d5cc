//! The `tandem` command line.
//!
//! Each subcommand lives in its own module with its clap arguments and a `run` function;
//! `main.rs` only dispatches.
//!
//! - [`testnet`]: write N `CometBFT` validator homes for a Tandem network.

pub mod testnet;
