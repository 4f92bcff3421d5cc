//! The genesis `app_state`: the JSON object CometBFT's `genesis.json` carries under
//! `app_state` and hands to the app in InitChain.
//!
//! ```json
//! {
//!   "accounts": [{ "address": "tandem1…", "coins": [{ "denom": "utnd", "amount": "1000000" }] }],
//!   "params": { "base_fee": 1000, "fee_per_byte": 10, "max_tx_bytes": 262144,
//!               "max_rollup_bytes_per_block": 16777216 },
//!   "authority": "tandem1…",
//!   "fee_collector": "tandem1…"
//! }
//! ```
//!
//! Amounts are decimal strings (as in the Cosmos SDK) or JSON integers. Accounts receive
//! account numbers in the order listed, then the fee collector if it is not listed.

use cnidarium::StateWrite;
use serde::{Deserialize, Serialize};
use tandem_core::{Address, Params, SigningKey, NATIVE_DENOM};

use crate::{
    accounts::StateWriteExt as _, error::ExecError, fees::StateWriteExt as _,
    params::StateWriteExt as _,
};

/// The genesis `app_state` of a Tandem chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAppState {
    /// Initial balances.
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
    /// Initial chain parameters (defaults when absent).
    #[serde(default)]
    pub params: Params,
    /// The address allowed to send `MsgUpdateParams` and `MsgUpdateValidator`.
    pub authority: Address,
    /// The address all fees are paid to.
    pub fee_collector: Address,
}

/// One funded genesis account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// bech32 address (prefix `tandem`).
    pub address: Address,
    /// Initial balances.
    pub coins: Vec<GenesisCoin>,
}

/// An amount of one denom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisCoin {
    /// Denomination, e.g. `utnd`.
    pub denom: String,
    /// Amount, a decimal string or an integer.
    #[serde(with = "amount")]
    pub amount: u128,
}

/// Why a genesis `app_state` was refused.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The bytes are not a valid `app_state` JSON document.
    #[error("genesis app_state is not valid JSON for Tandem: {0}")]
    Json(#[from] serde_json::Error),
    /// The params cannot run a chain.
    #[error("genesis params are invalid: {0}")]
    Params(String),
    /// A coin entry is unusable.
    #[error("genesis account {address}: {reason}")]
    Account {
        /// The account's address.
        address: Address,
        /// What was wrong.
        reason: String,
    },
    /// Writing the genesis state failed.
    #[error("failed to write genesis state: {0}")]
    State(String),
}

impl GenesisAppState {
    /// Parses and validates an `app_state` JSON document.
    pub fn from_json(bytes: &[u8]) -> Result<Self, GenesisError> {
        let state: Self = serde_json::from_slice(bytes)?;
        state.validate()?;
        Ok(state)
    }

    /// Checks what serde cannot: params and coin entries.
    pub fn validate(&self) -> Result<(), GenesisError> {
        crate::params::validate(&self.params).map_err(|e| GenesisError::Params(e.to_string()))?;
        for account in &self.accounts {
            for coin in &account.coins {
                if coin.denom.is_empty() || coin.denom.len() > 128 {
                    return Err(GenesisError::Account {
                        address: account.address,
                        reason: format!("denom `{}` must be 1..=128 bytes", coin.denom),
                    });
                }
            }
        }
        Ok(())
    }

    /// A documented default: one funded account, which is also the authority, and a separate
    /// fee collector. The keys come from fixed seeds, so it is only fit for development.
    pub fn example() -> Self {
        let owner = SigningKey::secp256k1_from_seed(b"tandem-example-authority").address();
        let collector = SigningKey::secp256k1_from_seed(b"tandem-example-fee-collector").address();
        Self {
            accounts: vec![GenesisAccount {
                address: owner,
                coins: vec![GenesisCoin {
                    denom: NATIVE_DENOM.to_string(),
                    amount: 1_000_000_000_000,
                }],
            }],
            params: Params::default(),
            authority: owner,
            fee_collector: collector,
        }
    }

    /// Writes the genesis state.
    pub(crate) async fn apply<S: StateWrite>(&self, state: &mut S) -> Result<(), GenesisError> {
        let to_err = |e: ExecError| GenesisError::State(e.to_string());
        state.put_params(&self.params);
        state.put_authority(&self.authority);
        state.put_fee_collector(&self.fee_collector);
        for account in &self.accounts {
            state
                .ensure_account(&account.address)
                .await
                .map_err(|e| to_err(e.into()))?;
            for coin in &account.coins {
                state
                    .credit(&account.address, &coin.denom, coin.amount)
                    .await
                    .map_err(to_err)?;
            }
        }
        state
            .ensure_account(&self.fee_collector)
            .await
            .map_err(|e| to_err(e.into()))?;
        Ok(())
    }
}

mod amount {
    use serde::{de, Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(value: &u128, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Number(u64),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<u128, D::Error> {
        match Repr::deserialize(deserializer)? {
            Repr::Text(text) => text
                .parse()
                .map_err(|e| de::Error::custom(format!("amount `{text}` is not a u128: {e}"))),
            Repr::Number(n) => Ok(u128::from(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_round_trips_through_json() {
        let example = GenesisAppState::example();
        let json = serde_json::to_vec_pretty(&example).unwrap();
        assert_eq!(GenesisAppState::from_json(&json).unwrap(), example);
    }

    #[test]
    fn amounts_accept_strings_and_integers() {
        let a = SigningKey::secp256k1_from_seed(b"a").address();
        let json = format!(
            r#"{{"accounts":[{{"address":"{a}","coins":[{{"denom":"utnd","amount":"340282366920938463463374607431768211455"}},{{"denom":"x","amount":5}}]}}],"authority":"{a}","fee_collector":"{a}"}}"#
        );
        let state = GenesisAppState::from_json(json.as_bytes()).unwrap();
        assert_eq!(state.accounts[0].coins[0].amount, u128::MAX);
        assert_eq!(state.accounts[0].coins[1].amount, 5);
        assert_eq!(state.params, Params::default());
    }

    #[test]
    fn bad_documents_name_the_problem() {
        let a = SigningKey::secp256k1_from_seed(b"a").address();
        let cases = [
            ("{}".to_string(), "authority"),
            (
                format!(r#"{{"authority":"cosmos1qqqq","fee_collector":"{a}"}}"#),
                "cosmos1qqqq",
            ),
            (
                format!(
                    r#"{{"authority":"{a}","fee_collector":"{a}","params":{{"base_fee":1,"fee_per_byte":1,"max_tx_bytes":0,"max_rollup_bytes_per_block":1}}}}"#
                ),
                "max_tx_bytes",
            ),
            (
                format!(r#"{{"authority":"{a}","fee_collector":"{a}","extra":1}}"#),
                "extra",
            ),
            (
                format!(
                    r#"{{"authority":"{a}","fee_collector":"{a}","accounts":[{{"address":"{a}","coins":[{{"denom":"","amount":"1"}}]}}]}}"#
                ),
                "denom",
            ),
        ];
        for (json, needle) in cases {
            let err = GenesisAppState::from_json(json.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "`{err}` should mention `{needle}`");
        }
    }
}
