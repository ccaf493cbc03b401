//! Read-only snapshots of the engine for the Sentinel port, the HTTP API and metrics.
//!
//! Readers never touch the live engine: the runtime publishes a [`View`] after each batch of
//! inputs, and readers keep it as long as they like. Per-master snapshots are shared (`Arc`) and
//! rebuilt only for masters that changed, so publishing costs little with a thousand masters.
//! Times are engine [`Instant`]s; a reader turns them into "milliseconds ago" with the current
//! engine time.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::engine::addr::Addr;
use crate::engine::election::Authorisation;
use crate::engine::failover::Phase;
use crate::engine::fence::{Fencing, Lease};
use crate::engine::gossip::MasterReport;
use crate::engine::group::Group;
use crate::engine::ids::{NodeId, PeerId};
use crate::engine::instance::Instance;
use crate::engine::node::Node;
use crate::engine::peers::Peers;
use crate::engine::report::{ReplicaLink, ReportedRole};
use crate::engine::selection::Ineligible;
use crate::engine::time::Instant;

/// Counters of notable inputs, for metrics.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq, Serialize)]
pub struct Stats {
    /// Peer messages accepted.
    pub peer_messages: u64,
    /// Peer messages from an address that is not a configured peer (ignored).
    pub peer_messages_unknown_sender: u64,
    /// Peer messages carrying this node's own id (a misconfiguration or a reflection; ignored).
    pub peer_messages_own_id: u64,
    /// State deltas that could not be applied (a resync was requested).
    pub peer_state_gaps: u64,
    /// Hellos accepted from listed Sentinels.
    pub sentinel_hellos: u64,
    /// Hellos about a supervised master from a sender not listed for it (ignored).
    pub sentinel_hellos_unlisted: u64,
    /// Vote requests (`IS-MASTER-DOWN-BY-ADDR` with a run id) for a master with listed
    /// Sentinels from a candidate that is not one of them (answered without a vote).
    pub sentinel_votes_unlisted: u64,
}

/// The whole node.
#[derive(Clone, Debug, Serialize)]
pub struct View {
    /// Engine time when the snapshot was taken.
    pub at: Instant,
    /// This node's id.
    pub node_id: NodeId,
    /// This node's gossip address as peers know it.
    pub announce: Addr,
    /// This node's Sentinel-port address.
    pub client_addr: Addr,
    /// The current epoch.
    pub current_epoch: u64,
    /// Since when the node is in TILT.
    pub tilt_since: Option<Instant>,
    /// Voters (this node and its peers).
    pub voters: usize,
    /// Votes for a majority.
    pub majority: usize,
    /// Whether the node still has to learn its vote floor before it may vote.
    pub awaiting_vote_floor: bool,
    /// Peers heard within the contact window (see [`View::authorisation`]).
    pub peers_in_contact: usize,
    /// Every master, in configuration order.
    pub masters: Vec<Arc<MasterView>>,
    /// Every configured peer.
    pub peers: Vec<PeerView>,
    /// Counters.
    pub stats: Stats,
}

impl View {
    /// The master named `name`.
    #[must_use]
    pub fn master(&self, name: &str) -> Option<&MasterView> {
        self.masters.iter().map(AsRef::as_ref).find(|m| m.name == name)
    }

    /// Whether a failover of `master` can be authorised now, by the rule `SENTINEL FAILOVER`
    /// applies (as of [`View::at`]): what `CKQUORUM`, the HTTP API and metrics render.
    #[must_use]
    pub fn authorisation(&self, master: &MasterView) -> Authorisation {
        let sentinels_heard = master.sentinels.iter().filter(|s| s.fresh).count();
        Authorisation::new(
            self.voters + master.sentinels.len(),
            master.quorum,
            self.peers_in_contact + sentinels_heard,
            self.awaiting_vote_floor,
        )
    }

    /// How many peers have fresh reports.
    #[must_use]
    pub fn fresh_peers(&self) -> usize {
        self.peers.iter().filter(|p| p.fresh).count()
    }
}

/// One configured peer.
#[derive(Clone, Debug, Serialize)]
pub struct PeerView {
    /// Its slot.
    pub slot: PeerId,
    /// Its configured gossip address.
    pub addr: Addr,
    /// The node id heard from the slot.
    pub node_id: Option<NodeId>,
    /// Its Sentinel-port address.
    pub client_addr: Option<Addr>,
    /// When it was last heard from.
    pub last_heard_at: Option<Instant>,
    /// Whether its reports are fresh.
    pub fresh: bool,
    /// Its current epoch.
    pub current_epoch: u64,
}

/// The health of a master as this node sees it.
#[derive(Clone, Copy, Debug, Eq, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MasterStatus {
    /// Answering.
    Ok,
    /// Subjectively down.
    Sdown,
    /// Objectively down.
    Odown,
}

impl MasterStatus {
    /// Sentinel's word (`INFO` sentinel section).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Sdown => "sdown",
            Self::Odown => "odown",
        }
    }
}

/// One master group.
#[derive(Clone, Debug, Serialize)]
pub struct MasterView {
    /// Group name.
    pub name: String,
    /// The current master's address.
    pub addr: Addr,
    /// The epoch of the failover that set it.
    pub config_epoch: u64,
    /// Quorum.
    pub quorum: u32,
    /// `down_after`.
    pub down_after: Duration,
    /// `down_after_refused`: the crash rule's threshold; `None` = off.
    pub down_after_refused: Option<Duration>,
    /// `failover_timeout`.
    pub failover_timeout: Duration,
    /// `parallel_syncs`.
    pub parallel_syncs: u32,
    /// Notification script path.
    pub notification_script: Option<String>,
    /// Client reconfiguration script path.
    pub client_reconfig_script: Option<String>,
    /// Fencing, maintenance and the failover limits.
    pub safety: SafetyView,
    /// Health.
    pub status: MasterStatus,
    /// Since when objectively down.
    pub odown_since: Option<Instant>,
    /// Voters that saw it down at the last evaluation.
    pub odown_votes: usize,
    /// The failover this node leads.
    pub failover: Option<FailoverView>,
    /// This node's latest vote for this master: epoch and candidate.
    pub voted_epoch: u64,
    /// Whom it voted for.
    pub voted_for: Option<NodeId>,
    /// The master instance.
    pub master: InstanceView,
    /// The replicas.
    pub replicas: Vec<InstanceView>,
    /// Each configured peer's last report about this master.
    pub peers: Vec<PeerReportView>,
    /// The listed redis-sentinel voters (Sentinel-compatible peering; empty when off).
    pub sentinels: Vec<SentinelView>,
}

/// A listed Sentinel, as this node knows it.
#[derive(Clone, Debug, Serialize)]
pub struct SentinelView {
    /// Its configured address (the Sentinel port it announces).
    pub addr: Addr,
    /// The run id its hellos announce.
    pub run_id: Option<NodeId>,
    /// When a hello or an answer last came from it.
    pub last_heard_at: Option<Instant>,
    /// Heard within an answer's validity: it counts as a usable voter.
    pub fresh: bool,
    /// Its current epoch, as it last announced.
    pub current_epoch: u64,
    /// Its valid answer says it sees the master down.
    pub master_down: bool,
    /// Its last known vote: the leader and the epoch.
    pub voted_for: Option<NodeId>,
    /// The epoch of that vote.
    pub voted_epoch: u64,
}

impl MasterView {
    /// Why a planned switchover (a failover that loses no write) cannot be promised for this
    /// master now, if it cannot: the engine switches over only a master it reaches and fences.
    #[must_use]
    pub fn switchover_refusal(&self) -> Option<&'static str> {
        if self.safety.fencing == Fencing::Off {
            Some("fencing is off for this master, so its writes cannot be paused")
        } else if self.status != MasterStatus::Ok || !self.master.link_up {
            Some("the master is not reachable")
        } else {
            None
        }
    }
}

/// How a master group is kept safe: its fencing and failover limits, and their state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SafetyView {
    /// How an old master is kept from accepting writes.
    pub fencing: Fencing,
    /// `max_lag_on_failover_bytes`.
    pub max_lag_on_failover_bytes: Option<u64>,
    /// `min_failover_interval` (anti-flapping).
    pub min_failover_interval: Option<Duration>,
    /// `switchover_timeout`.
    pub switchover_timeout: Duration,
    /// Automatic failovers are paused (maintenance mode), as this node last heard.
    pub maintenance_paused: bool,
    /// Why the last automatic failover this node would have started was held back
    /// (`maintenance` or `min-interval`), while it is.
    pub held: Option<&'static str>,
    /// The lease the master last reported (`CONFIG GET min-replicas-*`).
    pub lease: Option<Lease>,
    /// Whether this node pauses the master's writes because it lost its peers.
    pub isolation_fence: bool,
}

/// A failover in progress.
#[derive(Clone, Debug, Serialize)]
pub struct FailoverView {
    /// Its epoch.
    pub epoch: u64,
    /// Sentinel's state name (`wait_start`, `reconf_slaves`, ...).
    pub state: &'static str,
    /// When it started.
    pub started_at: Instant,
    /// When the current state began.
    pub state_since: Instant,
    /// Requested by an operator.
    pub manual: bool,
    /// The replica chosen for promotion.
    pub promoted: Option<Addr>,
}

/// One instance.
#[derive(Clone, Debug, Serialize)]
pub struct InstanceView {
    /// Address.
    pub addr: Addr,
    /// Run id from INFO.
    pub run_id: Option<String>,
    /// Whether the link is connected.
    pub link_up: bool,
    /// Requests awaiting replies.
    pub pending_requests: usize,
    /// When the PING awaiting a reply was sent.
    pub ping_in_flight_since: Option<Instant>,
    /// Last acceptable PING reply.
    pub last_ok_reply_at: Instant,
    /// Last reply of any kind.
    pub last_reply_at: Option<Instant>,
    /// Round trip of the last answered PING (millisecond resolution).
    pub ping_rtt: Option<Duration>,
    /// Since when subjectively down.
    pub sdown_since: Option<Instant>,
    /// Last INFO.
    pub info_at: Option<Instant>,
    /// Role reported by INFO (`master` / `slave`).
    pub role: Option<&'static str>,
    /// When that role was first reported.
    pub role_reported_at: Option<Instant>,
    /// A replica's replication link, from INFO.
    pub replica_link: Option<ReplicaLink>,
    /// Priority (override, else INFO).
    pub priority: u32,
    /// Replication offset.
    pub repl_offset: u64,
    /// `replica_announced`.
    pub replica_announced: bool,
    /// A replica's lag in seconds as its master's last INFO lists it (`slaveN:...,lag=`).
    pub listed_lag_s: Option<u64>,
    /// Repointing flag during this node's failover (`reconf_sent`, ...).
    pub reconf: Option<&'static str>,
    /// Chosen for promotion by this node's failover.
    pub promoted: bool,
    /// Restarted, and no `PONG` since (with `reboot_down_after` set).
    pub rebooted: bool,
    /// Why the failover's replica selection would not promote it now (`None`: it would be
    /// eligible): the engine's own rule, for `/is-replica`, metrics and `why`.
    pub ineligible: Option<Ineligible>,
}

/// A peer's report about one master.
#[derive(Clone, Debug, Serialize)]
pub struct PeerReportView {
    /// The peer's slot.
    pub slot: PeerId,
    /// Its id.
    pub node_id: Option<NodeId>,
    /// Its Sentinel-port address.
    pub client_addr: Option<Addr>,
    /// Whether its reports are fresh.
    pub fresh: bool,
    /// When it was last heard from.
    pub last_heard_at: Option<Instant>,
    /// Its report about the master.
    pub report: Option<MasterReport>,
}

pub(crate) fn node(
    node: &Node,
    peers: &Peers,
    masters: &[Arc<MasterView>],
    stats: Stats,
    now: Instant,
) -> View {
    View {
        at: now,
        node_id: node.id,
        announce: node.settings.announce.clone(),
        client_addr: node.settings.client_addr.clone(),
        current_epoch: node.current_epoch,
        tilt_since: node.tilt_since,
        voters: node.settings.voters(),
        majority: node.settings.majority(),
        awaiting_vote_floor: node.awaiting_vote_floor,
        peers_in_contact: node.peers_in_contact(peers, now),
        masters: masters.to_vec(),
        peers: peers
            .iter()
            .map(|(slot, p)| {
                let (node_id, client_addr) = p.identity();
                PeerView {
                    slot,
                    addr: p.addr.clone(),
                    node_id,
                    client_addr,
                    last_heard_at: p.last_heard_at,
                    fresh: p.is_fresh(now, peers.timeout()),
                    current_epoch: p.current_epoch,
                }
            })
            .collect(),
        stats,
    }
}

pub(crate) fn master(group: &Group, peers: &Peers, now: Instant) -> MasterView {
    let status = if group.odown_since.is_some() {
        MasterStatus::Odown
    } else if group.master_sdown() {
        MasterStatus::Sdown
    } else {
        MasterStatus::Ok
    };
    let promoted = group.failover.as_ref().and_then(|f| f.promoted(&group.master));
    let listed = group.master_instance().and_then(|m| m.info.as_ref()).map(|r| &r.replicas);
    let instance_view = |addr: &Addr, i: &Instance| InstanceView {
        addr: addr.clone(),
        run_id: i.info.as_ref().and_then(|r| r.run_id.clone()),
        link_up: i.up_link().is_some(),
        pending_requests: i.pending.len(),
        ping_in_flight_since: i.ping_in_flight_since,
        last_ok_reply_at: i.last_ok_reply_at,
        last_reply_at: i.last_reply_at,
        ping_rtt: i.ping_rtt,
        sdown_since: i.sdown_since,
        info_at: i.info_at,
        role: i.reported_role().map(ReportedRole::as_redis_str),
        role_reported_at: i.role_reported_at,
        replica_link: match i.reported_role() {
            Some(ReportedRole::Replica(link)) => Some(link.clone()),
            _ => None,
        },
        // Redis's default when the instance never said (a master's INFO does not).
        priority: group.priority_of(addr).unwrap_or(100),
        repl_offset: match i.reported_role() {
            Some(ReportedRole::Replica(link)) => link.repl_offset,
            _ => i.info.as_ref().map_or(0, |r| r.master_repl_offset),
        },
        replica_announced: i.info.as_ref().is_none_or(|r| r.replica_announced),
        listed_lag_s: listed.and_then(|l| l.iter().find(|r| &r.addr == addr)).and_then(|r| r.lag),
        reconf: group.reconf_state(addr).and_then(|r| r.flag()),
        promoted: promoted.as_ref() == Some(addr),
        rebooted: i.rebooted_at.is_some(),
        ineligible: group.eligibility(addr, now).err(),
    };
    let master = group
        .master_instance()
        .map(|i| instance_view(&group.master, i))
        .unwrap_or_else(|| instance_view(&group.master, &Instance::new(group.master.clone(), now)));
    MasterView {
        name: group.settings.name.clone(),
        addr: group.master.clone(),
        config_epoch: group.config_epoch,
        quorum: group.settings.quorum,
        down_after: group.settings.down_after,
        down_after_refused: group.timing.down_after_refused,
        failover_timeout: group.settings.failover_timeout,
        parallel_syncs: group.settings.parallel_syncs,
        notification_script: group.settings.notification_script.clone(),
        client_reconfig_script: group.settings.client_reconfig_script.clone(),
        safety: SafetyView {
            fencing: group.settings.fencing,
            max_lag_on_failover_bytes: group.settings.max_lag_on_failover_bytes,
            min_failover_interval: group.settings.min_failover_interval,
            switchover_timeout: group.settings.switchover_timeout,
            maintenance_paused: group.maintenance.paused,
            held: group.held,
            lease: group.master_instance().and_then(|m| m.lease),
            isolation_fence: group.isolation_fence,
        },
        status,
        odown_since: group.odown_since,
        odown_votes: group.odown_votes,
        failover: group.failover.as_ref().map(|f| FailoverView {
            epoch: f.epoch,
            state: f.state_name(),
            started_at: f.started_at,
            state_since: f.phase_since,
            manual: f.manual,
            promoted: match &f.phase {
                Phase::Election { .. } => None,
                _ => promoted.clone(),
            },
        }),
        voted_epoch: group.ballot.epoch,
        voted_for: group.ballot.candidate,
        master,
        replicas: group
            .instances
            .iter()
            .filter(|(addr, _)| **addr != group.master)
            .map(|(addr, i)| instance_view(addr, i))
            .collect(),
        peers: peers
            .iter()
            .map(|(slot, p)| {
                let (node_id, client_addr) = p.identity();
                PeerReportView {
                    slot,
                    node_id,
                    client_addr,
                    fresh: p.is_fresh(now, peers.timeout()),
                    last_heard_at: p.last_heard_at,
                    report: p.reports.get(&group.settings.name).cloned(),
                }
            })
            .collect(),
        sentinels: group
            .sentinels
            .iter()
            .map(|s| {
                let answer = s.answer.map(|(_, a)| a);
                SentinelView {
                    addr: s.addr.clone(),
                    run_id: s.run_id,
                    last_heard_at: s.last_heard_at,
                    fresh: s.is_fresh(now),
                    current_epoch: s.current_epoch,
                    master_down: s.sees_master_down(now),
                    voted_for: answer.and_then(|a| a.leader),
                    voted_epoch: answer.map_or(0, |a| a.leader_epoch),
                }
            })
            .collect(),
    }
}
