//! Genesis: a geth-style `genesis.json` becomes the genesis header and world state.
//!
//! The header is built as Ethereum clients build it, so its hash matches theirs for the same
//! file: fields introduced by London (base fee), Shanghai (withdrawals root) and Cancun (blob gas,
//! parent beacon block root) are present exactly when the fork is active at genesis.

use std::path::Path;

use alloy_consensus::{constants::EMPTY_OMMER_ROOT_HASH, Header, EMPTY_ROOT_HASH};
use alloy_eips::{
    eip1559::INITIAL_BASE_FEE,
    eip4788::{BEACON_ROOTS_ADDRESS, BEACON_ROOTS_CODE},
};
use alloy_genesis::{Genesis, GenesisAccount};
use alloy_primitives::{address, Address, B64, U256};

use crate::state::{GenesisEntry, WorldState};

/// The largest genesis file accepted (the file is read whole).
const MAX_GENESIS_BYTES: u64 = 256 * 1024 * 1024;

/// Chain id of the built-in development genesis.
pub const DEV_CHAIN_ID: u64 = 1337;

/// The funded account of the built-in development genesis.
///
/// Its key is the widely published first development key of hardhat/anvil
/// (`0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80`): never use it for value.
pub const DEV_ACCOUNT: Address = address!("f39Fd6e51aad88F6F4ce6aB8827279cffFb92266");

/// Errors of genesis loading.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// The file could not be read.
    #[error("failed to read genesis file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than 256 MiB.
    #[error("genesis file {path} is {size} bytes, more than the {MAX_GENESIS_BYTES} accepted")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
    },
    /// The file is not a geth-style genesis.
    #[error("genesis file {path} is not a valid geth-style genesis.json: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The genesis does not activate the forks this engine runs.
    #[error("unsupported genesis config: {0}")]
    Unsupported(String),
    /// The allocation is inconsistent.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

/// Reads and parses a genesis file.
pub fn load_genesis(path: &Path) -> Result<Genesis, GenesisError> {
    let display = path.display().to_string();
    let size = std::fs::metadata(path)
        .map_err(|source| GenesisError::Read {
            path: display.clone(),
            source,
        })?
        .len();
    if size > MAX_GENESIS_BYTES {
        return Err(GenesisError::TooLarge {
            path: display,
            size,
        });
    }
    let bytes = std::fs::read(path).map_err(|source| GenesisError::Read {
        path: display.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| GenesisError::Parse {
        path: display,
        source,
    })
}

/// The built-in development genesis: Cancun from block 0, the EIP-4788 beacon-roots contract
/// and [`DEV_ACCOUNT`] funded with 1,000,000 ETH.
pub fn dev_genesis() -> Genesis {
    let mut genesis = Genesis::default();
    genesis.config.chain_id = DEV_CHAIN_ID;
    for block in [
        &mut genesis.config.homestead_block,
        &mut genesis.config.eip150_block,
        &mut genesis.config.eip155_block,
        &mut genesis.config.eip158_block,
        &mut genesis.config.byzantium_block,
        &mut genesis.config.constantinople_block,
        &mut genesis.config.petersburg_block,
        &mut genesis.config.istanbul_block,
        &mut genesis.config.berlin_block,
        &mut genesis.config.london_block,
    ] {
        *block = Some(0);
    }
    genesis.config.terminal_total_difficulty = Some(U256::ZERO);
    genesis.config.terminal_total_difficulty_passed = true;
    genesis.config.shanghai_time = Some(0);
    genesis.config.cancun_time = Some(0);
    genesis.gas_limit = 30_000_000;
    genesis.base_fee_per_gas = Some(u128::from(INITIAL_BASE_FEE));
    genesis.alloc.insert(
        BEACON_ROOTS_ADDRESS,
        GenesisAccount::default()
            .with_nonce(Some(1))
            .with_code(Some(BEACON_ROOTS_CODE.clone())),
    );
    genesis.alloc.insert(
        DEV_ACCOUNT,
        GenesisAccount::default().with_balance(U256::from(10u64).pow(U256::from(24u64))),
    );
    genesis
}

/// Checks that a genesis describes a chain this engine can run: Shanghai and Cancun at
/// block 0, no later fork scheduled.
pub fn check_supported(genesis: &Genesis) -> Result<(), GenesisError> {
    let config = &genesis.config;
    if config.shanghai_time != Some(0) || config.cancun_time != Some(0) {
        return Err(GenesisError::Unsupported(format!(
            "tandem-evm runs Shanghai and Cancun from block 0, but config has shanghaiTime={:?} \
             cancunTime={:?}; set both to 0",
            config.shanghai_time, config.cancun_time
        )));
    }
    if config.london_block.is_some_and(|block| block != 0) {
        return Err(GenesisError::Unsupported(format!(
            "londonBlock must be 0 (or absent), got {:?}",
            config.london_block
        )));
    }
    if config.prague_time.is_some() || config.osaka_time.is_some() {
        return Err(GenesisError::Unsupported(
            "Prague and later forks are not supported; remove pragueTime/osakaTime".to_owned(),
        ));
    }
    if genesis.gas_limit == 0 {
        return Err(GenesisError::Unsupported(
            "gasLimit must be positive".to_owned(),
        ));
    }
    Ok(())
}

/// The genesis header of any geth-style genesis (also of chains this engine cannot run), built
/// as Ethereum clients build it; its `hash_slow()` is the genesis block hash.
pub fn genesis_header(genesis: &Genesis) -> Result<Header, GenesisError> {
    build(genesis).map(|(header, _)| header)
}

/// Builds the genesis header and state exactly as Ethereum clients do.
pub(crate) fn build(genesis: &Genesis) -> Result<(Header, WorldState), GenesisError> {
    let entries = genesis.alloc.iter().map(|(address, account)| GenesisEntry {
        address: *address,
        nonce: account.nonce.unwrap_or(0),
        balance: account.balance,
        code: account.code.clone().unwrap_or_default(),
        storage: account
            .storage
            .iter()
            .flatten()
            .map(|(slot, value)| (U256::from_be_bytes(slot.0), U256::from_be_bytes(value.0)))
            .collect(),
    });
    let mut state = WorldState::from_accounts(entries)?;
    let config = &genesis.config;
    let shanghai = config.shanghai_time.is_some_and(|t| t <= genesis.timestamp);
    let cancun = config.cancun_time.is_some_and(|t| t <= genesis.timestamp);
    let london = config.london_block == Some(0) || shanghai;
    let header = Header {
        parent_hash: genesis.parent_hash.unwrap_or_default(),
        ommers_hash: EMPTY_OMMER_ROOT_HASH,
        beneficiary: genesis.coinbase,
        state_root: state.state_root(true),
        transactions_root: EMPTY_ROOT_HASH,
        receipts_root: EMPTY_ROOT_HASH,
        logs_bloom: alloy_primitives::Bloom::ZERO,
        difficulty: genesis.difficulty,
        number: genesis.number.unwrap_or(0),
        gas_limit: genesis.gas_limit,
        gas_used: 0,
        timestamp: genesis.timestamp,
        extra_data: genesis.extra_data.clone(),
        mix_hash: genesis.mix_hash,
        nonce: B64::from(genesis.nonce),
        base_fee_per_gas: london.then(|| {
            genesis.base_fee_per_gas.map_or(INITIAL_BASE_FEE, |fee| {
                u64::try_from(fee).unwrap_or(u64::MAX)
            })
        }),
        withdrawals_root: shanghai.then_some(EMPTY_ROOT_HASH),
        blob_gas_used: cancun.then(|| genesis.blob_gas_used.unwrap_or(0)),
        excess_blob_gas: cancun.then(|| genesis.excess_blob_gas.unwrap_or(0)),
        parent_beacon_block_root: cancun.then_some(alloy_primitives::B256::ZERO),
        ..Header::default()
    };
    Ok((header, state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_genesis_is_supported_and_has_cancun_fields() {
        let genesis = dev_genesis();
        check_supported(&genesis).unwrap();
        let (header, state) = build(&genesis).unwrap();
        assert_eq!(header.base_fee_per_gas, Some(INITIAL_BASE_FEE));
        assert_eq!(header.withdrawals_root, Some(EMPTY_ROOT_HASH));
        assert_eq!(header.blob_gas_used, Some(0));
        assert_eq!(
            header.parent_beacon_block_root,
            Some(alloy_primitives::B256::ZERO)
        );
        assert_eq!(state.code(BEACON_ROOTS_ADDRESS), BEACON_ROOTS_CODE);
    }

    #[test]
    fn prague_and_missing_cancun_are_rejected_with_reason() {
        let mut genesis = dev_genesis();
        genesis.config.cancun_time = Some(5);
        assert!(check_supported(&genesis)
            .unwrap_err()
            .to_string()
            .contains("cancunTime=Some(5)"));
        let mut genesis = dev_genesis();
        genesis.config.prague_time = Some(0);
        assert!(check_supported(&genesis)
            .unwrap_err()
            .to_string()
            .contains("Prague"));
    }
}
