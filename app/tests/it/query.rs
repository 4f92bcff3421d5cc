//! Query paths, ICS23 proofs against the app hash, and the read APIs used by gRPC.

use cosmrs::proto::cosmos::{
    auth::v1beta1::{BaseAccount, QueryAccountRequest, QueryAccountResponse},
    bank::v1beta1::{
        QueryAllBalancesRequest, QueryAllBalancesResponse, QueryBalanceRequest,
        QueryBalanceResponse,
    },
};
use prost::Message as _;
use tandem_app::{query_codes, TxStatus};
use tendermint::{block::Height, v0_38::abci::request};

use crate::harness::{key, rollup, send, sign, submit, unsigned, utnd, Chain};

fn query(path: &str, data: Vec<u8>, height: u64, prove: bool) -> request::Query {
    request::Query {
        data: data.into(),
        path: path.to_string(),
        height: Height::try_from(height).unwrap(),
        prove,
    }
}

/// A Cosmos query of `path` with its protobuf `request`, at the latest height.
async fn ask(
    chain: &Chain,
    path: &str,
    request: &impl prost::Message,
    prove: bool,
) -> tendermint::v0_38::abci::response::Query {
    chain
        .app
        .query(query(path, request.encode_to_vec(), 0, prove))
        .await
}

/// `/cosmos.bank.v1beta1.Query/AllBalances` of `address` at the latest height.
async fn all_balances(
    chain: &Chain,
    address: &tandem_core::Address,
    prove: bool,
) -> tendermint::v0_38::abci::response::Query {
    let request = QueryAllBalancesRequest {
        address: address.to_string(),
        pagination: None,
        resolve_denom: false,
    };
    ask(
        chain,
        "/cosmos.bank.v1beta1.Query/AllBalances",
        &request,
        prove,
    )
    .await
}

#[tokio::test]
async fn cosmos_paths_answer_with_sdk_types_and_proofs_verify() {
    let (chain, root) = after_a_transfer().await;
    let (alice, bob) = (key("alice"), key("bob"));

    let request = QueryAccountRequest {
        address: alice.address().to_string(),
    };
    let response = ask(&chain, "/cosmos.auth.v1beta1.Query/Account", &request, true).await;
    assert!(response.code.is_ok(), "{}", response.log);
    assert_eq!(response.height.value(), 1);
    let account = QueryAccountResponse::decode(response.value.as_ref())
        .unwrap()
        .account
        .unwrap();
    assert_eq!(account.type_url, "/cosmos.auth.v1beta1.BaseAccount");
    let account = BaseAccount::decode(account.value.as_slice()).unwrap();
    assert_eq!((account.account_number, account.sequence), (0, 1));
    assert_eq!(account.address, alice.address().to_string());

    // Each proof op is an ICS23 existence proof of a raw key against the block's app hash.
    let ops = response.proof.expect("prove=true returns proofs").ops;
    assert_eq!(ops.len(), 2);
    let expected_values = [0u64.to_be_bytes(), 1u64.to_be_bytes()];
    for (op, value) in ops.iter().zip(expected_values) {
        assert!(proves(op, &root, Some(&value)));
        // And the proof does not verify a different value.
        assert!(!proves(op, &root, Some(&7u64.to_be_bytes())));
    }

    let response = all_balances(&chain, &bob.address(), false).await;
    let balances = QueryAllBalancesResponse::decode(response.value.as_ref())
        .unwrap()
        .balances;
    let pairs: Vec<(String, String)> = balances.into_iter().map(|c| (c.denom, c.amount)).collect();
    assert_eq!(
        pairs,
        vec![
            ("uatom".to_string(), "500".to_string()),
            ("utnd".to_string(), "1000000000005".to_string())
        ]
    );
    assert_eq!(
        chain.balance(&bob.address(), "utnd").await,
        1_000_000_000_005
    );

    // Unknown account: the NotFound wording cosmjs looks for.
    let request = QueryAccountRequest {
        address: key("nobody").address().to_string(),
    };
    let response = ask(
        &chain,
        "/cosmos.auth.v1beta1.Query/Account",
        &request,
        false,
    )
    .await;
    assert_eq!(response.code.value(), query_codes::NOT_FOUND);
    assert!(
        response.log.contains("rpc error: code = NotFound"),
        "{}",
        response.log
    );
}

/// Checks one `ics23:jmt` proof op against `root`: membership of `value`, or absence.
fn proves(op: &tendermint::merkle::proof::ProofOp, root: &[u8], value: Option<&[u8]>) -> bool {
    assert_eq!(op.field_type, "ics23:jmt");
    let proof = ics23::CommitmentProof::decode(op.data.as_slice()).unwrap();
    let spec = cnidarium::ics23_spec();
    match value {
        Some(value) => ics23::verify_membership::<ics23::HostFunctionsManager>(
            &proof,
            &spec,
            &root.to_vec(),
            &op.key,
            value,
        ),
        None => ics23::verify_non_membership::<ics23::HostFunctionsManager>(
            &proof,
            &spec,
            &root.to_vec(),
            &op.key,
        ),
    }
}

/// A chain after one block in which alice sent bob 5 utnd, and that block's app hash.
async fn after_a_transfer() -> (Chain, Vec<u8>) {
    let mut chain = Chain::new().await;
    let (alice, bob) = (key("alice"), key("bob"));
    let tx = chain
        .tx(&alice, vec![send(&alice, bob.address(), utnd(5))])
        .await;
    let block = chain.block(vec![tx]).await;
    (chain, block.finalize.app_hash.as_bytes().to_vec())
}

/// A stored balance: `u128`, big-endian.
fn u128_be(amount: &str) -> Vec<u8> {
    amount.parse::<u128>().unwrap().to_be_bytes().to_vec()
}

#[tokio::test]
async fn bank_paths_prove_each_balance_and_absence() {
    let (chain, root) = after_a_transfer().await;
    let (alice, bob) = (key("alice"), key("bob"));

    // Balance: present, and absent (zero) with a proof of absence.
    for (denom, present) in [("utnd", true), ("uatom", false)] {
        let request = QueryBalanceRequest {
            address: alice.address().to_string(),
            denom: denom.to_string(),
        };
        let response = ask(&chain, "/cosmos.bank.v1beta1.Query/Balance", &request, true).await;
        assert!(response.code.is_ok(), "{}", response.log);
        let amount = QueryBalanceResponse::decode(response.value.as_ref())
            .unwrap()
            .balance
            .unwrap()
            .amount;
        let ops = response.proof.unwrap().ops;
        assert_eq!(ops.len(), 1, "{denom}");
        let value = present.then(|| u128_be(&amount));
        assert!(proves(&ops[0], &root, value.as_deref()), "{denom}");
        assert_eq!(present, amount != "0");
        // The proof does not vouch for another amount.
        assert!(!proves(&ops[0], &root, Some(&u128_be("7"))), "{denom}");
    }

    // AllBalances: one proof per denom answered.
    let response = all_balances(&chain, &bob.address(), true).await;
    let balances = QueryAllBalancesResponse::decode(response.value.as_ref())
        .unwrap()
        .balances;
    let ops = response.proof.unwrap().ops;
    assert_eq!(ops.len(), balances.len());
    assert_eq!(balances.len(), 2);
    for (op, coin) in ops.iter().zip(&balances) {
        assert!(String::from_utf8_lossy(&op.key).ends_with(&coin.denom));
        assert!(
            proves(op, &root, Some(&u128_be(&coin.amount))),
            "{}",
            coin.denom
        );
    }
}

#[tokio::test]
async fn tandem_paths_prove_each_value_of_their_answer() {
    let (chain, root) = after_a_transfer().await;
    let (alice, bob) = (key("alice"), key("bob"));
    let u64_be = |v: &serde_json::Value| v.as_u64().unwrap().to_be_bytes().to_vec();

    // /tandem/account: the number, the sequence and every balance.
    let path = format!("/tandem/account/{}", bob.address());
    let response = chain.app.query(query(&path, vec![], 0, true)).await;
    let account: serde_json::Value = serde_json::from_slice(&response.value).unwrap();
    let mut values = vec![
        u64_be(&account["account_number"]),
        u64_be(&account["sequence"]),
    ];
    values.extend(
        account["balances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| u128_be(b["amount"].as_str().unwrap())),
    );
    let ops = response.proof.unwrap().ops;
    assert_eq!(ops.len(), 4, "number, sequence and two balances");
    for (op, value) in ops.iter().zip(&values) {
        assert!(
            proves(op, &root, Some(value)),
            "{}",
            String::from_utf8_lossy(&op.key)
        );
    }

    // /tandem/sequence: the committed sequence (the pending one is mempool state, unproven).
    let path = format!("/tandem/sequence/{}", alice.address());
    let response = chain.app.query(query(&path, vec![], 0, true)).await;
    let sequence: serde_json::Value = serde_json::from_slice(&response.value).unwrap();
    let ops = response.proof.unwrap().ops;
    assert_eq!(ops.len(), 1);
    assert!(proves(&ops[0], &root, Some(&u64_be(&sequence["sequence"]))));

    // /tandem/params: the stored params are the answer's.
    let response = chain
        .app
        .query(query("/tandem/params", vec![], 0, true))
        .await;
    let params: serde_json::Value = serde_json::from_slice(&response.value).unwrap();
    let stored = tandem_core::Params::default().to_raw().encode_to_vec();
    assert_eq!(params["base_fee"], tandem_core::Params::default().base_fee);
    let ops = response.proof.unwrap().ops;
    assert_eq!(ops.len(), 1);
    assert!(proves(&ops[0], &root, Some(&stored)));
    assert!(!proves(&ops[0], &root, Some(b"other")));
}

#[tokio::test]
async fn tandem_paths_heights_and_bad_queries() {
    let mut chain = Chain::new().await;
    let alice = key("alice");
    let tx = chain
        .tx(&alice, vec![submit(&alice, rollup("r"), b"1")])
        .await;
    let first = chain.block(vec![tx]).await;
    let tx = chain
        .tx(&alice, vec![submit(&alice, rollup("r"), b"2")])
        .await;
    assert!(chain.check(&tx).await.code.is_ok());

    let params = chain
        .app
        .query(query("/tandem/params", vec![], 0, true))
        .await;
    let json: serde_json::Value = serde_json::from_slice(&params.value).unwrap();
    assert_eq!(json["base_fee"], 1_000);
    assert_eq!(params.proof.unwrap().ops.len(), 1);

    let path = format!("/tandem/account/{}", alice.address());
    let account: serde_json::Value =
        serde_json::from_slice(&chain.app.query(query(&path, vec![], 0, false)).await.value)
            .unwrap();
    assert_eq!(account["sequence"], 1);
    assert_eq!(account["account_number"], 0);

    let path = format!("/tandem/sequence/{}", alice.address());
    let sequence: serde_json::Value =
        serde_json::from_slice(&chain.app.query(query(&path, vec![], 0, false)).await.value)
            .unwrap();
    assert_eq!(
        sequence,
        serde_json::json!({"sequence": 1, "pending_sequence": 2})
    );

    // After a second block, height 1 is still served with its own state (alice's sequence
    // 1 there, 2 now), and proven against height 1's app hash; height 0 is the latest.
    let second = chain.block(vec![tx]).await;
    let path = format!("/tandem/account/{}", alice.address());
    let at = |height| {
        let app = &chain.app;
        let path = path.clone();
        async move {
            let response = app.query(query(&path, vec![], height, true)).await;
            assert!(response.code.is_ok(), "height {height}: {}", response.log);
            let value: serde_json::Value = serde_json::from_slice(&response.value).unwrap();
            (
                response.height.value(),
                value["sequence"].clone(),
                response.proof.unwrap(),
            )
        }
    };
    let (height, sequence, proof) = at(1).await;
    assert_eq!((height, sequence), (1, serde_json::json!(1)));
    assert!(proves(
        &proof.ops[1],
        first.finalize.app_hash.as_bytes(),
        Some(&1u64.to_be_bytes())
    ));
    for latest in [0, 2] {
        let (height, sequence, proof) = at(latest).await;
        assert_eq!(
            (height, sequence),
            (2, serde_json::json!(2)),
            "height {latest}"
        );
        assert!(proves(
            &proof.ops[1],
            second.finalize.app_hash.as_bytes(),
            Some(&2u64.to_be_bytes())
        ));
    }
    let unavailable = chain.app.query(query(&path, vec![], 99, false)).await;
    assert_eq!(unavailable.code.value(), query_codes::HEIGHT_UNAVAILABLE);

    for (path, data, code) in [
        ("/nope", vec![], query_codes::UNKNOWN_PATH),
        (
            "/tandem/account/cosmos1xyz",
            vec![],
            query_codes::BAD_REQUEST,
        ),
        (
            "/cosmos.auth.v1beta1.Query/Account",
            vec![0xff, 0xff],
            query_codes::BAD_REQUEST,
        ),
        (
            "/cosmos.bank.v1beta1.Query/Balance",
            vec![0; 10_000],
            query_codes::BAD_REQUEST,
        ),
    ] {
        let response = chain.app.query(query(path, data, 0, false)).await;
        assert_eq!(response.code.value(), code, "{path}: {}", response.log);
        assert!(!response.log.is_empty());
    }
}

#[tokio::test]
async fn read_apis_follow_commits() {
    let mut chain = Chain::new().await;
    let alice = key("alice");
    let mut blocks = chain.app.subscribe_blocks();
    let tx = chain
        .tx(&alice, vec![submit(&alice, rollup("r"), b"data")])
        .await;
    let hash: [u8; 32] =
        sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), &tx)).into();
    assert_eq!(chain.app.tx_status(&hash).await.unwrap(), TxStatus::Unknown);
    assert!(chain.check(&tx).await.code.is_ok());
    assert_eq!(chain.app.tx_status(&hash).await.unwrap(), TxStatus::Pending);
    assert_eq!(
        chain.app.pending_sequence(&alice.address()).await.unwrap(),
        (1, 0)
    );
    assert!(chain
        .app
        .pending_sequence(&key("nobody").address())
        .await
        .is_err());

    chain.block(vec![tx]).await;
    assert_eq!(
        chain.app.tx_status(&hash).await.unwrap(),
        TxStatus::Committed {
            height: 1,
            index: 1,
            code: 0,
            log: String::new()
        }
    );
    assert_eq!(chain.app.latest_block_height(), 1);
    let published = blocks.recv().await.unwrap();
    assert_eq!(published.height(), 1);
    let stored = chain.app.sequencer_block(1).await.unwrap().unwrap();
    assert_eq!(*published, stored);
    assert_eq!(
        stored.rollup_transactions()[0].transactions(),
        &[b"data".to_vec()]
    );
    assert!(chain.app.sequencer_block(2).await.unwrap().is_none());
}

/// tandemd itself (not only its socket server) answers Query and CheckTx while a FinalizeBlock
/// is running: they read committed snapshots and the mempool, never the consensus lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_check_tx_answer_while_a_block_is_being_finalized() {
    use std::{sync::Arc, time::Duration};

    use tandem_app::{metrics::Metrics, AppConfig};
    use tandem_core::Params;

    use crate::harness::{finalize_request, genesis, prepare_request, sign};

    const TXS: u64 = 2_000;
    let metrics = Arc::new(Metrics::new());
    let dir = tempfile::tempdir().unwrap();
    let config = AppConfig {
        metrics: Some(Arc::clone(&metrics)),
        ..AppConfig::new(dir.path())
    };
    let chain = Chain::open(genesis(Params::default()), config, dir).await;
    let (alice, bob) = (key("alice"), key("bob"));

    // A block of txs this app never admitted through CheckTx: FinalizeBlock verifies every
    // signature, which keeps it busy long enough to ask it things meanwhile.
    let (sequence, number) = chain.account(&alice).await;
    let fee = Params::default().required_fee(1) * 2;
    let candidates: Vec<bytes::Bytes> = (0..TXS)
        .map(|i| {
            sign(
                &alice,
                number,
                sequence + i,
                vec![submit(&alice, rollup("a"), b"x")],
                fee,
            )
            .into()
        })
        .collect();
    let proposal = chain
        .app
        .prepare_proposal(prepare_request(1, candidates))
        .await
        .unwrap()
        .txs;
    assert_eq!(proposal.len() as u64, TXS + 1);

    let app = chain.app.clone();
    let finalize =
        tokio::spawn(async move { app.finalize_block(finalize_request(1, proposal)).await });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while metrics.phase_in_progress("finalize_block") == 0 {
        assert!(
            !finalize.is_finished(),
            "FinalizeBlock ended before it was seen running"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "FinalizeBlock never started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }

    let balances = all_balances(&chain, &bob.address(), false).await;
    assert!(balances.code.is_ok(), "{}", balances.log);
    let transfer = chain
        .tx(&bob, vec![send(&bob, alice.address(), utnd(1))])
        .await;
    let checked = chain.check(&transfer).await;
    assert!(checked.code.is_ok(), "{}", checked.log);
    assert!(
        !finalize.is_finished(),
        "Query and CheckTx were answered only after FinalizeBlock ended"
    );

    let finalized = finalize.await.unwrap().unwrap();
    assert_eq!(finalized.tx_results.len() as u64, TXS + 1);
    assert_eq!(metrics.phase_in_progress("finalize_block"), 0);
}

/// `/cosmos.tx.v1beta1.Service/Simulate` of `tx`.
async fn simulate(chain: &Chain, tx: Vec<u8>) -> tendermint::v0_38::abci::response::Query {
    use cosmrs::proto::cosmos::tx::v1beta1::SimulateRequest;
    #[expect(deprecated, reason = "the request type still has the old `tx` field")]
    let request = SimulateRequest {
        tx: None,
        tx_bytes: tx,
    };
    ask(
        chain,
        "/cosmos.tx.v1beta1.Service/Simulate",
        &request,
        false,
    )
    .await
}

/// Simulate (cosmjs's fee `"auto"`): an unsigned tx executes on a fork of the pending state,
/// `gas_used` is the fee it needs in utnd, each CheckTx failure keeps its code, and nothing it
/// did remains: the same sequence is then admitted for real.
#[tokio::test]
async fn simulate_reports_the_required_fee_and_changes_nothing() {
    use cosmrs::proto::cosmos::tx::v1beta1::SimulateResponse;
    use tandem_app::codes;
    use tandem_core::TxBuilder;

    let chain = Chain::new().await;
    let alice = key("alice");
    let params = chain.params().await;
    let (sequence, number) = chain.account(&alice).await;
    let data = [7u8; 300];
    let messages = vec![
        submit(&alice, rollup("a"), &data),
        submit(&alice, rollup("b"), &data[..100]),
    ];
    let build = |sequence: u64| {
        let mut builder = TxBuilder::new(crate::harness::CHAIN_ID, number, sequence).gas_limit(123);
        for message in messages.clone() {
            builder = builder.message(message);
        }
        unsigned(&builder.sign(&alice).unwrap())
    };

    let answer = simulate(&chain, build(sequence)).await;
    assert!(answer.code.is_ok(), "{}", answer.log);
    let response = SimulateResponse::decode(answer.value.as_ref()).unwrap();
    let gas = response.gas_info.unwrap();
    assert_eq!(u128::from(gas.gas_used), params.required_fee(400));
    assert_eq!(gas.gas_wanted, 123);

    // Each failure keeps its CheckTx code.
    let too_high = simulate(&chain, build(sequence + 1)).await;
    assert_eq!(
        too_high.code.value(),
        codes::SEQUENCE_TOO_HIGH,
        "{}",
        too_high.log
    );
    let stranger = key("simulate-stranger");
    let unknown = sign(
        &stranger,
        0,
        0,
        vec![send(&stranger, alice.address(), utnd(1))],
        0,
    );
    let unknown = simulate(&chain, unsigned(&unknown)).await;
    assert_eq!(
        unknown.code.value(),
        codes::UNKNOWN_ACCOUNT,
        "{}",
        unknown.log
    );
    let rich = chain.balance(&alice.address(), "utnd").await;
    let broke = sign(
        &alice,
        number,
        sequence,
        vec![send(&alice, key("bob").address(), utnd(rich))],
        0,
    );
    let broke = simulate(&chain, unsigned(&broke)).await;
    assert_eq!(
        broke.code.value(),
        codes::INSUFFICIENT_BALANCE,
        "{}",
        broke.log
    );
    let garbage = simulate(&chain, vec![0xff; 10]).await;
    assert!(
        garbage.code.is_err() && garbage.log.contains("TxRaw"),
        "{}",
        garbage.log
    );

    // An unsigned tx is still refused by CheckTx, and the pending state did not move.
    let refused = chain.check(&build(sequence)).await;
    assert!(
        refused.code.is_err(),
        "an unsigned tx never enters the mempool"
    );
    assert_eq!(chain.account(&alice).await, (sequence, number));
    let real = chain.tx(&alice, messages.clone()).await;
    let admitted = chain.check(&real).await;
    assert!(admitted.code.is_ok(), "{}", admitted.log);
}
