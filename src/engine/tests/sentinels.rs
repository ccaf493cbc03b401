//! Sentinel-compatible peering: listed redis-sentinel processes as voters of one master.

use super::harness::{Harness, addr, known_node, peer_id, settings};
use crate::engine::ids::{NodeId, Ticket};
use crate::engine::io::{AdminAnswer, AdminCommand, Input};
use crate::engine::sentinels::{DownAnswer, Hello};

const LISTED: [&str; 2] = ["127.0.0.1:26390", "127.0.0.1:26391"];
/// This node's id (restored as `known_node(9)`).
const ME: u8 = 9;

/// This node alone among Picket nodes, with the two listed Sentinels: three voters, quorum 2.
fn node() -> Harness {
    let mut settings = settings(&[], 2);
    settings.masters[0].sentinel_peers = LISTED.iter().map(|a| addr(a)).collect();
    Harness::new(settings, Some(known_node(ME)), Harness::group())
}

fn hello(from: &str, run_id: NodeId, epoch: u64, master: &str, config_epoch: u64) -> Input {
    Input::Admin {
        ticket: Ticket(100),
        command: AdminCommand::SentinelHello(Hello {
            addr: addr(from),
            run_id,
            current_epoch: epoch,
            master: "mymaster".into(),
            master_addr: addr(master),
            config_epoch,
        }),
    }
}

fn vote_request(ticket: u64, epoch: u64, candidate: NodeId) -> Input {
    Input::Admin {
        ticket: Ticket(ticket),
        command: AdminCommand::SentinelVote {
            master_addr: addr("127.0.0.1:6379"),
            epoch,
            candidate,
        },
    }
}

fn answered(sentinel: &str, master_down: bool, leader: Option<NodeId>, epoch: u64) -> Input {
    Input::SentinelAnswered {
        master: "mymaster".into(),
        sentinel: addr(sentinel),
        master_addr: addr("127.0.0.1:6379"),
        answer: DownAnswer { master_down, leader, leader_epoch: epoch },
    }
}

/// The master hangs at 399 ms, before its PING of 400, and is SDOWN at 1401; both Sentinels
/// said hello first.
fn master_hung() -> Harness {
    let mut h = node();
    h.handle(hello(LISTED[0], peer_id(7), 0, "127.0.0.1:6379", 0));
    h.handle(hello(LISTED[1], peer_id(8), 0, "127.0.0.1:6379", 0));
    h.advance_to(399);
    h.hang("127.0.0.1:6379");
    h.advance_to(1401);
    h.take();
    h
}

#[test]
fn a_sentinel_vote_is_durable_before_its_answer_and_shares_the_ballot() {
    let mut h = master_hung();
    // The epoch is already known (from a hello): only the vote itself makes the write due.
    h.handle(hello(LISTED[0], peer_id(7), 3, "127.0.0.1:6379", 0));
    h.take();
    h.handle(vote_request(1, 3, peer_id(7)));
    let granted = DownAnswer { master_down: true, leader: Some(peer_id(7)), leader_epoch: 3 };
    let rendered = h.rendered();
    let persist = rendered.iter().position(|o| o.starts_with("persist epoch=3 voted=07070707@3"));
    let answer =
        rendered.iter().position(|o| *o == format!("answer {:?}", AdminAnswer::Down(granted)));
    assert!(persist.is_some() && answer.is_some() && persist < answer, "{rendered:?}");
    assert!(rendered.contains(&format!("emit +vote-for-leader {} 3", peer_id(7))), "{rendered:?}");
    // The other Sentinel in the same epoch learns whom the vote went to; nothing is written.
    h.handle(vote_request(2, 3, peer_id(8)));
    assert_eq!(h.rendered(), [format!("answer {:?}", AdminAnswer::Down(granted))]);
    // A candidate that is not listed gets no vote and raises no epoch.
    h.handle(vote_request(3, 9, peer_id(5)));
    assert_eq!(h.rendered(), [format!("answer {:?}", AdminAnswer::Down(granted))]);
    assert_eq!(h.sup.view().current_epoch, 3);
    assert_eq!(h.sup.view().stats.sentinel_votes_unlisted, 1);
}

#[test]
fn listed_sentinels_count_towards_odown_and_elect_this_node() {
    let mut h = master_hung();
    // Seeing the master down, the node asks both Sentinels whether they do too, every ask
    // period (a ping period here, 100 ms).
    h.advance(100);
    let asked = h.rendered();
    for sentinel in LISTED {
        assert!(asked.contains(&format!("ask-sentinel {sentinel} 0 *")), "{asked:?}");
    }
    // An answer about another address (asked before a switch) says nothing about this master.
    h.handle(Input::SentinelAnswered {
        master: "mymaster".into(),
        sentinel: addr(LISTED[1]),
        master_addr: addr("127.0.0.1:6380"),
        answer: DownAnswer { master_down: true, leader: None, leader_epoch: 0 },
    });
    assert_eq!(h.events(), Vec::<String>::new());
    h.handle(answered(LISTED[0], true, None, 0));
    assert_eq!(h.events(), ["+odown master mymaster 127.0.0.1 6379 #quorum 2/2"]);
    // After the election jitter (under 100 ms) it asks both for their vote in epoch 1.
    h.advance(100);
    let rendered = h.rendered();
    let me = NodeId::from_bytes([ME; 20]);
    assert!(rendered.contains(&"emit +try-failover master mymaster 127.0.0.1 6379".to_owned()));
    for sentinel in LISTED {
        let ask = format!("ask-sentinel {sentinel} 1 {}", me.short());
        assert!(rendered.contains(&ask), "{rendered:?}");
    }
    // One Sentinel's vote and its own make a majority of three.
    h.handle(answered(LISTED[1], true, Some(me), 1));
    let events = h.events();
    assert!(
        events.contains(&"+elected-leader master mymaster 127.0.0.1 6379".to_owned()),
        "{events:?}"
    );
}

#[test]
fn a_listed_sentinels_configuration_waits_for_its_master_to_report_role_master() {
    let mut h = node();
    h.advance_to(500);
    h.take();
    // From an address that is not listed: ignored, epochs included.
    h.handle(hello("127.0.0.1:26399", peer_id(6), 5, "127.0.0.1:6380", 5));
    assert_eq!(h.events(), Vec::<String>::new());
    assert_eq!(h.sup.view().current_epoch, 0);
    assert_eq!(h.sup.view().stats.sentinel_hellos_unlisted, 1);
    // From a listed Sentinel, naming a replica that still reports role:slave: not adopted.
    h.handle(hello(LISTED[0], peer_id(7), 5, "127.0.0.1:6380", 5));
    h.advance(12_000);
    let events = h.events();
    assert!(!events.iter().any(|e| e.starts_with("+switch-master")), "{events:?}");
    assert_eq!(h.sup.view().masters[0].config_epoch, 0);
    // Once it reports role:master (the Sentinel promoted it), the configuration is adopted.
    if let Some(replica) = h.redis.get_mut(&addr("127.0.0.1:6380")) {
        replica.promote();
    }
    h.advance(11_000);
    let events = h.events();
    let from = format!("+config-update-from sentinel {} 127.0.0.1 26390 @ mymaster", peer_id(7));
    assert!(events.iter().any(|e| e.starts_with(&from)), "{events:?}");
    assert!(
        events.contains(&"+switch-master mymaster 127.0.0.1 6379 127.0.0.1 6380".to_owned()),
        "{events:?}"
    );
    assert_eq!(h.sup.view().masters[0].config_epoch, 5);
}
