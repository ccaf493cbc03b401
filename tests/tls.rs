//! TLS with real processes: `redis-server` listening on `tls-port` only (certificates made by
//! the test), three pickets whose gossip, Sentinel port and HTTP API use TLS, and redis-py in
//! Sentinel mode over TLS to both; then certificates that must be refused.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

#[path = "support/resp.rs"]
mod resp;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use picket::wire::resp::Frame;
use resp::{Resp, bulk};
use support::http::{get, metric, metrics};
use support::tls::{Pair, Pki, Validity, fingerprint, served_fingerprint};
use support::{
    Cluster, ClusterOptions, Group, NodeTls, Picket, Redis, RedisTls, free_port, missing,
    node_specs, redis_py_installed, wait_for, wait_until,
};

const LONG: Duration = Duration::from_secs(60);

/// One cluster at a time: two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A master's `tls_*` keys.
fn master_tls(ca: &Path, client: Option<&Pair>) -> String {
    let mut text = format!("tls = true\ntls_ca_file = \"{}\"\n", ca.display());
    if let Some(pair) = client {
        text.push_str(&format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            pair.cert.display(),
            pair.key.display()
        ));
    }
    text
}

/// redis-py in Sentinel mode over TLS: to the pickets' `tls_listen` (verified against their CA,
/// as the read user `app`, through `sentinel_kwargs`) and to the TLS-only Redis servers (with a
/// client certificate, as `tls-auth-clients yes` requires). Discovers, writes, then after "go"
/// writes through the same client until a write lands on the new master.
const REDIS_PY_TLS: &str = r#"
import json, sys, time
from redis.sentinel import Sentinel

cfg = json.loads(sys.argv[1])
sentinels = [(a.rsplit(":", 1)[0], int(a.rsplit(":", 1)[1])) for a in cfg["sentinels"]]
sentinel = Sentinel(
    sentinels,
    sentinel_kwargs={
        "ssl": True, "ssl_ca_certs": cfg["picket_ca"],
        "username": "app", "password": cfg["password"], "socket_timeout": 2.0,
    },
    socket_timeout=2.0,
    ssl=True, ssl_ca_certs=cfg["redis_ca"], ssl_certfile=cfg["cert"], ssl_keyfile=cfg["key"],
)
host, port = sentinel.discover_master("session")
replicas = sorted("%s:%d" % r for r in sentinel.discover_slaves("session"))
master = sentinel.master_for("session", socket_timeout=2.0)
master.set("tls-greeting", "hello")
assert master.get("tls-greeting") == b"hello"
print(json.dumps({"master": "%s:%d" % (host, port), "replicas": replicas}), flush=True)

sys.stdin.readline()
deadline = time.time() + 60
attempts = 0
while True:
    attempts += 1
    try:
        master.set("tls-after", attempts)
        if master.get("tls-after") == str(attempts).encode():
            break
    except Exception:
        time.sleep(0.05)
    if time.time() > deadline:
        print(json.dumps({"error": "no write succeeded"}), flush=True)
        sys.exit(1)
host, port = sentinel.discover_master("session")
print(json.dumps({"master": "%s:%d" % (host, port), "attempts": attempts}), flush=True)
"#;

#[test]
fn tls_everywhere_a_sigkill_failover_and_redis_py_writing_through_it() {
    if missing("redis-py", redis_py_installed()) {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Two PKIs, as in practice: the pickets' own, and the Redis servers'.
    let pickets_pki = Pki::new("picket");
    let redis_pki = Pki::new("redis");
    let redis_tls = RedisTls {
        ca_file: redis_pki.ca_file.clone(),
        server: redis_pki.issue("redis", &["127.0.0.1", "localhost"]),
        auth_clients: true,
    };
    // Picket's client certificate for tls-auth-clients yes.
    let client = redis_pki.issue("picket-client", &["picket"]);
    let node_tls = NodeTls {
        dir: pickets_pki.dir().to_owned(),
        ca_file: pickets_pki.ca_file.clone(),
        client_auth: "none",
        peers: true,
        listeners: true,
    };
    for i in 1..=3 {
        let ip = format!("127.0.0.{i}");
        pickets_pki.issue_to(&node_tls.pair(&ip), &[&ip], Validity::Current);
    }
    let group = Group::start_tls("session", 2, &redis_tls);
    let options = ClusterOptions {
        master_extra: master_tls(&redis_tls.ca_file, Some(&client)),
        node_extra: "requirepass = \"root-secret\"\n".to_owned(),
        node_tls: Some(node_tls),
        sections: "\n[[user]]\nname = \"app\"\npassword = \"app-secret\"\nrole = \"read\"\n"
            .to_owned(),
        ..ClusterOptions::default()
    };
    let mut cluster = Cluster::start(3, vec![group], &options);
    // Monitoring over TLS: every replica discovered, every peer heard (gossip over TLS).
    cluster.wait_ready();
    let old = cluster.group("session").master.addr();

    let sentinels: Vec<String> = cluster.pickets.iter().map(|p| p.spec.tls_listen_addr()).collect();
    let cfg = serde_json::json!({
        "sentinels": sentinels,
        "picket_ca": pickets_pki.ca_file,
        "password": "app-secret",
        "redis_ca": redis_tls.ca_file,
        "cert": redis_tls.server.cert,
        "key": redis_tls.server.key,
    });
    let mut python = Command::new("python3")
        .args(["-c", REDIS_PY_TLS, &cfg.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = python.stdin.take().unwrap();
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    let first: serde_json::Value =
        serde_json::from_str(&lines.next().expect("discovery report").unwrap()).unwrap();
    assert_eq!(first["master"], old.as_str(), "{first}");
    let mut replicas: Vec<String> =
        cluster.group("session").replicas.iter().map(Redis::addr).collect();
    replicas.sort();
    assert_eq!(first["replicas"], serde_json::json!(replicas), "{first}");

    cluster.group_mut("session").master.kill();
    writeln!(stdin, "go").unwrap();
    let after: serde_json::Value =
        serde_json::from_str(&lines.next().expect("failover report").unwrap()).unwrap();
    assert!(python.wait().unwrap().success(), "{after}");
    let new = cluster.check_one_clean_failover("session", &old);
    assert_eq!(after["master"], new.as_str(), "{after}");

    // The plain port still answers beside the TLS one (a migration runs both).
    let mut plain = Resp::connect(&cluster.pickets[0].spec.listen_addr());
    assert_eq!(plain.call(&["AUTH", "app", "app-secret"]), Frame::Simple("OK".to_owned()));
    let (host, port) = new.split_once(':').unwrap();
    assert_eq!(
        plain.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "session"]),
        Frame::Array(vec![bulk(host), bulk(port)])
    );
    for picket in &cluster.pickets {
        // The TLS listeners serve the node's own certificate.
        let own = fingerprint(&options.node_tls.as_ref().unwrap().pair(&picket.spec.ip).cert);
        let served = served_fingerprint(&picket.spec.tls_listen_addr(), &pickets_pki.ca_file, None);
        assert_eq!(served.as_deref(), Ok(own.as_str()));
        // HTTPS serves the API with the node's certificate.
        let https =
            curl_https(&picket.spec.tls_http_addr(), "/v1/masters/session", &pickets_pki.ca_file);
        assert!(https.contains(&format!("\"address\":\"{new}\"")), "{https}");
        let text = metrics(&picket.spec.http_addr());
        // Every peer connection authenticated: none refused.
        let refused: f64 =
            ["unknown_ca", "expired", "name_mismatch", "no_client_cert", "refused_by_peer"]
                .iter()
                .filter_map(|r| {
                    metric(
                        &text,
                        "picket_tls_handshake_failures_total",
                        &[("endpoint", "peer"), ("reason", r)],
                    )
                })
                .sum();
        assert_eq!(refused, 0.0, "{text}");
    }
}

/// `curl` over HTTPS, trusting `ca`.
fn curl_https(addr: &str, path: &str, ca: &Path) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .arg(format!("https://{addr}{path}"))
        .output()
        .expect("curl is installed");
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// One picket supervising five TLS-only masters, one configured right and four wrong: its links
/// to those must be refused with a log line that says why, and counted in `/metrics`.
#[test]
fn wrong_ca_expired_certificate_wrong_name_and_missing_client_certificate_are_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let trusted = Pki::new("trusted");
    let stranger = Pki::new("stranger");
    let client = trusted.issue("picket-client", &["picket"]);
    let server = |pki: &Pki, stem: &str, names: &[&str], validity, auth_clients| RedisTls {
        ca_file: trusted.ca_file.clone(),
        server: pki.issue_with(stem, names, validity),
        auth_clients,
    };
    let local = ["127.0.0.1"];
    let cases = [
        // (master, server setup, Picket's client certificate, expected reason)
        ("good", server(&trusted, "good", &local, Validity::Current, true), true, None),
        (
            "wrong-ca",
            server(&stranger, "other", &local, Validity::Current, false),
            true,
            Some("unknown_ca"),
        ),
        (
            "expired",
            server(&trusted, "old", &local, Validity::Expired, false),
            true,
            Some("expired"),
        ),
        (
            "wrong-name",
            server(&trusted, "named", &["redis.example"], Validity::Current, false),
            true,
            Some("name_mismatch"),
        ),
        (
            "no-client-cert",
            server(&trusted, "strict", &local, Validity::Current, true),
            false,
            Some("no_client_cert"),
        ),
    ];
    let servers: Vec<Redis> =
        cases.iter().map(|(_, tls, _, _)| Redis::start_tls(free_port(), tls, None)).collect();
    let spec = node_specs(1).remove(0);
    let picket = Picket::start(spec.clone(), |state| {
        let mut text = format!(
            "[node]\nlisten = \"{}\"\ngossip = \"{}\"\nhttp = \"{}\"\nstate_dir = \"{}\"\n",
            spec.listen_addr(),
            spec.gossip_addr(),
            spec.http_addr(),
            state.display()
        );
        for ((name, _, with_client, _), redis) in cases.iter().zip(&servers) {
            text.push_str(&format!(
                "\n[[master]]\nname = \"{name}\"\naddress = \"{}\"\nquorum = 1\ndown_after_ms = 1000\n{}",
                redis.addr(),
                master_tls(&trusted.ca_file, with_client.then_some(&client))
            ));
        }
        text
    });
    let http = spec.http_addr();
    wait_until("the HTTP API", LONG, || std::net::TcpStream::connect(&http).ok());
    // The right one is monitored over TLS.
    wait_for("the good master's link up", LONG, || {
        metric(&metrics(&http), "picket_instance_link_up", &[("master", "good")]) == Some(1.0)
    });
    for ((name, _, _, reason), redis) in cases.iter().zip(&servers) {
        let Some(reason) = reason else { continue };
        wait_for(&format!("{name}: {reason} counted"), LONG, || {
            let labels = [("endpoint", "redis"), ("reason", *reason)];
            metric(&metrics(&http), "picket_tls_handshake_failures_total", &labels)
                .is_some_and(|n| n >= 1.0)
        });
        // One clear warning naming the instance and the reason.
        let log = picket.log();
        let line = log
            .lines()
            .find(|l| l.contains("\"level\":\"WARN\"") && l.contains(&redis.addr()))
            .unwrap_or_else(|| panic!("no warning for {name}:\n{log}"));
        assert!(line.contains(&format!("TLS handshake failed ({reason})")), "{line}");
        let text = metrics(&http);
        assert_eq!(
            metric(&text, "picket_instance_link_up", &[("master", name)]),
            Some(0.0),
            "{name} must never be up"
        );
    }
    let log = picket.log();
    // Reconnections do not repeat the warning for the same cause.
    for (name, _, _, reason) in &cases {
        if reason.is_some() {
            let warnings = log
                .lines()
                .filter(|l| l.contains("\"level\":\"WARN\"") && l.contains("TLS handshake failed"))
                .filter(|l| {
                    l.contains(&servers[cases.iter().position(|c| c.0 == *name).unwrap()].addr())
                })
                .count();
            assert_eq!(warnings, 1, "{name}:\n{log}");
        }
    }
    let status = get(&http, "/v1/masters/good").json();
    assert_eq!(status["master"]["link"], "up", "{status}");
}

/// Gossip over TLS refuses a node whose certificate does not name it, even when the cluster's CA
/// signed it, and says so; the rest of the cluster talks as before.
#[test]
fn a_peer_whose_certificate_names_another_host_is_refused() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let pki = Pki::new("picket");
    let node_tls = NodeTls {
        dir: pki.dir().to_owned(),
        ca_file: pki.ca_file.clone(),
        client_auth: "none",
        peers: true,
        listeners: false,
    };
    pki.issue_to(&node_tls.pair("127.0.0.1"), &["127.0.0.1"], Validity::Current);
    pki.issue_to(&node_tls.pair("127.0.0.2"), &["127.0.0.9"], Validity::Current);
    let group = Group::start("session", 1, None);
    let options =
        ClusterOptions { quorum: 1, node_tls: Some(node_tls), ..ClusterOptions::default() };
    let cluster = Cluster::start(2, vec![group], &options);
    let [first, second] = cluster.pickets.as_slice() else { panic!("two pickets") };
    for picket in [first, second] {
        let http = picket.spec.http_addr();
        wait_for("a refused gossip handshake", LONG, || {
            let text = metrics(&http);
            let counted = |reason| {
                metric(
                    &text,
                    "picket_tls_handshake_failures_total",
                    &[("endpoint", "peer"), ("reason", reason)],
                )
                .is_some_and(|n| n >= 1.0)
            };
            counted("name_mismatch") || counted("refused_by_peer")
        });
    }
    // The first refuses the second's certificate as a client, and the second's dialer is told.
    let text = metrics(&first.spec.http_addr());
    assert!(
        metric(
            &text,
            "picket_tls_handshake_failures_total",
            &[("endpoint", "peer"), ("reason", "name_mismatch")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // The counter may be read before the log line lands (seen once under load): wait for it.
    wait_for("the refusal logged", LONG, || first.log().contains("refused a gossip connection"));
    assert_eq!(metric(&text, "picket_peers_fresh", &[]), Some(0.0), "{text}");
    assert!(!first.saw("+sentinel "), "the second node was never heard");
}
