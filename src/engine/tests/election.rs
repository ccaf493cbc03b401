//! ODOWN, votes and leader election, against one engine whose peers are scripted.

use super::harness::{
    Harness, PEERS, from_peer, full_state, known_node, master_hung, peer_id, report, settings,
    vote_request,
};
use crate::engine::gossip::Body;

fn events(h: &mut Harness) -> Vec<String> {
    h.events()
}

#[test]
fn odown_requires_quorum_reports_about_the_same_address() {
    let mut h = master_hung(2);
    // A peer that sees some other address down does not count.
    h.handle(full_state(1, 0, 2, vec![report("127.0.0.1:6380", 0, true, 0)]));
    assert_eq!(events(&mut h), Vec::<String>::new());
    h.handle(full_state(1, 0, 3, vec![report("127.0.0.1:6379", 0, true, 0)]));
    assert_eq!(events(&mut h), ["+odown master mymaster 127.0.0.1 6379 #quorum 2/2"]);

    let mut h = master_hung(3);
    h.handle(full_state(1, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
    assert_eq!(events(&mut h), Vec::<String>::new());
    h.handle(full_state(2, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
    assert_eq!(events(&mut h), ["+odown master mymaster 127.0.0.1 6379 #quorum 3/3"]);
}

#[test]
fn peer_reports_expire() {
    let mut h = master_hung(3);
    h.handle(full_state(1, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
    h.handle(full_state(2, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
    assert_eq!(events(&mut h), ["+odown master mymaster 127.0.0.1 6379 #quorum 3/3"]);
    // Refuse every vote request so that the election cannot end the ODOWN.
    h.advance_to(2900);
    let before: Vec<String> = events(&mut h);
    assert!(before.iter().any(|e| e.starts_with("+try-failover")), "{before:?}");
    assert!(!before.iter().any(|e| e.starts_with("-odown")), "{before:?}");
    // Both peers were last heard at 1401: their reports lapse 1500 ms later.
    h.advance_to(2901);
    let after = events(&mut h);
    assert!(after.contains(&"-odown master mymaster 127.0.0.1 6379".to_owned()), "{after:?}");
}

#[test]
fn vote_is_persisted_before_the_reply_and_granted_once_per_epoch() {
    let mut h = master_hung(2);
    h.handle(vote_request(1, 1, 0, false));
    assert_eq!(
        h.rendered(),
        [
            "persist epoch=1 voted=01010101@1 config=127.0.0.1:6379@0",
            "emit +new-epoch 1",
            "emit +vote-for-leader 0101010101010101010101010101010101010101 1",
            "peer0 vote-reply mymaster e=1 for=01010101",
            "peer0 state-delta [mymaster 127.0.0.1:6379 cfg=0 sdown=true voted=1 failover=-]",
            "peer1 state-delta [mymaster 127.0.0.1:6379 cfg=0 sdown=true voted=1 failover=-]",
        ]
    );
    // Another candidate in the same epoch learns whom the vote went to; nothing is written.
    h.handle(vote_request(2, 1, 0, false));
    assert_eq!(h.rendered(), ["peer1 vote-reply mymaster e=1 for=01010101"]);
    // The same candidate asking again (a retransmission) gets the same answer.
    h.handle(vote_request(1, 1, 0, false));
    assert_eq!(h.rendered(), ["peer0 vote-reply mymaster e=1 for=01010101"]);
    // A later epoch is refused while the candidate voted for may still be collecting votes:
    // voting again could elect a second leader while the first promotes.
    h.handle(vote_request(2, 2, 0, false));
    assert_eq!(
        h.rendered(),
        [
            "persist epoch=2 voted=01010101@1 config=127.0.0.1:6379@0",
            "emit +new-epoch 2",
            "peer1 vote-reply mymaster e=2 for=-",
        ]
    );
    // Once its election must be over (1 s after the vote) and it never reported a failover, a
    // later epoch is a new vote.
    h.advance_to(2401);
    h.take();
    h.handle(vote_request(2, 3, 0, false));
    assert_eq!(
        h.rendered(),
        [
            "persist epoch=3 voted=02020202@3 config=127.0.0.1:6379@0",
            "emit +new-epoch 3",
            "emit +vote-for-leader 0202020202020202020202020202020202020202 3",
            "peer1 vote-reply mymaster e=3 for=02020202",
            "peer0 state-delta [mymaster 127.0.0.1:6379 cfg=0 sdown=true voted=3 failover=-]",
            "peer1 state-delta [mymaster 127.0.0.1:6379 cfg=0 sdown=true voted=3 failover=-]",
        ]
    );
}

#[test]
fn voters_refuse_unless_they_see_the_master_down_but_grant_manual_failovers() {
    let mut h = Harness::new(settings(PEERS, 2), Some(known_node(9)), Harness::group());
    h.advance_to(500);
    h.take();
    h.handle(vote_request(1, 1, 0, false));
    // The epoch is adopted (and persisted), the vote is not given.
    assert_eq!(
        h.rendered(),
        [
            "emit +sentinel sentinel 0101010101010101010101010101010101010101 127.0.0.2 26379 @ mymaster 127.0.0.1 6379",
            "persist epoch=1 voted=-@0 config=127.0.0.1:6379@0",
            "emit +new-epoch 1",
            "peer0 vote-reply mymaster e=1 for=-",
        ]
    );
    h.handle(vote_request(1, 2, 0, true));
    let out = h.rendered();
    assert!(out.contains(&"peer0 vote-reply mymaster e=2 for=01010101".to_owned()), "{out:?}");
}

#[test]
fn candidates_with_an_older_configuration_are_refused() {
    let mut state = known_node(9);
    state.masters.insert(
        "mymaster".into(),
        crate::engine::durable::DurableMaster {
            configured_addr: super::harness::addr("127.0.0.1:6379"),
            addr: super::harness::addr("127.0.0.1:6379"),
            config_epoch: 4,
            voted_epoch: 4,
            voted_for: Some(peer_id(1)),
            replicas: Vec::new(),
            history: None,
            priorities: std::collections::BTreeMap::new(),
            maintenance: crate::engine::gossip::Maintenance::default(),
            monitored_quorum: None,
            settings: std::collections::BTreeMap::new(),
        },
    );
    let mut h = Harness::new(settings(PEERS, 2), Some(state), Harness::group());
    h.advance_to(399);
    h.hang("127.0.0.1:6379");
    h.advance_to(1401);
    h.take();
    h.handle(vote_request(2, 5, 3, false));
    let out = h.rendered();
    assert!(out.contains(&"peer1 vote-reply mymaster e=5 for=-".to_owned()), "{out:?}");
}

#[test]
fn a_node_without_state_abstains_until_it_has_heard_every_peer_it_needs() {
    let mut h = Harness::new(settings(PEERS, 2), None, Harness::group());
    h.advance_to(399);
    h.hang("127.0.0.1:6379");
    h.advance_to(1401);
    h.handle(from_peer(1, 3, Body::SyncRequest));
    h.take();
    // Heard only one of the two peers: with three voters, a majority it may have joined before
    // losing its disk need not include that one.
    h.handle(vote_request(1, 4, 0, false));
    assert!(h.rendered().contains(&"peer0 vote-reply mymaster e=4 for=-".to_owned()));
    // Hearing the second peer fixes the floor at the highest epoch heard (4).
    h.handle(from_peer(2, 2, Body::SyncRequest));
    let out = h.rendered();
    assert!(out.iter().any(|o| o.starts_with("persist epoch=4")), "{out:?}");
    h.handle(vote_request(1, 4, 0, false));
    assert!(h.rendered().contains(&"peer0 vote-reply mymaster e=4 for=-".to_owned()));
    h.handle(vote_request(1, 5, 0, false));
    assert!(h.rendered().contains(&"peer0 vote-reply mymaster e=5 for=01010101".to_owned()));
}

#[test]
fn with_five_voters_some_peers_are_enough_only_after_the_quarantine() {
    let peers = ["127.0.0.2:26380", "127.0.0.3:26380", "127.0.0.4:26380", "127.0.0.5:26380"];
    let fresh = || {
        let mut h = Harness::new(settings(&peers, 3), None, Harness::group());
        // Hung before its PING of 400: SDOWN at 1401.
        h.advance_to(399);
        h.hang("127.0.0.1:6379");
        h.advance_to(1401);
        h
    };
    // Three of the four peers (voters minus a majority, plus one) within the quarantine
    // (election timeout 1 s + peer timeout 1.5 s): the fourth may be a candidate still
    // collecting votes in an epoch this node granted before it lost its state.
    let mut h = fresh();
    for peer in 1..=3 {
        h.handle(from_peer(peer, 2, Body::SyncRequest));
    }
    h.take();
    h.handle(vote_request(1, 3, 0, false));
    assert!(h.rendered().contains(&"peer0 vote-reply mymaster e=3 for=-".to_owned()));
    // After it, the same three are enough.
    h.advance_to(2600);
    for peer in 1..=3 {
        h.handle(from_peer(peer, 2, Body::SyncRequest));
    }
    h.take();
    h.handle(vote_request(1, 4, 0, false));
    assert!(h.rendered().contains(&"peer0 vote-reply mymaster e=4 for=01010101".to_owned()));
    // All four peers at once are enough at any time.
    let mut h = fresh();
    for peer in 1..=4 {
        h.handle(from_peer(peer, 2, Body::SyncRequest));
    }
    h.take();
    h.handle(vote_request(1, 3, 0, false));
    assert!(h.rendered().contains(&"peer0 vote-reply mymaster e=3 for=01010101".to_owned()));
}

#[test]
fn a_leader_needs_a_majority_even_with_quorum_one() {
    let mut h = master_hung(1);
    h.advance_to(1410);
    h.handle(full_state(1, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
    h.handle(full_state(2, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
    // ODOWN on this node's word alone (quorum 1) at 1401; the election starts after the jitter.
    h.advance_to(1520);
    let out = h.rendered();
    let start = out.iter().position(|o| o == "emit +new-epoch 1").expect("election started");
    assert_eq!(
        out[start..start + 5],
        [
            "emit +new-epoch 1",
            "emit +try-failover master mymaster 127.0.0.1 6379",
            "emit +vote-for-leader 0909090909090909090909090909090909090909 1",
            "peer0 vote-request mymaster e=1 cfg=0 manual=false",
            "peer1 vote-request mymaster e=1 cfg=0 manual=false",
        ]
    );
    assert_eq!(out[start - 1], "persist epoch=1 voted=09090909@1 config=127.0.0.1:6379@0");
    // One peer votes for someone else: the other may still grant, so the election goes on.
    let other = Some(peer_id(2));
    let refuse = |peer| {
        from_peer(
            peer,
            1,
            Body::VoteReply { master: "mymaster".into(), epoch: 1, voted_for: other },
        )
    };
    h.handle(refuse(1));
    assert!(!h.events().iter().any(|e| e.contains("elected") || e.contains("abort")));
    // Both did: one vote of three is not a majority, and cannot become one in this epoch.
    h.handle(refuse(2));
    assert_eq!(h.events(), ["-failover-abort-not-elected master mymaster 127.0.0.1 6379"]);
}

#[test]
fn after_a_split_vote_the_next_attempt_comes_soon_in_a_new_epoch() {
    let mut h = master_hung(2);
    let down = || vec![report("127.0.0.1:6379", 0, true, 1)];
    h.handle(full_state(1, 0, 2, down()));
    h.handle(full_state(2, 0, 2, down()));
    h.advance_to(1520);
    // Each peer voted for itself in epoch 1 (three candidates at once).
    for (peer, candidate) in [(1, peer_id(1)), (2, peer_id(2))] {
        let reply =
            Body::VoteReply { master: "mymaster".into(), epoch: 1, voted_for: Some(candidate) };
        h.handle(from_peer(peer, 1, reply));
    }
    assert!(
        h.events()
            .contains(&"-failover-abort-not-elected master mymaster 127.0.0.1 6379".to_owned())
    );
    // The retry waits 100 to 300 ms (not the 1 s election timeout), then uses epoch 2.
    h.advance_with_peers(1620, &down());
    assert!(!h.events().iter().any(|e| e.starts_with("+try-failover")));
    h.advance_with_peers(1920, &down());
    let events = h.events();
    assert!(events.contains(&"+new-epoch 2".to_owned()), "{events:?}");
    assert!(events.contains(&"+try-failover master mymaster 127.0.0.1 6379".to_owned()));
}

#[test]
fn an_election_nobody_answers_gives_up_after_its_timeout() {
    let mut h = master_hung(2);
    h.handle(full_state(1, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
    h.handle(full_state(2, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
    h.advance_to(1520);
    assert!(h.events().contains(&"+try-failover master mymaster 127.0.0.1 6379".to_owned()));
    // The peers keep reporting (they are alive) but never answer the vote requests.
    for t in (1600..=2700).step_by(100) {
        h.advance_to(t);
        h.handle(full_state(1, 0, t, vec![report("127.0.0.1:6379", 0, true, 0)]));
        h.handle(full_state(2, 0, t, vec![report("127.0.0.1:6379", 0, true, 0)]));
    }
    let events = h.events();
    assert!(
        events.contains(&"-failover-abort-not-elected master mymaster 127.0.0.1 6379".to_owned()),
        "{events:?}"
    );
}

#[test]
fn no_election_starts_while_peers_report_the_master_up() {
    // Quorum 1: ODOWN on this node's word alone. Its peers, heard recently, see the master up and
    // would refuse to vote: starting an election would only raise the epoch.
    let mut h = master_hung(1);
    for t in (1500..=5000).step_by(100) {
        h.advance_to(t);
        h.handle(full_state(1, 0, t, vec![report("127.0.0.1:6379", 0, false, 0)]));
        h.handle(full_state(2, 0, t, vec![report("127.0.0.1:6379", 0, false, 0)]));
    }
    assert_eq!(h.sup.view().master("mymaster").unwrap().status, crate::engine::MasterStatus::Odown);
    let events = h.events();
    assert!(!events.iter().any(|e| e.starts_with("+try-failover")), "{events:?}");
}

#[test]
fn an_isolated_node_never_starts_an_election_it_cannot_win() {
    let mut h = Harness::new(settings(PEERS, 1), Some(known_node(9)), Harness::group());
    h.advance_to(450);
    h.hang("127.0.0.1:6379");
    h.advance_to(20_000);
    let events = h.events();
    assert!(events.contains(&"+odown master mymaster 127.0.0.1 6379 #quorum 1/1".to_owned()));
    assert!(
        !events.iter().any(|e| e.starts_with("+try-failover") || e.starts_with("+new-epoch")),
        "{events:?}"
    );
}

#[test]
fn a_node_cut_off_when_the_master_fails_does_not_start_an_election() {
    // Peers heard every 100 ms until 450 ms, then silence (a partition), while the master hangs.
    let mut h = Harness::new(settings(PEERS, 1), Some(known_node(9)), Harness::group());
    for t in (0..=450).step_by(100) {
        h.advance_to(t);
        h.handle(full_state(1, 0, t + 1, vec![report("127.0.0.1:6379", 0, false, 0)]));
        h.handle(full_state(2, 0, t + 1, vec![report("127.0.0.1:6379", 0, false, 0)]));
    }
    h.hang("127.0.0.1:6379");
    // SDOWN at ~1.5 s, while the peers' reports are still valid (1.5 s): ODOWN on quorum 1.
    h.advance_to(10_000);
    let events = h.events();
    assert!(events.contains(&"+odown master mymaster 127.0.0.1 6379 #quorum 1/1".to_owned()));
    assert!(!events.iter().any(|e| e.starts_with("+try-failover")), "{events:?}");
}

#[test]
fn voting_for_another_candidate_defers_our_own_attempt_until_it_is_gone() {
    let mut h = master_hung(2);
    h.handle(full_state(1, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
    h.handle(vote_request(1, 1, 0, false));
    let mut running = report("127.0.0.1:6379", 0, true, 1);
    running.failover = Some(crate::engine::gossip::FailoverReport { epoch: 1, elected: true });
    h.handle(full_state(1, 1, 3, vec![running.clone()]));
    h.take();
    // While the leader is heard working, this node does not compete.
    for t in (1500..=2500).step_by(250) {
        h.advance_to(t);
        h.handle(full_state(1, 1, t, vec![running.clone()]));
        h.handle(full_state(2, 1, t, vec![report("127.0.0.1:6379", 0, true, 1)]));
    }
    assert!(!h.events().iter().any(|e| e.starts_with("+try-failover")));
    // The leader goes silent: once its reports lapse, this node tries in the next epoch.
    for t in (2750..=4500).step_by(250) {
        h.advance_to(t);
        h.handle(full_state(2, 1, t, vec![report("127.0.0.1:6379", 0, true, 1)]));
    }
    let events = h.events();
    assert!(events.contains(&"+new-epoch 2".to_owned()), "{events:?}");
    assert!(events.contains(&"+try-failover master mymaster 127.0.0.1 6379".to_owned()));
}

#[test]
fn outputs_are_identical_for_identical_inputs() {
    let run = || {
        let mut h = master_hung(2);
        h.handle(full_state(1, 0, 2, vec![report("127.0.0.1:6379", 0, true, 0)]));
        h.advance_to(3000);
        h.rendered()
    };
    assert_eq!(run(), run());
}
