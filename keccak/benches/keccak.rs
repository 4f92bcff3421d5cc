//! `keccak256_many` against hashing the same messages one by one with alloy's `keccak256`:
//! 10,000 addresses (the trie keys of a block's touched accounts) and 5,000 messages of 300
//! bytes (receipt trie leaves: three blocks each).
#![expect(
    missing_docs,
    reason = "criterion_group! generates undocumented public items"
)]

use alloy_primitives::keccak256;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tandem_keccak::keccak256_many;

fn bench(c: &mut Criterion) {
    for (name, count, len) in [
        ("addresses_10000", 10_000usize, 20usize),
        ("leaves_300b_5000", 5_000, 300),
    ] {
        let messages: Vec<Vec<u8>> = (0..count)
            .map(|i| (0..len).map(|j| (i * 7 + j).to_le_bytes()[0]).collect())
            .collect();
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(count as u64));
        group.bench_function("one_by_one", |b| {
            b.iter(|| messages.iter().map(keccak256).collect::<Vec<_>>());
        });
        group.bench_function("many", |b| b.iter(|| keccak256_many(&messages)));
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
