//! Fuzzing the untrusted inputs of `tandemd` with proptest: CheckTx bytes (arbitrary, and
//! mutations of a valid tx), Query paths and data, ProcessProposal txs (mutations of a valid
//! proposal), and raw bytes on the ABCI socket. Every case must get an answer (never a panic
//! or a hang), and the application must still serve valid requests afterwards.

use std::time::Duration;

use bytes::Bytes;
use proptest::{prelude::*, test_runner::TestCaseError};
use tandem_app::server::{AbciServer, Application, ListenAddr, ServerConfig};
use tandem_testkit::{cases, mutation};
use tendermint::{
    block::Height,
    v0_38::abci::{request, response},
};
use tendermint_proto::v0_38::abci::{request as raw_request, response as raw_response};
use tokio_util::sync::CancellationToken;

use crate::{
    harness::{key, process_request, rollup, send, submit, unsigned, utnd, Chain},
    support::RawClient,
};

/// A changed tx is refused with a code and a log. The one exception would be bytes that carry
/// exactly the signed content of the valid tx (same body, auth info and signature) in another
/// framing; such a tx is the same signed tx and may be admitted.
#[test]
fn check_tx_refuses_arbitrary_and_mutated_bytes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let chain = runtime.block_on(Chain::new());
    let alice = key("alice");
    let message = || vec![submit(&alice, rollup("fuzz"), b"rollup data")];
    let valid = runtime.block_on(chain.tx(&alice, message()));
    let signed_content = |bytes: &[u8]| {
        tandem_core::ParsedTx::decode(bytes, usize::MAX)
            .ok()
            .map(|tx| (tx.sign_doc_bytes("", 0), *tx.signature()))
    };
    proptest!(cases(512), |(change in mutation(2048))| {
        let bytes = change.apply(&valid);
        prop_assume!(bytes != valid);
        let response = runtime.block_on(chain.check(&bytes));
        if response.code.is_ok() {
            prop_assert_eq!(signed_content(&bytes), signed_content(&valid), "a different tx was admitted");
        } else {
            prop_assert!(!response.log.is_empty(), "code {:?} without a log", response.code);
        }
    });
    // The mempool still admits the next valid tx of the same signer.
    let next = runtime.block_on(chain.tx(&alice, message()));
    let response = runtime.block_on(chain.check(&next));
    assert!(response.code.is_ok(), "{}", response.log);
}

/// Queries with arbitrary data on every path the app knows, and on arbitrary paths, are
/// answered; bad ones with a code and a log.
#[test]
fn query_answers_arbitrary_paths_and_data() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let chain = runtime.block_on(Chain::new());
    let alice = key("alice").address();
    let balance = runtime.block_on(chain.balance(&alice, "utnd"));
    let paths = prop_oneof![
        Just("/cosmos.auth.v1beta1.Query/Account".to_owned()),
        Just("/cosmos.bank.v1beta1.Query/Balance".to_owned()),
        Just("/cosmos.bank.v1beta1.Query/AllBalances".to_owned()),
        Just("/tandem/params".to_owned()),
        Just("/cosmos.tx.v1beta1.Service/Simulate".to_owned()),
        "/tandem/account/.{0,80}",
        "/tandem/sequence/.{0,80}",
        ".{0,64}",
    ];
    proptest!(cases(256), |(
        path in paths,
        data in proptest::collection::vec(any::<u8>(), 0..512),
        height in prop_oneof![Just(0_u32), any::<u32>()],
        prove in any::<bool>(),
    )| {
        let query = request::Query {
            data: data.into(),
            path,
            height: Height::from(height),
            prove,
        };
        let response = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), chain.app.query(query)).await
        });
        let response = response.map_err(|_| TestCaseError::fail("query did not answer in 20 s"))?;
        if !response.code.is_ok() {
            prop_assert!(!response.log.is_empty(), "code {:?} without a log", response.code);
        }
    });
    assert_eq!(runtime.block_on(chain.balance(&alice, "utnd")), balance);
}

/// Simulate requests mutated from a valid one are all answered, a bad one with a code and a
/// log, and none changes the pending state: the simulated account's pending sequence and
/// balance stay as they were.
#[test]
fn simulate_answers_every_mutated_request_and_changes_nothing() {
    use cosmrs::proto::cosmos::tx::v1beta1::SimulateRequest;
    use prost::Message as _;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let chain = runtime.block_on(Chain::new());
    let alice = key("alice");
    let tx = runtime.block_on(chain.tx(&alice, vec![submit(&alice, rollup("a"), b"simulated")]));
    #[expect(deprecated, reason = "the request type still has the old `tx` field")]
    let valid = SimulateRequest {
        tx: None,
        tx_bytes: unsigned(&tx),
    }
    .encode_to_vec();
    let before = runtime.block_on(async {
        (
            chain.account(&alice).await,
            chain.balance(&alice.address(), "utnd").await,
        )
    });
    proptest!(cases(256), |(change in mutation(2048))| {
        let query = request::Query {
            data: change.apply(&valid).into(),
            path: "/cosmos.tx.v1beta1.Service/Simulate".to_owned(),
            height: Height::from(0_u32),
            prove: false,
        };
        let response = runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(20), chain.app.query(query)).await
        });
        let response = response.map_err(|_| TestCaseError::fail("simulate did not answer in 20 s"))?;
        if !response.code.is_ok() {
            prop_assert!(!response.log.is_empty(), "code {:?} without a log", response.code);
        }
    });
    let after = runtime.block_on(async {
        (
            chain.account(&alice).await,
            chain.balance(&alice.address(), "utnd").await,
        )
    });
    assert_eq!(after, before);
}

/// Any change to one tx of a valid proposal (the commitment item included) gets it rejected;
/// the valid proposal is still accepted afterwards.
#[test]
fn process_proposal_rejects_every_mutated_proposal() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let chain = runtime.block_on(Chain::new());
    let (alice, bob) = (key("alice"), key("bob"));
    let proposal: Vec<Bytes> = runtime.block_on(async {
        let txs = vec![
            chain
                .tx(&alice, vec![submit(&alice, rollup("a"), b"one")])
                .await,
            chain
                .tx(&bob, vec![send(&bob, alice.address(), utnd(3))])
                .await,
        ];
        for tx in &txs {
            assert!(chain.check(tx).await.code.is_ok());
        }
        chain
            .app
            .prepare_proposal(crate::harness::prepare_request(
                1,
                txs.into_iter().map(Bytes::from).collect(),
            ))
            .await
            .unwrap()
            .txs
    });
    assert_eq!(proposal.len(), 3, "commitment item and two txs");
    let process = |txs: Vec<Bytes>| {
        runtime
            .block_on(chain.app.process_proposal(process_request(1, txs)))
            .unwrap()
    };
    proptest!(cases(256), |(which in 0..proposal.len(), change in mutation(2048))| {
        let mut txs = proposal.clone();
        let changed = change.apply(&txs[which]);
        prop_assume!(changed != txs[which]);
        txs[which] = changed.into();
        prop_assert_eq!(process(txs), response::ProcessProposal::Reject);
    });
    assert_eq!(process(proposal), response::ProcessProposal::Accept);
}

/// Answers every call; what the socket fuzz below needs behind the server.
#[derive(Clone)]
struct Answers;

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Application for Answers {
    type Error = Never;

    async fn info(&self, _: request::Info) -> Result<response::Info, Never> {
        Ok(response::Info::default())
    }
    async fn query(&self, _: request::Query) -> response::Query {
        response::Query::default()
    }
    async fn check_tx(&self, _: request::CheckTx) -> response::CheckTx {
        response::CheckTx::default()
    }
    async fn init_chain(&self, _: request::InitChain) -> Result<response::InitChain, Never> {
        Ok(response::InitChain {
            consensus_params: None,
            validators: vec![],
            app_hash: tendermint::AppHash::default(),
        })
    }
    async fn prepare_proposal(
        &self,
        request: request::PrepareProposal,
    ) -> Result<response::PrepareProposal, Never> {
        Ok(response::PrepareProposal { txs: request.txs })
    }
    async fn process_proposal(
        &self,
        _: request::ProcessProposal,
    ) -> Result<response::ProcessProposal, Never> {
        Ok(response::ProcessProposal::Accept)
    }
    async fn finalize_block(
        &self,
        request: request::FinalizeBlock,
    ) -> Result<response::FinalizeBlock, Never> {
        Ok(response::FinalizeBlock {
            events: vec![],
            tx_results: vec![tendermint::abci::types::ExecTxResult::default(); request.txs.len()],
            validator_updates: vec![],
            consensus_param_updates: None,
            app_hash: tendermint::AppHash::default(),
        })
    }
    async fn commit(&self) -> Result<response::Commit, Never> {
        Ok(response::Commit::default())
    }
}

/// Arbitrary bytes on an ABCI connection (after a valid Echo, to reach a frame boundary) get
/// answers or an exception and a closed connection; the server keeps answering new
/// connections, and never reads a frame beyond its limit.
#[test]
fn abci_socket_survives_arbitrary_bytes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cancel = CancellationToken::new();
    let server = runtime
        .block_on(AbciServer::spawn(
            &ListenAddr::Tcp("127.0.0.1:0".parse().unwrap()),
            Answers,
            ServerConfig {
                max_frame_bytes: 4096,
                metrics: None,
            },
            &cancel,
        ))
        .unwrap();
    let ListenAddr::Tcp(addr) = server.local_addr().clone() else {
        unreachable!("bound on TCP")
    };
    let connect = || {
        let stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        RawClient::new(stream)
    };
    let echo = |client: &mut RawClient<std::net::TcpStream>, message: &str| {
        let answer = client.call(raw_request::Value::Echo(
            tendermint_proto::v0_38::abci::RequestEcho {
                message: message.to_owned(),
            },
        ));
        matches!(answer, raw_response::Value::Echo(e) if e.message == message)
    };
    proptest!(cases(256), |(bytes in proptest::collection::vec(any::<u8>(), 1..8192))| {
        let mut client = connect();
        prop_assert!(echo(&mut client, "before"));
        client.send_bytes(&bytes);
        // Half-close: the server sees the end of the stream after the bytes.
        client.shutdown_write();
        // Whatever comes back is a well-formed response; then the server closes.
        while let Some(answer) = client.receive() {
            if let raw_response::Value::Exception(exception) = answer {
                prop_assert!(exception.error.contains("malformed"), "{}", exception.error);
            }
        }
        prop_assert!(echo(&mut connect(), "after"));
    });
    cancel.cancel();
    runtime.block_on(server.wait()).unwrap();
}
