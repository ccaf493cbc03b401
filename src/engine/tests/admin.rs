//! Operator commands: MONITOR, REMOVE, SET, RESET, FLUSHCONFIG, and how they survive restarts.

use super::harness::{Fake, Harness, addr, known_node, render, settings};
use crate::engine::admin::SetOption;
use crate::engine::ids::Ticket;
use crate::engine::io::{AdminAnswer, AdminCommand, Input, Output};

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
    assert_eq!(admin(&mut h, monitor), AdminAnswer::Refused("ERR Duplicate master name.".into()));
    let zero = AdminCommand::Monitor { name: "z".into(), addr: addr("127.0.0.1:7001"), quorum: 0 };
    assert_eq!(
        admin(&mut h, zero),
        AdminAnswer::Refused("ERR Quorum must be 1 or greater.".into())
    );
    let big = AdminCommand::Monitor { name: "z".into(), addr: addr("127.0.0.1:7001"), quorum: 2 };
    assert_eq!(
        admin(&mut h, big),
        AdminAnswer::Refused(
            "ERR Quorum must be at most the number of voters (1: this node and its peers)".into()
        )
    );
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
    assert_eq!(
        admin(&mut h, unknown),
        AdminAnswer::Refused("ERR No such master with that name".into())
    );
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
    assert_eq!(
        admin(&mut h, unknown),
        AdminAnswer::Refused("ERR No such master with that name".into())
    );
}
