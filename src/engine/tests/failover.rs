//! The leader's failover, its abort paths, TILT, and convergence outside failovers.

use std::collections::BTreeMap;
use std::time::Duration;

use super::harness::{
    Fake, Harness, PEERS, addr, full_state, known_group_node, known_node, master_hung,
    master_hung_with, report, settings, vote_for, vote_request,
};
use crate::engine::election::{Authorisation, Unauthorised};
use crate::engine::gossip::MasterReport;
use crate::engine::ids::Ticket;
use crate::engine::io::{AdminAnswer, AdminCommand, AdminRefusal, Input, Output};
use crate::engine::selection::Ineligible;

fn sdown_reports() -> Vec<MasterReport> {
    vec![report("127.0.0.1:6379", 0, true, 0)]
}

/// Drives [`master_hung`] to an election that this node wins with peer 1's vote; returns the
/// events from the election's start on.
fn win_election(h: &mut Harness) -> Vec<String> {
    h.handle(full_state(1, 0, 2, sdown_reports()));
    h.handle(full_state(2, 0, 2, sdown_reports()));
    h.advance_to(1520);
    let id = h.sup.id();
    h.handle(vote_for(1, 1, id));
    h.events()
}

fn from<'a>(events: &'a [String], first: &str) -> &'a [String] {
    let start = events
        .iter()
        .position(|e| e.starts_with(first))
        .unwrap_or_else(|| panic!("{first} in {events:?}"));
    &events[start..]
}

#[test]
fn a_failover_follows_sentinels_sequence() {
    let mut h = master_hung(2);
    let events = win_election(&mut h);
    assert_eq!(
        from(&events, "+new-epoch"),
        [
            "+new-epoch 1",
            "+try-failover master mymaster 127.0.0.1 6379",
            "+vote-for-leader 0909090909090909090909090909090909090909 1",
            "+elected-leader master mymaster 127.0.0.1 6379",
            "+failover-state-select-slave master mymaster 127.0.0.1 6379",
            "+selected-slave slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "+failover-state-send-slaveof-noone slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "+failover-state-wait-promotion slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "-role-change slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379 new reported role is master",
            "+promoted-slave slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "+failover-state-reconf-slaves master mymaster 127.0.0.1 6379",
            "-odown master mymaster 127.0.0.1 6379",
            "+failover-loss master mymaster 127.0.0.1 6379 #bytes 0",
            "+slave-reconf-sent slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379",
            "+slave-reconf-inprog slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379",
            "+slave-reconf-done slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379",
            "+failover-end master mymaster 127.0.0.1 6379",
            "+switch-master mymaster 127.0.0.1 6379 127.0.0.1 6380",
            "+slave slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6380",
            "+slave slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6380",
        ]
    );
    let state = h.sup.durable();
    assert_eq!(state.masters["mymaster"].addr, addr("127.0.0.1:6380"));
    assert_eq!(state.masters["mymaster"].config_epoch, 1);
    assert_eq!(h.redis[&addr("127.0.0.1:6381")].master_of, Some(addr("127.0.0.1:6380")));
}

#[test]
fn the_new_configuration_is_durable_before_peers_hear_of_it() {
    let mut h = master_hung(2);
    h.handle(full_state(1, 0, 2, sdown_reports()));
    h.advance_to(1520);
    h.take();
    let id = h.sup.id();
    h.handle(vote_for(1, 1, id));
    let out = h.rendered();
    let persist =
        out.iter().position(|o| o.starts_with("persist") && o.contains("config=127.0.0.1:6380@1"));
    let announce =
        out.iter().position(|o| o.contains("state-delta [mymaster 127.0.0.1:6380 cfg=1"));
    assert!(persist.is_some() && persist < announce, "{out:?}");
}

#[test]
fn the_replica_with_the_lowest_priority_then_highest_offset_wins_and_zero_never() {
    let mut redis = Harness::group();
    redis.get_mut(&addr("127.0.0.1:6380")).unwrap().priority = 0;
    redis.get_mut(&addr("127.0.0.1:6380")).unwrap().offset = 9999;
    let mut h = master_hung_with(2, redis);
    let events = win_election(&mut h);
    assert!(
        events.contains(
            &"+selected-slave slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379"
                .to_owned()
        ),
        "{events:?}"
    );

    let mut redis = Harness::group();
    redis.get_mut(&addr("127.0.0.1:6381")).unwrap().offset = 200;
    let mut h = master_hung_with(2, redis);
    let events = win_election(&mut h);
    assert!(
        events.contains(
            &"+selected-slave slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379"
                .to_owned()
        ),
        "{events:?}"
    );
}

#[test]
fn no_good_replica_aborts_and_the_next_attempt_waits() {
    let mut redis = Harness::group();
    for port in ["127.0.0.1:6380", "127.0.0.1:6381"] {
        redis.get_mut(&addr(port)).unwrap().priority = 0;
    }
    let mut h = master_hung_with(2, redis);
    let events = win_election(&mut h);
    assert_eq!(
        from(&events, "+elected-leader"),
        [
            "+elected-leader master mymaster 127.0.0.1 6379",
            "+failover-state-select-slave master mymaster 127.0.0.1 6379",
        ]
    );
    // The leader polls the replicas' INFO for five ping periods (500 ms) in case one becomes
    // eligible, then gives up.
    let elected = h.now.as_millis();
    h.advance_with_peers(elected + 499, &sdown_reports());
    assert!(!h.events().iter().any(|e| e.contains("abort")));
    h.advance_with_peers(elected + 500, &sdown_reports());
    assert_eq!(h.events(), ["-failover-abort-no-good-slave master mymaster 127.0.0.1 6379"]);
    // The retry waits the failover timeout (10 s): voters that may know a candidate this node
    // does not back off only one to two election timeouts once they see it stop, and go first
    // (seed 8703288).
    let aborted = h.now.as_millis();
    h.advance_with_peers(aborted + 9_999, &sdown_reports());
    assert!(!h.events().iter().any(|e| e.starts_with("+try-failover")));
    h.advance_with_peers(aborted + 12_000, &sdown_reports());
    let events = h.events();
    assert!(events.contains(&"+new-epoch 2".to_owned()), "{events:?}");
}

#[test]
fn a_promotion_that_never_shows_aborts_after_the_failover_timeout() {
    let mut redis = Harness::group();
    redis.get_mut(&addr("127.0.0.1:6380")).unwrap().ignores_replicaof = true;
    let mut h = master_hung_with(2, redis);
    let events = win_election(&mut h);
    assert_eq!(
        events.last().map(String::as_str),
        Some(
            "+failover-state-wait-promotion slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379"
        )
    );
    h.advance_with_peers(11_519, &sdown_reports());
    assert!(!h.events().iter().any(|e| e.contains("abort")));
    h.advance_with_peers(11_521, &sdown_reports());
    assert!(
        h.events()
            .contains(&"-failover-abort-slave-timeout master mymaster 127.0.0.1 6379".to_owned())
    );
}

#[test]
fn a_replica_that_never_follows_times_out_and_the_failover_ends() {
    let mut redis = Harness::group();
    redis.get_mut(&addr("127.0.0.1:6381")).unwrap().ignores_replicaof = true;
    let mut h = master_hung_with(2, redis);
    let events = win_election(&mut h);
    assert_eq!(
        events.last().map(String::as_str),
        Some("+slave-reconf-sent slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379")
    );
    // Sentinel's 10 s per-replica limit (bounded by the failover timeout, 10 s here).
    h.advance_with_peers(11_600, &[report("127.0.0.1:6380", 1, false, 1)]);
    let events = h.events();
    assert_eq!(
        from(&events, "-slave-reconf-sent-timeout"),
        [
            "-slave-reconf-sent-timeout slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379",
            "+failover-end master mymaster 127.0.0.1 6379",
            "+switch-master mymaster 127.0.0.1 6379 127.0.0.1 6380",
            "+slave slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6380",
            "+slave slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6380",
        ]
    );
}

#[test]
fn a_stall_enters_tilt_which_observes_but_never_acts() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_with_peers(1000, &[report("127.0.0.1:6379", 0, false, 0)]);
    h.take();
    // The process stalls for 3 s (a GC pause, SIGSTOP): the next input comes late.
    h.now = crate::engine::time::Instant::from_millis(4000);
    h.handle(Input::Tick);
    assert_eq!(h.events()[0], "+tilt #tilt mode entered");
    // During TILT the master dies and every peer sees it: no SDOWN, no vote, no failover.
    h.hang("127.0.0.1:6379");
    h.advance_with_peers(10_000, &sdown_reports());
    h.handle(vote_request(1, 1, 0, false));
    let out = h.rendered();
    assert!(out.contains(&"peer0 vote-reply mymaster e=1 for=-".to_owned()), "{out:?}");
    let events = h.events();
    assert!(
        !events.iter().any(|e| e.starts_with("+sdown master") || e.starts_with("+try-failover")),
        "{events:?}"
    );
    // TILT lasts 30 s from the stall; then the node acts on what it observes.
    h.advance_with_peers(34_001, &sdown_reports());
    let events = h.events();
    let tilt_end = events.iter().position(|e| e == "-tilt #tilt mode exited").expect("-tilt");
    assert!(
        events[tilt_end..].contains(&"+sdown master mymaster 127.0.0.1 6379".to_owned()),
        "{events:?}"
    );
}

/// A node that sees replica 6381 following a stray master (7000), driven in steps of 50 ms with
/// both peers fresh, until `until` returns true or `to` (ms) is reached.
fn wrong_master_until(h: &mut Harness, to: u64, until: impl Fn(&Harness) -> bool) {
    let config = [report("127.0.0.1:6379", 0, false, 0)];
    while h.now.as_millis() < to && !until(h) {
        let next = h.now.as_millis() + 50;
        h.advance_with_peers(next, &config);
    }
}

fn wrong_master() -> Harness {
    let mut redis = Harness::group();
    redis.insert(addr("127.0.0.1:7000"), Fake::master("stray"));
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), redis);
    h.advance_with_peers(500, &[report("127.0.0.1:6379", 0, false, 0)]);
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().master_of = Some(addr("127.0.0.1:7000"));
    h
}

#[test]
fn after_a_short_stall_nothing_is_decided_on_what_was_known_before() {
    let corrected =
        |h: &Harness| h.redis[&addr("127.0.0.1:6381")].master_of == Some(addr("127.0.0.1:6379"));
    // Undisturbed, the node repoints 6381 at some instant `fix`.
    let mut twin = wrong_master();
    wrong_master_until(&mut twin, 30_000, corrected);
    let fix = twin.now.as_millis();
    assert!(corrected(&twin) && fix > 1000, "the correction at {fix} ms");
    // The same node stalls for 1.2 s (less than TILT's 2 s) across that instant; meanwhile the
    // peers fail over to 6381, which the node learns only after the stall.
    let mut h = wrong_master();
    wrong_master_until(&mut h, fix - 200, |_| false);
    assert!(!corrected(&h));
    h.take();
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().promote();
    for replica in ["127.0.0.1:6379", "127.0.0.1:6380"] {
        h.redis.get_mut(&addr(replica)).unwrap().master_of = Some(addr("127.0.0.1:6381"));
    }
    h.now = crate::engine::time::Instant::from_millis(fix + 1000);
    h.handle(Input::Tick);
    let new_config = [report("127.0.0.1:6381", 1, false, 1)];
    h.advance_with_peers(fix + 3000, &new_config);
    let events = h.events();
    // What it knew before (6381 a misconfigured replica) is not acted on: 6381 stays master.
    assert_eq!(h.redis[&addr("127.0.0.1:6381")].master_of, None, "{events:?}");
    assert_eq!(events[0], "+stall #stalled-ms 1200");
    assert!(events.contains(&"-stall #reread-ms 300".to_owned()), "{events:?}");
    assert!(
        events.contains(&"+switch-master mymaster 127.0.0.1 6379 127.0.0.1 6381".to_owned()),
        "{events:?}"
    );
}

#[test]
fn a_short_stall_is_not_silence() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_with_peers(1000, &[report("127.0.0.1:6379", 0, false, 0)]);
    h.take();
    // 1.5 s without running (down_after is 1 s): nobody was heard, nobody was listened to.
    h.now = crate::engine::time::Instant::from_millis(2500);
    h.handle(Input::Tick);
    h.advance_with_peers(4000, &[report("127.0.0.1:6379", 0, false, 0)]);
    let events = h.events();
    assert_eq!(events, ["+stall #stalled-ms 1500", "-stall #reread-ms 300"]);
}

#[test]
fn a_stall_makes_no_peer_report_fresher() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_to(450);
    h.hang("127.0.0.1:6379");
    // Peer 1 says the master is down at 1000 and is never heard again (it crashed).
    h.advance_to(1000);
    h.handle(full_state(1, 0, 1, vec![report("127.0.0.1:6379", 0, true, 0)]));
    h.advance_to(1200);
    h.take();
    // 1.2 s without running. This node's own silence clock skips the stall, so it sees the
    // master down only after it; by then peer 1's report is 1.65 s old, past the peer timeout
    // (1.5 s), and must not make a quorum (simulator seed 8307044).
    h.now = crate::engine::time::Instant::from_millis(2400);
    h.handle(Input::Tick);
    h.advance_to(4000);
    let events = h.events();
    assert!(events.contains(&"+sdown master mymaster 127.0.0.1 6379".to_owned()), "{events:?}");
    assert!(!events.iter().any(|e| e.starts_with("+odown")), "{events:?}");
}

#[test]
fn time_going_backwards_is_a_clock_fault_too() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_to(5000);
    h.take();
    h.now = crate::engine::time::Instant::from_millis(3000);
    h.handle(Input::Tick);
    assert_eq!(h.events(), ["+tilt #tilt mode entered"]);
}

#[test]
fn the_highest_config_epoch_wins_and_older_ones_are_ignored() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_to(100);
    h.take();
    h.handle(full_state(1, 3, 1, vec![report("127.0.0.1:6380", 3, false, 3)]));
    let events = h.events();
    assert_eq!(
        from(&events, "+new-epoch"),
        [
            "+new-epoch 3",
            "+config-update-from sentinel 0101010101010101010101010101010101010101 127.0.0.2 26379 @ mymaster 127.0.0.1 6379",
            "+switch-master mymaster 127.0.0.1 6379 127.0.0.1 6380",
            "+slave slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6380",
            "+slave slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6380",
        ]
    );
    assert_eq!(h.sup.durable().masters["mymaster"].config_epoch, 3);
    h.handle(full_state(2, 3, 1, vec![report("127.0.0.1:6381", 2, false, 2)]));
    h.handle(full_state(2, 3, 2, vec![report("127.0.0.1:6381", 3, false, 3)]));
    assert!(!h.events().iter().any(|e| e.contains("switch-master")));
    assert_eq!(h.sup.view().master("mymaster").unwrap().addr, addr("127.0.0.1:6380"));
}

#[test]
fn a_master_adopted_from_a_peer_is_not_down_for_having_been_a_replica() {
    // This node last saw 6380 as a replica long ago (more than down_after plus two INFO periods):
    // the INFO that said so predates its promotion by another node, so adopting it as the master
    // must not make it SDOWN for "claiming to be a replica" (Sentinel resets the master instance
    // when it switches). Found by the docker compose end-to-end test: the followers turned on the
    // healthy new master at once and ran elections against it.
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    let up = [report("127.0.0.1:6379", 0, false, 0)];
    h.advance_with_peers(30_000, &up);
    h.take();
    h.kill("127.0.0.1:6379");
    h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap().master_of = None;
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().master_of = Some(addr("127.0.0.1:6380"));
    let new_config = [report("127.0.0.1:6380", 1, false, 1)];
    h.handle(full_state(1, 1, 1_000_000, new_config.to_vec()));
    h.handle(full_state(2, 1, 1_000_000, new_config.to_vec()));
    h.advance_with_peers(35_000, &new_config);
    let events = h.events();
    assert!(
        events.iter().any(|e| e == "+switch-master mymaster 127.0.0.1 6379 127.0.0.1 6380"),
        "{events:?}"
    );
    let against_new: Vec<&String> = events
        .iter()
        .filter(|e| {
            e.starts_with("+sdown master mymaster 127.0.0.1 6380")
                || e.starts_with("+odown")
                || e.starts_with("+try-failover")
        })
        .collect();
    assert!(against_new.is_empty(), "{against_new:?} in {events:?}");
}

#[test]
fn a_returning_old_master_is_demoted_once_nothing_is_failing_over() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_to(100);
    // Another node promoted 6380 (the old master never heard of it) and announces epoch 1.
    h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap().master_of = None;
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().master_of = Some(addr("127.0.0.1:6380"));
    let new_config = [report("127.0.0.1:6380", 1, false, 1)];
    h.handle(full_state(1, 1, 1, new_config.to_vec()));
    h.handle(full_state(2, 1, 1, new_config.to_vec()));
    h.take();
    // Misconfigured since its next INFO; corrected after the grace (1 s), not before.
    h.advance_with_peers(900, &new_config);
    assert!(!h.events().iter().any(|e| e.starts_with("+convert-to-slave")));
    h.advance_with_peers(12_000, &new_config);
    let events = h.events();
    assert_eq!(
        events.iter().filter(|e| e.starts_with("+convert-to-slave")).collect::<Vec<_>>(),
        ["+convert-to-slave slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6380"]
    );
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].master_of, Some(addr("127.0.0.1:6380")));
}

#[test]
fn no_correction_while_a_peer_reports_a_failover_in_progress() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_to(100);
    h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap().master_of = None;
    let mut busy = report("127.0.0.1:6379", 0, false, 1);
    busy.failover = Some(crate::engine::gossip::FailoverReport { epoch: 1, elected: true });
    h.advance_with_peers(20_000, &[busy]);
    assert!(!h.events().iter().any(|e| e.starts_with("+convert-to-slave")));
}

#[test]
fn a_replica_following_the_wrong_master_is_repointed() {
    let mut redis = Harness::group();
    redis.insert(addr("127.0.0.1:7000"), Fake::master("stray"));
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), redis);
    h.advance_with_peers(500, &[report("127.0.0.1:6379", 0, false, 0)]);
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().master_of = Some(addr("127.0.0.1:7000"));
    h.advance_with_peers(15_000, &[report("127.0.0.1:6379", 0, false, 0)]);
    let events = h.events();
    assert!(
        events.contains(
            &"+fix-slave-config slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379"
                .to_owned()
        ),
        "{events:?}"
    );
    assert_eq!(h.redis[&addr("127.0.0.1:6381")].master_of, Some(addr("127.0.0.1:6379")));
}

fn failover_command(h: &mut Harness) -> AdminAnswer {
    h.handle(Input::Admin {
        ticket: Ticket(7),
        command: AdminCommand::Failover { master: "mymaster".into() },
    });
    h.take()
        .into_iter()
        .find_map(|o| match o {
            Output::Answer { answer, .. } => Some(answer),
            _ => None,
        })
        .expect("answered")
}

#[test]
fn a_manual_failover_needs_votes_but_no_failure() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_with_peers(500, &[report("127.0.0.1:6379", 0, false, 0)]);
    h.handle(Input::Admin {
        ticket: Ticket(7),
        command: AdminCommand::Failover { master: "mymaster".into() },
    });
    let out = h.rendered();
    assert!(out.contains(&"answer Ok".to_owned()), "{out:?}");
    assert!(
        out.contains(&"peer0 vote-request mymaster e=1 cfg=0 manual=true".to_owned()),
        "{out:?}"
    );
    let id = h.sup.id();
    h.handle(vote_for(2, 1, id));
    let events = h.events();
    assert!(
        events.contains(&"+switch-master mymaster 127.0.0.1 6379 127.0.0.1 6380".to_owned()),
        "{events:?}"
    );
    // The healthy old master was repointed at once, not left accepting writes that will be lost.
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].master_of, Some(addr("127.0.0.1:6380")));
    assert_eq!(failover_command(&mut h), AdminAnswer::Ok, "a second manual failover, back");
}

#[test]
fn manual_failover_refusals_use_sentinels_errors() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_to(500);
    let refusal = AdminRefusal::NoQuorum(Unauthorised::NoQuorum);
    assert_eq!(failover_command(&mut h), AdminAnswer::Refused(refusal.clone()));
    assert_eq!(refusal.to_string(), "NOQUORUM Not enough reachable voters to authorize a failover");
    h.advance_with_peers(1000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(failover_command(&mut h), AdminAnswer::Ok);
    let refusal = AdminRefusal::InProgress;
    assert_eq!(failover_command(&mut h), AdminAnswer::Refused(refusal.clone()));
    assert_eq!(refusal.to_string(), "INPROG Failover already in progress");

    let mut redis = Harness::group();
    for port in ["127.0.0.1:6380", "127.0.0.1:6381"] {
        redis.get_mut(&addr(port)).unwrap().priority = 0;
    }
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), redis);
    h.advance_with_peers(1000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(failover_command(&mut h), AdminAnswer::Refused(AdminRefusal::NoGoodReplica));
    assert_eq!(
        AdminRefusal::NoGoodReplica.to_string(),
        "NOGOODSLAVE No suitable replica to promote"
    );
    h.handle(Input::Admin {
        ticket: Ticket(8),
        command: AdminCommand::Failover { master: "nope".into() },
    });
    assert!(h.rendered().contains(&"answer Refused(NoSuchMaster)".to_owned()));
    assert_eq!(AdminRefusal::NoSuchMaster.to_string(), "ERR No such master with that name");
}

/// `SENTINEL CKQUORUM` (the view's authorisation) and `SENTINEL FAILOVER` apply one rule: at
/// every step the view says OK exactly when the failover is not refused with `NOQUORUM`.
#[test]
fn ckquorum_and_failover_agree() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    let ckquorum = |h: &mut Harness| {
        let view = h.sup.view();
        view.authorisation(view.master("mymaster").unwrap())
    };
    h.advance_to(500);
    let alone = ckquorum(&mut h);
    assert_eq!(
        alone,
        Authorisation {
            usable_voters: 1,
            quorum: 2,
            votes_needed: 2,
            blocked: Some(Unauthorised::NoQuorum)
        }
    );
    assert_eq!(
        alone.to_string(),
        "NOQUORUM 1 usable Sentinels. Not enough available Sentinels to reach the specified \
         quorum for this master. Not enough available Sentinels to reach the majority and \
         authorize a failover"
    );
    assert_eq!(
        failover_command(&mut h),
        AdminAnswer::Refused(AdminRefusal::NoQuorum(Unauthorised::NoQuorum))
    );
    h.advance_with_peers(1000, &[report("127.0.0.1:6379", 0, false, 0)]);
    let heard = ckquorum(&mut h);
    assert_eq!(heard.blocked, None);
    assert_eq!(heard.usable_voters, 3);
    assert_eq!(
        heard.to_string(),
        "OK 3 usable Sentinels. Quorum and failover authorization can be reached"
    );
    // The peers fall silent: past the contact window (300 ms), well before they count as stale
    // (1.5 s), both say no on the same clock.
    h.advance_to(1600);
    let silent = ckquorum(&mut h);
    assert_eq!(silent.blocked, Some(Unauthorised::NoQuorum), "{silent}");
    assert_eq!(
        failover_command(&mut h),
        AdminAnswer::Refused(AdminRefusal::NoQuorum(Unauthorised::NoQuorum))
    );
    h.advance_with_peers(2500, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert!(ckquorum(&mut h).granted());
    assert_eq!(failover_command(&mut h), AdminAnswer::Ok);
}

/// A node that lost its state may not vote until it learns its vote floor: neither may it
/// authorise a failover, and `CKQUORUM` says why.
#[test]
fn a_node_awaiting_its_vote_floor_is_not_authorised() {
    let mut h = Harness::new(settings(PEERS, 2), None, Harness::group());
    h.advance_to(500);
    let view = h.sup.view();
    let authorisation = view.authorisation(view.master("mymaster").unwrap());
    assert_eq!(authorisation.blocked, Some(Unauthorised::AwaitingVoteFloor));
    assert_eq!(
        authorisation.to_string(),
        "NOQUORUM 1 usable Sentinels. This node lost its state and has not yet learned which \
         epochs it may vote in"
    );
    assert_eq!(
        failover_command(&mut h),
        AdminAnswer::Refused(AdminRefusal::NoQuorum(Unauthorised::AwaitingVoteFloor))
    );
}

/// A heartbeat from fake peer `n` announcing version `seq` of its reports.
fn from_peer_heartbeat(n: u8, seq: u64) -> Input {
    let version = crate::engine::gossip::StateVersion { incarnation: u64::from(n), seq };
    super::harness::from_peer(n, 1, crate::engine::gossip::Body::Heartbeat { version })
}

/// A master with a single replica, as in the fifty-masters report.
fn master_and_one_replica() -> BTreeMap<crate::engine::Addr, Fake> {
    BTreeMap::from([
        (addr("127.0.0.1:6379"), Fake::master("m")),
        (addr("127.0.0.1:6380"), Fake::replica("r1", "127.0.0.1:6379")),
    ])
}

#[test]
fn a_replica_promoted_by_an_abandoned_failover_is_the_next_leaders_choice() {
    // The liveness failure of the fifty-masters report: a leader promoted the only replica and
    // then dropped its failover (it crashed, or, before, yielded to a newer epoch). The replica
    // reports role:master and no node names it; it still carries the master's history.
    let mut h = master_hung_with(2, master_and_one_replica());
    h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap().promote();
    let events = win_election(&mut h);
    assert_eq!(
        from(&events, "+elected-leader"),
        [
            "+elected-leader master mymaster 127.0.0.1 6379",
            "+failover-state-select-slave master mymaster 127.0.0.1 6379",
            "+selected-slave slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "+failover-state-send-slaveof-noone slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "+failover-state-wait-promotion slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "+promoted-slave slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "+failover-state-reconf-slaves master mymaster 127.0.0.1 6379",
            "-odown master mymaster 127.0.0.1 6379",
            "+failover-loss master mymaster 127.0.0.1 6379 #bytes 0",
            "+failover-end master mymaster 127.0.0.1 6379",
            "+switch-master mymaster 127.0.0.1 6379 127.0.0.1 6380",
            "+slave slave 127.0.0.1:6379 127.0.0.1 6379 @ mymaster 127.0.0.1 6380",
        ]
    );
    assert_eq!(h.sup.durable().masters["mymaster"].config_epoch, 1);
}

#[test]
fn a_replica_restarted_empty_as_a_master_is_never_promoted() {
    // Same shape, but the instance lost its data: a new history, none before it. Promoting it
    // would throw the master's data away.
    let mut h = master_hung_with(2, master_and_one_replica());
    let fake = h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap();
    fake.master_of = None;
    fake.replid = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1".into();
    fake.offset = 0;
    win_election(&mut h);
    h.advance_with_peers(2100, &sdown_reports());
    let events = h.events();
    assert!(
        events.contains(&"-failover-abort-no-good-slave master mymaster 127.0.0.1 6379".to_owned()),
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e.starts_with("+selected-slave")), "{events:?}");
}

#[test]
fn a_leader_past_its_election_refuses_newer_epochs_and_finishes() {
    // Before the fix the leader voted for a newer epoch after sending its promotion and dropped
    // its failover, leaving a promoted replica nobody named.
    let mut redis = master_and_one_replica();
    redis.get_mut(&addr("127.0.0.1:6380")).unwrap().ignores_replicaof = true;
    let mut h = master_hung_with(2, redis);
    let events = win_election(&mut h);
    assert!(events.iter().any(|e| e.starts_with("+failover-state-wait-promotion")), "{events:?}");
    h.take();
    h.handle(vote_request(2, 7, 0, false));
    let out = h.rendered();
    assert!(out.contains(&"peer1 vote-reply mymaster e=7 for=-".to_owned()), "{out:?}");
    assert!(!out.iter().any(|o| o.contains("abort")), "{out:?}");
    // The promotion shows; the failover completes under the leader's own epoch.
    let fake = h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap();
    fake.ignores_replicaof = false;
    fake.promote();
    h.advance_with_peers(2300, &sdown_reports());
    let state = h.sup.durable();
    assert_eq!(state.masters["mymaster"].addr, addr("127.0.0.1:6380"));
    assert_eq!(state.masters["mymaster"].config_epoch, 1);
}

#[test]
fn a_voter_refuses_a_newer_epoch_while_the_leader_it_voted_for_runs_its_failover() {
    let mut h = master_hung(2);
    h.handle(full_state(1, 0, 2, sdown_reports()));
    h.handle(vote_request(1, 1, 0, false));
    // Peer 1 reports the failover it leads (elected), with this node's vote, and keeps doing
    // so while it promotes.
    let mut leading = report("127.0.0.1:6379", 0, true, 1);
    leading.failover = Some(crate::engine::gossip::FailoverReport { epoch: 1, elected: true });
    h.advance_to(1500);
    h.handle(full_state(1, 1, 3, vec![leading]));
    h.advance_to(2600);
    h.handle(from_peer_heartbeat(1, 3));
    h.take();
    // Well past the election timeout, the leader still reports its failover: no new vote.
    h.handle(vote_request(2, 2, 0, false));
    let out = h.rendered();
    assert!(out.contains(&"peer1 vote-reply mymaster e=2 for=-".to_owned()), "{out:?}");
    // The leader gives up (its report shows no failover): the next epoch gets the vote.
    h.handle(full_state(1, 1, 4, vec![report("127.0.0.1:6379", 0, true, 1)]));
    h.take();
    h.handle(vote_request(2, 3, 0, false));
    let out = h.rendered();
    assert!(out.contains(&"peer1 vote-reply mymaster e=3 for=02020202".to_owned()), "{out:?}");
}

#[test]
fn split_candidates_agree_who_retries_first() {
    // Two survivors of three start in the same epoch and each votes for itself. The third node
    // is dead: waiting for its answer would keep the split election going for its whole timeout.
    let mut h = master_hung(2);
    // Peer 2 was last heard at 0: its reports lapse at 1500. Peer 1 sees the master down.
    h.handle(full_state(1, 0, 2, sdown_reports()));
    h.advance_to(1510);
    let events = h.events();
    assert!(
        events.contains(&"+try-failover master mymaster 127.0.0.1 6379".to_owned()),
        "{events:?}"
    );
    // Peer 1, also a candidate in epoch 1, answers with its own vote: nobody can win epoch 1.
    h.handle(vote_for(1, 1, crate::engine::ids::NodeId::from_bytes([1; 20])));
    let events = h.events();
    assert_eq!(events, ["-failover-abort-not-elected master mymaster 127.0.0.1 6379"]);
    // This node's id (0909...) is larger than peer 1's (0101...): it backs off for at least
    // two election jitters (100 ms), leaving peer 1 to retry at once and win its vote.
    h.advance_to(1609);
    assert!(!h.events().iter().any(|e| e.starts_with("+try-failover")));
}

#[test]
fn the_split_candidate_with_the_smallest_id_retries_at_once() {
    let mut h = master_hung(2);
    h.handle(full_state(1, 0, 2, sdown_reports()));
    h.advance_to(1510);
    h.take();
    // Peer 1 voted for a candidate with a larger id than this node's (0909...).
    h.handle(vote_for(1, 1, crate::engine::ids::NodeId::from_bytes([0xee; 20])));
    assert_eq!(h.events(), ["-failover-abort-not-elected master mymaster 127.0.0.1 6379"]);
    let aborted = h.now.as_millis();
    h.advance_to(aborted + 1);
    let events = h.events();
    assert!(
        events.contains(&"+try-failover master mymaster 127.0.0.1 6379".to_owned()),
        "{events:?}"
    );
    assert!(events.contains(&"+new-epoch 2".to_owned()), "{events:?}");
}

#[test]
fn a_manual_failover_in_tilt_waits_for_tilt_to_end() {
    // With no peers a single vote elects: before the fix, SENTINEL FAILOVER during TILT elected
    // the node on the spot and sent the promotion although TILT forbids any reconfiguration.
    let mut h = Harness::new(settings(&[], 1), Some(known_node(9)), Harness::group());
    h.advance_to(1000);
    h.take();
    h.now = crate::engine::time::Instant::from_millis(4000);
    h.handle(Input::Tick);
    assert_eq!(h.events(), ["+tilt #tilt mode entered"]);
    h.handle(Input::Admin {
        ticket: Ticket(1),
        command: AdminCommand::Failover { master: "mymaster".into() },
    });
    let out = h.take();
    assert!(out.contains(&Output::Answer { ticket: Ticket(1), answer: AdminAnswer::Ok }));
    let sent_promotion = |out: &[Output]| {
        out.iter().any(|o| {
            matches!(
                o,
                Output::Send { command: crate::engine::io::RedisCommand::Promote { .. }, .. }
            )
        })
    };
    assert!(!sent_promotion(&out), "{out:?}");
    h.advance_to(33_999);
    assert!(!sent_promotion(&h.take()));
    // TILT ends 30 s after it began: the operator's failover goes ahead.
    h.advance_to(34_100);
    assert!(sent_promotion(&h.take()));
}

/// The view shows each instance's eligibility by the rule the failover's replica selection
/// applies: what `/is-replica`, metrics and `why` render. When no replica is eligible, a failover
/// is refused with `NOGOODSLAVE`.
#[test]
fn the_view_shows_each_replicas_eligibility_by_the_selection_rule() {
    let mut redis = Harness::group();
    redis.get_mut(&addr("127.0.0.1:6380")).unwrap().priority = 0;
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), redis);
    h.advance_with_peers(3000, &[report("127.0.0.1:6379", 0, false, 0)]);
    let eligibility = |h: &mut Harness| {
        let view = h.sup.view();
        let m = view.master("mymaster").unwrap();
        std::iter::once(&m.master)
            .chain(&m.replicas)
            .map(|i| (i.addr.to_string(), i.ineligible))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        eligibility(&mut h),
        [
            ("127.0.0.1:6379".to_owned(), Some(Ineligible::CurrentMaster)),
            ("127.0.0.1:6380".to_owned(), Some(Ineligible::PriorityZero)),
            ("127.0.0.1:6381".to_owned(), None),
        ]
    );
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().hung = true;
    h.advance_with_peers(6000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(
        eligibility(&mut h),
        [
            ("127.0.0.1:6379".to_owned(), Some(Ineligible::CurrentMaster)),
            ("127.0.0.1:6380".to_owned(), Some(Ineligible::PriorityZero)),
            ("127.0.0.1:6381".to_owned(), Some(Ineligible::Sdown)),
        ]
    );
    assert_eq!(failover_command(&mut h), AdminAnswer::Refused(AdminRefusal::NoGoodReplica));
}

#[test]
fn a_deposed_master_counts_for_the_new_masters_lease_only_once_it_follows_it() {
    // The old master comes back (a partition heals) still claiming to be the master: it must
    // resynchronise in full before it can acknowledge the new master. Counting it for the new
    // master's lease meanwhile made the new master refuse every write (NOREPLICAS) until the
    // resync ended: found by tests/fencing.rs (real partitions, redis-py writers).
    let mut fenced = settings(PEERS, 2);
    fenced.masters[0].fencing = crate::engine::fence::Fencing::Bounded;
    let mut h = Harness::new(fenced, Some(known_node(9)), Harness::group());
    let old_config = [report("127.0.0.1:6379", 0, false, 0)];
    h.advance_with_peers(3000, &old_config);
    h.take();
    // Another node promoted 6380 (the old master never heard of it) and announces epoch 1.
    h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap().master_of = None;
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().master_of = Some(addr("127.0.0.1:6380"));
    let new_config = [report("127.0.0.1:6380", 1, false, 1)];
    h.handle(full_state(1, 1, 1, new_config.to_vec()));
    h.handle(full_state(2, 1, 1, new_config.to_vec()));
    h.advance_with_peers(20_000, &new_config);
    let leases: Vec<String> =
        h.events().into_iter().filter(|e| e.starts_with("+fence-lease")).collect();
    assert_eq!(
        leases,
        [
            "+fence-lease master mymaster 127.0.0.1 6380 #min-replicas 1 of 1",
            "+fence-lease master mymaster 127.0.0.1 6380 #min-replicas 2 of 2",
        ]
    );
    assert_eq!(h.redis[&addr("127.0.0.1:6379")].master_of, Some(addr("127.0.0.1:6380")));
    assert_eq!(h.redis[&addr("127.0.0.1:6380")].lease.min_replicas, 2);
}

/// The standard group fenced in `bounded` mode, watched with both peers; another node then
/// promotes 6380 (epoch 1) while this node is cut off from 6379, which therefore never rejoins
/// in its eyes. Outputs so far are taken.
fn promoted_elsewhere_while_the_old_master_is_cut_off() -> Harness {
    let mut fenced = settings(PEERS, 2);
    fenced.masters[0].fencing = crate::engine::fence::Fencing::Bounded;
    let mut h = Harness::new(fenced, Some(known_node(9)), Harness::group());
    h.advance_with_peers(3000, &[report("127.0.0.1:6379", 0, false, 0)]);
    h.hang("127.0.0.1:6379");
    h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap().master_of = None;
    h.redis.get_mut(&addr("127.0.0.1:6381")).unwrap().master_of = Some(addr("127.0.0.1:6380"));
    let new_config = [report("127.0.0.1:6380", 1, false, 1)];
    h.handle(full_state(1, 1, 1, new_config.to_vec()));
    h.handle(full_state(2, 1, 1, new_config.to_vec()));
    h.advance_with_peers(20_000, &new_config);
    h.take();
    h
}

#[test]
fn a_node_that_never_saw_the_deposed_master_rejoin_leaves_a_lease_others_raised_for_it() {
    let mut h = promoted_elsewhere_while_the_old_master_is_cut_off();
    assert_eq!(h.redis[&addr("127.0.0.1:6380")].lease.min_replicas, 1);
    // The other nodes saw 6379 rejoin and raised 6380's lease to count it. This node, which
    // still cannot reach 6379, must not lower it back (simulator seed 843: a node cut off with
    // the master lowered it, and the master took writes past the window a failover stated).
    h.redis.get_mut(&addr("127.0.0.1:6380")).unwrap().lease =
        crate::engine::fence::Lease::majority_of(2);
    h.advance_with_peers(40_000, &[report("127.0.0.1:6380", 1, false, 1)]);
    let leases: Vec<String> =
        h.events().into_iter().filter(|e| e.starts_with("+fence-lease")).collect();
    assert_eq!(leases, Vec::<String>::new());
    assert_eq!(h.redis[&addr("127.0.0.1:6380")].lease.min_replicas, 2);
}

#[test]
fn a_node_that_adopts_a_new_master_forgets_the_lease_it_read_from_it_before() {
    let mut h = promoted_elsewhere_while_the_old_master_is_cut_off();
    // This node had set and read 6379's lease while it was the master. Another failover puts
    // 6379 back (epoch 2), setting a lease of its own there, while this node still cannot
    // reach it: the old reading must not stand for it (simulator seed 8606187 stated a fence
    // window from a lease the promotion had lowered).
    let back = [report("127.0.0.1:6379", 2, false, 2)];
    h.handle(full_state(1, 2, 100_000_000, back.to_vec()));
    h.handle(full_state(2, 2, 100_000_000, back.to_vec()));
    let view = h.sup.view();
    let master = view.master("mymaster").unwrap();
    assert_eq!(master.addr, addr("127.0.0.1:6379"));
    assert_eq!(master.safety.lease, None);
}

#[test]
fn a_node_that_adopts_a_newer_configuration_of_the_same_master_forgets_its_lease() {
    let mut fenced = settings(PEERS, 2);
    fenced.masters[0].fencing = crate::engine::fence::Fencing::Bounded;
    let mut h = Harness::new(fenced, Some(known_node(9)), Harness::group());
    h.advance_with_peers(3000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert!(h.sup.view().masters[0].safety.lease.is_some(), "read");
    // Cut off from 6379 while others demoted it and promoted it again (epoch 2), setting a
    // lease of their own there: this node's reading is from the older configuration
    // (simulator seed 8800359 stated a fence window from it).
    h.hang("127.0.0.1:6379");
    let again = [report("127.0.0.1:6379", 2, false, 2)];
    h.handle(full_state(1, 2, 100_000_000, again.to_vec()));
    h.handle(full_state(2, 2, 100_000_000, again.to_vec()));
    let view = h.sup.view();
    assert_eq!(view.masters[0].config_epoch, 2);
    assert_eq!(view.masters[0].safety.lease, None);
}

/// A node restarted from a state that knows the standard group, its master dead, its replicas
/// reporting their link down for `down_for` (6380, 6381) seconds.
fn restarted_beside_a_dead_master(down_for: [u64; 2]) -> Vec<String> {
    let mut redis = Harness::group();
    redis.get_mut(&addr("127.0.0.1:6379")).unwrap().up = false;
    for (port, secs) in ["127.0.0.1:6380", "127.0.0.1:6381"].into_iter().zip(down_for) {
        redis.get_mut(&addr(port)).unwrap().link_down_for = Some(Duration::from_secs(secs));
    }
    let state = known_group_node(9);
    let mut h = Harness::new(settings(&[], 1), Some(state), redis);
    h.advance_to(10_000);
    h.events()
}

#[test]
fn replicas_that_lost_the_master_together_stay_eligible_after_a_restart() {
    // The node (re)starts 30 s after the master died: its own SDOWN clock starts now, but every
    // replica reports its link down for 30 s. Measured from this node's SDOWN alone they would
    // all be disconnected for too long (more than ten down-after periods), for ever (simulator
    // seed 8903965); they lost the master together, so the master has been gone that long.
    let events = restarted_beside_a_dead_master([30, 30]);
    assert!(events.iter().any(|e| e.starts_with("+promoted-slave")), "{events:?}");
    // A replica that lost it long before the others still does not count.
    let events = restarted_beside_a_dead_master([30, 90]);
    assert!(
        events.iter().any(|e| e.starts_with("+selected-slave slave 127.0.0.1:6380")),
        "{events:?}"
    );
}
