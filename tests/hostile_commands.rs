//! Hostile commands that need no password (issue 12, points 1, 5 and 10), replayed against three
//! real pickets supervising real redis-servers: `SENTINEL RESET` with a pattern of 255 stars on
//! two of the three nodes, 300 clients asking `COMMAND DOCS` for 4,093 names and never reading,
//! a flood of `PSUBSCRIBE` patterns of 256 KiB and of hostile globs, oversized requests and an
//! oversized HTTP body. Then the node must still do its job: a SIGKILLed master fails over,
//! `/healthz` answers promptly throughout, and the attacked process stays under
//! [`RSS_CEILING_KIB`]. The acceptance differences of point 10 are checked on the same cluster.
//! Beside it, on a lone picket: a client holding replies over the output soft limit (but under
//! the hard one) without reading is disconnected after the soft limit's time, a client reading
//! the same replies is not; 1,000 clients each holding replies under the soft limit without
//! reading cannot together take the process past the port's output budget; and 1,000 idle
//! clients keep none of the buffers their earlier requests and replies needed.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

#[path = "support/resp.rs"]
mod resp;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use picket::wire::resp::Frame;
use resp::{Resp, bulk, items, pairs, rss_kib};
use support::{
    CLUSTER_WAIT, Cluster, ClusterOptions, Group, Picket, config_text, http, node_specs, wait_for,
    wait_until,
};

/// The attacked node's resident memory must stay under this during and after the attacks
/// (measured: 21 MB before, at most 29 MB during and after them; the issue saw 2.3 GB).
const RSS_CEILING_KIB: u64 = 200 * 1024;

/// 95% of `/healthz` answers during the flood must come within this (the bound;
/// measured: 95% within 5-8 ms, 27 ms at worst, debug build, two busy cores), and every one
/// within [`HEALTHZ_TIMEOUT`].
const HEALTHZ_BOUND: Duration = Duration::from_millis(100);

/// Kubernetes' default probe timeout: a slower answer would restart the pod.
const HEALTHZ_TIMEOUT: Duration = Duration::from_secs(1);

/// The failover after a SIGKILL must complete within this (normally about `down_after_ms`,
/// one second here, plus a little).
const FAILOVER_BOUND: Duration = Duration::from_secs(30);

/// The attacks run one at a time: each is measured alone, and the thousands of client sockets
/// of one would take ephemeral ports another test's picket was given but has not bound yet.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One picket (of three configured voters; the other two never start) supervising `group`.
fn lone_picket(group: &Group) -> Picket {
    let specs = node_specs(3);
    let options = ClusterOptions::default();
    Picket::start(specs[0].clone(), |state| {
        config_text(&specs[0], &specs, &[group], state, &options)
    })
}

/// A line's value in an `INFO` reply.
fn info_number(c: &mut Resp, section: &str, key: &str) -> u64 {
    let info = resp::text(&c.call(&["INFO", section]));
    let prefix = format!("{key}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {info}"))
}

/// Polls `/healthz` on `addr` until `stop`, returning how long each answer took, sorted; each
/// must be a 200.
fn watch_healthz(addr: String, stop: Arc<AtomicBool>) -> thread::JoinHandle<Vec<Duration>> {
    thread::spawn(move || {
        let mut took = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let status = http::get(&addr, "/healthz").status;
            took.push(started.elapsed());
            assert_eq!(status, 200, "/healthz during the flood");
            thread::sleep(Duration::from_millis(20));
        }
        took.sort();
        took
    })
}

/// Redis's request encoding of `parts`.
fn request(parts: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", parts.len()).into_bytes();
    for p in parts {
        out.extend_from_slice(format!("${}\r\n{p}\r\n", p.len()).as_bytes());
    }
    out
}

/// 300 clients each send `COMMAND DOCS` with 4,093 names and never read. Returns the sockets,
/// kept open by the caller until the end of the flood.
fn command_docs_flood(addr: &str) -> Vec<TcpStream> {
    let mut parts = vec!["COMMAND", "DOCS"];
    parts.extend(std::iter::repeat_n("sentinel", 4093));
    let bytes = request(&parts);
    (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&bytes).unwrap();
            s
        })
        .collect()
}

/// 2,000 `PSUBSCRIBE` of a 256 KiB pattern from one client, each refused; then hostile globs
/// up to the per-client cap. Returns the subscribed client.
fn psubscribe_flood(addr: &str) -> Resp {
    let mut c = Resp::connect(addr);
    let huge = format!("{}x", "*".repeat(256 * 1024 - 1));
    let mut refused = 0;
    let mut batch = Vec::new();
    for i in 0..2000 {
        batch.extend_from_slice(&request(&["PSUBSCRIBE", &huge]));
        if i % 4 == 3 {
            c.stream.write_all(&batch).expect("the server reads the patterns");
            batch.clear();
            for _ in 0..4 {
                match c.read() {
                    Frame::Error(e) if e.starts_with("ERR pattern too long") => refused += 1,
                    other => panic!("a 256 KiB pattern was accepted: {other:?}"),
                }
            }
        }
    }
    assert_eq!(refused, 2000);
    // Backtracking bait: each pattern is matched once against every channel, at subscription.
    let globs: Vec<String> = (0..300).map(|i| format!("{}{i}", "*a".repeat(100))).collect();
    let mut parts = vec!["PSUBSCRIBE"];
    parts.extend(globs.iter().map(String::as_str));
    c.send(&parts);
    let accepted =
        (0..300).filter(|_| matches!(c.read(), Frame::Push(_) | Frame::Array(_))).count();
    assert_eq!(accepted, 256, "the per-client cap");
    c.send(&["PSUBSCRIBE", "+switch-master"]);
    assert!(matches!(c.read(), Frame::Error(e) if e.starts_with("ERR too many subscriptions")));
    c.send(&["PUNSUBSCRIBE", &globs[0]]);
    assert!(matches!(c.read(), Frame::Array(_)));
    c.send(&["PSUBSCRIBE", "+switch-*"]);
    assert!(matches!(c.read(), Frame::Array(_)));
    c
}

/// A POST of `len` bytes to the HTTP API, written in full before the answer is read (as
/// clients do): the status line, or the transport error.
fn post_large(addr: &str, len: usize) -> Result<String, std::io::Error> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let head = format!(
        "POST /v1/masters/session/failover HTTP/1.1\r\nHost: {addr}\r\nContent-Type: \
         application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    s.write_all(head.as_bytes())?;
    s.write_all(&vec![b' '; len])?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned())
}

#[test]
fn hostile_commands_leave_the_cluster_able_to_fail_over() {
    let _alone = one_at_a_time();
    let mut cluster =
        Cluster::start(3, vec![Group::start("session", 2, None)], &ClusterOptions::default());
    cluster.wait_ready();
    let target = cluster.pickets[0].spec.clone();
    let pid = cluster.pickets[0].pid();
    let rss_before = rss_kib(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let healthz = watch_healthz(target.http_addr(), Arc::clone(&stop));

    // Point 1: RESET with 255 stars (and 12 stars against the name), on two of the three nodes.
    for picket in &cluster.pickets[..2] {
        let mut c = Resp::connect(&picket.spec.listen_addr());
        let stars = format!("{}x", "*".repeat(255));
        assert_eq!(c.call(&["SENTINEL", "RESET", &stars]), Frame::Integer(0));
        let twelve = format!("{}x", "*s".repeat(12));
        assert_eq!(c.call(&["SENTINEL", "RESET", &twelve]), Frame::Integer(0));
        let long = "*".repeat(257);
        assert_eq!(
            c.call(&["SENTINEL", "RESET", &long]),
            Frame::Error("ERR pattern too long (257 bytes): at most 256 bytes".into())
        );
    }
    // Point 5: clients that never read, and pattern floods.
    let started = Instant::now();
    let docs = command_docs_flood(&target.listen_addr());
    let docs_took = started.elapsed();
    let subscriber = psubscribe_flood(&target.listen_addr());
    let flood_took = started.elapsed() - docs_took;
    let mut rss_flood = rss_kib(pid);
    // The non-reading clients were cut at their first reply and counted.
    let mut c = Resp::connect(&target.listen_addr());
    wait_for("the COMMAND DOCS clients disconnected", CLUSTER_WAIT, || {
        let info = resp::text(&c.call(&["INFO", "stats"]));
        info.lines().any(|l| l == "client_output_buffer_limit_disconnections:300")
    });
    rss_flood = rss_flood.max(rss_kib(pid));
    // Point 10: large requests are answered, bad addresses refused, large bodies get a 413.
    let mega = "x".repeat(1_000_000);
    assert_eq!(c.call(&["ECHO", &mega]), bulk(&mega));
    let mut many = vec!["PING"];
    many.extend(std::iter::repeat_n("a", 10_001));
    assert_eq!(
        c.call(&many),
        Frame::Error("ERR wrong number of arguments for 'ping' command".into())
    );
    assert_eq!(
        c.call(&["SENTINEL", "MONITOR", "x", "999.1.1.1", "17000", "1"]),
        Frame::Error("ERR Invalid IP address or hostname specified".into())
    );
    let status = post_large(&target.http_addr(), 900 * 1024).expect("no broken pipe");
    assert!(status.starts_with("HTTP/1.1 413"), "{status}");
    rss_flood = rss_flood.max(rss_kib(pid));

    // The node still does its job: a SIGKILLed master fails over, announced to the subscriber
    // whose hostile patterns are still registered.
    let old = cluster.group("session").master.addr();
    let killed_at = Instant::now();
    cluster.group_mut("session").master.kill();
    let new = cluster.check_one_clean_failover("session", &old);
    let took = killed_at.elapsed();
    assert!(took < FAILOVER_BOUND, "failover took {took:?}");
    let mut subscriber = subscriber;
    let message = items(subscriber.read());
    assert_eq!(message[..3], [bulk("pmessage"), bulk("+switch-*"), bulk("+switch-master")]);
    stop.store(true, Ordering::Relaxed);
    let took_healthz = healthz.join().expect("/healthz answered 200 throughout");
    let polls = took_healthz.len();
    let worst = took_healthz.last().copied().unwrap_or_default();
    let p95 = took_healthz.get(polls * 95 / 100).copied().unwrap_or_default();
    let rss_after = rss_kib(pid);
    drop(docs);
    eprintln!(
        "RSS of the attacked node: {rss_before} KiB before, at most {rss_flood} KiB during the \
         flood, {rss_after} KiB after; /healthz: {polls} polls, 95% within {p95:?}, slowest \
         {worst:?}; failover to {new} in {took:?}; floods: COMMAND DOCS {docs_took:?}, \
         PSUBSCRIBE {flood_took:?}"
    );
    assert!(polls > 10, "/healthz was polled throughout ({polls})");
    assert!(p95 < HEALTHZ_BOUND, "/healthz: 95% within {p95:?} during the flood");
    assert!(worst < HEALTHZ_TIMEOUT, "/healthz took {worst:?} during the flood");
    for rss in [rss_flood, rss_after] {
        assert!(rss < RSS_CEILING_KIB, "RSS {rss} KiB over the ceiling");
    }

    // Point 10: straight after a restart, SENTINEL SENTINELS lists the known peers.
    let restarted = &mut cluster.pickets[2];
    restarted.restart();
    let addr = restarted.spec.listen_addr();
    wait_until("the restarted node's port", CLUSTER_WAIT, || TcpStream::connect(&addr).ok());
    let sentinels = items(Resp::connect(&addr).call(&["SENTINEL", "SENTINELS", "session"]));
    assert_eq!(sentinels.len(), 2, "both known peers listed at once: {sentinels:?}");
    for peer in &sentinels {
        let fields = pairs(peer);
        assert!(resp::get(&fields, "name").len() == 40, "{fields:?}");
    }
}

/// Redis's `client-output-buffer-limit` soft limit: a client that asks for replies over the
/// soft limit (256 KiB) but under the hard limit (2 MiB) and stops reading is disconnected once
/// they have been pending for the soft limit's time (5 s), and counted; a client that reads the
/// same replies throughout is not.
#[test]
fn a_client_holding_replies_over_the_soft_limit_is_disconnected_after_its_time() {
    const SOFT_TIME: Duration = Duration::from_secs(5);
    let _alone = one_at_a_time();
    let group = Group::start("session", 0, None);
    let picket = lone_picket(&group);
    let addr = picket.spec.listen_addr();
    let mut c = wait_until("the sentinel port", CLUSTER_WAIT, || {
        TcpStream::connect(&addr).ok().map(|_| Resp::connect(&addr))
    });
    assert_eq!(info_number(&mut c, "stats", "client_output_buffer_limit_disconnections"), 0);
    // Ten replies of a megabyte each: the kernel's buffers take a few of them, and then one
    // stays pending in the server, over the soft limit and under the hard one (no further
    // request is run while it is pending).
    let echo = request(&["ECHO", &"x".repeat(1_000_000)]);
    let mut hog = TcpStream::connect(&addr).unwrap();
    let writer = {
        let mut hog = hog.try_clone().unwrap();
        let echo = echo.clone();
        // Blocks once the server stops reading; ends when the server closes the connection.
        thread::spawn(move || {
            for _ in 0..10 {
                if hog.write_all(&echo).is_err() {
                    break;
                }
            }
        })
    };
    let sent_at = Instant::now();
    // Meanwhile a client reads the same replies, for longer than the soft limit's time, and
    // watches the count: each zero it sees proves the hog was still connected when it asked.
    let mut reader = Resp::connect(&addr);
    let mega = bulk(&"x".repeat(1_000_000));
    let (mut read, mut connected_for) = (0, Duration::ZERO);
    while sent_at.elapsed() < SOFT_TIME + Duration::from_secs(3) {
        reader.stream.write_all(&echo).unwrap();
        assert_eq!(reader.read(), mega, "the reading client is served");
        read += 1;
        thread::sleep(Duration::from_millis(20));
        let asked = sent_at.elapsed();
        if info_number(&mut reader, "stats", "client_output_buffer_limit_disconnections") == 0 {
            connected_for = asked;
        }
    }
    // The hog: disconnected and counted, and not at once (the hard limit would be at once).
    let disconnected = wait_until("the non-reading client disconnected", CLUSTER_WAIT, || {
        let n = info_number(&mut c, "stats", "client_output_buffer_limit_disconnections");
        (n > 0).then_some(n)
    });
    let after = sent_at.elapsed();
    assert_eq!(disconnected, 1, "only the client that does not read");
    assert!(connected_for >= Duration::from_secs(2), "disconnected within {connected_for:?}");
    let metrics = http::metrics(&picket.spec.http_addr());
    assert_eq!(http::metric(&metrics, "picket_resp_slow_clients_total", &[]), Some(1.0));
    // Its socket is closed: reading it ends (with what the kernel held, or a reset).
    hog.set_read_timeout(Some(CLUSTER_WAIT)).unwrap();
    let mut sink = vec![0u8; 1 << 20];
    let mut drained = 0usize;
    loop {
        match hog.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    writer.join().unwrap();
    // The reading client is still connected and served.
    assert_eq!(reader.call(&["PING"]), Frame::Simple("PONG".into()));
    assert_eq!(info_number(&mut c, "stats", "client_output_buffer_limit_disconnections"), 1);
    eprintln!(
        "soft limit: the non-reading client was still connected {connected_for:?} after its \
         requests, disconnected within {after:?} ({drained} bytes reached it); the reading \
         client read {read} replies of 1 MB meanwhile"
    );
}

/// A connection with a 4 KiB receive buffer and 1,000-byte segments, as a client behind a slow
/// link: the kernel then holds only a few dozen KiB of what it does not read (on loopback it
/// would otherwise hold megabytes), and the rest stays pending in the server.
fn narrow_connection(addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.set_tcp_mss(1000).unwrap();
    socket.connect(&addr.into()).unwrap();
    socket.into()
}

/// Issue 12, point 5, under the per-client limits: 1,000 clients each ask for a 250 KB reply
/// (under the soft limit, so no per-client limit ever disconnects them) and never read. Without
/// a budget for all clients together they would hold about 250 MB for as long as they like;
/// with it, the clients whose replies would cross it are disconnected and counted, the memory
/// stays bounded, and a client that reads is served throughout.
#[test]
fn many_clients_that_do_not_read_cannot_take_more_than_the_output_budget() {
    const CLIENTS: usize = 1000;
    /// The growth allowed: the port's budget (64 MiB), twice over for the allocator's slack and
    /// the connections themselves.
    const GROWTH_CEILING_KIB: u64 = 2 * 64 * 1024;
    let _alone = one_at_a_time();
    let group = Group::start("session", 0, None);
    let picket = lone_picket(&group);
    let addr = picket.spec.listen_addr();
    let mut c = wait_until("the sentinel port", CLUSTER_WAIT, || {
        TcpStream::connect(&addr).ok().map(|_| Resp::connect(&addr))
    });
    let get_addr = ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", "session"];
    let expected = c.call(&get_addr);
    let commands = info_number(&mut c, "stats", "total_commands_processed");
    let pid = picket.pid();
    let rss_before = rss_kib(pid);
    let echo = request(&["ECHO", &"x".repeat(250_000)]);
    let mut rss_flood = 0;
    let hogs: Vec<TcpStream> = (0..CLIENTS)
        .map(|i| {
            let mut hog = narrow_connection(&addr);
            hog.set_write_timeout(Some(CLUSTER_WAIT)).unwrap();
            hog.write_all(&echo).expect("the server reads the request");
            if i % 100 == 99 {
                rss_flood = rss_flood.max(rss_kib(pid));
                assert_eq!(c.call(&get_addr), expected, "a reading client is served");
            }
            hog
        })
        .collect();
    // The count an `INFO` shows leaves out the `INFO` itself; this client ran one `INFO` and
    // ten lookups so far.
    let mut mine = 11;
    wait_for("every request run", CLUSTER_WAIT, || {
        let done = info_number(&mut c, "stats", "total_commands_processed") - commands;
        rss_flood = rss_flood.max(rss_kib(pid));
        let all = done >= CLIENTS as u64 + mine;
        mine += 1;
        all
    });
    rss_flood = rss_flood.max(rss_kib(pid));
    let disconnected = info_number(&mut c, "stats", "client_output_buffer_limit_disconnections");
    let connected = info_number(&mut c, "clients", "connected_clients");
    assert_eq!(c.call(&get_addr), expected, "a reading client is served");
    drop(hogs);
    wait_for("the clients gone", CLUSTER_WAIT, || {
        info_number(&mut c, "clients", "connected_clients") == 1
    });
    let rss_after = rss_kib(pid);
    eprintln!(
        "{CLIENTS} clients not reading 250 KB replies: {disconnected} disconnected, {} held; \
         RSS {rss_before} KiB before, at most {rss_flood} KiB during, {rss_after} KiB after",
        connected - 1
    );
    assert!(disconnected > 0, "no client was disconnected");
    assert!(connected > 1, "some clients are held: the budget is not zero");
    let growth = rss_flood.saturating_sub(rss_before);
    assert!(growth < GROWTH_CEILING_KIB, "RSS grew by {growth} KiB");
    assert!(rss_flood < RSS_CEILING_KIB, "RSS {rss_flood} KiB over the ceiling");
}

/// Clients that read every reply keep no request or reply buffers once idle: 1,000 clients each
/// send a 60 KB request, read its 60 KB reply and stay connected. Each buffer is under the size
/// a connection used to keep for the next request (64 KiB of input, 128 KiB of output), so that
/// 10,000 clients could have held 1.2 GB between them; the budget for pending output does not
/// see buffers whose bytes went out.
#[test]
fn idle_clients_keep_no_request_or_reply_buffers() {
    const CLIENTS: usize = 1000;
    /// What 1,000 idle clients may cost together (measured: about 3 KiB each once idle, for
    /// their tasks and sockets, whatever they asked before; 124 KiB each when connections kept
    /// their buffers).
    const GROWTH_CEILING_KIB: u64 = 32 * 1024;
    let _alone = one_at_a_time();
    let group = Group::start("session", 0, None);
    let picket = lone_picket(&group);
    let addr = picket.spec.listen_addr();
    let mut c = wait_until("the sentinel port", CLUSTER_WAIT, || {
        TcpStream::connect(&addr).ok().map(|_| Resp::connect(&addr))
    });
    let pid = picket.pid();
    let rss_before = rss_kib(pid);
    let payload = "x".repeat(60_000);
    let reply = bulk(&payload);
    let idle: Vec<Resp> = (0..CLIENTS)
        .map(|_| {
            let mut client = Resp::connect(&addr);
            assert_eq!(client.call(&["ECHO", &payload]), reply);
            client
        })
        .collect();
    assert_eq!(info_number(&mut c, "clients", "connected_clients"), CLIENTS as u64 + 1);
    let rss_idle = rss_kib(pid);
    drop(idle);
    let growth = rss_idle.saturating_sub(rss_before);
    eprintln!(
        "{CLIENTS} idle clients after a 60 KB request and reply each: RSS {rss_before} KiB \
         before, {rss_idle} KiB with them ({} KiB each)",
        growth / CLIENTS as u64
    );
    assert!(growth < GROWTH_CEILING_KIB, "RSS grew by {growth} KiB");
}
