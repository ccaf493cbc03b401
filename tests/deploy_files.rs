//! The deployment files, without Docker or a cluster: the compose stack's and the Kubernetes
//! ConfigMap's `picket.toml` pass `picket check` for every node, every address in them is a
//! host name, the Kubernetes manifests pass the API schemas and the cross-reference checks
//! of `docker/k8s/check-manifests`, the compose stack's Prometheus configuration passes
//! `promtool check config` with the alert rules, and every metric the Grafana dashboard
//! (`docker/grafana/picket.json`) queries is one a running Picket exports. The stack itself runs
//! in `tests/docker_e2e.rs`.

#![allow(clippy::disallowed_methods)] // one test runs a real picket against a real redis-server

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use promql_parser::parser::{self, Expr};
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::Value;
use support::http::{metrics, promtool};
use support::{ClusterOptions, Group, Picket, config_text, missing, node_specs, wait_until};

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

#[test]
fn the_compose_stacks_prometheus_configuration_loads_with_the_alert_rules() {
    // As the compose file mounts them: the rules next to the configuration.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    fs::copy("docker/prometheus/prometheus.yml", &config).unwrap();
    fs::copy("config/alerts.yml", dir.path().join("alerts.yml")).unwrap();
    let checked = promtool(&["check", "config", &config.display().to_string()], None);
    if missing("promtool (Debian's prometheus package)", checked.is_some()) {
        return;
    }
    if let Some(Err(output)) = checked {
        panic!("promtool check config docker/prometheus/prometheus.yml:\n{output}");
    }
    let compose = fs::read_to_string("docker/compose.yaml").unwrap();
    for mount in [
        "./prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
        "../config/alerts.yml:/etc/prometheus/alerts.yml:ro",
    ] {
        assert!(compose.contains(mount), "docker/compose.yaml mounts {mount}");
    }
}

/// The families a running Picket serves on `/metrics` (those with samples; `# TYPE` lines), as
/// the series names Prometheus stores: counters with `_total` (the classic text format already
/// says so), histograms as their `_bucket`, `_sum` and `_count` series.
fn served_series_names() -> BTreeSet<String> {
    let group = Group::start("session", 1, None);
    let specs = node_specs(1);
    let options = ClusterOptions { quorum: 1, ..ClusterOptions::default() };
    let picket = Picket::start(specs[0].clone(), |state| {
        config_text(&specs[0], &specs, &[&group], state, &options)
    });
    let text = wait_until("/metrics of a running picket", Duration::from_secs(60), || {
        let text = metrics(&picket.spec.http_addr());
        text.contains("# TYPE picket_instance_ping_rtt_seconds gauge").then_some(text)
    });
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(family) = line.strip_prefix("# TYPE ") else { continue };
        let (name, kind) = family.split_once(' ').expect("# TYPE name kind");
        let suffixes: &[&str] = match kind {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|suffix| format!("{name}{suffix}")));
    }
    names
}

/// A Grafana query as PromQL: its template variables replaced by values of the right kind
/// (Grafana's own `$__interval`, `$__rate_interval` and `$__range` by a duration; the
/// dashboard's variables, which it uses only inside label matchers, by a word).
fn as_promql(query: &str) -> String {
    let mut out = String::new();
    let mut rest = query;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, len) = match after.strip_prefix('{') {
            Some(braced) => {
                let end = braced.find('}').expect("a closed ${variable}");
                (&braced[..end], end + 2)
            }
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        assert!(!name.is_empty(), "a lone $ in {query}");
        out.push_str(if name.starts_with("__") { "5m" } else { "x" });
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// The metric names a PromQL expression selects.
struct Selected(BTreeSet<String>);

impl ExprVisitor for Selected {
    type Error = String;

    fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
        let selector = match expr {
            Expr::VectorSelector(selector) => selector,
            Expr::MatrixSelector(matrix) => &matrix.vs,
            _ => return Ok(true),
        };
        let by_matcher =
            selector.matchers.matchers.iter().find(|m| m.name == "__name__").map(|m| &m.value);
        let name = selector.name.as_ref().or(by_matcher).ok_or_else(|| {
            format!("a selector without a metric name ({selector}) would match anything")
        })?;
        self.0.insert(name.clone());
        Ok(true)
    }
}

/// The metric names `query` (a Grafana query: PromQL, or `label_values(selector, label)` in a
/// variable) selects; an error if it does not parse.
fn metric_names(query: &str) -> Result<BTreeSet<String>, String> {
    let promql = as_promql(query.trim());
    let promql = match promql.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')) {
        Some(args) => args.rsplit_once(',').map_or("", |(selector, _label)| selector).to_owned(),
        None => promql,
    };
    let expr = parser::parse(&promql).map_err(|e| format!("{query}: {e}"))?;
    let mut selected = Selected(BTreeSet::new());
    walk_expr(&mut selected, &expr).map_err(|e| format!("{query}: {e}"))?;
    Ok(selected.0)
}

/// Every query of the dashboard: (where it is, the query). Panels (also those nested in
/// collapsed rows), annotations and query variables.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn panels(list: &Value, out: &mut Vec<(String, String)>) {
        for panel in list.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?");
            let targets = panel["targets"].as_array();
            if panel["type"] != "row" {
                assert!(targets.is_some_and(|t| !t.is_empty()), "panel {title:?} has no queries");
                assert_eq!(
                    panel["datasource"]["uid"], "${datasource}",
                    "panel {title:?} uses the dashboard's data source variable"
                );
            }
            for target in targets.into_iter().flatten() {
                let expr = target["expr"].as_str();
                let expr = expr.unwrap_or_else(|| panic!("panel {title:?}: a query without expr"));
                out.push((format!("panel {title:?}"), expr.to_owned()));
            }
            panels(&panel["panels"], out);
        }
    }
    let mut queries = Vec::new();
    panels(&dashboard["panels"], &mut queries);
    for annotation in dashboard["annotations"]["list"].as_array().into_iter().flatten() {
        if let Some(expr) = annotation["expr"].as_str() {
            queries.push((format!("annotation {}", annotation["name"]), expr.to_owned()));
        }
    }
    for variable in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if variable["type"] == "query" {
            let query = variable["query"]["query"].as_str().or_else(|| variable["query"].as_str());
            let query =
                query.unwrap_or_else(|| panic!("variable {} has no query", variable["name"]));
            queries.push((format!("variable {}", variable["name"]), query.to_owned()));
        }
    }
    queries
}

#[test]
fn every_metric_the_grafana_dashboard_queries_is_one_picket_exports() {
    let text = fs::read_to_string("docker/grafana/picket.json").unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "picket");
    let queries = dashboard_queries(&dashboard);
    // The vocabulary of src/metrics.rs, the one place that names metrics: every family it
    // registers, also those that have no sample yet (no failover has happened, say), which a
    // scrape leaves out. It must name what a real picket serves exactly as served.
    let exported = picket::metrics::series_names();
    let served = served_series_names();
    let unlisted: Vec<&String> = served.difference(&exported).collect();
    assert!(unlisted.is_empty(), "served but not in metrics::series_names(): {unlisted:?}");
    println!(
        "{} queries; {} series names exported, {} served by a fresh picket",
        queries.len(),
        exported.len(),
        served.len()
    );

    // The check itself finds a misspelled name.
    let misspelled = metric_names("rate(picket_resp_comands_total[$__rate_interval])").unwrap();
    assert!(misspelled.iter().any(|name| !exported.contains(name)), "{misspelled:?}");

    let mut queried = BTreeSet::new();
    let mut wrong = Vec::new();
    for (place, query) in &queries {
        match metric_names(query) {
            Ok(names) => {
                wrong.extend(
                    names
                        .iter()
                        .filter(|name| !exported.contains(*name))
                        .map(|name| format!("{place}: {name} is not exported")),
                );
                queried.extend(names);
            }
            Err(error) => wrong.push(format!("{place}: not PromQL: {error}")),
        }
    }
    assert!(wrong.is_empty(), "docker/grafana/picket.json:\n{}", wrong.join("\n"));
    // What the dashboard is for: masters and their state, failovers and their durations, peer
    // agreement, ping latency, replication lag, clients.
    for needed in [
        "picket_master_info",
        "picket_master_status",
        "picket_master_switches_total",
        "picket_failover_duration_seconds_bucket",
        "picket_master_peers_agreeing",
        "picket_instance_ping_rtt_seconds",
        "picket_instance_repl_offset",
        "picket_resp_clients",
    ] {
        assert!(queried.contains(needed), "the dashboard shows {needed}");
    }
}
