//! Automatic failover with three real pickets and real redis-server processes.

mod support;

use std::fs;
use std::time::Duration;

use support::{Cluster, ClusterOptions, Group, durable_master, wait_for};

const LONG: Duration = Duration::from_secs(60);

#[test]
fn a_killed_master_is_replaced_once_and_comes_back_as_a_replica() {
    let mut cluster =
        Cluster::start(3, vec![Group::start("session", 2, None)], &ClusterOptions::default());
    cluster.wait_ready();
    let old = cluster.group("session").master.addr();
    cluster.group_mut("session").master.kill();
    let new = cluster.check_one_clean_failover("session", &old);
    // The old master restarts as a master (its configuration says so) and is demoted.
    cluster.group_mut("session").master.restart();
    let g = cluster.group("session");
    wait_for("old master demoted", LONG, || g.master.master_of().as_deref() == Some(new.as_str()));
    assert!(cluster.pickets.iter().any(|p| p.saw("+convert-to-slave")));
}

#[test]
fn a_hung_master_is_replaced_and_demoted_when_it_resumes() {
    let cluster =
        Cluster::start(3, vec![Group::start("session", 2, None)], &ClusterOptions::default());
    cluster.wait_ready();
    let old = cluster.group("session").master.addr();
    cluster.group("session").master.pause();
    let new = cluster.check_one_clean_failover("session", &old);
    cluster.group("session").master.resume();
    let g = cluster.group("session");
    wait_for("old master demoted after SIGCONT", LONG, || {
        g.master.role().as_deref() == Some("slave")
            && g.master.master_of().as_deref() == Some(new.as_str())
    });
}

#[test]
fn no_failover_without_a_quorum_of_pickets() {
    let mut cluster =
        Cluster::start(3, vec![Group::start("session", 2, None)], &ClusterOptions::default());
    cluster.wait_ready();
    cluster.pickets[1].kill();
    cluster.pickets[2].kill();
    cluster.group_mut("session").master.kill();
    let lone = &cluster.pickets[0];
    wait_for("SDOWN seen", LONG, || lone.saw("+sdown master session"));
    // Give it far longer than a failover takes (about a second here).
    std::thread::sleep(Duration::from_secs(5));
    assert!(!lone.saw("+odown"), "one picket cannot reach quorum 2");
    assert!(!lone.saw("+try-failover"));
    for replica in &cluster.group("session").replicas {
        assert_eq!(replica.role().as_deref(), Some("slave"));
    }
}

#[test]
fn a_priority_zero_replica_is_never_promoted() {
    let group = Group::start("session", 2, None);
    let never = group.replicas[0].addr();
    group.replicas[0].query(&["CONFIG", "SET", "replica-priority", "0"]).unwrap();
    let mut cluster = Cluster::start(3, vec![group], &ClusterOptions::default());
    cluster.wait_ready();
    let old = cluster.group("session").master.addr();
    cluster.group_mut("session").master.kill();
    let new = cluster.check_one_clean_failover("session", &old);
    assert_ne!(new, never);
    assert_eq!(new, cluster.group("session").replicas[1].addr());
}

#[test]
fn three_masters_fail_over_independently() {
    let groups = vec![
        Group::start("session", 1, None),
        Group::start("cache", 1, None),
        Group::start("realtime", 1, None),
    ];
    let mut cluster = Cluster::start(3, groups, &ClusterOptions::default());
    cluster.wait_ready();
    let old_session = cluster.group("session").master.addr();
    let old_cache = cluster.group("cache").master.addr();
    cluster.group_mut("session").master.kill();
    cluster.group_mut("cache").master.kill();
    cluster.check_one_clean_failover("session", &old_session);
    cluster.check_one_clean_failover("cache", &old_cache);
    let realtime = cluster.group("realtime").master.addr();
    for picket in &cluster.pickets {
        assert_eq!(durable_master(picket, "realtime").map(|m| m.0), Some(realtime.clone()));
        assert!(!picket.saw("+sdown master realtime"));
    }
}

#[test]
fn a_restarted_picket_keeps_its_epoch_and_votes() {
    let mut cluster =
        Cluster::start(3, vec![Group::start("session", 2, None)], &ClusterOptions::default());
    cluster.wait_ready();
    let old = cluster.group("session").master.addr();
    cluster.group_mut("session").master.kill();
    let (_, epoch) = cluster.agreed_master("session");
    let before = fs::read_to_string(cluster.pickets[1].dir().join("state/state.toml")).unwrap();
    cluster.pickets[1].restart();
    wait_for("restarted", LONG, || cluster.pickets[1].count("+monitor") == 2);
    let after = fs::read_to_string(cluster.pickets[1].dir().join("state/state.toml")).unwrap();
    let field =
        |text: &str, key: &str| text.lines().find(|l| l.starts_with(key)).map(str::to_owned);
    assert_eq!(field(&before, "node_id"), field(&after, "node_id"));
    let epoch_line = field(&after, "current_epoch").unwrap();
    let current: u64 = epoch_line.split('=').nth(1).unwrap().trim().parse().unwrap();
    assert!(current >= epoch, "epoch went back: {current} < {epoch}");
    assert_ne!(durable_master(&cluster.pickets[1], "session").unwrap().0, old);
}
