//! Scale: three supervisors monitoring 1,000 masters, with `down_after_ms` 1000 on every one.
//!
//! One master has two replicas; the other 999 are bare servers, started once and shared by every
//! round (supervisors never touch a master that has nothing to fail over to). Each round starts
//! a fresh replicated group and three fresh supervisors, waits until all see every master and
//! each other, then (i) counts peer traffic over a few windows (see [`crate::traffic`]; Picket's
//! own `picket_gossip_sent_bytes_total` is the cross-check), and (ii) SIGKILLs the replicated
//! master and times it to a successful SET on its replacement, then checks that none of the other
//! 999 was failed over.

use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use serde::Serialize;
use serde_json::json;

use crate::failover::{self, Fault, Timings};
use crate::report::{Better, Row, Section};
use crate::topology::{self, Group, Kind, MasterSpec, Readiness, Redis, Supervisor};
use crate::traffic::{Bytes, Counter};
use crate::{Plan, http};

/// The master that fails over.
const TARGET: &str = "scale-0000";

/// How long to watch, and how many rounds.
struct Shape {
    masters: usize,
    rounds: usize,
    warmup: Duration,
    window: Duration,
    windows: usize,
}

/// One round's results.
#[derive(Debug, Serialize)]
struct Round {
    /// Peer bytes per second, per window (links + hello).
    traffic: Vec<f64>,
    /// Of which through the supervisors' own ports, per window.
    links: Vec<f64>,
    /// Of which hello messages through Redis, per window.
    hello: Vec<f64>,
    /// Picket's own count of gossip bytes sent, per second, per window (summed over nodes).
    metrics: Vec<f64>,
    /// The failover.
    failover: Timings,
    /// Other masters no longer at their first address (or gone), per supervisor: failed over.
    others_moved: Vec<usize>,
    /// Other masters not flagged exactly `master` after the failover, per supervisor.
    others_flagged: Vec<usize>,
}

/// The suite.
pub fn run(plan: &Plan) -> Result<Section> {
    let shape = if plan.quick {
        Shape {
            masters: 100,
            rounds: 1,
            warmup: Duration::from_secs(3),
            window: Duration::from_secs(5),
            windows: 1,
        }
    } else {
        Shape {
            masters: 1000,
            rounds: 2,
            warmup: Duration::from_secs(10),
            window: Duration::from_secs(10),
            windows: 3,
        }
    };
    eprintln!("scale: starting {} bare redis-server masters", shape.masters - 1);
    let bare = topology::bare_masters(shape.masters - 1)?;
    let mut section = Section::default();
    let mut raw = Vec::new();
    let mut rows: [(Vec<f64>, Vec<f64>); 3] = Default::default();
    let mut breakdown: (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for round in 0..shape.rounds {
        for kind in Kind::order(round) {
            let label = format!("scale round {}/{} {kind}", round + 1, shape.rounds);
            match one_round(kind, &bare, plan, &shape) {
                Ok(r) => {
                    eprintln!(
                        "{label}: peer traffic {:?} B/s, SET ok {:.0} ms after SIGKILL",
                        r.traffic.iter().map(|b| b.round()).collect::<Vec<_>>(),
                        r.failover.writable_ms
                    );
                    let pick = |pair: &mut (Vec<f64>, Vec<f64>), v: &[f64]| match kind {
                        Kind::Sentinel => pair.0.extend_from_slice(v),
                        Kind::Picket => pair.1.extend_from_slice(v),
                    };
                    pick(&mut rows[0], &r.traffic);
                    if kind == Kind::Picket {
                        rows[1].1.extend_from_slice(&r.metrics);
                    } else {
                        breakdown.0.extend_from_slice(&r.links);
                        breakdown.1.extend_from_slice(&r.hello);
                    }
                    pick(&mut rows[2], &[r.failover.writable_ms]);
                    if r.others_moved.iter().sum::<usize>() > 0
                        || !r.failover.other_switches.is_empty()
                    {
                        section.errors.push(format!(
                            "{label}: other masters were failed over: {:?} moved per supervisor, \
                             +switch-master for {:?}",
                            r.others_moved, r.failover.other_switches
                        ));
                    }
                    if r.others_flagged.iter().sum::<usize>() > 0 {
                        section.notes.push(format!(
                            "{label}: after the failover, other masters not flagged plain \
                             `master` (s_down/disconnected), per supervisor: {:?}",
                            r.others_flagged
                        ));
                    }
                    raw.push(json!({"round": round, "kind": kind, "result": r}));
                }
                Err(e) => {
                    let message = format!("{label}: {e:#}");
                    eprintln!("{message}");
                    raw.push(json!({"round": round, "kind": kind, "error": format!("{e:#}")}));
                    section.errors.push(message);
                }
            }
        }
    }
    let n = shape.masters;
    let [traffic, metrics, writable] = rows;
    section.rows.push(Row::both(
        format!("scale {n} masters: peer traffic"),
        "B/s",
        Better::Lower,
        traffic.0,
        traffic.1,
    ));
    section.rows.push(Row {
        metric: format!("scale {n} masters: gossip sent (/metrics)"),
        unit: "B/s",
        better: Better::Lower,
        sentinel: None,
        picket: Some(metrics.1),
    });
    section.rows.push(Row::both(
        format!("scale {n} masters: SIGKILL to SET ok"),
        "ms",
        Better::Lower,
        writable.0,
        writable.1,
    ));
    let median = |v: &[f64]| crate::stats::summarize(v).map_or(f64::NAN, |s| s.median);
    section.notes.push(format!(
        "scale: 3 supervisors, {n} masters (1 with 2 replicas, {} bare), down-after 1000 ms and \
         quorum 2 on all; {} round(s), {} window(s) of {}s after a {}s warm-up. Peer traffic = \
         IP bytes counted by iptables on lo: all packets to/from the supervisors' peer ports \
         (Sentinel's port, Picket's gossip port) plus packets elsewhere containing \
         \"__sentinel__:hello\" (Sentinel's hellos through Redis pub/sub); Sentinel's median \
         split: {:.0} B/s on its ports + {:.0} B/s hellos through Redis. /metrics counts gossip \
         payload sent, without TCP/IP headers or ACKs",
        n - 1,
        shape.rounds,
        shape.windows,
        shape.window.as_secs(),
        shape.warmup.as_secs(),
        median(&breakdown.0),
        median(&breakdown.1),
    ));
    section.raw = json!({"masters": n, "rounds": raw});
    Ok(section)
}

/// One round for `kind`: fresh replicated group and supervisors over the shared bare masters.
fn one_round(kind: Kind, bare: &[Redis], plan: &Plan, shape: &Shape) -> Result<Round> {
    let group = Group::start(2)?;
    let spec = |name: String, port| MasterSpec {
        name,
        port,
        quorum: 2,
        down_after_ms: 1000,
        failover_timeout_ms: 10_000,
    };
    let mut specs = vec![spec(TARGET.to_owned(), group.master.port)];
    specs.extend(bare.iter().enumerate().map(|(i, r)| spec(format!("scale-{:04}", i + 1), r.port)));
    let sups = topology::start_supervisors(kind, 3, &specs, &plan.picket)?;
    let with_logs = |e: anyhow::Error| anyhow!("{e:#}\n{}", failover::logs(&sups));
    let ready = Readiness { masters: &specs, replicated: &[(TARGET, 2)], others: 2 };
    topology::wait_ready(&sups, &ready, Duration::from_secs(600), Duration::from_secs(1))
        .map_err(with_logs)?;

    let ports: Vec<u16> = sups.iter().map(|s| s.peer_port).collect();
    let counter = Counter::install(&ports)?;
    sleep(shape.warmup);
    let (mut traffic, mut links, mut hello, mut metrics) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..shape.windows {
        let (t0, b0, m0) = (Instant::now(), counter.read()?, gossip_sent(&sups)?);
        sleep(shape.window);
        let (t1, b1, m1) = (Instant::now(), counter.read()?, gossip_sent(&sups)?);
        for s in &sups {
            s.check_alive()?;
        }
        let secs = (t1 - t0).as_secs_f64();
        let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / secs;
        let Bytes { links: l0, hello: h0 } = b0;
        let Bytes { links: l1, hello: h1 } = b1;
        links.push(rate(l0, l1));
        hello.push(rate(h0, h1));
        traffic.push(rate(l0 + h0, l1 + h1));
        if let (Some(m0), Some(m1)) = (m0, m1) {
            metrics.push((m1 - m0) / secs);
        }
    }
    drop(counter);

    let failover = failover::measure(
        &sups,
        TARGET,
        group.master.port,
        &group.master.proc,
        Fault::Kill,
        Duration::from_secs(120),
    )
    .map_err(with_logs)?;
    // The others, as each supervisor sees them: none may have moved (been failed over); any not
    // flagged exactly `master` (s_down, disconnected) shows the supervisor struggling.
    let (mut others_moved, mut others_flagged) = (Vec::new(), Vec::new());
    for sup in &sups {
        let mut conn = sup.connect()?;
        let maps =
            topology::instance_maps(&mut conn, &["SENTINEL", "MASTERS"]).map_err(|e| anyhow!(e))?;
        let (mut moved, mut flagged) = (0, 0);
        for s in &specs[1..] {
            let Some(m) = maps.iter().find(|m| m.get("name") == Some(&s.name)) else {
                moved += 1;
                continue;
            };
            moved += usize::from(m.get("port") != Some(&s.port.to_string()));
            flagged += usize::from(m.get("flags").is_none_or(|f| f != "master"));
        }
        others_moved.push(moved);
        others_flagged.push(flagged);
    }
    Ok(Round { traffic, links, hello, metrics, failover, others_moved, others_flagged })
}

/// Picket's `picket_gossip_sent_bytes_total` summed over the nodes; `None` for Sentinel.
fn gossip_sent(sups: &[Supervisor]) -> Result<Option<f64>> {
    let mut total = 0.0;
    for sup in sups {
        let Some(port) = sup.http_port else { return Ok(None) };
        let text = http::get(port, "/metrics", Duration::from_secs(10))?;
        total += http::metric_sum(&text, "picket_gossip_sent_bytes_total")
            .ok_or_else(|| anyhow!("no picket_gossip_sent_bytes_total in /metrics"))?;
    }
    Ok(Some(total))
}
