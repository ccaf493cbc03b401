//! Fencing: keeping an old master from acknowledging writes that a failover will throw away.
//!
//! Replication is asynchronous, so a master that is cut off from the nodes but not from its
//! clients goes on acknowledging writes; once another instance is promoted, every one of them
//! is lost at the resync (Jepsen's finding for Sentinel). Only a fence *inside* the isolated
//! master can stop that, since nothing else may reach it. Picket keeps three:
//!
//! * **The lease** (every mode but `off`). Each master runs with `min-replicas-to-write K` and
//!   `min-replicas-max-lag 1`, `K` a majority of the replicas that follow it: a master that loses
//!   a majority of its replicas refuses writes within [`Lease::expiry`] of their last
//!   acknowledgement (replicas acknowledge every second; the master counts them every second).
//!   A replica that is really gone (a quorum of the nodes that see the master up see it down)
//!   stops counting, so a master with dead replicas stays writable; the change is announced
//!   (`+fence-lease`). A node reports no replica down while it may have voted for a failover
//!   whose outcome it has not learned (the replica may be a master beyond a partition), counts
//!   a peer's reports only once it holds that peer's latest state, and reports the weaker
//!   lease until it has read back a raise (a raise may not land; a failover elsewhere takes
//!   the weakest lease it heard). A promoted replica starts with no lease (it has no replicas
//!   yet) and gets its own once its replicas follow it.
//! * **The pause** (every mode but `off`). A leader that still reaches the old master pauses its
//!   writes (`CLIENT PAUSE ... WRITE`) and disconnects its clients before promoting, and a node
//!   that has lost the majority of its peers pauses the masters it still reaches (in `bounded`
//!   mode, only those that have lost the replicas of their lease too), renewing the pause while
//!   the isolation lasts.
//! * **The wait** (`strict` only). The promoted replica is paused and locked ([`Lease::LOCK`]:
//!   `min-replicas-to-write` beyond any replica count, saved with `CONFIG REWRITE`) in the
//!   transaction that promotes it, and released (its lease set, its pause lifted) only once the
//!   old master surely refuses writes for good: it was locked behind its pause, or demoted, or
//!   the replicas of its lease left it more than [`Lease::expiry`] ago ([`fenced_at`]; a
//!   replica that follows it with its link down has not left: it reconnects when the old master
//!   comes back). There is then
//!   never a moment with two masters accepting writes, at the cost of writes blocking for that
//!   long after a failover. The pause makes clients wait rather than fail; the lock is what
//!   the promise rests on: it needs no renewal and outlives a restart, so a leader that crashes
//!   or stalls mid-failover, a promotion that lands after its failover gave up, or a new master
//!   that restarts leaves a master that refuses writes (`-NOREPLICAS`), never a second writable
//!   one. The wait lasts at most `failover_timeout`; the hold takes over if it gives up.
//! * **The hold** (`strict` only). The same rule at every moment, not only at the end of a
//!   failover: the master is never writable while another instance of the group may be. That
//!   is any instance besides the master that last reported `role:master` and is not surely
//!   fenced: no pause it acknowledged lasts beyond [`HOLD_MARGIN`] from now (this node tracks
//!   the end of each acknowledged pause, send time plus its length, and forgets it when it sends
//!   `CLIENT UNPAUSE` or sees the instance restarted), and the replicas of its lease have not
//!   left it more than [`Lease::expiry`] ago ([`fenced_at`]: each has followed another master
//!   since its INFO said so; one reporting its link to it down has not left it). An instance another node promoted counts
//!   as a master until it reports again. While such doubt lasts the master is locked
//!   ([`Lease::LOCK`]) and its writes paused for [`HOLD_PAUSE`], renewed at half of it, and never
//!   lifted with `CLIENT UNPAUSE` (it would lift other nodes' pauses too): the last pause runs
//!   out. Every node reports the lock it wants in its gossip (`lease_set`), and a node lifts a
//!   lock (to the master's lease, or by the wait's release) only when it hears a majority of
//!   the nodes and neither it nor any peer it hears doubts: a node cut off from the others
//!   keeps a lock, since it cannot know what they did meanwhile. A pause ends the hold but
//!   lifts no lock: it runs out unless a node renews it, and a node in TILT, stalled or cut off
//!   renews nothing, so a lock is lifted only while every other master is fenced by its lease
//!   or demoted. A master that is not the one expected is therefore locked behind its pause.
//!   A strict failover whose old master is fenced ends without releasing its new master while
//!   the doubt lasts (the hold takes over, and the demotions that end the doubt are not kept
//!   waiting), and an aborted switchover does not release the master it paused. Unexpected
//!   masters are paused (and the pause renewed) during this node's own failovers too, the
//!   replica being promoted aside, so that the hold is rarely needed. A dead old master does
//!   not hold the new one forever: its replicas leave it and its lease lapses. An old master
//!   without a lease (relaxed to none because its replicas were gone, or promoted with none)
//!   can be shown to refuse writes only by its lock, a pause followed by a lease, or its
//!   demotion: while it stays out of reach, the new master stays locked, so strict mode trades
//!   that group's write availability for the promise; an operator who knows it is dead removes
//!   it with `SENTINEL RESET`.
//!
//! Writes a master acknowledged before its fence closed and did not replicate are lost in every
//! mode: replication is asynchronous. `bounded` (the default) promotes at full speed and states,
//! for every failover, how long the old master may still accept writes (`+fence-window`).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::election::votes_needed;
use crate::engine::event::{Detail, Event, EventKind, Subject};
use crate::engine::failover::{Phase, Reconf};
use crate::engine::gossip::MasterReport;
use crate::engine::group::Group;
use crate::engine::instance::Instance;
use crate::engine::io::RedisCommand;
use crate::engine::node::Node;
use crate::engine::peers::Peers;
use crate::engine::report::ReportedRole;
use crate::engine::time::Instant;
use crate::engine::timing::{HOLD_MARGIN, HOLD_PAUSE, INFO_PERIOD, STRICT_PAUSE};

/// How a master is fenced (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fencing {
    /// No lease, no pause: Sentinel's behaviour.
    Off,
    /// The lease and the pause; promotion at full speed.
    #[default]
    Bounded,
    /// The lease, the pause, and the wait: never two writable masters.
    Strict,
}

impl Fencing {
    /// The configuration's word for it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Bounded => "bounded",
            Self::Strict => "strict",
        }
    }

    /// Parses the configuration's word.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Self::Off),
            "bounded" => Some(Self::Bounded),
            "strict" => Some(Self::Strict),
            _ => None,
        }
    }
}

/// `min-replicas-max-lag`, in seconds: the smallest Redis accepts that is not "off".
pub const LEASE_MAX_LAG_S: u32 = 1;

/// The lease a master runs under: Redis's `min-replicas-to-write` and `min-replicas-max-lag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lease {
    /// `min-replicas-to-write` (0: no lease).
    pub min_replicas: u32,
    /// `min-replicas-max-lag`, seconds.
    pub max_lag_s: u32,
}

impl Lease {
    /// No lease: the master accepts writes whatever its replicas do.
    pub const NONE: Self = Self { min_replicas: 0, max_lag_s: LEASE_MAX_LAG_S };

    /// Strict mode's lock: more replicas than any group has, so the master refuses every write
    /// (`-NOREPLICAS`). Unlike a pause it needs no renewal and, saved with `CONFIG REWRITE`,
    /// outlives a restart: a master locked by a promotion or a hold stays locked, whatever
    /// happens to the nodes, until a node lifts it (see the module docs).
    pub const LOCK: Self = Self { min_replicas: 1_000_000, max_lag_s: LEASE_MAX_LAG_S };

    /// Whether this is [`Self::LOCK`] (or anything as strong: no group has that many replicas).
    #[must_use]
    pub const fn is_lock(self) -> bool {
        self.min_replicas >= Self::LOCK.min_replicas
    }

    /// The lease for a master followed by `replicas` replicas that count: a majority of them.
    #[must_use]
    pub fn majority_of(replicas: usize) -> Self {
        let min_replicas = if replicas == 0 { 0 } else { replicas / 2 + 1 };
        Self { min_replicas: u32::try_from(min_replicas).unwrap_or(u32::MAX), ..Self::NONE }
    }

    /// How long after the last acknowledgement of the replica that kept its lease a master
    /// surely refuses writes: a replica is good while its last acknowledgement is at most
    /// `max_lag` whole seconds old (up to one more second by Redis's one-second clock), and the
    /// master recounts its good replicas once a second.
    #[must_use]
    pub fn expiry(self) -> Duration {
        Duration::from_secs(u64::from(self.max_lag_s) + 2)
    }
}

/// When an old master running under `lease` surely refuses writes, given when each of its
/// replicas last acknowledged it: `Some(t)` if it stopped at `t` at the latest, `None` if it may
/// still be acknowledging (or nothing is known). `None` if that time is not known: a replica
/// still acknowledging would keep the lease, or there is no lease at all.
#[must_use]
pub fn fenced_at(lease: Lease, acks: impl IntoIterator<Item = Option<Instant>>) -> Option<Instant> {
    let needed = usize::try_from(lease.min_replicas).unwrap_or(usize::MAX);
    if needed == 0 {
        return None;
    }
    let mut acks: Vec<Option<Instant>> = acks.into_iter().collect();
    if acks.len() < needed {
        // Fewer replicas than the lease needs: it refuses writes already.
        return Some(Instant::ZERO);
    }
    // Latest first, `None` (may still acknowledge) before any time.
    acks.sort_by(|a, b| match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(x), Some(y)) => y.cmp(x),
    });
    // The lease holds while `needed` replicas acknowledged recently: it lapses after the one
    // that acknowledged `needed`-th most recently.
    acks[needed - 1].map(|last| last + lease.expiry())
}

/// The replicas that count for a master's lease, as [`Group::lease_replicas`] counts them.
#[derive(Clone, Copy, Debug)]
struct LeaseReplicas {
    /// Replicas that count, the deposed master aside.
    settled: usize,
    /// Whether a deposed master that has not rejoined would count (it is not seen down).
    deposed: bool,
}

impl LeaseReplicas {
    /// The lease to set, given the one observed, and the replicas it counts. A deposed master
    /// that has not rejoined neither raises the lease (it may be resynchronising in full) nor
    /// lowers it: a node that did not see it rejoin (it was cut off meanwhile) leaves a lease
    /// that others raised when they saw it rejoin, instead of lowering the lease of a master it
    /// may be cut off with (simulator seed 843).
    fn target(self, observed: Option<Lease>) -> (Lease, usize) {
        let with_deposed = self.settled + usize::from(self.deposed);
        let (low, high) = (Lease::majority_of(self.settled), Lease::majority_of(with_deposed));
        let wanted = observed.map_or(low.min_replicas, |l| l.min_replicas);
        let min_replicas = wanted.clamp(low.min_replicas, high.min_replicas);
        let replicas = if min_replicas > low.min_replicas { with_deposed } else { self.settled };
        (Lease { min_replicas, ..low }, replicas)
    }
}

/// The weakest of `leases` (the fewest replicas required), if any.
pub(crate) fn weakest(leases: impl IntoIterator<Item = Lease>) -> Option<Lease> {
    leases.into_iter().min_by_key(|l| (l.min_replicas, std::cmp::Reverse(l.max_lag_s)))
}

impl Group {
    /// Makes `new` the master and returns the old one, which keeps the weakest lease a fresh
    /// peer reports setting on it ([`Instance::peer_lease`]): the hold judges it by that lease
    /// too (simulator seed 9304660: a peer's `min-replicas-to-write 0`, held by a partition,
    /// landed on the old master after the other nodes' last reading of 1, and they counted it
    /// fenced by a lease it no longer ran under).
    pub(crate) fn replace_master(&mut self, new: Addr) -> Addr {
        let peer_lease = self.peer_lease.take();
        self.peer_lease_since = None;
        if let Some(old) = self.instances.get_mut(&self.master) {
            old.peer_lease = weakest(old.peer_lease.into_iter().chain(peer_lease));
        }
        std::mem::replace(&mut self.master, new)
    }

    /// The replicas this node sees subjectively down, while it sees the master up and knows the
    /// outcome of every failover of it it voted for (reported to peers; a quorum of such reports
    /// relaxes the lease, see `Group::vote_outcome_unknown`).
    #[must_use]
    pub fn replicas_seen_down(&self, node: &Node) -> Vec<Addr> {
        if node.in_tilt() || self.master_sdown() || self.vote_outcome_unknown {
            return Vec::new();
        }
        self.instances
            .iter()
            .filter(|(addr, i)| **addr != self.master && i.sdown_since.is_some())
            .map(|(addr, _)| addr.clone())
            .collect()
    }

    /// Whether this node may have voted for a failover of this master whose outcome it has not
    /// learned. Relaxing a lease rests on the same majority as a failover: a replica that a
    /// quorum sees down may be down only from here, promoted beyond a partition by a leader that
    /// this majority elected. The two majorities share a voter, and that voter must not report
    /// the replica down while it does not know what its vote led to (simulator seeds 9354027
    /// and 9967788: the leader was cut off with the replica it promoted, the voter never heard
    /// the outcome, or lost its disk and with it its ballot, and it and the node that had not
    /// voted relaxed the old master's lease to none beside the new master). So it reports none
    /// while it voted in an epoch above the master's configuration and its candidate (itself,
    /// or a peer whose latest state it holds) may still be at work or has won, or is not
    /// heard; and while it waits for its vote floor (it lost its state: any epoch may hold a
    /// ballot it gave). A candidate that gave up without winning left no promotion, or one the
    /// next leader adopts (see [`crate::engine::failover`]). A candidate never heard again
    /// keeps its voters from relaxing the lease: `SENTINEL RESET` is the operator's way out,
    /// as for replicas a node does not know.
    pub(crate) fn vote_outcome_unknown(&self, node: &Node, peers: &Peers, now: Instant) -> bool {
        if node.awaiting_vote_floor {
            return true;
        }
        let epoch = self.ballot.epoch;
        let Some(candidate) = self.ballot.candidate.filter(|_| epoch > self.config_epoch) else {
            return false;
        };
        let at_work = |failover: Option<u64>| failover == Some(epoch);
        if candidate == node.id {
            return at_work(self.failover.as_ref().map(|f| f.epoch));
        }
        let heard = peers
            .fresh_reports(&self.settings.name, now)
            .find(|(_, peer, _)| peer.node_id == Some(candidate) && peer.in_sync())
            .map(|(_, _, report)| report);
        heard.is_none_or(|r| r.config_epoch >= epoch || at_work(r.failover.map(|f| f.epoch)))
    }

    /// The replicas that count for the master's lease: every instance of the group known besides
    /// the master (the list is persisted, so a restarted node counts the same ones), unless as
    /// many nodes as a failover needs (a majority, and the quorum) see the master up and that
    /// instance down: it is really gone, and a master with dead replicas must stay writable.
    /// Nothing else lowers the count, so a node cut off with the master (a minority), seeing its
    /// replicas leave for a new master elsewhere, keeps the lease.
    ///
    /// The master a switch deposed is counted apart until it follows the new master with its
    /// link up (see [`Group::deposed`]): it accepted writes the new master never saw (a
    /// partition heals, a crashed master restarts), so it must resynchronise in full, and
    /// counting it meanwhile (seconds, minutes for a large dataset) would make the new master
    /// refuse every write. It is not a replica leaving for a master elsewhere: it was this
    /// group's master under an older configuration and has not followed anyone since.
    fn lease_replicas(&self, node: &Node, peers: &Peers, now: Instant) -> LeaseReplicas {
        let needed = votes_needed(node.settings.voters(), self.settings.quorum);
        let mine = self.replicas_seen_down(node);
        // Only reports that are the peer's latest: one heard again after a partition is fresh
        // at once, with the reports it had before until its state arrives (simulator seed
        // 10000997: a node back from a partition relaxed a lease on a peer's report of a
        // replica down, made before that peer elected a leader who promoted the replica).
        let reports: Vec<&MasterReport> = peers
            .fresh_reports(&self.settings.name, now)
            .filter(|(_, p, r)| p.in_sync() && r.addr == self.master && !r.sdown)
            .map(|(_, _, r)| r)
            .collect();
        let mut counted = LeaseReplicas { settled: 0, deposed: false };
        for addr in self.instances.keys().filter(|addr| **addr != self.master) {
            let seen_down = usize::from(mine.contains(addr))
                + reports.iter().filter(|r| r.down_replicas.contains(addr)).count();
            if seen_down >= needed {
                continue;
            }
            if Some(addr) == self.deposed.as_ref() {
                counted.deposed = true;
            } else {
                counted.settled += 1;
            }
        }
        counted
    }

    /// Sets the master's lease when it differs from the target. Only outside failovers (a
    /// failover sets the new master's own), and at most once per grace while the master's
    /// answer to `CONFIG GET` has not caught up, so that nodes briefly disagreeing do not
    /// flood it.
    pub(crate) fn maintain_lease(&mut self, node: &mut Node, peers: &Peers, now: Instant) {
        let reported = peers
            .fresh_reports(&self.settings.name, now)
            .filter(|(_, _, r)| r.addr == self.master)
            .filter_map(|(_, _, r)| r.lease_set);
        let read_at = self.master_instance().and_then(|m| m.lease_read_at);
        let since_read = if read_at == self.peer_lease_since { self.peer_lease } else { None };
        self.peer_lease = weakest(reported.chain(since_read));
        self.peer_lease_since = read_at;
        // Peers that have not seen this node's failover start may relax the old master's lease
        // meanwhile: its window and its wait count with the weakest (simulator seed 9316596
        // stated 0 ms from a pause, and a lease of one replica that peers had since set to none).
        if let Some(failover) = &mut self.failover
            && failover.fence.old_master.as_ref() == Some(&self.master)
            && let Some(read) = failover.fence.old_lease
        {
            failover.fence.old_lease = weakest([read].into_iter().chain(self.peer_lease));
        }
        if self.deposed_rejoined() {
            self.deposed = None;
        }
        // Read back: a lease change forgets the reading before it, so a reading held now, taken
        // at or after the raise (times are in milliseconds), was taken after it.
        let read_back = self.master_instance().is_some_and(|m| m.lease.is_some());
        if let Some((addr, _, raised_at)) = &self.lease_before_raise
            && (*addr != self.master || (read_back && read_at.is_some_and(|at| at >= *raised_at)))
        {
            self.lease_before_raise = None;
        }
        if self.settings.fencing == Fencing::Off
            || self.failover.is_some()
            || !self.master_serving(now)
        {
            return;
        }
        // This runs at every evaluation of every fenced master: count once, and build the
        // event's subject only when there is something to announce.
        let counted = self.lease_replicas(node, peers, now);
        let grace = self.timing.enforce_grace;
        let Some(master) = self.instances.get(&self.master) else { return };
        let observed = master.lease;
        let recently = master.fence_sent_at.is_some_and(|at| now.saturating_since(at) < grace);
        let locked = observed.is_some_and(Lease::is_lock);
        // A lock is lifted to the lease the master would have without it (the deposed master
        // not counted), and only once no node doubts: this one, and every peer heard.
        let (target, replicas) = counted.target(observed.filter(|l| !l.is_lock()));
        if locked {
            let doubt = self.doubts(now);
            // A node that lost its state lifts no lock before it has heard enough peers to
            // learn its vote floor: its configuration may predate the failover that set the
            // lock, and it may not know the master that failover promoted (simulator seed
            // 10318369: two nodes restarted without their disks lifted the lock of an old
            // master their configuration file still named, beside the new one). It does not
            // doubt for that: peers that know more may lift it.
            if doubt || !self.peers_let_lift || node.awaiting_vote_floor {
                // Report what this node wants, so that peers whose doubt ends can lift it.
                let wanted = if doubt { Lease::LOCK } else { target };
                self.lease_set = Some((self.master.clone(), wanted));
                return;
            }
        }
        if observed == Some(target) || recently {
            return;
        }
        if self.lowering_unfounded(observed, target) {
            return;
        }
        let subject = self.master_subject();
        let Some(master) = self.instances.get_mut(&self.master) else { return };
        if observed.is_none() {
            // A new master: read its lease now rather than with its next INFO.
            master.fence_sent_at = Some(now);
            master.send(node, now, RedisCommand::ReadLease);
            return;
        }
        master.fence_sent_at = Some(now);
        master.send(node, now, RedisCommand::SetLease(target));
        master.send(node, now, RedisCommand::ReadLease);
        // Only a raise of a lease this node had relaxed: its peers may have counted on that
        // relaxation. A first lease (Redis's default is none) is no relaxation, and reporting
        // none until it is read back would make peers' failovers state no window.
        let relaxed = self
            .lease_set
            .as_ref()
            .filter(|(at, set)| *at == self.master && set.min_replicas < target.min_replicas)
            .map(|(_, set)| *set);
        if let Some(before) = relaxed {
            let before = weakest(observed.into_iter().chain([before])).unwrap_or(before);
            self.lease_before_raise = Some((self.master.clone(), before, now));
        }
        self.lease_set = Some((self.master.clone(), target));
        node.emit(Event {
            kind: EventKind::FenceLease,
            subject: Some(subject),
            detail: Detail::Lease { min_replicas: target.min_replicas, replicas },
        });
    }

    /// Whether lowering the master's lease from `observed` to `target` would rest on what this
    /// node does not know. A replica stops counting only when a quorum sees it down, and one
    /// this node never heard of cannot be seen down, yet the lease it observes may count it: a
    /// node lowers no lease below what the replicas it knows could explain, unless
    /// `SENTINEL RESET` made it forget replicas on the operator's word. Simulator seeds 9354598
    /// (a node restarted without its disk, cut off with the old master, knew none of its
    /// replicas and set its lease to none, past the window the majority's failover had stated)
    /// and 9363189 (the same, hearing its peers, before the master's INFO listed its replicas).
    fn lowering_unfounded(&self, observed: Option<Lease>, target: Lease) -> bool {
        let Some(observed) = observed.filter(|o| !o.is_lock()) else { return false };
        let known = Lease::majority_of(self.instances.len().saturating_sub(1));
        target.min_replicas < observed.min_replicas
            && known.min_replicas < observed.min_replicas
            && !self.replicas_forgotten
    }

    /// Whether the deposed master now follows the current master with its link up: it
    /// acknowledges it, and counts for its lease again.
    fn deposed_rejoined(&self) -> bool {
        let Some(instance) = self.deposed.as_ref().and_then(|a| self.instances.get(a)) else {
            // Forgotten (a reset): nothing to wait for.
            return self.deposed.is_some();
        };
        matches!(instance.reported_role(), Some(ReportedRole::Replica(link))
        if link.link_up && link.master.as_ref().is_some_and(|m| {
            *m == self.master || self.master_instance().is_some_and(|i| i.is_at(m))
        }))
    }

    /// Whether the master answers as a master right now.
    fn master_serving(&self, now: Instant) -> bool {
        self.master_instance().is_some_and(|m| {
            m.up_link().is_some()
                && m.sdown_since.is_none()
                && matches!(m.reported_role(), Some(ReportedRole::Master))
                && m.info_at.is_some_and(|at| now.saturating_since(at) < INFO_PERIOD * 3)
        })
    }

    /// A node that has lost the majority of its peers cannot know whether the others are
    /// failing the master over: it pauses the master's writes itself while the isolation lasts
    /// (renewing the pause), and stops renewing it when its peers are back: the last pause runs
    /// out within [`isolation_pause`]. In `bounded` mode it
    /// does so only once the master has lost the replicas of its lease too (the other side may
    /// have promoted one): a node cut off alone from healthy peers then costs no writes.
    pub(crate) fn fence_if_isolated(&mut self, node: &mut Node, peers: &Peers, now: Instant) {
        let fencing = self.settings.fencing;
        let isolated =
            fencing != Fencing::Off && !peers.is_empty() && !node.hears_majority(peers, now);
        let lost_replicas = self.master_instance().is_some_and(|m| {
            let needed = m.lease.map_or(0, |l| l.min_replicas);
            let good = m.info.as_ref().and_then(|i| i.good_replicas).unwrap_or(u32::MAX);
            needed > 0 && good < needed
        });
        let fence = isolated && (fencing == Fencing::Strict || lost_replicas);
        let lift = self.isolation_fence && !isolated;
        if !fence && !lift {
            // The usual case, at every evaluation: nothing to pause, nothing to announce.
            return;
        }
        let subject = self.master_subject();
        let renew = isolation_pause(node) / 2;
        let Some(master) = self.instances.get_mut(&self.master) else { return };
        if fence {
            let due = master.fence_sent_at.is_none_or(|at| now.saturating_since(at) >= renew);
            if due
                && master.send(
                    node,
                    now,
                    RedisCommand::PauseWrites { pause: isolation_pause(node) },
                )
            {
                master.fence_sent_at = Some(now);
                if !self.isolation_fence {
                    self.isolation_fence = true;
                    node.emit_about(EventKind::FenceIsolated, subject);
                }
            }
        } else if lift {
            // No `CLIENT UNPAUSE`: it would lift every pause, a failover's among them (a node
            // back from a stall or a partition knows nothing of those). The last pause expires.
            self.isolation_fence = false;
            node.emit_about(EventKind::FenceIsolatedCleared, subject);
        }
    }
}

/// How long one pause of an isolated node lasts: three heartbeats, renewed every half of it,
/// so that a node that dies or stalls stops fencing within that time.
fn isolation_pause(node: &Node) -> Duration {
    (node.settings.heartbeat * 3).max(Duration::from_millis(500))
}

/// A failover's side of fencing: pausing the old master before the promotion, a planned
/// switchover's wait for the replica to catch up, and strict mode's wait.
impl Group {
    /// Records the master being replaced and, if fencing is on and this node reaches it, pauses
    /// its writes and disconnects its clients (with an INFO right behind, whose offset a
    /// switchover waits for). Returns whether the pause was sent.
    pub(crate) fn fence_old_master(&mut self, node: &mut Node, now: Instant) -> bool {
        let fencing = self.settings.fencing;
        let pause = self.timing.failover_timeout;
        let old = self.master.clone();
        let peer_lease = self.peer_lease;
        let Some(master) = self.instances.get_mut(&old) else { return false };
        // The lease this node read, unless a peer set a weaker one since (a quorum relaxed it
        // while this node's reading, which rides on INFO, was older: seed 8200140).
        let lease =
            master.lease.map(|read| weakest([read].into_iter().chain(peer_lease)).unwrap_or(read));
        let sent = fencing != Fencing::Off && master.send(node, now, RedisCommand::Fence { pause });
        if sent {
            master.fence_sent_at = Some(now);
            master.send(node, now, RedisCommand::Info);
        }
        if let Some(failover) = &mut self.failover {
            failover.fence.old_master = Some(old);
            failover.fence.old_lease = lease;
        }
        if sent {
            self.lock_old_master(node, now);
        }
        sent
    }

    /// Strict mode: locks the old master behind the pause that fences it. A pause runs out,
    /// and only a node that reaches the old master renews it; the lock lasts (simulator seed
    /// 8802435: the leader released the new master on the old master's pause, then crashed,
    /// and the pause ran out before anyone demoted the old master).
    fn lock_old_master(&mut self, node: &mut Node, now: Instant) {
        if self.settings.fencing != Fencing::Strict {
            return;
        }
        let Some(old) = self.failover.as_ref().and_then(|f| f.fence.old_master.clone()) else {
            return;
        };
        let Some(instance) = self.instances.get_mut(&old) else { return };
        if instance.send(node, now, RedisCommand::SetLease(Lease::LOCK)) {
            instance.send(node, now, RedisCommand::ReadLease);
            self.lease_set = Some((old, Lease::LOCK));
            if let Some(failover) = &mut self.failover {
                failover.fence.old_lock_sent_at = Some(now);
            }
        }
    }

    /// Strict mode: whether the old master's lease, read since this failover locked it, shows
    /// the lock (a lock sent clears the reading until it is read back).
    fn old_master_locked(&self) -> bool {
        let Some(fence) = self.failover.as_ref().map(|f| &f.fence) else { return false };
        fence.old_lock_sent_at.is_some()
            && fence
                .old_master
                .as_ref()
                .and_then(|old| self.instances.get(old))
                .is_some_and(|i| i.lease.is_some_and(Lease::is_lock))
    }

    /// The instance at `addr` may have restarted (its link dropped, or its INFO shows a new run
    /// id), and a restart lifts every pause: none is counted on until it acknowledges a new one,
    /// which is sent again as soon as it answers as a master. For the old master of the failover
    /// under way this also drops its fence (a failover stated a fence window of 0 ms for an old
    /// master that had restarted unpaused: simulator seed 8305313) and a switchover's target
    /// offset, both taken again once it is paused anew.
    pub(crate) fn forget_pauses_of(&mut self, addr: &Addr) {
        if let Some(instance) = self.instances.get_mut(addr) {
            instance.paused_until = None;
            instance.fence_sent_at = None;
        }
        if let Some(failover) = &mut self.failover
            && failover.fence.old_master.as_ref() == Some(addr)
        {
            failover.fence.old_paused_at = None;
            failover.fence.old_lock_sent_at = None;
            if let Phase::Drain { target, .. } = &mut failover.phase {
                *target = None;
            }
        }
    }

    /// The old master acknowledged its pause.
    pub(crate) fn on_old_master_fenced(&mut self, addr: &Addr, now: Instant) {
        if let Some(failover) = &mut self.failover
            && failover.fence.old_master.as_ref() == Some(addr)
        {
            failover.fence.old_paused_at.get_or_insert(now);
        }
    }

    /// Lifts the pause this failover put on the old master (it is given up), unless strict mode
    /// must hold it: another instance may accept writes (the pause then runs out by itself).
    pub(crate) fn release_old_master(&mut self, node: &mut Node, now: Instant) {
        let Some(failover) = &self.failover else { return };
        let Some(old) = failover.fence.old_master.clone() else { return };
        let unlock = failover.fence.old_lock_sent_at.map(|_| failover.fence.old_lease);
        if failover.fence.old_paused_at.is_some()
            && !self.must_hold(now)
            && let Some(instance) = self.instances.get_mut(&old)
        {
            // A strict failover's lock goes with its pause: back to the lease it had.
            if let Some(lease) = unlock {
                let lease = lease.unwrap_or(Lease::NONE);
                instance.send(node, now, RedisCommand::SetLease(lease));
                instance.send(node, now, RedisCommand::ReadLease);
                self.lease_set = Some((old.clone(), lease));
            }
            if let Some(instance) = self.instances.get_mut(&old) {
                instance.send(node, now, RedisCommand::UnpauseWrites);
            }
        }
    }

    /// A switchover's wait: promote once the replica has reached the paused master's offset,
    /// or at once if the old master is gone; give up after `switchover_timeout`.
    pub(crate) fn step_drain(
        &mut self,
        node: &mut Node,
        replica: &Addr,
        target: Option<u64>,
        now: Instant,
    ) {
        let Some(failover) = &self.failover else { return };
        if now.saturating_since(failover.phase_since) >= self.timing.switchover_timeout {
            self.abort(node, EventKind::AbortSwitchoverTimeout, now);
            return;
        }
        let old_gone = self.master_instance().is_none_or(|m| m.up_link().is_none());
        let offset = self.instances.get(replica).and_then(|i| match i.reported_role() {
            Some(ReportedRole::Replica(link)) => Some(link.repl_offset),
            _ => None,
        });
        let caught_up = target.zip(offset).is_some_and(|(target, offset)| offset >= target);
        if old_gone || caught_up {
            self.promote_chosen(node, replica.clone(), now);
        }
    }

    /// An INFO during a switchover's wait: the paused old master's offset is the target.
    pub(crate) fn on_drain_info(&mut self, addr: &Addr, now: Instant) {
        let offset = self.instances.get(addr).and_then(|i| match i.reported_role() {
            Some(ReportedRole::Master) => i.info.as_ref().map(|r| r.master_repl_offset),
            _ => None,
        });
        let Some(failover) = &mut self.failover else { return };
        let paused = failover.fence.old_paused_at.is_some_and(|at| at <= now);
        if let Phase::Drain { target, .. } = &mut failover.phase
            && paused
            && failover.fence.old_master.as_ref() == Some(addr)
            && target.is_none()
        {
            *target = offset;
        }
    }

    /// The old master's last known offset (its own INFO, or the furthest replica, whichever is
    /// ahead) and `replica`'s, for the loss this promotion may cause.
    pub(crate) fn loss_offsets(&self, replica: &Addr) -> Option<(u64, u64)> {
        let promoted = self.instances.get(replica)?.replication_offset()?;
        let known = self.instances.values().filter_map(|i| i.replication_offset()).max()?;
        Some((known, promoted))
    }

    /// The promotion shows: the loss it may have caused, and in bounded mode how long the old
    /// master may still accept writes, if that is known already.
    pub(crate) fn on_promotion_seen(&mut self, node: &mut Node, now: Instant) {
        let Some(failover) = &mut self.failover else { return };
        failover.fence.promoted_at = Some(now);
        if let Some((known, promoted)) = failover.fence.offsets {
            let subject = self.old_master_subject();
            node.emit(Event {
                kind: EventKind::FailoverLoss,
                subject: Some(subject),
                detail: Detail::Loss { bytes: known.saturating_sub(promoted) },
            });
        }
        self.state_fence_window(node, false);
    }

    /// Bounded mode: states once per failover how long after the promotion the old master may
    /// still accept writes (`+fence-window`), as soon as [`Self::lasting_fence_at`] knows, and
    /// at the latest when the failover ends (`unknown` if it still does not know). Usually that
    /// is when the replicas of the old master's lease are seen following the new master.
    pub(crate) fn state_fence_window(&mut self, node: &mut Node, last: bool) {
        if self.settings.fencing != Fencing::Bounded {
            return;
        }
        let Some(fence) = self.failover.as_ref().map(|f| &f.fence) else { return };
        let Some(promoted) = fence.promoted_at.filter(|_| !fence.window_stated) else { return };
        let lasting = self.lasting_fence_at();
        if lasting.is_none() && !last {
            return;
        }
        let ms = lasting
            .map(|at| u64::try_from(at.saturating_since(promoted).as_millis()).unwrap_or(u64::MAX));
        let subject = self.old_master_subject();
        node.emit(Event {
            kind: EventKind::FenceWindow,
            subject: Some(subject),
            detail: Detail::Window { ms },
        });
        if let Some(failover) = &mut self.failover {
            failover.fence.window_stated = true;
        }
    }

    /// The old master of the failover under way, named as `+failover-end` names it.
    fn old_master_subject(&self) -> Subject {
        let old = self.failover.as_ref().and_then(|f| f.fence.old_master.clone());
        Subject::Master {
            name: self.settings.name.clone(),
            addr: old.unwrap_or_else(|| self.master.clone()),
        }
    }

    /// How many replicas may be repointed at once so that enough leave the old master for its
    /// lease to lapse: those already on their way, plus every replica beyond `K - 1` that may
    /// still acknowledge it.
    pub(crate) fn detach_needed(&self, replicas: &BTreeMap<Addr, Reconf>) -> usize {
        let Some(failover) = &self.failover else { return 0 };
        let needed = failover.fence.old_lease.map_or(0, |l| l.min_replicas);
        if self.settings.fencing == Fencing::Off || needed == 0 {
            return 0;
        }
        let old = failover.fence.old_master.as_ref();
        let in_flight = replicas
            .values()
            .filter(|r| matches!(r, Reconf::Sent(_) | Reconf::InProgress(_)))
            .count();
        // Replicas sent their REPLICAOF but still following the old master count too (one that
        // ignored it, say): more are repointed until enough have left.
        let acking = replicas
            .keys()
            .filter(|addr| Some(*addr) != old && self.left_old_master_at(addr).is_none())
            .count();
        in_flight + acking.saturating_sub(usize::try_from(needed - 1).unwrap_or(usize::MAX))
    }

    /// When the replica at `addr` left the old master for good, if it did: it was seen following
    /// the new master, or its last INFO shows it following another master or being one. A
    /// replica that reports its link to the old master down has not left it: it reconnects if
    /// the old master comes back (a process resumed, a restart, a partition healed) before it
    /// is repointed, and a repointing may be refused, ignored or late (simulator seeds 9331586
    /// and 9389624 stated windows from such links that the old master outlived).
    fn left_old_master_at(&self, addr: &Addr) -> Option<Instant> {
        let fence = &self.failover.as_ref()?.fence;
        if let Some(at) = fence.detached.get(addr) {
            return Some(*at);
        }
        let old = fence.old_master.as_ref()?;
        let instance = self.instances.get(addr)?;
        let (info, at) = (instance.info.as_ref()?, instance.info_at?);
        match &info.role {
            ReportedRole::Replica(link)
                if link.master.as_ref().is_some_and(|m| {
                    m == old || self.instances.get(old).is_some_and(|o| o.is_at(m))
                }) =>
            {
                None
            }
            // Following another master, or a master itself: not acknowledging the old one.
            _ => Some(at),
        }
    }

    /// When the old master's lease lapses for good, if it does: the replicas of its lease left
    /// it (the promoted one at the promotion) more than [`Lease::expiry`] before.
    fn old_lease_lapse(&self) -> Option<Instant> {
        let fence = &self.failover.as_ref()?.fence;
        let old = fence.old_master.as_ref()?;
        let acks = self.instances.keys().filter(|addr| *addr != old).map(|addr| {
            if *addr == self.master { fence.promoted_at } else { self.left_old_master_at(addr) }
        });
        fenced_at(fence.old_lease?, acks)
    }

    /// When the old master of the failover under way refuses writes for good, if that is known:
    /// its lease lapsed ([`Self::old_lease_lapse`]), or it reports being a replica since the
    /// promotion; from the moment it acknowledged a pause if that pause lasts until then. A
    /// pause alone is no such moment: it runs out, and renewing it needs a node that reaches
    /// the old master (simulator seed 8305388 stated 0 ms for an old master without a lease
    /// that ignored its demotion; seed 9305123 stated 0 ms from a 2.1 s pause, the lease
    /// lapsing 0.9 s after it).
    #[must_use]
    pub(crate) fn lasting_fence_at(&self) -> Option<Instant> {
        let fence = &self.failover.as_ref()?.fence;
        let old = self.instances.get(fence.old_master.as_ref()?)?;
        let demoted = fence.promoted_at.zip(old.info_at).filter(|(promoted, at)| {
            at >= promoted && matches!(old.reported_role(), Some(ReportedRole::Replica(_)))
        });
        let lasting = match (self.old_lease_lapse(), demoted.map(|(_, at)| at)) {
            (Some(lapse), Some(demoted)) => Some(lapse.min(demoted)),
            (lapse, demoted) => lapse.or(demoted),
        }?;
        let paused_until_then = old.paused_until.is_some_and(|until| lasting <= until);
        Some(fence.old_paused_at.filter(|_| paused_until_then).unwrap_or(lasting))
    }

    /// Pauses the old master's writes (and disconnects its clients) whenever it answers as a
    /// master during the failover: it was unreachable when the failover started, and is back
    /// from a crash or a partition. Renewed at half the pause until it is demoted.
    pub(crate) fn fence_returning_old_master(&mut self, node: &mut Node, now: Instant) {
        if self.settings.fencing == Fencing::Off {
            return;
        }
        let Some(old) = self.failover.as_ref().and_then(|f| f.fence.old_master.clone()) else {
            return;
        };
        let pause = self.timing.failover_timeout;
        let Some(instance) = self.instances.get_mut(&old) else { return };
        let answers_as_master = instance.up_link().is_some()
            && matches!(instance.reported_role(), Some(ReportedRole::Master));
        let recently =
            instance.fence_sent_at.is_some_and(|at| now.saturating_since(at) < pause / 2);
        if answers_as_master && !recently && instance.send(node, now, RedisCommand::Fence { pause })
        {
            instance.fence_sent_at = Some(now);
            if self.failover.as_ref().is_some_and(|f| f.fence.old_lock_sent_at.is_none()) {
                self.lock_old_master(node, now);
            }
        }
    }

    /// The lease a promoted replica starts with, if fencing is on: a majority of the other
    /// replicas that are not down, which the failover repoints at it at once. A new master is
    /// then never without a fence, even if it is cut off or dies before its lease would be
    /// raised; it accepts writes once those replicas follow it (a partial resynchronisation,
    /// normally milliseconds).
    pub(crate) fn promoted_lease(&self) -> Option<Lease> {
        if self.settings.fencing == Fencing::Off {
            return None;
        }
        let chosen = self.failover.as_ref().and_then(|f| f.promoted(&self.master));
        let followers = self
            .instances
            .iter()
            .filter(|(addr, i)| {
                **addr != self.master && Some(*addr) != chosen.as_ref() && i.sdown_since.is_none()
            })
            .count();
        Some(Lease::majority_of(followers))
    }

    /// Pauses the writes of an instance that reports `role:master` but is not the master (an
    /// old master back from a crash or a partition), at once rather than after the grace its
    /// demotion waits for. Only when no failover can be under way elsewhere that could have
    /// promoted it: its peers are heard, in sync, lead none, and none has voted in an election
    /// whose outcome this node has not adopted (or that this node won). During this node's own
    /// failover it goes on, sparing the replica being promoted: strict mode counts on these
    /// pauses lasting.
    pub(crate) fn fence_unexpected_masters(
        &mut self,
        node: &mut Node,
        peers: &Peers,
        now: Instant,
    ) {
        if self.settings.fencing == Fencing::Off {
            return;
        }
        let own_epoch = self
            .failover
            .as_ref()
            .filter(|_| self.leading_past_election())
            .map_or(self.config_epoch, |f| f.epoch.max(self.config_epoch));
        let fresh: Vec<_> =
            peers.iter().filter(|(_, p)| p.is_fresh(now, peers.timeout())).collect();
        let quiet = fresh.len() + 1 >= node.settings.majority()
            && fresh.iter().all(|(_, p)| p.in_sync())
            && peers.fresh_reports(&self.settings.name, now).all(|(_, _, r)| {
                r.failover.is_none() && r.voted_epoch <= own_epoch && r.config_epoch <= own_epoch
            });
        if !quiet || (self.failover.is_some() && !self.leading_past_election()) {
            return;
        }
        let candidate = self.failover.as_ref().and_then(|f| f.promoted(&self.master));
        let pause = self.timing.failover_timeout;
        let lock = self.settings.fencing == Fencing::Strict;
        let master = self.master.clone();
        for (addr, instance) in &mut self.instances {
            let unexpected = *addr != master
                && Some(addr) != candidate.as_ref()
                && instance.up_link().is_some()
                && matches!(instance.reported_role(), Some(ReportedRole::Master));
            // Renewed at half its length until it is demoted.
            let recently =
                instance.fence_sent_at.is_some_and(|at| now.saturating_since(at) < pause / 2);
            if !unexpected
                || recently
                || !instance.send(node, now, RedisCommand::PauseWrites { pause })
            {
                continue;
            }
            instance.fence_sent_at = Some(now);
            // Strict mode locks it behind the pause: a pause runs out unless renewed, and a
            // node in TILT or cut off renews nothing (simulator seed 9343644: a lone node lifted
            // the master's lock on a stale master's pause, then entered TILT; the pause ran
            // out beside the writable master).
            if lock && !instance.lease.is_some_and(Lease::is_lock) {
                instance.send(node, now, RedisCommand::SetLease(Lease::LOCK));
                instance.send(node, now, RedisCommand::ReadLease);
            }
        }
    }

    /// Strict mode: whether this failover paused the new master's writes.
    pub(crate) fn holds_strict_pause(&self) -> bool {
        self.settings.fencing == Fencing::Strict
            && self.failover.as_ref().is_some_and(|f| f.fence.pause_sent_at.is_some())
    }

    /// Strict mode: renews the new master's pause at half its length.
    pub(crate) fn renew_strict_pause(&mut self, node: &mut Node, now: Instant) {
        let due = self
            .failover
            .as_ref()
            .and_then(|f| f.fence.pause_sent_at)
            .is_some_and(|at| now.saturating_since(at) >= STRICT_PAUSE / 2);
        if due {
            self.pause_new_master(node, now);
        }
    }

    /// Strict mode: pauses the new master's writes on their own once its promotion shows. The
    /// promotion's transaction carries a pause, but a role seen in INFO does not prove that the
    /// transaction ran: the instance may have come back as a master by itself while the
    /// transaction waits, or runs late. Redis keeps the longer of two pauses.
    pub(crate) fn pause_new_master(&mut self, node: &mut Node, now: Instant) {
        if !self.holds_strict_pause() {
            return;
        }
        let Some(master) = self.instances.get_mut(&self.master) else { return };
        if master.send(node, now, RedisCommand::PauseWrites { pause: STRICT_PAUSE })
            && let Some(failover) = &mut self.failover
        {
            failover.fence.pause_sent_at = Some(now);
        }
    }

    /// Strict mode's wait: the new master's writes are released once the old master surely
    /// refuses them (and no other instance may accept writes: else the failover ends and the
    /// hold keeps them paused). An old master that answers again meanwhile (it was cut off, or
    /// restarted) is paused at once: that fences it.
    ///
    /// The wait lasts at most `failover_timeout`, like every other phase: a failover in
    /// progress blocks the next one (its leader votes for no one else, and its peers refuse
    /// votes while it runs), so a new master that dies during the wait, or an old master that
    /// never answers again, must not keep it open. It then ends without releasing anything: the
    /// hold ([`Group::hold_master`]) keeps the new master paused for as long as another instance
    /// may accept writes, and the next failover can start (simulator seed 8501857).
    pub(crate) fn step_release(&mut self, node: &mut Node, now: Instant) {
        let Some(failover) = self.failover.as_ref() else { return };
        let Phase::Release { old_master } = failover.phase.clone() else { return };
        if now.saturating_since(failover.phase_since) >= self.timing.failover_timeout {
            node.emit_about(
                EventKind::FailoverEndForTimeout,
                Subject::Master { name: self.settings.name.clone(), addr: old_master.clone() },
            );
            self.end(node, &old_master, now);
            return;
        }
        self.fence_returning_old_master(node, now);
        if self.old_master_locked() || self.lasting_fence_at().is_some_and(|at| at <= now) {
            // If another instance may still accept writes, the failover ends all the same (what
            // comes after it, demoting that instance, must not wait for it) and the hold keeps
            // the master paused instead of releasing it. While only peers doubt (they see the
            // old master demoted at their next INFO), or this node hears no majority, it waits.
            let ended =
                self.doubts(now) || (self.peers_let_lift && self.release_new_master(node, now));
            if ended {
                self.end(node, &old_master, now);
                return;
            }
        }
        self.renew_strict_pause(node, now);
    }
}

impl Group {
    /// Strict mode: lifts the lock and the pause the promotion put on the new master, giving it
    /// the lease of the replicas that follow it (the old master not counted: it may be
    /// resynchronising in full). Returns whether both commands went out.
    fn release_new_master(&mut self, node: &mut Node, now: Instant) -> bool {
        let old = self.failover.as_ref().and_then(|f| f.fence.old_master.clone());
        let followers = self
            .instances
            .iter()
            .filter(|(addr, i)| {
                **addr != self.master && Some(*addr) != old.as_ref() && i.sdown_since.is_none()
            })
            .count();
        let lease = Lease::majority_of(followers);
        let Some(master) = self.instances.get_mut(&self.master) else { return false };
        let released = master.send(node, now, RedisCommand::SetLease(lease))
            && master.send(node, now, RedisCommand::UnpauseWrites);
        if released {
            master.send(node, now, RedisCommand::ReadLease);
            self.lease_set = Some((self.master.clone(), lease));
        }
        released
    }
}

impl Instance {
    /// The weakest lease it may run under, as far as this node knows: the one it last reported,
    /// unless peers set a weaker one ([`Instance::peer_lease`]). `None` if none was read.
    fn lease_bound(&self) -> Option<Lease> {
        self.lease.map(|read| weakest([read].into_iter().chain(self.peer_lease)).unwrap_or(read))
    }
}

/// Whether `instance` may be a master: it last reported `role:master`, or has not reported
/// since another node promoted it.
fn may_be_master(instance: &Instance) -> bool {
    matches!(instance.reported_role(), Some(ReportedRole::Master))
        || instance.role_predates_promotion()
}

/// Strict mode's hold: the master is never writable while another instance may be.
impl Group {
    /// Strict mode: whether an instance besides the master may accept writes now or within
    /// [`HOLD_MARGIN`], so that the master must not (see the module docs).
    #[must_use]
    pub fn must_hold(&self, now: Instant) -> bool {
        self.settings.fencing == Fencing::Strict
            && self.instances.keys().any(|addr| self.may_accept_writes(addr, now))
    }

    /// Strict mode: whether the nodes this node hears let it lift the master's lock: it hears a
    /// majority of the nodes (itself included) and holds their current state, and none reports
    /// wanting the master locked. A node cut off from the majority cannot know what the others
    /// did meanwhile: a leader cut off with its new master released it, and so lifted the lock
    /// that the other side's next failover counted on as its old master's fence (simulator seed
    /// 9008228). Hearing them again is not enough until their state arrives: the leader of
    /// epoch 3, cut off with the replica it promoted while epoch 4 promoted another, released
    /// its own at the first message after the heal, judging from reports made before the
    /// partition, beside the master of epoch 4 (seed 10522916).
    pub(crate) fn peers_let_lift(&self, node: &Node, peers: &Peers, now: Instant) -> bool {
        let doubting = peers
            .fresh_reports(&self.settings.name, now)
            .any(|(_, _, r)| r.addr == self.master && r.lease_set.is_some_and(Lease::is_lock));
        let synced = peers.synced_within(now, node.settings.contact_window());
        synced + 1 >= node.settings.majority() && !doubting
    }

    /// Strict mode: whether this node may not lift the master's lock (the wait's release, or
    /// the hold's end): another instance may be a master that its lease does not fence
    /// ([`Self::unleased_master`], paused or not), or has not reported its role since this node
    /// started. Such an instance may be a master this node
    /// knew nothing about: a node restarted during a strict wait lifted the lock beside a hung
    /// old master (simulator seed 9000619), and a node restarted from disk released the new
    /// master of its own failover beside an older master it had last recorded as a replica
    /// (seed 9101147).
    ///
    /// A pause is no reason to lift a lock: it runs out unless renewed, and a node that enters
    /// TILT, stalls, crashes or is cut off renews nothing, while the lifted lock lasts (simulator
    /// seed 9343644). Another master must be fenced by its lease (a lock among them) or demoted.
    fn doubts(&self, now: Instant) -> bool {
        let unknown = self.instances.iter().any(|(a, i)| *a != self.master && i.info.is_none());
        let strict = self.settings.fencing == Fencing::Strict;
        unknown || (strict && self.instances.keys().any(|addr| self.unleased_master(addr, now)))
    }

    /// Whether the instance at `addr` (not the master) may accept writes within
    /// [`HOLD_MARGIN`]: it is an [unleased master](Self::unleased_master), and no pause it
    /// acknowledged lasts beyond that.
    fn may_accept_writes(&self, addr: &Addr, now: Instant) -> bool {
        let paused = self.instances.get(addr).and_then(|i| i.paused_until);
        self.unleased_master(addr, now) && paused.is_none_or(|until| until <= now + HOLD_MARGIN)
    }

    /// Whether the instance at `addr` (not the master) may be a master that its lease does not
    /// keep from accepting writes, pauses aside: it last reported `role:master` (or has not
    /// reported since another node promoted it: simulator seed 663 released a new master
    /// beside an old one this node had only seen as a replica), and the replicas of its lease
    /// have not left it long enough ago. An instance without a lease (none read, or
    /// none needed) is fenced only by a pause or its demotion, however long it stays out of
    /// reach; a lock ([`Lease::LOCK`]) fences it for good.
    fn unleased_master(&self, addr: &Addr, now: Instant) -> bool {
        let Some(instance) = self.instances.get(addr) else { return false };
        if *addr == self.master || !may_be_master(instance) {
            return false;
        }
        let Some(lease) = instance.lease_bound() else { return true };
        let acks = self.instances.keys().filter(|a| *a != addr).map(|a| self.acked_until(a, addr));
        fenced_at(lease, acks).is_none_or(|at| at > now)
    }

    /// When the instance at `replica` left the one at `master` for good, if it did: since the
    /// first INFO that showed it following another master or none. One that still follows it
    /// has not left it, even with its link down: it reconnects the moment the other answers
    /// again (simulator seed 9001003 released a new master on reports of links down taken
    /// before the old master restarted), as [`Group::left_old_master_at`] rules for a failover.
    fn acked_until(&self, replica: &Addr, master: &Addr) -> Option<Instant> {
        let instance = self.instances.get(replica)?;
        let info = instance.info.as_ref()?;
        let target = self.instances.get(master)?;
        match &info.role {
            ReportedRole::Replica(link)
                if link.master.as_ref().is_some_and(|m| m == master || target.is_at(m)) =>
            {
                None
            }
            _ => instance.followed_since,
        }
    }

    /// Strict mode: pauses the master's writes while another instance may accept writes,
    /// renewing the pause at half its length. No `CLIENT UNPAUSE` when the doubt is gone: it
    /// would lift other pauses too (a failover's, another node's); the last pause runs out.
    /// A failover holding the new master paused itself is left to do so.
    pub(crate) fn hold_master(&mut self, node: &mut Node, now: Instant) {
        if !self.must_hold(now) || self.holds_strict_pause() {
            return;
        }
        self.lock_master(node, now);
        let due = self.hold_sent_at.is_none_or(|at| now.saturating_since(at) >= HOLD_PAUSE / 2);
        let Some(master) = self.instances.get_mut(&self.master) else { return };
        if due && master.send(node, now, RedisCommand::PauseWrites { pause: HOLD_PAUSE }) {
            self.hold_sent_at = Some(now);
        }
    }

    /// Strict mode: locks the master ([`Lease::LOCK`]) behind the hold's pauses, so that it
    /// stays unwritable if the pauses stop (this node loses it, crashes, or the master
    /// restarts) while the doubt lasts. [`Self::maintain_lease`] lifts it once no node doubts.
    fn lock_master(&mut self, node: &mut Node, now: Instant) {
        let grace = self.timing.enforce_grace;
        let Some(master) = self.instances.get_mut(&self.master) else { return };
        let locked = master.lease.is_some_and(Lease::is_lock);
        let recently = master.fence_sent_at.is_some_and(|at| now.saturating_since(at) < grace);
        if locked || recently || !master.send(node, now, RedisCommand::SetLease(Lease::LOCK)) {
            return;
        }
        master.fence_sent_at = Some(now);
        master.send(node, now, RedisCommand::ReadLease);
        self.lease_set = Some((self.master.clone(), Lease::LOCK));
    }

    /// When the hold may next have to start or be renewed: another instance's pause nears its
    /// end or its lease lapses, or the master's pause is due again.
    pub(crate) fn hold_deadlines(&self) -> Vec<Instant> {
        if self.settings.fencing != Fencing::Strict {
            return Vec::new();
        }
        let mut deadlines = Vec::new();
        for (addr, instance) in &self.instances {
            if *addr == self.master || !may_be_master(instance) {
                continue;
            }
            if let Some(until) = instance.paused_until {
                deadlines.push(until - HOLD_MARGIN);
            }
            if let Some(lease) = instance.lease_bound() {
                let replicas = self.instances.keys().filter(|a| *a != addr);
                deadlines.extend(fenced_at(lease, replicas.map(|a| self.acked_until(a, addr))));
            }
        }
        deadlines.extend(self.hold_sent_at.map(|at| at + HOLD_PAUSE / 2));
        deadlines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Option<Instant> {
        Some(Instant::from_millis(ms))
    }

    #[test]
    fn a_lease_is_a_majority_of_the_replicas() {
        let k = |n| Lease::majority_of(n).min_replicas;
        assert_eq!([k(0), k(1), k(2), k(3), k(4), k(5)], [0, 1, 2, 2, 3, 3]);
        assert_eq!(Lease::majority_of(2).expiry(), Duration::from_secs(3));
    }

    #[test]
    fn an_old_master_is_fenced_once_a_majority_of_its_replicas_stopped_acknowledging() {
        let lease = Lease::majority_of(3);
        // Two of three stopped (at 1 s and 4 s), one may still acknowledge: the lease (2) holds
        // until three seconds after the second most recent acknowledgement.
        assert_eq!(fenced_at(lease, [at(1000), None, at(4000)]), at(4000 + 3000));
        // Two may still acknowledge: the lease holds.
        assert_eq!(fenced_at(lease, [None, None, at(4000)]), None);
        // No lease: nothing ever fences it.
        assert_eq!(fenced_at(Lease::NONE, [at(1000)]), None);
        // Fewer replicas than the lease needs: fenced already.
        assert_eq!(fenced_at(lease, [None]), Some(Instant::ZERO));
    }

    #[test]
    fn modes_parse_and_print() {
        for mode in [Fencing::Off, Fencing::Bounded, Fencing::Strict] {
            assert_eq!(Fencing::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(Fencing::parse("maybe"), None);
        assert_eq!(Fencing::default(), Fencing::Bounded);
    }
}
