//! Identical topologies for both supervisors: real Redis servers, then three (or one) Sentinels
//! or Picket nodes watching them, and the condition-based waits that say "ready".
//!
//! Both kinds get the same masters, the same timings and the same readiness test, asked over the
//! same Sentinel commands (Picket answers `SENTINEL MASTERS`, `REPLICAS` and `CKQUORUM` with
//! Sentinel's fields), so neither is measured from a different starting line.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::procs::{self, PicketNode, PicketPorts, Place, Proc};
use crate::resp::{Conn, Value};

/// Which supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// redis-sentinel.
    Sentinel,
    /// Picket.
    Picket,
}

impl Kind {
    /// Both kinds, in the order round `round` runs them: alternating who goes first, so neither
    /// always runs on a machine the other just warmed up (or loaded).
    pub fn order(round: usize) -> [Self; 2] {
        if round.is_multiple_of(2) {
            [Self::Sentinel, Self::Picket]
        } else {
            [Self::Picket, Self::Sentinel]
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sentinel => "sentinel",
            Self::Picket => "picket",
        })
    }
}

/// One monitored master, as both configuration formats need it.
#[derive(Clone, Debug, Serialize)]
pub struct MasterSpec {
    /// The name clients ask for.
    pub name: String,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Supervisors that must agree it is down.
    pub quorum: u32,
    /// Sentinel's down-after-milliseconds, Picket's down_after_ms.
    pub down_after_ms: u64,
    /// Sentinel's failover-timeout, Picket's failover_timeout_ms.
    pub failover_timeout_ms: u64,
}

/// A running `redis-server`.
pub struct Redis {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its process.
    pub proc: Proc,
}

impl Redis {
    /// Starts one (without waiting for it).
    pub fn spawn(replica_of: Option<u16>, lean: bool) -> Result<Self> {
        let port = procs::redis_port()?;
        let master = replica_of.map(|p| format!("127.0.0.1:{p}"));
        Ok(Self { port, proc: procs::redis_server(procs::LOCAL, port, master.as_deref(), lean)? })
    }

    /// Waits until it is a replica whose link to its master is up.
    fn wait_synced(&self, timeout: Duration) -> Result<()> {
        wait_for(&format!("{} to sync", self.proc.name()), timeout, || {
            let mut conn = match Conn::open(self.port, Duration::from_secs(1)) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e.to_string())),
            };
            let info = conn.call(&["INFO", "replication"]).ok().and_then(|v| v.text());
            Ok(match info {
                Some(text) if text.contains("master_link_status:up") => Ok(()),
                other => Err(format!("INFO replication: {other:?}")),
            })
        })
    }

    /// Waits until it answers PING.
    pub fn wait_up(&self, timeout: Duration) -> Result<()> {
        wait_for(&format!("{} to answer PING", self.proc.name()), timeout, || {
            if self.proc.has_exited() {
                bail!("{} exited: {}", self.proc.name(), self.proc.log_tail(10));
            }
            let mut conn = match Conn::open(self.port, Duration::from_secs(1)) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e.to_string())),
            };
            Ok(match conn.call(&["PING"]) {
                Ok(Value::Simple(s)) if s == "PONG" => Ok(()),
                other => Err(format!("{other:?}")),
            })
        })
    }
}

/// A master with its replicas, all synced.
pub struct Group {
    /// The master.
    pub master: Redis,
    /// Its replicas.
    pub replicas: Vec<Redis>,
}

impl Group {
    /// Starts a master and `replicas` replicas and waits until every replica's link is up.
    pub fn start(replicas: usize) -> Result<Self> {
        let mut groups = Self::start_many(1, replicas)?;
        Ok(groups.remove(0))
    }

    /// Starts `count` groups of a master and `replicas` replicas at once: every master is spawned
    /// before any is waited for, then every replica, so start-ups and initial syncs overlap.
    /// Returns once every replica's link is up.
    pub fn start_many(count: usize, replicas: usize) -> Result<Vec<Self>> {
        let masters: Vec<Redis> =
            (0..count).map(|_| Redis::spawn(None, false)).collect::<Result<_>>()?;
        for m in &masters {
            m.wait_up(Duration::from_secs(30))?;
        }
        let groups: Vec<Self> = masters
            .into_iter()
            .map(|master| {
                let replicas = (0..replicas)
                    .map(|_| Redis::spawn(Some(master.port), false))
                    .collect::<Result<_>>()?;
                Ok(Self { master, replicas })
            })
            .collect::<Result<_>>()?;
        for r in groups.iter().flat_map(|g| &g.replicas) {
            r.wait_up(Duration::from_secs(30))?;
            r.wait_synced(Duration::from_secs(60))?;
        }
        Ok(groups)
    }
}

/// Starts `count` bare masters at once (servers start in parallel; spawning is quick) and waits
/// until each answers PING.
pub fn bare_masters(count: usize) -> Result<Vec<Redis>> {
    let servers: Vec<Redis> =
        (0..count).map(|_| Redis::spawn(None, true)).collect::<Result<_>>()?;
    for s in &servers {
        s.wait_up(Duration::from_secs(120))?;
    }
    Ok(servers)
}

/// One running supervisor.
pub struct Supervisor {
    /// Which kind.
    pub kind: Kind,
    /// The address it binds (127.0.0.1 but in the fencing suite's namespaces).
    pub ip: String,
    /// Its Sentinel-protocol RESP port.
    pub port: u16,
    /// The port its peers talk to it on: the same RESP port for Sentinel, the gossip port for
    /// Picket.
    pub peer_port: u16,
    /// Picket's HTTP port.
    pub http_port: Option<u16>,
    /// Its process.
    pub proc: Proc,
}

impl Supervisor {
    /// A connection to its RESP port.
    pub fn connect(&self) -> Result<Conn> {
        Conn::open_at(&self.ip, self.port, Duration::from_secs(5))
            .with_context(|| format!("connecting to {}", self.proc.name()))
    }

    /// An error if the process died, with its last log lines.
    pub fn check_alive(&self) -> Result<()> {
        if self.proc.has_exited() {
            bail!("{} exited: {}", self.proc.name(), self.proc.log_tail(20));
        }
        Ok(())
    }
}

/// Starts `count` supervisors of `kind` on 127.0.0.1 (each knowing the others: Picket through
/// `peers`, Sentinel through discovery) monitoring `masters`.
pub fn start_supervisors(
    kind: Kind,
    count: usize,
    masters: &[MasterSpec],
    picket_binary: &Path,
) -> Result<Vec<Supervisor>> {
    let layout = Layout {
        places: vec![procs::LOCAL; count],
        master_ip: "127.0.0.1",
        picket_master_extra: "",
    };
    start_supervisors_at(kind, &layout, masters, picket_binary)
}

/// Where supervisors run and what they are told beyond the masters' specs.
pub struct Layout<'a> {
    /// One supervisor per place.
    pub places: Vec<Place<'a>>,
    /// The masters' address.
    pub master_ip: &'a str,
    /// Lines for Picket's `[[master]]` sections (its fencing mode, say); Sentinel has none.
    pub picket_master_extra: &'a str,
}

/// Starts one supervisor of `kind` per place of `layout` (each knowing the others: Picket
/// through `peers`, Sentinel through discovery) monitoring `masters`.
pub fn start_supervisors_at(
    kind: Kind,
    layout: &Layout<'_>,
    masters: &[MasterSpec],
    picket_binary: &Path,
) -> Result<Vec<Supervisor>> {
    let mut out = Vec::with_capacity(layout.places.len());
    match kind {
        Kind::Sentinel => {
            for (i, place) in layout.places.iter().enumerate() {
                let port = procs::supervisor_port()?;
                let proc = procs::sentinel(*place, i + 1, port, layout.master_ip, masters)?;
                let ip = place.ip.to_owned();
                out.push(Supervisor { kind, ip, port, peer_port: port, http_port: None, proc });
            }
        }
        Kind::Picket => {
            let ports: Vec<PicketPorts> = layout
                .places
                .iter()
                .map(|_| {
                    Ok(PicketPorts {
                        listen: procs::supervisor_port()?,
                        gossip: procs::supervisor_port()?,
                        http: procs::supervisor_port()?,
                    })
                })
                .collect::<Result<_>>()?;
            for (i, (p, place)) in ports.iter().zip(&layout.places).enumerate() {
                let peers: Vec<String> = ports
                    .iter()
                    .zip(&layout.places)
                    .filter(|(o, _)| o.gossip != p.gossip)
                    .map(|(o, at)| format!("{}:{}", at.ip, o.gossip))
                    .collect();
                let node = PicketNode {
                    place: *place,
                    ports: *p,
                    peers: &peers,
                    master_ip: layout.master_ip,
                    master_extra: layout.picket_master_extra,
                };
                let proc = procs::picket(picket_binary, i + 1, &node, masters)?;
                out.push(Supervisor {
                    kind,
                    ip: place.ip.to_owned(),
                    port: p.listen,
                    peer_port: p.gossip,
                    http_port: Some(p.http),
                    proc,
                });
            }
        }
    }
    Ok(out)
}

/// What "ready" means before a measurement.
pub struct Readiness<'a> {
    /// Every master each supervisor must monitor and see healthy (flags exactly `master`, INFO
    /// received).
    pub masters: &'a [MasterSpec],
    /// Masters that must show this many replicas, each linked and healthy, with a quorum of
    /// reachable supervisors (`SENTINEL CKQUORUM`).
    pub replicated: &'a [(&'a str, usize)],
    /// How many other supervisors each must know for every master.
    pub others: usize,
}

/// Waits until every supervisor is [`Readiness`]-ready, polling every `every` (large topologies
/// are polled slowly: `SENTINEL MASTERS` with 1,000 masters is a big reply to build).
pub fn wait_ready(
    sups: &[Supervisor],
    ready: &Readiness<'_>,
    timeout: Duration,
    every: Duration,
) -> Result<()> {
    let what = format!(
        "{} {}s to see {} masters and {} peers each",
        sups.len(),
        sups.first().map_or(Kind::Sentinel, |s| s.kind),
        ready.masters.len(),
        ready.others
    );
    wait_for_every(&what, timeout, every, || {
        for sup in sups {
            sup.check_alive()?;
            if let Err(reason) = supervisor_ready(sup, ready) {
                return Ok(Err(format!("{}: {reason}", sup.proc.name())));
            }
        }
        Ok(Ok(()))
    })
}

/// Whether one supervisor is ready; the reason it is not otherwise.
fn supervisor_ready(sup: &Supervisor, ready: &Readiness<'_>) -> Result<(), String> {
    let mut conn = sup.connect().map_err(|e| format!("{e:#}"))?;
    let masters = instance_maps(&mut conn, &["SENTINEL", "MASTERS"])?;
    if masters.len() != ready.masters.len() {
        return Err(format!("monitors {} masters of {}", masters.len(), ready.masters.len()));
    }
    for m in &masters {
        let name = m.get("name").map_or("?", String::as_str);
        let field = |k: &str| m.get(k).map_or("", String::as_str);
        if field("flags") != "master" {
            return Err(format!("master {name}: flags {}", field("flags")));
        }
        if field("num-other-sentinels") != ready.others.to_string() {
            return Err(format!(
                "master {name}: {} other supervisors",
                field("num-other-sentinels")
            ));
        }
        // Before the first INFO reply, Sentinel reports the time since the epoch here.
        if field("info-refresh").parse::<u64>().map_or(true, |ms| ms > 60_000) {
            return Err(format!(
                "master {name}: no INFO yet (info-refresh {})",
                field("info-refresh")
            ));
        }
    }
    for (name, count) in ready.replicated {
        let replicas = instance_maps(&mut conn, &["SENTINEL", "REPLICAS", name])?;
        let healthy = replicas
            .iter()
            .filter(|r| {
                r.get("flags").is_some_and(|f| f == "slave")
                    && r.get("master-link-status").is_some_and(|s| s == "ok")
            })
            .count();
        if healthy != *count {
            return Err(format!("{name}: {healthy} healthy replicas of {count}"));
        }
        match conn.call(&["SENTINEL", "CKQUORUM", name]) {
            Ok(Value::Simple(s)) if s.starts_with("OK") => {}
            other => return Err(format!("{name}: CKQUORUM {other:?}")),
        }
    }
    Ok(())
}

/// The instance maps of a `SENTINEL MASTERS`/`REPLICAS` reply.
pub fn instance_maps(
    conn: &mut Conn,
    command: &[&str],
) -> Result<Vec<BTreeMap<String, String>>, String> {
    match conn.call(command) {
        Ok(Value::Array(items)) => {
            items.iter().map(|i| i.pairs().ok_or_else(|| format!("not a map: {i:?}"))).collect()
        }
        other => Err(format!("{}: {other:?}", command.join(" "))),
    }
}

/// Polls `probe` every 50 ms until it is ready (`Ok(Ok(_))`). `Ok(Err(reason))` means not yet;
/// `Err` is fatal (a process died). After `timeout`, fails with `what` and the last reason.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    probe: impl FnMut() -> Result<Result<T, String>>,
) -> Result<T> {
    wait_for_every(what, timeout, Duration::from_millis(50), probe)
}

/// [`wait_for`] with a chosen poll interval.
pub fn wait_for_every<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Result<Result<T, String>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        let reason = match probe()? {
            Ok(value) => return Ok(value),
            Err(reason) => reason,
        };
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}; last state: {reason}");
        }
        sleep(every);
    }
}
