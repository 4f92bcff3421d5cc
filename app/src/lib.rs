//! tandem-app
