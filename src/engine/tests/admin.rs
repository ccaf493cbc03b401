//! Operator commands: MONITOR, REMOVE, SET, RESET, FLUSHCONFIG, and how they survive restarts.

use super::harness::{Fake, Harness, addr, known_node, render, settings};
use crate::engine::admin::SetOption;
use crate::engine::ids::Ticket;
use crate::engine::io::{AdminAnswer, AdminCommand, AdminRefusal, Input, Output};

fn admin(h: &mut Harness, command: AdminCommand) -> AdminAnswer {
    h.handle(Input::Admin { ticket: Ticket(1), command });
    let out = h.take();
    out.iter()
        .find_map(|o| match o {
            Output::Answer { answer, .. } => Some(answer.clone()),
            _ => None,
        })
        .expect("an answer")
}

/// `SENTINEL INFO-CACHE`: each named master once (unknown names skipped), its last INFO text
/// then its replicas', with their ages, from the engine's own reports.
#[test]
fn info_cache_answers_each_named_master_once() {
    let mut h = Harness::new(settings(&[], 1), Some(known_node(9)), Harness::group());
    h.advance_to(2000);
    h.take();
    let _ = h.sup.view();
    let masters = vec!["mymaster".into(), "nope".into(), "mymaster".into()];
    let AdminAnswer::InfoCache(entries) = admin(&mut h, AdminCommand::InfoCache { masters }) else {
        panic!("not an INFO-CACHE answer")
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].master, "mymaster");
    let texts: Vec<_> = entries[0].instances.iter().map(|(_, text)| text.as_deref()).collect();
    assert_eq!(texts, [Some("run_id:m"), Some("run_id:r1"), Some("run_id:r2")]);
    assert!(!h.sup.view_urgent(), "a read publishes no view");
    let view = h.sup.view();
    let info_at = view.masters[0].master.info_at.expect("INFO answered");
    assert_eq!(entries[0].instances[0].0, 2000 - info_at.as_millis());
    // The view carries what the HTTP API shows of the master's listing: each replica's lag.
    let lags: Vec<_> = view.masters[0].replicas.iter().map(|r| r.listed_lag_s).collect();
    assert_eq!(lags, [Some(0), Some(0)]);
}

fn with_extra_redis() -> Harness {
    let mut redis = Harness::group();
    redis.insert(addr("127.0.0.1:7000"), Fake::master("x"));
    Harness::new(settings(&[], 1), Some(known_node(9)), redis)
}

#[test]
fn monitor_adds_a_master_and_refuses_duplicates() {
    let mut h = with_extra_redis();
    h.take();
    let monitor =
        AdminCommand::Monitor { name: "extra".into(), addr: addr("127.0.0.1:7000"), quorum: 1 };
    h.handle(Input::Admin { ticket: Ticket(1), command: monitor.clone() });
    let out: Vec<String> = h.take().iter().map(render).collect();
    assert!(out[0].starts_with("persist"), "{out:?}");
    assert_eq!(out[1], "emit +monitor master extra 127.0.0.1 7000 quorum 1");
    assert_eq!(out[2], "answer Ok");
    assert!(out.contains(&"connect 127.0.0.1:7000".to_owned()), "{out:?}");
    assert!(h.sup.view().master("extra").is_some());
    assert_eq!(admin(&mut h, monitor), AdminAnswer::Refused(AdminRefusal::DuplicateName));
    let zero = AdminCommand::Monitor { name: "z".into(), addr: addr("127.0.0.1:7001"), quorum: 0 };
    assert_eq!(admin(&mut h, zero), AdminAnswer::Refused(AdminRefusal::QuorumZero));
    let big = AdminCommand::Monitor { name: "z".into(), addr: addr("127.0.0.1:7001"), quorum: 2 };
    assert_eq!(
        admin(&mut h, big),
        AdminAnswer::Refused(AdminRefusal::QuorumAboveVoters { voters: 1 })
    );
    assert_eq!(
        AdminRefusal::QuorumAboveVoters { voters: 1 }.to_string(),
        "ERR Quorum must be at most the number of voters (1: this node and its peers)"
    );
    assert_eq!(AdminRefusal::QuorumZero.to_string(), "ERR Quorum must be 1 or greater.");
    assert_eq!(AdminRefusal::DuplicateName.to_string(), "ERR Duplicate master name.");
}

/// The crash rule's threshold is set like Sentinel's own keys (persisted with the file's value it
/// replaced, announced, in the view), under the file's rule: below `down_after`, or 0 for off.
#[test]
fn set_changes_the_crash_rule_below_down_after_only() {
    use std::time::Duration;
    let mut h = with_extra_redis();
    h.take();
    let set = |ms| AdminCommand::Set {
        master: "mymaster".into(),
        option: SetOption::DownAfterRefused((ms > 0).then(|| Duration::from_millis(ms))),
    };
    assert_eq!(
        admin(&mut h, set(1000)),
        AdminAnswer::Refused(AdminRefusal::RefusedNotBelowDownAfter {
            down_after: Duration::from_millis(1000)
        })
    );
    assert_eq!(
        AdminRefusal::RefusedNotBelowDownAfter { down_after: Duration::from_millis(1000) }
            .to_string(),
        "ERR down-after-refused-milliseconds must be less than down-after-milliseconds (1000), \
         or 0 to turn the crash rule off"
    );
    assert_eq!(h.sup.view().master("mymaster").unwrap().down_after_refused, None);
    h.handle(Input::Admin { ticket: Ticket(1), command: set(200) });
    let out: Vec<String> = h.take().iter().map(render).collect();
    assert!(out[0].starts_with("persist"), "{out:?}");
    assert_eq!(
        out[1],
        "emit +set master mymaster 127.0.0.1 6379 down-after-refused-milliseconds 200"
    );
    let state = h.sup.durable();
    let change = &state.masters["mymaster"].settings["down-after-refused-milliseconds"];
    // The harness's file turns the rule off.
    assert_eq!(change.file_value.as_deref(), Some("0"));
    assert_eq!(change.value, "200");
    let view = h.sup.view();
    assert_eq!(
        view.master("mymaster").unwrap().down_after_refused,
        Some(Duration::from_millis(200))
    );
    assert_eq!(admin(&mut h, set(0)), AdminAnswer::Ok);
    assert_eq!(h.sup.view().master("mymaster").unwrap().down_after_refused, None);
}

#[test]
fn set_changes_a_master_and_announces_it() {
    let mut h = with_extra_redis();
    h.take();
    let set = AdminCommand::Set {
        master: "mymaster".into(),
        option: SetOption::DownAfter(std::time::Duration::from_millis(5000)),
    };
    h.handle(Input::Admin { ticket: Ticket(1), command: set });
    let out: Vec<String> = h.take().iter().map(render).collect();
    assert_eq!(out[0], "persist epoch=0 voted=-@0 config=127.0.0.1:6379@0");
    assert_eq!(out[1], "emit +set master mymaster 127.0.0.1 6379 down-after-milliseconds 5000");
    let state = h.sup.durable();
    let change = &state.masters["mymaster"].settings["down-after-milliseconds"];
    assert_eq!(change.file_value.as_deref(), Some("1000"));
    assert_eq!(change.value, "5000");
    assert_eq!(h.sup.view().master("mymaster").unwrap().down_after.as_millis(), 5000);
    let pass = AdminCommand::Set {
        master: "mymaster".into(),
        option: SetOption::AuthPass(Some("pw".into())),
    };
    h.handle(Input::Admin { ticket: Ticket(2), command: pass });
    let events = h.events();
    assert!(
        events.contains(&"+set master mymaster 127.0.0.1 6379 auth-pass ******".to_owned()),
        "{events:?}"
    );
    let unknown = AdminCommand::Set { master: "nope".into(), option: SetOption::Quorum(1) };
    assert_eq!(admin(&mut h, unknown), AdminAnswer::Refused(AdminRefusal::NoSuchMaster));
}

#[test]
fn remove_and_monitor_survive_a_restart() {
    let mut h = with_extra_redis();
    let monitor =
        AdminCommand::Monitor { name: "extra".into(), addr: addr("127.0.0.1:7000"), quorum: 1 };
    assert_eq!(admin(&mut h, monitor), AdminAnswer::Ok);
    assert_eq!(admin(&mut h, AdminCommand::Remove { name: "mymaster".into() }), AdminAnswer::Ok);
    assert!(h.sup.view().master("mymaster").is_none());
    let state = h.sup.durable();
    assert_eq!(state.removed.get("mymaster"), Some(&addr("127.0.0.1:6379")));
    assert_eq!(state.masters["extra"].monitored_quorum, Some(1));
    let mut again = Harness::new(settings(&[], 1), Some(state), Harness::group());
    let names: Vec<String> = again.sup.view().masters.iter().map(|m| m.name.clone()).collect();
    assert_eq!(names, ["extra"]);
    assert!(again.events().contains(&"+monitor master extra 127.0.0.1 7000 quorum 1".to_owned()));
}

#[test]
fn reset_forgets_replicas_which_are_then_rediscovered() {
    let mut h = with_extra_redis();
    h.take();
    h.handle(Input::Admin {
        ticket: Ticket(1),
        command: AdminCommand::Reset { pattern: "my*".into() },
    });
    let out: Vec<String> = h.take().iter().map(render).collect();
    assert!(out.contains(&"answer Count(1)".to_owned()), "{out:?}");
    assert!(out.contains(&"emit +reset-master master mymaster 127.0.0.1 6379".to_owned()));
    h.advance(10_000);
    let events = h.events();
    assert!(
        events.contains(
            &"+slave slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379".to_owned()
        ),
        "{events:?}"
    );
    assert_eq!(
        admin(&mut h, AdminCommand::Reset { pattern: "nothing".into() }),
        AdminAnswer::Count(0)
    );
}

/// `SENTINEL RESET` takes its pattern from any client: a pattern that made Redis's backtracking
/// matcher exponential is answered at once, and one over the length cap is refused unchanged.
#[test]
fn reset_answers_hostile_patterns_with_bounded_work() {
    let mut h = with_extra_redis();
    h.take();
    let stars = format!("{}x", "*".repeat(255));
    assert_eq!(admin(&mut h, AdminCommand::Reset { pattern: stars }), AdminAnswer::Count(0));
    let alternating = "*m".repeat(128);
    assert_eq!(admin(&mut h, AdminCommand::Reset { pattern: alternating }), AdminAnswer::Count(0));
    let long = "*".repeat(257);
    h.handle(Input::Admin { ticket: Ticket(1), command: AdminCommand::Reset { pattern: long } });
    let out: Vec<String> = h.take().iter().map(render).collect();
    assert_eq!(out, ["answer Refused(PatternTooLong(PatternTooLong { len: 257 }))"]);
    assert_eq!(
        admin(&mut h, AdminCommand::Reset { pattern: format!("{}my*", "*".repeat(253)) }),
        AdminAnswer::Count(1)
    );
}

#[test]
fn flushconfig_writes_the_state_now() {
    let mut h = with_extra_redis();
    h.take();
    h.handle(Input::Admin { ticket: Ticket(1), command: AdminCommand::FlushConfig });
    let out: Vec<String> = h.take().iter().map(render).collect();
    assert_eq!(out, ["persist epoch=0 voted=-@0 config=127.0.0.1:6379@0", "answer Ok"]);
}

#[test]
fn an_operator_reads_back_what_it_changed_at_once() {
    let mut h = with_extra_redis();
    h.sup.view();
    let set = AdminCommand::Set { master: "mymaster".into(), option: SetOption::Quorum(1) };
    assert_eq!(admin(&mut h, set), AdminAnswer::Ok);
    assert!(h.sup.view_urgent());
    assert_eq!(h.sup.view().master("mymaster").unwrap().quorum, 1);
}

/// The peers heard are persisted (lazily: no rule depends on them) and listed in the view after
/// a restart before they are heard again, stale; an address no longer configured is dropped.
#[test]
fn known_peers_survive_a_restart() {
    use super::harness::{PEERS, from_peer, peer_id};
    use crate::engine::gossip::{Body, StateVersion};
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.take();
    let heartbeat = Body::Heartbeat { version: StateVersion { incarnation: 1, seq: 0 } };
    h.handle(from_peer(1, 0, heartbeat));
    let persisted: Vec<Output> =
        h.take().into_iter().filter(|o| matches!(o, Output::Persist(_))).collect();
    assert!(persisted.is_empty(), "not urgent: {persisted:?}");
    h.advance(2_000);
    let state = h.sup.durable();
    let known: Vec<String> = state
        .known_peers
        .iter()
        .map(|(at, p)| format!("{at} {} {}", p.node_id.short(), p.client_addr))
        .collect();
    assert_eq!(known, [format!("127.0.0.2:26380 {} 127.0.0.2:26379", peer_id(1).short())]);
    let mut again = Harness::new(settings(PEERS, 2), Some(state.clone()), Harness::group());
    let view = again.sup.view();
    let listed: Vec<String> = view.masters[0]
        .peers
        .iter()
        .map(|p| {
            let id = p.node_id.map_or_else(|| "-".to_owned(), |id| id.short());
            let at = p.client_addr.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
            format!("{id} {at} fresh={}", p.fresh)
        })
        .collect();
    assert_eq!(
        listed,
        [
            format!("{} 127.0.0.2:26379 fresh=false", peer_id(1).short()),
            "- - fresh=false".to_owned()
        ]
    );
    assert_eq!(view.peers[0].node_id, Some(peer_id(1)));
    assert_eq!(again.sup.durable().known_peers, state.known_peers);
    let mut moved = Harness::new(settings(&["127.0.0.9:26380"], 1), Some(state), Harness::group());
    assert!(moved.sup.durable().known_peers.is_empty());
    assert!(moved.sup.view().masters[0].peers.iter().all(|p| p.node_id.is_none()));
}

#[test]
fn maintenance_pauses_and_resumes_and_the_view_says_so() {
    let mut h = with_extra_redis();
    h.take();
    let master =
        h.sup.view().master("mymaster").map(|m| (m.safety.maintenance_paused, m.safety.fencing));
    assert_eq!(master, Some((false, crate::engine::fence::Fencing::Off)));
    let refusal = h.sup.view().master("mymaster").and_then(|m| m.switchover_refusal());
    assert_eq!(refusal, Some("fencing is off for this master, so its writes cannot be paused"));
    let pause = AdminCommand::Maintenance { master: Some("mymaster".into()), paused: true };
    h.handle(Input::Admin { ticket: Ticket(1), command: pause });
    let out: Vec<String> = h.take().iter().map(render).collect();
    assert_eq!(out[1..], ["emit +maintenance master mymaster 127.0.0.1 6379", "answer Ok"]);
    assert!(out[0].starts_with("persist"), "{out:?}");
    assert!(h.sup.view().master("mymaster").is_some_and(|m| m.safety.maintenance_paused));
    let resume_all = AdminCommand::Maintenance { master: None, paused: false };
    h.handle(Input::Admin { ticket: Ticket(2), command: resume_all });
    let out: Vec<String> = h.take().iter().map(render).collect();
    assert_eq!(out[1..], ["emit -maintenance master mymaster 127.0.0.1 6379", "answer Ok"]);
    assert!(h.sup.view().master("mymaster").is_some_and(|m| !m.safety.maintenance_paused));
    let unknown = AdminCommand::Maintenance { master: Some("nope".into()), paused: true };
    assert_eq!(admin(&mut h, unknown), AdminAnswer::Refused(AdminRefusal::NoSuchMaster));
}
