//! Query throughput: what clients can ask per second.
//!
//! One Sentinel and one Picket node monitor the same master; `redis-benchmark -c 50` (one request
//! per round trip, and `-P 16` pipelined) sends `SENTINEL get-master-addr-by-name` (what every
//! client asks at connect and after a failure) and `PING` (the cheapest request: the cost of the
//! server loop itself) to each in turn, alternating who goes first, several rounds. `wrk` measures
//! Picket's `GET /v1/masters/{name}`; Sentinel has no HTTP API.

use std::process::Command;
use std::slice;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::report::{Better, Row, Section};
use crate::resp::Value;
use crate::topology::{self, Group, Kind, MasterSpec, Readiness, Supervisor};
use crate::{Plan, procs};

/// One redis-benchmark configuration.
struct Load {
    /// Row label.
    label: &'static str,
    /// The command sent.
    command: &'static [&'static str],
    /// Requests in flight per connection (1 = no pipelining).
    pipeline: u32,
}

const LOADS: [Load; 4] = [
    Load {
        label: "SENTINEL get-master-addr-by-name -c 50",
        command: &["SENTINEL", "get-master-addr-by-name", "bench"],
        pipeline: 1,
    },
    Load {
        label: "SENTINEL get-master-addr-by-name -c 50 -P 16",
        command: &["SENTINEL", "get-master-addr-by-name", "bench"],
        pipeline: 16,
    },
    Load { label: "PING -c 50", command: &["PING"], pipeline: 1 },
    Load { label: "PING -c 50 -P 16", command: &["PING"], pipeline: 16 },
];

/// The suite.
pub fn run(plan: &Plan) -> Result<Section> {
    let (rounds, requests, wrk_seconds) = if plan.quick { (2, 20_000, 2) } else { (5, 200_000, 5) };
    let group = Group::start(0)?;
    let spec = MasterSpec {
        name: "bench".to_owned(),
        port: group.master.port,
        quorum: 1,
        down_after_ms: 30_000,
        failover_timeout_ms: 180_000,
    };
    let specs = slice::from_ref(&spec);
    let mut sups = Vec::new();
    for kind in [Kind::Sentinel, Kind::Picket] {
        sups.extend(topology::start_supervisors(kind, 1, specs, &plan.picket)?);
    }
    let ready = Readiness { masters: specs, replicated: &[], others: 0 };
    for sup in &sups {
        topology::wait_ready(
            slice::from_ref(sup),
            &ready,
            Duration::from_secs(60),
            Duration::from_millis(50),
        )?;
        check_answers(sup)?;
    }

    let mut section = Section::default();
    let mut samples = vec![(Vec::new(), Vec::new()); LOADS.len()];
    let mut http = Vec::new();
    let mut raw = Vec::new();
    for round in 0..rounds {
        for (i, load) in LOADS.iter().enumerate() {
            for kind in Kind::order(round) {
                let sup = sups.iter().find(|s| s.kind == kind).expect("both started");
                // Pipelined runs are ~15x faster: give them 20x the requests for similar lengths.
                let n = requests * if load.pipeline > 1 { 20 } else { 1 };
                match redis_benchmark(sup.port, load, n) {
                    Ok(rps) => {
                        eprintln!(
                            "throughput round {}/{rounds} {kind} {}: {rps:.0} req/s",
                            round + 1,
                            load.label
                        );
                        let side = if kind == Kind::Sentinel {
                            &mut samples[i].0
                        } else {
                            &mut samples[i].1
                        };
                        side.push(rps);
                        raw.push(json!({"round": round, "kind": kind, "load": load.label, "requests": n, "rps": rps}));
                    }
                    Err(e) => {
                        section.errors.push(format!("throughput {kind} {}: {e:#}", load.label))
                    }
                }
            }
        }
        let picket = sups.iter().find(|s| s.kind == Kind::Picket).expect("started");
        let port = picket.http_port.expect("picket has an HTTP port");
        match wrk(port, wrk_seconds) {
            Ok(rps) => {
                eprintln!("throughput round {}/{rounds} picket HTTP: {rps:.0} req/s", round + 1);
                http.push(rps);
                raw.push(json!({"round": round, "kind": Kind::Picket, "load": "wrk -t2 -c50 GET /v1/masters/bench", "seconds": wrk_seconds, "rps": rps}));
            }
            Err(e) => section.errors.push(format!("throughput picket HTTP (wrk): {e:#}")),
        }
    }
    for (load, (sentinel, picket)) in LOADS.iter().zip(samples) {
        section.rows.push(Row::both(load.label, "req/s", Better::Higher, sentinel, picket));
    }
    section.rows.push(Row {
        metric: format!("HTTP GET /v1/masters/{{name}} wrk -t2 -c50 -d{wrk_seconds}s"),
        unit: "req/s",
        better: Better::Higher,
        sentinel: None,
        picket: Some(http),
    });
    section.notes.push(format!(
        "throughput: one supervisor of each kind monitoring the same master (both running), \
         redis-benchmark -c 50 -n {requests} (x20 with -P 16), {rounds} alternating rounds; \
         Sentinel has no HTTP API"
    ));
    section.raw = json!({"runs": raw});
    Ok(section)
}

/// Checks that the commands benchmarked succeed: redis-benchmark counts error replies as
/// requests served, so an error would otherwise show up as a fast result.
fn check_answers(sup: &Supervisor) -> Result<()> {
    let mut conn = sup.connect()?;
    for load in &LOADS {
        match conn.call(load.command)? {
            Value::Error(e) => {
                bail!("{} answers {:?} with an error: {e}", sup.proc.name(), load.command)
            }
            Value::Nil => bail!("{} does not know the master", sup.proc.name()),
            _ => {}
        }
    }
    Ok(())
}

/// Runs redis-benchmark and returns its requests per second.
fn redis_benchmark(port: u16, load: &Load, requests: usize) -> Result<f64> {
    let mut cmd = Command::new("redis-benchmark");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-c", "50"])
        .args(["-n", &requests.to_string(), "-P", &load.pipeline.to_string(), "--csv"])
        .args(load.command);
    let out = procs::run_tool("redis-benchmark", cmd, Duration::from_secs(600))?;
    parse_csv_rps(&out).with_context(|| format!("redis-benchmark output: {out}"))
}

/// The `rps` column of redis-benchmark's `--csv` output (header `"test","rps",...`).
fn parse_csv_rps(out: &str) -> Result<f64> {
    let line = out
        .lines()
        .find(|l| l.starts_with('"') && !l.starts_with("\"test\""))
        .context("no result line")?;
    let field = line.split("\",\"").nth(1).context("no rps column")?;
    Ok(field.trim_matches('"').parse()?)
}

/// Runs wrk against Picket's HTTP API and returns its requests per second.
fn wrk(port: u16, seconds: u32) -> Result<f64> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c50", &format!("-d{seconds}s")])
        .arg(format!("http://127.0.0.1:{port}/v1/masters/bench"));
    let out = procs::run_tool("wrk", cmd, Duration::from_secs(u64::from(seconds) + 60))?;
    parse_wrk_rps(&out).with_context(|| format!("wrk output: {out}"))
}

/// `Requests/sec:` from wrk's report; an error if any response was not 2xx/3xx.
fn parse_wrk_rps(out: &str) -> Result<f64> {
    if let Some(line) = out.lines().find(|l| l.contains("Non-2xx or 3xx responses")) {
        bail!("{}", line.trim());
    }
    let line = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .context("no Requests/sec")?;
    Ok(line.trim().parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_benchmark_csv() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\"\n\
                   \"SENTINEL get-master-addr-by-name bench\",\"41152.26\",\"0.625\",\"0.1\"\n";
        assert_eq!(parse_csv_rps(out).unwrap(), 41152.26);
        assert!(parse_csv_rps("\"test\",\"rps\"\n").is_err());
    }

    #[test]
    fn parses_wrk() {
        let out = "Running 5s test @ http://127.0.0.1:1/v1/masters/bench\n  2 threads and 50 \
                   connections\n  1000 requests in 5.00s, 1.00MB read\nRequests/sec:  12345.67\n\
                   Transfer/sec:      1.00MB\n";
        assert_eq!(parse_wrk_rps(out).unwrap(), 12345.67);
        let bad = format!("{out}  Non-2xx or 3xx responses: 3\n");
        assert!(parse_wrk_rps(&bad).is_err());
    }
}
