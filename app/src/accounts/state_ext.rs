//! Typed state access for accounts and balances.

use async_trait::async_trait;
use cnidarium::{StateRead, StateWrite};
use futures::StreamExt as _;
use tandem_core::Address;

use super::keys;
use crate::{
    error::ExecError,
    state::{decode_u128, get_u128, get_u64, StateError},
};

/// Reads of account state.
#[async_trait]
pub(crate) trait StateReadExt: StateRead {
    /// The account number of `address`, or `None` when the account was never seen.
    async fn account_number(&self, address: &Address) -> Result<Option<u64>, StateError> {
        get_u64(self, &keys::number(address)).await
    }

    /// The next sequence `address` must sign with (0 for an unseen account).
    async fn account_sequence(&self, address: &Address) -> Result<u64, StateError> {
        Ok(get_u64(self, &keys::sequence(address)).await?.unwrap_or(0))
    }

    /// The balance of `address` in `denom` (0 when absent).
    async fn balance(&self, address: &Address, denom: &str) -> Result<u128, StateError> {
        Ok(get_u128(self, &keys::balance(address, denom))
            .await?
            .unwrap_or(0))
    }

    /// All non-zero balances of `address`, sorted by denom.
    async fn balances(&self, address: &Address) -> Result<Vec<(String, u128)>, StateError> {
        let prefix = keys::balance_prefix(address);
        let mut stream = std::pin::pin!(self.prefix_raw(&prefix));
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let (key, value) = item.map_err(|e| StateError::Storage {
                key: prefix.clone(),
                message: format!("{e:#}"),
            })?;
            let amount = decode_u128(&key, &value)?;
            let denom = key.strip_prefix(&prefix).unwrap_or(&key).to_string();
            if amount > 0 {
                out.push((denom, amount));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The account number the next new account receives.
    async fn next_account_number(&self) -> Result<u64, StateError> {
        Ok(get_u64(self, keys::NEXT_NUMBER).await?.unwrap_or(0))
    }
}

impl<T: StateRead + ?Sized> StateReadExt for T {}

/// Writes of account state.
#[async_trait]
pub(crate) trait StateWriteExt: StateWrite {
    /// Stores the next expected sequence of `address`.
    fn put_account_sequence(&mut self, address: &Address, sequence: u64) {
        self.put_raw(keys::sequence(address), sequence.to_be_bytes().to_vec());
    }

    /// Stores a balance under its `key` (from `keys::balance`); zero deletes the key.
    fn put_balance_at(&mut self, key: String, amount: u128) {
        if amount == 0 {
            self.delete(key);
        } else {
            self.put_raw(key, amount.to_be_bytes().to_vec());
        }
    }

    /// Returns the account number of `address`, assigning the next one when the account is
    /// seen for the first time.
    async fn ensure_account(&mut self, address: &Address) -> Result<u64, StateError> {
        if let Some(number) = self.account_number(address).await? {
            return Ok(number);
        }
        let number = self.next_account_number().await?;
        let next = number.checked_add(1).ok_or_else(|| StateError::Corrupt {
            key: keys::NEXT_NUMBER.to_string(),
            reason: "account numbers exhausted".to_string(),
        })?;
        self.put_raw(keys::NEXT_NUMBER.to_string(), next.to_be_bytes().to_vec());
        self.put_raw(keys::number(address), number.to_be_bytes().to_vec());
        self.put_account_sequence(address, 0);
        Ok(number)
    }

    /// Adds `amount` of `denom` to `address`, creating the account on first sight.
    async fn credit(
        &mut self,
        address: &Address,
        denom: &str,
        amount: u128,
    ) -> Result<(), ExecError> {
        self.ensure_account(address).await?;
        let key = keys::balance(address, denom);
        let current = get_u128(self, &key).await?.unwrap_or(0);
        let new = current
            .checked_add(amount)
            .ok_or_else(|| ExecError::BalanceOverflow {
                address: *address,
                denom: denom.to_string(),
            })?;
        self.put_balance_at(key, new);
        Ok(())
    }

    /// Removes `amount` of `denom` from `address`.
    async fn debit(
        &mut self,
        address: &Address,
        denom: &str,
        amount: u128,
    ) -> Result<(), ExecError> {
        let key = keys::balance(address, denom);
        let current = get_u128(self, &key).await?.unwrap_or(0);
        let new = current
            .checked_sub(amount)
            .ok_or_else(|| ExecError::InsufficientBalance {
                address: *address,
                denom: denom.to_string(),
                needed: amount,
                available: current,
            })?;
        self.put_balance_at(key, new);
        Ok(())
    }
}

impl<T: StateWrite + ?Sized> StateWriteExt for T {}
