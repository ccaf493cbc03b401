//! ACL users on the Sentinel port of real pickets: a `read` user does everything a Sentinel
//! client library needs (redis-py in Sentinel mode, authenticating through `sentinel_kwargs`, in
//! RESP2 and RESP3) and gets `-NOPERM` for every admin command; an `admin` user fails a master
//! over; a wrong password gets `-WRONGPASS` and the connection stays usable.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

#[path = "support/resp.rs"]
mod resp;
mod support;

use std::process::Command;

use picket::wire::resp::Frame;
use resp::{Resp, bulk, text};
use support::{Cluster, ClusterOptions, Group, missing, redis_py_installed, wait_for};

const USERS: &str = "\n[[user]]\nname = \"app\"\npassword = \"app-pw\"\nrole = \"read\"\n\
                     \n[[user]]\nname = \"ops\"\npassword = \"ops-pw\"\nrole = \"admin\"\n";

/// redis-py discovery as the read user, in RESP2 and RESP3 (where redis-py sends
/// `HELLO 3 AUTH app app-pw`), then a write through `master_for`.
const REDIS_PY: &str = r#"
import json, sys
from redis.sentinel import Sentinel

sentinels = [(a.split(":")[0], int(a.split(":")[1])) for a in sys.argv[1].split(",")]
report = {}
for proto in (2, 3):
    s = Sentinel(sentinels, socket_timeout=2.0, protocol=proto,
                 sentinel_kwargs={"username": "app", "password": "app-pw", "socket_timeout": 2.0})
    host, port = s.discover_master("session")
    report[proto] = {
        "master": "%s:%d" % (host, port),
        "replicas": sorted("%s:%d" % r for r in s.discover_slaves("session")),
        "sentinels": len(s.sentinels[0].sentinel_sentinels("session")),
    }
    m = s.master_for("session", socket_timeout=2.0)
    m.set("acl-%d" % proto, "ok")
    assert m.get("acl-%d" % proto) == b"ok"
print(json.dumps(report), flush=True)
"#;

fn ok() -> Frame {
    Frame::Simple("OK".to_owned())
}

#[test]
fn read_users_query_admin_users_fail_over_and_wrong_passwords_are_refused() {
    let options = ClusterOptions {
        node_extra: "requirepass = \"root-pw\"\n".to_owned(),
        sections: USERS.to_owned(),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(3, vec![Group::start("session", 2, None)], &options);
    cluster.wait_ready();
    let old = cluster.group("session").master.addr();
    let port = cluster.pickets[0].spec.listen_addr();

    if !missing("redis-py", redis_py_installed()) {
        let addrs: Vec<String> = cluster.pickets.iter().map(|p| p.spec.listen_addr()).collect();
        let out =
            Command::new("python3").args(["-c", REDIS_PY, &addrs.join(",")]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut replicas: Vec<String> =
            cluster.group("session").replicas.iter().map(support::Redis::addr).collect();
        replicas.sort();
        for proto in ["2", "3"] {
            assert_eq!(report[proto]["master"], old.as_str(), "{report}");
            assert_eq!(report[proto]["replicas"], serde_json::json!(replicas), "{report}");
            assert_eq!(report[proto]["sentinels"], 2, "{report}");
        }
    }

    // A wrong password: -WRONGPASS, and the connection stays usable.
    let mut c = Resp::connect(&port);
    let wrongpass =
        Frame::Error("WRONGPASS invalid username-password pair or user is disabled.".into());
    assert_eq!(c.call(&["AUTH", "app", "ops-pw"]), wrongpass);
    assert_eq!(c.call(&["AUTH", "nobody", "app-pw"]), wrongpass);
    assert_eq!(c.call(&["PING"]), Frame::Error("NOAUTH Authentication required.".into()));
    assert_eq!(c.call(&["AUTH", "app", "app-pw"]), ok());
    assert_eq!(c.call(&["PING"]), Frame::Simple("PONG".into()));

    // The read user: -NOPERM for each admin command, and nothing changes.
    let admin: [&[&str]; 11] = [
        &["SENTINEL", "FAILOVER", "session"],
        &["SENTINEL", "RESET", "*"],
        &["SENTINEL", "MONITOR", "extra", "127.0.0.1", "7999", "1"],
        &["SENTINEL", "REMOVE", "session"],
        &["SENTINEL", "SET", "session", "quorum", "1"],
        &["SENTINEL", "FLUSHCONFIG"],
        &["SENTINEL", "SIMULATE-FAILURE", "crash-after-election"],
        &["SENTINEL", "CONFIG", "SET", "announce-ip", "10.0.0.1"],
        &["CLIENT", "KILL", "TYPE", "normal"],
        &["PUBLISH", "__sentinel__:hello", "x"],
        &["SHUTDOWN"],
    ];
    for command in admin {
        let reply = text(&c.call(command));
        assert!(
            reply.starts_with("NOPERM this user has no permissions to run the '"),
            "{command:?}: {reply}"
        );
    }
    assert_eq!(
        c.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "session"]),
        Frame::Array(old.split(':').map(bulk).collect())
    );
    for picket in &cluster.pickets {
        assert!(!picket.saw("+set ") && !picket.saw("+reset-master") && !picket.saw("-monitor"));
    }

    // The admin user fails the master over.
    let mut admin_conn = Resp::connect(&port);
    assert_eq!(admin_conn.call(&["HELLO", "2", "AUTH", "ops", "wrong"]), wrongpass);
    assert!(matches!(admin_conn.call(&["HELLO", "2", "AUTH", "ops", "ops-pw"]), Frame::Array(_)));
    assert_eq!(admin_conn.call(&["SENTINEL", "FAILOVER", "session"]), ok());
    let (new, _) = cluster.agreed_master("session");
    assert_ne!(new, old);
    let promoted = cluster.group("session").at(&new).expect("a former replica");
    wait_for("the promoted replica is master", support::CLUSTER_WAIT, || {
        promoted.role().as_deref() == Some("master")
    });
}
