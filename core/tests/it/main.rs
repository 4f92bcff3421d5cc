//! Integration tests of `tandem-core`.

mod merkle;
mod tx;
mod tx_fuzz;
mod tx_wire;
mod verify;
mod verify_fuzz;
