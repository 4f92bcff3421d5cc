//! Forwarding of accepted raw transactions to the conductor's `ForwarderService` (gRPC).

use sha2::{Digest as _, Sha256};
use tandem_proto::conductor::v1::{
    forwarder_service_client::ForwarderServiceClient, SubmitRollupTransactionRequest,
};
use tonic::transport::{Channel, Endpoint};

/// A rollup id: 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollupId(pub [u8; 32]);

impl std::str::FromStr for RollupId {
    type Err = String;

    /// Parses 64 hex characters, or `name:<s>` meaning `sha256(s)`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(name) = s.strip_prefix("name:") {
            if name.is_empty() {
                return Err("rollup id `name:` needs a name after the colon".to_owned());
            }
            return Ok(Self(Sha256::digest(name.as_bytes()).into()));
        }
        let digits = s.strip_prefix("0x").unwrap_or(s);
        let bytes = hex::decode(digits).map_err(|e| {
            format!("rollup id {s:?} is neither 64 hex characters nor name:<s>: {e}")
        })?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("rollup id {s:?} is {} bytes, expected 32", b.len()))?;
        Ok(Self(bytes))
    }
}

/// A client of the conductor's forwarder.
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: ForwarderServiceClient<Channel>,
    rollup_id: RollupId,
}

impl Forwarder {
    /// A lazily connecting client of the forwarder at `url` for `rollup_id`.
    pub fn new(url: &str, rollup_id: RollupId) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| format!("invalid forwarder URL {url:?}: {e}"))?;
        Ok(Self {
            client: ForwarderServiceClient::new(endpoint.connect_lazy()),
            rollup_id,
        })
    }

    /// Submits one raw transaction.
    pub async fn submit(&self, transaction: alloy_primitives::Bytes) -> Result<(), String> {
        let request = SubmitRollupTransactionRequest {
            rollup_id: self.rollup_id.0.to_vec(),
            transaction: transaction.to_vec(),
        };
        self.client
            .clone()
            .submit_rollup_transaction(request)
            .await
            .map(|_| ())
            .map_err(|status| format!("forwarder rejected the transaction: {}", status.message()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollup_ids_parse_from_hex_and_name() {
        let hex_id: RollupId = "ab".repeat(32).parse().unwrap();
        assert_eq!(hex_id.0, [0xab; 32]);
        let named: RollupId = "name:demo".parse().unwrap();
        assert_eq!(named.0, <[u8; 32]>::from(Sha256::digest(b"demo")));
        assert!("ab".parse::<RollupId>().unwrap_err().contains("1 bytes"));
        assert!("name:".parse::<RollupId>().is_err());
    }
}
