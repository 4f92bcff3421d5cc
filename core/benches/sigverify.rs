//! Signature verification through `tandem-core`'s verifier against raw secp256k1.
//!
//! `cargo bench -p tandem-core --bench sigverify`
//!
//! - `ceiling/k256_verify`: `VerifyingKey::verify` over the exact sign-doc bytes with an already
//!   parsed key: the cost no verifier can beat.
//! - `tandem/decode_verify`: `ParsedTx::decode` + `verify` from the raw `TxRaw` bytes of a tx
//!   with one 256-byte `MsgSubmitRollupData`.
#![expect(
    missing_docs,
    reason = "criterion_group! generates an undocumented function"
)]

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
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
