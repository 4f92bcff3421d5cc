//! The chain state and the pure functions that build, sign and apply blocks.
//!
//! This is `CometBFT`'s `state.State` for one validator: the last block, the validator sets for
//! the last, current and next height, the consensus params and the hashes the next header
//! carries. Nothing here does I/O, reads a clock or iterates a hash map: the node passes the
//! time in and stores what comes out.

use std::collections::BTreeMap;

use ed25519_consensus::SigningKey;
use prost::Message;
use sha2::{Digest, Sha256};
use tendermint::{
    account, block,
    block::{parts, Commit, CommitSig, Header, Height, Round},
    chain, consensus,
    crypto::default::Sha256 as MerkleSha256,
    merkle, validator,
    vote::{self, Vote},
    AppHash, Block, Hash, PrivateKey, PublicKey, Signature, Time,
};
use tendermint_proto::v0_38 as pb;

/// `CometBFT`'s block protocol version.
pub const BLOCK_PROTOCOL: u64 = 11;
/// Size of one block part, as `CometBFT` gossips them.
pub const BLOCK_PART_SIZE: usize = 65536;
/// `CometBFT`'s fixed overheads used to derive the data size limit of a block.
const MAX_OVERHEAD_FOR_BLOCK: i64 = 11;
const MAX_HEADER_BYTES: i64 = 626;
const MAX_COMMIT_OVERHEAD_BYTES: i64 = 94;
const MAX_COMMIT_SIG_BYTES: i64 = 109;
/// Block size used when the consensus params say "no limit" (-1): `CometBFT`'s hard cap.
const MAX_BLOCK_SIZE_BYTES: i64 = 100 * 1024 * 1024;

/// Errors applying the application's answers to the chain state.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A validator update is not acceptable.
    #[error("invalid validator update at height {height}: {message}")]
    ValidatorUpdate {
        /// The block height.
        height: u64,
        /// What was wrong.
        message: String,
    },
    /// A consensus params update is not acceptable.
    #[error("invalid consensus params at height {height}: {message}")]
    Params {
        /// The block height.
        height: u64,
        /// What was wrong.
        message: String,
    },
    /// This node's key cannot commit blocks alone.
    #[error(
        "validator set for height {height} gives this node's key {address} a power of {ours} out of \
         {total}; a single-validator host needs more than 2/3 of the voting power to commit"
    )]
    NotEnoughPower {
        /// The height whose set is meant.
        height: u64,
        /// This node's validator address.
        address: account::Id,
        /// Its power.
        ours: u64,
        /// The total power.
        total: u64,
    },
    /// A value could not be converted.
    #[error("invalid {what}: {message}")]
    Invalid {
        /// What was converted.
        what: &'static str,
        /// Why it failed.
        message: String,
    },
}

fn invalid(what: &'static str, e: impl std::fmt::Display) -> ChainError {
    ChainError::Invalid {
        what,
        message: e.to_string(),
    }
}

/// The state after the last committed block (`CometBFT`'s `state.State`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainState {
    /// Chain id.
    pub chain_id: chain::Id,
    /// First height of the chain.
    pub initial_height: u64,
    /// Height of the last block applied; 0 before the first.
    pub last_block_height: u64,
    /// Id of the last block applied.
    pub last_block_id: Option<block::Id>,
    /// Time of the last block, or the genesis time.
    pub last_block_time: Time,
    /// Application protocol version carried in headers.
    pub app_version: u64,
    /// Validators that signed the last block (empty before the first).
    pub last_validators: validator::Set,
    /// Validators of the next block.
    pub validators: validator::Set,
    /// Validators of the block after next.
    pub next_validators: validator::Set,
    /// Consensus params for the next block.
    pub consensus_params: consensus::Params,
    /// Merkle root of the last block's deterministic tx results.
    pub last_results_hash: Option<Hash>,
    /// App hash after the last block.
    pub app_hash: AppHash,
}

impl ChainState {
    /// The state before the first block, from the genesis document.
    pub fn from_genesis(genesis: &tendermint::Genesis) -> Result<Self, ChainError> {
        let initial_height = u64::try_from(genesis.initial_height)
            .map_err(|e| invalid("genesis initial_height", e))?;
        let validators = validator::Set::without_proposer(genesis.validators.clone());
        Ok(Self {
            chain_id: genesis.chain_id.clone(),
            initial_height,
            last_block_height: 0,
            last_block_id: None,
            last_block_time: genesis.genesis_time,
            app_version: genesis
                .consensus_params
                .version
                .as_ref()
                .map_or(0, |v| v.app),
            last_validators: validator::Set::without_proposer(Vec::new()),
            next_validators: validators.clone(),
            validators,
            consensus_params: genesis.consensus_params.clone(),
            last_results_hash: None,
            app_hash: genesis.app_hash.clone(),
        })
    }

    /// The height of the next block.
    pub fn next_height(&self) -> u64 {
        if self.last_block_height == 0 {
            self.initial_height
        } else {
            self.last_block_height + 1
        }
    }

    /// Applies the answer to `InitChain`: validators and app hash it returns replace the
    /// genesis values, and the params it returns update them (each group it sets replaces the
    /// genesis one, the others stay), as `CometBFT`'s handshake does.
    pub fn apply_init_chain(
        &mut self,
        response: &pb::abci::ResponseInitChain,
    ) -> Result<(), ChainError> {
        let height = self.initial_height;
        if let Some(params) = &response.consensus_params {
            self.consensus_params = update_params(&self.consensus_params, params, height)?;
            if let Some(version) = &self.consensus_params.version {
                self.app_version = version.app;
            }
        }
        if !response.validators.is_empty() {
            let set = apply_validator_updates(
                &validator::Set::without_proposer(Vec::new()),
                &response.validators,
                height,
            )?;
            self.validators = set.clone();
            self.next_validators = set;
        }
        if !response.app_hash.is_empty() {
            self.app_hash = AppHash::try_from(response.app_hash.to_vec())
                .map_err(|e| invalid("InitChain app_hash", e))?;
        }
        Ok(())
    }

    /// The largest total tx bytes a block may carry (`CometBFT`'s `MaxDataBytes`).
    pub fn max_data_bytes(&self) -> i64 {
        let max_bytes =
            i64::try_from(self.consensus_params.block.max_bytes).unwrap_or(MAX_BLOCK_SIZE_BYTES);
        let max_bytes = if max_bytes <= 0 {
            MAX_BLOCK_SIZE_BYTES
        } else {
            max_bytes.min(MAX_BLOCK_SIZE_BYTES)
        };
        let vals = i64::try_from(self.validators.validators().len())
            .unwrap_or(i64::MAX / MAX_COMMIT_SIG_BYTES);
        max_bytes
            - MAX_OVERHEAD_FOR_BLOCK
            - MAX_HEADER_BYTES
            - MAX_COMMIT_OVERHEAD_BYTES
            - MAX_COMMIT_SIG_BYTES.saturating_mul(vals)
    }

    /// The largest total gas of a block's txs; `None` means no limit.
    pub fn max_gas(&self) -> Option<u64> {
        u64::try_from(self.consensus_params.block.max_gas).ok()
    }

    /// Checks that `key` alone holds more than 2/3 of the power of the next block's validators.
    pub fn check_proposer_power(&self, key: &PublicKey) -> Result<(), ChainError> {
        let address = account::Id::from(*key);
        let total = self.validators.total_voting_power().value();
        let ours = self
            .validators
            .validator(address)
            .map_or(0, |v| v.power.value());
        if u128::from(ours) * 3 <= u128::from(total) * 2 {
            return Err(ChainError::NotEnoughPower {
                height: self.next_height(),
                address,
                ours,
                total,
            });
        }
        Ok(())
    }

    /// Builds the block for the next height.
    pub fn make_block(
        &self,
        txs: Vec<Vec<u8>>,
        last_commit: Option<Commit>,
        time: Time,
        proposer: account::Id,
    ) -> Result<Block, ChainError> {
        let height = Height::try_from(self.next_height()).map_err(|e| invalid("height", e))?;
        let header = Header {
            version: block::header::Version {
                block: BLOCK_PROTOCOL,
                app: self.app_version,
            },
            chain_id: self.chain_id.clone(),
            height,
            time,
            last_block_id: self.last_block_id,
            last_commit_hash: Some(commit_hash(last_commit.as_ref())),
            data_hash: Some(txs_hash(&txs)),
            validators_hash: self.validators.hash(),
            next_validators_hash: self.next_validators.hash(),
            consensus_hash: params_hash(&self.consensus_params),
            app_hash: self.app_hash.clone(),
            last_results_hash: self.last_results_hash,
            evidence_hash: Some(empty_hash()),
            proposer_address: proposer,
        };
        Ok(Block::new(
            header,
            txs,
            tendermint::evidence::List::default(),
            last_commit,
        ))
    }

    /// The state after `block` was finalized with `results` (`CometBFT`'s `state.Update`).
    ///
    /// Validator updates change `next_validators`, so they sign from height H+2; params updates
    /// apply to the next block.
    pub fn apply_block(
        &self,
        block: &Block,
        block_id: block::Id,
        results: &pb::abci::ResponseFinalizeBlock,
    ) -> Result<ChainState, ChainError> {
        let height = block.header.height.value();
        let next_validators = if results.validator_updates.is_empty() {
            self.next_validators.clone()
        } else {
            apply_validator_updates(&self.next_validators, &results.validator_updates, height)?
        };
        let mut consensus_params = self.consensus_params.clone();
        let mut app_version = self.app_version;
        if let Some(update) = &results.consensus_param_updates {
            consensus_params = update_params(&self.consensus_params, update, height)?;
            if let Some(version) = &consensus_params.version {
                app_version = version.app;
            }
        }
        Ok(ChainState {
            chain_id: self.chain_id.clone(),
            initial_height: self.initial_height,
            last_block_height: height,
            last_block_id: Some(block_id),
            last_block_time: block.header.time,
            app_version,
            last_validators: self.validators.clone(),
            validators: self.next_validators.clone(),
            next_validators,
            consensus_params,
            last_results_hash: Some(results_hash(&results.tx_results)),
            app_hash: AppHash::try_from(results.app_hash.to_vec())
                .map_err(|e| invalid("FinalizeBlock app_hash", e))?,
        })
    }
}

/// Applies ABCI validator updates to `set`: power 0 removes, any other power adds or sets.
pub fn apply_validator_updates(
    set: &validator::Set,
    updates: &[pb::abci::ValidatorUpdate],
    height: u64,
) -> Result<validator::Set, ChainError> {
    let bad = |message: String| ChainError::ValidatorUpdate { height, message };
    let mut by_address: BTreeMap<account::Id, validator::Info> = set
        .validators()
        .iter()
        .map(|v| (v.address, v.clone()))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for raw in updates {
        let update = validator::Update::try_from(raw.clone()).map_err(|e| bad(e.to_string()))?;
        let address = account::Id::from(update.pub_key);
        if !seen.insert(address) {
            return Err(bad(format!(
                "validator {address} is updated twice in one block"
            )));
        }
        if update.power.value() == 0 {
            if by_address.remove(&address).is_none() {
                return Err(bad(format!(
                    "cannot remove validator {address}: it is not in the set"
                )));
            }
        } else {
            by_address.insert(address, validator::Info::new(update.pub_key, update.power));
        }
    }
    if by_address.is_empty() {
        return Err(bad(
            "the update would leave the validator set empty".to_owned()
        ));
    }
    let total = by_address
        .values()
        .try_fold(0_u64, |acc, v| acc.checked_add(v.power.value()))
        .ok_or_else(|| bad("total voting power overflows".to_owned()))?;
    if total > validator::Set::MAX_TOTAL_VOTING_POWER {
        return Err(bad(format!(
            "total voting power {total} exceeds the maximum {}",
            validator::Set::MAX_TOTAL_VOTING_POWER
        )));
    }
    Ok(validator::Set::without_proposer(
        by_address.into_values().collect(),
    ))
}

fn update_params(
    current: &consensus::Params,
    update: &pb::types::ConsensusParams,
    height: u64,
) -> Result<consensus::Params, ChainError> {
    let mut raw = pb::types::ConsensusParams::from(current.clone());
    if let Some(block) = update.block {
        raw.block = Some(block);
    }
    if let Some(evidence) = update.evidence {
        raw.evidence = Some(evidence);
    }
    if let Some(validator) = update.validator.clone() {
        raw.validator = Some(validator);
    }
    if let Some(version) = update.version {
        raw.version = Some(version);
    }
    if let Some(abci) = update.abci {
        raw.abci = Some(abci);
    }
    consensus::Params::try_from(raw).map_err(|e| ChainError::Params {
        height,
        message: e.to_string(),
    })
}

/// SHA-256 of nothing: the Merkle root of an empty list.
pub fn empty_hash() -> Hash {
    Hash::Sha256(Sha256::digest([]).into())
}

fn merkle_root(leaves: &[Vec<u8>]) -> Hash {
    Hash::Sha256(merkle::simple_hash_from_byte_vectors::<MerkleSha256>(
        leaves,
    ))
}

/// `data_hash`: the Merkle root over the SHA-256 of each tx (`CometBFT` 0.38 `Txs.Hash`).
pub fn txs_hash(txs: &[Vec<u8>]) -> Hash {
    let leaves: Vec<Vec<u8>> = txs.iter().map(|tx| Sha256::digest(tx).to_vec()).collect();
    merkle_root(&leaves)
}

/// `last_commit_hash`: the Merkle root over the protobuf of each commit signature.
pub fn commit_hash(commit: Option<&Commit>) -> Hash {
    let leaves: Vec<Vec<u8>> = commit
        .map(|c| {
            c.signatures
                .iter()
                .map(|sig| pb::types::CommitSig::from(sig.clone()).encode_to_vec())
                .collect()
        })
        .unwrap_or_default();
    merkle_root(&leaves)
}

/// `last_results_hash`: the Merkle root over the deterministic part of each tx result
/// (code, data, gas wanted, gas used).
pub fn results_hash(results: &[pb::abci::ExecTxResult]) -> Hash {
    let leaves: Vec<Vec<u8>> = results
        .iter()
        .map(|r| {
            pb::abci::ExecTxResult {
                code: r.code,
                data: r.data.clone(),
                gas_wanted: r.gas_wanted,
                gas_used: r.gas_used,
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect();
    merkle_root(&leaves)
}

/// `consensus_hash`: SHA-256 of the `HashedParams` (block max bytes and max gas).
pub fn params_hash(params: &consensus::Params) -> Hash {
    let hashed = pb::types::HashedParams {
        block_max_bytes: i64::try_from(params.block.max_bytes).unwrap_or(i64::MAX),
        block_max_gas: params.block.max_gas,
    };
    Hash::Sha256(Sha256::digest(hashed.encode_to_vec()).into())
}

/// The block id: the header hash and the part set header of the protobuf-encoded block.
pub fn block_id(block: &Block) -> Result<block::Id, ChainError> {
    let bytes = pb::types::Block::from(block.clone()).encode_to_vec();
    let chunks: Vec<Vec<u8>> = bytes.chunks(BLOCK_PART_SIZE).map(<[u8]>::to_vec).collect();
    let total = u32::try_from(chunks.len().max(1)).map_err(|e| invalid("part count", e))?;
    let part_set_header = parts::Header::new(total, merkle_root(&chunks))
        .map_err(|e| invalid("part set header", e))?;
    Ok(block::Id {
        hash: block.header.hash(),
        part_set_header,
    })
}

/// Signs the precommit for `block_id` at `height` and builds the commit, with this node's
/// signature in its place in `validators` and every other validator absent.
pub fn sign_commit(
    key: &PrivateKey,
    chain_id: &chain::Id,
    height: Height,
    block_id: block::Id,
    timestamp: Time,
    validators: &validator::Set,
) -> Result<Commit, ChainError> {
    let signing = key
        .ed25519_signing_key()
        .ok_or_else(|| invalid("validator key", "only ed25519 keys can sign"))?;
    let signing =
        SigningKey::try_from(signing.as_bytes()).map_err(|e| invalid("validator key", e))?;
    let address = account::Id::from(key.public_key());
    let index = validators
        .validators()
        .iter()
        .position(|v| v.address == address)
        .ok_or_else(|| {
            invalid(
                "validator set",
                format!("{address} is not a validator at height {height}"),
            )
        })?;
    let vote = Vote {
        vote_type: vote::Type::Precommit,
        height,
        round: Round::default(),
        block_id: Some(block_id),
        timestamp: Some(timestamp),
        validator_address: address,
        validator_index: vote::ValidatorIndex::try_from(
            u32::try_from(index).map_err(|e| invalid("validator index", e))?,
        )
        .map_err(|e| invalid("validator index", e))?,
        signature: None,
        extension: Vec::new(),
        extension_signature: None,
    };
    let sign_bytes = vote.into_signable_vec(chain_id.clone());
    let signature = Signature::try_from(signing.sign(&sign_bytes).to_bytes().as_slice())
        .map_err(|e| invalid("signature", e))?;
    let signatures = validators
        .validators()
        .iter()
        .map(|v| {
            if v.address == address {
                CommitSig::BlockIdFlagCommit {
                    validator_address: address,
                    timestamp,
                    signature: Some(signature.clone()),
                }
            } else {
                CommitSig::BlockIdFlagAbsent
            }
        })
        .collect();
    Ok(Commit {
        height,
        round: Round::default(),
        block_id,
        signatures,
    })
}

/// The ABCI view of a commit: who signed the block before.
pub fn commit_info(commit: Option<&Commit>, validators: &validator::Set) -> pb::abci::CommitInfo {
    let Some(commit) = commit else {
        return pb::abci::CommitInfo::default();
    };
    let votes = validators
        .validators()
        .iter()
        .zip(&commit.signatures)
        .map(|(v, sig)| pb::abci::VoteInfo {
            validator: Some(pb::abci::Validator {
                address: v.address.as_bytes().to_vec().into(),
                power: i64::try_from(v.power.value()).unwrap_or(i64::MAX),
            }),
            block_id_flag: match sig {
                CommitSig::BlockIdFlagAbsent => pb::types::BlockIdFlag::Absent,
                CommitSig::BlockIdFlagCommit { .. } => pb::types::BlockIdFlag::Commit,
                CommitSig::BlockIdFlagNil { .. } => pb::types::BlockIdFlag::Nil,
            }
            .into(),
        })
        .collect();
    pb::abci::CommitInfo {
        round: commit.round.into(),
        votes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from_ed25519_consensus(SigningKey::from([seed; 32]))
    }

    fn update(key: &PrivateKey, power: i64) -> pb::abci::ValidatorUpdate {
        pb::abci::ValidatorUpdate {
            pub_key: Some(key.public_key().into()),
            power,
        }
    }

    fn set(entries: &[(&PrivateKey, u64)]) -> validator::Set {
        validator::Set::without_proposer(
            entries
                .iter()
                .map(|(k, p)| {
                    validator::Info::new(k.public_key(), vote::Power::try_from(*p).unwrap())
                })
                .collect(),
        )
    }

    #[test]
    fn empty_hashes_match_cometbft() {
        let expected = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        assert_eq!(txs_hash(&[]).to_string(), expected);
        assert_eq!(commit_hash(None).to_string(), expected);
        assert_eq!(results_hash(&[]).to_string(), expected);
    }

    #[test]
    fn validator_updates_table() {
        let (a, b, c) = (key(1), key(2), key(3));
        let base = set(&[(&a, 10), (&b, 5)]);
        // (updates, expected set or None for an error)
        let table: Vec<(Vec<pb::abci::ValidatorUpdate>, Option<validator::Set>)> = vec![
            (
                vec![update(&c, 1)],
                Some(set(&[(&a, 10), (&b, 5), (&c, 1)])),
            ),
            (vec![update(&b, 0)], Some(set(&[(&a, 10)]))),
            (vec![update(&a, 20)], Some(set(&[(&a, 20), (&b, 5)]))),
            (vec![update(&c, 0)], None),
            (vec![update(&a, 0), update(&b, 0)], None),
            (vec![update(&c, 1), update(&c, 2)], None),
            (vec![update(&a, -1)], None),
        ];
        for (updates, expected) in table {
            let got = apply_validator_updates(&base, &updates, 7);
            match expected {
                Some(set) => assert_eq!(got.unwrap().hash(), set.hash()),
                None => assert!(got.is_err(), "{updates:?}"),
            }
        }
    }

    #[test]
    fn init_chain_params_update_only_the_groups_they_set() {
        let mut state = genesis_state(set(&[(&key(1), 1)]));
        let before = state.consensus_params.clone();
        let response = pb::abci::ResponseInitChain {
            consensus_params: Some(pb::types::ConsensusParams {
                block: Some(pb::types::BlockParams {
                    max_bytes: 12_345,
                    max_gas: 99,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        state.apply_init_chain(&response).unwrap();
        assert_eq!(state.consensus_params.block.max_bytes, 12_345);
        assert_eq!(state.consensus_params.block.max_gas, 99);
        assert_eq!(state.consensus_params.evidence, before.evidence);
        assert_eq!(state.consensus_params.validator, before.validator);
        assert_eq!(state.consensus_params.abci, before.abci);
    }

    fn genesis_state(vals: validator::Set) -> ChainState {
        ChainState {
            chain_id: "c".parse().unwrap(),
            initial_height: 1,
            last_block_height: 0,
            last_block_id: None,
            last_block_time: Time::unix_epoch(),
            app_version: 0,
            last_validators: validator::Set::without_proposer(vec![]),
            next_validators: vals.clone(),
            validators: vals,
            consensus_params: consensus::Params {
                block: block::Size {
                    max_bytes: 1 << 20,
                    max_gas: -1,
                    time_iota_ms: 1000,
                },
                evidence: tendermint::evidence::Params {
                    max_age_num_blocks: 1,
                    max_age_duration: tendermint::evidence::Duration(
                        std::time::Duration::from_secs(1),
                    ),
                    max_bytes: 0,
                },
                validator: consensus::params::ValidatorParams {
                    pub_key_types: vec![tendermint::public_key::Algorithm::Ed25519],
                },
                version: None,
                abci: consensus::params::AbciParams::default(),
            },
            last_results_hash: None,
            app_hash: AppHash::default(),
        }
    }

    #[test]
    fn proposer_power_must_exceed_two_thirds() {
        let (a, b) = (key(1), key(2));
        assert!(genesis_state(set(&[(&a, 3), (&b, 1)]))
            .check_proposer_power(&a.public_key())
            .is_ok());
        assert!(genesis_state(set(&[(&a, 2), (&b, 1)]))
            .check_proposer_power(&a.public_key())
            .is_err());
        assert!(genesis_state(set(&[(&b, 1)]))
            .check_proposer_power(&a.public_key())
            .is_err());
    }
}
