//! Fencing and planned switchovers against real partitions: three hosts (network namespaces),
//! each with a picket and a Redis instance (the master on the third), quorum 2,
//! `down_after_ms = 1000`, and a redis-py client on the first and third hosts writing a new key
//! every 10 ms through Sentinel discovery. Every write a server acknowledged is recorded (when
//! it was sent, when the acknowledgement came back, and which server sent it) and looked up on
//! the final master at the end.
//!
//! What each test proves is the promise of its mode, measured: with `bounded`, every lost write
//! was sent before the fence closed (`+fence-window` after the promotion); with `strict`, no
//! write reached the old master after the new master acknowledged its first; a planned
//! switchover loses nothing. The numbers are printed (`cargo test --test fencing --
//! --nocapture`); speeds are for `scripts/bench`, not asserted here.

// The writers stamp their records with the wall clock; the test compares with it.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::netns::Net;
use support::{
    ClusterOptions, Group, Picket, Redis, durable_master, free_port, http, missing,
    redis_py_installed, wait_for, wait_until,
};

const LONG: Duration = Duration::from_secs(60);
/// How long the master's host stays cut off.
const PARTITION: Duration = Duration::from_secs(8);
const ADMIN_TOKEN: &str = "fencing-admin";
const WRITER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/writer.py");

/// The scenarios share two busy cores: one at a time keeps their timing meaningful.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn unix_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_millis()).unwrap()
}

/// Three hosts: picket `i` and Redis `i` in namespace `i`; Redis 2 is the master.
struct Hosts {
    pickets: Vec<Picket>,
    group: Group,
    net: Net,
}

impl Hosts {
    fn start(fencing: &str) -> Option<Self> {
        if missing("redis-py", redis_py_installed()) {
            return None;
        }
        let net = Net::create(3)?;
        let redis = |i: usize, master: Option<&Redis>| {
            let (ns, ip) = &net.nodes[i];
            Redis::start_in(Some(ns), ip, free_port(), None, master)
        };
        let master = redis(2, None);
        let replicas = vec![redis(0, Some(&master)), redis(1, Some(&master))];
        let group = Group::from_parts("session", master, replicas);
        let options = ClusterOptions {
            master_extra: format!("fencing = \"{fencing}\"\n"),
            sections: format!("\n[http]\nadmin_token = \"{ADMIN_TOKEN}\"\n"),
            ..ClusterOptions::default()
        };
        let pickets = net.start_pickets(&[&group], &options);
        wait_for("pickets ready", LONG, || {
            pickets.iter().all(|p| p.count("+slave ") >= 2 && p.count("+sentinel ") >= 2)
        });
        if fencing != "off" {
            // The lease: a majority of the two replicas.
            wait_for("the master's lease", LONG, || {
                config_get(&group.master, "min-replicas-to-write").as_deref() == Some("2")
            });
        }
        Some(Self { pickets, group, net })
    }

    /// The Sentinel-port addresses, the one on host `local` first (a client asks its own
    /// host's sentinel first; the others may be unreachable).
    fn sentinels(&self, local: usize) -> String {
        let mut order: Vec<usize> = vec![local];
        order.extend((0..self.pickets.len()).filter(|&i| i != local));
        let addrs: Vec<String> =
            order.iter().map(|&i| self.pickets[i].spec.listen_addr()).collect();
        addrs.join(",")
    }

    /// Waits until every picket has adopted a failover; returns the new master's address.
    fn wait_for_new_master(&self) -> String {
        let old = self.group.master.addr();
        wait_until("a new master", LONG, || {
            let (addr, epoch) = durable_master(&self.pickets[0], "session")?;
            (epoch > 0 && addr != old).then_some(addr)
        })
    }

    /// The leader's record of the failover, from `GET /v1/history`.
    fn leader_history(&self) -> Value {
        wait_until("the leader's history", LONG, || {
            self.pickets.iter().find_map(|p| {
                let body = http::get(&p.spec.http_addr(), "/v1/history?master=session").json();
                body["failovers"].as_array()?.iter().find_map(|f| {
                    (f["role"] == "leader" && f["outcome"] == "succeeded").then(|| f.clone())
                })
            })
        })
    }
}

fn config_get(redis: &Redis, key: &str) -> Option<String> {
    match redis.query(&["CONFIG", "GET", key]).ok()? {
        redis::Value::Array(items) => redis::from_redis_value(items.get(1)?.clone()).ok(),
        _ => None,
    }
}

/// A redis-py writer running on one host.
struct Writer {
    name: &'static str,
    child: Option<Child>,
    out: PathBuf,
}

/// One acknowledged write.
#[derive(Clone, Debug)]
struct Ack {
    key: String,
    sent_ms: u64,
    acked_ms: u64,
    server: String,
}

impl Writer {
    fn start(hosts: &Hosts, host: usize, name: &'static str, dir: &Path) -> Self {
        let out = dir.join(format!("{name}.acks"));
        let child = Command::new("ip")
            .args(["netns", "exec", &hosts.net.nodes[host].0, "python3", WRITER, name])
            .arg(hosts.sentinels(host))
            .args(["session", "10"])
            .arg(&out)
            .arg(dir.join("stop"))
            .stdout(Stdio::null())
            .spawn()
            .expect("python3 runs");
        Self { name, child: Some(child), out }
    }

    /// Waits for the writer to finish (after the stop file appeared) and reads its records.
    fn finish(mut self) -> Vec<Ack> {
        let mut child = self.child.take().expect("running");
        let status = child.wait().expect("writer exits");
        assert!(status.success(), "writer {} failed: {status}", self.name);
        fs::read_to_string(&self.out)
            .expect("the writer's records")
            .lines()
            .filter(|l| !l.is_empty())
            .map(|line| {
                let parts: Vec<&str> = line.split(' ').collect();
                Ack {
                    key: parts[0].to_owned(),
                    sent_ms: parts[1].parse().unwrap(),
                    acked_ms: parts[2].parse().unwrap(),
                    server: parts[3].to_owned(),
                }
            })
            .collect()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Both writers (on the first host and on the master's host), once they are writing.
fn start_writers(hosts: &Hosts, dir: &Path) -> [Writer; 2] {
    let writers = [Writer::start(hosts, 0, "a", dir), Writer::start(hosts, 2, "b", dir)];
    wait_for("both writers writing", LONG, || {
        let Ok(redis::Value::Array(keys)) = hosts.group.master.query(&["KEYS", "*"]) else {
            return false;
        };
        let names: BTreeSet<String> = keys
            .iter()
            .filter_map(|k| redis::from_redis_value::<String>(k.clone()).ok())
            .filter_map(|k| k.split(':').next().map(str::to_owned))
            .collect();
        names.contains("a") && names.contains("b") && keys.len() >= 100
    });
    writers
}

/// Stops the writers and returns every write acknowledged, by writer.
fn stop_writers(writers: [Writer; 2], dir: &Path) -> BTreeMap<&'static str, Vec<Ack>> {
    fs::write(dir.join("stop"), b"").unwrap();
    writers.into_iter().map(|w| (w.name, w.finish())).collect()
}

/// The keys the final master holds.
fn keys_on(redis: &Redis) -> BTreeSet<String> {
    let keys = wait_until("the final master's keys", LONG, || match redis.query(&["KEYS", "*"]) {
        Ok(redis::Value::Array(keys)) => Some(keys),
        _ => None,
    });
    keys.into_iter().filter_map(|k| redis::from_redis_value(k).ok()).collect()
}

/// The longest time between two acknowledgements of one writer.
fn longest_gap(acks: &[Ack]) -> u64 {
    acks.windows(2).map(|w| w[1].acked_ms.saturating_sub(w[0].acked_ms)).max().unwrap_or(0)
}

/// The acknowledged writes missing from the final master, with a summary printed per writer.
fn lost_writes<'a>(
    acks: &'a BTreeMap<&'static str, Vec<Ack>>,
    keys: &BTreeSet<String>,
) -> Vec<&'a Ack> {
    let mut lost = Vec::new();
    for (name, acks) in acks {
        let missing: Vec<&Ack> = acks.iter().filter(|a| !keys.contains(&a.key)).collect();
        println!(
            "writer {name}: {} acknowledged, {} lost, longest gap between acknowledgements {} ms",
            acks.len(),
            missing.len(),
            longest_gap(acks)
        );
        assert!(!acks.is_empty(), "writer {name} wrote nothing");
        lost.extend(missing);
    }
    lost
}

/// Cuts the master's host (its picket, its Redis and writer b) off for [`PARTITION`], heals,
/// and waits until the old master follows the new one. Returns the partition's start (Unix ms)
/// and the new master.
fn partition_the_master(hosts: &Hosts) -> (u64, String) {
    let cut_at = unix_ms();
    hosts.net.isolate(2);
    let new = hosts.wait_for_new_master();
    std::thread::sleep(PARTITION.saturating_sub(Duration::from_millis(unix_ms() - cut_at)));
    hosts.net.heal(2);
    wait_for("the old master follows the new one", LONG, || {
        hosts.group.master.master_of().as_deref() == Some(new.as_str())
    });
    // The writers find the new master again.
    std::thread::sleep(Duration::from_secs(2));
    (cut_at, new)
}

fn step_ms(failover: &Value, step: &str) -> u64 {
    let steps = failover["timeline"].as_array().expect("a timeline");
    let found = steps.iter().find(|s| s["step"] == step);
    found.and_then(|s| s["unix_ms"].as_u64()).unwrap_or_else(|| panic!("no {step}: {failover}"))
}

#[test]
fn bounded_fencing_loses_only_writes_sent_before_the_stated_fence_closed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(hosts) = Hosts::start("bounded") else { return };
    let dir = tempfile::tempdir().unwrap();
    let writers = start_writers(&hosts, dir.path());
    let (cut_at, new) = partition_the_master(&hosts);
    let acks = stop_writers(writers, dir.path());
    let keys = keys_on(hosts.group.at(&new).expect("the promoted replica"));
    let failover = hosts.leader_history();
    let promoted = step_ms(&failover, "promoted");
    let window = failover["fence_window"]["ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("bounded fencing states its window: {failover}"));
    let fence_closed = promoted + window;
    let lost = lost_writes(&acks, &keys);
    let last_lost = lost.iter().map(|a| a.sent_ms).max();
    println!(
        "bounded: partition at 0 ms, promotion at {} ms, stated fence window {window} ms \
         (closed at {} ms), bytes possibly lost {}, {} acknowledged writes lost, the last sent \
         at {} ms",
        promoted - cut_at,
        fence_closed - cut_at,
        failover["bytes_possibly_lost"],
        lost.len(),
        last_lost.map_or_else(|| "-".to_owned(), |t| (t - cut_at).to_string()),
    );
    let late: Vec<&&Ack> = lost.iter().filter(|a| a.sent_ms > fence_closed).collect();
    assert!(late.is_empty(), "lost writes sent after the fence closed: {late:?}");
    // The writes the old master acknowledged during the partition all were sent before the fence
    // closed, lost or not.
    let old = hosts.group.master.addr();
    let after = acks.values().flatten().filter(|a| a.server == old && a.sent_ms > fence_closed);
    assert_eq!(after.count(), 0, "the old master acknowledged writes after its fence closed");
}

#[test]
fn strict_fencing_never_has_two_masters_acknowledging_writes() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(hosts) = Hosts::start("strict") else { return };
    let dir = tempfile::tempdir().unwrap();
    let writers = start_writers(&hosts, dir.path());
    let (cut_at, new) = partition_the_master(&hosts);
    let acks = stop_writers(writers, dir.path());
    let keys = keys_on(hosts.group.at(&new).expect("the promoted replica"));
    let lost = lost_writes(&acks, &keys);
    let old = hosts.group.master.addr();
    let all = || acks.values().flatten();
    // The old master accepted each of its writes after it was sent, and the new master each of
    // its writes before its acknowledgement came back: the old master's last write came before
    // the new master's first if its sending precedes that acknowledgement.
    let old_last_sent = all().filter(|a| a.server == old).map(|a| a.sent_ms).max().unwrap();
    let new_first_acked = all().filter(|a| a.server == new).map(|a| a.acked_ms).min().unwrap();
    let failover = hosts.leader_history();
    println!(
        "strict: partition at 0 ms, promotion at {} ms, the old master's last write sent at {} \
         ms, the new master's first acknowledged at {} ms, bytes possibly lost {}, {} \
         acknowledged writes lost",
        step_ms(&failover, "promoted") - cut_at,
        old_last_sent - cut_at,
        new_first_acked - cut_at,
        failover["bytes_possibly_lost"],
        lost.len(),
    );
    assert!(
        old_last_sent < new_first_acked,
        "two masters acknowledged writes at once: the old one's last was sent at {old_last_sent}, \
         the new one's first acknowledged at {new_first_acked}"
    );
}

/// `POST` to picket `i`'s HTTP API with the admin token.
fn admin_post(hosts: &Hosts, i: usize, path: &str, body: &str) -> http::Response {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    http::post(&hosts.pickets[i].spec.http_addr(), path, &headers, body.as_bytes())
}

/// Whether picket `i` reports the master paused (maintenance mode).
fn paused_on(hosts: &Hosts, i: usize) -> bool {
    let body = http::get(&hosts.pickets[i].spec.http_addr(), "/v1/masters/session").json();
    body["maintenance"]["paused"] == true
}

#[test]
fn a_planned_switchover_loses_no_acknowledged_write() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(hosts) = Hosts::start("bounded") else { return };
    // Maintenance mode, set on one node, reaches every node; operators' switchovers go on.
    let paused = admin_post(&hosts, 1, "/v1/pause", r#"{"reason": "maintenance window"}"#);
    assert_eq!((paused.status, paused.json()["paused"].clone()), (200, Value::Bool(true)));
    wait_for("every node paused", LONG, || (0..3).all(|i| paused_on(&hosts, i)));
    // A schedule is checked, shown and cancelled.
    let past = admin_post(
        &hosts,
        0,
        "/v1/masters/session/switchover",
        r#"{"at": "2020-01-01T00:00:00Z"}"#,
    );
    assert_eq!((past.status, past.error_code().as_str()), (400, "bad_time"));
    let later = r#"{"at": "2099-01-01T00:00:00Z"}"#;
    let far = admin_post(&hosts, 0, "/v1/masters/session/switchover", later);
    assert_eq!((far.status, far.error_code().as_str()), (400, "bad_time"), "beyond seven days");
    let soon = unix_ms() / 1000 + 3600;
    let at = format!(r#"{{"at": "{}"}}"#, rfc3339(soon));
    let scheduled = admin_post(&hosts, 0, "/v1/masters/session/switchover", &at);
    assert_eq!(scheduled.status, 202, "{}", scheduled.text());
    let shown = http::get(&hosts.pickets[0].spec.http_addr(), "/v1/masters/session").json();
    assert_eq!(shown["scheduled_switchover"]["at_unix_ms"], soon * 1000, "{shown}");
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let cancel = http::request(
        &hosts.pickets[0].spec.http_addr(),
        "DELETE",
        "/v1/masters/session/switchover",
        &[("Authorization", &auth)],
        b"",
    )
    .unwrap();
    assert_eq!(cancel.status, 200, "{}", cancel.text());

    let dir = tempfile::tempdir().unwrap();
    let writers = start_writers(&hosts, dir.path());
    let answer = admin_post(&hosts, 0, "/v1/masters/session/switchover", r#"{"reason": "test"}"#);
    assert_eq!(answer.status, 202, "{}", answer.text());
    let new = hosts.wait_for_new_master();
    wait_for("the old master follows the new one", LONG, || {
        hosts.group.master.master_of().as_deref() == Some(new.as_str())
    });
    std::thread::sleep(Duration::from_secs(2));
    let acks = stop_writers(writers, dir.path());
    let keys = keys_on(hosts.group.at(&new).expect("the promoted replica"));
    let lost = lost_writes(&acks, &keys);
    let failover = hosts.leader_history();
    println!(
        "switchover: {} acknowledged writes lost, bytes possibly lost {}, catch-up at {} ms, \
         promotion at {} ms after the start",
        lost.len(),
        failover["bytes_possibly_lost"],
        step_ms(&failover, "catch_up") - step_ms(&failover, "started"),
        step_ms(&failover, "promoted") - step_ms(&failover, "started"),
    );
    assert!(lost.is_empty(), "a switchover lost acknowledged writes: {lost:?}");
    assert_eq!(failover["switchover"], true, "{failover}");
    assert_eq!(failover["bytes_possibly_lost"], 0, "{failover}");
    let resumed = admin_post(&hosts, 2, "/v1/masters/session/resume", "");
    assert_eq!(resumed.status, 200, "{}", resumed.text());
    wait_for("every node resumed", LONG, || (0..3).all(|i| !paused_on(&hosts, i)));
    assert!(hosts.pickets[0].saw("-maintenance master session"));
}

/// `secs` (Unix seconds) as an RFC 3339 time.
fn rfc3339(secs: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap()).unwrap();
    at.format(&time::format_description::well_known::Rfc3339).unwrap()
}
