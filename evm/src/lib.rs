//! tandem-evm
