//! tandem-e2e
