//! Certificate rotation under a running three-node cluster, without restarting anything: the
//! pickets move to a new CA (first trusting both, then only the new one) and new certificates,
//! and get a new client certificate for Redis. New connections (opened by the test, and forced
//! for gossip and Redis links by aborting the old ones with `ss -K`) use the new certificates,
//! and nothing fails over.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::http::{metric, metrics};
use support::tls::{Pki, Validity, fingerprint, served_fingerprint, write_atomically};
use support::{
    Cluster, ClusterOptions, Group, NodeTls, RedisTls, durable_master, missing, wait_for,
};

const LONG: Duration = Duration::from_secs(60);

/// The fingerprint `/metrics` shows for a certificate set of the node at `http`.
fn loaded(http: &str, set: &str) -> Option<String> {
    let text = metrics(http);
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("picket_tls_certificate_info{")?;
        if !rest.contains(&format!("certificates=\"{set}\"")) {
            return None;
        }
        let sha = rest.split("sha256=\"").nth(1)?;
        Some(sha.split('"').next()?.to_owned())
    })
}

/// Successful reloads of the node's certificate set.
fn reloads(http: &str) -> f64 {
    let labels = [("certificates", "node"), ("result", "ok")];
    metric(&metrics(http), "picket_tls_certificate_reloads_total", &labels).unwrap_or(0.0)
}

/// Aborts every TCP connection from or to `port` on loopback (`ss -K`, root only).
fn abort_connections(port: u16) {
    let filter = format!("( dport = :{port} or sport = :{port} )");
    let status = Command::new("ss").args(["-K", "-t"]).args(filter.split(' ')).status().unwrap();
    assert!(status.success(), "ss -K failed");
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

#[test]
fn certificates_rotate_under_a_running_cluster_and_nothing_fails_over() {
    if missing("root (ss -K aborts connections)", is_root()) {
        return;
    }
    let old_ca = Pki::new("picket-old");
    let new_ca = Pki::new("picket-new");
    let redis_pki = Pki::new("redis");
    // The pickets' CA bundle: a file of its own, rewritten during the rotation.
    let bundle = old_ca.dir().join("bundle.pem");
    let ca_text = |pki: &Pki| std::fs::read_to_string(&pki.ca_file).unwrap();
    write_atomically(&bundle, &ca_text(&old_ca));
    let node_tls = NodeTls {
        dir: old_ca.dir().to_owned(),
        ca_file: bundle.clone(),
        client_auth: "none",
        peers: true,
        listeners: true,
    };
    let ips: Vec<String> = (1..=3).map(|i| format!("127.0.0.{i}")).collect();
    for ip in &ips {
        old_ca.issue_to(&node_tls.pair(ip), &[ip], Validity::Current);
    }
    let redis_tls = RedisTls {
        ca_file: redis_pki.ca_file.clone(),
        server: redis_pki.issue("redis", &["127.0.0.1"]),
        auth_clients: true,
    };
    let client = redis_pki.issue("picket-client", &["picket"]);
    let group = Group::start_tls("session", 2, &redis_tls);
    let options = ClusterOptions {
        down_after_ms: 2000,
        master_extra: format!(
            "tls = true\ntls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
            redis_tls.ca_file.display(),
            client.cert.display(),
            client.key.display()
        ),
        node_tls: Some(node_tls.clone()),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(3, vec![group], &options);
    cluster.wait_ready();
    let master = cluster.group("session").master.addr();
    let https = |i: usize| cluster.pickets[i].spec.http_addr();

    // 1. Trust both CAs.
    write_atomically(&bundle, &format!("{}{}", ca_text(&old_ca), ca_text(&new_ca)));
    for i in 0..3 {
        wait_for("the bundle of both CAs loaded", LONG, || reloads(&https(i)) >= 1.0);
    }
    // 2. New certificates from the new CA (key first, then certificate, as a tool writes
    //    them), and a new client certificate for Redis.
    for ip in &ips {
        new_ca.issue_to(&node_tls.pair(ip), &[ip], Validity::Current);
    }
    redis_pki.issue_to(&client, &["picket"], Validity::Current);
    let client_sha = fingerprint(&client.cert);
    for (i, ip) in ips.iter().enumerate() {
        let sha = fingerprint(&node_tls.pair(ip).cert);
        wait_for("the new certificates loaded", LONG, || {
            loaded(&https(i), "node").as_deref() == Some(sha.as_str())
                && loaded(&https(i), "master session").as_deref() == Some(client_sha.as_str())
        });
        let spec = &cluster.pickets[i].spec;
        // New connections get them: the Sentinel port, HTTPS, and gossip (as a peer).
        let peer = node_tls.pair(&ips[(i + 1) % 3]);
        for (addr, offered) in [
            (spec.tls_listen_addr(), None),
            (spec.tls_http_addr(), None),
            (spec.gossip_addr(), Some(&peer)),
        ] {
            assert_eq!(served_fingerprint(&addr, &bundle, offered), Ok(sha.clone()), "{addr}");
        }
    }
    // 3. Trust only the new CA: from now on a certificate of the old one is refused.
    write_atomically(&bundle, &ca_text(&new_ca));
    for i in 0..3 {
        wait_for("the new CA alone loaded", LONG, || reloads(&https(i)) >= 3.0);
    }
    // 4. Abort every gossip connection and every Redis link: they are redialed with the new
    //    certificates (an old one would now be refused by the peer).
    let dialed =
        |i: usize| cluster.pickets[i].log().matches("\"message\":\"connected to peer\"").count();
    let before: Vec<usize> = (0..3).map(dialed).collect();
    let aborted_at = Instant::now();
    abort_connections(cluster.pickets[0].spec.gossip);
    for redis in cluster.group("session").all() {
        abort_connections(redis.port);
    }
    for (i, before) in before.iter().enumerate() {
        wait_for("both peers redialed", LONG, || dialed(i) >= before + 2);
        wait_for("both peers fresh again", LONG, || {
            metric(&metrics(&https(i)), "picket_peers_fresh", &[]) == Some(2.0)
        });
        let text = metrics(&https(i));
        for reason in ["unknown_ca", "name_mismatch", "refused_by_peer", "no_client_cert"] {
            let labels = [("endpoint", "peer"), ("reason", reason)];
            let refused = metric(&text, "picket_tls_handshake_failures_total", &labels);
            assert_eq!(refused, Some(0.0), "{reason}:\n{text}");
        }
    }
    for redis in cluster.group("session").all() {
        wait_for("Picket's links to Redis reconnected", LONG, || {
            let list = redis.query(&["CLIENT", "LIST"]).ok();
            let Some(list) = list.and_then(|v| redis::from_redis_value::<String>(v).ok()) else {
                return false;
            };
            // Three pickets, each with a link opened since the abort.
            let fresh = list
                .lines()
                .filter(|l| l.contains(" name=picket-"))
                .filter_map(|l| l.split(" age=").nth(1)?.split(' ').next()?.parse::<u64>().ok())
                .filter(|age| *age <= aborted_at.elapsed().as_secs())
                .count();
            fresh == 3
        });
    }
    // Nothing failed over, and the master is where it was.
    for picket in &cluster.pickets {
        for event in ["+sdown master", "+odown", "+try-failover", "+switch-master"] {
            assert!(!picket.saw(event), "{event}:\n{}", picket.log());
        }
    }
    assert_eq!(cluster.group("session").master.role().as_deref(), Some("master"));
    for picket in &cluster.pickets {
        assert_eq!(durable_master(picket, "session"), Some((master.clone(), 0)));
    }
}
