//! Wire-level properties of signed txs: interop with cosmrs' own signer, the
//! exact `SignDoc` encoding, and malleability (nobody without the key can
//! produce different bytes that still verify).

use cosmrs::proto::cosmos::tx::v1beta1::{AuthInfo, SignDoc, TxBody, TxRaw};
use k256::elliptic_curve::scalar::IsHigh as _;
use prost::Message as _;
use tandem_core::{
    messages::SubmitRollupData, tx::sign_doc_bytes, Message, ParsedTx, RollupId, SigningKey,
    TxBuilder, TxError,
};

const CHAIN: &str = "tandem-wire";
const ACCOUNT: u64 = 5;
const MAX: usize = 64 * 1024;

fn submit(key: &SigningKey) -> Message {
    Message::SubmitRollupData(SubmitRollupData {
        signer: key.address(),
        rollup_id: RollupId::from_name("wire"),
        data: vec![0x42; 100],
    })
}

fn signed(key: &SigningKey) -> Vec<u8> {
    TxBuilder::new(CHAIN, ACCOUNT, 2)
        .message(submit(key))
        .fee(3_000)
        .sign(key)
        .unwrap()
}

/// Re-signs `body` and `auth_info` correctly, so only what the test changed is wrong.
fn sign_parts(key: &SigningKey, body_bytes: Vec<u8>, auth_info_bytes: Vec<u8>) -> Vec<u8> {
    let signature = key.sign(&sign_doc_bytes(
        &body_bytes,
        &auth_info_bytes,
        CHAIN,
        ACCOUNT,
    ));
    TxRaw {
        body_bytes,
        auth_info_bytes,
        signatures: vec![signature.to_vec()],
    }
    .encode_to_vec()
}

#[test]
fn a_tx_signed_by_cosmrs_itself_verifies() {
    use cosmrs::{
        crypto::secp256k1,
        tx::{Body, Fee, SignDoc as CosmrsSignDoc, SignerInfo},
    };
    let ours = SigningKey::secp256k1_from_seed(b"interop");
    let theirs = secp256k1::SigningKey::from_slice(&ours.secret_bytes()).unwrap();
    let message = submit(&ours);
    let body = Body::new(vec![message.to_any()], "signed by cosmrs", 0u32);
    let auth_info = SignerInfo::single_direct(Some(theirs.public_key()), 11).auth_info(
        Fee::from_amount_and_gas(
            cosmrs::Coin {
                denom: "utnd".parse().unwrap(),
                amount: 4_321,
            },
            100_000u64,
        ),
    );
    let bytes = CosmrsSignDoc::new(&body, &auth_info, &CHAIN.parse().unwrap(), ACCOUNT)
        .unwrap()
        .sign(&theirs)
        .unwrap()
        .to_bytes()
        .unwrap();
    let tx = ParsedTx::decode(&bytes, MAX)
        .unwrap()
        .verify(CHAIN, ACCOUNT)
        .unwrap();
    assert_eq!(tx.signer(), ours.address());
    assert_eq!(tx.sequence(), 11);
    assert_eq!(tx.fee(), 4_321);
    assert_eq!(tx.messages(), &[message]);
}

#[test]
fn sign_doc_bytes_are_prost_encoding_of_sign_doc() {
    let long = vec![7u8; 300];
    let cases: [(&[u8], &[u8], &str, u64); 6] = [
        (b"body", b"auth", "tandem-1", 5),
        (b"", b"", "", 0),
        (&long, b"a", "c", u64::MAX),
        (b"b", &long, "", 127),
        (b"b", b"", "chain", 128),
        (&long, &long, &"x".repeat(200), 1 << 35),
    ];
    for (body, auth_info, chain_id, account_number) in cases {
        let expected = SignDoc {
            body_bytes: body.to_vec(),
            auth_info_bytes: auth_info.to_vec(),
            chain_id: chain_id.to_owned(),
            account_number,
        }
        .encode_to_vec();
        assert_eq!(
            sign_doc_bytes(body, auth_info, chain_id, account_number),
            expected
        );
    }
}

#[test]
fn appending_a_field_to_tx_raw_is_malformed() {
    // The signature does not cover the TxRaw framing; an extra field would give a
    // signed tx a second hash.
    let key = SigningKey::secp256k1_from_seed(b"framing");
    let mut bytes = signed(&key);
    assert!(ParsedTx::decode(&bytes, MAX).is_ok());
    bytes.extend_from_slice(&[0x20, 0x01]); // field 4, varint 1
    let err = ParsedTx::decode(&bytes, MAX).unwrap_err();
    assert!(
        matches!(&err, TxError::Malformed(reason) if reason.contains("canonical")),
        "{err:?}"
    );
}

#[test]
fn reordered_tx_raw_fields_are_malformed() {
    let key = SigningKey::ed25519_from_seed(b"framing");
    let raw = TxRaw::decode(signed(&key).as_slice()).unwrap();
    let mut reordered = TxRaw {
        signatures: raw.signatures.clone(),
        ..TxRaw::default()
    }
    .encode_to_vec();
    reordered.extend(
        TxRaw {
            body_bytes: raw.body_bytes.clone(),
            auth_info_bytes: raw.auth_info_bytes.clone(),
            signatures: vec![],
        }
        .encode_to_vec(),
    );
    // prost accepts the reordering, so only the canonical check catches it.
    assert_eq!(TxRaw::decode(reordered.as_slice()).unwrap(), raw);
    assert!(matches!(
        ParsedTx::decode(&reordered, MAX),
        Err(TxError::Malformed(_))
    ));
}

#[test]
fn unknown_fields_in_body_or_auth_info_are_malformed_even_when_signed() {
    let key = SigningKey::secp256k1_from_seed(b"unknown");
    let raw = TxRaw::decode(signed(&key).as_slice()).unwrap();

    let mut body = raw.body_bytes.clone();
    body.extend_from_slice(&[0x28, 0x01]); // TxBody field 5: not defined
    let err =
        ParsedTx::decode(&sign_parts(&key, body, raw.auth_info_bytes.clone()), MAX).unwrap_err();
    assert!(
        matches!(&err, TxError::Malformed(reason) if reason.starts_with("body")),
        "{err:?}"
    );

    let mut auth_info = raw.auth_info_bytes.clone();
    auth_info.extend_from_slice(&[0x48, 0x01]); // AuthInfo field 9: not defined
    let err = ParsedTx::decode(&sign_parts(&key, raw.body_bytes, auth_info), MAX).unwrap_err();
    assert!(
        matches!(&err, TxError::Malformed(reason) if reason.starts_with("auth_info")),
        "{err:?}"
    );
}

#[test]
fn a_high_s_secp256k1_signature_is_rejected() {
    // (r, n - s) verifies under textbook ECDSA; Tandem, like the Cosmos SDK, takes
    // only low-S so a third party cannot re-sign a tx into a second hash.
    let key = SigningKey::secp256k1_from_seed(b"malleable");
    let mut raw = TxRaw::decode(signed(&key).as_slice()).unwrap();
    let signature = k256::ecdsa::Signature::from_slice(&raw.signatures[0]).unwrap();
    let (r, s) = signature.split_scalars();
    let high = k256::ecdsa::Signature::from_scalars(r, -*s).unwrap();
    assert!(bool::from(high.s().is_high()));
    raw.signatures[0] = high.to_bytes().to_vec();
    let err = ParsedTx::decode(&raw.encode_to_vec(), MAX)
        .unwrap()
        .verify(CHAIN, ACCOUNT)
        .unwrap_err();
    assert_eq!(err, TxError::InvalidSignature);
}

#[test]
fn a_signed_plus_sign_fee_amount_is_rejected() {
    // "+5" parses as a Rust u128 but is not a Cosmos Int.
    let key = SigningKey::secp256k1_from_seed(b"fee");
    let raw = TxRaw::decode(signed(&key).as_slice()).unwrap();
    let mut auth_info = AuthInfo::decode(raw.auth_info_bytes.as_slice()).unwrap();
    auth_info.fee.as_mut().unwrap().amount[0].amount = "+5".to_owned();
    let body = TxBody::decode(raw.body_bytes.as_slice()).unwrap();
    let err = ParsedTx::decode(
        &sign_parts(&key, body.encode_to_vec(), auth_info.encode_to_vec()),
        MAX,
    )
    .unwrap_err();
    assert!(matches!(err, TxError::InvalidFee(_)), "{err:?}");
}
