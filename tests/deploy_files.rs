//! The deployment files, without Docker or a cluster: the compose stack's and the Kubernetes
//! ConfigMap's `picket.toml` pass `picket check` for every node, every address in them is a
//! host name, and the Kubernetes manifests pass the API schemas and the cross-reference checks
//! of `docker/k8s/check-manifests`. The stack itself runs in `tests/docker_e2e.rs`.

use std::fs;
use std::path::Path;
use std::process::Command;

fn picket_check(config: &Path, announce: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["check", "--config"])
        .arg(config)
        .args(["--announce", announce])
        .output()
        .unwrap();
    let text =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Writes `text` to a temporary directory with its secret file at `secret_path` moved there too
/// (mounted secrets do not exist on the test machine), and runs `picket check` for each node.
fn check_for_every_node(text: &str, secret_path: &str, announces: &[String]) {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("peer-secret");
    fs::write(&secret, "test-secret\n").unwrap();
    assert!(text.contains(secret_path), "the configuration reads {secret_path}");
    let config = dir.path().join("picket.toml");
    fs::write(&config, text.replace(secret_path, &secret.display().to_string())).unwrap();
    for announce in announces {
        let (ok, output) = picket_check(&config, announce);
        assert!(ok, "picket check --announce {announce}: {output}");
        let effective: toml::Value = toml::from_str(&output).unwrap();
        let node = &effective["node"];
        assert_eq!(node["announce"].as_str(), Some(announce.as_str()));
        let peers: Vec<&str> =
            node["peers"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert_eq!(peers.len(), 2, "{announce}: itself dropped from the peers: {peers:?}");
        assert!(!peers.contains(&announce.as_str()));
    }
}

/// Every peer and master address is a host name (no IP address anywhere).
fn assert_names_only(text: &str) {
    let config: toml::Value = toml::from_str(text).unwrap();
    let mut addresses: Vec<String> = config["node"]["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect();
    for master in config["master"].as_array().unwrap() {
        addresses.push(master["address"].as_str().unwrap().to_owned());
    }
    for address in addresses {
        let host = address.rsplit_once(':').unwrap().0;
        assert!(
            host.parse::<std::net::IpAddr>().is_err() && !host.starts_with('['),
            "{address}: a host name, not an IP address"
        );
    }
}

#[test]
fn the_compose_stacks_configuration_is_valid_for_each_of_its_three_nodes() {
    let text = fs::read_to_string("docker/picket/picket.toml").unwrap();
    assert_names_only(&text);
    let announces: Vec<String> = (1..=3).map(|i| format!("picket-{i}:26380")).collect();
    check_for_every_node(&text, "/run/secrets/picket_peer_secret", &announces);
    // The compose file starts each node with the announce the others list.
    let compose = fs::read_to_string("docker/compose.yaml").unwrap();
    for announce in &announces {
        assert!(compose.contains(&format!("\"--announce\", \"{announce}\"")), "{announce}");
    }
}

#[test]
fn the_kubernetes_manifests_pass_the_schemas_and_cross_reference_checks() {
    let dir = tempfile::tempdir().unwrap();
    let toml_out = dir.path().join("configmap-picket.toml");
    let out = Command::new("python3")
        .arg("docker/k8s/check-manifests")
        .arg("--toml-out")
        .arg(&toml_out)
        .output()
        .expect("python3 runs");
    let report =
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{report}");
    assert!(
        out.status.success(),
        "docker/k8s/check-manifests failed (scripts/setup installs PyYAML and \
         kubernetes-validate):\n{report}"
    );
    // The ConfigMap's file parses for each pod, announced as the StatefulSet announces it.
    let text = fs::read_to_string(&toml_out).unwrap();
    assert_names_only(&text);
    let announces: Vec<String> = (0..3).map(|i| format!("picket-{i}.picket:26380")).collect();
    check_for_every_node(&text, "/etc/picket/secrets/peer-secret", &announces);
}

#[test]
fn the_compose_file_is_accepted_by_compose_when_it_is_installed() {
    let compose: Option<Vec<&str>> =
        [vec!["docker", "compose"], vec!["docker-compose"]].into_iter().find(|c| {
            Command::new(c[0])
                .args(&c[1..])
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(compose) = compose else {
        println!("SKIPPED: neither `docker compose` nor `docker-compose` is installed");
        return;
    };
    let out = Command::new(compose[0])
        .args(&compose[1..])
        .args(["-f", "docker/compose.yaml", "config", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
