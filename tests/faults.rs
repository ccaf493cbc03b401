//! Real faults on real processes: flapping masters, a picket restarted with an older state file,
//! and a master cut off from its replicas and from two of the pickets (network namespaces).
//! Each test checks the safety invariants from outside (HTTP API and the published events) and
//! that the cluster converges once the fault heals.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use support::http::{get, request};
use support::netns::Net;
use support::{
    Cluster, ClusterOptions, Group, Picket, Redis, config_text, free_port, wait_for, wait_until,
};

const LONG: Duration = Duration::from_secs(90);

/// A node's view of `master`: its address and config epoch, from the HTTP API (`None` while the
/// node does not answer, e.g. just restarted).
fn view(picket: &Picket, master: &str) -> Option<(String, u64)> {
    let path = format!("/v1/masters/{master}");
    let body = request(&picket.spec.http_addr(), "GET", &path, &[], b"").ok()?.json();
    Some((body["address"].as_str()?.to_owned(), body["config_epoch"].as_u64()?))
}

fn node_id(picket: &Picket) -> String {
    let body = get(&picket.spec.http_addr(), "/v1/masters").json();
    body["node"]["id"].as_str().expect("node id").to_owned()
}

/// Every (epoch, node) that won an election for `master`, from the events each node published:
/// a node's candidacy epoch is its vote for itself right after `+try-failover`.
fn leaders(pickets: &[Picket], master: &str, ids: &[String]) -> Vec<(u64, usize)> {
    let mut won = Vec::new();
    for (node, picket) in pickets.iter().enumerate() {
        let mut candidacy = None;
        let mut trying = false;
        for event in picket.events() {
            if event.starts_with(&format!("+try-failover master {master} ")) {
                trying = true;
            } else if let Some(rest) = event.strip_prefix("+vote-for-leader ") {
                let mut parts = rest.split(' ');
                let (who, epoch) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if trying && who == ids[node] {
                    candidacy = epoch.parse().ok();
                }
                trying = false;
            } else if event.starts_with(&format!("+elected-leader master {master} ")) {
                won.extend(candidacy.map(|epoch| (epoch, node)));
            }
        }
    }
    won
}

/// No two nodes won the same epoch.
fn one_leader_per_epoch(pickets: &[Picket], master: &str, ids: &[String]) {
    let mut by_epoch: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (epoch, node) in leaders(pickets, master, ids) {
        by_epoch.entry(epoch).or_default().push(node);
    }
    for (epoch, nodes) in &by_epoch {
        assert_eq!(nodes.len(), 1, "epoch {epoch} has leaders {nodes:?}");
    }
}

/// Waits until every node names the same master with the same epoch, exactly one instance is a
/// master, and every other instance follows it with its link up; returns the master.
fn converged(pickets: &[Picket], group: &Group) -> String {
    wait_until("the cluster to converge", LONG, || {
        let views: Vec<_> = pickets.iter().map(|p| view(p, &group.name)).collect();
        let first = views.first()?.clone()?;
        if !views.iter().all(|v| v.as_ref() == Some(&first)) {
            return None;
        }
        let masters: Vec<&Redis> =
            group.all().filter(|r| r.role().as_deref() == Some("master")).collect();
        if masters.len() != 1 || masters[0].addr() != first.0 {
            return None;
        }
        let following = group.all().filter(|r| r.addr() != first.0).all(|r| {
            r.master_of().as_deref() == Some(first.0.as_str())
                && matches!(r.query(&["INFO", "replication"]), Ok(redis::Value::BulkString(ref b))
                    if String::from_utf8_lossy(b).contains("master_link_status:up"))
        });
        following.then_some(first.0)
    })
}

fn ready(pickets: &[Picket], replicas: usize) {
    wait_for("pickets ready", LONG, || {
        pickets.iter().all(|p| p.count("+slave ") >= replicas && p.count("+sentinel ") >= 2)
    });
}

#[test]
fn a_flapping_master_never_gets_two_leaders_and_the_cluster_converges() {
    let mut cluster =
        Cluster::start(3, vec![Group::start("session", 2, None)], &ClusterOptions::default());
    ready(&cluster.pickets, 2);
    let ids: Vec<String> = cluster.pickets.iter().map(node_id).collect();
    // Hangs around the 1 s threshold: short ones must not fail over, long ones may.
    for (hang_ms, up_ms) in
        [(500, 300), (700, 200), (900, 300), (1300, 400), (600, 200), (1500, 500), (800, 300)]
    {
        let group = cluster.group("session");
        let master_now =
            group.all().find(|r| r.role().as_deref() == Some("master")).map(Redis::addr);
        if let Some(addr) = master_now {
            let redis = group.at(&addr).expect("instance");
            redis.pause();
            std::thread::sleep(Duration::from_millis(hang_ms));
            redis.resume();
        }
        std::thread::sleep(Duration::from_millis(up_ms));
    }
    let master = converged(&cluster.pickets, cluster.group("session"));
    one_leader_per_epoch(&cluster.pickets, "session", &ids);
    // Writes go to the agreed master.
    let group = cluster.group_mut("session");
    assert!(group.at(&master).unwrap().query(&["SET", "after-flapping", "1"]).is_ok());
}

#[test]
fn a_picket_restarted_with_an_older_state_file_does_not_undo_the_failover() {
    let mut cluster =
        Cluster::start(3, vec![Group::start("session", 2, None)], &ClusterOptions::default());
    ready(&cluster.pickets, 2);
    let ids: Vec<String> = cluster.pickets.iter().map(node_id).collect();
    let state = cluster.pickets[2].dir().join("state/state.toml");
    wait_for("state written", LONG, || {
        fs::read_to_string(&state).is_ok_and(|s| s.contains("replicas = [\""))
    });
    let old_state = fs::read_to_string(&state).unwrap();
    let old = cluster.group("session").master.addr();
    cluster.group_mut("session").master.kill();
    let new = wait_until("failover", LONG, || {
        let v = view(&cluster.pickets[0], "session")?;
        (v.0 != old && v.1 >= 1).then_some(v)
    });
    wait_for("node 2 agrees", LONG, || view(&cluster.pickets[2], "session") == Some(new.clone()));
    // Node 2 comes back with its state from before the failover: epoch 0, the old master.
    cluster.pickets[2].kill();
    fs::write(&state, &old_state).unwrap();
    cluster.pickets[2].restart();
    wait_for("node 2 re-learns the configuration", LONG, || {
        view(&cluster.pickets[2], "session") == Some(new.clone())
    });
    // The old master comes back too: it is demoted, not failed back to.
    cluster.group_mut("session").master.restart();
    let master = converged(&cluster.pickets, cluster.group("session"));
    assert_eq!(master, new.0);
    one_leader_per_epoch(&cluster.pickets, "session", &ids);
    for picket in &cluster.pickets {
        assert_eq!(view(picket, "session"), Some(new.clone()));
    }
}

#[test]
fn a_master_cut_off_from_its_replicas_and_two_pickets_is_replaced() {
    let Some(mut net) = Net::create(3) else { return };
    let host = net.add_host();
    let (master_ns, master_ip) = net.hosts[host].clone();
    let master = Redis::start_in(Some(&master_ns), &master_ip, free_port(), None, None);
    let replicas: Vec<Redis> =
        (0..2).map(|_| Redis::start(&net.host_ip, free_port(), None, Some(&master))).collect();
    let group = Group::from_parts("session", master, replicas);
    let specs = net.specs();
    let options = ClusterOptions::default();
    let pickets: Vec<Picket> = specs
        .iter()
        .zip(&net.nodes)
        .map(|(spec, (ns, _))| {
            Picket::start_in(ns, spec.clone(), |state| {
                config_text(spec, &specs, &[&group], state, &options)
            })
        })
        .collect();
    ready(&pickets, 2);
    let ids: Vec<String> = pickets.iter().map(node_id).collect();
    let old = group.master.addr();
    // The master loses its replicas (in the root namespace) and pickets 0 and 1; picket 2 still
    // reaches it and so refuses to vote.
    net.cut_host_from(host, &net.host_ip);
    net.cut_host_from(host, &net.nodes[0].1);
    net.cut_host_from(host, &net.nodes[1].1);
    let new = wait_until("the majority replaces the master", LONG, || {
        let v = view(&pickets[0], "session")?;
        (v.0 != old && v.1 >= 1).then_some(v)
    });
    wait_for("picket 2 adopts the new master", LONG, || {
        view(&pickets[2], "session") == Some(new.clone())
    });
    net.heal_all();
    let master = converged(&pickets, &group);
    assert_eq!(master, new.0);
    one_leader_per_epoch(&pickets, "session", &ids);
}

/// Arms `point` (`crash-after-election` or `crash-after-promotion`) on every node, kills the
/// master, and restarts each node that crashes at the failpoint (restarted nodes are disarmed)
/// until the cluster has failed over. Returns how many nodes crashed.
fn failover_through_crashing_leaders(point: &str) -> usize {
    let mut cluster =
        Cluster::start(3, vec![Group::start("session", 2, None)], &ClusterOptions::default());
    ready(&cluster.pickets, 2);
    let ids: Vec<String> = cluster.pickets.iter().map(node_id).collect();
    for picket in &cluster.pickets {
        let client = redis::Client::open(format!("redis://{}", picket.spec.listen_addr())).unwrap();
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(5)).unwrap();
        let reply: String =
            redis::cmd("SENTINEL").arg("SIMULATE-FAILURE").arg(point).query(&mut conn).unwrap();
        assert_eq!(reply, "OK");
    }
    let old = cluster.group("session").master.addr();
    cluster.group_mut("session").master.kill();
    let mut crashes = 0;
    let master = wait_until("a failover despite crashing leaders", LONG, || {
        for picket in &mut cluster.pickets {
            if picket.exit_code() == Some(99) {
                crashes += 1;
                picket.restart();
            }
        }
        let views: Vec<_> = cluster.pickets.iter().map(|p| view(p, "session")).collect();
        let first = views.first()?.clone()?;
        (first.0 != old && views.iter().all(|v| v.as_ref() == Some(&first))).then_some(first.0)
    });
    // The old master comes back and must end up following the new one.
    cluster.group_mut("session").master.restart();
    let converged_master = converged(&cluster.pickets, cluster.group("session"));
    assert_eq!(master, converged_master);
    one_leader_per_epoch(&cluster.pickets, "session", &ids);
    crashes
}

#[test]
fn a_leader_that_dies_right_after_its_election_is_replaced_in_a_higher_epoch() {
    assert!(failover_through_crashing_leaders("crash-after-election") >= 1);
}

#[test]
fn a_leader_that_dies_right_after_promoting_a_replica_leaves_one_master() {
    assert!(failover_through_crashing_leaders("crash-after-promotion") >= 1);
}
