//! `tandem testnet` writes homes that `tendermint-config` and `tendermint::Genesis` accept.

use std::collections::BTreeSet;

use tandem_cli::testnet::{run, TestnetArgs};
use tendermint_config::{net::Address, PrivValidatorKey, TendermintConfig};

fn args(output: &std::path::Path, app_state: &std::path::Path, n: usize) -> TestnetArgs {
    TestnetArgs {
        validators: n,
        output: output.to_path_buf(),
        chain_id: "tandem-testnet".into(),
        app_state: app_state.to_path_buf(),
        power: 10,
        hostname_prefix: "node".into(),
        app_hostname_prefix: "tandemd".into(),
        app_host: None,
        local: false,
        force: false,
    }
}

fn app_state_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("app_state.json");
    std::fs::write(
        &path,
        r#"{"accounts":[],"authority":"tandem1x","fee_collector":"tandem1y","params":{}}"#,
    )
    .unwrap();
    path
}

#[test]
fn four_validator_homes_parse_with_tendermint_config_and_genesis() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("net");
    let app_state = app_state_file(tmp.path());
    run(&args(&out, &app_state, 4)).unwrap();

    let mut genesis_texts = BTreeSet::new();
    let mut node_ids = Vec::new();
    let mut validator_addresses = BTreeSet::new();
    for i in 0..4 {
        let home = out.join(format!("node{i}"));
        let config = TendermintConfig::load_toml_file(&home.join("config/config.toml"))
            .unwrap_or_else(|e| panic!("node{i} config.toml: {e}"));
        assert_eq!(config.consensus.timeout_commit.to_string(), "1000ms");
        assert!(config.consensus.create_empty_blocks);
        assert_eq!(
            config.p2p.persistent_peers.len(),
            3,
            "node{i} peers the other three"
        );
        let Address::Tcp { host, port, .. } = &config.proxy_app else {
            panic!("node{i} proxy_app is not tcp: {:?}", config.proxy_app);
        };
        assert_eq!(
            (host.as_str(), *port),
            (format!("tandemd{i}").as_str(), 26658)
        );
        let node_key = config.load_node_key(&home).unwrap();
        node_ids.push(node_key.node_id());
        let genesis: tendermint::Genesis = config.load_genesis_file(&home).unwrap();
        assert_eq!(genesis.validators.len(), 4);
        assert_eq!(genesis.app_state["authority"], "tandem1x");
        genesis_texts.insert(std::fs::read_to_string(home.join("config/genesis.json")).unwrap());
        let key =
            PrivValidatorKey::load_json_file(&home.join("config/priv_validator_key.json")).unwrap();
        assert!(genesis.validators.iter().any(|v| v.address == key.address));
        validator_addresses.insert(key.address);
        // The same home also loads in tandem-solo.
        tandem_solo::NodeConfig::load(&home).unwrap();
    }
    assert_eq!(genesis_texts.len(), 1, "all homes share one genesis");
    assert_eq!(
        validator_addresses.len(),
        4,
        "each validator has its own key"
    );
    // Every peer entry names another node's id.
    for i in 0..4 {
        let config =
            TendermintConfig::load_toml_file(&out.join(format!("node{i}/config/config.toml")))
                .unwrap();
        for peer in &config.p2p.persistent_peers {
            let Address::Tcp {
                peer_id: Some(id), ..
            } = peer
            else {
                panic!("peer without id: {peer:?}")
            };
            assert!(node_ids.contains(id));
            assert_ne!(*id, node_ids[i], "a node does not peer itself");
        }
    }
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let app_state = app_state_file(tmp.path());
    let err = run(&args(&tmp.path().join("a"), &app_state, 0)).unwrap_err();
    assert!(err.to_string().contains("at least 1"), "{err}");
    let missing = run(&args(
        &tmp.path().join("b"),
        &tmp.path().join("nope.json"),
        2,
    ))
    .unwrap_err();
    assert!(
        format!("{missing:#}").contains("failed to read --app-state"),
        "{missing:#}"
    );
    run(&args(&tmp.path().join("c"), &app_state, 1)).unwrap();
    let again = run(&args(&tmp.path().join("c"), &app_state, 1)).unwrap_err();
    assert!(again.to_string().contains("--force"), "{again}");
}
