//! Every commit verifies with tendermint-light-client-verifier, across validator-set changes.

use std::time::Duration;

use tandem_solo::home;
use tendermint::{block::Height, Time};
use tendermint_light_client_verifier::{
    options::Options,
    types::{LightBlock, PeerId, TrustThreshold},
    ProdVerifier, Verdict, Verifier,
};
use tendermint_rpc::{Client, HttpClient, Paging};

use crate::support::{start_test_node, validator_key, wait_height};

const DEADLINE: Duration = Duration::from_mins(1);

pub(crate) async fn light_block(client: &HttpClient, h: u64) -> LightBlock {
    let commit = client.commit(Height::try_from(h).unwrap()).await.unwrap();
    let vals = client
        .validators(Height::try_from(h).unwrap(), Paging::All)
        .await
        .unwrap();
    let next = client
        .validators(Height::try_from(h + 1).unwrap(), Paging::All)
        .await
        .unwrap();
    LightBlock::new(
        commit.signed_header,
        tendermint::validator::Set::without_proposer(vals.validators),
        tendermint::validator::Set::without_proposer(next.validators),
        PeerId::new([0; 20]),
    )
}

fn options() -> Options {
    Options {
        trust_threshold: TrustThreshold::TWO_THIRDS,
        trusting_period: Duration::from_hours(1),
        clock_drift: Duration::from_secs(5),
    }
}

pub(crate) fn verify(trusted: &LightBlock, untrusted: &LightBlock) -> Verdict {
    let now = (Time::now() + Duration::from_secs(1)).unwrap();
    ProdVerifier::default().verify_update_header(
        untrusted.as_untrusted_state(),
        trusted.as_trusted_state(),
        &options(),
        now,
    )
}

/// Verifies every block of `from + 1..=to` against the one before it, starting from a
/// trusted `from`.
pub(crate) async fn verify_each_step(client: &HttpClient, from: u64, to: u64) {
    let mut previous = light_block(client, from).await;
    for height in from + 1..=to {
        let next = light_block(client, height).await;
        assert_eq!(
            verify(&previous, &next),
            Verdict::Success,
            "height {height}"
        );
        previous = next;
    }
}

/// Non-adjacent (skipping) verification with the light client's default trust level of 1/3:
/// validators trusted at `trusted` must hold more than 1/3 of the power that signed
/// `untrusted`, which must itself have more than 2/3 of its own set.
pub(crate) fn verify_skipping(trusted: &LightBlock, untrusted: &LightBlock) -> Verdict {
    assert!(untrusted.height().value() > trusted.height().value() + 1);
    let now = (Time::now() + Duration::from_secs(1)).unwrap();
    ProdVerifier::default().verify_update_header(
        untrusted.as_untrusted_state(),
        trusted.as_trusted_state(),
        &Options {
            trust_threshold: TrustThreshold::ONE_THIRD,
            ..options()
        },
        now,
    )
}

/// The first block has no trusted predecessor: check its own sets and commit.
fn verify_first(block: &LightBlock) {
    let header = &block.signed_header.header;
    assert_eq!(header.validators_hash, block.validators.hash());
    assert_eq!(header.next_validators_hash, block.next_validators.hash());
    // Trusting a block as its own predecessor checks the commit against the set it names.
    let mut fake_trusted = block.clone();
    fake_trusted.signed_header.header.height =
        Height::try_from(header.height.value() - 1).unwrap_or_default();
    fake_trusted.signed_header.header.time = (header.time - Duration::from_millis(1)).unwrap();
    fake_trusted.next_validators = block.validators.clone();
    fake_trusted.signed_header.header.next_validators_hash = block.validators.hash();
    assert_eq!(
        verify(&fake_trusted, block),
        Verdict::Success,
        "height {}",
        header.height
    );
}

#[tokio::test]
async fn commits_of_heights_1_to_20_verify_and_a_tampered_one_does_not() {
    let (app, _dir, node, client) = start_test_node(Duration::ZERO, true, |_| {}).await;
    wait_height(&client, 21, DEADLINE).await;

    let mut blocks = Vec::new();
    for h in 1..=20 {
        blocks.push(light_block(&client, h).await);
    }
    verify_first(&blocks[0]);
    for pair in blocks.windows(2) {
        assert_eq!(
            verify(&pair[0], &pair[1]),
            Verdict::Success,
            "height {}",
            pair[1].height()
        );
    }

    // Flip one bit of the signature at height 5: verification must fail.
    let mut tampered = blocks[4].clone();
    let sig = tampered.signed_header.commit.signatures[0].clone();
    let tendermint::block::CommitSig::BlockIdFlagCommit {
        validator_address,
        timestamp,
        signature,
    } = sig
    else {
        panic!("expected a commit signature");
    };
    let mut bytes = signature.unwrap().as_bytes().to_vec();
    bytes[0] ^= 1;
    tampered.signed_header.commit.signatures[0] = tendermint::block::CommitSig::BlockIdFlagCommit {
        validator_address,
        timestamp,
        signature: Some(tendermint::Signature::try_from(bytes).unwrap()),
    };
    assert!(matches!(verify(&blocks[3], &tampered), Verdict::Invalid(_)));

    // A header whose app hash was changed no longer matches the signed block id.
    let mut forged = blocks[4].clone();
    forged.signed_header.header.app_hash = tendermint::AppHash::try_from(vec![1; 32]).unwrap();
    assert!(verify(&blocks[3], &forged) != Verdict::Success);

    node.shutdown().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn validator_updates_take_effect_at_h_plus_2_and_keep_verifying() {
    let (app, _dir, node, client) = start_test_node(Duration::from_millis(20), true, |_| {}).await;
    wait_height(&client, 2, DEADLINE).await;

    // Raise our power to 30 and add a second validator with power 1: we keep > 2/3.
    let ours = validator_key().public_key();
    let other = home::ed25519_key([42; 32]).public_key();
    let tx = format!("val:{}:30", hex::encode(ours.to_bytes()));
    let first = client.broadcast_tx_commit(tx.into_bytes()).await.unwrap();
    assert!(first.tx_result.code.is_ok(), "{first:?}");
    let tx = format!("val:{}:1", hex::encode(other.to_bytes()));
    let second = client.broadcast_tx_commit(tx.into_bytes()).await.unwrap();
    let h = second.height.value();
    wait_height(&client, h + 4, DEADLINE).await;

    let at = |h: u64| {
        let client = client.clone();
        async move {
            client
                .validators(Height::try_from(h).unwrap(), Paging::All)
                .await
                .unwrap()
                .validators
        }
    };
    assert_eq!(
        at(h + 1).await.len(),
        1,
        "an update at H is not active at H+1"
    );
    let active = at(h + 2).await;
    assert_eq!(active.len(), 2, "an update at H is active at H+2");
    assert_eq!(active.iter().map(|v| v.power.value()).sum::<u64>(), 31);

    verify_each_step(
        &client,
        first.height.value().saturating_sub(1).max(1),
        h + 4,
    )
    .await;
    // The commit at H+2 names both validators, ours signed and the other absent.
    let commit = client
        .commit(Height::try_from(h + 2).unwrap())
        .await
        .unwrap();
    assert_eq!(commit.signed_header.commit.signatures.len(), 2);

    node.shutdown().await.unwrap();
    app.stop().await;
}
