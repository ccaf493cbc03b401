//! Fencing: what a failover costs the clients, with real partitions. The scenarios of
//! `tests/fencing.rs` (which checks Picket's promises), run here on redis-sentinel and on Picket
//! with `fencing = "bounded"` (its default) and `"strict"`, side by side.
//!
//! Three hosts are network namespaces ([`picket_netns`], shared with Picket's partition tests):
//! a supervisor on each, the two replicas on the first two and the master on the third (in the
//! "cut off alone" scenario, on a fourth host of its own, with its client but no supervisor).
//! A redis-py client (`tests/support/writer.py`, shared with the tests) on the first host and
//! another on the master's host each write a new key every 10 ms, asking the supervisors for the
//! master's address as a Sentinel client does, and record every write a server acknowledged. After
//! the fault and the recovery, every acknowledged key is looked up on the final master.
//!
//! Per run: the acknowledged writes missing from the final master; the split-brain window (how
//! long two masters acknowledged writes: the last write the old master accepted was sent after
//! the new master acknowledged its first, by that much); each client's longest time between two
//! acknowledgements; and the failover time (from the fault to the first write the new master
//! acknowledged). Needs root for the namespaces.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::slice;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle, sleep};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use picket_netns::Net;
use serde::Serialize;
use serde_json::json;

use crate::Plan;
use crate::failover::logs;
use crate::procs::{self, Place, Proc};
use crate::report::{Better, Row, Section};
use crate::resp::{self, Conn, Value};
use crate::topology::{self, Kind, Layout, MasterSpec, Readiness, Supervisor};

/// The redis-py writer the fencing tests use.
pub const WRITER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/support/writer.py");
/// The monitored master's name.
const NAME: &str = "bench";
/// Sentinel's failover-timeout and Picket's failover_timeout_ms: Picket's default.
const FAILOVER_TIMEOUT_MS: u64 = 60_000;
/// The writers' interval.
const WRITE_EVERY_MS: u64 = 10;
/// Bounds on waiting for servers, supervisors and the recovery (never a measurement).
const LONG: Duration = Duration::from_secs(120);

/// The faults, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Scenario {
    /// The master's host (the master, one client and one supervisor) cut off.
    CutWithNode,
    /// The master's own host (the master and one client, no supervisor) cut off.
    CutAlone,
    /// `SENTINEL FAILOVER` while both clients write.
    Switchover,
    /// SIGKILL of the master.
    Kill,
}

impl Scenario {
    const ALL: [Self; 4] = [Self::CutWithNode, Self::CutAlone, Self::Switchover, Self::Kill];

    fn label(self) -> &'static str {
        match self {
            Self::CutWithNode => "cut with client+node",
            Self::CutAlone => "cut alone",
            Self::Switchover => "SENTINEL FAILOVER",
            Self::Kill => "SIGKILL",
        }
    }
}

/// Who supervises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Side {
    Sentinel,
    Bounded,
    Strict,
}

impl Side {
    const ALL: [Self; 3] = [Self::Sentinel, Self::Bounded, Self::Strict];

    fn kind(self) -> Kind {
        match self {
            Self::Sentinel => Kind::Sentinel,
            Self::Bounded | Self::Strict => Kind::Picket,
        }
    }

    /// Picket's `[[master]]` lines for this side.
    fn picket_extra(self) -> &'static str {
        match self {
            Self::Sentinel => "",
            // The default, stated so that the row cannot silently measure another mode.
            Self::Bounded => "fencing = \"bounded\"\n",
            Self::Strict => "fencing = \"strict\"\n",
        }
    }
}

/// One acknowledged write, as the writer recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Ack {
    key: String,
    sent_ms: u64,
    acked_ms: u64,
    /// `ip:port` of the server that acknowledged it.
    server: String,
}

/// The writers' records: one line per write, `key sent_ms acked_ms server`.
fn parse_acks(text: &str) -> Result<Vec<Ack>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let parts: Vec<&str> = line.split(' ').collect();
            let [key, sent, acked, server] = parts[..] else { bail!("bad record {line:?}") };
            Ok(Ack {
                key: key.to_owned(),
                sent_ms: sent.parse()?,
                acked_ms: acked.parse()?,
                server: server.to_owned(),
            })
        })
        .collect()
}

/// When things happened in a run (Unix ms).
#[derive(Clone, Copy, Debug)]
struct Times {
    /// The fault: the cut, the `SENTINEL FAILOVER` command, the SIGKILL.
    fault_ms: u64,
    /// When the final master first reported `role:master` (polled every 20 ms).
    promoted_ms: Option<u64>,
    /// When every supervisor named it and a surviving old master replicated from it (the
    /// clients then wrote at least 100 keys to it, and ran 1 s more).
    recovered_ms: u64,
}

/// What one run measured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
struct Outcome {
    /// Acknowledged writes, per client.
    acked: BTreeMap<String, usize>,
    /// Of which missing from the final master, per client.
    lost: BTreeMap<String, usize>,
    /// How long the old master went on accepting writes after the new master acknowledged its
    /// first (0 if never).
    split_brain_ms: u64,
    /// How long the old master went on accepting writes after the new master was promoted
    /// (whether or not a client wrote to the new one yet): the last write the old master
    /// accepted was sent that long after the new master first reported `role:master`.
    old_after_promotion_ms: Option<u64>,
    /// The longest time between two acknowledgements, per client.
    gap_ms: BTreeMap<String, u64>,
    /// From the fault to the first write the new master acknowledged; `None` if it acknowledged
    /// none.
    failover_ms: Option<u64>,
    /// From the fault until every supervisor named the new master and a surviving old master
    /// replicated from it.
    recovery_ms: u64,
}

impl Outcome {
    fn lost_total(&self) -> usize {
        self.lost.values().sum()
    }
}

/// The measures of one run: `acks` per client, `keys` on the final master `new`, which replaced
/// `old` at the `times` given.
fn measure(
    acks: &BTreeMap<String, Vec<Ack>>,
    keys: &BTreeSet<String>,
    (old, new): (&str, &str),
    times: Times,
) -> Outcome {
    let all = || acks.values().flatten();
    // The old master accepted each write after it was sent; the new master accepted each write
    // before its acknowledgement came back. So a write sent to the old master after the new
    // one's first acknowledgement proves that both accepted writes for at least that long.
    let old_last_sent = all().filter(|a| a.server == old).map(|a| a.sent_ms).max();
    let new_first_acked = all().filter(|a| a.server == new).map(|a| a.acked_ms).min();
    let split_brain_ms = match (old_last_sent, new_first_acked) {
        (Some(o), Some(n)) => o.saturating_sub(n),
        _ => 0,
    };
    Outcome {
        acked: acks.iter().map(|(c, a)| (c.clone(), a.len())).collect(),
        lost: acks
            .iter()
            .map(|(c, a)| (c.clone(), a.iter().filter(|a| !keys.contains(&a.key)).count()))
            .collect(),
        split_brain_ms,
        old_after_promotion_ms: times
            .promoted_ms
            .map(|p| old_last_sent.map_or(0, |o| o.saturating_sub(p))),
        gap_ms: acks
            .iter()
            .map(|(c, a)| {
                let gap = a.windows(2).map(|w| w[1].acked_ms.saturating_sub(w[0].acked_ms));
                (c.clone(), gap.max().unwrap_or(0))
            })
            .collect(),
        failover_ms: new_first_acked.map(|n| n.saturating_sub(times.fault_ms)),
        recovery_ms: times.recovered_ms.saturating_sub(times.fault_ms),
    }
}

fn unix_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// The clients: `a` on the first replica's host, `b` on the master's.
const CLIENTS: [&str; 2] = ["a", "b"];

/// The suite: `plan.fencing_trials` runs of every scenario for each side, rotating which side
/// goes first.
pub fn run(plan: &Plan) -> Section {
    let partition = if plan.quick { Duration::from_secs(5) } else { Duration::from_secs(15) };
    let mut section = Section::default();
    let mut raw = Vec::new();
    let mut outcomes: BTreeMap<(Scenario, Side), Vec<Outcome>> = BTreeMap::new();
    for trial in 0..plan.fencing_trials {
        for scenario in Scenario::ALL {
            let mut sides = Side::ALL;
            sides.rotate_left(trial % Side::ALL.len());
            for side in sides {
                let label = format!(
                    "fencing trial {}/{} {} {side:?}",
                    trial + 1,
                    plan.fencing_trials,
                    scenario.label()
                );
                match one_run(scenario, side, plan, partition) {
                    Ok(o) => {
                        eprintln!(
                            "{label}: lost {} of {:?}, split brain {} ms, gaps {:?} ms, failover \
                             {:?} ms, recovered after {} ms",
                            o.lost_total(),
                            o.acked,
                            o.split_brain_ms,
                            o.gap_ms,
                            o.failover_ms,
                            o.recovery_ms
                        );
                        raw.push(json!({"trial": trial, "scenario": scenario, "side": side, "outcome": o}));
                        outcomes.entry((scenario, side)).or_default().push(o);
                    }
                    Err(e) => {
                        let message = format!("{label}: {e:#}");
                        eprintln!("{message}");
                        raw.push(json!({"trial": trial, "scenario": scenario, "side": side, "error": format!("{e:#}")}));
                        section.errors.push(message);
                    }
                }
            }
        }
    }
    section.rows = rows(&outcomes);
    section.notes.push(format!(
        "fencing: 3 hosts (network namespaces on a bridge), a supervisor on each, 1 master + 2 \
         replicas, quorum 2, down-after 1000 ms, failover-timeout {FAILOVER_TIMEOUT_MS} ms \
         (Picket's default; Sentinel's own default is 180000), parallel-syncs 1, everything else \
         at each one's defaults; \"fencing bounded\" rows are Picket with its default `fencing = \
         \"bounded\"`, \"fencing strict\" rows Picket with `strict`, both against the same \
         Sentinel runs. Client a on the first replica's host, client b on the master's host, each \
         writing a new key every {WRITE_EVERY_MS} ms (redis-py, asking the supervisors for the \
         master, its own host's first). \"cut with client+node\": the master's host (the master, \
         client b and a supervisor) cut off for {} s; \"cut alone\": the master on a fourth host \
         with client b and no supervisor, cut off for as long; SENTINEL FAILOVER sent to \
         supervisor 1; SIGKILL of the master. Lost = acknowledged keys missing from the final \
         master after recovery; split-brain window = how much later than the new master's first \
         acknowledgement the old master's last accepted write was sent (a lower bound on the time \
         two masters acknowledged writes); old master writable after promotion = the same against \
         the moment the new master first reported role:master (polled every 20 ms); failover time \
         = fault to the first write the new master acknowledged; gap = longest time between two \
         acknowledgements of one client",
        partition.as_secs()
    ));
    section.raw = json!({"partition_s": partition.as_secs(), "runs": raw});
    section
}

/// The table's rows: each measure of each scenario, Sentinel against `bounded`, then against
/// `strict`.
fn rows(outcomes: &BTreeMap<(Scenario, Side), Vec<Outcome>>) -> Vec<Row> {
    type Pick = fn(&Outcome) -> Option<f64>;
    #[allow(clippy::cast_precision_loss)] // counts and milliseconds far below 2^52
    let measures: [(&str, &'static str, Pick); 6] = [
        ("acked writes lost", "writes", |o| Some(o.lost_total() as f64)),
        ("split-brain window", "ms", |o| Some(o.split_brain_ms as f64)),
        ("old master writable after promotion", "ms", |o| {
            o.old_after_promotion_ms.map(|t| t as f64)
        }),
        ("longest gap, client a", "ms", |o| o.gap_ms.get("a").map(|&g| g as f64)),
        ("longest gap, client b", "ms", |o| o.gap_ms.get("b").map(|&g| g as f64)),
        ("failover time", "ms", |o| o.failover_ms.map(|f| f as f64)),
    ];
    let samples = |scenario, side, pick: Pick| -> Vec<f64> {
        outcomes
            .get(&(scenario, side))
            .map_or_else(Vec::new, |os| os.iter().filter_map(pick).collect())
    };
    let mut rows = Vec::new();
    for picket in [Side::Bounded, Side::Strict] {
        let mode = if picket == Side::Strict { "strict" } else { "bounded" };
        for scenario in Scenario::ALL {
            for (what, unit, pick) in measures {
                rows.push(Row::both(
                    format!("fencing {mode}, {}: {what}", scenario.label()),
                    unit,
                    Better::Lower,
                    samples(scenario, Side::Sentinel, pick),
                    samples(scenario, picket, pick),
                ));
            }
        }
    }
    rows
}

/// A Redis server of the run.
struct Server {
    addr: String,
    proc: Proc,
}

impl Server {
    fn start(place: Place<'_>, replica_of: Option<&str>) -> Result<Self> {
        let port = procs::redis_port()?;
        let proc = procs::redis_server(place, port, replica_of, false)?;
        Ok(Self { addr: format!("{}:{port}", place.ip), proc })
    }

    fn connect(&self) -> Result<Conn> {
        let (ip, port) = self.addr.rsplit_once(':').context("ip:port")?;
        Ok(Conn::open_at(ip, port.parse()?, Duration::from_secs(5))?)
    }

    fn call(&self, args: &[&str]) -> Result<Value> {
        Ok(self.connect()?.call(args)?)
    }

    /// Waits until `probe` holds of `INFO replication`.
    fn wait_info(&self, what: &str, probe: impl Fn(&str) -> bool) -> Result<()> {
        topology::wait_for(&format!("{} {what}", self.proc.name()), LONG, || {
            if self.proc.has_exited() {
                bail!("{} exited: {}", self.proc.name(), self.proc.log_tail(10));
            }
            let info = self.call(&["INFO", "replication"]).ok().and_then(|v| v.text());
            Ok(match info {
                Some(text) if probe(&text) => Ok(()),
                other => Err(format!("INFO replication: {other:?}")),
            })
        })
    }
}

/// One run of `scenario` supervised by `side` on fresh hosts.
fn one_run(scenario: Scenario, side: Side, plan: &Plan, partition: Duration) -> Result<Outcome> {
    let mut net = Net::create("pb", 200, 3)?;
    if scenario == Scenario::CutAlone {
        net.add_host()?;
    }
    let node = |i: usize| Place { netns: Some(&net.nodes[i].0), ip: &net.nodes[i].1 };
    let master_place = match net.hosts.first() {
        Some((ns, ip)) => Place { netns: Some(ns), ip },
        None => node(2),
    };
    let master = Server::start(master_place, None)?;
    master.wait_info("to answer", |text| text.contains("role:master"))?;
    let replicas =
        [Server::start(node(0), Some(&master.addr))?, Server::start(node(1), Some(&master.addr))?];
    for r in &replicas {
        r.wait_info("to sync", |text| text.contains("master_link_status:up"))?;
    }
    let port: u16 = master.addr.rsplit_once(':').context("ip:port")?.1.parse()?;
    let spec = MasterSpec {
        name: NAME.to_owned(),
        port,
        quorum: 2,
        down_after_ms: 1000,
        failover_timeout_ms: FAILOVER_TIMEOUT_MS,
    };
    let layout = Layout {
        places: (0..3).map(node).collect(),
        master_ip: master_place.ip,
        picket_master_extra: side.picket_extra(),
    };
    let sups =
        topology::start_supervisors_at(side.kind(), &layout, slice::from_ref(&spec), &plan.picket)?;
    let with_logs = |e: anyhow::Error| anyhow!("{e:#}\n{}", logs(&sups));
    let ready = Readiness { masters: slice::from_ref(&spec), replicated: &[(NAME, 2)], others: 2 };
    topology::wait_ready(&sups, &ready, LONG, Duration::from_millis(50)).map_err(with_logs)?;
    if side != Side::Sentinel {
        // The lease: a majority of the two replicas.
        topology::wait_for("the master's lease", LONG, || {
            let reply = master.call(&["CONFIG", "GET", "min-replicas-to-write"]);
            Ok(match reply {
                Ok(Value::Array(items))
                    if items.get(1).and_then(Value::text).as_deref() == Some("2") =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            })
        })
        .map_err(with_logs)?;
    }

    let dir = procs::scratch("writers")?;
    let stop = dir.join("stop");
    let sentinels = |local: usize| -> String {
        let order = [local, (local + 1) % 3, (local + 2) % 3];
        order
            .iter()
            .map(|&i| format!("{}:{}", sups[i].ip, sups[i].port))
            .collect::<Vec<_>>()
            .join(",")
    };
    let writer = |name: &str, place: Place<'_>, local: usize| -> Result<Proc> {
        let mut command = place.command("python3");
        command
            .arg(WRITER)
            .args([name, &sentinels(local), NAME, &WRITE_EVERY_MS.to_string()])
            .arg(dir.join(format!("{name}.acks")))
            .arg(&stop);
        Proc::spawn(format!("writer {name}"), command, &dir.join(format!("{name}.log")))
    };
    let writers = [writer(CLIENTS[0], node(0), 0)?, writer(CLIENTS[1], master_place, 2)?];
    topology::wait_for("both clients writing", LONG, || {
        for w in &writers {
            if w.has_exited() {
                bail!("{} exited: {}", w.name(), w.log_tail(10));
            }
        }
        Ok(match master.call(&["EXISTS", "a:50", "b:50"]) {
            Ok(Value::Int(2)) => Ok(()),
            other => Err(format!("EXISTS a:50 b:50: {other:?}")),
        })
    })?;

    let old = master.addr.clone();
    let watch = Promotions::watch(replicas.iter().map(|r| r.addr.clone()).collect());
    let fault_ms = unix_ms();
    match scenario {
        Scenario::CutWithNode => {
            net.isolate(2)?;
            sleep(partition);
            net.heal(2)?;
        }
        Scenario::CutAlone => {
            net.isolate_host(0)?;
            sleep(partition);
            net.heal_host(0)?;
        }
        Scenario::Switchover => match sups[0].connect()?.call(&["SENTINEL", "FAILOVER", NAME])? {
            Value::Simple(ok) if ok == "OK" => {}
            other => bail!("SENTINEL FAILOVER answered {other:?}"),
        },
        Scenario::Kill => master.proc.signal(libc::SIGKILL)?,
    }
    let new = recovered(&sups, &old, (scenario != Scenario::Kill).then_some(&master))
        .map_err(with_logs)?;
    let recovered_ms = unix_ms();
    let final_master = [&master]
        .into_iter()
        .chain(&replicas)
        .find(|s| s.addr == new)
        .ok_or_else(|| anyhow!("the new master {new} is none of the servers"))?;
    // The clients find the new master and write to it for a while: at least 100 new keys (with
    // `strict`, its writes may still be held for seconds after the supervisors name it).
    let keys_now = || match final_master.call(&["DBSIZE"]) {
        Ok(Value::Int(n)) => Ok(n),
        other => Err(format!("DBSIZE on {new}: {other:?}")),
    };
    let before = topology::wait_for("the new master's DBSIZE", LONG, || Ok(keys_now()))?;
    topology::wait_for("the clients writing to the new master", LONG, || {
        Ok(keys_now().and_then(|n| {
            if n >= before + 100 { Ok(()) } else { Err(format!("{} new keys", n - before)) }
        }))
    })?;
    sleep(Duration::from_secs(1));
    // Stopped only now: the replica may report its promotion after the supervisors name it.
    let promoted_ms = watch.stop().get(&new).copied();

    fs::write(&stop, b"")?;
    let mut acks = BTreeMap::new();
    for (name, w) in CLIENTS.iter().zip(writers) {
        w.finish(Duration::from_secs(30))?;
        let text = fs::read_to_string(dir.join(format!("{name}.acks")))?;
        acks.insert((*name).to_owned(), parse_acks(&text)?);
    }
    let keys = match final_master.call(&["KEYS", "*"])? {
        Value::Array(keys) => keys.iter().filter_map(Value::text).collect(),
        other => bail!("KEYS * on {new}: {other:?}"),
    };
    let times = Times { fault_ms, promoted_ms, recovered_ms };
    Ok(measure(&acks, &keys, (&old, &new), times))
}

/// A thread noting when each replica first reports `role:master`.
struct Promotions {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<BTreeMap<String, u64>>,
}

impl Promotions {
    /// Polls `replicas` (`ip:port`) every 20 ms until stopped.
    fn watch(replicas: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            let mut promoted = BTreeMap::new();
            let mut conns: Vec<Option<Conn>> = replicas.iter().map(|_| None).collect();
            while !flag.load(Ordering::Relaxed) {
                for (addr, conn) in replicas.iter().zip(&mut conns) {
                    if promoted.contains_key(addr) {
                        continue;
                    }
                    if conn.is_none()
                        && let Some((ip, port)) = addr.rsplit_once(':')
                    {
                        let port = port.parse().unwrap_or(0);
                        *conn = Conn::open_at(ip, port, Duration::from_millis(200)).ok();
                    }
                    let info = conn.as_mut().map(|c| c.call(&["INFO", "replication"]));
                    match info {
                        Some(Ok(v)) if v.text().is_some_and(|t| t.contains("role:master")) => {
                            promoted.insert(addr.clone(), unix_ms());
                        }
                        Some(Ok(_)) | None => {}
                        Some(Err(_)) => *conn = None,
                    }
                }
                sleep(Duration::from_millis(20));
            }
            promoted
        });
        Self { stop, thread }
    }

    /// Stops polling; when each replica was first seen promoted (Unix ms).
    fn stop(self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// Waits until every supervisor names the same new master and, if `old` is given (it is still
/// running), the old master replicates from it; returns the new master's address.
fn recovered(sups: &[Supervisor], old: &str, old_server: Option<&Server>) -> Result<String> {
    topology::wait_for("the recovery", LONG, || {
        let mut addrs = Vec::new();
        for sup in sups {
            let addr =
                sup.connect().ok().and_then(|mut c| resp::master_addr(&mut c, NAME).ok().flatten());
            addrs.push(addr);
        }
        let Some(Some(new)) = addrs.first() else { return Ok(Err(format!("answers {addrs:?}"))) };
        if new == old || addrs.iter().any(|a| a.as_ref() != Some(new)) {
            return Ok(Err(format!("answers {addrs:?}")));
        }
        if let Some(server) = old_server {
            let (ip, port) = new.rsplit_once(':').context("ip:port")?;
            let info = server.call(&["INFO", "replication"]).ok().and_then(|v| v.text());
            let follows = info.as_deref().is_some_and(|t| {
                t.contains(&format!("master_host:{ip}\r"))
                    && t.contains(&format!("master_port:{port}\r"))
                    && t.contains("master_link_status:up")
            });
            if !follows {
                return Ok(Err(format!("the old master does not follow {new} yet: {info:?}")));
            }
        }
        Ok(Ok(new.clone()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(key: &str, sent_ms: u64, acked_ms: u64, server: &str) -> Ack {
        Ack { key: key.to_owned(), sent_ms, acked_ms, server: server.to_owned() }
    }

    #[test]
    fn records_parse() {
        let acks = parse_acks("a:1 100 102 10.0.0.1:6379\n\na:2 110 111 10.0.0.2:6379\n").unwrap();
        assert_eq!(
            acks,
            vec![ack("a:1", 100, 102, "10.0.0.1:6379"), ack("a:2", 110, 111, "10.0.0.2:6379")]
        );
        assert!(parse_acks("a:1 100 102\n").is_err());
    }

    #[test]
    fn lost_writes_split_brain_gaps_and_failover_time() {
        let (old, new) = ("o:1", "n:1");
        let acks = BTreeMap::from([
            // The majority side's client moves to the new master after a 500 ms gap.
            (
                "a".to_owned(),
                vec![
                    ack("a:1", 1000, 1001, old),
                    ack("a:2", 1500, 1502, new),
                    ack("a:3", 1510, 1511, new),
                ],
            ),
            // The isolated client goes on writing to the old master until 2000 ms.
            (
                "b".to_owned(),
                vec![
                    ack("b:1", 1000, 1001, old),
                    ack("b:2", 1800, 1801, old),
                    ack("b:3", 2000, 2001, old),
                    ack("b:4", 4000, 4003, new),
                ],
            ),
        ]);
        let keys: BTreeSet<String> =
            ["a:1", "a:2", "a:3", "b:1", "b:4"].iter().map(|k| (*k).to_owned()).collect();
        let times = Times { fault_ms: 1200, promoted_ms: Some(1450), recovered_ms: 9000 };
        let o = measure(&acks, &keys, (old, new), times);
        assert_eq!(o.lost, BTreeMap::from([("a".to_owned(), 0), ("b".to_owned(), 2)]));
        assert_eq!(o.lost_total(), 2);
        assert_eq!(o.split_brain_ms, 2000 - 1502);
        assert_eq!(o.old_after_promotion_ms, Some(2000 - 1450));
        assert_eq!(o.gap_ms, BTreeMap::from([("a".to_owned(), 501), ("b".to_owned(), 2002)]));
        assert_eq!((o.failover_ms, o.recovery_ms), (Some(302), 7800));
    }

    #[test]
    fn no_split_brain_when_the_old_master_stopped_first() {
        let acks = BTreeMap::from([(
            "a".to_owned(),
            vec![ack("a:1", 1000, 1001, "o:1"), ack("a:2", 3000, 3001, "n:1")],
        )]);
        let keys = BTreeSet::from(["a:1".to_owned(), "a:2".to_owned()]);
        let times = Times { fault_ms: 900, promoted_ms: Some(2000), recovered_ms: 5000 };
        let o = measure(&acks, &keys, ("o:1", "n:1"), times);
        assert_eq!((o.split_brain_ms, o.lost_total(), o.failover_ms), (0, 0, Some(2101)));
        assert_eq!(o.old_after_promotion_ms, Some(0));
        let unseen = Times { promoted_ms: None, ..times };
        let none = measure(&acks, &keys, ("o:1", "x:1"), unseen);
        assert_eq!(
            (none.split_brain_ms, none.old_after_promotion_ms, none.failover_ms),
            (0, None, None)
        );
    }
}
