//! Hostile clients without a password, against three real nodes and real redis-servers: idle
//! connections past the descriptor budget, strangers holding the gossip port, slowloris and idle
//! HTTP connections, and gossip frames replayed to another node, back to their sender and twice.
//! After each attack the cluster must still do its job: a real SIGKILL failover completes within a
//! generous bound, `/healthz` answers during the flood (its latency is printed), and the attacked
//! node stays under a memory ceiling.

#![allow(clippy::disallowed_methods)] // latencies of the probes are measured with the clock

#[path = "support/resp.rs"]
mod resp;
mod support;

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use resp::{Resp, rss_kib};
use support::http::{metric, metrics};
use support::{
    Cluster, ClusterOptions, Group, NodeSpec, Picket, config_text, durable_master, node_specs,
    wait_for, wait_until,
};

/// A SIGKILL failover (`down_after_ms` = 1 s) completes well within this on two busy cores.
const FAILOVER_BOUND: Duration = Duration::from_secs(30);
/// `/healthz` and `/readyz` must answer within this during a flood. The target is 100 ms (the
/// measured values are printed); the bound is generous for two loaded cores.
const PROBE_BOUND: Duration = Duration::from_secs(1);
/// Resident memory the attacked node must stay under.
const RSS_CEILING_KIB: u64 = 200 * 1024;

/// The attacks run one at a time: each opens thousands of client connections, whose ephemeral
/// ports would otherwise take ports another test's cluster was given but has not bound yet (and
/// each is meant to be measured alone).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One `GET path`, timed: the status line and how long the whole answer took.
fn timed_get(addr: &str, path: &str) -> (String, Duration) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect to the HTTP port");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_owned();
    (status, started.elapsed())
}

/// Probes `/healthz` and `/readyz` `rounds` times each; prints and returns the slowest answer.
fn probe_health(label: &str, addr: &str, rounds: usize) -> Duration {
    let mut latencies = Vec::new();
    for _ in 0..rounds {
        for path in ["/healthz", "/readyz"] {
            let (status, took) = timed_get(addr, path);
            assert!(status.starts_with("HTTP/1.1 200"), "{path} during {label}: {status:?}");
            latencies.push(took);
        }
        thread::sleep(Duration::from_millis(20));
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let worst = *latencies.last().unwrap();
    println!(
        "{label}: /healthz and /readyz over {} probes: median {:.1} ms, max {:.1} ms",
        latencies.len(),
        median.as_secs_f64() * 1000.0,
        worst.as_secs_f64() * 1000.0
    );
    worst
}

/// Kills the master of `session` and waits until every node of `voters` durably names a new
/// one; returns it. Prints how long it took.
fn sigkill_failover(cluster: &mut Cluster, voters: &[usize], label: &str) -> String {
    let old = cluster.group("session").master.addr();
    let started = Instant::now();
    cluster.group_mut("session").master.kill();
    let pickets = &cluster.pickets;
    let new = wait_until(&format!("{label}: failover"), FAILOVER_BOUND, || {
        let views: Vec<_> =
            voters.iter().map(|&i| durable_master(&pickets[i], "session")).collect();
        let first = views.first()?.clone()?;
        let done = first.0 != old && views.iter().all(|v| v.as_ref() == Some(&first));
        done.then_some(first.0)
    });
    println!("{label}: SIGKILL failover persisted on {voters:?} after {:?}", started.elapsed());
    new
}

fn check_rss(label: &str, picket: &Picket) {
    let rss = rss_kib(picket.pid());
    println!("{label}: RSS {} KiB (ceiling {} KiB)", rss, RSS_CEILING_KIB);
    assert!(rss > 0 && rss < RSS_CEILING_KIB, "{label}: RSS {rss} KiB");
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(Iterator::count).unwrap_or(0)
}

/// The number logged as `"key":N` on the first log line containing `line`.
fn logged_number(log: &str, line: &str, key: &str) -> Option<u64> {
    let text = log.lines().find(|l| l.contains(line))?;
    let rest = &text[text.find(&format!("\"{key}\":"))? + key.len() + 3..];
    rest.chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// Three nodes supervising `session` (one replica); node 0 runs with at most `open_files` open
/// files when given. `edit` may change node `i`'s configuration text, given every node's spec.
fn cluster(
    open_files: Option<u64>,
    options: &ClusterOptions,
    edit: impl Fn(usize, &[NodeSpec], String) -> String,
) -> Cluster {
    let specs = node_specs(3);
    let group = Group::start("session", 1, None);
    let pickets = {
        let refs = vec![&group];
        let config = |i: usize, spec: &NodeSpec, state: &Path| {
            edit(i, &specs, config_text(spec, &specs, &refs, state, options))
        };
        specs
            .iter()
            .enumerate()
            .map(|(i, spec)| match open_files {
                Some(limit) if i == 0 => {
                    Picket::start_with_open_files(spec.clone(), limit, |s| config(i, spec, s))
                }
                _ => Picket::start(spec.clone(), |s| config(i, spec, s)),
            })
            .collect()
    };
    Cluster { groups: vec![group], pickets }
}

/// Attack 2: more idle Sentinel-port and HTTP connections than the node has descriptors for.
/// The Sentinel port refuses clients past its budget with Redis's error, HTTP makes room for
/// probes by closing idle connections, and the node keeps enough descriptors to persist a
/// failover.
#[test]
fn idle_clients_past_the_descriptor_budget_are_refused_and_failovers_still_persist() {
    let _one = one_at_a_time();
    let limit = 256;
    // The Sentinel port also listens with TLS: handshakes in progress hold descriptors too.
    let pki = support::tls::Pki::new("picket");
    let node_tls = support::NodeTls {
        dir: pki.dir().to_owned(),
        ca_file: pki.ca_file.clone(),
        client_auth: "none",
        peers: false,
        listeners: true,
    };
    for ip in ["127.0.0.1", "127.0.0.2", "127.0.0.3"] {
        pki.issue_to(&node_tls.pair(ip), &[ip], support::tls::Validity::Current);
    }
    let options = ClusterOptions { node_tls: Some(node_tls), ..ClusterOptions::default() };
    let mut cluster = cluster(Some(limit), &options, |_, _, text| text);
    cluster.wait_ready();
    let node = &cluster.pickets[0];
    let budget = logged_number(&node.log(), "descriptor budget", "sentinel_clients")
        .expect("the budget is logged") as usize;
    println!("open file limit {limit}: Sentinel-port budget {budget} clients");
    assert!(budget > 0 && budget < limit as usize, "budget {budget}");

    // First connections to the TLS port that never start their handshake (a handshake in
    // progress holds a descriptor as a client does), then plain clients.
    let connect_all = |addr: String, n: usize| -> Vec<Option<TcpStream>> {
        let streams: Vec<_> = (0..n).map(|_| TcpStream::connect(&addr).ok()).collect();
        streams.iter().flatten().for_each(|s| s.set_nonblocking(true).unwrap());
        streams
    };
    let mut tls_idle = connect_all(node.spec.tls_listen_addr(), 200);
    let mut clients = connect_all(node.spec.listen_addr(), 400);
    // Each connection is either held (nothing to read) or refused and closed: a plain client is
    // told Redis's error first.
    let refused = AtomicUsize::new(0);
    let sort_out = |streams: &mut [Option<TcpStream>]| {
        for slot in streams.iter_mut() {
            let Some(stream) = slot else { continue };
            let mut buf = [0u8; 64];
            match stream.read(&mut buf) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    assert!(
                        n == 0 || text == "-ERR max number of clients reached\r\n",
                        "refusal: {text:?}"
                    );
                    refused.fetch_add(1, Ordering::Relaxed);
                    *slot = None;
                }
                Err(_) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                    *slot = None;
                }
            }
        }
    };
    // The node accepts or refuses each at once; a handshake that never starts is held for the
    // 10 s handshake limit, so a second later each is in its final state.
    thread::sleep(Duration::from_secs(1));
    sort_out(&mut tls_idle);
    sort_out(&mut clients);
    let (handshaking, held) = (tls_idle.iter().flatten().count(), clients.iter().flatten().count());
    // HTTP's share of the budget is held by idle connections too; probes still get answers, as
    // each takes the place of the oldest idle connection.
    let http_idle: Vec<TcpStream> =
        (0..100).filter_map(|_| TcpStream::connect(node.spec.http_addr()).ok()).collect();
    thread::sleep(Duration::from_millis(300));
    let descriptors = open_files(node.pid());
    println!(
        "200 idle TLS and 400 idle plain connections: {handshaking} TLS and {held} plain held, {} \
         refused; the node has {descriptors} files open",
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(handshaking + held, budget, "the port holds exactly its budget");
    assert!(!node.log().contains("Too many open files"), "the node ran out:\n{}", node.log());
    assert!(descriptors < limit as usize);
    let worst = probe_health("descriptor flood", &node.spec.http_addr(), 10);
    assert!(worst < PROBE_BOUND, "probes took up to {worst:?}");
    let evicted =
        metric(&metrics(&node.spec.http_addr()), "picket_http_evicted_connections_total", &[]);
    println!("{} idle HTTP connections: {evicted:?} evicted to answer probes", http_idle.len());
    assert!(evicted.is_some_and(|n| n > 0.0));

    // While every client slot is held, the node still writes its state through a failover.
    let new = sigkill_failover(&mut cluster, &[0, 1, 2], "descriptor flood");
    let node = &mut cluster.pickets[0];
    assert_eq!(durable_master(node, "session").map(|m| m.0), Some(new));
    assert!(node.is_running(), "the node kept running:\n{}", node.log());
    assert!(!node.log().contains("cannot persist"), "{}", node.log());
    check_rss("descriptor flood", node);

    // Once the idle clients go, new clients are served again.
    drop((clients, tls_idle, http_idle));
    wait_for("a new client served", Duration::from_secs(10), || {
        resp::text(&Resp::connect(&node.spec.listen_addr()).call(&["PING"])) == "PONG"
    });
}

/// A thread that keeps `holding` gossip connections open to `target` from each source address,
/// each having sent a 4-byte length prefix and nothing more, replacing those the node closes.
struct GossipFlood {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    thread: Option<thread::JoinHandle<()>>,
}

impl GossipFlood {
    fn start(target: SocketAddr, sources: Vec<&'static str>, holding: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let (stop2, opened2) = (Arc::clone(&stop), Arc::clone(&opened));
        let thread = thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let mut open = VecDeque::new();
                while !stop2.load(Ordering::Relaxed) {
                    for source in &sources {
                        let socket = tokio::net::TcpSocket::new_v4().unwrap();
                        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
                        if let Ok(Ok(mut stream)) =
                            tokio::time::timeout(Duration::from_millis(200), socket.connect(target))
                                .await
                        {
                            use tokio::io::AsyncWriteExt;
                            let _ = stream.write_all(&[0, 0, 0, 4]).await;
                            opened2.fetch_add(1, Ordering::Relaxed);
                            open.push_back(stream);
                        }
                    }
                    while open.len() > holding {
                        open.pop_front();
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            });
        });
        Self { stop, opened, thread: Some(thread) }
    }
}

impl Drop for GossipFlood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Attack 3: strangers (and connections from a peer's own address) hold as many gossip
/// connections as they can. A restarted peer still reconnects, a failover that needs it goes
/// through, and the refusals cost a handful of log lines.
#[test]
fn strangers_cannot_hold_the_gossip_port_and_a_restarted_peer_gets_back_in() {
    let _one = one_at_a_time();
    let mut cluster = cluster(None, &ClusterOptions::default(), |_, _, text| text);
    cluster.wait_ready();
    let target: SocketAddr = cluster.pickets[0].spec.gossip_addr().parse().unwrap();
    let started = Instant::now();
    // Addresses no configured peer resolves to. (Connections from a peer's own address share a
    // larger pool; whoever can use a peer's address is on the peer's host.)
    let flood = GossipFlood::start(target, vec!["127.0.0.9", "127.0.0.10"], 2000);
    thread::sleep(Duration::from_secs(2));

    // Node 2 dies and node 1 restarts: from now on, any failover needs node 1's new connection
    // to the flooded port.
    cluster.pickets[2].kill();
    cluster.pickets[1].restart();
    probe_health("gossip flood", &cluster.pickets[0].spec.http_addr(), 10);
    let new = sigkill_failover(&mut cluster, &[0, 1], "gossip flood");
    assert_eq!(new, cluster.group("session").replicas[0].addr());
    let opened = flood.opened.load(Ordering::Relaxed);
    drop(flood);

    let node = &cluster.pickets[0];
    let text = metrics(&node.spec.http_addr());
    let refused = |reason| {
        metric(&text, "picket_gossip_frames_rejected_total", &[("reason", reason)]).unwrap_or(0.0)
    };
    let lines = node.log().matches("refused a gossip connection").count();
    let seconds = started.elapsed().as_secs();
    println!(
        "gossip flood: {opened} connections in {seconds} s; refused: {} without a slot, {} \
         unauthenticated; {lines} log lines",
        refused("no_slot"),
        refused("unauthenticated"),
    );
    assert!(refused("no_slot") > 0.0 && refused("unauthenticated") > 0.0, "{text}");
    // One line per 10 s interval, plus the first.
    assert!(lines as u64 <= seconds / 10 + 2, "{lines} refusal lines in {seconds} s");
    check_rss("gossip flood", node);
}

/// Writes `line` to every connection that is still open; returns how many are.
fn drip(streams: &mut [Option<TcpStream>], line: &[u8]) -> usize {
    for slot in streams.iter_mut() {
        if let Some(stream) = slot
            && stream.write_all(line).is_err()
        {
            *slot = None;
        }
    }
    streams.iter().flatten().count()
}

/// Whether the server closed `stream` (reads end or fail rather than block).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// Attack 4: 1,024 idle and slowloris HTTP connections. Health probes keep answering, the
/// connections are closed at the header deadline, and a failover goes through.
#[test]
fn idle_and_slowloris_http_connections_neither_starve_probes_nor_stay() {
    let _one = one_at_a_time();
    let mut cluster = cluster(None, &ClusterOptions::default(), |_, _, text| text);
    cluster.wait_ready();
    let http = cluster.pickets[0].spec.http_addr();
    let mut idle: Vec<Option<TcpStream>> =
        (0..512).map(|_| TcpStream::connect(&http).ok()).collect();
    let mut slow: Vec<Option<TcpStream>> =
        (0..512).map(|_| TcpStream::connect(&http).ok()).collect();
    assert_eq!(idle.iter().flatten().count() + slow.iter().flatten().count(), 1024);
    let opened = Instant::now();
    drip(&mut slow, b"GET /healthz HTTP/1.1\r\nHost: picket\r\n");
    let worst = probe_health("HTTP slowloris", &http, 10);
    assert!(worst < PROBE_BOUND, "probes took up to {worst:?}");

    // The slowloris clients keep sending a header line a second; the deadline still closes them.
    let deadline = opened + Duration::from_secs(10 + 5);
    while Instant::now() < deadline && drip(&mut slow, b"X-Slow: 1\r\n") > 0 {
        thread::sleep(Duration::from_secs(1));
    }
    let still_slow = slow.iter().flatten().count();
    let still_idle =
        idle.iter_mut().flatten().map(closed_by_server).filter(|closed| !closed).count();
    println!("after the header deadline: {still_idle} idle and {still_slow} slowloris left open");
    assert_eq!((still_idle, still_slow), (0, 0));
    drop((idle, slow));

    sigkill_failover(&mut cluster, &[0, 1, 2], "HTTP slowloris");
    check_rss("HTTP slowloris", &cluster.pickets[0]);
}

/// Frames of one direction of a relayed connection, as an eavesdropper saw them.
type Captured = Arc<Mutex<Vec<Vec<u8>>>>;

/// A relay in front of node 1's gossip port that records the frames node 0 sends through it
/// and, while `duplicate` is set, delivers each of them twice.
fn start_relay(listen: &str, upstream: String, captured: Captured, duplicate: Arc<AtomicBool>) {
    let listener = TcpListener::bind(listen).unwrap();
    thread::spawn(move || {
        for down in listener.incoming() {
            let Ok(mut down) = down else { continue };
            let Ok(mut up) = TcpStream::connect(&upstream) else { continue };
            let from_node0 = down.peer_addr().is_ok_and(|a| a.ip().to_string() == "127.0.0.1");
            let (mut up2, mut down2) = (up.try_clone().unwrap(), down.try_clone().unwrap());
            // Challenges flow back unchanged.
            thread::spawn(move || {
                let _ = std::io::copy(&mut up2, &mut down2);
            });
            let (captured, duplicate) = (Arc::clone(&captured), Arc::clone(&duplicate));
            thread::spawn(move || {
                loop {
                    let mut len = [0u8; 4];
                    if down.read_exact(&mut len).is_err() {
                        return;
                    }
                    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                    if down.read_exact(&mut body).is_err() {
                        return;
                    }
                    let mut framed = len.to_vec();
                    framed.extend_from_slice(&body);
                    if from_node0 {
                        captured.lock().unwrap().push(framed.clone());
                    }
                    let times = if from_node0 && duplicate.load(Ordering::Relaxed) { 2 } else { 1 };
                    for _ in 0..times {
                        if up.write_all(&framed).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
}

/// Opens a gossip connection to `target`, reads its challenge, and sends `frames`; returns
/// whether the node closed the connection (it should, at the first replayed frame).
fn replay(target: &str, frames: &[Vec<u8>]) -> bool {
    let Ok(mut stream) = TcpStream::connect(target) else { return true };
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut challenge = [0u8; 4 + picket::wire::frame::CHALLENGE_LEN];
    if stream.read_exact(&mut challenge).is_err() {
        return true;
    }
    for frame in frames {
        if stream.write_all(frame).is_err() {
            return true;
        }
    }
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Ok(0) | Err(_))
}

fn rejected(http: &str, reason: &str) -> f64 {
    metric(&metrics(http), "picket_gossip_frames_rejected_total", &[("reason", reason)])
        .unwrap_or(0.0)
}

/// Attack 8: gossip frames captured on their way from node 0 to node 1, replayed to node 2, back
/// to node 0, on a new connection to node 1, and twice on their own connection. None is
/// accepted, and once node 0 is killed, replaying its frames does not keep it alive: its peers
/// see it down and fail the master over without it.
#[test]
fn replayed_gossip_frames_are_refused_and_keep_no_dead_node_alive() {
    let _one = one_at_a_time();
    let relay = format!("127.0.0.5:{}", support::free_port());
    // Node 1 is known (and announces itself) at the relay's address.
    let mut cluster = cluster(None, &ClusterOptions::default(), |i, specs, text| {
        if i == 1 {
            text.replacen("[node]\n", &format!("[node]\nannounce = \"{relay}\"\n"), 1)
        } else {
            text.replace(&specs[1].gossip_addr(), &relay)
        }
    });
    let node1 = cluster.pickets[1].spec.gossip_addr();
    let captured: Captured = Arc::default();
    let duplicate = Arc::new(AtomicBool::new(false));
    start_relay(&relay, node1.clone(), Arc::clone(&captured), Arc::clone(&duplicate));
    cluster.wait_ready();
    wait_for("frames captured", Duration::from_secs(20), || captured.lock().unwrap().len() >= 20);

    let http: Vec<String> = cluster.pickets.iter().map(|p| p.spec.http_addr()).collect();
    let frames: Vec<Vec<u8>> = captured.lock().unwrap().clone();
    // To another node, back to the sender, and to the receiver on a new connection.
    for (target, name) in [(2, "node 2"), (0, "node 0 (its sender)"), (1, "node 1 (again)")] {
        let before = rejected(&http[target], "bad_mac");
        assert!(replay(&cluster.pickets[target].spec.gossip_addr(), &frames), "{name} closes");
        wait_for(&format!("{name} counts the replay"), Duration::from_secs(5), || {
            rejected(&http[target], "bad_mac") > before
        });
    }
    // Twice on the connection it was sent on.
    let before = rejected(&http[1], "replayed");
    duplicate.store(true, Ordering::Relaxed);
    wait_for("node 1 refuses the duplicates", Duration::from_secs(10), || {
        rejected(&http[1], "replayed") >= before + 10.0
    });
    duplicate.store(false, Ordering::Relaxed);
    println!(
        "replays refused: bad_mac {:?}, replayed on node 1 {}",
        http.iter().map(|h| rejected(h, "bad_mac")).collect::<Vec<_>>(),
        rejected(&http[1], "replayed")
    );
    assert!(!cluster.pickets.iter().any(|p| p.saw("+sdown sentinel")), "nobody looked down");

    // Node 0 dies; its recorded frames, replayed to its peers, do not keep it alive.
    cluster.pickets[0].kill();
    let frames: Vec<Vec<u8>> = captured.lock().unwrap().clone();
    let (peers, stop) = (
        [cluster.pickets[1].spec.gossip_addr(), cluster.pickets[2].spec.gossip_addr()],
        Arc::new(AtomicBool::new(false)),
    );
    let replayer = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for peer in &peers {
                    replay(peer, &frames);
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    for i in [1, 2] {
        wait_for("the dead node seen down", Duration::from_secs(15), || {
            cluster.pickets[i].saw("+sdown sentinel")
        });
    }
    sigkill_failover(&mut cluster, &[1, 2], "replayed frames");
    stop.store(true, Ordering::Relaxed);
    replayer.join().unwrap();
    check_rss("replayed frames", &cluster.pickets[1]);
}
