//! The state that must survive a restart, as the engine hands it to the persistence shell.
//!
//! Only facts whose loss could make the node unsafe or forgetful are here: its identity, its
//! epochs and votes, each master's current address and the config epoch that set it, and the
//! replicas it has discovered. Health (SDOWN, ODOWN) and failover progress are re-observed after
//! a restart, as in Sentinel.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::engine::addr::Addr;
use crate::engine::gossip::Maintenance;
use crate::engine::ids::NodeId;

/// Everything the node persists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableState {
    /// This node's permanent id.
    pub node_id: NodeId,
    /// The highest epoch this node has seen or started.
    pub current_epoch: u64,
    /// Votes are only granted in epochs above this. A node that starts without a state file
    /// cannot know which epochs it voted in before (if its disk was lost), so it abstains until it
    /// has heard the epochs of enough peers to cover any majority it may have joined, then sets
    /// this to the highest of them.
    pub vote_floor: u64,
    /// True until the vote floor has been learned (see `vote_floor`).
    pub awaiting_vote_floor: bool,
    /// Per master, by name.
    pub masters: BTreeMap<String, DurableMaster>,
    /// Masters of the configuration file removed with `SENTINEL REMOVE`, with their address in
    /// the file at the time: they stay removed until that entry of the file changes.
    #[serde(default)]
    pub removed: BTreeMap<String, Addr>,
    /// The node last heard at each configured peer address, by that gossip address: after a
    /// restart, `SENTINEL SENTINELS` lists the known peers before they reconnect (as Sentinel
    /// lists its `known-sentinel` lines; client libraries refuse to start on an empty list).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub known_peers: BTreeMap<Addr, KnownPeer>,
}

/// A peer's identity as last heard: its node id and Sentinel-port address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnownPeer {
    /// Its node id.
    pub node_id: NodeId,
    /// Its Sentinel-port address, as it announced it.
    pub client_addr: Addr,
}

/// A state that cannot have been written by a correct node: loading it would let the node
/// vote twice or adopt a configuration from the future. `Display` names the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Inconsistency {
    /// A master's config epoch is above the node's current epoch.
    #[error(
        "masters.{master}.config_epoch = {config_epoch} is above current_epoch = {current_epoch}"
    )]
    ConfigEpochAhead {
        /// The master.
        master: String,
        /// Its config epoch.
        config_epoch: u64,
        /// The node's current epoch.
        current_epoch: u64,
    },
    /// A vote in an epoch above the node's current epoch.
    #[error(
        "masters.{master}.voted_epoch = {voted_epoch} is above current_epoch = {current_epoch}"
    )]
    VoteAhead {
        /// The master.
        master: String,
        /// The epoch of the vote.
        voted_epoch: u64,
        /// The node's current epoch.
        current_epoch: u64,
    },
    /// A vote for a candidate recorded in epoch 0, where no election happens.
    #[error("masters.{master}.voted_for is set but voted_epoch = 0")]
    VoteWithoutEpoch {
        /// The master.
        master: String,
    },
    /// The vote floor is above the node's current epoch.
    #[error("vote_floor = {vote_floor} is above current_epoch = {current_epoch}")]
    VoteFloorAhead {
        /// The vote floor.
        vote_floor: u64,
        /// The node's current epoch.
        current_epoch: u64,
    },
}

impl DurableState {
    /// Checks the invariants every state the engine persists keeps: epochs are ordered (no
    /// config epoch, vote or vote floor above the current epoch) and a vote has an epoch.
    ///
    /// # Errors
    /// The first [`Inconsistency`] found, naming the field.
    pub fn check(&self) -> Result<(), Inconsistency> {
        let current_epoch = self.current_epoch;
        if self.vote_floor > current_epoch {
            return Err(Inconsistency::VoteFloorAhead {
                vote_floor: self.vote_floor,
                current_epoch,
            });
        }
        for (name, m) in &self.masters {
            let master = || name.clone();
            if m.config_epoch > current_epoch {
                let config_epoch = m.config_epoch;
                return Err(Inconsistency::ConfigEpochAhead {
                    master: master(),
                    config_epoch,
                    current_epoch,
                });
            }
            if m.voted_epoch > current_epoch {
                let voted_epoch = m.voted_epoch;
                return Err(Inconsistency::VoteAhead {
                    master: master(),
                    voted_epoch,
                    current_epoch,
                });
            }
            if m.voted_for.is_some() && m.voted_epoch == 0 {
                return Err(Inconsistency::VoteWithoutEpoch { master: master() });
            }
        }
        Ok(())
    }
}

/// What a node persists about one master.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DurableMaster {
    /// The address in the operator's configuration when this was written. If the operator
    /// changes it, the operator wins over `addr`.
    pub configured_addr: Addr,
    /// The current master's address.
    pub addr: Addr,
    /// The epoch of the failover that set `addr` (0 = as configured).
    pub config_epoch: u64,
    /// The latest epoch in which this node voted for a failover of this master.
    pub voted_epoch: u64,
    /// Whom it voted for in `voted_epoch`.
    pub voted_for: Option<NodeId>,
    /// Replicas discovered so far (the current master excluded).
    pub replicas: Vec<Addr>,
    /// The replication history of the master's data, as last seen (see
    /// [`crate::engine::group::Group::history`]): kept so that a node restarted while the
    /// master is down still recognises a replica promoted by an abandoned failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    /// The `replica-priority` each instance last reported as a replica: Redis does not print it
    /// for a master, so a node restarted after a replica was promoted would not know it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub priorities: BTreeMap<Addr, u32>,
    /// Maintenance mode (automatic failovers paused), as last changed by an operator here or
    /// heard from a peer.
    #[serde(default)]
    pub maintenance: Maintenance,
    /// Set when the master was added with `SENTINEL MONITOR` rather than by the file: its quorum
    /// (its address is `configured_addr`).
    #[serde(default)]
    pub monitored_quorum: Option<u32>,
    /// Options changed with `SENTINEL SET`, by Sentinel's option name.
    #[serde(default)]
    pub settings: BTreeMap<String, SettingChange>,
}

/// One option changed with `SENTINEL SET`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingChange {
    /// The file's value it replaced (none for a master added with `SENTINEL MONITOR`). If the
    /// file says something else at the next start, the file was edited later and wins.
    pub file_value: Option<String>,
    /// The value set.
    pub value: String,
}
