//! JWT cases after the public Engine API auth test suite, against the real HTTP server.

use alloy_rpc_types_engine::Claims;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::support::{now, post, request, TestNode};

fn hs256(secret: &[u8], iat: u64) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &Claims { iat, exp: None },
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

async fn status_with(node: &TestNode, authorization: Option<String>) -> u16 {
    let body = request("engine_exchangeCapabilities", &json!([[]]));
    post(node.engine, &body, authorization.as_deref()).await.0
}

/// Status for a token whose `iat` is `offset` seconds from now. The server reads its clock in
/// whole seconds after the client did, so a run that crossed a second boundary is repeated.
async fn status_at_offset(node: &TestNode, secret: &[u8], offset: i64) -> u16 {
    for _ in 0..5 {
        let before = now();
        let iat = before.checked_add_signed(offset).unwrap();
        let status = status_with(node, Some(format!("Bearer {}", hs256(secret, iat)))).await;
        if now() == before {
            return status;
        }
    }
    panic!("every attempt crossed a second boundary");
}

#[tokio::test]
async fn jwt_auth_follows_the_engine_api_cases() {
    let node = TestNode::start().await;
    let secret = hex::decode(&node.secret_hex).unwrap();
    let bearer = |token: String| Some(format!("Bearer {token}"));

    assert_eq!(
        status_with(&node, bearer(node.token())).await,
        200,
        "correct secret"
    );
    assert_eq!(
        status_with(&node, bearer(hs256(&secret, now()))).await,
        200,
        "correct secret via jsonwebtoken"
    );
    assert_eq!(
        status_with(&node, bearer(hs256(&secret[..31], now()))).await,
        401,
        "secret one byte short"
    );
    let mut long = secret.clone();
    long.push(0x42);
    assert_eq!(
        status_with(&node, bearer(hs256(&long, now()))).await,
        401,
        "secret one byte long"
    );

    assert_eq!(
        status_at_offset(&node, &secret, -61).await,
        401,
        "iat -61 s"
    );
    assert_eq!(status_at_offset(&node, &secret, 61).await, 401, "iat +61 s");
    assert_eq!(
        status_at_offset(&node, &secret, -59).await,
        200,
        "iat -59 s"
    );
    assert_eq!(status_at_offset(&node, &secret, 59).await, 200, "iat +59 s");

    let none_header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = base64url(format!(r#"{{"iat":{}}}"#, now()).as_bytes());
    assert_eq!(
        status_with(&node, bearer(format!("{none_header}.{claims}."))).await,
        401,
        "alg none"
    );
    assert_eq!(status_with(&node, None).await, 401, "missing token");
    assert_eq!(
        status_with(&node, Some(node.token())).await,
        401,
        "token without Bearer"
    );
    node.stop().await;
}

#[test]
fn secret_files_of_wrong_length_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwt.hex");
    std::fs::write(&path, "ab".repeat(31)).unwrap();
    assert!(tandem_evm::jwt::read_secret(&path)
        .unwrap_err()
        .contains("31 bytes"));
    std::fs::write(&path, "ab".repeat(33)).unwrap();
    assert!(tandem_evm::jwt::read_secret(&path)
        .unwrap_err()
        .contains("33 bytes"));
    std::fs::write(&path, format!("0x{}\n", "ab".repeat(32))).unwrap();
    assert!(tandem_evm::jwt::read_secret(&path).is_ok());
}
