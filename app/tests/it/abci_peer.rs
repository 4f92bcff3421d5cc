//! Peer conformance: a real `tandemd` driven over its TCP socket by an independent ABCI
//! client, `tendermint-abci` 0.40 (feature `client`). That client has no `PrepareProposal` or
//! `ProcessProposal` method, so those two go as raw `tendermint-proto` `v0_38` frames (the
//! block must carry the app's commitment item first, which only `PrepareProposal` makes).

use cosmrs::proto::cosmos::{
    auth::v1beta1::{BaseAccount, QueryAccountRequest, QueryAccountResponse},
    bank::v1beta1::{QueryBalanceRequest, QueryBalanceResponse},
};
use prost::Message as _;
use tendermint_proto::v0_38::abci as pb;

use crate::node::{
    finalize_request, init_chain_request, key, rollup, send, signed_tx, submit, Driver, Node,
};

fn query(client: &mut tendermint_abci::Client, path: &str, data: Vec<u8>) -> pb::ResponseQuery {
    client
        .query(pb::RequestQuery {
            data: data.into(),
            path: path.to_owned(),
            height: 0,
            prove: false,
        })
        .unwrap()
}

#[test]
fn tendermint_abci_client_drives_tandemd() {
    let home = tempfile::tempdir().unwrap();
    let node = Node::start(home.path(), "http://127.0.0.1:9");
    let mut client = node.client();

    let echo = client
        .echo(pb::RequestEcho {
            message: "tandem".to_owned(),
        })
        .unwrap();
    assert_eq!(echo.message, "tandem");
    let info = client.info(pb::RequestInfo::default()).unwrap();
    assert_eq!(info.last_block_height, 0);
    client.flush().unwrap();

    let init = client.init_chain(init_chain_request()).unwrap();
    assert!(
        !init.app_hash.is_empty(),
        "InitChain returns the genesis app hash"
    );

    // Query: the Cosmos SDK account path with SDK types.
    let (alice, bob) = (key("alice"), key("bob"));
    let answer = query(
        &mut client,
        "/cosmos.auth.v1beta1.Query/Account",
        QueryAccountRequest {
            address: bob.address().to_string(),
        }
        .encode_to_vec(),
    );
    assert_eq!(answer.code, 0, "{}", answer.log);
    let account = QueryAccountResponse::decode(answer.value.as_ref())
        .unwrap()
        .account
        .unwrap();
    assert_eq!(account.type_url, "/cosmos.auth.v1beta1.BaseAccount");
    let account = BaseAccount::decode(account.value.as_slice()).unwrap();
    assert_eq!(account.address, bob.address().to_string());
    let bob_number = account.account_number;

    // CheckTx: a valid transfer is accepted, garbage is rejected with a code.
    let tx = signed_tx(
        &bob,
        bob_number,
        0,
        vec![send(&bob, &alice, 1234), submit(&bob, rollup("r"), b"data")],
    );
    let check = client
        .check_tx(pb::RequestCheckTx {
            tx: tx.clone().into(),
            r#type: 0,
        })
        .unwrap();
    assert_eq!(check.code, 0, "{}", check.log);
    let bad = client
        .check_tx(pb::RequestCheckTx {
            tx: b"not a tx".to_vec().into(),
            r#type: 0,
        })
        .unwrap();
    assert_ne!(bad.code, 0);
    assert!(!bad.log.is_empty());

    // PrepareProposal/ProcessProposal over raw frames, then FinalizeBlock and Commit with
    // the tendermint-abci client.
    let mut proposer = Driver::connect(&node);
    let txs = proposer.propose(vec![tx]);
    assert_eq!(txs.len(), 2, "commitment item + the tx");
    let finalized = client.finalize_block(finalize_request(1, &txs)).unwrap();
    assert_eq!(finalized.tx_results.len(), 2);
    assert!(
        finalized.tx_results.iter().all(|r| r.code == 0),
        "{:?}",
        finalized.tx_results
    );
    assert_eq!(finalized.app_hash.len(), 32);
    client.commit().unwrap();

    let info = client.info(pb::RequestInfo::default()).unwrap();
    assert_eq!(info.last_block_height, 1);
    assert_eq!(info.last_block_app_hash, finalized.app_hash);

    let answer = query(
        &mut client,
        "/cosmos.bank.v1beta1.Query/Balance",
        QueryBalanceRequest {
            address: alice.address().to_string(),
            denom: "utnd".to_owned(),
        }
        .encode_to_vec(),
    );
    assert_eq!(answer.code, 0, "{}", answer.log);
    let balance = QueryBalanceResponse::decode(answer.value.as_ref())
        .unwrap()
        .balance
        .unwrap();
    assert_eq!(balance.amount, (1_000_000_000_000_u128 + 1234).to_string());
}
