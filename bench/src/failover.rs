//! Failover time: how long after the master dies (SIGKILL) or hangs (SIGSTOP) clients learn of,
//! and can write to, its replacement.
//!
//! Three clocks start at the signal: (a) the first `+switch-master` any supervisor publishes (a
//! subscriber on each), (b) the first poll in which every supervisor answers the new address to
//! `SENTINEL get-master-addr-by-name`, (c) the first `SET` that a client, asking supervisor 1
//! for the address and connecting there, gets `+OK` for (not `-READONLY`). Polls run every 5 ms.
//! Every trial gets fresh Redis servers and fresh supervisors with empty state, and starts only
//! when all three supervisors see both replicas and each other.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::slice;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::{self, JoinHandle, sleep};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde::Serialize;
use serde_json::json;

use crate::Plan;
use crate::procs::Proc;
use crate::report::{Better, Row, Section};
use crate::resp::{self, Conn, Value};
use crate::topology::{self, Group, Kind, MasterSpec, Readiness, Supervisor};

/// How the master is taken down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Fault {
    /// SIGKILL: connections are refused at once.
    #[serde(rename = "SIGKILL")]
    Kill,
    /// SIGSTOP: the process hangs, connections stay open and silent (the harder case to detect
    /// for anyone relying on connection errors).
    #[serde(rename = "SIGSTOP")]
    Stop,
}

impl Fault {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kill => "SIGKILL",
            Self::Stop => "SIGSTOP",
        }
    }

    fn signal(self) -> i32 {
        match self {
            Self::Kill => libc::SIGKILL,
            Self::Stop => libc::SIGSTOP,
        }
    }
}

/// What one failover took, in milliseconds from the signal.
#[derive(Clone, Debug, Serialize)]
pub struct Timings {
    /// (a) The first `+switch-master` for the master, from any supervisor.
    pub switch_ms: f64,
    /// (b) Every supervisor answering the new address.
    pub agreed_ms: f64,
    /// (c) A client's SET succeeding on the new master.
    pub writable_ms: f64,
    /// When each supervisor first answered the new address.
    pub answered_ms: Vec<f64>,
    /// The new master, `host:port`.
    pub new_master: String,
    /// `+switch-master` payloads for any other master (there should be none).
    pub other_switches: Vec<String>,
}

/// A `+switch-master` message and when it arrived.
struct Switch {
    at: Instant,
    payload: String,
}

/// Subscribes to `+switch-master` on `sup` and forwards every message until `stop`.
fn subscribe(
    sup: &Supervisor,
    tx: Sender<Switch>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>> {
    let mut conn = sup.connect()?;
    match conn.call(&["SUBSCRIBE", "+switch-master"])? {
        Value::Array(items)
            if items.first().and_then(Value::text).as_deref() == Some("subscribe") => {}
        other => bail!("SUBSCRIBE on {} answered {other:?}", sup.proc.name()),
    }
    // Short reads, so the thread notices `stop` quickly.
    conn.set_read_timeout(Duration::from_millis(50))?;
    Ok(thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match conn.read() {
                Ok(Value::Array(items)) if items.len() == 3 => {
                    if let Some(payload) = items[2].text() {
                        let _ = tx.send(Switch { at: Instant::now(), payload });
                    }
                }
                Ok(_) => {}
                Err(e) if resp::is_timeout(&e) => {}
                Err(_) => break,
            }
        }
    }))
}

/// Sends `fault` to `victim` (the master of `name`, on `old_port`) and times (a), (b) and (c).
pub fn measure(
    sups: &[Supervisor],
    name: &str,
    old_port: u16,
    victim: &Proc,
    fault: Fault,
    timeout: Duration,
) -> Result<Timings> {
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for sup in sups {
        threads.push(subscribe(sup, tx.clone(), Arc::clone(&stop))?);
    }
    drop(tx);
    let result = poll(sups, name, &format!("127.0.0.1:{old_port}"), victim, fault, timeout, &rx);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    result
}

/// The measuring loop of [`measure`], once the subscribers listen.
fn poll(
    sups: &[Supervisor],
    name: &str,
    old: &str,
    victim: &Proc,
    fault: Fault,
    timeout: Duration,
    switches: &Receiver<Switch>,
) -> Result<Timings> {
    let mut conns: Vec<Option<Conn>> = sups.iter().map(|s| s.connect().ok()).collect();
    let mut answered: Vec<Option<f64>> = vec![None; sups.len()];
    let (mut switch, mut agreed, mut writable) = (None, None, None);
    let mut other_switches = Vec::new();
    let mut new_master = None;
    let mut client: Option<(String, Conn)> = None;
    let mut last_set = String::from("not tried: no supervisor answered a new address yet");
    let ms = |t: Instant, t0: Instant| t.duration_since(t0).as_secs_f64() * 1000.0;

    let t0 = Instant::now();
    victim.signal(fault.signal())?;
    loop {
        for s in switches.try_iter() {
            if s.payload.split(' ').next() == Some(name) {
                switch.get_or_insert(ms(s.at, t0));
            } else {
                other_switches.push(s.payload);
            }
        }
        // (b): every supervisor, in one round.
        let mut addrs = Vec::with_capacity(sups.len());
        for (i, sup) in sups.iter().enumerate() {
            if conns[i].is_none() {
                conns[i] = sup.connect().ok();
            }
            let addr = conns[i].as_mut().and_then(|c| resp::master_addr(c, name).ok().flatten());
            if addr.is_none() {
                conns[i] = None;
            }
            if addr.as_deref().is_some_and(|a| a != old) {
                answered[i].get_or_insert(ms(Instant::now(), t0));
            }
            addrs.push(addr);
        }
        if agreed.is_none()
            && let Some(Some(first)) = addrs.first()
            && first != old
            && addrs.iter().all(|a| a.as_ref() == Some(first))
        {
            agreed = Some(ms(Instant::now(), t0));
            new_master = Some(first.clone());
        }
        // (c): supervisor 1's answer, then a SET there. The old master is not tried: killed it
        // refuses, stopped it never answers, and waiting on it would only blur the clock.
        if writable.is_none()
            && let Some(Some(addr)) = addrs.first()
            && addr != old
        {
            match try_set(&mut client, addr) {
                Ok(()) => writable = Some(ms(Instant::now(), t0)),
                Err(e) => last_set = format!("{addr}: {e:#}"),
            }
        }
        if let (Some(switch_ms), Some(agreed_ms), Some(writable_ms)) = (switch, agreed, writable) {
            return Ok(Timings {
                switch_ms,
                agreed_ms,
                writable_ms,
                answered_ms: answered.iter().map(|a| a.unwrap_or(f64::NAN)).collect(),
                new_master: new_master.unwrap_or_default(),
                other_switches,
            });
        }
        if t0.elapsed() > timeout {
            bail!(
                "no complete failover {timeout:?} after {}: +switch-master {}, supervisors answer \
                 {addrs:?}, last SET: {last_set}",
                fault.name(),
                switch.map_or_else(|| "not seen".to_owned(), |t| format!("after {t:.0} ms")),
            );
        }
        sleep(Duration::from_millis(5));
    }
}

/// One `SET` on `addr`, reusing the connection while the address stays the same.
pub fn try_set(client: &mut Option<(String, Conn)>, addr: &str) -> Result<()> {
    if client.as_ref().is_none_or(|(a, _)| a != addr) {
        let sock: SocketAddr = addr.parse().with_context(|| format!("address {addr}"))?;
        *client = Some((addr.to_owned(), Conn::open_addr(&sock, Duration::from_millis(500))?));
    }
    let (_, conn) = client.as_mut().expect("just set");
    match conn.call(&["SET", "picket-bench:probe", "1"]) {
        Ok(Value::Simple(s)) if s == "OK" => Ok(()),
        Ok(other) => bail!("SET answered {other:?}"),
        Err(e) => {
            *client = None;
            Err(e.into())
        }
    }
}

/// The suite: `plan.trials` trials for each fault, each kind, alternating.
pub fn run(plan: &Plan) -> Section {
    let mut section = Section::default();
    let mut raw = Vec::new();
    // (a), (b) and (c) samples per fault and kind.
    let mut samples: BTreeMap<(Fault, Kind), [Vec<f64>; 3]> = BTreeMap::new();
    for trial in 0..plan.trials {
        for fault in [Fault::Kill, Fault::Stop] {
            for kind in Kind::order(trial) {
                let label = format!("trial {}/{} {} {kind}", trial + 1, plan.trials, fault.name());
                match one_trial(kind, fault, plan) {
                    Ok(t) => {
                        eprintln!(
                            "failover {label}: +switch-master {:.0} ms, all answer {:.0} ms, \
                             writable {:.0} ms",
                            t.switch_ms, t.agreed_ms, t.writable_ms
                        );
                        let slot = samples.entry((fault, kind)).or_default();
                        slot[0].push(t.switch_ms);
                        slot[1].push(t.agreed_ms);
                        slot[2].push(t.writable_ms);
                        raw.push(
                            json!({"trial": trial, "fault": fault, "kind": kind, "timings": t}),
                        );
                    }
                    Err(e) => {
                        let message = format!("failover {label}: {e:#}");
                        eprintln!("{message}");
                        raw.push(json!({"trial": trial, "fault": fault, "kind": kind, "error": format!("{e:#}")}));
                        section.errors.push(message);
                    }
                }
            }
        }
    }
    let get =
        |fault, kind, i: usize| samples.get(&(fault, kind)).map_or_else(Vec::new, |s| s[i].clone());
    for fault in [Fault::Kill, Fault::Stop] {
        for (i, what) in ["first +switch-master", "all 3 answer new addr", "SET ok on new master"]
            .iter()
            .enumerate()
        {
            section.rows.push(Row::both(
                format!("failover {}: {what}", fault.name()),
                "ms",
                Better::Lower,
                get(fault, Kind::Sentinel, i),
                get(fault, Kind::Picket, i),
            ));
        }
    }
    section.notes.push(
        "failover: 1 master + 2 replicas + 3 supervisors on 127.0.0.1, quorum 2, down-after 1000 \
         ms, failover-timeout 10000 ms, parallel-syncs 1; fresh servers and state every trial; \
         times from the signal, polled every 5 ms; the SET asks supervisor 1 for the address"
            .to_owned(),
    );
    section.raw = json!({"trials": raw});
    section
}

/// One trial on a fresh topology.
fn one_trial(kind: Kind, fault: Fault, plan: &Plan) -> Result<Timings> {
    single_master_trial(kind, fault, DOWN_AFTER_MS, plan, |_| Ok(()))
}

/// The suite's `down-after-milliseconds`.
pub const DOWN_AFTER_MS: u64 = 1000;

/// A trial on a fresh topology of one master with two replicas and three supervisors of `kind`
/// (`down_after_ms` as given, Picket's other settings at their defaults): once all are ready,
/// `prepare` may change the supervisors (stop one, say), then `fault` hits the master and the
/// failover is timed across the supervisors `prepare` left.
pub fn single_master_trial(
    kind: Kind,
    fault: Fault,
    down_after_ms: u64,
    plan: &Plan,
    prepare: impl FnOnce(&mut Vec<Supervisor>) -> Result<()>,
) -> Result<Timings> {
    let group = Group::start(2)?;
    let spec = MasterSpec {
        name: "bench".to_owned(),
        port: group.master.port,
        quorum: 2,
        down_after_ms,
        failover_timeout_ms: 10_000,
    };
    let mut sups = topology::start_supervisors(kind, 3, slice::from_ref(&spec), &plan.picket)?;
    let ready =
        Readiness { masters: slice::from_ref(&spec), replicated: &[("bench", 2)], others: 2 };
    let timings =
        topology::wait_ready(&sups, &ready, Duration::from_secs(120), Duration::from_millis(50))
            .and_then(|()| prepare(&mut sups))
            .and_then(|()| {
                measure(
                    &sups,
                    "bench",
                    spec.port,
                    &group.master.proc,
                    fault,
                    Duration::from_secs(90),
                )
            })
            .map_err(|e| anyhow!("{e:#}\n{}", logs(&sups)))?;
    let replicas: Vec<String> =
        group.replicas.iter().map(|r| format!("127.0.0.1:{}", r.port)).collect();
    if !replicas.contains(&timings.new_master) {
        bail!("new master {} is not one of the replicas {replicas:?}", timings.new_master);
    }
    Ok(timings)
}

/// The last log lines of every supervisor, to explain a failed trial.
pub fn logs(sups: &[Supervisor]) -> String {
    sups.iter().map(|s| s.proc.log_tail(8)).collect::<Vec<_>>().join("\n")
}
