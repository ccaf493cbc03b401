//! The messages Picket nodes exchange, as typed values.
//!
//! `wire::frame` seals them into authenticated frames; the peer transport carries them over TCP.
//! The engine treats every message as a datagram: any may be lost, duplicated or reordered (a
//! connection can drop mid-stream, and the simulator does all three on purpose), so every
//! message is idempotent and state travels as versioned deltas with a resync path:
//!
//! * a node's per-master reports change rarely, so it sends only the masters that changed
//!   ([`Body::State`] with a `base` version) and, every heartbeat, a tiny [`Body::Heartbeat`]
//!   naming its latest version;
//! * a receiver that missed a delta (the heartbeat's version is not the one it holds) asks for
//!   the whole state with [`Body::SyncRequest`].
//!
//! Peer traffic therefore grows with the number of peers and with how often state changes, not
//! with peers × masters × period.

use serde::{Deserialize, Serialize};

use crate::engine::addr::Addr;
use crate::engine::fence::Lease;
use crate::engine::ids::NodeId;

/// One message from one node to another.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub struct PeerMessage {
    /// Who sends it.
    pub from: Sender,
    /// What it says.
    pub body: Body,
}

/// The sender's identity, repeated in every message so that any message alone identifies it.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub struct Sender {
    /// The sender's node id.
    pub node_id: NodeId,
    /// The gossip address the sender is configured under in its peers' `peers` lists.
    pub announce: Addr,
    /// The sender's Sentinel-port address, for `SENTINEL SENTINELS`.
    pub client_addr: Addr,
    /// The sender's current epoch.
    pub current_epoch: u64,
}

/// A version of a node's reports. The incarnation changes every time the process starts, so a
/// restarted node's versions are never mistaken for its previous life's.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Ord, PartialOrd, Serialize, Deserialize)]
pub struct StateVersion {
    /// Drawn at start from the engine's seeded RNG.
    pub incarnation: u64,
    /// Increases by one with every change.
    pub seq: u64,
}

/// The message kinds.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// "I am alive and my reports are at `version`."
    Heartbeat {
        /// The sender's latest state version.
        version: StateVersion,
    },
    /// Reports for the masters listed. With `base: None` this is the complete state and replaces
    /// everything the receiver holds; with `base: Some(v)` it applies only on top of exactly `v`.
    State {
        /// The version this delta applies to, or `None` for a complete state.
        base: Option<StateVersion>,
        /// The version after applying it.
        version: StateVersion,
        /// The reports that changed (all of them when `base` is `None`).
        masters: Vec<MasterReport>,
    },
    /// "Send me your complete state": the receiver of a delta could not apply it.
    SyncRequest,
    /// A candidate asks for a vote to lead the failover of `master` in `epoch`.
    VoteRequest {
        /// Group name.
        master: String,
        /// The candidate's failover epoch.
        epoch: u64,
        /// The candidate's config epoch for the master: voters refuse a candidate that has not
        /// seen the latest configuration.
        config_epoch: u64,
        /// An operator asked for this failover: voters need not see the master down.
        manual: bool,
    },
    /// A voter's answer: whom it voted for in `epoch` (which is the candidate when granted).
    VoteReply {
        /// Group name.
        master: String,
        /// The epoch asked about.
        epoch: u64,
        /// The voter's vote in that epoch, if it cast one.
        voted_for: Option<NodeId>,
    },
}

/// What a node believes about one master.
#[derive(Clone, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub struct MasterReport {
    /// Group name.
    pub name: String,
    /// The address the node believes is the master.
    pub addr: Addr,
    /// The version of that address: the epoch of the failover that set it (0 = configured).
    pub config_epoch: u64,
    /// Whether the node sees that address subjectively down (always false in TILT).
    pub sdown: bool,
    /// The latest epoch in which the node voted for a failover of this master.
    pub voted_epoch: u64,
    /// The failover this node is leading, if any.
    pub failover: Option<FailoverReport>,
    /// Replicas the node sees subjectively down, reported only while it sees the master up: a
    /// quorum of such reports relaxes the master's lease (see [`crate::engine::fence`]).
    pub down_replicas: Vec<Addr>,
    /// Whether automatic failovers of this master are paused, as the node last heard.
    pub maintenance: Maintenance,
    /// The lease this node last set on the master it names (its relaxation by quorum
    /// included): a failover takes the weakest lease it heard of as the old master's, so a
    /// relaxation another node made since this node last read the lease is not missed. In
    /// strict mode, [`Lease::LOCK`] while this node doubts that the master alone may accept
    /// writes, and, while it keeps a lock only because a peer doubts, the lease it would set:
    /// a lock is lifted only when no node heard reports one (see [`crate::engine::fence`]).
    pub lease_set: Option<Lease>,
}

/// Maintenance mode of one master: automatic failovers paused or not, versioned so that every
/// node adopts the latest change (the highest version; at equal versions, paused wins).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, Ord, PartialOrd, Serialize, Deserialize)]
pub struct Maintenance {
    /// Incremented by every change.
    pub version: u64,
    /// Automatic failovers are paused.
    pub paused: bool,
}

/// A failover in progress, as its leader reports it.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Serialize, Deserialize)]
pub struct FailoverReport {
    /// The failover's epoch.
    pub epoch: u64,
    /// Whether the leader has been elected (false while it is still collecting votes).
    pub elected: bool,
}
