//! Signature verification through `tandem-core`'s verifier against raw secp256k1.
//!
//! `cargo bench -p tandem-core --bench sigverify`
//!
//! - `ceiling/k256_verify`: `VerifyingKey::verify` over the exact sign-doc bytes with an already
//!   parsed key: the cost no verifier can beat.
//! - `tandem/decode_verify`: `ParsedTx::decode` + `verify` from the raw `TxRaw` bytes of a tx
//!   with one 256-byte `MsgSubmitRollupData`.
//! - `breakdown/*`: the decode alone and the key decompression alone, to see where the gap
//!   between the two goes.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use k256::ecdsa::signature::Verifier as _;
use tandem_core::{
    messages::SubmitRollupData, Message, ParsedTx, PublicKey, RollupId, SigningKey, TxBuilder,
};

fn bench(c: &mut Criterion) {
    let key = SigningKey::secp256k1_from_seed(b"bench");
    let tx = TxBuilder::new("bench-chain", 42, 9)
        .message(Message::SubmitRollupData(SubmitRollupData {
            signer: key.address(),
            rollup_id: RollupId::from_name("bench"),
            data: vec![0xab; 256],
        }))
        .fee(10_000)
        .sign(&key)
        .expect("signing a valid tx");

    let parsed = ParsedTx::decode(&tx, 1 << 20).expect("valid tx");
    let sign_doc = parsed.sign_doc_bytes("bench-chain", 42);
    let PublicKey::Secp256k1(compressed) = *parsed.public_key() else {
        unreachable!("the bench key is secp256k1")
    };
    let verifying_key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&compressed).expect("valid key");
    let signature =
        k256::ecdsa::Signature::from_slice(parsed.signature()).expect("valid signature");

    let mut group = c.benchmark_group("sigverify");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ceiling/k256_verify", |b| {
        b.iter(|| {
            verifying_key
                .verify(std::hint::black_box(&sign_doc), &signature)
                .expect("verifies");
        });
    });
    group.bench_function("tandem/decode_verify", |b| {
        b.iter(|| {
            ParsedTx::decode(std::hint::black_box(&tx), 1 << 20)
                .and_then(|p| p.verify("bench-chain", 42))
                .expect("verifies")
        });
    });
    // The same two operations interleaved, one of each per iteration, so that load from other
    // processes hits both alike; criterion times the tandem half, and the ratio of the two
    // totals over every iteration of the run is printed at the end.
    let totals = std::cell::Cell::new((Duration::ZERO, Duration::ZERO));
    group.bench_function("paired/tandem_decode_verify", |b| {
        b.iter_custom(|iters| {
            let (mut ceiling, mut tandem) = (Duration::ZERO, Duration::ZERO);
            for _ in 0..iters {
                let start = Instant::now();
                verifying_key
                    .verify(std::hint::black_box(&sign_doc), &signature)
                    .expect("verifies");
                let middle = Instant::now();
                ParsedTx::decode(std::hint::black_box(&tx), 1 << 20)
                    .and_then(|p| p.verify("bench-chain", 42))
                    .expect("verifies");
                tandem += middle.elapsed();
                ceiling += middle - start;
            }
            let (c, t) = totals.get();
            totals.set((c + ceiling, t + tandem));
            tandem
        });
    });
    let (ceiling, tandem) = totals.get();
    println!(
        "paired throughput ratio tandem/ceiling = {:.3} (ceiling {:?} total, tandem {:?} total)",
        ceiling.as_secs_f64() / tandem.as_secs_f64(),
        ceiling,
        tandem
    );

    // Where the difference goes (not part of the ratio): the stateless decode alone, and
    // parsing (decompressing) the 33-byte key, which the ceiling gets for free.
    group.bench_function("breakdown/decode_only", |b| {
        b.iter(|| ParsedTx::decode(std::hint::black_box(&tx), 1 << 20).expect("decodes"));
    });
    group.bench_function("breakdown/parse_secp256k1_key", |b| {
        b.iter(|| {
            k256::ecdsa::VerifyingKey::from_sec1_bytes(std::hint::black_box(&compressed))
                .expect("valid key")
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
