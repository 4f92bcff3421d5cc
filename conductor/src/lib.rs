//! tandem-conductor
