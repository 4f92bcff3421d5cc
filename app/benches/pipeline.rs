//! The full block pipeline — PrepareProposal (proposer) → ProcessProposal → FinalizeBlock →
//! Commit (validator) — for blocks of 1,000 and 10,000 256-byte txs.
//!
//! - `warm`: the validator admitted every tx through CheckTx first, so its verified-signature
//!   cache is full;
//! - `cold`: the validator never saw the txs and verifies every signature, in parallel;
//! - `raw_verify_all_cores`: the ceiling for `cold`, verifying the same signatures on all
//!   cores with nothing else.
//!
//! The proposer runs on its own app (its Prepare is timed; keeping it in step is not). Peak
//! RSS is printed at the end; run one mode per process to see each peak:
//! `cargo bench -p tandem-app --bench pipeline -- warm` (or `cold`).

#[path = "common/mod.rs"]
mod support;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use k256::ecdsa::{signature::Verifier as _, Signature, VerifyingKey};
use tandem_app::App;
use tandem_core::ParsedTx;

const SIGNERS: usize = 1_000;

struct Node {
    app: App,
    _dir: tempfile::TempDir,
}

struct Net {
    rt: tokio::runtime::Runtime,
    signers: Vec<support::Signer>,
    proposer: Node,
    validator: Node,
    height: u64,
    /// Per timed block: Prepare, Process, Finalize, Commit, by `(size, warm)`.
    phases: BTreeMap<(usize, bool), Vec<[Duration; 4]>>,
}

impl Net {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let signers = support::signers(SIGNERS);
        let genesis = support::genesis(&signers);
        let open = |rt: &tokio::runtime::Runtime| {
            let dir = tempfile::tempdir().expect("tempdir");
            let app = rt.block_on(support::open_app(dir.path(), &genesis));
            Node { app, _dir: dir }
        };
        let proposer = open(&rt);
        let validator = open(&rt);
        Self {
            rt,
            signers,
            proposer,
            validator,
            height: 0,
            phases: BTreeMap::new(),
        }
    }

    /// Builds the next block's txs, admits them on the proposer (and on the validator when
    /// `warm`), then times Prepare + Process + Finalize + Commit.
    fn block(&mut self, size: usize, warm: bool) -> Duration {
        let txs = support::txs(&mut self.signers, size);
        let height = self.height + 1;
        let (proposer, validator) = (&self.proposer.app, &self.validator.app);
        self.rt.block_on(async {
            for tx in &txs {
                assert!(support::check(proposer, tx.clone()).await);
                if warm {
                    assert!(support::check(validator, tx.clone()).await);
                }
            }
        });
        let start = Instant::now();
        let (proposal, validator_hash, phases) = self.rt.block_on(async {
            let proposal = support::prepare(proposer, height, txs).await;
            let prepared = start.elapsed();
            assert_eq!(proposal.len(), size + 1, "the proposer dropped txs");
            let (hash, [process, finalize, commit]) =
                support::process_finalize_commit_timed(validator, height, proposal.clone()).await;
            (proposal, hash, [prepared, process, finalize, commit])
        });
        let elapsed = start.elapsed();
        self.phases.entry((size, warm)).or_default().push(phases);
        let proposer_hash = self
            .rt
            .block_on(support::process_finalize_commit(proposer, height, proposal));
        assert_eq!(proposer_hash, validator_hash);
        self.height = height;
        elapsed
    }
}

fn raw_parts(
    txs: &[Bytes],
    signers: &[support::Signer],
) -> Vec<(VerifyingKey, Vec<u8>, Signature)> {
    txs.iter()
        .map(|tx| {
            let parsed = ParsedTx::decode(tx, 1 << 20).expect("decode");
            let number = signers
                .iter()
                .find(|s| s.key.address() == parsed.signer())
                .expect("known signer")
                .number;
            let doc = parsed.sign_doc_bytes(support::CHAIN_ID, number);
            let key = VerifyingKey::from_sec1_bytes(parsed.public_key().as_bytes()).expect("key");
            (
                key,
                doc,
                Signature::from_slice(parsed.signature()).expect("signature"),
            )
        })
        .collect()
}

fn verify_all_cores(parts: &[(VerifyingKey, Vec<u8>, Signature)]) {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = parts.len().div_ceil(workers).max(1);
    std::thread::scope(|scope| {
        for part in parts.chunks(chunk) {
            scope.spawn(move || {
                for (key, doc, sig) in part {
                    assert!(key.verify(doc, sig).is_ok());
                }
            });
        }
    });
}

fn bench(c: &mut Criterion) {
    let mut net = Net::new();
    let mut group = c.benchmark_group("tandemd/pipeline_256B");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    for size in [1_000usize, 10_000] {
        group.throughput(Throughput::Bytes((size * support::DATA_BYTES) as u64));
        for (mode, warm) in [("warm", true), ("cold", false)] {
            group.bench_function(BenchmarkId::new(mode, size), |b| {
                b.iter_custom(|iters| (0..iters).map(|_| net.block(size, warm)).sum());
            });
        }
        let sample = support::txs(&mut support::signers(SIGNERS), size);
        let parts = raw_parts(&sample, &net.signers);
        group.bench_function(BenchmarkId::new("raw_verify_all_cores", size), |b| {
            b.iter(|| verify_all_cores(&parts));
        });
    }
    group.finish();
    net.print_phases();
}

impl Net {
    /// Prints the median of each phase per case, so a slow pipeline shows where it is slow.
    fn print_phases(&self) {
        for ((size, warm), runs) in &self.phases {
            let median = |i: usize| {
                let mut v: Vec<Duration> = runs.iter().map(|r| r[i]).collect();
                v.sort();
                v[v.len() / 2].as_secs_f64() * 1e3
            };
            eprintln!(
                "{} {size}: median of {} blocks, ms: prepare {:.1}, process {:.1}, finalize {:.1}, commit {:.1}",
                if *warm { "warm" } else { "cold" },
                runs.len(),
                median(0),
                median(1),
                median(2),
                median(3),
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    eprintln!("peak RSS (VmHWM): {}", support::peak_rss());
}
