//! tandem-cli
