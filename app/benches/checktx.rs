//! CheckTx throughput on one core for a 256-byte single-message tx, against the ceiling of
//! raw secp256k1 verification of the same txs' sign docs, measured in the same run.
//!
//! `cargo bench -p tandem-app --bench checktx -- --warm-up-time 1 --measurement-time 3`

#[path = "common/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use k256::ecdsa::{signature::Verifier as _, Signature, VerifyingKey};
use tandem_core::ParsedTx;

const BATCH: usize = 500;
const SIGNERS: usize = 100;

fn bench(c: &mut Criterion) {
    // One core: a current-thread runtime, and CheckTx calls made one after another.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut signers = support::signers(SIGNERS);
    let genesis = support::genesis(&signers);
    let app = rt.block_on(support::open_app(dir.path(), &genesis));

    // The raw parts of a batch of such txs, for the ceiling.
    let sample = support::txs(&mut support::signers(SIGNERS), BATCH);
    let raw: Vec<(VerifyingKey, Vec<u8>, Signature)> = sample
        .iter()
        .map(|tx| {
            let parsed = ParsedTx::decode(tx, 1 << 20).expect("decode");
            let number = signers
                .iter()
                .find(|s| s.key.address() == parsed.signer())
                .expect("known signer")
                .number;
            let doc = parsed.sign_doc_bytes(support::CHAIN_ID, number);
            let key = VerifyingKey::from_sec1_bytes(parsed.public_key().as_bytes()).expect("key");
            let sig = Signature::from_slice(parsed.signature()).expect("signature");
            (key, doc, sig)
        })
        .collect();

    let mut group = c.benchmark_group("tandemd/check_tx_256B");
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("raw_secp256k1_verify", |b| {
        b.iter(|| {
            for (key, doc, sig) in &raw {
                assert!(key.verify(doc, sig).is_ok());
            }
        });
    });
    group.bench_function("check_tx", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let batch = support::txs(&mut signers, BATCH);
                let start = Instant::now();
                rt.block_on(async {
                    for tx in batch {
                        assert!(support::check(&app, tx).await, "CheckTx refused a valid tx");
                    }
                });
                total += start.elapsed();
            }
            total
        });
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
    eprintln!("peak RSS (VmHWM): {}", support::peak_rss());
}
