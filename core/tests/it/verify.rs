//! Sequencer blocks and `verify_filtered_block`: valid blocks built from real
//! CometBFT headers, and one failing case per `VerifyError` variant.

use sha2::{Digest as _, Sha256};
use tandem_core::merkle::{data_hash, MerkleTree, ProofError};
use tandem_core::{
    commitment_item_bytes, verify_filtered_block, BlockCommitments, BlockError,
    FilteredSequencerBlock, RollupData, RollupId, SequencerBlock, SequencerBlockHeader,
    VerifyError,
};
use tandem_proto::sequencerblock::v1 as raw;
use tendermint::block::{header::Version, Header, Height};
use tendermint::{account, AppHash, Hash, Time};

/// A real CometBFT header over `txs`.
pub(crate) fn cometbft_header(txs: &[Vec<u8>]) -> Header {
    Header {
        version: Version { block: 11, app: 1 },
        chain_id: "tandem-test".parse().expect("valid chain id"),
        height: Height::from(42u32),
        time: Time::from_unix_timestamp(1_700_000_000, 250_000_000).expect("valid time"),
        last_block_id: None,
        last_commit_hash: Some(Hash::Sha256([3; 32])),
        data_hash: Some(Hash::Sha256(data_hash(txs))),
        validators_hash: Hash::Sha256([4; 32]),
        next_validators_hash: Hash::Sha256([4; 32]),
        consensus_hash: Hash::Sha256([5; 32]),
        app_hash: AppHash::try_from(vec![6; 32]).expect("valid app hash"),
        last_results_hash: None,
        evidence_hash: None,
        proposer_address: account::Id::new([7; 20]),
    }
}

fn block_hash(header: &Header) -> [u8; 32] {
    header
        .hash()
        .as_bytes()
        .try_into()
        .expect("header hash is 32 bytes")
}

pub(crate) fn rollup(name: &str) -> RollupId {
    RollupId::from_name(name)
}

/// A block as tandemd would build it: the ordered `(rollup, data)` items of
/// its user txs, the commitment item first, then one opaque tx per item.
pub(crate) struct Fixture {
    pub(crate) header: Header,
    pub(crate) block: SequencerBlock,
}

impl Fixture {
    pub(crate) fn new(items: &[(RollupId, &[u8])]) -> Self {
        let rollup_data = RollupData::from_items(items.iter().map(|(id, d)| (*id, d.to_vec())));
        let mut txs = vec![commitment_item_bytes(&rollup_data.commitments())];
        txs.extend(
            items
                .iter()
                .enumerate()
                .map(|(i, (_, d))| [format!("user tx {i}:").as_bytes(), d].concat()),
        );
        let header = cometbft_header(&txs);
        let seq_header =
            SequencerBlockHeader::from_cometbft_header(&header).expect("header has data_hash");
        let block = SequencerBlock::new(seq_header, block_hash(&header), &txs, rollup_data)
            .expect("consistent block");
        Self { header, block }
    }

    /// Three rollups `a`, `b`, `c` (c has no data) with interleaved items.
    pub(crate) fn standard() -> Self {
        Self::new(&[
            (rollup("a"), b"a-0"),
            (rollup("b"), b"b-0"),
            (rollup("a"), b"a-1"),
            (rollup("d"), b"d-0"),
            (rollup("a"), b"a-2"),
        ])
    }

    pub(crate) fn filtered_raw(&self, ids: &[RollupId]) -> raw::FilteredSequencerBlock {
        self.block.to_filtered(ids).to_raw()
    }

    pub(crate) fn verify_raw(
        &self,
        raw: raw::FilteredSequencerBlock,
        ids: &[RollupId],
    ) -> Result<tandem_core::VerifiedRollupData, VerifyError> {
        let block = FilteredSequencerBlock::try_from_raw(raw).expect("well-formed raw block");
        verify_filtered_block(&self.header, &block, ids)
    }
}

fn a_b_d() -> [RollupId; 3] {
    [rollup("a"), rollup("b"), rollup("d")]
}

// ---------------------------------------------------------------- valid

#[test]
fn a_rollup_with_transactions_gets_them_in_order() {
    let fx = Fixture::standard();
    let a = rollup("a");
    let verified = fx.verify_raw(fx.filtered_raw(&[a]), &[a]).expect("valid");
    assert_eq!(
        verified.transactions(&a),
        Some(&[b"a-0".to_vec(), b"a-1".to_vec(), b"a-2".to_vec()][..])
    );
    assert_eq!(verified.height(), 42);
    assert_eq!(verified.block_hash(), &block_hash(&fx.header));
    assert_eq!(verified.time(), fx.header.time);
    assert_eq!(verified.iter().len(), 1);
}

#[test]
fn an_absent_rollup_gets_an_empty_list() {
    let fx = Fixture::standard();
    let c = rollup("c");
    let raw = fx.filtered_raw(&[c]);
    assert!(raw.rollup_transactions.is_empty());
    let verified = fx.verify_raw(raw, &[c]).expect("valid");
    assert_eq!(verified.transactions(&c), Some(&[][..]));
}

#[test]
fn several_rollups_at_once() {
    let fx = Fixture::standard();
    let ids = [rollup("d"), rollup("c"), rollup("a"), rollup("b")];
    let verified = fx.verify_raw(fx.filtered_raw(&ids), &ids).expect("valid");
    assert_eq!(verified.iter().len(), 4);
    assert_eq!(
        verified.transactions(&rollup("b")),
        Some(&[b"b-0".to_vec()][..])
    );
    assert_eq!(
        verified.transactions(&rollup("d")),
        Some(&[b"d-0".to_vec()][..])
    );
    assert_eq!(verified.transactions(&rollup("c")), Some(&[][..]));
    assert_eq!(verified.transactions(&rollup("a")).map(<[_]>::len), Some(3));
    assert_eq!(verified.transactions(&rollup("zzz")), None);
}

#[test]
fn a_block_without_rollup_data_verifies() {
    let fx = Fixture::new(&[]);
    let a = rollup("a");
    let raw = fx.filtered_raw(&[a]);
    assert!(raw.all_rollup_ids.is_empty());
    let verified = fx.verify_raw(raw, &[a]).expect("valid");
    assert_eq!(verified.transactions(&a), Some(&[][..]));
}

#[test]
fn a_large_block_verifies() {
    let names: Vec<String> = (0..40).map(|i| format!("rollup-{i}")).collect();
    let data: Vec<Vec<u8>> = (0..300usize)
        .map(|i| vec![i.to_le_bytes()[0]; i % 50])
        .collect();
    let items: Vec<(RollupId, &[u8])> = data
        .iter()
        .enumerate()
        .map(|(i, d)| (rollup(&names[i % names.len()]), d.as_slice()))
        .collect();
    let fx = Fixture::new(&items);
    for name in &names {
        let id = rollup(name);
        let verified = fx.verify_raw(fx.filtered_raw(&[id]), &[id]).expect("valid");
        let expected: Vec<Vec<u8>> = items
            .iter()
            .filter(|(r, _)| *r == id)
            .map(|(_, d)| d.to_vec())
            .collect();
        assert_eq!(verified.transactions(&id), Some(expected.as_slice()));
    }
}

// ---------------------------------------------------------- wire forms

#[test]
fn wire_forms_round_trip() {
    let fx = Fixture::standard();
    let raw_block = fx.block.to_raw();
    assert_eq!(
        SequencerBlock::try_from_raw(raw_block).as_ref(),
        Ok(&fx.block)
    );
    let filtered = fx.block.to_filtered(&a_b_d());
    assert_eq!(
        FilteredSequencerBlock::try_from_raw(filtered.to_raw()),
        Ok(filtered)
    );
    let header = fx.block.header().clone();
    assert_eq!(
        SequencerBlockHeader::try_from_raw(header.to_raw()),
        Ok(header)
    );
    assert_eq!(fx.block.height(), 42);
    assert_eq!(fx.block.rollup_ids().len(), 3);
}

#[test]
fn raw_header_rejections() {
    type Mutate = fn(&mut raw::SequencerBlockHeader);
    type Check = fn(&BlockError) -> bool;
    let good = Fixture::standard().block.header().to_raw();
    let cases: [(Mutate, Check); 7] = [
        (
            |h| h.chain_id = String::new(),
            |e| matches!(e, BlockError::ChainIdLength { len: 0 }),
        ),
        (
            |h| h.chain_id = "x".repeat(51),
            |e| matches!(e, BlockError::ChainIdLength { len: 51 }),
        ),
        (|h| h.height = 0, |e| matches!(e, BlockError::ZeroHeight)),
        (
            |h| h.height = u64::MAX,
            |e| matches!(e, BlockError::HeightOutOfRange(_)),
        ),
        (
            |h| h.time = None,
            |e| matches!(e, BlockError::MissingField("time")),
        ),
        (
            |h| h.time = Some(prost_types_timestamp(0, 1_000_000_000)),
            |e| matches!(e, BlockError::InvalidTime { .. }),
        ),
        (
            |h| h.data_hash.truncate(31),
            |e| {
                matches!(
                    e,
                    BlockError::FieldLength {
                        field: "data_hash",
                        len: 31,
                        expected: 32
                    }
                )
            },
        ),
    ];
    for (i, (mutate, check)) in cases.iter().enumerate() {
        let mut raw = good.clone();
        mutate(&mut raw);
        let err = SequencerBlockHeader::try_from_raw(raw).expect_err("malformed header");
        assert!(check(&err), "case {i}: {err:?}");
    }
    let mut raw = good;
    raw.proposer_address.push(0);
    assert!(matches!(
        SequencerBlockHeader::try_from_raw(raw),
        Err(BlockError::FieldLength {
            field: "proposer_address",
            ..
        })
    ));
}

fn prost_types_timestamp(seconds: i64, nanos: i32) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos }
}

#[test]
fn raw_filtered_block_rejections() {
    let fx = Fixture::standard();
    let good = fx.filtered_raw(&a_b_d());

    let mut raw = good.clone();
    raw.block_hash.pop();
    assert!(matches!(
        FilteredSequencerBlock::try_from_raw(raw),
        Err(BlockError::FieldLength {
            field: "block_hash",
            ..
        })
    ));
    let mut raw = good.clone();
    raw.header = None;
    assert!(matches!(
        FilteredSequencerBlock::try_from_raw(raw),
        Err(BlockError::MissingField("header"))
    ));
    let mut raw = good.clone();
    raw.commitment_proof = None;
    assert!(matches!(
        FilteredSequencerBlock::try_from_raw(raw),
        Err(BlockError::MissingField("commitment_proof"))
    ));
    let mut raw = good.clone();
    raw.commitment_item = vec![0; 257];
    assert!(matches!(
        FilteredSequencerBlock::try_from_raw(raw),
        Err(BlockError::CommitmentItemTooLarge { len: 257, .. })
    ));
    let mut raw = good.clone();
    raw.all_rollup_ids[2].push(1);
    assert!(matches!(
        FilteredSequencerBlock::try_from_raw(raw),
        Err(BlockError::RollupId {
            field: "all_rollup_ids",
            index: 2,
            ..
        })
    ));
    let mut raw = good.clone();
    raw.rollup_transactions[1].rollup_id.clear();
    assert!(matches!(
        FilteredSequencerBlock::try_from_raw(raw),
        Err(BlockError::RollupId {
            field: "rollup_transactions",
            index: 1,
            ..
        })
    ));
    let mut raw = good.clone();
    raw.rollup_transactions[0].proof = None;
    assert!(matches!(
        FilteredSequencerBlock::try_from_raw(raw),
        Err(BlockError::MissingField("rollup_transactions.proof"))
    ));
    let mut raw = good;
    raw.rollup_transactions[0]
        .proof
        .as_mut()
        .expect("proof")
        .audit_path = vec![vec![0; 32]; 65];
    assert!(matches!(
        FilteredSequencerBlock::try_from_raw(raw),
        Err(BlockError::Proof {
            field: "rollup_transactions.proof",
            ..
        })
    ));
}

#[test]
fn raw_whole_block_is_rechecked() {
    let fx = Fixture::standard();
    let good = fx.block.to_raw();

    let mut raw = good.clone();
    raw.rollup_transactions.swap(0, 1);
    assert!(matches!(
        SequencerBlock::try_from_raw(raw),
        Err(BlockError::UnsortedRollups { index: 1, .. })
    ));
    let mut raw = good.clone();
    raw.rollup_transactions[0]
        .transactions
        .push(b"extra".to_vec());
    assert!(matches!(
        SequencerBlock::try_from_raw(raw),
        Err(BlockError::CommitmentsMismatch)
    ));
    let mut raw = good.clone();
    raw.rollup_transactions.remove(2);
    assert!(matches!(
        SequencerBlock::try_from_raw(raw),
        Err(BlockError::CommitmentsMismatch)
    ));
    let mut raw = good.clone();
    raw.commitment_item[10] ^= 1;
    assert!(matches!(
        SequencerBlock::try_from_raw(raw),
        Err(BlockError::CommitmentProof(ProofError::RootMismatch { .. }))
    ));
    let mut raw = good.clone();
    let proof = raw.rollup_transactions[1].proof.as_mut().expect("proof");
    proof.audit_path[0][0] ^= 1;
    assert!(matches!(
        SequencerBlock::try_from_raw(raw),
        Err(BlockError::RollupProof { .. })
    ));
    let mut raw = good;
    raw.commitment_item = b"not a data item".to_vec();
    assert!(matches!(
        SequencerBlock::try_from_raw(raw),
        Err(BlockError::CommitmentItem(_))
    ));
}

#[test]
fn sequencer_block_new_rejections() {
    let items = [
        (rollup("a"), b"a-0".to_vec()),
        (rollup("b"), b"b-0".to_vec()),
    ];
    let rollup_data = RollupData::from_items(items.clone());
    let txs = vec![
        commitment_item_bytes(&rollup_data.commitments()),
        b"tx".to_vec(),
    ];
    let header = cometbft_header(&txs);
    let seq_header = SequencerBlockHeader::from_cometbft_header(&header).expect("data_hash");

    assert!(matches!(
        SequencerBlock::new(seq_header.clone(), [0; 32], &[], rollup_data.clone()),
        Err(BlockError::NoTransactions)
    ));
    assert!(matches!(
        SequencerBlock::new(seq_header.clone(), [0; 32], &txs[..1], rollup_data.clone()),
        Err(BlockError::DataHashMismatch { .. })
    ));
    let other_data = RollupData::from_items(items.into_iter().take(1));
    assert!(matches!(
        SequencerBlock::new(seq_header.clone(), [0; 32], &txs, other_data),
        Err(BlockError::CommitmentsMismatch)
    ));
    let bad_txs = vec![b"garbage".to_vec(), b"tx".to_vec()];
    let mut bad_header = seq_header.clone();
    bad_header.data_hash = data_hash(&bad_txs);
    assert!(matches!(
        SequencerBlock::new(bad_header, [0; 32], &bad_txs, rollup_data.clone()),
        Err(BlockError::CommitmentItem(_))
    ));
    let mut no_data_hash = header;
    no_data_hash.data_hash = None;
    assert!(matches!(
        SequencerBlockHeader::from_cometbft_header(&no_data_hash),
        Err(BlockError::MissingField("data_hash"))
    ));
    assert!(SequencerBlock::new(seq_header.clone(), [0; 32], &txs, rollup_data.clone()).is_ok());

    // Built from tx hashes, the block is the same as built from the txs.
    let hashes: Vec<[u8; 32]> = txs.iter().map(|tx| Sha256::digest(tx).into()).collect();
    let tree = MerkleTree::from_tx_hashes(&hashes);
    assert_eq!(tree.root(), seq_header.data_hash);
    assert_eq!(
        SequencerBlock::from_tx_tree(
            seq_header.clone(),
            [0; 32],
            txs[0].clone(),
            &tree,
            rollup_data.clone()
        )
        .unwrap(),
        SequencerBlock::new(seq_header.clone(), [0; 32], &txs, rollup_data.clone()).unwrap()
    );
    // A commitment item that is not leaf 0 of the tree is refused.
    let swapped = MerkleTree::from_tx_hashes(&[hashes[1], hashes[0]]);
    let mut swapped_header = seq_header;
    swapped_header.data_hash = swapped.root();
    assert!(matches!(
        SequencerBlock::from_tx_tree(
            swapped_header,
            [0; 32],
            txs[0].clone(),
            &swapped,
            rollup_data
        ),
        Err(BlockError::CommitmentProof(_))
    ));
}

// ------------------------------------------- one failure per VerifyError

#[test]
fn block_hash_mismatch() {
    let fx = Fixture::standard();
    let mut raw = fx.filtered_raw(&a_b_d());
    raw.block_hash[0] ^= 1;
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::BlockHashMismatch { .. })
    ));
}

fn raw_header(raw: &mut raw::FilteredSequencerBlock) -> &mut raw::SequencerBlockHeader {
    raw.header.as_mut().expect("header")
}

#[test]
fn height_mismatch() {
    let fx = Fixture::standard();
    let mut raw = fx.filtered_raw(&a_b_d());
    raw_header(&mut raw).height = 43;
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::HeightMismatch {
            header: 42,
            block: 43
        })
    ));
}

#[test]
fn chain_id_mismatch() {
    let fx = Fixture::standard();
    let mut raw = fx.filtered_raw(&a_b_d());
    raw_header(&mut raw).chain_id = "other-chain".into();
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::ChainIdMismatch { .. })
    ));
}

#[test]
fn time_mismatch() {
    let fx = Fixture::standard();
    let mut raw = fx.filtered_raw(&a_b_d());
    raw_header(&mut raw).time.as_mut().expect("time").seconds += 1;
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::TimeMismatch { .. })
    ));
}

#[test]
fn proposer_mismatch() {
    let fx = Fixture::standard();
    let mut raw = fx.filtered_raw(&a_b_d());
    raw_header(&mut raw).proposer_address[0] ^= 1;
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::ProposerMismatch { .. })
    ));
}

#[test]
fn data_hash_mismatch() {
    let fx = Fixture::standard();
    let mut raw = fx.filtered_raw(&a_b_d());
    raw_header(&mut raw).data_hash[5] ^= 1;
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::DataHashMismatch { .. })
    ));
}

#[test]
fn missing_data_hash() {
    let mut fx = Fixture::standard();
    fx.header.data_hash = None;
    let mut raw = fx.filtered_raw(&a_b_d());
    raw.block_hash = block_hash(&fx.header).to_vec();
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::MissingDataHash)
    ));
}

#[test]
fn commitment_not_first() {
    let fx = Fixture::standard();
    let mut raw = fx.filtered_raw(&a_b_d());
    raw.commitment_proof.as_mut().expect("proof").leaf_index = 1;
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::CommitmentNotFirst { leaf_index: 1 })
    ));
}

#[test]
fn commitment_item_not_proven() {
    let fx = Fixture::standard();
    // A forged item claiming other roots.
    let mut raw = fx.filtered_raw(&a_b_d());
    raw.commitment_item = commitment_item_bytes(&BlockCommitments {
        rollup_transactions_root: [1; 32],
        rollup_ids_root: [2; 32],
    });
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::CommitmentItemNotProven(
            ProofError::RootMismatch { .. }
        ))
    ));
    // A tampered path.
    let mut raw = fx.filtered_raw(&a_b_d());
    raw.commitment_proof.as_mut().expect("proof").audit_path[1][31] ^= 0x80;
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::CommitmentItemNotProven(
            ProofError::RootMismatch { .. }
        ))
    ));
    // A path of the wrong length.
    let mut raw = fx.filtered_raw(&a_b_d());
    raw.commitment_proof
        .as_mut()
        .expect("proof")
        .audit_path
        .pop();
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::CommitmentItemNotProven(
            ProofError::PathLength { .. }
        ))
    ));
}

/// A block whose `txs[0]` is proven by `data_hash` but is not a commitment
/// item (a proposer that broke the block layout).
#[test]
fn malformed_commitment_item() {
    let txs = vec![b"not a DataItem".to_vec(), b"user tx".to_vec()];
    let header = cometbft_header(&txs);
    let tree = MerkleTree::from_txs(&txs);
    let raw = raw::FilteredSequencerBlock {
        block_hash: block_hash(&header).to_vec(),
        header: Some(
            SequencerBlockHeader::from_cometbft_header(&header)
                .expect("data_hash")
                .to_raw(),
        ),
        commitment_item: txs[0].clone(),
        commitment_proof: Some(tree.proof(0).expect("tx 0").to_raw()),
        rollup_transactions: vec![],
        all_rollup_ids: vec![],
    };
    let block = FilteredSequencerBlock::try_from_raw(raw).expect("well-formed");
    assert!(matches!(
        verify_filtered_block(&header, &block, &[rollup("a")]),
        Err(VerifyError::MalformedCommitmentItem(_))
    ));
}

#[test]
fn unsorted_rollup_ids() {
    let fx = Fixture::standard();
    let mut raw = fx.filtered_raw(&a_b_d());
    raw.all_rollup_ids.swap(0, 2);
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::UnsortedRollupIds { index: 1, .. })
    ));
    let mut raw = fx.filtered_raw(&a_b_d());
    let first = raw.all_rollup_ids[0].clone();
    raw.all_rollup_ids.insert(0, first);
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::UnsortedRollupIds { index: 1, .. })
    ));
}

/// Hiding a rollup's data by claiming it is absent.
#[test]
fn rollup_ids_root_mismatch() {
    let fx = Fixture::standard();
    let a = rollup("a");
    let mut raw = fx.filtered_raw(&[a]);
    raw.rollup_transactions.clear();
    raw.all_rollup_ids
        .retain(|id| id.as_slice() != a.as_bytes());
    assert_eq!(raw.all_rollup_ids.len(), 2);
    assert!(matches!(
        fx.verify_raw(raw, &[a]),
        Err(VerifyError::RollupIdsRootMismatch { .. })
    ));
}

#[test]
fn reordered_rollup_entries() {
    let fx = Fixture::standard();
    let mut raw = fx.filtered_raw(&a_b_d());
    raw.rollup_transactions.swap(1, 2);
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::ReorderedRollupEntries { index: 2, .. })
    ));
    // A duplicated entry is out of order too.
    let mut raw = fx.filtered_raw(&a_b_d());
    let first = raw.rollup_transactions[0].clone();
    raw.rollup_transactions.insert(1, first);
    assert!(matches!(
        fx.verify_raw(raw, &a_b_d()),
        Err(VerifyError::ReorderedRollupEntries { index: 1, .. })
    ));
}

#[test]
fn unexpected_rollup() {
    let fx = Fixture::standard();
    let (a, b) = (rollup("a"), rollup("b"));
    let raw = fx.filtered_raw(&[a, b]);
    let err = fx.verify_raw(raw, &[a]).expect_err("b was not requested");
    assert!(matches!(err, VerifyError::UnexpectedRollup { rollup_id } if rollup_id == b));
}

#[test]
fn rollup_not_in_block() {
    let fx = Fixture::standard();
    let c = rollup("c");
    let mut raw = fx.filtered_raw(&[c]);
    // An invented entry for c, which has no data in the block.
    let mut invented = fx.filtered_raw(&[rollup("b")]).rollup_transactions[0].clone();
    invented.rollup_id = c.as_bytes().to_vec();
    raw.rollup_transactions.push(invented);
    let err = fx.verify_raw(raw, &[c]).expect_err("c has no data");
    assert!(matches!(err, VerifyError::RollupNotInBlock { rollup_id } if rollup_id == c));
}

#[test]
fn missing_rollup() {
    let fx = Fixture::standard();
    let ids = a_b_d();
    let mut raw = fx.filtered_raw(&ids);
    raw.rollup_transactions.remove(1);
    assert!(matches!(
        fx.verify_raw(raw, &ids),
        Err(VerifyError::MissingRollup { .. })
    ));
}

#[test]
fn rollup_proof_position() {
    let fx = Fixture::standard();
    let ids = a_b_d();
    let mut raw = fx.filtered_raw(&ids);
    raw.rollup_transactions[0]
        .proof
        .as_mut()
        .expect("proof")
        .leaf_index = 1;
    assert!(matches!(
        fx.verify_raw(raw, &ids),
        Err(VerifyError::RollupProofPosition { leaf_index: 1, .. })
    ));
    let mut raw = fx.filtered_raw(&ids);
    raw.rollup_transactions[2]
        .proof
        .as_mut()
        .expect("proof")
        .tree_size = 4;
    assert!(matches!(
        fx.verify_raw(raw, &ids),
        Err(VerifyError::RollupProofPosition {
            tree_size: 4,
            expected_size: 3,
            ..
        })
    ));
}

#[test]
fn rollup_transactions_not_proven() {
    type Tamper = fn(&mut raw::RollupTransactions);
    let fx = Fixture::standard();
    let a = rollup("a");
    let tampers: [(&str, Tamper); 6] = [
        ("tx changed", |e| e.transactions[1][0] ^= 1),
        ("tx removed", |e| {
            e.transactions.pop();
        }),
        ("tx added", |e| e.transactions.push(b"a-3".to_vec())),
        ("txs reordered", |e| e.transactions.swap(0, 2)),
        ("path bit flipped", |e| {
            e.proof.as_mut().expect("proof").audit_path[0][9] ^= 4;
        }),
        ("path shortened", |e| {
            e.proof.as_mut().expect("proof").audit_path.pop();
        }),
    ];
    for (what, tamper) in tampers {
        let mut raw = fx.filtered_raw(&[a]);
        tamper(&mut raw.rollup_transactions[0]);
        let err = fx.verify_raw(raw, &[a]).expect_err(what);
        assert!(
            matches!(err, VerifyError::RollupTransactionsNotProven { rollup_id, .. } if rollup_id == a),
            "{what}: {err:?}"
        );
    }
}
