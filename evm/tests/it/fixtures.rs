//! Roots and hashes checked against independent computations: two published genesis blocks
//! (Sepolia, London; Hoodi, Cancun) and alloy's own root functions over what the RPC serves.

use alloy_consensus::{
    proofs::{calculate_receipt_root, calculate_transaction_root, calculate_withdrawals_root},
    ReceiptEnvelope, TxEnvelope,
};
use alloy_primitives::{b256, Address, Bytes, TxKind, U256};
use serde_json::json;

use crate::support::{produce_block, raw, sign_1559, signer, TestNode, DEV_KEY};

/// Sepolia's genesis (public chain data: the allocation and header fields of its genesis.json,
/// the fork schedule of its chain config, London from block 0) gives its published state root and
/// genesis block hash.
#[test]
fn sepolia_genesis_hash_and_state_root_match_the_published_values() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures/sepolia_genesis.json");
    let genesis = tandem_evm::genesis::load_genesis(&path).unwrap();
    let header = tandem_evm::genesis::genesis_header(&genesis).unwrap();
    assert_eq!(
        header.state_root,
        b256!("5eb6e371a698b8d68f665192350ffcecbbbf322916f4b51bd79bb6887da3f494")
    );
    assert_eq!(
        header.hash_slow(),
        b256!("25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9")
    );
    assert_eq!(
        header.hash_slow(),
        alloy_consensus::constants::SEPOLIA_GENESIS_HASH
    );
    // Sepolia is not a Cancun-from-genesis chain, so the engine refuses to run it.
    assert!(tandem_evm::Chain::open(&genesis, None).is_err());
}

/// Hoodi's genesis (eth-clients/hoodi `metadata/genesis.json`, MIT; public chain data) is a
/// merged, Shanghai- and Cancun-from-genesis chain, as this engine requires: its header carries
/// the withdrawals root, the blob gas fields and the parent beacon block root, and its
/// allocation holds system contracts with code and storage. The engine opens it and computes
/// its published genesis block hash.
#[test]
fn hoodi_genesis_opens_with_its_published_cancun_block_hash() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/fixtures/hoodi_genesis.json");
    let mut genesis = tandem_evm::genesis::load_genesis(&path).unwrap();
    let published = b256!("bbe312868b376a3001692a646dd2d7d1e4406380dfd86b98aa8a34d1557c971b");
    let header = tandem_evm::genesis::genesis_header(&genesis).unwrap();
    assert_eq!(header.hash_slow(), published);
    assert_eq!(
        header.parent_beacon_block_root,
        Some(alloy_primitives::B256::ZERO)
    );
    assert_eq!(
        (header.blob_gas_used, header.excess_blob_gas),
        (Some(0), Some(0))
    );
    // Prague comes later on Hoodi (not at genesis, so the genesis block is unchanged), and this
    // engine runs no fork after Cancun: it refuses the schedule as published...
    assert!(tandem_evm::Chain::open(&genesis, None).is_err());
    // ...and runs it without Prague, from the same genesis block.
    genesis.config.prague_time = None;
    let chain = tandem_evm::Chain::open(&genesis, None).unwrap();
    assert_eq!(chain.genesis_hash(), published);
}

#[test]
fn dev_genesis_state_root_matches_alloy_trie() {
    let genesis = tandem_evm::genesis::dev_genesis();
    let header = tandem_evm::genesis::genesis_header(&genesis).unwrap();
    let reference = alloy_trie::root::state_root_ref_unhashed(&genesis.alloc);
    assert_eq!(header.state_root, reference);
}

#[tokio::test]
async fn served_block_roots_match_alloy_root_functions() {
    let node = TestNode::start().await;
    let dev = signer(DEV_KEY);
    let genesis = node
        .rpc("eth_getBlockByNumber", json!(["0x0", false]))
        .await
        .unwrap();
    let parent = serde_json::from_value(genesis["hash"].clone()).unwrap();
    let txs: Vec<Bytes> = (0..3)
        .map(|n| {
            raw(&sign_1559(
                &dev,
                n,
                TxKind::Call(Address::repeat_byte(5)),
                U256::from(n),
                Bytes::new(),
                21_000,
            ))
        })
        .collect();
    produce_block(&node, parent, 1_700_000_000, &txs, true).await;

    let block: alloy_rpc_types_eth::Block = serde_json::from_value(
        node.rpc("eth_getBlockByNumber", json!(["0x1", true]))
            .await
            .unwrap(),
    )
    .unwrap();
    let transactions: Vec<TxEnvelope> = block
        .transactions
        .txns()
        .map(|tx| tx.inner.clone().into_inner())
        .collect();
    assert_eq!(
        block.header.transactions_root,
        calculate_transaction_root(&transactions)
    );
    let mut receipts = Vec::new();
    for tx in &transactions {
        let receipt: alloy_rpc_types_eth::TransactionReceipt = serde_json::from_value(
            node.rpc("eth_getTransactionReceipt", json!([tx.tx_hash()]))
                .await
                .unwrap(),
        )
        .unwrap();
        let consensus: ReceiptEnvelope = receipt.inner.map_logs(|log| log.inner);
        receipts.push(consensus);
    }
    assert_eq!(
        block.header.receipts_root,
        calculate_receipt_root(&receipts)
    );
    assert_eq!(
        block.header.withdrawals_root,
        Some(calculate_withdrawals_root(&[]))
    );
    assert_eq!(block.header.inner.hash_slow(), block.header.hash);
    node.stop().await;
}
