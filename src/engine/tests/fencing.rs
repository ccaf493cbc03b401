//! Strict fencing's hold: the master is never writable while another instance may be.

use super::harness::{
    Fake, Harness, PEERS, addr, from_peer, full_state, known_group_node, known_node, render,
    report, settings, vote_for, vote_request,
};
use crate::engine::addr::Addr;
use crate::engine::durable::DurableState;
use crate::engine::fence::{Fencing, Lease};
use crate::engine::ids::Ticket;
use crate::engine::io::{AdminCommand, Input};
use crate::engine::settings::Settings;
use std::collections::BTreeMap;
use std::time::Duration;

/// A node alone (quorum 1) watching the standard group in strict mode.
fn strict() -> Settings {
    let mut settings = settings(&[], 1);
    settings.masters[0].fencing = Fencing::Strict;
    settings
}

/// A node beside the two fake peers (quorum 2) fencing the standard group's `redis` in
/// `fencing` mode, restored from `state` (`None`: it starts without one).
fn fenced_beside_peers(
    fencing: Fencing,
    state: Option<DurableState>,
    redis: BTreeMap<Addr, Fake>,
) -> Harness {
    let mut settings = settings(PEERS, 2);
    settings.masters[0].fencing = fencing;
    Harness::new(settings, state, redis)
}

/// An operator's `SENTINEL FAILOVER mymaster` (a switchover while the master is reachable).
fn request_failover(h: &mut Harness) {
    h.handle(Input::Admin {
        ticket: Ticket(1),
        command: AdminCommand::Failover { master: "mymaster".into() },
    });
}

/// The standard group, where 6381 comes back from a restart at 1 s as a master of its own that
/// ignores `REPLICAOF` (an old master that does not take its demotion).
fn with_stale_master() -> Harness {
    let mut h = Harness::new(strict(), None, Harness::group());
    h.advance_to(1_000);
    h.restart("127.0.0.1:6381", "stale", None);
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().ignores_replicaof = true;
    h.take();
    h
}

/// [`with_stale_master`], where the stale master refuses `CONFIG` too: it cannot be locked,
/// only paused.
fn with_unlockable_stale_master() -> Harness {
    let mut h = with_stale_master();
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().refuses_config = true;
    h
}

#[test]
fn the_master_is_held_paused_while_a_stale_master_may_accept_writes() {
    let mut h = with_unlockable_stale_master();
    // Its next INFO shows it a master: it is paused, and until that pause is acknowledged it
    // may accept writes, so the master is paused too (for two seconds).
    h.advance_to(10_000);
    assert_eq!(h.pauses(), ["6381 PauseWrites { pause: 10s }", "6379 PauseWrites { pause: 2s }"]);
    // Cut off at 14 s: its renewal at 15 s is not acknowledged, so its pause surely lasts until
    // 20 s only.
    h.advance_to(14_000);
    h.hang("127.0.0.1:6381");
    h.advance_to(18_999);
    assert_eq!(h.pauses(), ["6381 PauseWrites { pause: 10s }"]);
    // A second before it may accept writes again the master is paused, with short pauses
    // renewed at half their length (never lifted with `CLIENT UNPAUSE`). The stale master's
    // link is closed (it stopped answering): nothing reaches it.
    h.advance_to(21_000);
    assert_eq!(
        h.pauses(),
        [
            "6379 PauseWrites { pause: 2s }",
            "6379 PauseWrites { pause: 2s }",
            "6379 PauseWrites { pause: 2s }",
        ]
    );
    // Back at 21.5 s: the renewals it now answers last until 30 s, so the hold ends; the
    // master's last pause runs out by itself.
    // Behind the pauses the master is locked: it would refuse writes if they stopped.
    assert!(h.redis[&addr("127.0.0.1:6379")].lease.is_lock());
    h.advance_to(21_500);
    h.resume("127.0.0.1:6381");
    h.advance_to(29_000);
    assert_eq!(h.pauses(), ["6381 PauseWrites { pause: 10s }", "6381 PauseWrites { pause: 10s }"]);
    // The lock stays: those pauses run out unless renewed, and a node in TILT, stalled or cut
    // off renews nothing (simulator seed 9343644 lifted it on a 9 s pause, then the node
    // entered TILT and the pause ran out beside the writable master).
    assert!(h.redis[&addr("127.0.0.1:6379")].lease.is_lock());
}

#[test]
fn a_stale_master_is_locked_behind_its_pause_and_the_master_lock_lifted_on_that() {
    let mut h = with_stale_master();
    // Its next INFO shows it a master: paused, and locked, which needs no renewal.
    h.advance_to(10_000);
    assert!(h.redis[&addr("127.0.0.1:6381")].lease.is_lock());
    // The master, held for a moment until the lock was read back, is writable again (a grace
    // after it was locked).
    h.advance_to(12_000);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
    // Cut off: nothing renews its pause, but it stays locked, so the master is held no more.
    h.hang("127.0.0.1:6381");
    h.take();
    h.advance_to(40_000);
    let pauses = h.pauses();
    assert!(!pauses.iter().any(|p| p.starts_with("6379")), "{pauses:?}");
    // (Its lease counts one replica now: the stale instance is down.)
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(1));
}

#[test]
fn a_dead_old_master_holds_the_new_master_only_until_its_lease_lapses() {
    let mut redis = Harness::group();
    for fake in redis.values_mut() {
        fake.lease = Lease::majority_of(2);
    }
    let mut h = Harness::new(strict(), None, redis);
    h.advance_to(2_000);
    h.take();
    // Killed: nothing pauses it, its replicas lose their link, and the failover waits for its
    // lease (two replicas) to lapse before the new master takes writes.
    h.kill("127.0.0.1:6379");
    while h.sup.view().masters[0].failover.as_ref().is_none_or(|f| f.state != "wait_fence") {
        assert!(h.now.as_millis() < 20_000, "no wait");
        h.advance(10);
    }
    // Meanwhile the new master is locked, not only paused: were the promotion's transaction
    // late, or the pause to lapse, it would still refuse writes.
    assert!(h.redis[&addr("127.0.0.1:6380")].lease.is_lock());
    h.advance_to(30_000);
    let pauses = h.pauses();
    assert_eq!(
        pauses.first().map(String::as_str),
        Some(
            "6380 Promote { lease: Some(Lease { min_replicas: 1000000, max_lag_s: 1 }), writes: Paused(5s) }"
        ),
        "{pauses:?}"
    );
    assert_eq!(pauses.last().map(String::as_str), Some("6380 UnpauseWrites"), "{pauses:?}");
    // Released with the lock lifted to the lease of its one follower (the old master aside).
    assert_eq!(h.redis[&addr("127.0.0.1:6380")].lease, Lease::majority_of(1));
    // It stays dead: its lease has lapsed, so nothing holds the new master any more.
    h.advance_to(60_000);
    assert_eq!(h.pauses(), Vec::<String>::new());
}

#[test]
fn an_aborted_switchover_keeps_the_master_paused_while_a_stale_master_may_accept_writes() {
    let mut h = with_unlockable_stale_master();
    h.advance_to(14_000);
    // The stale master is cut off, paused until 20 s; the master is ahead of its replica, which
    // is stuck, so the switchover started at 15.5 s never sees it catch up.
    h.hang("127.0.0.1:6381");
    h.redis.get_mut(&addr("127.0.0.1:6379")).unwrap().offset = 500;
    h.advance_to(15_500);
    h.take();
    request_failover(&mut h);
    // It gives up at 20.5 s (the stale master's link is closed by then), when the stale master
    // may accept writes again: the master is not released (the hold, from 19 s, keeps renewing
    // its pause).
    h.advance_to(22_000);
    assert_eq!(
        h.pauses(),
        [
            "6379 Fence { pause: 10s }",
            "6379 PauseWrites { pause: 2s }",
            "6379 PauseWrites { pause: 2s }",
            "6379 PauseWrites { pause: 2s }",
            "6379 PauseWrites { pause: 2s }",
        ]
    );
    assert!(h.sup.view().masters[0].failover.is_none(), "the switchover gave up");
}

#[test]
fn a_strict_failover_ends_without_releasing_its_master_while_a_stale_master_may_accept_writes() {
    let mut h = with_unlockable_stale_master();
    h.advance_to(11_000);
    // The stale master is cut off (paused until 20 s, the master held from 19 s), then the
    // master dies: 6380 is promoted, when the stale master may accept writes.
    h.hang("127.0.0.1:6381");
    h.advance_to(19_500);
    h.take();
    h.kill("127.0.0.1:6379");
    h.advance_to(60_000);
    let pauses = h.pauses();
    // The failover ends once the dead master's lease has lapsed, but 6380 is never released
    // with `CLIENT UNPAUSE`: the hold keeps renewing its pause while 6381 may accept writes.
    assert!(h.sup.view().masters[0].failover.is_none(), "{pauses:?}");
    assert!(!pauses.iter().any(|p| p.contains("Unpause")), "{pauses:?}");
    assert!(pauses.ends_with(&["6380 PauseWrites { pause: 2s }".to_owned()]), "{pauses:?}");
}

/// The standard group fenced in `bounded` mode, its master hung at 5 s, while both peers
/// report having set `lease_set` on it; then this node wins the election.
fn bounded_failover_with_peer_leases(lease_set: Option<Lease>) -> Vec<String> {
    bounded_failover_with_peer_leases_changing(lease_set, lease_set)
}

/// [`bounded_failover_with_peer_leases`], where the peers report `before` until the master
/// hangs and `after` since.
fn bounded_failover_with_peer_leases_changing(
    before: Option<Lease>,
    after: Option<Lease>,
) -> Vec<String> {
    let mut h = fenced_beside_peers(Fencing::Bounded, Some(known_node(9)), Harness::group());
    let with_lease = |lease_set, sdown| {
        let mut r = report("127.0.0.1:6379", 0, sdown, 0);
        r.lease_set = lease_set;
        vec![r]
    };
    // Long enough for the lease to be set and read back.
    h.advance_with_peers(5_000, &with_lease(before, false));
    h.hang("127.0.0.1:6379");
    h.advance_with_peers(6_500, &with_lease(after, true));
    let id = h.sup.id();
    h.handle(vote_for(1, 1, id));
    h.advance_with_peers(8_000, &with_lease(after, true));
    h.events().into_iter().filter(|e| e.starts_with("+fence-window")).collect()
}

#[test]
fn a_lease_peers_relaxed_since_the_last_reading_counts_though_they_raised_it_again() {
    // The peers relaxed the lease, then raised it again, while this node could no longer read
    // it: the raise may never have landed (simulator seed 587: it was sent while a partition
    // cut the old master off, and dropped with the links), so the window cannot be promised.
    assert_eq!(
        bounded_failover_with_peer_leases_changing(Some(Lease::NONE), Some(Lease::majority_of(2))),
        ["+fence-window master mymaster 127.0.0.1 6379 #window-ms unknown"]
    );
}

#[test]
fn a_lease_a_peer_relaxed_makes_the_fence_window_unknown() {
    // This node read the master's lease (a majority of its two replicas) and never saw it
    // relaxed; the window follows from that lease: both replicas left the old master at the
    // promotion (one promoted, the other seen following the new master at once here), so the
    // lease lapses its expiry later. Their earlier reports of their link down do not count:
    // they would reconnect if the old master came back before they were repointed.
    assert_eq!(
        bounded_failover_with_peer_leases(None),
        ["+fence-window master mymaster 127.0.0.1 6379 #window-ms 3000"]
    );
    // The peers relaxed it (its replicas were gone, as they saw it): the old master may run
    // without a lease, so no window can be promised (seed 8200140 promised 3000 ms).
    assert_eq!(
        bounded_failover_with_peer_leases(Some(Lease::NONE)),
        ["+fence-window master mymaster 127.0.0.1 6379 #window-ms unknown"]
    );
}

#[test]
fn an_old_master_that_restarts_during_a_switchover_is_fenced_again() {
    let mut settings = settings(&[], 1);
    settings.masters[0].fencing = Fencing::Bounded;
    let mut h = Harness::new(settings, None, Harness::group());
    h.advance_to(5_000);
    // The master is ahead of its stuck replicas: the switchover waits for a catch-up.
    h.redis.get_mut(&addr("127.0.0.1:6379")).unwrap().offset = 500;
    h.take();
    request_failover(&mut h);
    h.advance_to(5_200);
    // The paused master dies and comes back: its pause went with the process. The promotion
    // (at once, the old master being gone) must not count on that pause for its fence window
    // (simulator seed 8305313 stated 0 ms), and the old master is fenced again as soon as it
    // answers, before its demotion.
    h.kill("127.0.0.1:6379");
    h.advance_to(5_500);
    h.restart("127.0.0.1:6379", "again", None);
    h.advance_to(7_000);
    let out = h.rendered();
    let windows: Vec<&String> = out.iter().filter(|o| o.contains("+fence-window")).collect();
    assert_eq!(windows, ["emit +fence-window master mymaster 127.0.0.1 6379 #window-ms 3000"]);
    let fences = out.iter().filter(|o| o.starts_with("redis Fence")).count();
    assert_eq!(fences, 2, "{out:?}");
}

#[test]
fn a_strict_wait_that_cannot_end_gives_way_to_the_next_failover_after_the_failover_timeout() {
    let mut h = Harness::new(strict(), None, Harness::group());
    h.advance_to(2_000);
    // Killed without a lease: nothing can prove it refuses writes, so the wait cannot end by
    // itself.
    h.kill("127.0.0.1:6379");
    h.advance_to(5_000);
    let failover = h.sup.view().masters[0].failover.clone().expect("a failover");
    assert_eq!(failover.state, "wait_fence");
    let promoted = failover.promoted.expect("a promoted replica");
    let other = if promoted.port() == 6380 { "127.0.0.1:6381" } else { "127.0.0.1:6380" };
    // The new master dies during the wait: the wait ends at the failover timeout (10 s), and
    // the next failover promotes the last replica, which the hold keeps paused (the first
    // master may still accept writes).
    h.kill(&promoted.to_string());
    h.take();
    h.advance_to(60_000);
    let events = h.events();
    assert!(events.iter().any(|e| e.starts_with("+failover-end-for-timeout")), "{events:?}");
    assert_eq!(h.sup.view().masters[0].addr, addr(other), "{events:?}");
}

#[test]
fn an_instance_promoted_elsewhere_holds_the_master_until_it_reports_again() {
    let mut fenced = settings(PEERS, 2);
    fenced.masters[0].fencing = Fencing::Strict;
    let mut h = Harness::new(fenced, Some(known_node(9)), Harness::group());
    h.advance_with_peers(3000, &[report("127.0.0.1:6379", 0, false, 0)]);
    // Cut off from this node, 6380 is promoted by another (epoch 1), then 6381 by a third
    // (epoch 2), which demotes 6379 but cannot reach 6380 either. This node last saw 6380 as a
    // replica, before its promotion: it may still accept writes, so 6381 is held paused.
    h.hang("127.0.0.1:6380");
    h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap().master_of = None;
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().master_of = None;
    h.redis.get_mut(&addr("127.0.0.1:6379")).unwrap().master_of = Some(addr("127.0.0.1:6381"));
    for (epoch, master) in [(1, "127.0.0.1:6380"), (2, "127.0.0.1:6381")] {
        let config = [report(master, epoch, false, epoch)];
        h.handle(full_state(1, epoch, 10_000_000 * epoch, config.to_vec()));
        h.handle(full_state(2, epoch, 10_000_000 * epoch, config.to_vec()));
    }
    // 6379 holds it too until its next INFO shows it demoted; 6380 keeps holding it after.
    h.advance_with_peers(15_000, &[report("127.0.0.1:6381", 2, false, 2)]);
    h.take();
    h.advance_with_peers(25_000, &[report("127.0.0.1:6381", 2, false, 2)]);
    let pauses = h.pauses();
    assert!(pauses.iter().any(|p| p == "6381 PauseWrites { pause: 2s }"), "{pauses:?}");
    // Once it answers as a replica again, nothing holds 6381 any more.
    h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap().master_of = Some(addr("127.0.0.1:6381"));
    h.resume("127.0.0.1:6380");
    h.advance_with_peers(40_000, &[report("127.0.0.1:6381", 2, false, 2)]);
    h.take();
    h.advance_with_peers(50_000, &[report("127.0.0.1:6381", 2, false, 2)]);
    let pauses = h.pauses();
    assert!(!pauses.iter().any(|p| p.starts_with("6381 PauseWrites")), "{pauses:?}");
}

#[test]
fn a_lock_is_lifted_only_once_no_peer_reports_a_doubt() {
    let mut locked = settings(PEERS, 2);
    locked.masters[0].fencing = Fencing::Strict;
    let mut redis = Harness::group();
    // Locked by another node's hold.
    redis.get_mut(&addr("127.0.0.1:6379")).unwrap().lease = Lease::LOCK;
    let mut h = Harness::new(locked, Some(known_node(9)), redis);
    let mut doubting = report("127.0.0.1:6379", 0, false, 0);
    doubting.lease_set = Some(Lease::LOCK);
    // This node sees nothing that may accept writes, but a peer still doubts: it keeps the
    // lock, and reports what it would set instead.
    h.advance_with_peers(20_000, &[doubting]);
    assert!(h.redis[&addr("127.0.0.1:6379")].lease.is_lock());
    assert_eq!(h.sup.view().masters[0].safety.lease, Some(Lease::LOCK));
    // The doubt is over: the lock is lifted.
    h.advance_with_peers(40_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
}

#[test]
fn a_strict_switchover_locks_the_old_master_it_pauses() {
    let mut h = Harness::new(strict(), None, Harness::group());
    h.advance_to(2_000);
    request_failover(&mut h);
    h.advance_to(10_000);
    let view = h.sup.view();
    assert_ne!(view.masters[0].addr, addr("127.0.0.1:6379"), "switched");
    assert!(view.masters[0].failover.is_none());
    // The old master was locked, not only paused, before the new one was released: had the
    // leader crashed then, the pause would have run out (simulator seed 8802435), the lock
    // would not. The new master's own lock is lifted.
    assert!(h.redis[&addr("127.0.0.1:6379")].lease.is_lock());
    assert!(!h.redis[&view.masters[0].addr].lease.is_lock());
}

#[test]
fn a_restarted_node_keeps_a_lock_while_an_instance_has_not_reported() {
    let mut redis = Harness::group();
    // Locked by a strict failover this node was waiting on when it restarted; 6381, the old
    // master for all this node knows now, is hung (simulator seed 9000619: the node lifted the
    // lock, and the hung old master resumed beside a writable new one).
    redis.get_mut(&addr("127.0.0.1:6379")).unwrap().lease = Lease::LOCK;
    redis.get_mut(&addr("127.0.0.1:6381")).unwrap().hung = true;
    let state = known_group_node(9);
    let mut h = Harness::new(strict(), Some(state), redis);
    h.advance_to(20_000);
    assert!(h.redis[&addr("127.0.0.1:6379")].lease.is_lock());
    // It answers, a replica: nothing is in doubt any more, and the lock is lifted.
    h.resume("127.0.0.1:6381");
    h.advance_to(40_000);
    assert!(!h.redis[&addr("127.0.0.1:6379")].lease.is_lock());
}

#[test]
fn a_restarted_leader_does_not_release_its_new_master_while_an_instance_has_not_reported() {
    let mut redis = Harness::group();
    // This node restarts knowing 6381 as a replica, but 6381 does not answer: for all this
    // node knows it may be a master another node promoted meanwhile (simulator seed 9101147:
    // the leader released its new master beside an older, unfenced one).
    redis.get_mut(&addr("127.0.0.1:6381")).unwrap().hung = true;
    let mut h = Harness::new(strict(), Some(known_group_node(9)), redis);
    h.advance_to(5_000);
    request_failover(&mut h);
    h.advance_to(40_000);
    let view = h.sup.view();
    assert_eq!(view.masters[0].addr, addr("127.0.0.1:6380"));
    assert!(view.masters[0].failover.is_none(), "the switchover ended");
    assert!(h.redis[&addr("127.0.0.1:6380")].lease.is_lock());
    // It answers, a replica: nothing is in doubt any more, and the lock is lifted.
    h.resume("127.0.0.1:6381");
    h.advance_to(60_000);
    assert!(!h.redis[&addr("127.0.0.1:6380")].lease.is_lock());
}

#[test]
fn a_strict_new_master_stays_locked_while_the_old_masters_replicas_follow_it() {
    let mut redis = Harness::group();
    redis.insert(addr("127.0.0.1:6382"), Fake::replica("r3", "127.0.0.1:6379"));
    // 6381 and 6382 keep following the dead master (two of its three replicas: its lease).
    for replica in ["127.0.0.1:6381", "127.0.0.1:6382"] {
        redis.get_mut(&addr(replica)).unwrap().ignores_replicaof = true;
    }
    let mut h = Harness::new(strict(), None, redis);
    h.advance_to(2_000);
    h.kill("127.0.0.1:6379");
    while !h.events().iter().any(|e| e.starts_with("+slave-reconf-sent")) {
        assert!(h.now.as_millis() < 20_000, "no reconfiguration");
        h.advance(10);
    }
    // They report their link to it down, fresh reports every second: that shows no lease
    // lapsing, since they reconnect the moment it restarts (simulator seed 9001003 released a
    // new master on reports taken just before). Neither the wait nor, once it gave up, the
    // hold lifts the new master's lock.
    for replica in ["127.0.0.1:6381", "127.0.0.1:6382"] {
        h.redis.get_mut(&addr(replica)).unwrap().link_down_for = Some(Duration::from_secs(7));
    }
    let start = h.now.as_millis();
    h.take();
    h.advance_to(start + 30_000);
    assert_nothing_unpaused(&mut h);
    assert!(h.sup.view().masters[0].failover.is_none(), "the wait gave up");
    assert!(h.redis[&addr("127.0.0.1:6380")].lease.is_lock());
    // They take their repointing at last (the corrections resend it): they have left the old
    // master, and a lease's expiry later the lock is lifted.
    for replica in ["127.0.0.1:6381", "127.0.0.1:6382"] {
        h.redis.get_mut(&addr(replica)).unwrap().ignores_replicaof = false;
    }
    h.advance_to(start + 45_000);
    assert!(!h.redis[&addr("127.0.0.1:6380")].lease.is_lock());
}

/// A node fencing the standard group in `strict` mode beside two peers, elected at 6.5 s to
/// fail over the hung master and having promoted 6380, after which its peers fall silent.
fn strict_leader_that_promoted_and_was_cut_off() -> Harness {
    let mut h = fenced_beside_peers(Fencing::Strict, Some(known_node(9)), Harness::group());
    h.advance_with_peers(5_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    h.hang("127.0.0.1:6379");
    h.advance_with_peers(6_500, &[report("127.0.0.1:6379", 0, true, 0)]);
    let id = h.sup.id();
    h.handle(vote_for(1, 1, id));
    h.advance_to(6_600);
    assert_eq!(h.sup.view().masters[0].addr, addr("127.0.0.1:6380"), "{:?}", h.events());
    h
}

/// Asserts that no `CLIENT UNPAUSE` went out since the outputs were last taken.
fn assert_nothing_unpaused(h: &mut Harness) {
    let pauses = h.pauses();
    assert!(!pauses.iter().any(|p| p.contains("Unpause")), "{pauses:?}");
}

#[test]
fn a_strict_leader_that_hears_no_majority_does_not_release_its_new_master() {
    let mut h = strict_leader_that_promoted_and_was_cut_off();
    // Cut off from both peers as soon as it promoted: when the old master's lease lapses it
    // cannot know what the other side did meanwhile (simulator seed 9008228: its release
    // lifted the lock the other side's failover counted on as its old master's fence). The
    // new master stays locked and paused.
    h.take();
    h.advance_to(15_000);
    assert_nothing_unpaused(&mut h);
    assert!(h.redis[&addr("127.0.0.1:6380")].lease.is_lock());
    // The peers are back, in no doubt: the lock is lifted.
    h.advance_with_peers(30_000, &[report("127.0.0.1:6380", 1, false, 1)]);
    assert!(!h.redis[&addr("127.0.0.1:6380")].lease.is_lock(), "{:?}", h.events());
}

#[test]
fn a_strict_leader_back_from_a_partition_releases_nothing_before_it_holds_the_majoritys_state() {
    // Simulator seed 10522916: the leader of epoch 3, cut off with the replica it promoted
    // while epoch 4 promoted another, released its own at the first message after the heal,
    // judging from reports its peers had made before the partition.
    let mut h = strict_leader_that_promoted_and_was_cut_off();
    h.advance_to(15_000);
    h.take();
    // Both peers are heard again, announcing states this node does not hold yet.
    let version = crate::engine::gossip::StateVersion { incarnation: 2, seq: 9_000_000 };
    while h.now.as_millis() < 16_000 {
        for peer in [1, 2] {
            h.handle(from_peer(peer, 2, crate::engine::gossip::Body::Heartbeat { version }));
        }
        h.advance(100);
    }
    assert_nothing_unpaused(&mut h);
    assert!(h.redis[&addr("127.0.0.1:6380")].lease.is_lock());
    // Their state shows a newer failover, which promoted 6381: still nothing to release.
    h.advance_with_peers(17_000, &[report("127.0.0.1:6381", 2, false, 2)]);
    assert_nothing_unpaused(&mut h);
}

#[test]
fn the_hold_judges_an_old_master_by_the_weakest_lease_peers_set_on_it() {
    let mut h = fenced_beside_peers(Fencing::Strict, Some(known_node(9)), Harness::group());
    // The peers report relaxing the master's lease to none; this node's reading says two (the
    // peers' change is held by a partition, and lands after the reading: simulator seed
    // 9304660).
    let relaxed = |sdown| {
        let mut r = report("127.0.0.1:6379", 0, sdown, 0);
        r.lease_set = Some(Lease::NONE);
        vec![r]
    };
    h.advance_with_peers(5_000, &relaxed(false));
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
    h.hang("127.0.0.1:6379");
    h.advance_with_peers(6_500, &relaxed(true));
    let id = h.sup.id();
    h.handle(vote_for(1, 1, id));
    h.advance_to(6_600);
    assert_eq!(h.sup.view().masters[0].addr, addr("127.0.0.1:6380"), "{:?}", h.events());
    // Both replicas left the old master, which would fence it under the lease this node read,
    // not under the one the peers set: it may still accept writes, so the new master stays
    // locked while it is out of reach.
    h.advance_with_peers(40_000, &[report("127.0.0.1:6380", 1, false, 1)]);
    assert!(h.sup.view().masters[0].failover.is_none());
    assert!(h.redis[&addr("127.0.0.1:6380")].lease.is_lock());
}

#[test]
fn a_lease_peers_relax_during_the_failover_makes_the_fence_window_unknown() {
    let mut h = fenced_beside_peers(Fencing::Bounded, Some(known_node(9)), Harness::group());
    let reports = |sdown, lease_set| {
        let mut r = report("127.0.0.1:6379", 0, sdown, 0);
        r.lease_set = lease_set;
        vec![r]
    };
    h.advance_with_peers(5_000, &reports(false, None));
    h.hang("127.0.0.1:6379");
    h.advance_with_peers(6_500, &reports(true, None));
    // The replica to promote stops answering just before the election: its promotion waits,
    // and meanwhile the peers, which have not seen this failover start, relax the old
    // master's lease to none (simulator seed 9316596 stated 0 ms from the lease it read).
    h.hang("127.0.0.1:6380");
    let id = h.sup.id();
    h.handle(vote_for(1, 1, id));
    h.advance_with_peers(7_000, &reports(true, Some(Lease::NONE)));
    h.take();
    h.resume("127.0.0.1:6380");
    h.advance_with_peers(8_000, &reports(true, Some(Lease::NONE)));
    let events = h.events();
    let windows: Vec<&String> = events.iter().filter(|e| e.starts_with("+fence-window")).collect();
    assert_eq!(windows, ["+fence-window master mymaster 127.0.0.1 6379 #window-ms unknown"]);
}

#[test]
fn a_pause_that_runs_out_before_the_lease_lapses_does_not_close_the_window() {
    let mut settings = settings(&[], 1);
    settings.masters[0].fencing = Fencing::Bounded;
    // The old master's pause lasts the failover timeout: 2 s, shorter than its lease (two of
    // its two replicas) takes to lapse once the promoted one stops acknowledging it (3 s).
    settings.masters[0].failover_timeout = Duration::from_secs(2);
    let mut h = Harness::new(settings, None, Harness::group());
    h.advance_to(5_000);
    h.take();
    request_failover(&mut h);
    h.advance_to(6_000);
    let events = h.events();
    let windows: Vec<&String> = events.iter().filter(|e| e.starts_with("+fence-window")).collect();
    // Simulator seed 9305123 stated 0 ms: the old master was writable between its pause's end
    // and its lease's lapse.
    assert_eq!(windows, ["+fence-window master mymaster 127.0.0.1 6379 #window-ms 3000"]);
}

/// A node restarted without its disk beside the standard group in `bounded` mode, hearing both
/// peers, where the master runs under the lease other nodes set (a majority of its two
/// replicas) while both replicas are unreachable: its INFO lists none, so this node knows none.
fn fresh_node_beside_unlisted_replicas() -> Harness {
    let mut fenced = settings(PEERS, 2);
    fenced.masters[0].fencing = Fencing::Bounded;
    let mut redis = Harness::group();
    redis.get_mut(&addr("127.0.0.1:6379")).unwrap().lease = Lease::majority_of(2);
    for replica in ["127.0.0.1:6380", "127.0.0.1:6381"] {
        redis.get_mut(&addr(replica)).unwrap().up = false;
    }
    let mut h = Harness::new(fenced, Some(known_node(9)), redis);
    h.advance_with_peers(20_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    h
}

#[test]
fn a_node_that_does_not_know_the_replicas_a_lease_counts_does_not_lower_it() {
    // Whether those replicas are gone is for a quorum of the nodes that know them to say
    // (simulator seeds 9354598 and 9363189: such a node set the lease to none, and the old
    // master it had been cut off with accepted writes past the window a failover stated).
    let mut h = fresh_node_beside_unlisted_replicas();
    let leases: Vec<String> =
        h.events().into_iter().filter(|e| e.starts_with("+fence-lease")).collect();
    assert_eq!(leases, Vec::<String>::new());
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
}

#[test]
fn after_sentinel_reset_the_lease_follows_the_replicas_listed_since() {
    // The operator's word that the forgotten replicas are gone.
    let mut h = fresh_node_beside_unlisted_replicas();
    h.handle(Input::Admin {
        ticket: Ticket(1),
        command: AdminCommand::Reset { pattern: "mymaster".into() },
    });
    h.advance_with_peers(40_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::NONE);
}

#[test]
fn the_fence_window_is_stated_once_the_replicas_of_the_lease_left_the_old_master() {
    let mut settings = settings(&[], 1);
    settings.masters[0].fencing = Fencing::Bounded;
    let mut redis = Harness::group();
    for (port, run_id) in [("6382", "r3"), ("6383", "r4")] {
        redis.insert(addr(&format!("127.0.0.1:{port}")), Fake::replica(run_id, "127.0.0.1:6379"));
    }
    let mut h = Harness::new(settings, None, redis);
    h.advance_to(3_000);
    // Four replicas: a lease of three, which lapses once two of them have left. The master
    // dies; the replicas but one stall just before it is found down, so only the promoted one
    // has left the old master when the promotion shows.
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(4));
    h.kill("127.0.0.1:6379");
    h.advance_to(3_900);
    for replica in ["127.0.0.1:6381", "127.0.0.1:6382", "127.0.0.1:6383"] {
        h.hang(replica);
    }
    let mut events = Vec::new();
    while !events.iter().any(|e: &String| e.starts_with("+promoted-slave")) {
        assert!(h.now.as_millis() < 6_000, "no promotion: {events:?}");
        h.advance(10);
        events.extend(h.events());
    }
    assert!(!events.iter().any(|e| e.starts_with("+fence-window")), "{events:?}");
    // One answers 500 ms later and follows the new master: a second replica has left, and the
    // old master's lease lapses its expiry later, 3.5 s after the promotion (which showed 3 ms
    // before the step that saw it ended).
    h.advance(500);
    h.resume("127.0.0.1:6382");
    h.advance(50);
    let windows: Vec<String> =
        h.events().into_iter().filter(|e| e.starts_with("+fence-window")).collect();
    assert_eq!(windows, ["+fence-window master mymaster 127.0.0.1 6379 #window-ms 3503"]);
}

/// A node that has run before, beside two peers, fencing the standard group in `bounded` mode
/// (its lease: both replicas), having voted at 2 s for peer 1's switchover in epoch 1; peer 1
/// is silent from then on. At 3 s replica 6380 hangs, and peer 2 sees it down from 4 s.
fn voted_for_a_leader_cut_off_since() -> Harness {
    let mut h = fenced_beside_peers(Fencing::Bounded, Some(known_node(9)), Harness::group());
    h.advance_with_peers(2_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
    h.handle(vote_request(1, 1, 0, true));
    let voted = h.rendered().into_iter().any(|o| o.contains("vote-reply mymaster e=1 for="));
    assert!(voted && h.sup.view().masters[0].voted_epoch == 1, "no vote");
    h.advance_with_peer(2, 3_000, &[report("127.0.0.1:6379", 0, false, 1)]);
    h.hang("127.0.0.1:6380");
    h.advance_with_peer(2, 4_000, &[report("127.0.0.1:6379", 0, false, 1)]);
    h
}

/// Peer 2's report: the master up, 6380 down, and its vote in epoch 1.
fn replica_down_report() -> Vec<crate::engine::gossip::MasterReport> {
    let mut r = report("127.0.0.1:6379", 0, false, 1);
    r.down_replicas = vec![addr("127.0.0.1:6380")];
    vec![r]
}

#[test]
fn a_node_that_does_not_know_what_its_vote_led_to_reports_no_replica_down() {
    // The leader it elected may have promoted 6380 beyond a partition: relaxing the old
    // master's lease on this node's word and peer 2's would leave two writable masters
    // (simulator seeds 9354027 and 9967788, the voter there having lost its disk).
    let mut h = voted_for_a_leader_cut_off_since();
    h.take();
    h.advance_with_peer(2, 30_000, &replica_down_report());
    assert_eq!(h.current_report().down_replicas, Vec::new());
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
    // The leader is heard again, leading no failover, its configuration unchanged: it gave up
    // before it promoted anything (or left a promotion the next leader adopts), so 6380 is
    // down, and the lease follows the one replica left.
    let mut leader = report("127.0.0.1:6379", 0, false, 1);
    leader.down_replicas = vec![addr("127.0.0.1:6380")];
    h.advance_hearing(35_000, &[(1, &[leader]), (2, &replica_down_report())]);
    assert_eq!(h.current_report().down_replicas, [addr("127.0.0.1:6380")]);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(1));
}

#[test]
fn a_node_that_lost_its_state_reports_no_replica_down_until_it_learns_its_vote_floor() {
    // It may have voted in any epoch before it lost its state, for a leader it has not heard.
    let mut h = fenced_beside_peers(Fencing::Bounded, None, Harness::group());
    h.advance_with_peer(2, 3_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    h.hang("127.0.0.1:6380");
    h.take();
    h.advance_with_peer(2, 30_000, &replica_down_report());
    assert_eq!(h.current_report().down_replicas, Vec::new());
    let leases: Vec<String> =
        h.events().into_iter().filter(|e| e.starts_with("+fence-lease")).collect();
    assert!(!leases.iter().any(|e| e.ends_with("of 1")), "{leases:?}");
}

#[test]
fn a_node_reports_the_lease_it_relaxed_until_it_reads_back_the_raise() {
    // Both replicas die and the quorum relaxes the lease to none; they come back, and the
    // raise is sent as the master is cut off: it may never land (simulator seed 9988843: a
    // node cut off meanwhile heard only the raise, and stated a fence window from it).
    let mut h = fenced_beside_peers(Fencing::Bounded, Some(known_node(9)), Harness::group());
    // The first lease, a raise from none, is reported as soon as it is read back (the reading
    // comes within the millisecond on loopback).
    h.advance_with_peers(1_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(h.current_report().lease_set, Some(Lease::majority_of(2)));
    h.advance_with_peers(2_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    h.hang("127.0.0.1:6380");
    h.hang("127.0.0.1:6381");
    let mut both_down = report("127.0.0.1:6379", 0, false, 0);
    both_down.down_replicas = vec![addr("127.0.0.1:6380"), addr("127.0.0.1:6381")];
    h.advance_with_peers(10_000, &[both_down]);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::NONE);
    assert_eq!(h.current_report().lease_set, Some(Lease::NONE));
    h.resume("127.0.0.1:6380");
    h.resume("127.0.0.1:6381");
    h.hang("127.0.0.1:6379");
    h.take();
    // The raise goes out (and is never answered), while the node last read none.
    h.advance_with_peers(12_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    let out = h.take();
    let raised = out.iter().any(|o| render(o).starts_with("redis SetLease"));
    assert!(raised, "no raise");
    assert_eq!(h.current_report().lease_set, Some(Lease::NONE));
    // The master answers again: the raise is read back, and reported.
    h.resume("127.0.0.1:6379");
    h.advance_with_peers(30_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
    assert_eq!(h.current_report().lease_set, Some(Lease::majority_of(2)));
}

#[test]
fn a_peer_heard_again_counts_for_the_lease_only_once_its_state_arrives() {
    // Until then its reports are the ones it made before it went silent (simulator seed
    // 10000997: a node back from a partition relaxed a lease on a peer's report of a replica
    // down, made before that peer elected a leader who promoted the replica).
    let mut h = fenced_beside_peers(Fencing::Bounded, Some(known_node(9)), Harness::group());
    h.advance_with_peers(2_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    // Peer 2 alone sees 6380 down, then falls silent, as peer 1 did.
    h.advance_with_peer(2, 3_000, &replica_down_report());
    // Its reports expire; this node then sees 6380 down too, alone.
    h.advance_to(5_000);
    h.hang("127.0.0.1:6380");
    h.advance_to(10_000);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
    // Peer 2 is heard again, announcing a state this node does not hold yet: the report it
    // holds from 3 s does not count.
    let version = crate::engine::gossip::StateVersion { incarnation: 2, seq: 9_000_000 };
    h.handle(from_peer(2, 1, crate::engine::gossip::Body::Heartbeat { version }));
    h.advance_to(10_500);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
}

#[test]
fn a_node_that_lost_its_state_lifts_no_lock_before_it_learns_its_vote_floor() {
    // Its configuration file may name an old master that a failover it no longer knows of
    // locked (simulator seed 10318369: two such nodes lifted it beside the new master).
    let mut redis = Harness::group();
    redis.get_mut(&addr("127.0.0.1:6379")).unwrap().lease = Lease::LOCK;
    let mut h = fenced_beside_peers(Fencing::Strict, None, redis);
    h.advance_with_peer(2, 20_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert!(h.redis[&addr("127.0.0.1:6379")].lease.is_lock());
    // Both peers heard: the floor is learned, and nobody doubts.
    h.advance_with_peers(30_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].lease, Lease::majority_of(2));
}
