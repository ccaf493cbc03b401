//! Monitoring real `redis-server` processes: replica discovery, subjective down and recovery of a
//! killed replica and a stopped master, and reboots. One picket with two configured peers that
//! never start, so nothing goes beyond SDOWN.

#![allow(clippy::disallowed_methods)] // measures real elapsed time around real processes

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::{ClusterOptions, Group, Picket, config_text, node_specs, wait_for};

const DOWN_AFTER: Duration = Duration::from_millis(1000);
/// A tenth of `down_after`: how often an instance is pinged while anything about it is in doubt.
const PING_PERIOD: Duration = Duration::from_millis(100);
/// `down_after` (at most 1 s): how often a settled instance is pinged, as by Sentinel.
const CALM_PING_PERIOD: Duration = Duration::from_millis(1000);
/// Scheduling delays of a loaded two-core CI machine (process wake-ups, this test's polling).
/// The engine itself fires exactly `down_after` + 1 ms after the last reply; the engine's unit
/// tests pin that to the millisecond.
const SLACK: Duration = Duration::from_millis(600);
const LONG: Duration = Duration::from_secs(30);

fn lone_picket(group: &Group) -> Picket {
    let specs = node_specs(3);
    // These tests time the silence rule (`down_after_ms`) on killed processes; the crash rule,
    // which would see their refused connections first, has its own tests (crash_detection.rs).
    let options =
        ClusterOptions { master_extra: "down_after_refused_ms = 0\n".into(), ..Default::default() };
    Picket::start(specs[0].clone(), |state| {
        config_text(&specs[0], &specs, &[group], state, &options)
    })
}

/// Waits for `event` and returns how long after `since` it was first seen.
fn seen_after(picket: &Picket, event: &str, since: Instant) -> Duration {
    wait_for(event, LONG, || picket.events().iter().any(|e| e == event));
    since.elapsed()
}

/// Whether `picket` has read the run id of the replica at `addr` (`SENTINEL REPLICAS`).
fn knows_run_id(picket: &Picket, addr: &str) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://{}/", picket.spec.listen_addr())) else {
        return false;
    };
    let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
        return false;
    };
    let replicas: Vec<BTreeMap<String, String>> =
        redis::cmd("SENTINEL").arg("REPLICAS").arg("session").query(&mut conn).unwrap_or_default();
    replicas.iter().any(|r| {
        r.get("name").map(String::as_str) == Some(addr)
            && r.get("runid").is_some_and(|id| !id.is_empty())
    })
}

fn monitors(password: Option<&str>) {
    let mut group = Group::start("session", 2, password);
    let picket = lone_picket(&group);
    let master = group.master.addr();
    let master_event = format!("master session 127.0.0.1 {}", group.master.port);
    for replica in &group.replicas {
        let event = format!(
            "+slave slave {0} 127.0.0.1 {1} @ session {master_subject}",
            replica.addr(),
            replica.port,
            master_subject = master.replace(':', " ")
        );
        wait_for(&event, LONG, || picket.events().contains(&event));
    }

    // A reboot is a new run id, so the replica's first INFO must be in before it is killed.
    let first = group.replicas[0].addr();
    wait_for("the replica's run id", LONG, || knows_run_id(&picket, &first));

    // A killed replica is subjectively down within down_after plus a ping period.
    let replica_subject = {
        let r = &group.replicas[0];
        format!("slave {} 127.0.0.1 {} @ session {}", r.addr(), r.port, master.replace(':', " "))
    };
    let killed = Instant::now();
    group.replicas[0].kill();
    let took = seen_after(&picket, &format!("+sdown {replica_subject}"), killed);
    assert!(took >= DOWN_AFTER - PING_PERIOD, "marked down early: {took:?}");
    assert!(took <= DOWN_AFTER + PING_PERIOD + SLACK, "marked down late: {took:?}");
    group.replicas[0].restart();
    wait_for("replica back", LONG, || picket.saw(&format!("-sdown {replica_subject}")));
    wait_for("replica reboot", LONG, || picket.saw(&format!("+reboot {replica_subject}")));

    // A stopped (hung) master is subjectively down within down_after plus the calm ping period
    // (its next PING may be up to that far off), and it recovers when it resumes.
    let stopped = Instant::now();
    group.master.pause();
    let took = seen_after(&picket, &format!("+sdown {master_event}"), stopped);
    group.master.resume();
    assert!(took >= DOWN_AFTER - PING_PERIOD, "marked down early: {took:?}");
    assert!(took <= DOWN_AFTER + CALM_PING_PERIOD + SLACK, "marked down late: {took:?}");
    wait_for("master back", LONG, || picket.saw(&format!("-sdown {master_event}")));
    assert!(!picket.saw("+odown"), "one node of three cannot reach quorum 2");

    // A master restarted quickly (under down_after) is a reboot, not an outage.
    group.master.restart();
    wait_for("master reboot", LONG, || picket.saw(&format!("+reboot {master_event}")));
}

#[test]
fn monitors_a_master_and_its_replicas() {
    monitors(None);
}

#[test]
fn monitors_instances_that_require_a_password() {
    monitors(Some("s3cret-pass"));
}

#[test]
fn a_wrong_password_makes_instances_subjectively_down() {
    let group = Group::start("cache", 0, Some("right"));
    let specs = node_specs(3);
    let options = ClusterOptions::default();
    let picket = Picket::start(specs[0].clone(), |state| {
        config_text(&specs[0], &specs, &[&group], state, &options)
            .replace("auth_pass = \"right\"", "auth_pass = \"wrong\"")
    });
    let event = format!("+sdown master cache 127.0.0.1 {}", group.master.port);
    wait_for(&event, LONG, || picket.saw(&event));
}
