//! Integration tests of tandem-evm, all through the real HTTP interfaces on 127.0.0.1.

mod binary;
mod engine;
mod eth;
mod fixtures;
mod forward;
mod fuzz;
mod jwt;
mod metrics;
mod support;
