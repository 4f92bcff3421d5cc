//! Transactions through the builder, signer and verifier; each rejection by its variant.

use cosmrs::proto::cosmos::tx::v1beta1::{AuthInfo, TxBody, TxRaw};
use prost::Message as _;
use tandem_core::{
    messages::{Send, SubmitRollupData, UpdateParams, UpdateValidator},
    Coin, Message, Params, ParsedTx, RollupId, SigningKey, TxBuilder, TxError,
};

const CHAIN: &str = "tandem-test";
const MAX: usize = 256 * 1024;

fn submit(key: &SigningKey, rollup: &str, data: Vec<u8>) -> Message {
    Message::SubmitRollupData(SubmitRollupData {
        signer: key.address(),
        rollup_id: RollupId::from_name(rollup),
        data,
    })
}

fn signed(key: &SigningKey, messages: Vec<Message>) -> Vec<u8> {
    messages
        .into_iter()
        .fold(
            TxBuilder::new(CHAIN, 7, 3).fee(5_000).memo("hi"),
            TxBuilder::message,
        )
        .sign(key)
        .unwrap()
}

fn keys() -> [SigningKey; 2] {
    [
        SigningKey::secp256k1_from_seed(b"alice"),
        SigningKey::ed25519_from_seed(b"alice"),
    ]
}

#[test]
fn every_message_round_trips_for_both_key_types() {
    for key in keys() {
        let messages = vec![
            Message::Send(Send {
                from: key.address(),
                to: SigningKey::secp256k1_from_seed(b"bob").address(),
                amount: vec![Coin::native(10)],
            }),
            submit(&key, "alpha", vec![1; 256]),
            Message::UpdateParams(UpdateParams {
                authority: key.address(),
                params: Params::default(),
            }),
            Message::UpdateValidator(UpdateValidator {
                authority: key.address(),
                pub_key: ed25519_consensus::SigningKey::from([4; 32])
                    .verification_key()
                    .to_bytes(),
                power: 10,
            }),
        ];
        let bytes = signed(&key, messages.clone());
        let tx = ParsedTx::decode(&bytes, MAX)
            .unwrap()
            .verify(CHAIN, 7)
            .unwrap();
        assert_eq!(tx.messages(), messages.as_slice());
        assert_eq!(tx.signer(), key.address());
        assert_eq!(tx.sequence(), 3);
        assert_eq!(tx.fee(), 5_000);
        assert_eq!(tx.rollup_data_bytes(), 256);
        assert_eq!(tx.len(), bytes.len());
        assert_eq!(tx.public_key(), &key.public_key());
        assert_eq!(tx.hash(), tandem_core::tx::tx_hash(&bytes));
    }
}

#[test]
fn atomic_bundle_keeps_message_order() {
    let key = SigningKey::secp256k1_from_seed(b"bundler");
    let bundle = vec![
        submit(&key, "a", vec![1]),
        submit(&key, "b", vec![2, 2]),
        submit(&key, "c", vec![3]),
    ];
    let tx = ParsedTx::decode(&signed(&key, bundle.clone()), MAX)
        .unwrap()
        .verify(CHAIN, 7)
        .unwrap();
    assert_eq!(tx.messages(), bundle.as_slice());
    assert_eq!(tx.rollup_data_bytes(), 4);
}

#[test]
fn cosmrs_parses_what_we_build() {
    // An independent decoder (cosmrs' Tx) reads our wire format.
    let key = SigningKey::secp256k1_from_seed(b"alice");
    let bytes = signed(&key, vec![submit(&key, "alpha", vec![9; 4])]);
    let tx = cosmrs::Tx::from_bytes(&bytes).unwrap();
    assert_eq!(tx.auth_info.signer_infos.len(), 1);
    assert_eq!(tx.auth_info.signer_infos[0].sequence, 3);
    assert_eq!(
        tx.body.messages[0].type_url,
        "/tandem.sequencer.v1.MsgSubmitRollupData"
    );
}

#[test]
fn wrong_chain_id_or_account_number_fails_signature() {
    for key in keys() {
        let bytes = signed(&key, vec![submit(&key, "alpha", vec![1])]);
        let parsed = ParsedTx::decode(&bytes, MAX).unwrap();
        assert_eq!(
            parsed.clone().verify("other-chain", 7).unwrap_err(),
            TxError::InvalidSignature
        );
        assert_eq!(
            parsed.verify(CHAIN, 8).unwrap_err(),
            TxError::InvalidSignature
        );
    }
}

fn tamper(bytes: &[u8], f: impl FnOnce(&mut TxRaw)) -> Vec<u8> {
    let mut raw = TxRaw::decode(bytes).unwrap();
    f(&mut raw);
    raw.encode_to_vec()
}

#[test]
fn tampered_body_fails_signature() {
    for key in keys() {
        let bytes = signed(&key, vec![submit(&key, "alpha", vec![1, 2, 3])]);
        let tampered = tamper(&bytes, |raw| {
            let mut body = TxBody::decode(raw.body_bytes.as_slice()).unwrap();
            body.memo = "tampered".into();
            raw.body_bytes = body.encode_to_vec();
        });
        let parsed = ParsedTx::decode(&tampered, MAX).unwrap();
        assert_eq!(
            parsed.verify(CHAIN, 7).unwrap_err(),
            TxError::InvalidSignature
        );
    }
}

#[test]
fn truncated_body_is_malformed() {
    let key = SigningKey::secp256k1_from_seed(b"alice");
    let bytes = signed(&key, vec![submit(&key, "alpha", vec![1; 64])]);
    let truncated = tamper(&bytes, |raw| {
        let keep = raw.body_bytes.len() - 10;
        raw.body_bytes.truncate(keep);
    });
    assert!(matches!(
        ParsedTx::decode(&truncated, MAX),
        Err(TxError::Malformed(_))
    ));
    // Truncating the outer bytes is malformed too.
    assert!(matches!(
        ParsedTx::decode(&bytes[..bytes.len() - 3], MAX),
        Err(TxError::Malformed(_))
    ));
}

#[test]
fn oversized_tx_is_rejected_before_decoding() {
    let key = SigningKey::secp256k1_from_seed(b"alice");
    let bytes = signed(&key, vec![submit(&key, "alpha", vec![1; 1000])]);
    assert_eq!(
        ParsedTx::decode(&bytes, 500).unwrap_err(),
        TxError::TooLarge {
            size: bytes.len(),
            max: 500
        }
    );
    // Garbage larger than the limit is "too large", not "malformed": size is checked first.
    assert!(matches!(
        ParsedTx::decode(&[0xff; 600], 500),
        Err(TxError::TooLarge { .. })
    ));
}

#[test]
fn unknown_message_type_is_rejected() {
    let key = SigningKey::secp256k1_from_seed(b"alice");
    let bytes = signed(&key, vec![submit(&key, "alpha", vec![1])]);
    let tampered = tamper(&bytes, |raw| {
        let mut body = TxBody::decode(raw.body_bytes.as_slice()).unwrap();
        body.messages[0].type_url = "/cosmos.staking.v1beta1.MsgDelegate".into();
        raw.body_bytes = body.encode_to_vec();
    });
    assert!(matches!(
        ParsedTx::decode(&tampered, MAX),
        Err(TxError::UnknownMessage { type_url }) if type_url == "/cosmos.staking.v1beta1.MsgDelegate"
    ));
}

#[test]
fn multi_signer_tx_is_rejected() {
    let alice = SigningKey::secp256k1_from_seed(b"alice");
    let bob = SigningKey::secp256k1_from_seed(b"bob");
    let a = signed(&alice, vec![submit(&alice, "alpha", vec![1])]);
    let b = signed(&bob, vec![submit(&bob, "alpha", vec![1])]);
    let b_auth = AuthInfo::decode(
        TxRaw::decode(b.as_slice())
            .unwrap()
            .auth_info_bytes
            .as_slice(),
    )
    .unwrap();
    let b_sig = TxRaw::decode(b.as_slice()).unwrap().signatures[0].clone();
    let two = tamper(&a, |raw| {
        let mut auth = AuthInfo::decode(raw.auth_info_bytes.as_slice()).unwrap();
        auth.signer_infos.push(b_auth.signer_infos[0].clone());
        raw.auth_info_bytes = auth.encode_to_vec();
        raw.signatures.push(b_sig);
    });
    assert_eq!(
        ParsedTx::decode(&two, MAX).unwrap_err(),
        TxError::MultipleSigners {
            signers: 2,
            signatures: 2
        }
    );
    let unsigned = tamper(&a, |raw| raw.signatures.clear());
    assert_eq!(
        ParsedTx::decode(&unsigned, MAX).unwrap_err(),
        TxError::NoSigner
    );
}

#[test]
fn message_signed_by_someone_else_is_rejected() {
    let alice = SigningKey::secp256k1_from_seed(b"alice");
    let bob = SigningKey::secp256k1_from_seed(b"bob");
    // The builder refuses to sign it...
    assert!(matches!(
        TxBuilder::new(CHAIN, 1, 0)
            .message(submit(&bob, "alpha", vec![1]))
            .sign(&alice),
        Err(TxError::SignerMismatch { index: 0, .. })
    ));
    // ...and the verifier refuses a hand-made one.
    let bytes = signed(&alice, vec![submit(&alice, "alpha", vec![1])]);
    let forged = tamper(&bytes, |raw| {
        let mut body = TxBody::decode(raw.body_bytes.as_slice()).unwrap();
        body.messages[0] = submit(&bob, "alpha", vec![1]).to_any();
        raw.body_bytes = body.encode_to_vec();
    });
    assert!(matches!(
        ParsedTx::decode(&forged, MAX),
        Err(TxError::SignerMismatch { .. })
    ));
}

#[test]
fn fee_in_another_denom_and_empty_body_are_rejected() {
    let key = SigningKey::secp256k1_from_seed(b"alice");
    let bytes = signed(&key, vec![submit(&key, "alpha", vec![1])]);
    let wrong_denom = tamper(&bytes, |raw| {
        let mut auth = AuthInfo::decode(raw.auth_info_bytes.as_slice()).unwrap();
        auth.fee.as_mut().unwrap().amount[0].denom = "uatom".into();
        raw.auth_info_bytes = auth.encode_to_vec();
    });
    assert!(matches!(
        ParsedTx::decode(&wrong_denom, MAX),
        Err(TxError::InvalidFee(_))
    ));
    let empty = tamper(&bytes, |raw| {
        let mut body = TxBody::decode(raw.body_bytes.as_slice()).unwrap();
        body.messages.clear();
        raw.body_bytes = body.encode_to_vec();
    });
    assert_eq!(
        ParsedTx::decode(&empty, MAX).unwrap_err(),
        TxError::NoMessages
    );
}

#[test]
fn error_codes_are_distinct() {
    let errors = [
        TxError::TooLarge { size: 0, max: 0 },
        TxError::Malformed(String::new()),
        TxError::NoMessages,
        TxError::UnknownMessage {
            type_url: String::new(),
        },
        TxError::InvalidMessage {
            index: 0,
            source: tandem_core::MessageError::UnknownType {
                type_url: String::new(),
            },
        },
        TxError::NoSigner,
        TxError::MultipleSigners {
            signers: 2,
            signatures: 2,
        },
        TxError::UnsupportedSignMode(String::new()),
        TxError::UnsupportedPublicKey(String::new()),
        TxError::SignerMismatch {
            index: 0,
            expected: tandem_core::Address::new([0; 20]),
            actual: tandem_core::Address::new([1; 20]),
        },
        TxError::InvalidFee(String::new()),
        TxError::MemoTooLong(0),
        TxError::UnsupportedField(""),
        TxError::InvalidSignature,
        TxError::InvalidPublicKey,
    ];
    let mut codes: Vec<u32> = errors.iter().map(TxError::code).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), errors.len());
    assert!(codes.iter().all(|c| (1..=31).contains(c)));
}

/// `decode_unsigned` takes a tx as cosmjs builds it to simulate (`SIGN_MODE_UNSPECIFIED`, one
/// empty signature); `decode` refuses both, and such a tx never verifies.
#[test]
fn unsigned_txs_decode_only_for_simulation() {
    use cosmrs::proto::cosmos::tx::{
        signing::v1beta1::SignMode,
        v1beta1::{mode_info, ModeInfo},
    };
    let key = SigningKey::secp256k1_from_seed(b"unsigned");
    let tx = signed(&key, vec![submit(&key, "r", vec![1, 2, 3])]);
    let with = |mode: SignMode, signature: Vec<u8>| {
        let mut raw = TxRaw::decode(tx.as_slice()).unwrap();
        let mut auth_info = AuthInfo::decode(raw.auth_info_bytes.as_slice()).unwrap();
        auth_info.signer_infos[0].mode_info = Some(ModeInfo {
            sum: Some(mode_info::Sum::Single(mode_info::Single {
                mode: mode as i32,
            })),
        });
        raw.auth_info_bytes = auth_info.encode_to_vec();
        raw.signatures = vec![signature];
        raw.encode_to_vec()
    };
    let simulated = with(SignMode::Unspecified, vec![]);
    assert!(matches!(
        ParsedTx::decode(&simulated, MAX).unwrap_err(),
        TxError::UnsupportedSignMode(_)
    ));
    assert!(matches!(
        ParsedTx::decode(&with(SignMode::Direct, vec![]), MAX).unwrap_err(),
        TxError::Malformed(_)
    ));
    let parsed = ParsedTx::decode_unsigned(&simulated, MAX).unwrap();
    assert_eq!(parsed.signer(), key.address());
    assert_eq!(parsed.sequence(), 3);
    assert_eq!(parsed.rollup_data_bytes(), 3);
    assert_eq!(parsed.signature(), &[0; 64]);
    assert_eq!(
        parsed.verify(CHAIN, 7).unwrap_err(),
        TxError::InvalidSignature
    );
    // Other modes and lengths stay refused.
    assert!(matches!(
        ParsedTx::decode_unsigned(&with(SignMode::LegacyAminoJson, vec![]), MAX).unwrap_err(),
        TxError::UnsupportedSignMode(_)
    ));
    assert!(matches!(
        ParsedTx::decode_unsigned(&with(SignMode::Unspecified, vec![1; 10]), MAX).unwrap_err(),
        TxError::Malformed(_)
    ));
    // A signed tx decodes the same either way.
    assert_eq!(
        ParsedTx::decode_unsigned(&tx, MAX).unwrap().hash(),
        ParsedTx::decode(&tx, MAX).unwrap().hash()
    );
}
