//! Prometheus metrics of `tandem-evm` and the `/metrics` HTTP endpoint.
//!
//! Series (all prefixed `tandem_evm_`):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `tandem_evm_head_number` | gauge (canonical head block number) | — |
//! | `tandem_evm_block_build_seconds` | histogram (payload building) | — |
//! | `tandem_evm_block_validate_seconds` | histogram (`engine_newPayloadV3` re-execution) | — |
//! | `tandem_evm_block_txs` | gauge (txs of the last built or validated block) | — |
//! | `tandem_evm_block_gas_used` | gauge (gas of the last built or validated block) | — |
//! | `tandem_evm_txs_total` | counter (txs of built and validated blocks) | — |
//! | `tandem_evm_payloads_reused_total` | counter (`engine_newPayloadV3` calls answered with a block this node built, without re-execution) | — |
//! | `tandem_evm_pool_txs` | gauge (txs in the local pool) | — |
//! | `tandem_evm_engine_calls_total` | counter | `method`, `result` |
//!
//! Floats appear only here, never in chain state.

use axum::{http::header, routing::get, Router};
use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

/// Content type of the text exposition format served on `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    method: &'static str,
    result: String,
}

/// All metrics of `tandem-evm`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    head_number: Gauge,
    build_seconds: Histogram,
    validate_seconds: Histogram,
    block_txs: Gauge,
    block_gas_used: Gauge,
    txs_total: Counter,
    payloads_reused: Counter,
    pool_txs: Gauge,
    engine_calls: Family<CallLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn latency() -> Histogram {
    // 100 µs .. ~6.5 s, doubling.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

fn as_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    /// A fresh set of metrics with its own registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tandem_evm");
        let head_number = Gauge::default();
        registry.register(
            "head_number",
            "Number of the canonical head block",
            head_number.clone(),
        );
        let build_seconds = latency();
        registry.register(
            "block_build_seconds",
            "Time to build a payload (execution, roots and hashing)",
            build_seconds.clone(),
        );
        let validate_seconds = latency();
        registry.register(
            "block_validate_seconds",
            "Time to validate a payload given to engine_newPayloadV3",
            validate_seconds.clone(),
        );
        let block_txs = Gauge::default();
        registry.register(
            "block_txs",
            "Transactions in the last built or validated block",
            block_txs.clone(),
        );
        let block_gas_used = Gauge::default();
        registry.register(
            "block_gas_used",
            "Gas used by the last built or validated block",
            block_gas_used.clone(),
        );
        let txs_total = Counter::default();
        registry.register(
            "txs",
            "Transactions in built and validated blocks",
            txs_total.clone(),
        );
        let payloads_reused = Counter::default();
        registry.register(
            "payloads_reused",
            "engine_newPayloadV3 calls answered with a block this node built, without re-execution",
            payloads_reused.clone(),
        );
        let pool_txs = Gauge::default();
        registry.register(
            "pool_txs",
            "Transactions waiting in the local pool",
            pool_txs.clone(),
        );
        let engine_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "engine_calls",
            "Engine API calls by method and result",
            engine_calls.clone(),
        );
        Self {
            registry,
            head_number,
            build_seconds,
            validate_seconds,
            block_txs,
            block_gas_used,
            txs_total,
            payloads_reused,
            pool_txs,
            engine_calls,
        }
    }

    /// `block` was built (`built`) or validated, in the time since `start`.
    pub(crate) fn record_block(
        &self,
        built: bool,
        start: std::time::Instant,
        block: &crate::executor::ExecutedBlock,
    ) {
        let seconds = start.elapsed().as_secs_f64();
        if built {
            self.build_seconds.observe(seconds);
        } else {
            self.validate_seconds.observe(seconds);
        }
        let txs = u64::try_from(block.block.body.transactions.len()).unwrap_or(u64::MAX);
        self.block_txs.set(as_i64(txs));
        self.block_gas_used.set(as_i64(block.header().gas_used));
        self.txs_total.inc_by(txs);
    }

    /// A new payload was the block this node built: accepted without re-execution.
    pub(crate) fn record_reused_payload(&self) {
        self.payloads_reused.inc();
    }

    /// The canonical head moved to `number`.
    pub(crate) fn set_head(&self, number: u64) {
        self.head_number.set(as_i64(number));
    }

    /// The local pool now holds `txs` transactions.
    pub(crate) fn set_pool(&self, txs: usize) {
        self.pool_txs
            .set(as_i64(u64::try_from(txs).unwrap_or(u64::MAX)));
    }

    /// An Engine API call of `method` ended with `result` (`ok`, `error`, or a payload
    /// status such as `VALID`).
    pub(crate) fn record_call(&self, method: &'static str, result: &str) {
        self.engine_calls
            .get_or_create(&CallLabels {
                method,
                result: result.to_owned(),
            })
            .inc();
    }

    /// The registry in the `OpenMetrics` text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: std::sync::Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()) }
        }),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
