//! Engine API authentication: an HTTP layer that answers 401 unless the request carries
//! `Authorization: Bearer <jwt>` signed with HS256 by the shared secret, with `iat` within
//! ±60 s of now (the check of [`JwtSecret::validate`]; `alg: none` and other algorithms fail it).

use std::{
    future::Future,
    path::Path,
    pin::Pin,
    task::{Context, Poll},
};

use alloy_rpc_types_engine::JwtSecret;
use http::{header::AUTHORIZATION, StatusCode};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

/// Largest secret file accepted.
const MAX_SECRET_FILE: u64 = 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Reads a JWT secret file: 32 bytes as hex (optionally `0x`-prefixed), surrounding whitespace
/// ignored. Any other length is an error.
pub fn read_secret(path: &Path) -> Result<JwtSecret, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("failed to read JWT secret {}: {e}", path.display()))?
        .len();
    if size > MAX_SECRET_FILE {
        return Err(format!(
            "JWT secret file {} is {size} bytes; expected 64 hex characters",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("failed to read JWT secret {}: {e}", path.display()))?;
    parse_secret(text.trim()).map_err(|e| format!("JWT secret file {}: {e}", path.display()))
}

/// Parses a hex JWT secret that must be exactly 32 bytes.
pub fn parse_secret(hex_text: &str) -> Result<JwtSecret, String> {
    let digits = hex_text.strip_prefix("0x").unwrap_or(hex_text);
    let bytes = hex::decode(digits).map_err(|e| format!("secret is not hex: {e}"))?;
    if bytes.len() != 32 {
        return Err(format!(
            "secret is {} bytes, expected exactly 32 (64 hex characters)",
            bytes.len()
        ));
    }
    JwtSecret::from_hex(digits).map_err(|e| e.to_string())
}

/// Tower layer adding JWT authentication.
#[derive(Clone, Debug)]
pub struct JwtLayer {
    secret: JwtSecret,
}

impl JwtLayer {
    /// A layer checking tokens against `secret`.
    pub fn new(secret: JwtSecret) -> Self {
        Self { secret }
    }
}

impl<S> tower::Layer<S> for JwtLayer {
    type Service = JwtService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtService {
            inner,
            secret: self.secret,
        }
    }
}

/// The service of [`JwtLayer`].
#[derive(Clone, Debug)]
pub struct JwtService<S> {
    inner: S,
    secret: JwtSecret,
}

impl<S> JwtService<S> {
    fn check(&self, request: &HttpRequest) -> Result<(), String> {
        let header = request
            .headers()
            .get(AUTHORIZATION)
            .ok_or("missing Authorization header")?
            .to_str()
            .map_err(|_| "Authorization header is not ASCII")?;
        let token = header
            .strip_prefix("Bearer ")
            .ok_or("Authorization header is not `Bearer <token>`")?;
        self.secret.validate(token).map_err(|e| e.to_string())
    }
}

impl<S> tower::Service<HttpRequest> for JwtService<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        match self.check(&request) {
            Ok(()) => {
                let future = self.inner.call(request);
                Box::pin(async move { future.await.map_err(Into::into) })
            }
            Err(reason) => {
                tracing::debug!(%reason, "rejected Engine API request");
                let response = http::Response::builder()
                    .status(StatusCode::UNAUTHORIZED)
                    .body(HttpBody::from(format!("unauthorized: {reason}")))
                    .expect("a status and a body make a valid response");
                Box::pin(async move { Ok(response) })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_must_be_exactly_32_bytes() {
        let good = "ab".repeat(32);
        assert!(parse_secret(&good).is_ok());
        assert!(parse_secret(&format!("0x{good}")).is_ok());
        assert!(parse_secret(&"ab".repeat(31))
            .unwrap_err()
            .contains("31 bytes"));
        assert!(parse_secret(&"ab".repeat(33))
            .unwrap_err()
            .contains("33 bytes"));
        assert!(parse_secret("zz").unwrap_err().contains("not hex"));
    }
}
