//! Against the real application: `tandemd` as a process under an in-process `tandem-solo`.
//! Commits verify with the light client, and a `tandemd` killed with SIGKILL is picked up again by
//! the handshake with the chain continuing on the same app hashes.

use std::time::Duration;

use tendermint::block::Height;
use tendermint_rpc::{Client, HttpClient};

use crate::support::{eventually, start_node, wait_height, write_tandemd_home, Tandemd};

const DEADLINE: Duration = Duration::from_mins(1);

async fn app_hash_chain_holds(client: &HttpClient, to: u64) {
    for h in 1..to {
        let results = client
            .block_results(Height::try_from(h).unwrap())
            .await
            .unwrap();
        let next = client
            .block(Height::try_from(h + 1).unwrap())
            .await
            .unwrap();
        assert_eq!(
            next.block.header.app_hash,
            results.app_hash,
            "header {} carries the app hash of block {h}",
            h + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tandemd_under_solo_verifies_and_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let app_home = dir.path().join("tandemd");
    let mut app = Tandemd::init(&app_home).await;
    let app_state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(app_home.join("genesis_app_state.json")).unwrap(),
    )
    .unwrap();
    let abci = app.start().await;
    let solo_home = dir.path().join("solo");
    write_tandemd_home(&solo_home, abci, app_state, Duration::from_millis(20));
    let (node, client) = start_node(&solo_home, |_| {}).await;
    let h = wait_height(&client, 5, DEADLINE).await;
    let info = client.abci_info().await.unwrap();
    assert!(info.last_block_height.value() >= h - 1);

    // SIGKILL tandemd: the host reconnects once it is back and the chain continues.
    app.kill().await;
    app.start().await;
    let after = wait_height(&client, h + 5, DEADLINE).await;
    app_hash_chain_holds(&client, after).await;
    crate::light_client::verify_each_step(&client, 1, after).await;
    let info = eventually("abci_info after restart", DEADLINE, || async {
        client.abci_info().await.ok()
    })
    .await;
    assert!(info.last_block_height.value() >= after - 1);

    node.shutdown().await.unwrap();
    app.kill().await;
}

/// A validator-set change made the way an operator makes it on a real network: a
/// `MsgUpdateValidator` signed by the authority, executed by `tandemd`, returned as a
/// validator update and applied by the host at H+2. Light-client verification holds across
/// the change, step by step and skipping from before it to after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msg_update_validator_through_tandemd_keeps_light_client_verification() {
    use tandem_core::{Message, SigningKey, TxBuilder, UpdateValidator, NATIVE_DENOM};
    use tendermint_light_client_verifier::Verdict;
    use tendermint_rpc::Paging;

    use crate::light_client::{light_block, verify_each_step, verify_skipping};

    let authority = SigningKey::secp256k1_from_seed(b"solo-test-authority");
    let collector = SigningKey::secp256k1_from_seed(b"solo-test-fees").address();
    // Accounts are numbered in genesis order: the authority is account 0.
    let app_state = serde_json::json!({
        "accounts": [{
            "address": authority.address().to_string(),
            "coins": [{"denom": NATIVE_DENOM, "amount": "1000000000000"}]
        }],
        "params": tandem_core::Params::default(),
        "authority": authority.address().to_string(),
        "fee_collector": collector.to_string(),
    });
    let dir = tempfile::tempdir().unwrap();
    let mut app = Tandemd::init(&dir.path().join("tandemd")).await;
    let abci = app.start().await;
    let solo_home = dir.path().join("solo");
    write_tandemd_home(&solo_home, abci, app_state, Duration::from_millis(20));
    let (node, client) = start_node(&solo_home, |_| {}).await;
    wait_height(&client, 2, DEADLINE).await;

    // Add a validator with power 4: ours (10) keeps 10/14 > 2/3, so the host can go on alone.
    let added = tandem_solo::home::ed25519_key([42; 32]).public_key();
    let added_key: [u8; 32] = added.to_bytes().try_into().unwrap();
    let tx = TxBuilder::new(crate::support::CHAIN_ID, 0, 0)
        .message(Message::UpdateValidator(UpdateValidator {
            authority: authority.address(),
            pub_key: added_key,
            power: 4,
        }))
        .fee(1_000_000)
        .sign(&authority)
        .unwrap();
    let committed = client.broadcast_tx_commit(tx).await.unwrap();
    assert!(committed.check_tx.code.is_ok(), "{:?}", committed.check_tx);
    assert!(
        committed.tx_result.code.is_ok(),
        "{:?}",
        committed.tx_result
    );
    let h = committed.height.value();
    wait_height(&client, h + 4, DEADLINE).await;

    let powers = |h: u64| {
        let client = client.clone();
        async move {
            let mut powers: Vec<u64> = client
                .validators(Height::try_from(h).unwrap(), Paging::All)
                .await
                .unwrap()
                .validators
                .iter()
                .map(|v| v.power.value())
                .collect();
            powers.sort_unstable();
            powers
        }
    };
    assert_eq!(powers(h + 1).await, [10], "not active at H+1");
    assert_eq!(powers(h + 2).await, [4, 10], "active at H+2");

    verify_each_step(&client, 1, h + 4).await;
    // Skipping from before the change to after it: the old set's signers (our key) still
    // hold more than the trust threshold of the new commit.
    let before = light_block(&client, h).await;
    let after = light_block(&client, h + 4).await;
    assert_eq!(verify_skipping(&before, &after), Verdict::Success);

    node.shutdown().await.unwrap();
    app.kill().await;
}
