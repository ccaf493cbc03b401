//! The leader's failover, its abort paths, TILT, and convergence outside failovers.

use super::harness::{
    Fake, Harness, PEERS, addr, full_state, known_node, master_hung, master_hung_with, report,
    settings, vote_for, vote_request,
};
use crate::engine::gossip::MasterReport;
use crate::engine::ids::Ticket;
use crate::engine::io::{AdminAnswer, AdminCommand, Input, Output};

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
    // The retry comes after one to two election timeouts (1-2 s), well within failover_timeout.
    h.advance_with_peers(2500, &sdown_reports());
    assert!(!h.events().iter().any(|e| e.starts_with("+try-failover")));
    h.advance_with_peers(4000, &sdown_reports());
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
    assert_eq!(
        failover_command(&mut h),
        AdminAnswer::Refused("NOQUORUM Not enough reachable voters to authorize a failover".into())
    );
    h.advance_with_peers(1000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(failover_command(&mut h), AdminAnswer::Ok);
    assert_eq!(
        failover_command(&mut h),
        AdminAnswer::Refused("INPROG Failover already in progress".into())
    );

    let mut redis = Harness::group();
    for port in ["127.0.0.1:6380", "127.0.0.1:6381"] {
        redis.get_mut(&addr(port)).unwrap().priority = 0;
    }
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), redis);
    h.advance_with_peers(1000, &[report("127.0.0.1:6379", 0, false, 0)]);
    assert_eq!(
        failover_command(&mut h),
        AdminAnswer::Refused("NOGOODSLAVE No suitable replica to promote".into())
    );
    h.handle(Input::Admin {
        ticket: Ticket(8),
        command: AdminCommand::Failover { master: "nope".into() },
    });
    assert!(
        h.rendered().contains(&"answer Refused(\"ERR No such master with that name\")".to_owned())
    );
}
