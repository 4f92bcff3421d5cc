//! Prometheus metrics of `tandemd`, in one typed struct, and the `/metrics` HTTP endpoint.
//!
//! The state machine records into [`Metrics`] (it is cheap to share behind an `Arc`); the
//! server encodes the registry in the Prometheus text format on every scrape. Series (all
//! prefixed `tandem_`):
//!
//! | series | type | labels |
//! |---|---|---|
//! | `tandem_height` | gauge | — |
//! | `tandem_block_txs` | gauge (txs in the last committed block) | — |
//! | `tandem_committed_txs_total` | counter (txs in committed blocks) | — |
//! | `tandem_block_rollup_bytes_total` | counter (rollup data bytes) | `rollup_id` (hex; the first [`MAX_ROLLUP_SERIES`] ids seen, then `other`) |
//! | `tandem_check_tx_total` | counter | `result` (`accepted`/`rejected`), `reason` |
//! | `tandem_block_phase_seconds` | histogram | `phase` |
//! | `tandem_block_phase_in_progress` | gauge (1 while the phase runs) | `phase` |
//!
//! Floats appear only here, never in state.

use std::{fmt::Display, net::SocketAddr};

use axum::{http::header, response::IntoResponse, routing::get, Router};
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
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::service::Service;

/// Content type of the Prometheus text exposition format served on `/metrics`.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RollupLabels {
    rollup_id: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckTxLabels {
    result: &'static str,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

type PhaseHistograms = Family<PhaseLabels, Histogram, fn() -> Histogram>;

fn phase_histogram() -> Histogram {
    // 100 µs .. ~6.5 s, doubling.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 17))
}

/// Most rollups that get their own `tandem_block_rollup_bytes_total` series. Anyone who pays
/// the fee may name a new rollup id, and every series stays in memory and in every scrape:
/// the ids after these are counted together under `rollup_id="other"`.
pub const MAX_ROLLUP_SERIES: usize = 1_000;

/// The `rollup_id` label value under which rollups past [`MAX_ROLLUP_SERIES`] are counted.
pub const OTHER_ROLLUPS: &str = "other";

/// All metrics of `tandemd`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    height: Gauge,
    block_txs: Gauge,
    block_txs_total: Counter,
    rollup_bytes: Family<RollupLabels, Counter>,
    /// How many rollups have a series of their own in `rollup_bytes`.
    rollup_series: std::sync::Mutex<usize>,
    check_tx: Family<CheckTxLabels, Counter>,
    phase_seconds: PhaseHistograms,
    phase_in_progress: Family<PhaseLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set of metrics with its own registry.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tandem");
        let height = Gauge::default();
        registry.register(
            "height",
            "Height of the last committed block",
            height.clone(),
        );
        let block_txs = Gauge::default();
        registry.register(
            "block_txs",
            "Number of transactions in the last committed block (commitment item included)",
            block_txs.clone(),
        );
        let block_txs_total = Counter::default();
        registry.register(
            "committed_txs",
            "Transactions in committed blocks (commitment items included)",
            block_txs_total.clone(),
        );
        let rollup_bytes = Family::<RollupLabels, Counter>::default();
        registry.register(
            "block_rollup_bytes",
            "Rollup data bytes in committed blocks, per rollup",
            rollup_bytes.clone(),
        );
        let check_tx = Family::<CheckTxLabels, Counter>::default();
        registry.register(
            "check_tx",
            "CheckTx answers by result and rejection reason",
            check_tx.clone(),
        );
        let phase_seconds: PhaseHistograms = Family::new_with_constructor(phase_histogram);
        registry.register(
            "block_phase_seconds",
            "Latency of the block phases (prepare_proposal, process_proposal, finalize_block, commit)",
            phase_seconds.clone(),
        );
        let phase_in_progress = Family::<PhaseLabels, Gauge>::default();
        registry.register(
            "block_phase_in_progress",
            "1 while a block phase runs (a FinalizeBlock that never ends shows here)",
            phase_in_progress.clone(),
        );
        Self {
            registry,
            height,
            block_txs,
            block_txs_total,
            rollup_bytes,
            rollup_series: std::sync::Mutex::new(0),
            check_tx,
            phase_seconds,
            phase_in_progress,
        }
    }

    /// Records a `CheckTx` answer. `reason` is a short stable name (`ok` when accepted).
    pub fn record_check_tx(&self, accepted: bool, reason: &str) {
        let labels = CheckTxLabels {
            result: if accepted { "accepted" } else { "rejected" },
            reason: reason.to_owned(),
        };
        self.check_tx.get_or_create(&labels).inc();
    }

    /// Records a committed block: its height, its number of txs and its rollup data bytes
    /// per rollup.
    pub fn record_block<R: Display>(&self, height: u64, txs: u64, bytes_per_rollup: &[(R, u64)]) {
        self.height.set(saturating_i64(height));
        self.block_txs.set(saturating_i64(txs));
        self.block_txs_total.inc_by(txs);
        let mut series = self
            .rollup_series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (rollup_id, bytes) in bytes_per_rollup {
            let mut labels = RollupLabels {
                rollup_id: rollup_id.to_string(),
            };
            if self.rollup_bytes.get(&labels).is_none() {
                if *series < MAX_ROLLUP_SERIES {
                    *series += 1;
                } else {
                    OTHER_ROLLUPS.clone_into(&mut labels.rollup_id);
                }
            }
            self.rollup_bytes.get_or_create(&labels).inc_by(*bytes);
        }
    }

    /// Sets the height gauge (at startup, from the last committed height).
    pub fn set_height(&self, height: u64) {
        self.height.set(saturating_i64(height));
    }

    /// Observes the duration of a block phase in seconds.
    pub fn observe_phase(&self, phase: &str, seconds: f64) {
        let labels = PhaseLabels {
            phase: phase.to_owned(),
        };
        self.phase_seconds.get_or_create(&labels).observe(seconds);
    }

    /// Marks a block phase as running (`started`) or done.
    pub fn set_phase_in_progress(&self, phase: &str, started: bool) {
        let labels = PhaseLabels {
            phase: phase.to_owned(),
        };
        let gauge = self.phase_in_progress.get_or_create(&labels);
        if started {
            gauge.inc();
        } else {
            gauge.dec();
        }
    }

    /// How many calls of a block phase are running now (0 or 1: consensus calls are serialized).
    pub fn phase_in_progress(&self, phase: &str) -> i64 {
        let labels = PhaseLabels {
            phase: phase.to_owned(),
        };
        self.phase_in_progress.get_or_create(&labels).get()
    }

    /// The registry in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The running metrics server.
pub type MetricsServer = Service<SocketAddr, std::io::Error>;

impl Service<SocketAddr, std::io::Error> {
    /// Binds `listen` and serves `GET /metrics` until [`Service::shutdown`] or until
    /// `cancel` (a parent token) is cancelled.
    pub async fn spawn(
        listen: SocketAddr,
        metrics: std::sync::Arc<Metrics>,
        cancel: &CancellationToken,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(listen).await?;
        let local_addr = listener.local_addr()?;
        let cancel = cancel.child_token();
        let router =
            Router::new().route(
                "/metrics",
                get(move || {
                    let metrics = metrics.clone();
                    async move {
                        ([(header::CONTENT_TYPE, CONTENT_TYPE)], metrics.encode()).into_response()
                    }
                }),
            );
        let shutdown = cancel.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown.cancelled_owned())
                .await
        });
        Ok(Self::new("metrics", local_addr, cancel, task))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_named_series() {
        let metrics = Metrics::new();
        metrics.record_check_tx(true, "ok");
        metrics.record_check_tx(false, "insufficient_fee");
        metrics.record_check_tx(false, "insufficient_fee");
        metrics.record_block(7, 3, &[("aa", 10_u64), ("bb", 5)]);
        metrics.record_block(8, 2, &[("aa", 1_u64)]);
        metrics.observe_phase("finalize_block", 0.002);
        let text = metrics.encode();
        for line in [
            "tandem_height 8",
            "tandem_block_txs 2",
            "tandem_committed_txs_total 5",
            "tandem_block_rollup_bytes_total{rollup_id=\"aa\"} 11",
            "tandem_block_rollup_bytes_total{rollup_id=\"bb\"} 5",
            "tandem_check_tx_total{result=\"accepted\",reason=\"ok\"} 1",
            "tandem_check_tx_total{result=\"rejected\",reason=\"insufficient_fee\"} 2",
            "tandem_block_phase_seconds_count{phase=\"finalize_block\"} 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
    }

    #[test]
    fn rollups_past_the_series_cap_are_counted_as_other() {
        let metrics = Metrics::new();
        let first: Vec<(String, u64)> = (0..MAX_ROLLUP_SERIES)
            .map(|i| (format!("{i:064x}"), 1))
            .collect();
        metrics.record_block(1, 1, &first);
        let known = format!("{:064x}", 7);
        let late = [
            (known.clone(), 2_u64),
            ("f".repeat(64), 3),
            ("e".repeat(64), 4),
        ];
        metrics.record_block(2, 1, &late);
        let text = metrics.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("tandem_block_rollup_bytes_total{"))
            .count();
        assert_eq!(series, MAX_ROLLUP_SERIES + 1);
        for line in [
            format!("tandem_block_rollup_bytes_total{{rollup_id=\"{known}\"}} 3"),
            "tandem_block_rollup_bytes_total{rollup_id=\"other\"} 7".to_owned(),
        ] {
            assert!(text.contains(&line), "missing `{line}`");
        }
        assert!(!text.contains(&"f".repeat(64)));
    }
}
