//! Idle cost: what one supervisor costs while nothing happens, by number of masters.
//!
//! One supervisor (no peers, so only monitoring is measured) watches 1, 100 or 1,000 real
//! `redis-server` masters. The servers of a size are started once and shared by the Sentinel and
//! the Picket run, which go one after the other. After a warm-up that starts when the supervisor
//! sees every master, CPU is the process's utime + stime from /proc/PID/stat over each window
//! (as % of one core) and memory its VmRSS at the window's end.

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::Plan;
use crate::report::{Better, Row, Section};
use crate::topology::{self, Kind, MasterSpec, Readiness, Redis};

/// Down-after for the idle runs: Sentinel's default. Both supervisors ping every instance once a
/// second at this setting (Sentinel's ping period is min(down-after, 1 s); Picket's is
/// down_after_ms / 10, at most 1 s), so the cost compared is the steady state operators run.
const DOWN_AFTER_MS: u64 = 30_000;

/// The suite.
pub fn run(plan: &Plan) -> Result<Section> {
    let sizes: &[usize] = if plan.quick { &[1, 100] } else { &[1, 100, 1000] };
    let (warmup, window, windows) = if plan.quick {
        (Duration::from_secs(3), Duration::from_secs(5), 1)
    } else {
        (Duration::from_secs(10), Duration::from_secs(30), 3)
    };
    let mut section = Section::default();
    let mut raw = Vec::new();
    for (round, &size) in sizes.iter().enumerate() {
        let plural = if size == 1 { "master" } else { "masters" };
        eprintln!("idle: starting {size} redis-server {plural}");
        let servers = topology::bare_masters(size)?;
        let specs = specs(&servers);
        let (mut cpu, mut rss) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for kind in Kind::order(round) {
            match measure(kind, &specs, plan, warmup, window, windows) {
                Ok(samples) => {
                    for (c, r) in &samples {
                        eprintln!(
                            "idle {size} {plural} {kind}: CPU {c:.2}% of a core, RSS {r:.1} MiB"
                        );
                    }
                    let (cpu_side, rss_side) = match kind {
                        Kind::Sentinel => (&mut cpu.0, &mut rss.0),
                        Kind::Picket => (&mut cpu.1, &mut rss.1),
                    };
                    cpu_side.extend(samples.iter().map(|s| s.0));
                    rss_side.extend(samples.iter().map(|s| s.1));
                    raw.push(json!({"masters": size, "kind": kind, "window_s": window.as_secs(), "cpu_percent": samples.iter().map(|s| s.0).collect::<Vec<_>>(), "rss_mib": samples.iter().map(|s| s.1).collect::<Vec<_>>()}));
                }
                Err(e) => {
                    let message = format!("idle {size} {plural} {kind}: {e:#}");
                    eprintln!("{message}");
                    section.errors.push(message);
                }
            }
        }
        section.rows.push(Row::both(
            format!("idle CPU, {size} {plural}"),
            "% core",
            Better::Lower,
            cpu.0,
            cpu.1,
        ));
        section.rows.push(Row::both(
            format!("idle RSS, {size} {plural}"),
            "MiB",
            Better::Lower,
            rss.0,
            rss.1,
        ));
    }
    section.notes.push(format!(
        "idle: one supervisor without peers, quorum 1, down-after {DOWN_AFTER_MS} ms, bare \
         redis-servers (hz 1) shared by both runs; warm-up {}s after it sees every master, then \
         {windows} window(s) of {}s: CPU = utime+stime from /proc/PID/stat, RSS = VmRSS at the \
         window's end",
        warmup.as_secs(),
        window.as_secs()
    ));
    section.raw = json!({"runs": raw});
    Ok(section)
}

/// One master spec per server.
fn specs(servers: &[Redis]) -> Vec<MasterSpec> {
    specs_at(servers, DOWN_AFTER_MS)
}

/// One master spec per server, with `down_after_ms`.
fn specs_at(servers: &[Redis], down_after_ms: u64) -> Vec<MasterSpec> {
    servers
        .iter()
        .enumerate()
        .map(|(i, s)| MasterSpec {
            name: format!("idle-{i:04}"),
            port: s.port,
            quorum: 1,
            down_after_ms,
            failover_timeout_ms: 180_000,
        })
        .collect()
}

/// The `probe` suite: what probing costs one supervisor watching 1,000 masters (100 with
/// `--quick`) at `down_after_ms` 1000 and 30000, Sentinel and Picket alternating on the same
/// servers, the down-afters one after the other. Sentinel pings every instance every
/// min(down-after, 1 s), so once a second at both; Picket's period depends on down-after.
pub fn run_probe(plan: &Plan) -> Result<Section> {
    let size = if plan.quick { 100 } else { 1000 };
    let (warmup, window, windows) = if plan.quick {
        (Duration::from_secs(3), Duration::from_secs(5), 1)
    } else {
        (Duration::from_secs(10), Duration::from_secs(30), 3)
    };
    eprintln!("probe: starting {size} redis-server masters");
    let servers = topology::bare_masters(size)?;
    let mut section = Section::default();
    let mut raw = Vec::new();
    for (round, down_after_ms) in [1000, 30_000].into_iter().enumerate() {
        let specs = specs_at(&servers, down_after_ms);
        let (mut cpu, mut rss) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for kind in Kind::order(round) {
            match measure(kind, &specs, plan, warmup, window, windows) {
                Ok(samples) => {
                    for (c, r) in &samples {
                        eprintln!(
                            "probe {size} masters, down-after {down_after_ms} {kind}: CPU \
                             {c:.2}% of a core, RSS {r:.1} MiB"
                        );
                    }
                    let (cpu_side, rss_side) = match kind {
                        Kind::Sentinel => (&mut cpu.0, &mut rss.0),
                        Kind::Picket => (&mut cpu.1, &mut rss.1),
                    };
                    cpu_side.extend(samples.iter().map(|s| s.0));
                    rss_side.extend(samples.iter().map(|s| s.1));
                    raw.push(json!({"masters": size, "down_after_ms": down_after_ms, "kind": kind, "window_s": window.as_secs(), "cpu_percent": samples.iter().map(|s| s.0).collect::<Vec<_>>(), "rss_mib": samples.iter().map(|s| s.1).collect::<Vec<_>>()}));
                }
                Err(e) => {
                    let message =
                        format!("probe {size} masters, down-after {down_after_ms} {kind}: {e:#}");
                    eprintln!("{message}");
                    section.errors.push(message);
                }
            }
        }
        section.rows.push(Row::both(
            format!("probe CPU, {size} masters, down-after {down_after_ms}"),
            "% core",
            Better::Lower,
            cpu.0,
            cpu.1,
        ));
        section.rows.push(Row::both(
            format!("probe RSS, {size} masters, down-after {down_after_ms}"),
            "MiB",
            Better::Lower,
            rss.0,
            rss.1,
        ));
    }
    section.notes.push(format!(
        "probe: one supervisor without peers, quorum 1, {size} bare redis-servers (hz 1) shared by \
         every run, down-after 1000 then 30000 ms; warm-up {}s after it sees every master, then \
         {windows} window(s) of {}s: CPU = utime+stime from /proc/PID/stat, RSS = VmRSS at the \
         window's end",
        warmup.as_secs(),
        window.as_secs()
    ));
    section.raw = json!({"runs": raw});
    Ok(section)
}

/// Starts one supervisor of `kind` on `specs` and returns (CPU %, RSS MiB) per window.
fn measure(
    kind: Kind,
    specs: &[MasterSpec],
    plan: &Plan,
    warmup: Duration,
    window: Duration,
    windows: usize,
) -> Result<Vec<(f64, f64)>> {
    let sups = topology::start_supervisors(kind, 1, specs, &plan.picket)?;
    let ready = Readiness { masters: specs, replicated: &[], others: 0 };
    // Asking for 1,000 instance maps is work for the supervisor: ask rarely on big topologies.
    let every = Duration::from_millis(if specs.len() > 10 { 1000 } else { 100 });
    topology::wait_ready(&sups, &ready, Duration::from_secs(300), every)?;
    sleep(warmup);
    let pid = sups[0].proc.pid();
    let mut samples = Vec::with_capacity(windows);
    for _ in 0..windows {
        let (t0, c0) = (Instant::now(), cpu_seconds(pid)?);
        sleep(window);
        let (t1, c1) = (Instant::now(), cpu_seconds(pid)?);
        sups[0].check_alive()?;
        samples.push(((c1 - c0) / (t1 - t0).as_secs_f64() * 100.0, rss_mib(pid)?));
    }
    Ok(samples)
}

/// utime + stime of process `pid` (all its threads), in seconds.
pub fn cpu_seconds(pid: i32) -> Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which is in parentheses and may hold spaces): state is
    // field 3, utime 14 and stime 15.
    let rest = stat.rsplit_once(')').context("malformed /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> {
        let v: u64 = fields.get(i).context("short /proc/PID/stat")?.parse()?;
        #[allow(clippy::cast_precision_loss)] // tick counts stay far below 2^52
        Ok(v as f64)
    };
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz <= 0 {
        bail!("sysconf(_SC_CLK_TCK) failed");
    }
    #[allow(clippy::cast_precision_loss)]
    Ok((ticks(11)? + ticks(12)?) / hz as f64)
}

/// VmRSS of process `pid`, in MiB.
pub fn rss_mib(pid: i32) -> Result<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .context("no VmRSS")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_cpu_and_memory() {
        let pid = i32::try_from(std::process::id()).unwrap();
        let start = cpu_seconds(pid).unwrap();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(pid).unwrap() >= start);
        assert!(rss_mib(pid).unwrap() > 0.0);
    }
}
