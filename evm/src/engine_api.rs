//! The Engine API V3 methods, served behind [`crate::jwt::JwtLayer`].

use std::sync::{Arc, Mutex};

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionPayloadV3, ForkchoiceState, PayloadId};
use jsonrpsee::{types::ErrorObjectOwned, RpcModule};

use crate::{
    chain::{Chain, EngineError, OpPayloadAttributes},
    metrics::Metrics,
};

/// The methods `engine_exchangeCapabilities` lists: every Engine API method this engine
/// answers except that one, which the spec keeps out of the list (common.md, point 3).
pub const CAPABILITIES: [&str; 3] = [
    "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV3",
    "engine_newPayloadV3",
];

fn rpc_error(err: &EngineError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(err.code(), err.to_string(), None::<()>)
}

/// Fails with -32602 when `params` holds more than the method's parameters: the spec asks
/// that the parameters match the method's exactly (cancun.md, newPayloadV3 point 1), so a
/// later version's call is not half-understood.
fn no_more_params(
    mut params: jsonrpsee::types::params::ParamsSequence<'_>,
    method: &str,
    expected: usize,
) -> Result<(), ErrorObjectOwned> {
    match params.optional_next::<serde_json::Value>()? {
        None => Ok(()),
        Some(_) => Err(rpc_error(&EngineError::InvalidParams(format!(
            "{method} takes {expected} parameters"
        )))),
    }
}

fn lock(chain: &Mutex<Chain>) -> std::sync::MutexGuard<'_, Chain> {
    // A panic while holding the lock would be a bug; the chain data stays consistent because
    // every mutation happens after validation, so keep serving.
    chain
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What the Engine API methods share: the chain and, when enabled, the metrics.
pub(crate) struct EngineContext {
    pub(crate) chain: Arc<Mutex<Chain>>,
    pub(crate) metrics: Option<Arc<Metrics>>,
}

impl EngineContext {
    fn record<T>(&self, method: &'static str, result: &Result<T, ErrorObjectOwned>) {
        if let Some(metrics) = &self.metrics {
            metrics.record_call(method, if result.is_ok() { "ok" } else { "error" });
        }
    }
}

/// Builds the Engine API module over `context`.
pub(crate) fn module(context: EngineContext) -> RpcModule<EngineContext> {
    let mut module = RpcModule::new(context);
    module
        .register_method("engine_exchangeCapabilities", |params, ctx, _| {
            let result = params
                .one::<Vec<String>>()
                .map(|_offered| CAPABILITIES.to_vec());
            ctx.record("engine_exchangeCapabilities", &result);
            result
        })
        .expect("method names are unique");
    module
        .register_blocking_method("engine_forkchoiceUpdatedV3", |params, ctx, _| {
            let result = (|| {
                let mut seq = params.sequence();
                let state: ForkchoiceState = seq.next()?;
                let attributes: Option<OpPayloadAttributes> = seq.optional_next()?;
                no_more_params(seq, "engine_forkchoiceUpdatedV3", 2)?;
                lock(&ctx.chain)
                    .forkchoice_updated(state, attributes)
                    .map_err(|e| rpc_error(&e))
            })();
            ctx.record("engine_forkchoiceUpdatedV3", &result);
            result
        })
        .expect("method names are unique");
    module
        .register_blocking_method("engine_getPayloadV3", |params, ctx, _| {
            let result = params
                .one::<PayloadId>()
                .and_then(|id| lock(&ctx.chain).get_payload(id).map_err(|e| rpc_error(&e)));
            ctx.record("engine_getPayloadV3", &result);
            result
        })
        .expect("method names are unique");
    module
        .register_blocking_method("engine_newPayloadV3", |params, ctx, _| {
            let result = (|| {
                let mut seq = params.sequence();
                let payload: ExecutionPayloadV3 = seq.next()?;
                let versioned_hashes: Vec<B256> = seq.next()?;
                let parent_beacon_block_root: B256 = seq.next()?;
                no_more_params(seq, "engine_newPayloadV3", 3)?;
                Ok::<_, ErrorObjectOwned>(lock(&ctx.chain).new_payload(
                    payload,
                    &versioned_hashes,
                    parent_beacon_block_root,
                ))
            })();
            // The payload status is the result that matters here (VALID, INVALID, SYNCING).
            if let Some(metrics) = &ctx.metrics {
                match &result {
                    Ok(status) => metrics.record_call(
                        "engine_newPayloadV3",
                        &status.status.to_string().to_uppercase(),
                    ),
                    Err(_) => metrics.record_call("engine_newPayloadV3", "error"),
                }
            }
            result
        })
        .expect("method names are unique");
    module
}
