//! Storage plumbing shared by every component: the error type of state access and the
//! fixed-width value encodings.
//!
//! Components never talk to RocksDB directly. They read and write through their own
//! `StateReadExt`/`StateWriteExt` traits, which are blanket-implemented for every cnidarium
//! [`StateRead`](cnidarium::StateRead)/[`StateWrite`](cnidarium::StateWrite), so the same code
//! runs against the committed snapshot, a block's speculative fork or the mempool's pending
//! state. Values are fixed-width big-endian integers or protobuf bytes, never floats or
//! serde formats whose encoding could drift.

use cnidarium::StateRead;

/// A failure to read or decode stored state. Any of these means the store is broken or
/// was written by an incompatible version; it is never caused by user input.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The storage backend failed.
    #[error("storage read of `{key}` failed: {message}")]
    Storage {
        /// The key being read.
        key: String,
        /// The backend's error, rendered.
        message: String,
    },
    /// A stored value has the wrong shape.
    #[error("stored value at `{key}` is corrupt: {reason}")]
    Corrupt {
        /// The key that was read.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
}

/// Reads a verifiable key, mapping the backend error to [`StateError`].
pub(crate) async fn get_raw<S: StateRead + ?Sized>(
    state: &S,
    key: &str,
) -> Result<Option<Vec<u8>>, StateError> {
    state.get_raw(key).await.map_err(|e| StateError::Storage {
        key: key.to_string(),
        message: format!("{e:#}"),
    })
}

/// Reads a non-verifiable key, mapping the backend error to [`StateError`].
pub(crate) async fn nonverifiable_get_raw<S: StateRead + ?Sized>(
    state: &S,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StateError> {
    state
        .nonverifiable_get_raw(key)
        .await
        .map_err(|e| StateError::Storage {
            key: String::from_utf8_lossy(key).into_owned(),
            message: format!("{e:#}"),
        })
}

/// Decodes a big-endian `u64` stored at `key`.
pub(crate) fn decode_u64(key: &str, bytes: &[u8]) -> Result<u64, StateError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StateError::Corrupt {
        key: key.to_string(),
        reason: format!("expected 8 bytes, found {}", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

/// Decodes a big-endian `u128` stored at `key`.
pub(crate) fn decode_u128(key: &str, bytes: &[u8]) -> Result<u128, StateError> {
    let arr: [u8; 16] = bytes.try_into().map_err(|_| StateError::Corrupt {
        key: key.to_string(),
        reason: format!("expected 16 bytes, found {}", bytes.len()),
    })?;
    Ok(u128::from_be_bytes(arr))
}

/// Reads an optional big-endian `u64`.
pub(crate) async fn get_u64<S: StateRead + ?Sized>(
    state: &S,
    key: &str,
) -> Result<Option<u64>, StateError> {
    match get_raw(state, key).await? {
        Some(bytes) => decode_u64(key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Reads an optional big-endian `u128`.
pub(crate) async fn get_u128<S: StateRead + ?Sized>(
    state: &S,
    key: &str,
) -> Result<Option<u128>, StateError> {
    match get_raw(state, key).await? {
        Some(bytes) => decode_u128(key, &bytes).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_decoders_reject_wrong_lengths() {
        assert_eq!(decode_u64("k", &7u64.to_be_bytes()).unwrap(), 7);
        assert!(matches!(
            decode_u64("k", &[1, 2, 3]),
            Err(StateError::Corrupt { .. })
        ));
        assert_eq!(decode_u128("k", &9u128.to_be_bytes()).unwrap(), 9);
        assert!(decode_u128("k", &[0; 8]).is_err());
    }
}
