//! tandem-solo
