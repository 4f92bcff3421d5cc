//! The deploy/ files cannot run here (no container engine), so check what can be checked:
//! they parse, and they name the services and ports that deploy/README.md documents.

use std::{collections::BTreeMap, path::PathBuf};

use serde_yaml::Value;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The README's service table: service → (image or build, host ports).
fn readme_services() -> BTreeMap<String, (String, Vec<u16>)> {
    let readme = std::fs::read_to_string(deploy_dir().join("README.md")).unwrap();
    let start = readme
        .find("<!-- services:start -->")
        .expect("README service table start marker");
    let end = readme
        .find("<!-- services:end -->")
        .expect("README service table end marker");
    let mut out = BTreeMap::new();
    for line in readme[start..end].lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().trim_matches('`'))
            .collect();
        if cells.len() < 3 || cells[0] == "service" || cells[0].starts_with("---") {
            continue;
        }
        let ports = cells[2]
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty() && *p != "none")
            .map(|p| {
                p.parse()
                    .unwrap_or_else(|_| panic!("bad port `{p}` in README row {line}"))
            })
            .collect();
        out.insert(cells[0].to_owned(), (cells[1].to_owned(), ports));
    }
    out
}

#[test]
fn compose_file_parses_and_matches_the_readme() {
    let text = std::fs::read_to_string(deploy_dir().join("compose/docker-compose.yml")).unwrap();
    let mut compose: Value = serde_yaml::from_str(&text).unwrap();
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().expect("services mapping");
    let mut found = BTreeMap::new();
    for (name, service) in services {
        let name = name.as_str().unwrap().to_owned();
        let mut service = service.clone();
        service.apply_merge().unwrap();
        let image = if service.get("build").is_some() {
            "build:deploy/Dockerfile".to_owned()
        } else {
            service["image"]
                .as_str()
                .expect("image or build")
                .to_owned()
        };
        let ports: Vec<u16> = service
            .get("ports")
            .and_then(Value::as_sequence)
            .map(|ports| {
                ports
                    .iter()
                    .map(|p| {
                        p.as_str()
                            .unwrap()
                            .split(':')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap()
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.insert(name, (image, ports));
    }
    assert_eq!(
        found,
        readme_services(),
        "deploy/README.md's table must match the compose file"
    );
    // 4 validators on CometBFT 0.38, each with its own tandemd, plus conductor and op-geth.
    let cometbft: Vec<_> = found
        .iter()
        .filter(|(_, (i, _))| i.starts_with("cometbft/cometbft:v0.38."))
        .collect();
    assert_eq!(cometbft.len(), 4);
    for i in 0..4 {
        assert!(found.contains_key(&format!("tandemd{i}")));
    }
    assert!(found.contains_key("conductor") && found.contains_key("op-geth"));
    // Each node's home is the generated testnet directory.
    for i in 0..4 {
        let volumes = &services[&Value::from(format!("node{i}"))]["volumes"];
        assert_eq!(
            volumes[0].as_str().unwrap(),
            format!("./testnet/node{i}:/cometbft")
        );
    }
}

#[test]
fn kubernetes_manifests_parse() {
    let mut kinds = Vec::new();
    for file in ["k8s/validators.yaml", "k8s/rollup.yaml"] {
        let text = std::fs::read_to_string(deploy_dir().join(file)).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(
                value["apiVersion"].as_str().is_some(),
                "{file}: document without apiVersion"
            );
            kinds.push(value["kind"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        kinds.iter().filter(|k| *k == "StatefulSet").count(),
        5,
        "4 validators + op-geth"
    );
    assert!(kinds.iter().any(|k| k == "Deployment"), "conductor");
}

#[test]
fn systemd_units_name_their_binaries() {
    for (unit, binary) in [
        ("cometbft.service", "cometbft start"),
        ("tandemd.service", "tandemd start"),
    ] {
        let text = std::fs::read_to_string(deploy_dir().join("systemd").join(unit)).unwrap();
        for section in ["[Unit]", "[Service]", "[Install]"] {
            assert!(text.contains(section), "{unit} lacks {section}");
        }
        let exec = text
            .lines()
            .find(|l| l.starts_with("ExecStart="))
            .expect("ExecStart");
        assert!(exec.contains(binary), "{unit}: {exec}");
    }
}

use serde::Deserialize as _;
