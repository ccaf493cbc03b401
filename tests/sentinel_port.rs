//! The Sentinel port of a running picket supervising real `redis-server` processes: reply
//! shapes over raw sockets in RESP2 and RESP3, every `SENTINEL` subcommand through `redis-cli`,
//! events on pub/sub, runtime changes that survive a restart, and hostile input that must
//! never hurt the daemon or its other clients.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

#[path = "support/resp.rs"]
mod resp;
mod support;

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use picket::wire::resp::Frame;
use resp::{Resp, bulk, get, items, pairs, rss_kib, text};
use support::{ClusterOptions, Group, Picket, config_text, node_specs, wait_for, wait_until};

const LONG: Duration = Duration::from_secs(30);

/// One picket (of three configured voters; the other two never start) supervising `groups`.
fn lone_picket(groups: &[&Group], node_extra: &str) -> Picket {
    let specs = node_specs(3);
    let options = ClusterOptions { node_extra: node_extra.to_owned(), ..ClusterOptions::default() };
    Picket::start(specs[0].clone(), |state| config_text(&specs[0], &specs, groups, state, &options))
}

fn connect(picket: &Picket) -> Resp {
    let addr = picket.spec.listen_addr();
    wait_until("the sentinel port", LONG, || TcpStream::connect(&addr).ok());
    Resp::connect(&addr)
}

/// Waits until the picket lists `n` replicas of `name`, all connected.
fn wait_replicas(c: &mut Resp, name: &str, n: usize) {
    wait_for(&format!("{n} connected replicas of {name}"), LONG, || {
        let replicas = items(c.call(&["SENTINEL", "REPLICAS", name]));
        replicas.len() == n && replicas.iter().all(|r| get(&pairs(r), "flags") == "slave")
    });
}

fn redis_cli(picket: &Picket, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", &picket.spec.ip, "-p", &picket.spec.listen.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed");
    assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn instance_maps_and_queries_over_raw_sockets() {
    let session = Group::start("session", 2, None);
    let cache = Group::start("cache", 0, None);
    let picket = lone_picket(&[&session, &cache], "");
    let mut c = connect(&picket);
    wait_replicas(&mut c, "session", 2);
    let mut c3 = Resp::resp3(&picket.spec.listen_addr());

    for (proto, c) in [("RESP2", &mut c), ("RESP3", &mut c3)] {
        let masters = items(c.call(&["SENTINEL", "MASTERS"]));
        assert_eq!(masters.len(), 2, "{proto}");
        match (proto, &masters[0]) {
            ("RESP2", Frame::Array(_)) | ("RESP3", Frame::Map(_)) => {}
            other => panic!("instance map shape {other:?}"),
        }
        let m = pairs(&masters[0]);
        let names: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "name",
                "ip",
                "port",
                "runid",
                "flags",
                "link-pending-commands",
                "link-refcount",
                "last-ping-sent",
                "last-ok-ping-reply",
                "last-ping-reply",
                "down-after-milliseconds",
                "info-refresh",
                "role-reported",
                "role-reported-time",
                "config-epoch",
                "num-slaves",
                "num-other-sentinels",
                "quorum",
                "failover-timeout",
                "parallel-syncs",
                "down-after-refused-milliseconds"
            ],
            "{proto}"
        );
        assert_eq!(get(&m, "name"), "session");
        assert_eq!(get(&m, "ip"), "127.0.0.1");
        assert_eq!(get(&m, "port"), session.master.port.to_string());
        assert_eq!(get(&m, "flags"), "master");
        assert_eq!(get(&m, "runid").len(), 40);
        assert_eq!(get(&m, "role-reported"), "master");
        assert_eq!(get(&m, "num-slaves"), "2");
        assert_eq!(get(&m, "num-other-sentinels"), "0", "the other voters never started");
        assert_eq!(get(&m, "quorum"), "2");
        assert_eq!(get(&m, "down-after-milliseconds"), "1000");
        assert_eq!(get(&m, "down-after-refused-milliseconds"), "300");
        for number in ["last-ok-ping-reply", "info-refresh", "role-reported-time", "config-epoch"] {
            assert!(get(&m, number).parse::<u64>().is_ok(), "{number} is a number");
        }

        let replicas = items(c.call(&["SENTINEL", "REPLICAS", "session"]));
        let mut ports: Vec<String> =
            replicas.iter().map(|r| get(&pairs(r), "port").to_owned()).collect();
        ports.sort();
        let mut expected: Vec<String> =
            session.replicas.iter().map(|r| r.port.to_string()).collect();
        expected.sort();
        assert_eq!(ports, expected);
        let r = pairs(&replicas[0]);
        assert_eq!(r.len(), 21);
        assert_eq!(get(&r, "flags"), "slave");
        assert_eq!(get(&r, "name"), format!("127.0.0.1:{}", get(&r, "port")));
        assert_eq!(get(&r, "master-link-status"), "ok");
        assert_eq!(get(&r, "master-host"), "127.0.0.1");
        assert_eq!(get(&r, "master-port"), session.master.port.to_string());
        assert_eq!(get(&r, "role-reported"), "slave");
        assert_eq!(items(c.call(&["SENTINEL", "SLAVES", "session"])).len(), 2);
        assert_eq!(items(c.call(&["SENTINEL", "SENTINELS", "session"])), vec![]);

        assert_eq!(
            c.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "cache"]),
            Frame::Array(vec![bulk("127.0.0.1"), bulk(&cache.master.port.to_string())])
        );
        let null = if proto == "RESP2" { Frame::NullArray } else { Frame::Null };
        assert_eq!(c.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "nope"]), null);
        assert_eq!(
            c.call(&["SENTINEL", "MASTER", "nope"]),
            Frame::Error("ERR No such master with that name".into())
        );
        assert_eq!(
            c.call(&["ROLE"]),
            Frame::Array(vec![
                bulk("sentinel"),
                Frame::Array(vec![bulk("session"), bulk("cache")])
            ])
        );
        let info = text(&c.call(&["INFO", "sentinel"]));
        let line = format!(
            "master0:name=session,status=ok,address=127.0.0.1:{},slaves=2,sentinels=1\r\n",
            session.master.port
        );
        assert!(info.contains(&line), "{info}");
        let myid = text(&c.call(&["SENTINEL", "MYID"]));
        assert_eq!(myid.len(), 40);
        // 1 usable voter of 3: neither the quorum of 2 nor a majority.
        assert!(text(&c.call(&["SENTINEL", "CKQUORUM", "session"])).starts_with("NOQUORUM 1 "));
    }
}

#[test]
fn redis_cli_runs_every_subcommand() {
    let session = Group::start("session", 1, None);
    let cache = Group::start("cache", 0, None);
    let extra = Group::start("extra", 0, None);
    let picket = lone_picket(&[&session, &cache], "");
    let mut c = connect(&picket);
    wait_replicas(&mut c, "session", 1);
    let cli = |args: &[&str]| redis_cli(&picket, args);
    let master_port = session.master.port.to_string();

    assert_eq!(cli(&["PING"]), "PONG\n");
    assert!(cli(&["SENTINEL", "MASTERS"]).starts_with("name\nsession\nip\n127.0.0.1\n"));
    assert!(cli(&["SENTINEL", "PRIMARIES"]).starts_with("name\nsession\n"));
    assert!(cli(&["SENTINEL", "MASTER", "cache"]).starts_with("name\ncache\n"));
    assert!(cli(&["SENTINEL", "PRIMARY", "cache"]).starts_with("name\ncache\n"));
    assert!(cli(&["SENTINEL", "REPLICAS", "session"]).contains("\nmaster-link-status\nok\n"));
    assert!(cli(&["SENTINEL", "SLAVES", "session"]).starts_with("name\n127.0.0.1:"));
    assert_eq!(cli(&["SENTINEL", "SENTINELS", "session"]), "\n");
    assert_eq!(
        cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "session"]),
        format!("127.0.0.1\n{master_port}\n")
    );
    assert_eq!(
        cli(&["SENTINEL", "GET-PRIMARY-ADDR-BY-NAME", "session"]),
        format!("127.0.0.1\n{master_port}\n")
    );
    assert!(cli(&["SENTINEL", "CKQUORUM", "session"]).starts_with("NOQUORUM 1 usable Sentinels"));
    assert_eq!(cli(&["SENTINEL", "MYID"]).trim().len(), 40);
    assert!(cli(&["SENTINEL", "INFO-CACHE", "session"]).contains("# Replication"));
    assert_eq!(
        cli(&["SENTINEL", "IS-MASTER-DOWN-BY-ADDR", "127.0.0.1", &master_port, "0", "*"]),
        "0\n*\n0\n"
    );
    assert_eq!(
        cli(&["SENTINEL", "IS-PRIMARY-DOWN-BY-ADDR", "127.0.0.1", &master_port, "0", "*"]),
        "0\n*\n0\n"
    );
    assert!(cli(&["SENTINEL", "CONFIG", "GET", "*"]).contains("resolve-hostnames\nyes\n"));
    assert!(cli(&["SENTINEL", "CONFIG", "SET", "announce-ip", "1.2.3.4"]).contains("ERR "));
    assert!(cli(&["SENTINEL", "DEBUG"]).starts_with("INFO-PERIOD\n10000\n"));
    assert!(cli(&["SENTINEL", "HELP"]).starts_with("SENTINEL <subcommand>"));
    assert_eq!(cli(&["SENTINEL", "PENDING-SCRIPTS"]), "\n");
    assert_eq!(
        cli(&["SENTINEL", "SIMULATE-FAILURE", "HELP"]),
        "crash-after-election\ncrash-after-promotion\n"
    );
    assert_eq!(
        cli(&["SENTINEL", "SIMULATE-FAILURE"]),
        "ERR wrong number of arguments for 'sentinel|simulate-failure' command\n\n"
    );
    assert_eq!(cli(&["SENTINEL", "FLUSHCONFIG"]), "OK\n");
    assert_eq!(cli(&["SENTINEL", "SET", "cache", "quorum", "1", "parallel-syncs", "3"]), "OK\n");
    let cache_map = cli(&["SENTINEL", "MASTER", "cache"]);
    assert!(cache_map.contains("\nquorum\n1\n") && cache_map.contains("\nparallel-syncs\n3\n"));
    assert_eq!(cli(&["SENTINEL", "RESET", "cache"]), "1\n");
    let extra_port = extra.master.port.to_string();
    assert_eq!(cli(&["SENTINEL", "MONITOR", "extra", "127.0.0.1", &extra_port, "1"]), "OK\n");
    assert_eq!(
        cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "extra"]),
        format!("127.0.0.1\n{extra_port}\n")
    );
    assert_eq!(cli(&["SENTINEL", "REMOVE", "extra"]), "OK\n");
    assert_eq!(cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "extra"]), "\n");
    // A manual failover needs a majority of voters, which one lone node does not have.
    assert!(cli(&["SENTINEL", "FAILOVER", "session"]).starts_with("NO"));
    assert!(cli(&["SENTINEL", "FOO"]).starts_with("ERR unknown subcommand 'FOO'"));
    assert!(cli(&["INFO"]).contains("# Sentinel\r\n"));
    assert_eq!(cli(&["ROLE"]), "sentinel\nsession\ncache\n");
    assert!(cli(&["-3", "SENTINEL", "MASTER", "session"]).starts_with("name session\n"));
    assert!(cli(&["CLIENT", "LIST"]).contains("cmd=client|list"));
}

#[test]
fn events_are_published_and_changes_survive_a_restart() {
    let session = Group::start("session", 0, None);
    let cache = Group::start("cache", 0, None);
    let extra = Group::start("extra", 0, None);
    let mut picket = lone_picket(&[&session, &cache], "");
    let mut c = connect(&picket);
    let mut sub = Resp::connect(&picket.spec.listen_addr());
    assert_eq!(
        sub.call(&["PSUBSCRIBE", "*"]),
        Frame::Array(vec![bulk("psubscribe"), bulk("*"), Frame::Integer(1)])
    );
    let mut sub3 = Resp::resp3(&picket.spec.listen_addr());
    assert!(matches!(sub3.call(&["SUBSCRIBE", "+set"]), Frame::Push(_)));

    assert_eq!(
        c.call(&["SENTINEL", "SET", "session", "down-after-milliseconds", "4321"]),
        Frame::Simple("OK".into())
    );
    let payload =
        format!("master session 127.0.0.1 {} down-after-milliseconds 4321", session.master.port);
    let expected = vec![bulk("pmessage"), bulk("*"), bulk("+set"), bulk(&payload)];
    wait_for("+set on PSUBSCRIBE *", LONG, || sub.read() == Frame::Array(expected.clone()));
    assert_eq!(sub3.read(), Frame::Push(vec![bulk("message"), bulk("+set"), bulk(&payload)]));
    // Picket's crash rule is set the same way, below down-after-milliseconds only.
    assert_eq!(
        c.call(&["SENTINEL", "SET", "session", "down-after-refused-milliseconds", "5000"]),
        Frame::Error(
            "ERR down-after-refused-milliseconds must be less than down-after-milliseconds \
             (4321), or 0 to turn the crash rule off"
                .into()
        )
    );
    assert_eq!(
        c.call(&["SENTINEL", "SET", "session", "down-after-refused-milliseconds", "150"]),
        Frame::Simple("OK".into())
    );

    let extra_port = extra.master.port.to_string();
    assert_eq!(
        c.call(&["SENTINEL", "MONITOR", "extra", "127.0.0.1", &extra_port, "1"]),
        Frame::Simple("OK".into())
    );
    let monitor = format!("master extra 127.0.0.1 {extra_port} quorum 1");
    let expected = vec![bulk("pmessage"), bulk("*"), bulk("+monitor"), bulk(&monitor)];
    wait_for("+monitor on PSUBSCRIBE *", LONG, || sub.read() == Frame::Array(expected.clone()));
    assert_eq!(c.call(&["SENTINEL", "REMOVE", "cache"]), Frame::Simple("OK".into()));

    picket.restart();
    let mut c = connect(&picket);
    let masters: Vec<String> = items(c.call(&["SENTINEL", "MASTERS"]))
        .iter()
        .map(|m| get(&pairs(m), "name").to_owned())
        .collect();
    assert_eq!(masters, ["session", "extra"], "MONITOR and REMOVE survived the restart");
    let m = pairs(&c.call(&["SENTINEL", "MASTER", "session"]));
    assert_eq!(get(&m, "down-after-milliseconds"), "4321", "SET survived the restart");
    assert_eq!(get(&m, "down-after-refused-milliseconds"), "150", "SET survived the restart");
}

#[test]
fn requirepass_protects_the_port() {
    let session = Group::start("session", 0, None);
    let picket = lone_picket(&[&session], "requirepass = \"client-secret\"\n");
    let mut c = connect(&picket);
    assert_eq!(
        c.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "session"]),
        Frame::Error("NOAUTH Authentication required.".into())
    );
    assert_eq!(
        c.call(&["AUTH", "nope"]),
        Frame::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    );
    assert_eq!(c.call(&["AUTH", "default", "client-secret"]), Frame::Simple("OK".into()));
    assert_eq!(items(c.call(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "session"])).len(), 2);
    let out = Command::new("redis-cli")
        .args(["-h", &picket.spec.ip, "-p", &picket.spec.listen.to_string()])
        .args(["-a", "client-secret", "--no-auth-warning", "SENTINEL", "MYID"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().len(), 40);
    // An authenticated SHUTDOWN stops the daemon cleanly.
    c.send(&["SHUTDOWN"]);
    assert_eq!(c.next(), None, "no reply, as Redis");
    let mut picket = picket;
    let code = wait_until("picket exits", LONG, || picket.exit_code());
    assert_eq!(code, 0);
}

/// Bytes from a fixed-seed generator (a test needs no cryptographic quality).
fn garbage(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as u8
        })
        .collect()
}

/// Sends `bytes` on a fresh connection and returns what came back before the server closed it
/// (or stopped answering).
fn poke(addr: &str, bytes: &[u8]) -> Vec<Frame> {
    let mut c = Resp::connect(addr);
    c.stream.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    c.raw(bytes);
    let mut frames = Vec::new();
    // Garbage may parse as a few inline commands before it breaks; read until close or silence.
    while frames.len() < 10_000 {
        let mut probe = [0u8; 1];
        match c.stream.peek(&mut probe) {
            Ok(0) | Err(_) => break,
            Ok(_) => match c.next() {
                Some(f) => frames.push(f),
                None => break,
            },
        }
    }
    frames
}

#[test]
fn hostile_input_never_hurts_the_daemon() {
    let session = Group::start("session", 0, None);
    let picket = lone_picket(&[&session], "");
    let addr = picket.spec.listen_addr();
    let mut watcher = connect(&picket);
    let get_addr = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "session"];
    let expected = watcher.call(&get_addr);
    assert_eq!(items(expected.clone()).len(), 2);
    let before = rss_kib(picket.pid());
    assert!(before > 0);

    let protocol_errors: [(&[u8], &str); 6] = [
        (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$1000000000\r\n", "ERR Protocol error: invalid bulk length"),
        // Redis's ceiling is INT_MAX arguments; below it, a request over Picket's own limits
        // is skipped and answered instead (sentinel_port::tests::large_requests_...).
        (b"*2147483648\r\n", "ERR Protocol error: invalid multibulk length"),
        (b"*1\r\n$-5\r\n", "ERR Protocol error: invalid bulk length"),
        (
            b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n$4\r\nPING\r\n",
            "ERR Protocol error: expected '$', got '*'",
        ),
        (b"*2\r\n$4\r\nPING\r\n:1\r\n", "ERR Protocol error: expected '$', got ':'"),
    ];
    for (bytes, error) in protocol_errors {
        let frames = poke(&addr, bytes);
        assert_eq!(frames, vec![Frame::Error(error.into())], "{}", bytes.escape_ascii());
    }
    // Deep nesting, half a megabyte of it.
    let deep = b"*1\r\n".repeat(128 * 1024);
    assert_eq!(
        poke(&addr, &deep),
        vec![Frame::Error("ERR Protocol error: expected '$', got '*'".into())]
    );
    // An inline line that never ends.
    let endless = vec![b'a'; 200 * 1024];
    assert_eq!(
        poke(&addr, &endless),
        vec![Frame::Error("ERR Protocol error: too big inline request".into())]
    );
    // Binary garbage: whatever it parses as, every reply is an error and the connection ends
    // or stays usable; the daemon goes on.
    for seed in 0..20 {
        for frame in poke(&addr, &garbage(4096, seed)) {
            assert!(matches!(frame, Frame::Error(_)), "{frame:?}");
        }
        assert_eq!(watcher.call(&get_addr), expected);
    }
    // Half-written frames left hanging, on many connections at once.
    let mut hanging: Vec<Resp> = (0..200)
        .map(|i| {
            let mut c = Resp::connect(&addr);
            let half: &[u8] = match i % 4 {
                0 => b"*2\r\n$8\r\nSENTINEL\r\n$7\r\nMAST",
                1 => b"*1\r\n$400000\r\n",
                2 => b"SENTINEL get-master-addr",
                _ => b"*",
            };
            c.raw(half);
            c
        })
        .collect();
    assert_eq!(watcher.call(&get_addr), expected);
    // Thousands of idle connections.
    let idle: Vec<TcpStream> = (0..2000).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    let mut fresh = Resp::connect(&addr);
    assert_eq!(fresh.call(&get_addr), expected);
    let clients: u64 = wait_until("every connection registered", LONG, || {
        let info = text(&fresh.call(&["INFO", "clients"]));
        info.lines()
            .find_map(|l| l.strip_prefix("connected_clients:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .filter(|n| *n >= 2200)
    });
    assert!(clients >= 2200);
    let loaded = rss_kib(picket.pid());
    // A half-written request completes normally once the rest arrives.
    hanging[0].raw(b"ERS\r\n");
    assert_eq!(items(hanging[0].read()).len(), 1);
    drop(idle);
    drop(hanging);
    wait_for("idle connections closed", LONG, || {
        let info = text(&fresh.call(&["INFO", "clients"]));
        info.contains("\r\nconnected_clients:2\r\n")
    });
    assert_eq!(watcher.call(&get_addr), expected);
    let after = rss_kib(picket.pid());
    eprintln!(
        "picket RSS: {before} KiB before, {loaded} KiB with 2200 connections, {after} KiB after"
    );
    // Each idle connection costs a few KiB; nothing grows without bound.
    assert!(loaded < before + 96 * 1024, "RSS {before} -> {loaded} KiB");
    assert!(after < before + 96 * 1024, "RSS {before} -> {after} KiB");
    let stats = text(&fresh.call(&["INFO", "stats"]));
    assert!(stats.contains("client_query_buffer_limit_disconnections:"), "{stats}");
}
