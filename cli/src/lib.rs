//! The `tandem` command line.
//!
//! Each subcommand lives in its own module with its clap arguments and a `run` function;
//! `main.rs` only dispatches.
//!
//! - [`testnet`]: write N `CometBFT` validator homes for a Tandem network.
//! - [`devnet`]: run the stack on this machine, in this process, on loopback.

pub mod devnet;
pub mod testnet;
