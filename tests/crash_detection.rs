//! The crash rule against real processes: a SIGKILLed master (its port refuses connections) is
//! replaced long before `down_after_ms`, and a master that is slow, forking or stopped but alive
//! (its port stays open) is never failed over because of it, nor by the silence rule while it is
//! blocked for less than `down_after_ms`.
#![allow(clippy::disallowed_methods)] // times a failover of real processes in real time

mod support;

use std::time::{Duration, Instant};

use support::{Cluster, ClusterOptions, Group, wait_for};

#[test]
fn a_killed_master_is_replaced_well_before_down_after() {
    let options = ClusterOptions { down_after_ms: 5000, ..ClusterOptions::default() };
    let mut cluster = Cluster::start(3, vec![Group::start("session", 2, None)], &options);
    cluster.wait_ready();
    let old = cluster.group("session").master.addr();
    cluster.group_mut("session").master.kill();
    let killed = Instant::now();
    let g = cluster.group("session");
    // A generous bound below down_after_ms (the README's bound is 300 ms + 50 ms + election),
    // so that only the crash rule can meet it.
    let bound = Duration::from_secs(4);
    wait_for("a replica to accept writes as the new master", bound, || {
        g.replicas
            .iter()
            .any(|r| r.role().as_deref() == Some("master") && r.query(&["SET", "k", "v"]).is_ok())
    });
    println!("SIGKILL -> SET ok on the new master: {:?} (down_after_ms 5000)", killed.elapsed());
    cluster.check_one_clean_failover("session", &old);
}

#[test]
fn a_slow_or_stopped_master_is_never_failed_over_by_the_crash_rule() {
    // down_after_ms 1000 and blocks of 0.9 s: silence counts from the oldest PING left
    // unanswered, so a block shorter than down_after_ms is never down, wherever in the ping
    // period it begins (counted from the last reply instead, about one run in three of this
    // test saw +sdown: the idle tail of the ping period before the block counted as silence).
    let options = ClusterOptions { down_after_ms: 1000, ..ClusterOptions::default() };
    let cluster = Cluster::start(3, vec![Group::start("session", 2, None)], &options);
    cluster.wait_ready();
    let master = &cluster.group("session").master;
    // Busy for 0.9 s at a time: replies are late, connections still open. The pauses between
    // blocks vary so that blocks begin at different points of the pickets' ping periods.
    for gap_ms in [300, 330, 370, 410, 450, 290, 310, 350] {
        master.query(&["DEBUG", "SLEEP", "0.9"]).expect("DEBUG SLEEP");
        std::thread::sleep(Duration::from_millis(gap_ms));
    }
    // Stopped for 700 ms, more than twice the crash rule's 300 ms: the port stays open.
    for _ in 0..3 {
        master.pause();
        std::thread::sleep(Duration::from_millis(700));
        master.resume();
        std::thread::sleep(Duration::from_millis(300));
    }
    // Long enough for a failover started by any of that to show (one takes about a second).
    std::thread::sleep(Duration::from_secs(3));
    for picket in &cluster.pickets {
        assert!(!picket.saw("+sdown master"), "{}", picket.log());
        assert!(!picket.saw("+try-failover"), "{}", picket.log());
    }
    assert_eq!(master.role().as_deref(), Some("master"));
    wait_for("the master to keep its replicas", Duration::from_secs(10), || {
        cluster.group("session").replicas.iter().all(|r| r.master_of() == Some(master.addr()))
    });
}

/// Keys written into the forking master, in batches small enough that each `DEBUG POPULATE`
/// answers within the test client's timeout: about 250 MB of data, so that every `BGSAVE`
/// forks a large process (the parent is blocked while its page tables are copied).
const FORK_KEYS: u32 = 2_000_000;
const FORK_BATCH: u32 = 250_000;

#[test]
fn a_master_forking_a_large_dataset_is_never_failed_over() {
    let group = Group::start("session", 1, None);
    // Filled before any picket watches it: the fill itself blocks the master.
    for batch in 0..FORK_KEYS / FORK_BATCH {
        let prefix = format!("k{batch}");
        let count = FORK_BATCH.to_string();
        group.master.query(&["DEBUG", "POPULATE", &count, &prefix, "100"]).expect("DEBUG POPULATE");
    }
    let options = ClusterOptions { down_after_ms: 1000, ..ClusterOptions::default() };
    let cluster = Cluster::start(3, vec![group], &options);
    cluster.wait_ready();
    let master = &cluster.group("session").master;
    let mut forks_us = Vec::new();
    for _ in 0..4 {
        master.query(&["BGSAVE"]).expect("BGSAVE");
        wait_for("the BGSAVE to finish", Duration::from_secs(60), || {
            info_field(master, "persistence", "rdb_bgsave_in_progress").as_deref() == Some("0")
        });
        forks_us.push(info_field(master, "stats", "latest_fork_usec").unwrap_or_default());
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("fork times of {FORK_KEYS} keys (us): {forks_us:?}");
    std::thread::sleep(Duration::from_secs(3));
    for picket in &cluster.pickets {
        assert!(!picket.saw("+sdown master"), "{}", picket.log());
        assert!(!picket.saw("+try-failover"), "{}", picket.log());
    }
    assert_eq!(master.role().as_deref(), Some("master"));
}

/// The value of `field` in the `section` of the instance's `INFO`.
fn info_field(redis: &support::Redis, section: &str, field: &str) -> Option<String> {
    let info: String = redis::from_redis_value(redis.query(&["INFO", section]).ok()?).ok()?;
    info.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':')).map(str::to_owned)
}
