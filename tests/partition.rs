//! Real network partitions between pickets and Redis, with network namespaces: each picket in
//! its own namespace, partitions as packet-filter rules inside it.

mod support;

use std::time::Duration;

use support::netns::Net;
use support::{ClusterOptions, Group, Picket, durable_master, wait_for, wait_until};

const LONG: Duration = Duration::from_secs(60);

fn ready(pickets: &[Picket], replicas: usize) {
    wait_for("pickets ready", LONG, || {
        pickets.iter().all(|p| p.count("+slave ") >= replicas && p.count("+sentinel ") >= 2)
    });
}

#[test]
fn an_isolated_picket_never_starts_a_failover_it_cannot_win() {
    let Some(net) = Net::create(3) else { return };
    let group = Group::start_on(&net.host_ip, "session", 2, None);
    // Quorum 1: the isolated node reaches ODOWN on its own word; only the majority rule stops it.
    let options = ClusterOptions { quorum: 1, ..ClusterOptions::default() };
    let pickets = net.start_pickets(&[&group], &options);
    ready(&pickets, 2);
    net.isolate(2);
    let lone = &pickets[2];
    wait_for("isolated node sees the master down", LONG, || lone.saw("+odown master session"));
    wait_for("isolated node sees its peers down", LONG, || lone.count("+sdown sentinel") >= 2);
    std::thread::sleep(Duration::from_secs(5));
    assert!(!lone.saw("+try-failover") && !lone.saw("+new-epoch"), "{:?}", lone.events());
    net.heal(2);
    wait_for("back", LONG, || lone.saw("-odown master session"));
    for picket in &pickets {
        assert!(!picket.saw("+try-failover"), "nobody fails over a healthy master");
        assert_eq!(durable_master(picket, "session").map(|m| m.1), Some(0));
    }
    assert_eq!(group.master.role().as_deref(), Some("master"));
}

#[test]
fn the_majority_fails_over_a_master_it_cannot_reach() {
    let Some(net) = Net::create(3) else { return };
    let group = Group::start_on(&net.host_ip, "session", 2, None);
    let pickets = net.start_pickets(&[&group], &ClusterOptions::default());
    ready(&pickets, 2);
    let old = group.master.addr();
    // Pickets 0 and 1 lose the master; picket 2 still reaches it (and so refuses to vote).
    net.cut_redis(0, group.master.port);
    net.cut_redis(1, group.master.port);
    let (new, epoch) = wait_until("the majority elects and promotes", LONG, || {
        let m = durable_master(&pickets[0], "session")?;
        (m.1 > 0).then_some(m)
    });
    assert_ne!(new, old);
    let leaders: usize = pickets.iter().map(|p| p.count("+elected-leader")).sum();
    assert_eq!(leaders, 1);
    assert!(
        !pickets[2].saw("+vote-for-leader")
            || pickets[2].events().iter().all(|e| !e.starts_with("+vote-for-leader"))
    );
    // The node that still reaches the old master adopts the new configuration and demotes it.
    wait_for("picket 2 adopts", LONG, || {
        durable_master(&pickets[2], "session") == Some((new.clone(), epoch))
    });
    wait_for("old master demoted", LONG, || {
        group.master.master_of().as_deref() == Some(new.as_str())
    });
    net.heal_all();
    for picket in &pickets {
        wait_for("all agree", LONG, || {
            durable_master(picket, "session") == Some((new.clone(), epoch))
        });
    }
    let promoted = group.at(&new).unwrap();
    assert_eq!(promoted.role().as_deref(), Some("master"));
}

#[test]
fn a_node_hears_its_peers_again_soon_after_a_long_partition_heals() {
    let Some(net) = Net::create(3) else { return };
    let group = Group::start_on(&net.host_ip, "session", 1, None);
    let pickets = net.start_pickets(&[&group], &ClusterOptions::default());
    ready(&pickets, 1);
    net.isolate(2);
    wait_for("peers marked down", LONG, || pickets[2].count("+sdown sentinel") >= 2);
    // Long enough for TCP's retransmission timer to back off past ten seconds.
    std::thread::sleep(Duration::from_secs(12));
    net.heal(2);
    // Gossip connections give up on unacknowledged data after 3 s and reconnect at once, so the
    // node is back in touch within seconds (a generous bound: TCP's own backoff would exceed it).
    wait_for("peers heard again", Duration::from_secs(10), || {
        pickets[2].count("-sdown sentinel") >= 2
    });
}
