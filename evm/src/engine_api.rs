//! The Engine API V3 methods, served behind [`crate::jwt::JwtLayer`].

use std::sync::{Arc, Mutex};

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionPayloadV3, ForkchoiceState, PayloadId};
use jsonrpsee::{types::ErrorObjectOwned, RpcModule};

use crate::chain::{Chain, EngineError, OpPayloadAttributes};

/// The methods this engine answers, as listed by `engine_exchangeCapabilities`.
pub const CAPABILITIES: [&str; 4] = [
    "engine_exchangeCapabilities",
    "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV3",
    "engine_newPayloadV3",
];

fn rpc_error(err: &EngineError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(err.code(), err.to_string(), None::<()>)
}

fn lock(chain: &Mutex<Chain>) -> std::sync::MutexGuard<'_, Chain> {
    // A panic while holding the lock would be a bug; the chain data stays consistent because
    // every mutation happens after validation, so keep serving.
    chain
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Builds the Engine API module over `chain`.
pub(crate) fn module(chain: Arc<Mutex<Chain>>) -> RpcModule<Arc<Mutex<Chain>>> {
    let mut module = RpcModule::new(chain);
    module
        .register_method("engine_exchangeCapabilities", |params, _, _| {
            let _offered: Vec<String> = params.one()?;
            Ok::<_, ErrorObjectOwned>(CAPABILITIES.to_vec())
        })
        .expect("method names are unique");
    module
        .register_blocking_method("engine_forkchoiceUpdatedV3", |params, chain, _| {
            let mut seq = params.sequence();
            let state: ForkchoiceState = seq.next()?;
            let attributes: Option<OpPayloadAttributes> = seq.optional_next()?;
            lock(&chain)
                .forkchoice_updated(state, attributes)
                .map_err(|e| rpc_error(&e))
        })
        .expect("method names are unique");
    module
        .register_blocking_method("engine_getPayloadV3", |params, chain, _| {
            let id: PayloadId = params.one()?;
            lock(&chain).get_payload(id).map_err(|e| rpc_error(&e))
        })
        .expect("method names are unique");
    module
        .register_blocking_method("engine_newPayloadV3", |params, chain, _| {
            let mut seq = params.sequence();
            let payload: ExecutionPayloadV3 = seq.next()?;
            let versioned_hashes: Vec<B256> = seq.next()?;
            let parent_beacon_block_root: B256 = seq.next()?;
            Ok::<_, ErrorObjectOwned>(lock(&chain).new_payload(
                payload,
                &versioned_hashes,
                parent_beacon_block_root,
            ))
        })
        .expect("method names are unique");
    module
}
