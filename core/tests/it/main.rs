//! Integration tests of `tandem-core`.

mod merkle;
mod verify;
mod verify_fuzz;
