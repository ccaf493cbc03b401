//! Sentinel-compatible peering against real `redis-sentinel` 7.0 processes (issue 16): a master
//! and two replicas supervised by a mix of Sentinels and Pickets, quorum 2, the way a rolling
//! migration runs it (2 Sentinels + 1 Picket, then 1 Sentinel + 2 Pickets). The master is
//! SIGKILLed; exactly one failover must happen, whichever kind leads, and every Sentinel and
//! every Picket must then answer the new address. Each kind is made to lead at least once by
//! stopping (SIGSTOP) the other kind's nodes while a majority of the three voters stays up.

#![allow(clippy::disallowed_methods)] // waits on real processes in real time

mod support;

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::sentinel::{self, Sentinel};
use support::{
    ClusterOptions, Group, Picket, config_text, free_port, missing, node_specs, wait_for,
    wait_until,
};

const LONG: Duration = Duration::from_secs(90);

/// The scenarios share two busy cores with the rest of the suite: one at a time keeps the
/// elections they count undisturbed by each other's load.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
const MASTER: &str = "mymaster";
const DOWN_AFTER_MS: u64 = 2000;
const FAILOVER_TIMEOUT_MS: u64 = 10_000;

/// A Sentinel of `master` on `port`, with this file's timings and quorum 2. With `password`, it
/// requires it (`requirepass`) and gives it to the other Sentinels (Sentinel uses its
/// `requirepass` when `sentinel-pass` is not set).
fn start_sentinel(port: u16, master: &str, password: Option<&str>) -> Sentinel {
    let mut lines = sentinel::monitor(MASTER, master, 2, DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS);
    if let Some(password) = password {
        lines.push_str(&format!("requirepass \"{password}\"\n"));
    }
    Sentinel::start(port, &lines)
}

/// One command on a fresh connection to `addr` (`[:password@]host:port`), with short timeouts.
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

/// redis-py in Sentinel mode, pointed at every voter's address: writes a counter every 20 ms
/// through `master_for` until the stop file exists, then prints its outages (runs of failed
/// writes) as JSON: `{"writes": n, "outages_ms": [...]}`.
const WRITER: &str = r#"
import json, os, sys, time
from redis.sentinel import Sentinel

sentinels = [(a.split(":")[0], int(a.split(":")[1])) for a in sys.argv[1].split(",")]
master = Sentinel(sentinels, socket_timeout=0.5).master_for(sys.argv[2], socket_timeout=0.5)
stop = sys.argv[3]
writes, outages, failing_since = 0, [], None
while not os.path.exists(stop):
    try:
        master.set("counter", writes)
        writes += 1
        if failing_since is not None:
            outages.append(int((time.time() - failing_since) * 1000))
            failing_since = None
    except Exception:
        if failing_since is None:
            failing_since = time.time()
    time.sleep(0.02)
if failing_since is not None:
    outages.append(int((time.time() - failing_since) * 1000))
print(json.dumps({"writes": writes, "outages_ms": outages}), flush=True)
"#;

/// The redis-py writer, running.
struct Writer {
    child: Child,
    stop: tempfile::TempDir,
}

impl Writer {
    fn start(voters: &[String]) -> Self {
        let stop = tempfile::tempdir().unwrap();
        let child = Command::new("python3")
            .args(["-c", WRITER, &voters.join(","), MASTER])
            .arg(stop.path().join("stop"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        Self { child, stop }
    }

    /// Stops it: how many writes succeeded, and each outage's length.
    fn finish(mut self) -> (u64, Vec<u64>) {
        fs::write(self.stop.path().join("stop"), "").unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(self.child.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert!(self.child.wait().unwrap().success(), "writer failed: {out}");
        let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        let outages = report["outages_ms"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap());
        (report["writes"].as_u64().unwrap(), outages.collect())
    }
}

/// A test that fails before [`Writer::finish`] leaves no writer behind.
impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A master, two replicas, and a mix of Sentinels and Pickets supervising them.
struct Mixed {
    group: Group,
    sentinels: Vec<Sentinel>,
    pickets: Vec<Picket>,
    /// Every voter's port password, if any.
    password: Option<String>,
}

impl Mixed {
    fn start(sentinels: usize, pickets: usize) -> Self {
        Self::start_with(sentinels, pickets, None)
    }

    /// With `password` on every voter's port: the Sentinels' `requirepass`, the Pickets'
    /// `requirepass` and `sentinel_pass`.
    fn start_with(sentinels: usize, pickets: usize, password: Option<&str>) -> Self {
        let group = Group::start(MASTER, 2, None);
        let master = group.master.addr();
        let sentinels: Vec<Sentinel> =
            (0..sentinels).map(|_| start_sentinel(free_port(), &master, password)).collect();
        let listed: Vec<String> = sentinels.iter().map(|s| format!("\"{}\"", s.addr())).collect();
        let options = ClusterOptions {
            quorum: 2,
            down_after_ms: DOWN_AFTER_MS,
            failover_timeout_ms: FAILOVER_TIMEOUT_MS,
            // Sentinels know nothing of leases: this master is fenced the way they fence it.
            master_extra: format!("fencing = \"off\"\nsentinel_peers = [{}]\n", listed.join(", ")),
            node_extra: password.map_or_else(String::new, |p| {
                format!("requirepass = \"{p}\"\nsentinel_pass = \"{p}\"\n")
            }),
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
        let password = password.map(str::to_owned);
        let mixed = Self { group, sentinels, pickets, password };
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

    /// `addr` as [`query`] reaches it, with the password if there is one.
    fn target(&self, addr: &str) -> String {
        self.password.as_ref().map_or_else(|| addr.to_owned(), |p| format!(":{p}@{addr}"))
    }

    /// Waits until every Sentinel knows the replicas and every other voter (Pickets included,
    /// from their hellos), and every Picket has heard every other voter.
    fn wait_ready(&self) {
        let others = (self.voters() - 1).to_string();
        for s in &self.sentinels {
            wait_for("a Sentinel to know every voter and replica", LONG, || {
                master_map(&self.target(&s.addr())).is_some_and(|m| {
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
                master_map(&self.target(&p.spec.listen_addr()))
                    .is_some_and(|m| m.get("num-other-sentinels") == Some(&others))
            });
            // The Sentinels also count it as reachable: CKQUORUM over all three voters.
            wait_for("CKQUORUM OK on a Picket", LONG, || {
                let target = self.target(&p.spec.listen_addr());
                query(&target, &["SENTINEL", "CKQUORUM", MASTER]).is_some_and(
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
            let answers: Vec<Option<String>> =
                addrs.iter().map(|a| master_addr_at(&self.target(a))).collect();
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

#[test]
fn two_sentinels_and_a_picket_fail_over_once() {
    if sentinel::missing() {
        return;
    }
    let _one = one_at_a_time();
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
    if sentinel::missing() {
        return;
    }
    let _one = one_at_a_time();
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
    if sentinel::missing() {
        return;
    }
    let _one = one_at_a_time();
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
    if sentinel::missing() {
        return;
    }
    let _one = one_at_a_time();
    let mut mixed = Mixed::start(1, 2);
    let old = mixed.group.master.addr();
    mixed.sentinels[0].pause();
    mixed.group.master.kill();
    let picket_addrs: Vec<String> = mixed.pickets.iter().map(|p| p.spec.listen_addr()).collect();
    let new = mixed.agreed(&old, &picket_addrs);
    mixed.sentinels[0].resume();
    assert_eq!(mixed.agreed(&old, &mixed.addrs()), new);
    assert_eq!(mixed.check_one_failover(&new), (0, 1));
    assert_eq!(mixed.sentinels[0].count("+config-update-from sentinel "), 1);
}

/// With one of two Sentinels stopped, the running Sentinel and the Picket are two of three
/// voters: whichever kind leads needs the other kind's vote (and its "down" answer for ODOWN).
#[test]
fn a_sentinel_and_a_picket_elect_a_leader_across_kinds() {
    across_kinds(None);
}

/// The same with passwords on every port: the Sentinels authenticate to the Picket with its
/// `requirepass`, the Picket to them with `sentinel_pass`.
#[test]
fn a_sentinel_and_a_picket_elect_a_leader_across_kinds_with_passwords() {
    across_kinds(Some("voters-secret"));
}

fn across_kinds(password: Option<&str>) {
    if sentinel::missing() {
        return;
    }
    let _one = one_at_a_time();
    let mut mixed = Mixed::start_with(2, 1, password);
    let old = mixed.group.master.addr();
    let old_addr = old.replace(':', " ");
    mixed.sentinels[1].pause();
    mixed.group.master.kill();
    let running = vec![mixed.sentinels[0].addr(), mixed.pickets[0].spec.listen_addr()];
    let new = mixed.agreed(&old, &running);
    mixed.sentinels[1].resume();
    assert_eq!(mixed.agreed(&old, &mixed.addrs()), new);
    let (by_sentinels, by_pickets) = mixed.check_one_failover(&new);
    println!("elected: {by_sentinels} by Sentinels, {by_pickets} by Pickets");
    // The Picket's ODOWN needed the running Sentinel's "down" answer (the quorum is 2), which
    // it asked for, authenticated when the Sentinels have a password.
    let picket = &mixed.pickets[0];
    assert!(picket.saw(&format!("+odown master {MASTER} {old_addr}")), "{:?}", picket.events());
    // The leader had the other kind's vote.
    let picket_id = myid(&mixed.target(&mixed.pickets[0].spec.listen_addr()));
    let sentinel_id = myid(&mixed.target(&mixed.sentinels[0].addr()));
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

/// `import-sentinel` carries `sentinel sentinel-user` / `sentinel-pass` over: the Picket that
/// replaces a Sentinel authenticates to the Sentinels left as that Sentinel did. Their ports need
/// a password (`requirepass` for clients, an ACL user for the Sentinels); with one Sentinel
/// stopped, the Picket's ODOWN needs the running Sentinel's "down" answer, which it gets only
/// authenticated as that user. The other way, the Sentinels authenticate to the Picket as that
/// user, imported as a `[[user]]` although Sentinel rewrote its file with the user's password
/// hashed: the hash is the `sentinel-pass`'s.
#[test]
fn an_imported_picket_authenticates_to_the_sentinels_left_as_the_sentinel_did() {
    if sentinel::missing() {
        return;
    }
    let _one = one_at_a_time();
    const CLIENTS: &str = "clients-secret";
    const VOTERS: &str = "voters-secret";
    let mut group = Group::start(MASTER, 2, None);
    let old = group.master.addr();
    let lines = format!(
        "{}requirepass \"{CLIENTS}\"\nuser voter on >{VOTERS} ~* &* +@all\n\
         sentinel sentinel-user voter\nsentinel sentinel-pass \"{VOTERS}\"\n",
        sentinel::monitor(MASTER, &old, 2, DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS)
    );
    let mut sentinels: Vec<Sentinel> =
        (0..3).map(|_| Sentinel::start(free_port(), &lines)).collect();
    let target = |addr: &str| format!(":{CLIENTS}@{addr}");
    for s in &sentinels {
        wait_for("a Sentinel to know the two others, up, and both replicas", LONG, || {
            let others = query(&target(&s.addr()), &["SENTINEL", "SENTINELS", MASTER])
                .and_then(|v| redis::from_redis_value::<Vec<Vec<String>>>(v).ok());
            let up = others.is_some_and(|o| {
                o.len() == 2 && o.iter().all(|s| !s.iter().any(|f| f.contains("s_down")))
            });
            up && master_map(&target(&s.addr()))
                .is_some_and(|m| m.get("num-slaves").map(String::as_str) == Some("2"))
        });
    }
    // The first Sentinel is replaced by a Picket imported from its file.
    sentinels[0].stop();
    let left: Vec<String> = sentinels[1..].iter().map(Sentinel::addr).collect();
    let secret = tempfile::NamedTempFile::new().unwrap();
    fs::write(secret.path(), "peer-secret\n").unwrap();
    let spec = support::NodeSpec {
        ip: "127.0.0.1".to_owned(),
        listen: sentinels[0].port,
        gossip: free_port(),
        http: free_port(),
        tls_listen: 0,
        tls_http: 0,
    };
    let conf = sentinels[0].conf();
    let rewritten = fs::read_to_string(&conf).unwrap();
    assert!(rewritten.contains("user voter on #"), "the password hashed:\n{rewritten}");
    let picket = Picket::start(spec.clone(), |state| {
        let text = import(&conf, state, secret.path(), &spec, &[], &left);
        assert!(!text.contains(VOTERS) && !text.contains(CLIENTS), "{text}");
        assert!(text.contains("sentinel_user = \"voter\"\nsentinel_pass_file = "), "{text}");
        assert!(text.contains("[[user]]\nname = \"voter\"\n"), "{text}");
        text
    });
    let listen = target(&spec.listen_addr());
    wait_for("CKQUORUM OK 3 on the Picket", LONG, || {
        query(&listen, &["SENTINEL", "CKQUORUM", MASTER])
            .is_some_and(|v| matches!(v, redis::Value::SimpleString(s) if s.starts_with("OK 3 ")))
    });
    // The running Sentinels reach the Picket, authenticated.
    for s in &sentinels[1..] {
        wait_for("a Sentinel to see the Picket up", LONG, || {
            let others = query(&target(&s.addr()), &["SENTINEL", "SENTINELS", MASTER])
                .and_then(|v| redis::from_redis_value::<Vec<Vec<String>>>(v).ok());
            others.is_some_and(|o| {
                o.iter().any(|fields| {
                    fields.windows(2).any(|kv| kv[0] == "port" && kv[1] == spec.listen.to_string())
                        && !fields.iter().any(|f| f.contains("s_down"))
                })
            })
        });
    }
    // The running Sentinel and the Picket are two of three voters, quorum 2.
    sentinels[2].pause();
    group.master.kill();
    let running = [target(&sentinels[1].addr()), listen];
    let new = wait_until("the Picket and the running Sentinel to agree", LONG, || {
        let answers: Vec<Option<String>> = running.iter().map(|a| master_addr_at(a)).collect();
        let first = answers.first()?.clone()?;
        (first != old && answers.iter().all(|a| a.as_deref() == Some(first.as_str())))
            .then_some(first)
    });
    sentinels[2].resume();
    let old_addr = old.replace(':', " ");
    assert!(picket.saw(&format!("+odown master {MASTER} {old_addr}")), "{:?}", picket.events());
    let needle = format!("+elected-leader master {MASTER}");
    let won = sentinels.iter().map(|s| s.count(&needle)).sum::<usize>() + picket.count(&needle);
    assert_eq!(won, 1, "one election won");
    assert!(group.at(&new).is_some(), "a replica was promoted: {new}");
}

/// Hellos published on the master by a process that is not a listed Sentinel change nothing: one
/// from an unlisted address naming a replica as master with a high epoch is ignored (and
/// counted), and one claiming a listed Sentinel's address is not adopted, because the replica it
/// names does not report `role:master`.
#[test]
fn a_forged_hello_changes_nothing() {
    let _one = one_at_a_time();
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

/// The whole rolling migration, as the README describes it: three Sentinels, then each replaced
/// in place by a Picket made by `import-sentinel` from its own file (same address, same id),
/// with the Pickets so far as its peers and the Sentinels left as its `sentinel_peers`, the
/// earlier Pickets restarted with the new membership. One SIGKILL failover at every step
/// (3 Sentinels, 2 + 1, 1 + 2, 3 Pickets in native mode), each exactly one election won, every
/// voter answering the new master, the killed master back as a replica before the next step;
/// and, over the whole run, no node ever names two masters for one config epoch (every address's
/// `SENTINEL MASTER` polled throughout, whether a Sentinel or a Picket answers there).
#[test]
fn a_rolling_migration_from_three_sentinels_to_three_pickets() {
    if sentinel::missing() {
        return;
    }
    let _one = one_at_a_time();
    if missing("redis-py", support::redis_py_installed()) {
        return;
    }
    let mut group = Group::start(MASTER, 2, None);
    let first = group.master.addr();
    let mut sentinels: Vec<Option<Sentinel>> =
        (0..3).map(|_| Some(start_sentinel(free_port(), &first, None))).collect();
    // The application's sentinel list never changes: each Picket takes its Sentinel's address.
    let voters: Vec<String> = sentinels.iter().flatten().map(Sentinel::addr).collect();
    let secret = tempfile::NamedTempFile::new().unwrap();
    fs::write(secret.path(), "rolling-migration-secret\n").unwrap();
    let mut retired: Vec<Sentinel> = Vec::new();
    let mut pickets: Vec<(Picket, toml::Value)> = Vec::new();
    let mut master = first;
    let mut elections = 0;
    voters_ready(&sentinels, &pickets);
    let writer = Writer::start(&voters);
    // Every node's (config epoch, master) throughout: at no time may two nodes, or one node at
    // two times, name two masters for one config epoch.
    let observer = Observer::start(voters.clone());
    master = fail_over(&mut group, &master, &sentinels, &retired, &pickets, &mut elections);
    for step in 0..3 {
        let mut sentinel = sentinels[step].take().unwrap();
        sentinel.stop();
        let left: Vec<String> = sentinels.iter().flatten().map(Sentinel::addr).collect();
        let gossip: Vec<String> = pickets.iter().map(|(p, _)| p.spec.gossip_addr()).collect();
        let spec = support::NodeSpec {
            ip: "127.0.0.1".to_owned(),
            listen: sentinel.port,
            gossip: free_port(),
            http: free_port(),
            tls_listen: 0,
            tls_http: 0,
        };
        let mut base = None;
        let conf = sentinel.conf();
        // As the README says: --peer for the Pickets so far, --sentinel-peer for the Sentinels
        // left; the generated file is used as it is.
        let picket = Picket::start(spec.clone(), |state| {
            let text = import(&conf, state, secret.path(), &spec, &gossip, &left);
            base = Some(toml::from_str(&text).unwrap());
            text
        });
        pickets.push((picket, base.unwrap()));
        retired.push(sentinel);
        // The earlier Pickets learn the new membership, one restart at a time.
        let all: Vec<String> = pickets.iter().map(|(p, _)| p.spec.gossip_addr()).collect();
        let newest = pickets.len() - 1;
        for (picket, base) in &mut pickets[..newest] {
            let own = picket.spec.gossip_addr();
            let peers: Vec<String> = all.iter().filter(|a| **a != own).cloned().collect();
            let text = membership(base, &peers, &left);
            picket.rewrite_config(|_| text);
            picket.restart();
        }
        voters_ready(&sentinels, &pickets);
        master = fail_over(&mut group, &master, &sentinels, &retired, &pickets, &mut elections);
    }
    assert_eq!(elections, 4);
    let observations = observer.finish();
    let epochs =
        one_master_per_epoch(&observations).unwrap_or_else(|e| panic!("{e}: {observations:#?}"));
    println!("config epochs seen ({} observations): {epochs:?}", observations.len());
    // The initial configuration and one per failover, each seen by a node.
    assert!(epochs.len() >= 5, "{epochs:?}");
    // The client saw at most one outage per failover, each a failover's length, and nothing
    // else: replacing a Sentinel or restarting a Picket costs no write.
    let (writes, outages) = writer.finish();
    println!("redis-py: {writes} writes, outages {outages:?} ms");
    assert!(writes > 100, "{writes}");
    assert!(outages.len() <= 4, "{outages:?}");
    assert!(outages.iter().all(|ms| *ms < 20_000), "{outages:?}");
    for (picket, _) in &pickets {
        let config = fs::read_to_string(picket.config_path()).unwrap();
        assert!(!config.contains("sentinel_peers"), "native mode at the end:\n{config}");
    }
}

/// `picket import-sentinel` of `conf` into state directory `state`, for a node at `spec`, with
/// `peers` (`--peer`) and the Sentinels left (`--sentinel-peer`): the generated configuration.
/// The output (with the secrets it names) is beside `state`, in the Picket's own directory.
fn import(
    conf: &std::path::Path,
    state: &std::path::Path,
    secret: &std::path::Path,
    spec: &support::NodeSpec,
    peers: &[String],
    sentinels: &[String],
) -> String {
    let out = state.with_file_name("imported");
    let import = Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("import-sentinel")
        .arg("--sentinel-conf")
        .arg(conf)
        .arg("--output")
        .arg(&out)
        .arg("--state-dir")
        .arg(state)
        .arg("--peer-secret-file")
        .arg(secret)
        .args(["--gossip-port", &spec.gossip.to_string(), "--http-port", &spec.http.to_string()])
        .args(peers.iter().flat_map(|p| ["--peer", p.as_str()]))
        .args(sentinels.iter().flat_map(|s| ["--sentinel-peer", s.as_str()]))
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&import.stdout);
    assert!(import.status.success(), "{report}{}", String::from_utf8_lossy(&import.stderr));
    fs::read_to_string(out.join("picket.toml")).unwrap()
}

/// The imported configuration with the README's membership for a step: the Pickets so far as
/// `peers`, the Sentinels left as every master's `sentinel_peers` (none: native mode), fencing
/// off while Sentinels remain.
fn membership(base: &toml::Value, peers: &[String], sentinels: &[String]) -> String {
    let mut config = base.clone();
    let list = |items: &[String]| {
        toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect())
    };
    config["node"]["peers"] = list(peers);
    for master in config["master"].as_array_mut().unwrap() {
        let table = master.as_table_mut().unwrap();
        if sentinels.is_empty() {
            table.remove("sentinel_peers");
            table.insert("fencing".into(), toml::Value::String("bounded".into()));
        } else {
            table.insert("sentinel_peers".into(), list(sentinels));
            table.insert("fencing".into(), toml::Value::String("off".into()));
        }
    }
    toml::to_string(&config).unwrap()
}

/// Waits until every running Sentinel knows two other voters and sees the master up, and every
/// Picket counts three usable voters.
fn voters_ready(sentinels: &[Option<Sentinel>], pickets: &[(Picket, toml::Value)]) {
    for s in sentinels.iter().flatten() {
        wait_for("a Sentinel to know two other voters", LONG, || {
            master_map(&s.addr()).is_some_and(|m| {
                m.get("num-other-sentinels").map(String::as_str) == Some("2")
                    && m.get("num-slaves").map(String::as_str) == Some("2")
                    && !m.get("flags").is_some_and(|f| f.contains("s_down"))
            })
        });
    }
    for (p, _) in pickets {
        wait_for("CKQUORUM OK 3 on a Picket", LONG, || {
            query(&p.spec.listen_addr(), &["SENTINEL", "CKQUORUM", MASTER]).is_some_and(
                |v| matches!(v, redis::Value::SimpleString(s) if s.starts_with("OK 3 ")),
            )
        });
    }
}

/// SIGKILLs the master at `old`, waits until every running voter answers one new master, checks
/// one more election was won in all, and brings the killed server back: it must end up a replica
/// of the new master (as must the other replica). Returns the new master.
fn fail_over(
    group: &mut Group,
    old: &str,
    sentinels: &[Option<Sentinel>],
    retired: &[Sentinel],
    pickets: &[(Picket, toml::Value)],
    elections: &mut usize,
) -> String {
    group.all_mut().find(|r| r.addr() == old).unwrap().kill();
    let voters: Vec<String> = sentinels
        .iter()
        .flatten()
        .map(Sentinel::addr)
        .chain(pickets.iter().map(|(p, _)| p.spec.listen_addr()))
        .collect();
    let new = wait_until("every voter to answer the new master", LONG, || {
        let answers: Vec<Option<String>> = voters.iter().map(|a| master_addr_at(a)).collect();
        let first = answers.first()?.clone()?;
        (first != old && answers.iter().all(|a| a.as_deref() == Some(first.as_str())))
            .then_some(first)
    });
    let promoted = group.at(&new).expect("a replica was promoted");
    wait_for("the new master to be writable", LONG, || promoted.query(&["SET", "k", "v"]).is_ok());
    group.all_mut().find(|r| r.addr() == old).unwrap().restart();
    for replica in group.all().filter(|r| r.addr() != new) {
        wait_for("every other server to follow the new master", LONG, || {
            replica.role().as_deref() == Some("slave")
                && replica.master_of().as_deref() == Some(new.as_str())
        });
    }
    let needle = format!("+elected-leader master {MASTER}");
    let won: usize =
        sentinels.iter().flatten().chain(retired).map(|s| s.count(&needle)).sum::<usize>()
            + pickets.iter().map(|(p, _)| p.count(&needle)).sum::<usize>();
    *elections += 1;
    assert_eq!(won, *elections, "exactly one election won per failover");
    let by_pickets: usize = pickets.iter().map(|(p, _)| p.count(&needle)).sum();
    println!("failover {}: {old} -> {new} ({by_pickets} led by Pickets so far)", *elections);
    new
}

/// One node's answer to `SENTINEL MASTER`: the config epoch and the master it names, and whether
/// it flags a failover in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observation {
    node: String,
    epoch: u64,
    master: String,
    failing_over: bool,
}

/// Polls `SENTINEL MASTER` on every node (Sentinel or Picket, whichever answers at each
/// address) from a thread until finished, keeping each node's answers as they change.
struct Observer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Observation>>,
}

impl Observer {
    fn start(nodes: Vec<String>) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut seen: Vec<Observation> = Vec::new();
            let mut round = || {
                for node in &nodes {
                    let Some(map) = master_map(node) else { continue };
                    let (Some(epoch), Some(ip), Some(port), Some(flags)) =
                        (map.get("config-epoch"), map.get("ip"), map.get("port"), map.get("flags"))
                    else {
                        continue;
                    };
                    let observation = Observation {
                        node: node.clone(),
                        epoch: epoch.parse().expect("a numeric config-epoch"),
                        master: format!("{ip}:{port}"),
                        failing_over: flags.contains("failover_in_progress"),
                    };
                    let last = seen.iter().rev().find(|o| o.node == *node);
                    if last != Some(&observation) {
                        seen.push(observation);
                    }
                }
            };
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                round();
                std::thread::sleep(Duration::from_millis(100));
            }
            // One last look, after the last step.
            round();
            seen
        });
        Self { stop, thread }
    }

    /// Stops polling; every change seen, in order.
    fn finish(self) -> Vec<Observation> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the observer thread")
    }
}

/// The issue's safety property over every observation: one master per config epoch, across
/// nodes and over time. Returns each epoch's master, or the first two that disagree.
///
/// One exception: a redis-sentinel leading a failover shows the failover's epoch while it still
/// names the old master, from `+promoted-slave` until `+switch-master`. So while a node flags a
/// failover in progress, naming the master it named before (under any epoch) claims nothing;
/// naming another is checked like any observation (a Picket leader names the promoted replica
/// under the new epoch as soon as it is promoted).
fn one_master_per_epoch(
    observations: &[Observation],
) -> Result<std::collections::BTreeMap<u64, String>, String> {
    let mut first: std::collections::BTreeMap<u64, &Observation> = Default::default();
    let mut settled: std::collections::BTreeMap<&str, &Observation> = Default::default();
    for o in observations {
        if o.failing_over && settled.get(o.node.as_str()).is_some_and(|b| b.master == o.master) {
            continue;
        }
        settled.insert(&o.node, o);
        let earlier = *first.entry(o.epoch).or_insert(o);
        if earlier.master != o.master {
            return Err(format!(
                "two masters for config epoch {}: {} at {}, {} at {}",
                o.epoch, earlier.master, earlier.node, o.master, o.node
            ));
        }
    }
    Ok(first.into_iter().map(|(epoch, o)| (epoch, o.master.clone())).collect())
}

/// The check itself catches what it is for: a doctored observation naming another master under
/// an epoch already seen, whether at another node or at the same one later.
#[test]
fn two_masters_for_one_config_epoch_are_caught() {
    let seen = |node: &str, epoch: u64, master: &str| Observation {
        node: node.to_owned(),
        epoch,
        master: master.to_owned(),
        failing_over: false,
    };
    let failing_over = |node: &str, epoch: u64, master: &str| Observation {
        failing_over: true,
        ..seen(node, epoch, master)
    };
    let good = vec![
        seen("s1", 0, "m:1"),
        seen("s2", 0, "m:1"),
        // s1 (a Sentinel) leads the failover of epoch 1: the old master until the switch.
        failing_over("s1", 1, "m:1"),
        seen("s1", 1, "r:2"),
        seen("p3", 1, "r:2"),
        // p3 (a Picket) leads the failover of epoch 3: the new master once promoted.
        failing_over("p3", 3, "m:1"),
        seen("s2", 3, "m:1"),
    ];
    let epochs = one_master_per_epoch(&good).unwrap();
    assert_eq!(
        epochs.into_iter().collect::<Vec<_>>(),
        [(0, "m:1".to_owned()), (1, "r:2".to_owned()), (3, "m:1".to_owned())]
    );
    let mut across = good.clone();
    across.push(seen("p3", 3, "r:2"));
    assert_eq!(
        one_master_per_epoch(&across).unwrap_err(),
        "two masters for config epoch 3: m:1 at p3, r:2 at p3"
    );
    let mut over_time = good.clone();
    over_time.insert(4, seen("s1", 1, "x:9"));
    assert_eq!(
        one_master_per_epoch(&over_time).unwrap_err(),
        "two masters for config epoch 1: r:2 at s1, x:9 at s1"
    );
    // A leader naming, while it fails over, a master neither its old one nor its epoch's.
    let mut leading = good;
    leading[2] = failing_over("s1", 1, "x:9");
    assert_eq!(
        one_master_per_epoch(&leading).unwrap_err(),
        "two masters for config epoch 1: x:9 at s1, r:2 at s1"
    );
}
