//! Unmodified Redis client libraries in Sentinel mode against three pickets supervising real
//! `redis-server` groups: the `redis` crate's sentinel client and Python's redis-py `Sentinel`
//! discover masters and replicas, write and read through the master, and keep writing through
//! the same client object across a failover after the master is killed. Every picket tells its
//! subscribers about the switch exactly once.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

#[path = "support/resp.rs"]
mod resp;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use picket::wire::resp::Frame;
use redis::sentinel::{Sentinel, SentinelClient, SentinelServerType};
use redis::{Commands, ConnectionAddr};
use resp::{Resp, bulk, get, items, pairs};
use support::{Cluster, ClusterOptions, Group, wait_for, wait_until};

const LONG: Duration = Duration::from_secs(60);
const NAMES: [&str; 3] = ["session", "cache", "realtime"];

/// Both tests run whole clusters; one at a time keeps two cores from drowning.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Three pickets supervising `session` (two replicas), `cache` and `realtime` (one each), once
/// every picket sees its peers and every replica.
fn cluster() -> Cluster {
    let groups = vec![
        Group::start("session", 2, None),
        Group::start("cache", 1, None),
        Group::start("realtime", 1, None),
    ];
    let cluster = Cluster::start(3, groups, &ClusterOptions::default());
    for picket in &cluster.pickets {
        let addr = picket.spec.listen_addr();
        wait_until("the sentinel port", LONG, || TcpStream::connect(&addr).ok());
        let mut c = Resp::connect(&addr);
        wait_for("peers and replicas known", LONG, || {
            cluster.groups.iter().all(|g| {
                let master = pairs(&c.call(&["SENTINEL", "MASTER", &g.name]));
                let replicas = items(c.call(&["SENTINEL", "REPLICAS", &g.name]));
                get(&master, "num-other-sentinels") == "2"
                    && get(&master, "flags") == "master"
                    && replicas.len() == g.replicas.len()
                    && replicas.iter().all(|r| get(&pairs(r), "flags") == "slave")
            })
        });
    }
    cluster
}

fn sentinel_urls(cluster: &Cluster) -> Vec<String> {
    cluster.pickets.iter().map(|p| format!("redis://{}/", p.spec.listen_addr())).collect()
}

fn tcp_addr(client: &redis::Client) -> String {
    match client.get_connection_info().addr() {
        ConnectionAddr::Tcp(host, port) => format!("{host}:{port}"),
        other => panic!("unexpected address {other:?}"),
    }
}

/// A `+switch-master` subscriber on every picket.
fn subscribers(cluster: &Cluster) -> Vec<Resp> {
    cluster
        .pickets
        .iter()
        .map(|p| {
            let mut c = Resp::connect(&p.spec.listen_addr());
            assert_eq!(
                c.call(&["SUBSCRIBE", "+switch-master"]),
                Frame::Array(vec![bulk("subscribe"), bulk("+switch-master"), Frame::Integer(1)])
            );
            c
        })
        .collect()
}

/// Waits for the `+switch-master` of `name` from `old` on every subscriber, then checks that
/// none says it twice. Returns the new master's address.
fn one_switch_each(subscribers: &mut [Resp], name: &str, old: &str) -> String {
    let mut new = None;
    for sub in subscribers.iter_mut() {
        sub.stream.set_read_timeout(Some(LONG)).unwrap();
        let message = sub.read();
        let Frame::Array(parts) = message else { panic!("a message: {message:?}") };
        assert_eq!(parts[0], bulk("message"));
        assert_eq!(parts[1], bulk("+switch-master"));
        let payload = resp::text(&parts[2]);
        let words: Vec<&str> = payload.split(' ').collect();
        assert_eq!(words.len(), 5, "{payload}");
        assert_eq!(words[0], name);
        assert_eq!(format!("{}:{}", words[1], words[2]), old);
        let to = format!("{}:{}", words[3], words[4]);
        assert_eq!(*new.get_or_insert_with(|| to.clone()), to, "every picket names one master");
    }
    // A second announcement would arrive within a few heartbeats; give it ample time.
    for sub in subscribers.iter_mut() {
        sub.stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut probe = [0u8; 1];
        let extra = sub.stream.peek(&mut probe).map(|n| n > 0).unwrap_or(false);
        assert!(!extra, "a second +switch-master: {:?}", sub.next());
    }
    new.expect("a new master")
}

#[test]
fn the_redis_crate_sentinel_client_follows_a_failover() {
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut cluster = cluster();
    let urls = sentinel_urls(&cluster);
    let mut sentinel = Sentinel::build(urls.clone()).unwrap();
    for name in NAMES {
        let group = cluster.group(name);
        let master = sentinel.master_for(name, None).unwrap();
        assert_eq!(tcp_addr(&master), group.master.addr(), "{name}");
        let mut replicas: Vec<String> =
            sentinel.get_replica_clients(name, None).unwrap().iter().map(tcp_addr).collect();
        replicas.sort();
        let mut expected: Vec<String> = group.replicas.iter().map(|r| r.addr()).collect();
        expected.sort();
        assert_eq!(replicas, expected, "{name}");
    }

    let mut client =
        SentinelClient::build(urls, "session", None, SentinelServerType::Master).unwrap();
    let mut conn = client.get_connection().unwrap();
    let () = conn.set("greeting", "hello").unwrap();
    let read: String = conn.get("greeting").unwrap();
    assert_eq!(read, "hello");
    // Let the replicas catch up before their master dies.
    let old = cluster.group("session").master.addr();
    wait_for("replicas synced", LONG, || {
        cluster.group("session").replicas.iter().all(|r| {
            matches!(r.query(&["GET", "greeting"]), Ok(redis::Value::BulkString(ref b)) if b == b"hello")
        })
    });

    let mut subs = subscribers(&cluster);
    cluster.group_mut("session").master.kill();
    let started = Instant::now();
    let mut attempts = 0;
    let written_on = loop {
        attempts += 1;
        let attempt = client.get_connection().and_then(|mut c| {
            let () = c.set("after", attempts)?;
            let seen: u64 = c.get("after")?;
            Ok((seen, c))
        });
        if let Ok((seen, _)) = attempt {
            assert_eq!(seen, attempts);
            break client.get_client().map(|c| tcp_addr(&c)).unwrap();
        }
        assert!(started.elapsed() < LONG, "no write succeeded after the failover");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_ne!(written_on, old);
    let new = one_switch_each(&mut subs, "session", &old);
    assert_eq!(written_on, new, "the client writes where the pickets say the master is");
    let group = cluster.group("session");
    let promoted = group.at(&new).expect("a former replica");
    assert_eq!(promoted.role().as_deref(), Some("master"));
    assert!(
        matches!(promoted.query(&["GET", "greeting"]), Ok(redis::Value::BulkString(ref b)) if b == b"hello")
    );
    for picket in &cluster.pickets {
        let mut c = Resp::connect(&picket.spec.listen_addr());
        let reply = c.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "session"]);
        let (host, port) = new.split_once(':').unwrap();
        assert_eq!(reply, Frame::Array(vec![bulk(host), bulk(port)]));
    }
}

/// The redis-py side: discovery in RESP2 and RESP3, a write through `master_for`, then (after
/// the test kills the master and says "go") writes through the same client until one lands.
const REDIS_PY: &str = r#"
import json, sys, time
from redis.sentinel import Sentinel

sentinels = [(a.split(":")[0], int(a.split(":")[1])) for a in sys.argv[1].split(",")]
victim = sys.argv[2]
report = {}
for proto in (2, 3):
    s = Sentinel(sentinels, socket_timeout=2.0, protocol=proto)
    found = {}
    for name in ("session", "cache", "realtime"):
        host, port = s.discover_master(name)
        found[name] = {
            "master": "%s:%d" % (host, port),
            "replicas": sorted("%s:%d" % r for r in s.discover_slaves(name)),
        }
    found["sentinels"] = sorted(
        "%s:%d" % (d["ip"], d["port"]) for d in s.sentinels[0].sentinel_sentinels("session")
    )
    report[proto] = found
sentinel = Sentinel(sentinels, socket_timeout=2.0)
master = sentinel.master_for(victim, socket_timeout=2.0)
master.set("py-greeting", "hello")
assert master.get("py-greeting") == b"hello"
print(json.dumps(report), flush=True)

sys.stdin.readline()
deadline = time.time() + 60
attempts = 0
while True:
    attempts += 1
    try:
        master.set("py-after", attempts)
        if master.get("py-after") == str(attempts).encode():
            break
    except Exception:
        time.sleep(0.05)
    if time.time() > deadline:
        print(json.dumps({"error": "no write succeeded"}), flush=True)
        sys.exit(1)
host, port = sentinel.discover_master(victim)
print(json.dumps({"master": "%s:%d" % (host, port), "attempts": attempts}), flush=True)
"#;

#[test]
fn redis_py_sentinel_follows_a_failover() {
    let available =
        Command::new("python3").args(["-c", "import redis"]).status().is_ok_and(|s| s.success());
    if !available {
        eprintln!("SKIPPED: redis-py is not installed (pip install redis)");
        return;
    }
    let _one = ONE_CLUSTER_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut cluster = cluster();
    let victim = "cache";
    let addrs: Vec<String> = cluster.pickets.iter().map(|p| p.spec.listen_addr()).collect();
    let mut python = Command::new("python3")
        .args(["-c", REDIS_PY, &addrs.join(","), victim])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = python.stdin.take().unwrap();
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    let report: serde_json::Value =
        serde_json::from_str(&lines.next().expect("discovery report").unwrap()).unwrap();
    for proto in ["2", "3"] {
        for name in NAMES {
            let group = cluster.group(name);
            let found = &report[proto][name];
            assert_eq!(found["master"], group.master.addr(), "RESP{proto} {name}");
            let mut expected: Vec<String> = group.replicas.iter().map(|r| r.addr()).collect();
            expected.sort();
            assert_eq!(found["replicas"], serde_json::json!(expected), "RESP{proto} {name}");
        }
        // The first picket lists the other two at their Sentinel ports.
        let others: Vec<String> = addrs[1..].to_vec();
        assert_eq!(report[proto]["sentinels"], serde_json::json!(others), "RESP{proto}");
    }
    let old = cluster.group(victim).master.addr();
    wait_for("replica synced", LONG, || {
        cluster.group(victim).replicas.iter().all(|r| {
            matches!(r.query(&["GET", "py-greeting"]), Ok(redis::Value::BulkString(ref b)) if b == b"hello")
        })
    });

    let mut subs = subscribers(&cluster);
    cluster.group_mut(victim).master.kill();
    writeln!(stdin, "go").unwrap();
    let after: serde_json::Value =
        serde_json::from_str(&lines.next().expect("failover report").unwrap()).unwrap();
    assert!(python.wait().unwrap().success(), "{after}");
    let new = one_switch_each(&mut subs, victim, &old);
    assert_eq!(after["master"], new.as_str(), "{after}");
    let promoted = cluster.group(victim).at(&new).expect("the former replica");
    let attempts = after["attempts"].as_u64().unwrap().to_string();
    assert!(
        matches!(promoted.query(&["GET", "py-after"]), Ok(redis::Value::BulkString(ref b)) if *b == attempts.as_bytes())
    );
}
