//! The crash rule: an instance whose host refuses every connection attempt for longer than
//! `down_after_refused` is subjectively down long before `down_after`; silence keeps the
//! `down_after` rule, and quorum still decides.

use std::time::Duration;

use super::harness::{Harness, PEERS, full_state, known_node, report, settings};
use crate::engine::io::Output;
use crate::engine::settings::Settings;

/// `down_after` 5 s, the crash rule after 300 ms of refusals.
fn crash_settings(quorum: u32) -> Settings {
    let mut s = settings(PEERS, quorum);
    s.masters[0].down_after = Duration::from_millis(5000);
    s.masters[0].down_after_refused = Some(Duration::from_millis(300));
    s
}

/// A node that has run before, its peers heard at t=0 seeing the master up, at 2050 ms with its
/// outputs taken.
fn running(quorum: u32) -> Harness {
    running_with(crash_settings(quorum))
}

/// [`running`] with settings `s`.
fn running_with(s: Settings) -> Harness {
    let mut h = Harness::new(s, Some(known_node(9)), Harness::group());
    h.handle(full_state(1, 0, 1, vec![report("127.0.0.1:6379", 0, false, 0)]));
    h.handle(full_state(2, 0, 1, vec![report("127.0.0.1:6379", 0, false, 0)]));
    h.advance_to(2050);
    h.take();
    h
}

/// The instants (ms) of the connection attempts to `addr` until `to`, advancing 1 ms at a time.
fn connect_times(h: &mut Harness, addr: &str, to: u64) -> Vec<u64> {
    let mut times = Vec::new();
    while h.now.as_millis() < to {
        h.advance(1);
        let connects = h
            .take()
            .iter()
            .filter(|o| matches!(o, Output::Connect { addr: a, .. } if a.to_string() == addr))
            .count();
        times.extend(std::iter::repeat_n(h.now.as_millis(), connects));
    }
    times
}

#[test]
fn a_killed_master_is_down_once_its_refusals_span_the_threshold() {
    let mut h = running(2);
    h.kill("127.0.0.1:6379");
    // The closed link is reopened at once (at 2050) and refused; the backoff doubles to 50 ms, not the
    // 500 ms ping period, while attempts are refused.
    assert_eq!(h.events(), Vec::<String>::new());
    assert_eq!(connect_times(&mut h, "127.0.0.1:6379", 2350), [2075, 2125, 2175, 2225, 2275, 2325]);
    assert_eq!(h.events(), Vec::<String>::new());
    // The next attempt is not the backoff's (2375) but the first instant past the threshold:
    // refused from 2050 to 2351, 301 ms > 300 ms.
    h.advance_to(2351);
    assert_eq!(h.events(), ["+sdown master mymaster 127.0.0.1 6379"]);
    assert_eq!(h.sup.view().master("mymaster").unwrap().status.as_str(), "sdown");
    // Down: attempts fall back to the ping period (500 ms), as without the rule.
    assert_eq!(connect_times(&mut h, "127.0.0.1:6379", 3400), [2851, 3351]);
    assert_eq!(h.sup.view().master("mymaster").unwrap().status.as_str(), "sdown");
}

#[test]
fn peers_are_told_and_quorum_still_decides() {
    let mut h = running(2);
    h.kill("127.0.0.1:6379");
    h.advance_to(2375);
    let told: Vec<String> = h.rendered().into_iter().filter(|o| o.contains("state-")).collect();
    assert_eq!(
        told,
        [
            "peer0 state-delta [mymaster 127.0.0.1:6379 cfg=0 sdown=true voted=0 failover=-]",
            "peer1 state-delta [mymaster 127.0.0.1:6379 cfg=0 sdown=true voted=0 failover=-]",
        ]
    );
    // Alone, the node's SDOWN is not ODOWN; one peer's agreement makes the quorum of 2.
    h.advance_to(2400);
    h.handle(full_state(1, 0, 2, vec![report("127.0.0.1:6379", 0, false, 0)]));
    assert!(!h.events().iter().any(|e| e.starts_with("+odown")));
    h.handle(full_state(1, 0, 3, vec![report("127.0.0.1:6379", 0, true, 0)]));
    assert_eq!(h.events(), ["+odown master mymaster 127.0.0.1 6379 #quorum 2/2"]);
}

#[test]
fn a_hung_master_keeps_the_down_after_rule() {
    let mut h = running(2);
    // Its last PONG came at 2000 (pings every 500 ms), its PING of 2500 is never answered; a
    // stopped process refuses nothing.
    h.hang("127.0.0.1:6379");
    h.advance_to(7500);
    assert_eq!(h.events(), Vec::<String>::new());
    h.advance_to(7501);
    assert_eq!(h.events(), ["+sdown master mymaster 127.0.0.1 6379"]);
}

#[test]
fn a_master_back_within_the_threshold_is_never_down() {
    let mut h = running(2);
    h.kill("127.0.0.1:6379");
    h.advance_to(2300);
    h.restart("127.0.0.1:6379", "m-restarted", None);
    h.advance_to(9000);
    let events = h.events();
    assert!(!events.iter().any(|e| e.starts_with("+sdown master")), "{events:?}");
}

#[test]
fn a_restarted_master_clears_the_crash_rules_sdown() {
    let mut h = running(2);
    h.kill("127.0.0.1:6379");
    h.advance_to(2375);
    h.events();
    h.restart("127.0.0.1:6379", "m-restarted", None);
    // Seen at the next attempt, one ping period after the last refusal (2351).
    h.advance_to(2850);
    assert_eq!(h.events(), Vec::<String>::new());
    h.advance_to(2851);
    assert_eq!(
        h.events(),
        ["-sdown master mymaster 127.0.0.1 6379", "+reboot master mymaster 127.0.0.1 6379"]
    );
}

#[test]
fn zero_turns_the_crash_rule_off() {
    let mut s = crash_settings(2);
    s.masters[0].down_after_refused = Some(Duration::ZERO);
    let mut h = running_with(s);
    h.kill("127.0.0.1:6379");
    assert_eq!(h.events(), Vec::<String>::new());
    // Attempts back off to the ping period, and only silence makes the master down: 5 s from
    // the first attempt left unanswered (the reconnection at 2050, as the link closed).
    assert_eq!(connect_times(&mut h, "127.0.0.1:6379", 2800), [2075, 2125, 2225, 2425]);
    h.advance_to(7050);
    assert_eq!(h.events(), Vec::<String>::new());
    h.advance_to(7051);
    assert_eq!(h.events(), ["+sdown master mymaster 127.0.0.1 6379"]);
}
