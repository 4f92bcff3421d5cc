//! Typed state access for chain parameters and the authority.

use async_trait::async_trait;
use cnidarium::{StateRead, StateWrite};
use prost::Message as _;
use tandem_core::{Address, Params};

use super::keys;
use crate::state::{get_raw, StateError};

/// Reads of params state.
#[async_trait]
pub(crate) trait StateReadExt: StateRead {
    /// The current params; an error when genesis never stored them.
    async fn params(&self) -> Result<Params, StateError> {
        let bytes = get_raw(self, keys::CURRENT)
            .await?
            .ok_or_else(|| missing(keys::CURRENT))?;
        let raw = tandem_proto::sequencer::v1::Params::decode(bytes.as_slice())
            .map_err(|e| corrupt(keys::CURRENT, &e))?;
        Params::try_from_raw(&raw).map_err(|e| corrupt(keys::CURRENT, &e))
    }

    /// The authority address; an error when genesis never stored it.
    async fn authority(&self) -> Result<Address, StateError> {
        let bytes = get_raw(self, keys::AUTHORITY)
            .await?
            .ok_or_else(|| missing(keys::AUTHORITY))?;
        let text = String::from_utf8(bytes).map_err(|e| corrupt(keys::AUTHORITY, &e))?;
        text.parse().map_err(|e| corrupt(keys::AUTHORITY, &e))
    }
}

impl<T: StateRead + ?Sized> StateReadExt for T {}

/// Writes of params state.
pub(crate) trait StateWriteExt: StateWrite {
    /// Replaces the params.
    fn put_params(&mut self, params: &Params) {
        self.put_raw(keys::CURRENT.to_string(), params.to_raw().encode_to_vec());
    }

    /// Stores the authority (genesis only).
    fn put_authority(&mut self, authority: &Address) {
        self.put_raw(
            keys::AUTHORITY.to_string(),
            authority.to_string().into_bytes(),
        );
    }
}

impl<T: StateWrite + ?Sized> StateWriteExt for T {}

fn missing(key: &str) -> StateError {
    StateError::Corrupt {
        key: key.to_string(),
        reason: "missing; was InitChain run?".to_string(),
    }
}

fn corrupt(key: &str, error: &dyn std::fmt::Display) -> StateError {
    StateError::Corrupt {
        key: key.to_string(),
        reason: error.to_string(),
    }
}
