//! `picket import-sentinel` on the `sentinel.conf` a real redis-sentinel 7.0 rewrote after a
//! real failover: three Sentinels supervise a master and two replicas, the master is killed,
//! the Sentinels fail over; then one Sentinel is stopped, its file imported, and a Picket started
//! from the result in its place answers with the same current master, the same id and a config
//! epoch no lower than the Sentinel's.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

#[path = "support/resp.rs"]
mod resp;
mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use picket::wire::resp::Frame;
use resp::{Resp, bulk, get, pairs, text};
use support::sentinel::{self, Sentinel};
use support::{Group, NodeSpec, Picket, free_port, wait_for, wait_until};

const LONG: Duration = Duration::from_secs(60);
const SENTINEL_PASS: &str = "sentinel-pass";
const REDIS_PASS: &str = "redis-pass";

/// A Sentinel of `master` with a password on its port and the master's password.
fn start_sentinel(port: u16, master: &str) -> Sentinel {
    let lines = format!(
        "{}sentinel auth-pass mymaster {REDIS_PASS}\nrequirepass \"{SENTINEL_PASS}\"\n",
        sentinel::monitor("mymaster", master, 2, 1000, 10_000)
    );
    Sentinel::start(port, &lines)
}

/// A connection to `sentinel`, authenticated.
fn connect(sentinel: &Sentinel) -> Resp {
    let mut c = Resp::connect(&sentinel.addr());
    assert_eq!(c.call(&["AUTH", SENTINEL_PASS]), Frame::Simple("OK".into()));
    c
}

/// `SENTINEL MASTER mymaster` as (address, config epoch).
fn sentinel_view(c: &mut Resp) -> (String, u64) {
    let master = pairs(&c.call(&["SENTINEL", "MASTER", "mymaster"]));
    let addr = format!("{}:{}", get(&master, "ip"), get(&master, "port"));
    (addr, get(&master, "config-epoch").parse().unwrap())
}

/// A value from a `sentinel <key> ...` line of a Sentinel's file.
fn conf_line(path: &Path, prefix: &str) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
}

#[test]
fn a_picket_imported_from_a_real_sentinel_continues_from_its_state() {
    if sentinel::missing() {
        return;
    }
    let mut group = Group::start("mymaster", 2, Some(REDIS_PASS));
    let old = group.master.addr();
    let mut sentinels: Vec<Sentinel> = (0..3).map(|_| start_sentinel(free_port(), &old)).collect();
    // The Sentinels find each other and the replicas through the master.
    for s in &sentinels {
        let mut c = connect(s);
        wait_for("sentinels and replicas discovered", LONG, || {
            let master = pairs(&c.call(&["SENTINEL", "MASTER", "mymaster"]));
            get(&master, "num-other-sentinels") == "2" && get(&master, "num-slaves") == "2"
        });
    }
    group.master.kill();
    // A real failover, recorded in every Sentinel's file.
    let new = wait_until("the Sentinels' failover", LONG, || {
        let views: Vec<(String, u64)> =
            sentinels.iter().map(|s| sentinel_view(&mut connect(s))).collect();
        let first = views[0].clone();
        (first.0 != old && first.1 >= 1 && views.iter().all(|v| *v == first)).then_some(first.0)
    });
    let first = &sentinels[0];
    wait_for("the failover rewritten into sentinel.conf", LONG, || {
        conf_line(&first.conf(), "sentinel monitor mymaster ")
            .is_some_and(|l| l.starts_with(&new.replace(':', " ")))
            && conf_line(&first.conf(), "sentinel config-epoch mymaster ").is_some()
            && conf_line(&first.conf(), "sentinel known-sentinel mymaster ").is_some()
    });
    // The Sentinel being replaced, as it last saw things.
    let (sentinel_master, sentinel_epoch) = sentinel_view(&mut connect(first));
    let myid = text(&connect(first).call(&["SENTINEL", "MYID"]));
    let mut others: Vec<(String, String)> = sentinels[1..]
        .iter()
        .map(|s| (text(&connect(s).call(&["SENTINEL", "MYID"])), s.port.to_string()))
        .collect();
    others.sort();
    let (port, addr, conf) = (first.port, first.addr(), first.conf());
    sentinels[0].stop();
    println!("{}", fs::read_to_string(&conf).unwrap());

    let out = tempfile::tempdir().unwrap();
    let (gossip, http) = (free_port(), free_port());
    let import = Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("import-sentinel")
        .arg("--sentinel-conf")
        .arg(&conf)
        .arg("--output")
        .arg(out.path())
        .args(["--gossip-port", &gossip.to_string(), "--http-port", &http.to_string()])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&import.stdout).into_owned();
    assert!(import.status.success(), "{report}{}", String::from_utf8_lossy(&import.stderr));
    println!("{report}");
    // The lines CONFIG REWRITE added that Picket has no use for are listed, with reasons.
    assert!(report.contains("Not imported"), "{report}");
    assert!(report.contains(": latency-tracking-info-percentiles 50 99 99.9: "), "{report}");
    // Importing again would overwrite the state: refused.
    let again = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["import-sentinel", "--sentinel-conf"])
        .arg(&conf)
        .arg("--output")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists: move it away first"));

    let config = out.path().join("picket.toml");
    let check = Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("check")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    let checked = String::from_utf8_lossy(&check.stdout);
    for secret in [SENTINEL_PASS, REDIS_PASS] {
        assert!(!checked.contains(secret), "{checked}");
        assert!(!report.contains(secret), "{report}");
        assert!(!fs::read_to_string(&config).unwrap().contains(secret));
    }

    // A Picket in the Sentinel's place.
    let spec = NodeSpec {
        ip: "127.0.0.1".to_owned(),
        listen: port,
        gossip,
        http,
        tls_listen: 0,
        tls_http: 0,
    };
    let imported_text = fs::read_to_string(&config).unwrap();
    let picket = Picket::start(spec, |_| imported_text);
    let mut c = wait_until("the picket's Sentinel port", LONG, || {
        std::net::TcpStream::connect(&addr).ok().map(|_| Resp::connect(&addr))
    });
    assert_eq!(c.call(&["PING"]), Frame::Error("NOAUTH Authentication required.".into()));
    assert_eq!(c.call(&["AUTH", SENTINEL_PASS]), Frame::Simple("OK".into()));
    let (host, port) = sentinel_master.split_once(':').unwrap();
    assert_eq!(
        c.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster"]),
        Frame::Array(vec![bulk(host), bulk(port)])
    );
    let master = pairs(&c.call(&["SENTINEL", "MASTER", "mymaster"]));
    let epoch: u64 = get(&master, "config-epoch").parse().unwrap();
    assert!(epoch >= sentinel_epoch, "config epoch {epoch} < the Sentinel's {sentinel_epoch}");
    assert_eq!(text(&c.call(&["SENTINEL", "MYID"])), myid, "the Sentinel's id");
    // The other voters are listed at once, as the Sentinel listed its known Sentinels, though
    // no peer has connected (client libraries such as Redisson refuse an empty list).
    let Frame::Array(listed) = c.call(&["SENTINEL", "SENTINELS", "mymaster"]) else {
        panic!("SENTINEL SENTINELS is an array")
    };
    let mut listed: Vec<(String, String)> = listed
        .iter()
        .map(|s| {
            let s = pairs(s);
            assert_eq!(get(&s, "ip"), "127.0.0.1");
            (get(&s, "runid").to_owned(), get(&s, "port").to_owned())
        })
        .collect();
    listed.sort();
    assert_eq!(listed, others, "SENTINEL SENTINELS straight after the switch");
    // It monitors the current master with the imported auth-pass.
    wait_for("the imported node reaches the master", LONG, || {
        let master = pairs(&c.call(&["SENTINEL", "MASTER", "mymaster"]));
        !get(&master, "flags").contains("disconnected") && get(&master, "role-reported") == "master"
    });
    drop(picket);
}
