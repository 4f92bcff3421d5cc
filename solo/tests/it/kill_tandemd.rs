//! SIGKILL the `tandem-solo` binary, the `tandemd` binary or both at random moments, 20 times,
//! while real signed txs flow. The chain must resume every time with no gap and no duplicate
//! height, and its app hashes must be those of an uninterrupted run of the same blocks: a
//! fresh `tandemd` is fed the killed chain's blocks over ABCI (`InitChain` as the host sends
//! it, then FinalizeBlock and Commit per height) and must report the same app hash at every
//! height.
//!
//! `tandemd` writes its height into state, so its app hash changes every block and the host
//! makes blocks continuously; how txs fall into blocks therefore depends on timing, which is
//! why the reference run replays the blocks rather than the txs.

use std::time::Duration;

use tandem_core::{Message, RollupId, SigningKey, SubmitRollupData, TxBuilder, NATIVE_DENOM};
use tendermint_proto::v0_38::abci::{CommitInfo, RequestFinalizeBlock};
use tendermint_rpc::Client;

use crate::{
    kill::{
        chain, free_port, seeded_rng, send_tx_until_committed, submit_while_killing, Restartable,
        Solo,
    },
    support::{eventually, write_tandemd_home, Tandemd, CHAIN_ID},
};

const DEADLINE: Duration = Duration::from_mins(1);

fn signer() -> SigningKey {
    SigningKey::secp256k1_from_seed(b"kill-test-signer")
}

/// Tx `i` of the run: account 0 (the only genesis account) at sequence `i`, one rollup item.
fn tx(i: usize) -> Vec<u8> {
    let key = signer();
    TxBuilder::new(CHAIN_ID, 0, u64::try_from(i).unwrap())
        .message(Message::SubmitRollupData(SubmitRollupData {
            signer: key.address(),
            rollup_id: RollupId::from_name(&format!("rollup-{}", i % 3)),
            data: format!("item {i}").into_bytes(),
        }))
        .fee(1_000_000)
        .sign(&key)
        .expect("signing with a valid key")
}

fn app_state() -> serde_json::Value {
    let key = signer();
    serde_json::json!({
        "accounts": [{
            "address": key.address().to_string(),
            "coins": [{"denom": NATIVE_DENOM, "amount": "1000000000000000"}]
        }],
        "params": tandem_core::Params::default(),
        "authority": key.address().to_string(),
        "fee_collector": SigningKey::secp256k1_from_seed(b"kill-test-fees").address().to_string(),
    })
}

/// App hashes after `InitChain` and after each of `blocks`, from a fresh `tandemd` that is
/// never interrupted.
async fn reference_app_hashes(
    genesis_home: &std::path::Path,
    blocks: Vec<Vec<Vec<u8>>>,
) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let mut app = Tandemd::init(dir.path()).await;
    let abci = app.start().await;
    let genesis: tendermint::Genesis<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(genesis_home.join("config/genesis.json")).unwrap(),
    )
    .unwrap();
    let init = tandem_solo::init_chain_request(&genesis).unwrap();
    let time = genesis.genesis_time;
    let hashes = tokio::task::spawn_blocking(move || {
        let mut client = tendermint_abci::ClientBuilder::default()
            .connect(abci)
            .unwrap();
        let mut hashes = vec![client.init_chain(init).unwrap().app_hash.to_vec()];
        for (i, txs) in blocks.into_iter().enumerate() {
            let height = i64::try_from(i + 1).unwrap();
            let finalized = client
                .finalize_block(RequestFinalizeBlock {
                    txs: txs.into_iter().map(Into::into).collect(),
                    hash: vec![0; 32].into(),
                    height,
                    time: Some(time.into()),
                    decided_last_commit: Some(CommitInfo::default()),
                    proposer_address: vec![0; 20].into(),
                    ..RequestFinalizeBlock::default()
                })
                .unwrap();
            client.commit().unwrap();
            hashes.push(finalized.app_hash.to_vec());
        }
        hashes
    })
    .await
    .unwrap();
    app.kill().await;
    hashes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_solo_tandemd_or_both_twenty_times_keeps_one_chain() {
    let mut rng = seeded_rng();

    let dir = tempfile::tempdir().unwrap();
    let mut app = Tandemd::init(&dir.path().join("tandemd")).await;
    let abci = app.start().await;
    let solo_home = dir.path().join("solo");
    write_tandemd_home(&solo_home, abci, app_state(), Duration::from_millis(20));
    let mut solo = Solo::new(&solo_home, free_port());
    solo.start();
    solo.wait_up().await;

    let client = solo.client();
    let (kinds, txs) = submit_while_killing(&mut rng, &mut solo, &mut app, move |i| {
        let client = client.clone();
        async move { send_tx_until_committed(&client, &tx(i)).await }
    })
    .await;
    eprintln!("kills (solo, tandemd, both) = {kinds:?}, txs = {txs}");

    // The killed chain, contiguous and linked (checked by `chain`), and every tx in it once.
    let client = solo.client();
    let latest = eventually("a block after the last tx", DEADLINE, || async {
        client
            .status()
            .await
            .ok()
            .map(|s| s.sync_info.latest_block_height.value())
    })
    .await;
    let killed = chain(&client).await;
    assert!(killed.len() as u64 >= latest);
    solo.kill().await;
    app.kill().await;
    let mut included: Vec<Vec<u8>> = killed
        .iter()
        .flat_map(|(_, txs)| txs.iter().skip(1).cloned())
        .collect();
    included.sort();
    let mut sent: Vec<Vec<u8>> = (0..txs).map(tx).collect();
    sent.sort();
    assert_eq!(included, sent, "every tx exactly once");

    // Header h carries the app hash after block h - 1 (InitChain for h = 1).
    let blocks: Vec<Vec<Vec<u8>>> = killed.iter().map(|(_, txs)| txs.clone()).collect();
    let last = blocks.len() - 1;
    let reference = reference_app_hashes(&solo_home, blocks[..last].to_vec()).await;
    for (h, ((header_app_hash, _), expected)) in killed.iter().zip(&reference).enumerate() {
        assert_eq!(
            header_app_hash.as_bytes(),
            expected.as_slice(),
            "app hash in header {} differs from the uninterrupted run",
            h + 1
        );
    }
}

impl Restartable for Tandemd {
    async fn restart(&mut self) {
        self.kill().await;
        self.start().await;
    }
}
