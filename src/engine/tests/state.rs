//! The durable state's invariants: what the state file's loader refuses.

use std::collections::BTreeMap;

use super::harness::{addr, known_node};
use crate::engine::durable::{DurableMaster, DurableState, Inconsistency};
use crate::engine::gossip::Maintenance;
use crate::engine::ids::NodeId;

fn master(config_epoch: u64, voted_epoch: u64, voted_for: Option<NodeId>) -> DurableMaster {
    DurableMaster {
        configured_addr: addr("127.0.0.1:6379"),
        addr: addr("127.0.0.1:6380"),
        config_epoch,
        voted_epoch,
        voted_for,
        replicas: Vec::new(),
        history: None,
        priorities: BTreeMap::new(),
        maintenance: Maintenance::default(),
        monitored_quorum: None,
        settings: BTreeMap::new(),
    }
}

fn state(current_epoch: u64, vote_floor: u64, m: DurableMaster) -> DurableState {
    DurableState {
        current_epoch,
        vote_floor,
        masters: BTreeMap::from([("cache".to_owned(), m)]),
        ..known_node(1)
    }
}

#[test]
fn consistent_states_pass() {
    let voter = Some(NodeId::from_bytes([2; 20]));
    assert_eq!(known_node(1).check(), Ok(()));
    assert_eq!(state(0, 0, master(0, 0, None)).check(), Ok(()));
    assert_eq!(state(7, 7, master(7, 7, voter)).check(), Ok(()));
    assert_eq!(state(9, 3, master(5, 8, voter)).check(), Ok(()));
}

#[test]
fn impossible_states_are_named_field_by_field() {
    let voter = Some(NodeId::from_bytes([2; 20]));
    let cases = [
        (
            state(0, 0, master(1, 0, None)),
            "masters.cache.config_epoch = 1 is above current_epoch = 0",
        ),
        (
            state(4, 0, master(2, 5, voter)),
            "masters.cache.voted_epoch = 5 is above current_epoch = 4",
        ),
        (state(4, 0, master(2, 0, voter)), "masters.cache.voted_for is set but voted_epoch = 0"),
        (state(4, 6, master(2, 3, voter)), "vote_floor = 6 is above current_epoch = 4"),
    ];
    for (state, text) in cases {
        let err = state.check().unwrap_err();
        assert_eq!(err.to_string(), text);
    }
    assert_eq!(
        state(0, 0, master(1, 0, None)).check(),
        Err(Inconsistency::ConfigEpochAhead {
            master: "cache".to_owned(),
            config_epoch: 1,
            current_epoch: 0
        })
    );
}
