//! Sentinel-compatible peering against real `redis-sentinel` 7.0 processes (issue 16): a master
//! and two replicas supervised by a mix of Sentinels and Pickets, quorum 2, the way a rolling
//! migration runs it (2 Sentinels + 1 Picket, then 1 Sentinel + 2 Pickets). The master is
//! SIGKILLed; exactly one failover must happen, whichever kind leads, and every Sentinel and
//! every Picket must then answer the new address. Each kind is made to lead at least once by
//! stopping (SIGSTOP) the other kind's nodes while a majority of the three voters stays up.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{
    ClusterOptions, Group, Picket, config_text, free_port, missing, node_specs, wait_for,
    wait_until,
};

const LONG: Duration = Duration::from_secs(90);
const MASTER: &str = "mymaster";
const DOWN_AFTER_MS: u64 = 2000;
const FAILOVER_TIMEOUT_MS: u64 = 10_000;

/// A `redis-sentinel` process; killed when dropped.
struct Sentinel {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Sentinel {
    fn start(port: u16, master: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (host, master_port) = master.split_once(':').unwrap();
        let conf = format!(
            "port {port}\nbind 127.0.0.1\ndir \"{dir}\"\nlogfile \"{dir}/sentinel.log\"\n\
             sentinel monitor {MASTER} {host} {master_port} 2\n\
             sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n",
            dir = dir.path().display()
        );
        fs::write(dir.path().join("sentinel.conf"), conf).unwrap();
        let child = Command::new("redis-sentinel")
            .arg(dir.path().join("sentinel.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel runs");
        let sentinel = Self { port, dir, child: Some(child) };
        wait_until("redis-sentinel up", LONG, || {
            std::net::TcpStream::connect(sentinel.addr()).ok()
        });
        sentinel
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("sentinel.log")
    }

    /// How many log lines contain `needle`.
    fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    fn signal(&self, sig: &str) {
        if let Some(child) = &self.child {
            let _ =
                Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status();
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-CONT").arg(child.id().to_string()).status();
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- log of sentinel {} ----\n{}", self.addr(), self.log());
        }
    }
}

/// One command on a fresh connection to `addr`, with short timeouts.
fn query(addr: &str, args: &[&str]) -> Option<redis::Value> {
    let client = redis::Client::open(format!("redis://{addr}")).ok()?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn).ok()
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME mymaster` at a Sentinel or a Picket, as `host:port`.
fn master_addr_at(addr: &str) -> Option<String> {
    let value = query(addr, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER])?;
    let (host, port): (String, String) = redis::from_redis_value(value).ok()?;
    Some(format!("{host}:{port}"))
}

/// `SENTINEL MASTER mymaster` at `addr`, as a map.
fn master_map(addr: &str) -> Option<std::collections::BTreeMap<String, String>> {
    let value = query(addr, &["SENTINEL", "MASTER", MASTER])?;
    let flat: Vec<String> = redis::from_redis_value(value).ok()?;
    Some(flat.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect())
}

/// A master, two replicas, and a mix of Sentinels and Pickets supervising them.
struct Mixed {
    group: Group,
    sentinels: Vec<Sentinel>,
    pickets: Vec<Picket>,
}

impl Mixed {
    fn start(sentinels: usize, pickets: usize) -> Self {
        let group = Group::start(MASTER, 2, None);
        let master = group.master.addr();
        let sentinels: Vec<Sentinel> =
            (0..sentinels).map(|_| Sentinel::start(free_port(), &master)).collect();
        let listed: Vec<String> = sentinels.iter().map(|s| format!("\"{}\"", s.addr())).collect();
        let options = ClusterOptions {
            quorum: 2,
            down_after_ms: DOWN_AFTER_MS,
            failover_timeout_ms: FAILOVER_TIMEOUT_MS,
            // Sentinels know nothing of leases: this master is fenced the way they fence it.
            master_extra: format!("fencing = \"off\"\nsentinel_peers = [{}]\n", listed.join(", ")),
            ..ClusterOptions::default()
        };
        let specs = node_specs(pickets);
        let pickets = specs
            .iter()
            .map(|spec| {
                Picket::start(spec.clone(), |state| {
                    config_text(spec, &specs, &[&group], state, &options)
                })
            })
            .collect();
        let mixed = Self { group, sentinels, pickets };
        mixed.wait_ready();
        mixed
    }

    fn voters(&self) -> usize {
        self.sentinels.len() + self.pickets.len()
    }

    /// Every voter's Sentinel-port address.
    fn addrs(&self) -> Vec<String> {
        let sentinels = self.sentinels.iter().map(Sentinel::addr);
        sentinels.chain(self.pickets.iter().map(|p| p.spec.listen_addr())).collect()
    }

    /// Waits until every Sentinel knows the replicas and every other voter (Pickets included,
    /// from their hellos), and every Picket has heard every other voter.
    fn wait_ready(&self) {
        let others = (self.voters() - 1).to_string();
        for s in &self.sentinels {
            wait_for("a Sentinel to know every voter and replica", LONG, || {
                master_map(&s.addr()).is_some_and(|m| {
                    m.get("num-other-sentinels") == Some(&others)
                        && m.get("num-slaves").map(String::as_str) == Some("2")
                })
            });
        }
        for p in &self.pickets {
            wait_for("a Picket to hear every voter and replica", LONG, || {
                p.count("+sentinel sentinel ") >= self.voters() - 1 && p.count("+slave ") >= 2
            });
            // It lists them all, Sentinels included, as a Sentinel lists its peers.
            wait_for("SENTINEL SENTINELS on a Picket to list every other voter", LONG, || {
                master_map(&p.spec.listen_addr())
                    .is_some_and(|m| m.get("num-other-sentinels") == Some(&others))
            });
            // The Sentinels also count it as reachable: CKQUORUM over all three voters.
            wait_for("CKQUORUM OK on a Picket", LONG, || {
                query(&p.spec.listen_addr(), &["SENTINEL", "CKQUORUM", MASTER]).is_some_and(
                    |v| matches!(v, redis::Value::SimpleString(s) if s.starts_with("OK 3 ")),
                )
            });
        }
    }

    /// Failovers elected so far: by the Sentinels (from their logs) and by the Pickets.
    fn elected(&self) -> (usize, usize) {
        let needle = format!("+elected-leader master {MASTER}");
        let sentinels = self.sentinels.iter().map(|s| s.count(&needle)).sum();
        let pickets = self.pickets.iter().map(|p| p.count(&needle)).sum();
        (sentinels, pickets)
    }

    /// Waits until every voter answers the same address other than `old`, and returns it.
    fn agreed(&self, old: &str, addrs: &[String]) -> String {
        wait_until("every voter to answer the new master", LONG, || {
            let answers: Vec<Option<String>> = addrs.iter().map(|a| master_addr_at(a)).collect();
            let first = answers.first()?.clone()?;
            (first != old && answers.iter().all(|a| a.as_deref() == Some(first.as_str())))
                .then_some(first)
        })
    }

    /// Exactly one replica promoted, the other following it, and one election won in all.
    fn check_one_failover(&self, new: &str) -> (usize, usize) {
        let promoted = self.group.at(new).expect("the new master is one of the replicas");
        wait_for("the new master to be writable", LONG, || {
            promoted.query(&["SET", "k", "v"]).is_ok()
        });
        for replica in self.group.replicas.iter().filter(|r| r.addr() != new) {
            wait_for("the other replica to follow the new master", LONG, || {
                replica.role().as_deref() == Some("slave")
                    && replica.master_of().as_deref() == Some(new)
            });
        }
        let elected = self.elected();
        assert_eq!(elected.0 + elected.1, 1, "exactly one election won (sentinels, pickets)");
        elected
    }
}

fn redis_sentinel_missing() -> bool {
    let found = Command::new("redis-sentinel").arg("--version").output().is_ok();
    missing("redis-sentinel", found)
}

#[test]
fn two_sentinels_and_a_picket_fail_over_once() {
    if redis_sentinel_missing() {
        return;
    }
    let mut mixed = Mixed::start(2, 1);
    let old = mixed.group.master.addr();
    mixed.group.master.kill();
    let new = mixed.agreed(&old, &mixed.addrs());
    let (by_sentinels, by_pickets) = mixed.check_one_failover(&new);
    println!("elected: {by_sentinels} by Sentinels, {by_pickets} by Pickets");
    // `picket ctl status` tells the two kinds of voters apart.
    let url = format!("http://{}", mixed.pickets[0].spec.http_addr());
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["ctl", "--url", &url, "status"])
        .env_remove("PICKET_TOKEN")
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{status}");
    for sentinel in &mixed.sentinels {
        let row = status.lines().find(|l| l.trim_start().starts_with(&sentinel.addr()));
        assert!(row.is_some_and(|r| r.contains(" sentinel ")), "{status}");
    }
    let me = status.lines().find(|l| l.trim_start().starts_with("(this node)"));
    assert!(me.is_some_and(|r| r.contains(" picket ")), "{status}");
}

#[test]
fn one_sentinel_and_two_pickets_fail_over_once() {
    if redis_sentinel_missing() {
        return;
    }
    let mut mixed = Mixed::start(1, 2);
    let old = mixed.group.master.addr();
    mixed.group.master.kill();
    let new = mixed.agreed(&old, &mixed.addrs());
    let (by_sentinels, by_pickets) = mixed.check_one_failover(&new);
    println!("elected: {by_sentinels} by Sentinels, {by_pickets} by Pickets");
}

/// The Picket is stopped, so the two Sentinels lead; once resumed, the Picket adopts the
/// configuration from their hellos (after the promoted replica reports `role:master`).
#[test]
fn sentinels_lead_and_the_picket_adopts_their_configuration() {
    if redis_sentinel_missing() {
        return;
    }
    let mut mixed = Mixed::start(2, 1);
    let old = mixed.group.master.addr();
    mixed.pickets[0].pause();
    mixed.group.master.kill();
    let sentinel_addrs: Vec<String> = mixed.sentinels.iter().map(Sentinel::addr).collect();
    let new = mixed.agreed(&old, &sentinel_addrs);
    mixed.pickets[0].resume();
    assert_eq!(mixed.agreed(&old, &mixed.addrs()), new);
    assert_eq!(mixed.check_one_failover(&new), (1, 0));
    let picket = &mixed.pickets[0];
    assert_eq!(picket.count("+config-update-from sentinel "), 1, "{:?}", picket.events());
}

/// The Sentinel is stopped, so the two Pickets lead; once resumed, the Sentinel adopts the
/// configuration from the Pickets' hellos.
#[test]
fn pickets_lead_and_the_sentinel_adopts_their_configuration() {
    if redis_sentinel_missing() {
        return;
    }
    let mut mixed = Mixed::start(1, 2);
    let old = mixed.group.master.addr();
    mixed.sentinels[0].signal("STOP");
    mixed.group.master.kill();
    let picket_addrs: Vec<String> = mixed.pickets.iter().map(|p| p.spec.listen_addr()).collect();
    let new = mixed.agreed(&old, &picket_addrs);
    mixed.sentinels[0].signal("CONT");
    assert_eq!(mixed.agreed(&old, &mixed.addrs()), new);
    assert_eq!(mixed.check_one_failover(&new), (0, 1));
    assert_eq!(mixed.sentinels[0].count("+config-update-from sentinel "), 1);
}

/// With one of two Sentinels stopped, the running Sentinel and the Picket are two of three
/// voters: whichever kind leads needs the other kind's vote (and its "down" answer for ODOWN).
#[test]
fn a_sentinel_and_a_picket_elect_a_leader_across_kinds() {
    if redis_sentinel_missing() {
        return;
    }
    let mut mixed = Mixed::start(2, 1);
    let old = mixed.group.master.addr();
    mixed.sentinels[1].signal("STOP");
    mixed.group.master.kill();
    let running = vec![mixed.sentinels[0].addr(), mixed.pickets[0].spec.listen_addr()];
    let new = mixed.agreed(&old, &running);
    mixed.sentinels[1].signal("CONT");
    assert_eq!(mixed.agreed(&old, &mixed.addrs()), new);
    let (by_sentinels, by_pickets) = mixed.check_one_failover(&new);
    println!("elected: {by_sentinels} by Sentinels, {by_pickets} by Pickets");
    // The leader had the other kind's vote.
    let picket_id = myid(&mixed.pickets[0].spec.listen_addr());
    let sentinel_id = myid(&mixed.sentinels[0].addr());
    if by_pickets == 1 {
        let vote = format!("+vote-for-leader {picket_id} ");
        assert!(mixed.sentinels[0].count(&vote) >= 1, "{}", mixed.sentinels[0].log());
    } else {
        let vote = format!("+vote-for-leader {sentinel_id} ");
        assert!(mixed.pickets[0].saw(&vote), "{:?}", mixed.pickets[0].events());
    }
}

/// `SENTINEL MYID` at `addr`.
fn myid(addr: &str) -> String {
    redis::from_redis_value(query(addr, &["SENTINEL", "MYID"]).unwrap()).unwrap()
}

/// Hellos published on the master by a process that is not a listed Sentinel change nothing: one
/// from an unlisted address naming a replica as master with a high epoch is ignored (and
/// counted), and one claiming a listed Sentinel's address is not adopted, because the replica it
/// names does not report `role:master`.
#[test]
fn a_forged_hello_changes_nothing() {
    let group = Group::start(MASTER, 2, None);
    let spec = node_specs(1).remove(0);
    // Two listed Sentinels that do not run: the Picket must not need them to judge a hello.
    let (s1, s2) = (free_port(), free_port());
    let options = ClusterOptions {
        quorum: 2,
        master_extra: format!("sentinel_peers = [\"127.0.0.1:{s1}\", \"127.0.0.1:{s2}\"]\n"),
        ..ClusterOptions::default()
    };
    let picket = Picket::start(spec.clone(), |state| {
        config_text(&spec, std::slice::from_ref(&spec), &[&group], state, &options)
    });
    let listen = spec.listen_addr();
    wait_for("the picket to see both replicas", LONG, || picket.count("+slave ") >= 2);
    let master = group.master.addr();
    let replica = group.replicas[0].addr();
    let (rhost, rport) = replica.split_once(':').unwrap();
    let forged_id = "d".repeat(40);
    let unlisted = format!("127.0.0.1,1,{forged_id},50,{MASTER},{rhost},{rport},50");
    let impostor = format!("127.0.0.1,{s1},{forged_id},50,{MASTER},{rhost},{rport},50");
    // Published on the master (the Picket listens there) and pushed to its Sentinel port.
    wait_for("the unlisted hello to be seen and ignored", LONG, || {
        group.master.query(&["PUBLISH", "__sentinel__:hello", &unlisted]).is_ok()
            && query(&listen, &["PUBLISH", "__sentinel__:hello", &unlisted]).is_some()
            && metric(&spec.http_addr(), "picket_sentinel_hellos_unlisted_total") >= 2
    });
    for _ in 0..5 {
        group.master.query(&["PUBLISH", "__sentinel__:hello", &impostor]).unwrap();
        query(&listen, &["PUBLISH", "__sentinel__:hello", &impostor]).unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(master_addr_at(&listen).as_deref(), Some(master.as_str()));
    let map = master_map(&listen).unwrap();
    assert_eq!(map.get("config-epoch").map(String::as_str), Some("0"));
    assert!(!picket.saw("+switch-master"), "{:?}", picket.events());
    assert!(!picket.saw("+config-update-from"), "{:?}", picket.events());
    // A vote request from the impostor's id is answered without a vote.
    let answer = query(
        &listen,
        &[
            "SENTINEL",
            "IS-MASTER-DOWN-BY-ADDR",
            "127.0.0.1",
            &group.master.port.to_string(),
            "51",
            &forged_id,
        ],
    );
    let (down, leader, epoch): (i64, String, i64) =
        redis::from_redis_value(answer.unwrap()).unwrap();
    assert_eq!((down, leader.as_str(), epoch), (0, "*", 0));
}

/// A counter from the node's `/metrics`.
fn metric(http: &str, name: &str) -> u64 {
    let body = support::http::get(http, "/metrics").text();
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0)
}
