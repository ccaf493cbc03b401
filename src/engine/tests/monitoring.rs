//! Monitoring: discovery, SDOWN timing and recovery, reboots, links. Single node with two silent
//! peers, so that nothing goes beyond SDOWN.

use super::harness::{Harness, settings};
use crate::engine::io::{Output, RedisCommand};

const PEERS: &[&str] = &["127.0.0.2:26380", "127.0.0.3:26380"];

fn started() -> Harness {
    Harness::with_group(settings(PEERS, 2))
}

#[test]
fn first_start_persists_its_identity_before_any_other_output() {
    let mut h = Harness::new(settings(PEERS, 2), None, Harness::group());
    let out = h.take();
    let Output::Persist(state) = &out[0] else { panic!("first output is {:?}", out[0]) };
    assert_eq!(state.node_id, h.sup.id());
    assert_eq!(state.current_epoch, 0);
    assert!(state.awaiting_vote_floor, "a fresh node must learn its vote floor before voting");
    assert!(
        matches!(&out[1], Output::Emit(e) if e.to_string() == "+monitor master mymaster 127.0.0.1 6379 quorum 2")
    );
}

#[test]
fn replicas_are_discovered_from_the_masters_info() {
    let mut h = started();
    let events = h.events();
    assert_eq!(
        events,
        vec![
            "+monitor master mymaster 127.0.0.1 6379 quorum 2",
            "+slave slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "+slave slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6379",
        ]
    );
    let view = h.sup.view();
    let master = view.master("mymaster").unwrap();
    let replicas: Vec<String> = master.replicas.iter().map(|r| r.addr.to_string()).collect();
    assert_eq!(replicas, ["127.0.0.1:6380", "127.0.0.1:6381"]);
    assert!(master.replicas.iter().all(|r| r.link_up && r.role == Some("slave")));
    // Discovered replicas are written lazily, within a second.
    h.advance_to(999);
    assert!(!h.take().iter().any(|o| matches!(o, Output::Persist(_))));
    h.advance_to(1000);
    let persisted = h.take().into_iter().find_map(|o| match o {
        Output::Persist(s) => Some(s),
        _ => None,
    });
    let replicas = &persisted.expect("replicas persisted").masters["mymaster"].replicas;
    assert_eq!(replicas.len(), 2);
}

#[test]
fn pings_follow_a_tenth_of_down_after() {
    let mut h = started();
    h.take();
    h.advance_to(100);
    let pings = h
        .take()
        .iter()
        .filter(|o| matches!(o, Output::Send { command: RedisCommand::Ping, .. }))
        .count();
    assert_eq!(pings, 3, "one PING per instance every 100 ms");
}

#[test]
fn hung_master_is_sdown_down_after_its_oldest_unanswered_ping_and_recovers() {
    let mut h = started();
    h.advance_to(450);
    h.hang("127.0.0.1:6379");
    h.events();
    // The last PONG came at 400; the PING sent at 500 is the first left unanswered: down
    // strictly after 1500 (the hang began at 450, so within `down_after` plus a ping period).
    h.advance_to(1500);
    assert_eq!(h.events(), Vec::<String>::new());
    h.advance_to(1501);
    assert_eq!(h.events(), ["+sdown master mymaster 127.0.0.1 6379"]);
    assert_eq!(h.sup.view().master("mymaster").unwrap().status.as_str(), "sdown");
    h.advance_to(3000);
    h.events();
    h.resume("127.0.0.1:6379");
    assert_eq!(h.events(), ["-sdown master mymaster 127.0.0.1 6379"]);
}

/// A master busy for a little less than `down_after` (`DEBUG SLEEP 0.95`, a slow fork) from just
/// before a PING reached it answers that PING 1050 ms after its previous reply: longer than
/// `down_after` since the last reply, but less since the PING was sent. Counting silence from
/// the last reply would call it down; it is not.
#[test]
fn a_master_busy_for_less_than_down_after_is_never_down() {
    let mut h = started();
    h.advance_to(499);
    h.events();
    // The last PONG came at 400; the next PING goes out at 500 and waits out the block.
    h.hang("127.0.0.1:6379");
    h.advance_to(1450);
    h.resume("127.0.0.1:6379");
    h.advance_to(3000);
    let events = h.events();
    assert!(!events.iter().any(|e| e.contains("sdown")), "{events:?}");
}

#[test]
fn killed_replica_is_sdown_then_seen_rebooted_after_restart() {
    let mut h = started();
    h.advance_to(3050);
    h.events();
    h.kill("127.0.0.1:6380");
    // Its link closes and the reconnection at once (3050) is the first probe left unanswered.
    h.advance_to(4050);
    assert_eq!(h.events(), Vec::<String>::new());
    h.advance_to(4051);
    assert_eq!(
        h.events(),
        ["+sdown slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379"]
    );
    h.restart("127.0.0.1:6380", "r1-restarted", Some("127.0.0.1:6379"));
    // Reconnect attempts are at most a ping period apart.
    h.advance(100);
    assert_eq!(
        h.events(),
        [
            "-sdown slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
            "+reboot slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379",
        ]
    );
}

#[test]
fn restarted_master_is_a_reboot_not_an_outage() {
    let mut h = started();
    h.advance_to(2000);
    h.events();
    h.kill("127.0.0.1:6379");
    h.restart("127.0.0.1:6379", "m-restarted", None);
    h.advance(100);
    assert_eq!(h.events(), ["+reboot master mymaster 127.0.0.1 6379"]);
}

#[test]
fn reconnects_back_off_but_never_wait_longer_than_a_ping_period() {
    let mut h = started();
    h.advance_to(1000);
    h.kill("127.0.0.1:6381");
    h.take();
    h.advance_to(3000);
    let attempts = h.take().iter().filter(|o| matches!(o, Output::Connect { .. })).count();
    // 25, 50, then every 100 ms: about 2 s / 100 ms attempts, never a storm.
    assert!((18..=22).contains(&attempts), "{attempts} attempts");
}

#[test]
fn replicas_of_a_down_master_are_polled_every_ping_period() {
    let mut h = started();
    // Mid-way through the slow INFO period, so nothing is fresh by chance.
    h.advance_to(6450);
    h.hang("127.0.0.1:6379");
    h.advance_to(7401);
    h.take();
    h.advance_to(8401);
    let infos = h
        .take()
        .iter()
        .filter(|o| matches!(o, Output::Send { command: RedisCommand::Info, .. }))
        .count();
    // Two replicas, every 100 ms for a second (the hung master's INFO stays unanswered).
    assert!((18..=22).contains(&infos), "{infos} INFO requests");
    let view = h.sup.view();
    let master = view.master("mymaster").unwrap();
    for replica in &master.replicas {
        assert!(h.now.saturating_since(replica.info_at.unwrap()).as_millis() <= 100);
    }
}

#[test]
fn only_changes_readers_must_see_at_once_make_the_view_urgent() {
    let mut h = started();
    h.sup.view();
    // A round of PING replies changes reply times: worth a refresh, not an immediate one.
    h.advance_to(100);
    assert!(h.sup.view_changed());
    assert!(!h.sup.view_urgent());
    h.sup.view();
    // The master going down is news.
    h.hang("127.0.0.1:6379");
    h.advance_to(1300);
    assert!(h.sup.view_urgent());
    assert_eq!(h.sup.view().master("mymaster").unwrap().status.as_str(), "sdown");
    assert!(!h.sup.view_urgent());
}

#[test]
fn an_event_makes_the_view_urgent_even_when_the_master_is_unchanged() {
    let mut h = started();
    h.advance_to(100);
    h.take();
    h.sup.view();
    h.hang("127.0.0.1:6380");
    // The replica's reply time ages without news until it is subjectively down.
    h.advance_to(1050);
    h.take();
    h.sup.view();
    h.advance_to(1250);
    let out = h.take();
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Emit(e) if e.to_string().starts_with("+sdown slave"))),
        "{out:?}"
    );
    assert!(h.sup.view_urgent());
    let view = h.sup.view();
    let replica = view
        .master("mymaster")
        .unwrap()
        .replicas
        .iter()
        .find(|r| r.addr.to_string() == "127.0.0.1:6380");
    assert!(replica.unwrap().sdown_since.is_some());
}

/// An instance answers its first PINGs every 100 ms (a tenth of `down_after`); after five prompt
/// `PONG`s in a row since its first INFO it is settled and pinged every second (`down_after`, at
/// most 1 s: Sentinel's period), while nothing about its group is in doubt.
#[test]
fn settled_instances_are_pinged_at_the_calm_period() {
    let settled = [0, 100, 200, 300, 400, 500, 1500, 2500, 3500];
    let mut h = started();
    assert_eq!(h.ping_times("127.0.0.1:6379", 3600), settled);
    let mut h = started();
    assert_eq!(h.ping_times("127.0.0.1:6380", 3600), settled);
}

/// A settled master that hangs right after a reply is down within `down_after` plus the calm
/// period: its next PING goes out a second after the last, and the silence counts from it.
#[test]
fn a_settled_master_that_hangs_is_down_within_down_after_plus_the_calm_period() {
    let mut h = started();
    h.advance_to(1500);
    h.hang("127.0.0.1:6379");
    h.events();
    h.advance_to(3500);
    assert_eq!(h.events(), Vec::<String>::new());
    h.advance_to(3501);
    assert_eq!(h.events(), ["+sdown master mymaster 127.0.0.1 6379"]);
}

/// A late reply (150 ms, more than the fast period) brings the fast period back until five prompt
/// replies in a row; meanwhile its replicas too are pinged fast from the moment the master's
/// PING is late.
#[test]
fn a_late_reply_brings_back_the_fast_period_until_five_prompt_ones() {
    let mut h = started();
    h.advance_to(1500);
    h.take();
    h.hang("127.0.0.1:6379");
    assert_eq!(h.ping_times("127.0.0.1:6379", 2650), [2500]);
    h.resume("127.0.0.1:6379");
    // The PING of 2500 is answered at 2650, late: the next, due at 2600 at the fast period, goes
    // out at once, and four more prompt ones 100 ms apart before the calm period resumes.
    let pings = h.ping_times("127.0.0.1:6379", 4100);
    assert_eq!(pings, [2650, 2750, 2850, 2950, 3050, 4050]);

    let mut h = started();
    h.advance_to(1500);
    h.take();
    h.hang("127.0.0.1:6379");
    // The master's PING of 2500 is late from 2601: its replicas are pinged fast from then.
    assert_eq!(h.ping_times("127.0.0.1:6380", 2900), [2500, 2601, 2701, 2801]);
}

/// A peer's report that the master is down puts the group in doubt: the master's next PING goes
/// out at the fast period, not a second after the last.
#[test]
fn a_peer_seeing_the_master_down_brings_back_the_fast_period() {
    use super::harness::{full_state, report};
    let mut h = started();
    h.advance_to(1520);
    h.take();
    h.handle(full_state(1, 0, 1, vec![report("127.0.0.1:6379", 0, true, 0)]));
    assert_eq!(h.ping_times("127.0.0.1:6379", 1850), [1600, 1700, 1800]);
}

/// An instance seen changing role is pinged at the fast period again until it has answered five
/// PINGs promptly since.
#[test]
fn a_role_change_brings_back_the_fast_period() {
    let mut h = started();
    h.advance_to(8999);
    h.take();
    h.redis.get_mut(&super::harness::addr("127.0.0.1:6381")).unwrap().master_of = None;
    // Its INFO of 10 s shows it a master: it is pinged at once (the fast period has long
    // passed since the PING of 9500), then 100 ms apart until five prompt `PONG`s.
    let pings = h.ping_times("127.0.0.1:6381", 11_600);
    assert_eq!(pings, [9500, 10_000, 10_100, 10_200, 10_300, 10_400, 11_400]);
}
