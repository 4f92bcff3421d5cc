//! Merkle root plus every inclusion proof for 10,000 leaves of 256 bytes,
//! against the ceiling of raw SHA-256 over the same bytes, in the same run.
//!
//! `cargo bench -p tandem-core --bench merkle -- --warm-up-time 1 --measurement-time 3`

#![expect(missing_docs, reason = "criterion macros generate undocumented items")]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sha2::{Digest as _, Sha256};
use tandem_core::merkle::MerkleTree;

const LEAVES: usize = 10_000;
const LEAF_LEN: usize = 256;

fn leaves() -> Vec<Vec<u8>> {
    (0..LEAVES)
        .map(|i| {
            let seed = Sha256::digest(i.to_le_bytes());
            seed.iter().copied().cycle().take(LEAF_LEN).collect()
        })
        .collect()
}

fn merkle(c: &mut Criterion) {
    let leaves = leaves();
    let mut group = c.benchmark_group("merkle_10k_x_256B");
    group.sample_size(20);
    group.throughput(Throughput::Bytes((LEAVES * LEAF_LEN) as u64));

    group.bench_function("root_and_all_proofs", |b| {
        b.iter(|| {
            let tree = MerkleTree::from_leaves(black_box(&leaves));
            black_box(tree.root());
            for index in 0..tree.len() {
                black_box(tree.proof(index).expect("index in range"));
            }
        });
    });

    // The same without the proofs, to show what the proofs cost.
    group.bench_function("root_only", |b| {
        b.iter(|| black_box(MerkleTree::from_leaves(black_box(&leaves)).root()));
    });

    // Ceiling 1: one SHA-256 per leaf, as many hash calls as the leaf level.
    group.bench_function("ceiling_sha256_per_leaf", |b| {
        b.iter(|| {
            for leaf in black_box(&leaves) {
                black_box(Sha256::digest(leaf));
            }
        });
    });

    // Ceiling 2: one SHA-256 stream over all 2.56 MB (the strictest).
    group.bench_function("ceiling_sha256_stream", |b| {
        b.iter(|| {
            let mut hasher = Sha256::new();
            for leaf in black_box(&leaves) {
                hasher.update(leaf);
            }
            black_box(hasher.finalize())
        });
    });
    group.finish();
}

criterion_group!(benches, merkle);
criterion_main!(benches);
