//! One supervised master group: its instances, their health, and keeping them configured.
//!
//! A group holds every instance it knows (the master and its replicas) in one map keyed by
//! address; which of them is the master is just the `master` field. A failover therefore only
//! moves that pointer: monitoring of every instance carries on untouched, which is why a
//! returning old master is seen (and corrected) as soon as it answers.
//!
//! Each call to [`Group::evaluate`] runs Sentinel's two halves for the group: the monitoring half
//! (connect, PING, INFO) always, and the acting half (SDOWN, ODOWN, failover, corrections) only
//! outside TILT.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::durable::{DurableMaster, SettingChange};
use crate::engine::election::{Authorisation, Ballot, votes_needed};
use crate::engine::event::{Detail, Event, EventKind, Subject};
use crate::engine::failover::{Failover, Phase, Reconf};
use crate::engine::fence::{Fencing, Lease, weakest};
use crate::engine::gossip::{FailoverReport, Maintenance, MasterReport};
use crate::engine::ids::{NodeId, PeerId};
use crate::engine::instance::{Digest, Instance};
use crate::engine::io::{CachedInfo, RedisCommand};
use crate::engine::node::Node;
use crate::engine::peers::Peers;
use crate::engine::report::{InfoReport, ReportedRole};
use crate::engine::sentinels::Sentinels;
use crate::engine::settings::MasterSettings;
use crate::engine::time::Instant;
use crate::engine::timing::{
    FAILOVER_POLL_PERIOD, FAST_INFO_PERIOD, INFO_PERIOD, MAX_PENDING_REQUESTS, MasterTiming,
};

/// The failover led by a peer this node voted for, watched for two reasons: while that leader
/// may act, this node refuses to vote for a newer epoch (see [`crate::engine::election`]); and
/// once it is gone or has given up, this node may try itself at once instead of sitting out a
/// whole failover timeout.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct LeaderWatch {
    /// The leader.
    pub leader: Voter,
    /// The epoch voted in.
    pub epoch: u64,
    /// When the vote was cast.
    pub voted_at: Instant,
    /// Whether the leader has been seen running that failover.
    pub seen_running: bool,
}

/// A voter besides this node.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Voter {
    /// A Picket peer, by slot.
    Peer(PeerId),
    /// A listed Sentinel, by run id.
    Sentinel(NodeId),
}

/// A configuration a listed Sentinel announced, waiting for its master to show it is one.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct PendingConfig {
    /// The Sentinel that announced it (its configured address).
    pub from: Addr,
    /// Its run id.
    pub run_id: NodeId,
    /// The master it names (a key of `instances`).
    pub addr: Addr,
    /// Its config epoch.
    pub config_epoch: u64,
    /// When it was heard: the instance's INFO must be newer.
    pub heard_at: Instant,
}

/// What a watched leader is doing, as far as this node can tell.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Watched {
    /// Its reports expired: it crashed or is cut off.
    Gone,
    /// Its reports show the failover voted for.
    Running,
    /// Not seen running yet, and its election may still be going on.
    Starting,
    /// It gave up or finished (or never started, or ran out of time to announce a promotion).
    Stopped,
}

/// One master group.
#[derive(Debug)]
pub struct Group {
    /// Index of the group in the supervisor (its timer key).
    pub index: usize,
    /// The operator's settings.
    pub settings: MasterSettings,
    /// Timings derived from the settings.
    pub timing: MasterTiming,
    /// The current master's address (a key of `instances`).
    pub master: Addr,
    /// The epoch of the failover that set `master` (0 = as configured).
    pub config_epoch: u64,
    /// Every known instance of the group, the master included. Boxed: a map node holds room
    /// for eleven entries, and most groups have one to three instances.
    pub instances: BTreeMap<Addr, Box<Instance>>,
    /// Since when the master is objectively down.
    pub odown_since: Option<Instant>,
    /// How many voters saw the master down at the last evaluation.
    pub odown_votes: usize,
    /// Whether a fresh peer reported the master subjectively down at the last evaluation (the
    /// master is then pinged at the fast period, see [`Self::ping_period`]).
    pub peers_see_down: bool,
    /// This node's latest vote for a failover of this master.
    pub ballot: Ballot,
    /// The failover this node leads, if any.
    pub failover: Option<Failover>,
    /// This node starts no failover of this master before then.
    pub next_attempt_at: Instant,
    /// The jittered start of the next attempt, once ODOWN is seen.
    pub attempt_at: Option<Instant>,
    /// Corrections (`+convert-to-slave`, `+fix-slave-config`) wait until then: a failover may
    /// be under way somewhere that this node has not heard the end of.
    pub unsettled_until: Instant,
    /// Voted epochs already noticed in each peer's reports.
    pub peer_votes_seen: BTreeMap<PeerId, u64>,
    /// The leader this node voted for, while it may still be working.
    pub leader_watch: Option<LeaderWatch>,
    /// Failovers of this master that peers report, by slot: the epoch and when this node first
    /// saw it. A node starts no attempt of its own while a peer may still be working on one.
    pub peer_failovers: BTreeMap<PeerId, (u64, Instant)>,
    /// The replication history of the master's data (its `master_replid`, which its replicas
    /// share), as last seen. A replica promoted by an abandoned failover still carries it (as
    /// `master_replid2`), which makes it a candidate for the next one.
    pub history: Option<String>,
    /// Whether automatic failovers are paused (maintenance mode), replicated and persisted.
    pub maintenance: Maintenance,
    /// The lease this node last set, and on which instance (reported to peers).
    pub lease_set: Option<(Addr, Lease)>,
    /// The lease the master ran under when this node last raised a lease it had relaxed, and
    /// when, until a reading taken since shows the raise landed: the master may still run
    /// under it, so this node reports it rather than the raise (see `Group::reported_lease`).
    pub lease_before_raise: Option<(Addr, Lease, Instant)>,
    /// The weakest lease a fresh peer reported setting on the current master since this node
    /// last read its lease ([`Self::peer_lease_since`]): a relaxation stays counted when the
    /// peer's raise after it may not have landed (simulator seed 587: every node relaxed an old
    /// master's lease, then raised it again while a partition cut it off; the raises never
    /// arrived, and a failover stated its window from the raise the peers reported).
    pub peer_lease: Option<Lease>,
    /// The reading of the master's lease since which [`Self::peer_lease`] accumulates.
    pub peer_lease_since: Option<Instant>,
    /// Strict mode: whether the peers this node hears let it lift the master's lock, as of the
    /// last evaluation (see `Group::peers_let_lift`).
    pub peers_let_lift: bool,
    /// Whether this node may have voted for a failover of this master whose outcome it has not
    /// learned, as of the last evaluation: it then reports no replica down (see
    /// `Group::vote_outcome_unknown`).
    pub vote_outcome_unknown: bool,
    /// Whether `SENTINEL RESET` forgot the replicas since this node started: the master's lease
    /// may then be lowered to the replicas listed since, on the operator's word (see
    /// `Group::maintain_lease`).
    pub replicas_forgotten: bool,
    /// When the master last changed (a failover here or elsewhere), for the minimum interval
    /// between automatic failovers.
    pub last_switch_at: Option<Instant>,
    /// The reason the last automatic failover was held back, so that `+failover-held` is
    /// published once per reason rather than at every evaluation.
    pub held: Option<&'static str>,
    /// Whether this node pauses the master's writes because it lost its peers.
    pub isolation_fence: bool,
    /// The master the last switch replaced, until it reports following the current master with
    /// its link up: it does not count for the lease meanwhile (see [`crate::engine::fence`]).
    pub deposed: Option<Addr>,
    /// Strict mode: when this node last paused the master's writes because another instance
    /// may still accept writes (see [`crate::engine::fence`]).
    pub hold_sent_at: Option<Instant>,
    /// Set when the group was added with `SENTINEL MONITOR`: its quorum at the time.
    pub monitored_quorum: Option<u32>,
    /// Options changed with `SENTINEL SET`, persisted so they survive restarts.
    pub changes: BTreeMap<String, SettingChange>,
    /// The listed redis-sentinel voters (Sentinel-compatible peering; empty when off).
    pub sentinels: Sentinels,
    /// A newer configuration a listed Sentinel announced, not adopted until its master reports
    /// `role:master` (see [`crate::engine::sentinels`]).
    pub pending_config: Option<PendingConfig>,
}

impl Group {
    /// A group as configured, with `restored` durable facts applied.
    #[must_use]
    pub fn new(
        index: usize,
        settings: MasterSettings,
        restored: Option<&DurableMaster>,
        now: Instant,
    ) -> Self {
        let timing = MasterTiming::of(&settings);
        let mut master = settings.addr.clone();
        let mut config_epoch = 0;
        let mut ballot = Ballot::default();
        let mut replicas = Vec::new();
        let mut history = None;
        let mut maintenance = Maintenance::default();
        if let Some(saved) = restored {
            // The operator editing the address wins over what a failover set; the epoch never
            // goes back, so peers still converge on the highest configuration.
            if saved.configured_addr == settings.addr {
                master = saved.addr.clone();
            }
            config_epoch = saved.config_epoch;
            ballot = Ballot { epoch: saved.voted_epoch, candidate: saved.voted_for };
            replicas.clone_from(&saved.replicas);
            history.clone_from(&saved.history);
            maintenance = saved.maintenance;
        }
        let mut instances = BTreeMap::new();
        for addr in std::iter::once(master.clone()).chain(replicas) {
            instances.entry(addr.clone()).or_insert_with(|| Box::new(Instance::new(addr, now)));
        }
        for (addr, priority) in restored.map(|s| &s.priorities).into_iter().flatten() {
            if let Some(instance) = instances.get_mut(addr) {
                instance.replica_priority = Some(*priority);
            }
        }
        let sentinels = Sentinels::new(&settings.sentinel_peers);
        Self {
            index,
            sentinels,
            pending_config: None,
            settings,
            timing,
            master,
            config_epoch,
            instances,
            odown_since: None,
            odown_votes: 0,
            peers_see_down: false,
            ballot,
            failover: None,
            next_attempt_at: now,
            attempt_at: None,
            unsettled_until: now,
            peer_votes_seen: BTreeMap::new(),
            leader_watch: None,
            peer_failovers: BTreeMap::new(),
            history,
            maintenance,
            last_switch_at: None,
            held: None,
            isolation_fence: false,
            deposed: None,
            hold_sent_at: None,
            lease_set: None,
            lease_before_raise: None,
            peer_lease: None,
            peer_lease_since: None,
            peers_let_lift: false,
            vote_outcome_unknown: false,
            replicas_forgotten: false,
            monitored_quorum: None,
            changes: BTreeMap::new(),
        }
    }

    /// The group's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The master instance.
    #[must_use]
    pub fn master_instance(&self) -> Option<&Instance> {
        self.instances.get(&self.master).map(AsRef::as_ref)
    }

    /// The group's entry of `SENTINEL INFO-CACHE`: the master, then the replicas in the view's
    /// order, each with its last INFO's age and text.
    #[must_use]
    pub fn info_cache(&self, now: Instant) -> CachedInfo {
        let cached = |i: Option<&Instance>| {
            let info_at = i.and_then(|i| i.info_at);
            let age = info_at.map_or(0, |at| now.saturating_since(at).as_millis());
            let text = i.and_then(|i| i.info.as_ref()).map(|r| Arc::clone(&r.raw));
            (u64::try_from(age).unwrap_or(u64::MAX), text)
        };
        let replicas = self.instances.iter().filter(|(addr, _)| **addr != self.master);
        let instances = std::iter::once(cached(self.master_instance()))
            .chain(replicas.map(|(_, i)| cached(Some(i.as_ref()))))
            .collect();
        CachedInfo { master: self.settings.name.clone(), instances }
    }

    /// Whether this node sees the master subjectively down.
    #[must_use]
    pub fn master_sdown(&self) -> bool {
        self.master_instance().is_some_and(|i| i.sdown_since.is_some())
    }

    /// Every voter for this master: this node, its Picket peers and its listed Sentinels.
    #[must_use]
    pub fn voters(&self, node: &Node) -> usize {
        node.settings.voters() + self.sentinels.len()
    }

    /// Whether a failover of this master can be authorised now: the voters this node can
    /// count on are its peers heard within the contact window and the listed Sentinels heard
    /// within their answers' validity.
    #[must_use]
    pub fn authorisation(&self, node: &Node, peers: &Peers, now: Instant) -> Authorisation {
        Authorisation::new(
            self.voters(node),
            self.settings.quorum,
            node.peers_in_contact(peers, now) + self.sentinels.fresh_count(now),
            node.awaiting_vote_floor,
        )
    }

    /// The key of the instance `addr` designates (same address, or same resolved IP and port).
    #[must_use]
    pub fn find(&self, addr: &Addr) -> Option<&Addr> {
        if let Some((key, _)) = self.instances.get_key_value(addr) {
            return Some(key);
        }
        self.instances.iter().find(|(_, i)| i.is_at(addr)).map(|(key, _)| key)
    }

    /// Adds an instance if `addr` designates none yet; returns its key.
    pub fn ensure_instance(&mut self, node: &mut Node, addr: &Addr, now: Instant) -> Addr {
        if let Some(key) = self.find(addr) {
            return key.clone();
        }
        self.instances.insert(addr.clone(), Box::new(Instance::new(addr.clone(), now)));
        node.lazy_dirty = true;
        addr.clone()
    }

    /// The `replica-priority` of the instance at `addr`: the operator's override, else what it
    /// last reported as a replica; `None` if it never did (a master's INFO does not say).
    #[must_use]
    pub fn priority_of(&self, addr: &Addr) -> Option<u32> {
        self.settings
            .priority_overrides
            .get(addr)
            .copied()
            .or_else(|| self.instances.get(addr).and_then(|i| i.replica_priority))
    }

    /// `master <name> <ip> <port>`.
    #[must_use]
    pub fn master_subject(&self) -> Subject {
        Subject::Master { name: self.settings.name.clone(), addr: self.master.clone() }
    }

    /// `slave <ip:port> <ip> <port> @ <name> <master-ip> <master-port>`, with an explicit master
    /// address (Sentinel names the old master until a failover ends).
    #[must_use]
    pub fn replica_subject(&self, addr: &Addr, master_addr: &Addr) -> Subject {
        Subject::Replica {
            addr: addr.clone(),
            master: self.settings.name.clone(),
            master_addr: master_addr.clone(),
        }
    }

    /// The subject for any instance of the group, named by its current role.
    #[must_use]
    pub fn instance_subject(&self, addr: &Addr) -> Subject {
        if *addr == self.master {
            self.master_subject()
        } else {
            self.replica_subject(addr, &self.master)
        }
    }

    /// `sentinel <id> <ip> <port> @ <name> <master-ip> <master-port>`.
    #[must_use]
    pub fn peer_subject(&self, id: NodeId, client_addr: &Addr) -> Subject {
        Subject::Peer {
            id,
            addr: client_addr.clone(),
            master: self.settings.name.clone(),
            master_addr: self.master.clone(),
        }
    }

    /// The INFO period for the instance at `addr` at `now`.
    #[must_use]
    pub fn info_period(&self, addr: &Addr, now: Instant) -> Duration {
        if *addr == self.master {
            return INFO_PERIOD;
        }
        if self.failover.as_ref().is_some_and(|f| f.is_waiting_on(addr)) {
            return FAILOVER_POLL_PERIOD;
        }
        // While the master is in trouble a replica may be chosen at any moment, and the choice
        // needs current offsets: poll every ping period (selection wants INFO younger than five).
        // Trouble starts before SDOWN: a master whose link is down or whose PING is late may be
        // declared down in `down_after`, and replicas polled every ten seconds until then would
        // have INFO too old to choose from when it is.
        if self.master_troubled(now) {
            return self.timing.ping_period.min(FAST_INFO_PERIOD);
        }
        let own_link_down = self
            .instances
            .get(addr)
            .and_then(|i| i.info.as_ref())
            .is_some_and(|info| matches!(&info.role, ReportedRole::Replica(l) if !l.link_up));
        if own_link_down { FAST_INFO_PERIOD } else { INFO_PERIOD }
    }

    /// Whether this node leads a failover of the master, sees it objectively down, or its link is
    /// down or its PING late (see [`Instance::suspect`]).
    fn master_troubled(&self, now: Instant) -> bool {
        self.failover.is_some()
            || self.odown_since.is_some()
            || self.master_instance().is_none_or(|m| m.suspect(now, &self.timing))
    }

    /// The PING period for the instance at `addr` at `now`: the calm one
    /// ([`MasterTiming::calm_ping_period`]) for a [settled](Instance::settled) instance while the
    /// group is in no doubt, the fast one ([`MasterTiming::ping_period`]) otherwise. The group is
    /// in doubt while its master is troubled or subjectively down (here, or for a fresh peer at
    /// the last evaluation), while the leader this node voted for may be working, and while a
    /// peer reports a failover that may still reach its promotion. Either way an instance that
    /// hangs is down within `down_after` plus the period it was pinged at when it hung: detection
    /// is never slower than at the calm period (Sentinel's 1 s up to `down_after` = 10 s, a
    /// tenth of `down_after` beyond).
    #[must_use]
    pub fn ping_period(&self, addr: &Addr, now: Instant) -> Duration {
        let deadline = self.timing.promotion_deadline();
        let in_doubt = self.master_troubled(now)
            || self.master_sdown()
            || self.peers_see_down
            || self.leader_watch.is_some()
            || self.peer_failovers.values().any(|(_, since)| now < *since + deadline);
        let settled = self.instances.get(addr).is_some_and(|i| i.settled());
        if settled && !in_doubt { self.timing.calm_ping_period } else { self.timing.ping_period }
    }

    /// What this node tells peers about the group.
    #[must_use]
    pub fn report(&self, node: &Node) -> MasterReport {
        MasterReport {
            name: self.settings.name.clone(),
            addr: self.master.clone(),
            config_epoch: self.config_epoch,
            sdown: !node.in_tilt() && self.master_sdown(),
            voted_epoch: self.ballot.epoch,
            failover: self.failover.as_ref().map(|f| FailoverReport {
                epoch: f.epoch,
                elected: !matches!(f.phase, Phase::Election { .. }),
            }),
            down_replicas: self.replicas_seen_down(node),
            maintenance: self.maintenance,
            lease_set: self.reported_lease(),
        }
    }

    /// The lease this node reports setting on the master: the lease it set, or, until a
    /// reading shows that its raise of a lease it had relaxed landed, the weaker lease before
    /// it. A failover elsewhere takes the weakest lease it heard as the old master's, and a
    /// raise cut off on its way must not hide the relaxation before it from a node that was cut
    /// off itself meanwhile and heard neither (simulator seed 9988843: two nodes relaxed a
    /// lease, raised it as a partition isolated the master, and the third node, back from its
    /// own partition, heard only the raise and stated a window from it). A lock is reported as
    /// it is: it says what this node wants (see `Group::peers_let_lift`).
    fn reported_lease(&self) -> Option<Lease> {
        let (at, set) = self.lease_set.as_ref().filter(|(at, _)| *at == self.master)?;
        let before = self.lease_before_raise.as_ref().filter(|(addr, _, _)| addr == at);
        match before {
            Some((_, before, _)) if !set.is_lock() => weakest([*set, *before]),
            _ => Some(*set),
        }
    }

    /// Runs everything due for the group at `now`: the acting half (SDOWN, ODOWN, failover,
    /// corrections, fencing) when the node may act (not in TILT, not re-reading after a stall),
    /// then the monitoring half, last, so that periods the acting half just changed (faster
    /// INFO once the master is down) apply at once.
    pub fn evaluate(&mut self, node: &mut Node, peers: &Peers, now: Instant) {
        if node.may_act() {
            self.peers_let_lift = self.peers_let_lift(node, peers, now);
            self.vote_outcome_unknown = self.vote_outcome_unknown(node, peers, now);
            self.update_sdown(node, now);
            self.update_odown(node, peers, now);
            self.ask_sentinels(node, now);
            self.update_leader_watch(node, peers, now);
            self.maybe_start_failover(node, peers, now);
            self.step_failover(node, peers, now);
            self.correct_instances(node, peers, now);
            self.maintain_lease(node, peers, now);
            self.fence_if_isolated(node, peers, now);
            self.fence_unexpected_masters(node, peers, now);
            self.hold_master(node, now);
        }
        self.adopt_pending_config(node, now);
        self.poll_monitoring(node, now);
    }

    fn poll_monitoring(&mut self, node: &mut Node, now: Instant) {
        let periods: Vec<(Duration, Duration)> = self
            .instances
            .keys()
            .map(|a| (self.ping_period(a, now), self.info_period(a, now)))
            .collect();
        for (instance, (ping, info)) in self.instances.values_mut().zip(periods) {
            // Probes first: a link their watchdog closes is reopened at once.
            instance.poll_probes(node, now, &self.timing, ping, info);
            instance.poll_connect(node, now, &self.timing, &self.settings, self.index);
        }
    }

    /// Whether `digest`, just taken by the instance at `addr`, changes nothing the group's
    /// evaluation reads, so that a thousand healthy masters' PONGs cost no evaluation: an
    /// on-time `PONG` ([`Digest::Pong`]: the instance is not down and not restarting), outside
    /// any failover or ODOWN, with no probe held back by the cap on requests in flight. Its only
    /// new deadline is the instance's next PING ([`Instance::ping_due_at`], at
    /// [`Self::ping_period`]).
    #[must_use]
    pub fn routine_reply(&self, addr: &Addr, digest: &Digest) -> bool {
        let Some(instance) = self.instances.get(addr) else { return false };
        matches!(digest, Digest::Pong)
            && self.failover.is_none()
            && self.odown_since.is_none()
            && instance.ping_rtt.is_some_and(|rtt| rtt <= self.timing.ping_period)
            && instance.pending.len() + 1 < MAX_PENDING_REQUESTS
    }

    /// Handles a reply on the instance at `addr`.
    pub fn on_reply(&mut self, node: &mut Node, addr: &Addr, digest: Digest, now: Instant) {
        match digest {
            Digest::Info(report) => self.on_info(node, addr, *report, now),
            Digest::Fenced => self.on_old_master_fenced(addr, now),
            Digest::Nothing | Digest::Pong => {}
        }
    }

    fn on_info(&mut self, node: &mut Node, addr: &Addr, report: InfoReport, now: Instant) {
        let is_master = *addr == self.master;
        let Some(instance) = self.instances.get(addr) else { return };
        let previous = instance.info.as_ref();
        let rebooted = matches!(
            (previous.and_then(|i| i.run_id.as_deref()), report.run_id.as_deref()),
            (Some(old), Some(new)) if old != new
        );
        let old_role = previous.map(|i| i.role.as_redis_str());
        let new_role = report.role.as_redis_str();
        let subject = self.instance_subject(addr);
        if rebooted {
            node.emit_about(EventKind::Reboot, subject.clone());
        }
        if old_role.is_some_and(|old| old != new_role) {
            let expected = if is_master { "master" } else { "slave" };
            let kind = if new_role == expected {
                EventKind::RoleChangeExpected
            } else {
                EventKind::RoleChangeUnexpected
            };
            node.emit(Event {
                kind,
                subject: Some(subject),
                detail: Detail::Role { role: new_role },
            });
        }
        let misconfigured = !is_master && !self.follows_master(&report.role);
        let listed: Vec<Addr> = if is_master && report.role == ReportedRole::Master {
            report.replicas.iter().map(|r| r.addr.clone()).collect()
        } else {
            Vec::new()
        };
        let reboot_watch = is_master && self.settings.reboot_down_after.is_some();
        let read_lease = is_master
            && self.settings.fencing != Fencing::Off
            && report.role == ReportedRole::Master;
        let history = match &report.role {
            ReportedRole::Master if is_master => report.replid.clone(),
            ReportedRole::Replica(link) if link.link_up && self.follows_master(&report.role) => {
                report.replid.clone()
            }
            _ => None,
        };
        if history.is_some() && history != self.history {
            self.history = history;
            node.lazy_dirty = true;
        }
        let followed = |role: &ReportedRole| match role {
            ReportedRole::Master => None,
            ReportedRole::Replica(link) => Some(link.master.clone()),
        };
        let follows_other = previous.is_none_or(|p| followed(&p.role) != followed(&report.role));
        if let Some(instance) = self.instances.get_mut(addr) {
            if old_role != Some(new_role) {
                instance.role_reported_at = Some(now);
            }
            if old_role != Some(new_role) || rebooted {
                instance.unsettle();
            }
            if follows_other {
                instance.followed_since = Some(now);
            }
            if rebooted && reboot_watch {
                instance.rebooted_at = Some(now);
            }
            instance.misconfigured_since =
                misconfigured.then(|| instance.misconfigured_since.unwrap_or(now));
            if matches!(report.role, ReportedRole::Replica(_))
                && instance.replica_priority != Some(report.replica_priority)
            {
                instance.replica_priority = Some(report.replica_priority);
                node.lazy_dirty = true;
            }

            if matches!(report.role, ReportedRole::Replica(_)) {
                instance.peer_lease = None;
            }
            instance.info = Some(report);
            instance.info_at = Some(now);
        }
        if rebooted {
            self.forget_pauses_of(addr);
        }
        for replica in listed {
            if self.find(&replica).is_none() {
                let key = self.ensure_instance(node, &replica, now);
                node.emit_about(EventKind::Replica, self.replica_subject(&key, &self.master));
            }
        }
        // The lease rides along with the master's INFO (every ten seconds).
        if read_lease && let Some(instance) = self.instances.get_mut(addr) {
            instance.send(node, now, RedisCommand::ReadLease);
        }
        // In TILT, or while re-reading after a stall, the failover does not advance (Sentinel's
        // acting half is off): following its progress here would send REPLICAOF from a node
        // whose view of time is broken or stale. The INFO is kept; the first evaluation once
        // the node may act picks the progress up.
        if node.may_act() {
            self.on_failover_info(node, addr, now);
        }
    }

    /// Whether a replica reporting `role` follows the current master.
    pub(crate) fn follows_master(&self, role: &ReportedRole) -> bool {
        match role {
            ReportedRole::Master => false,
            ReportedRole::Replica(link) => link.master.as_ref().is_some_and(|m| {
                *m == self.master || self.master_instance().is_some_and(|i| i.is_at(m))
            }),
        }
    }

    fn update_sdown(&mut self, node: &mut Node, now: Instant) {
        let timing = self.timing;
        let reboot_limit = self.settings.reboot_down_after;
        let mut changes = Vec::new();
        for (addr, instance) in &self.instances {
            let is_master = *addr == self.master;
            let down = instance.unresponsive(now, &timing)
                || instance.refused_too_long(&timing)
                || (is_master && master_claims_replica_too_long(instance, now, &timing))
                || (is_master
                    && instance
                        .rebooted_at
                        .zip(reboot_limit)
                        .is_some_and(|(at, limit)| now.saturating_since(at) > limit));
            if down != instance.sdown_since.is_some() {
                changes.push((addr.clone(), down));
            }
        }
        for (addr, down) in changes {
            let subject = self.instance_subject(&addr);
            if let Some(instance) = self.instances.get_mut(&addr) {
                instance.sdown_since = down.then_some(now);
            }
            let kind = if down { EventKind::Sdown } else { EventKind::SdownCleared };
            node.emit_about(kind, subject);
        }
    }

    fn update_odown(&mut self, node: &mut Node, peers: &Peers, now: Instant) {
        let peers_down = peers
            .fresh_reports(&self.settings.name, now)
            .filter(|(_, _, r)| r.sdown && r.addr == self.master)
            .count();
        self.peers_see_down = peers_down > 0;
        let votes =
            if self.master_sdown() { 1 + peers_down + self.sentinels.down_count(now) } else { 0 };
        self.odown_votes = votes;
        let odown =
            votes > 0 && votes >= usize::try_from(self.settings.quorum).unwrap_or(usize::MAX);
        if odown == self.odown_since.is_some() {
            return;
        }
        if odown {
            self.odown_since = Some(now);
            node.emit(Event {
                kind: EventKind::Odown,
                subject: Some(self.master_subject()),
                detail: Detail::Quorum { votes, quorum: self.settings.quorum },
            });
        } else {
            self.odown_since = None;
            self.attempt_at = None;
            node.emit_about(EventKind::OdownCleared, self.master_subject());
        }
    }

    /// What the leader `watch` names is doing, as far as this node can tell at `now`.
    fn watched(&self, watch: &LeaderWatch, peers: &Peers, now: Instant) -> Watched {
        let slot = match watch.leader {
            Voter::Peer(slot) => slot,
            Voter::Sentinel(run_id) => return self.watched_sentinel(watch, run_id, now),
        };
        let Some(peer) = peers.get(slot).filter(|p| p.is_fresh(now, peers.timeout())) else {
            return Watched::Gone;
        };
        if now >= watch.voted_at + self.timing.promotion_deadline() {
            return Watched::Stopped;
        }
        let running = peer
            .reports
            .get(&self.settings.name)
            .and_then(|r| r.failover)
            .is_some_and(|f| f.epoch == watch.epoch);
        if running {
            Watched::Running
        } else if !watch.seen_running && now < watch.voted_at + self.timing.election_timeout {
            Watched::Starting
        } else {
            Watched::Stopped
        }
    }

    /// What a Sentinel this node voted for is doing. Sentinels do not report their failovers, so
    /// it counts as starting for an election timeout, and as running past that while an
    /// instance other than the master reports `role:master` after the vote (it promoted one)
    /// until its configuration arrives.
    fn watched_sentinel(&self, watch: &LeaderWatch, run_id: NodeId, now: Instant) -> Watched {
        if !self.sentinels.by_run_id(run_id).is_some_and(|s| s.is_fresh(now)) {
            return Watched::Gone;
        }
        if self.config_epoch >= watch.epoch
            || now >= watch.voted_at + self.timing.promotion_deadline()
        {
            return Watched::Stopped;
        }
        let promoted = self.instances.iter().any(|(addr, i)| {
            *addr != self.master
                && matches!(i.reported_role(), Some(ReportedRole::Master))
                && i.info_at.is_some_and(|at| at >= watch.voted_at)
        });
        if promoted {
            Watched::Running
        } else if now < watch.voted_at + self.timing.election_timeout {
            Watched::Starting
        } else {
            Watched::Stopped
        }
    }

    /// Whether a failover of this master in an older epoch may be under way: this node leads one
    /// past its election, or the leader it voted for may still be running or starting one. A
    /// voter refuses newer epochs meanwhile (see [`crate::engine::election`]).
    #[must_use]
    pub fn leader_active(&self, peers: &Peers, now: Instant) -> bool {
        self.leading_past_election()
            || self.leader_watch.is_some_and(|w| {
                matches!(self.watched(&w, peers, now), Watched::Running | Watched::Starting)
            })
    }

    /// Lifts the wait after voting for a peer as soon as that peer is gone, and shortens it to
    /// an abort's backoff once it gave up.
    fn update_leader_watch(&mut self, node: &mut Node, peers: &Peers, now: Instant) {
        let Some(mut watch) = self.leader_watch else { return };
        match self.watched(&watch, peers, now) {
            Watched::Running => watch.seen_running = true,
            Watched::Starting => {}
            Watched::Stopped => {
                // The leader gave up (or finished). Whatever stopped it (no good replica, a
                // promotion that timed out) likely stops this node too: back off as after an
                // abort of its own. Trying at once made nodes that vote for each other take turns
                // failing, each round a new epoch, as fast as messages travel.
                self.leader_watch = None;
                let election = self.timing.election_timeout;
                let backoff = election + node.jitter(election);
                self.next_attempt_at = now + backoff.min(self.timing.failover_timeout);
                return;
            }
            Watched::Gone => {
                self.leader_watch = None;
                self.next_attempt_at = now;
                return;
            }
        }
        self.leader_watch = Some(watch);
    }

    /// Notes a failover a peer reports (or that it no longer reports one).
    pub fn note_peer_failover(&mut self, slot: PeerId, epoch: Option<u64>, now: Instant) {
        match epoch {
            Some(epoch) if self.peer_failovers.get(&slot).is_some_and(|(e, _)| *e == epoch) => {}
            Some(epoch) => {
                self.peer_failovers.insert(slot, (epoch, now));
            }
            None => {
                self.peer_failovers.remove(&slot);
            }
        }
    }

    /// Whether a peer that can still be heard reports a failover of this master that may still
    /// be on its way to a promotion.
    fn peer_failing_over(&self, peers: &Peers, now: Instant) -> bool {
        let deadline = self.timing.promotion_deadline();
        self.peer_failovers.iter().any(|(slot, (_, since))| {
            now < *since + deadline
                && peers.get(*slot).is_some_and(|p| p.is_fresh(now, peers.timeout()))
        })
    }

    fn maybe_start_failover(&mut self, node: &mut Node, peers: &Peers, now: Instant) {
        if self.odown_since.is_none() || self.failover.is_some() || now < self.next_attempt_at {
            return;
        }
        // A peer already working on it would only be raced (and its voters refuse newer epochs
        // while it may act): leave it the failover.
        if node.awaiting_vote_floor || self.peer_failing_over(peers, now) {
            return;
        }
        if let Some(reason) = self.hold_reason(now) {
            if self.held != Some(reason) {
                self.held = Some(reason);
                node.emit(Event {
                    kind: EventKind::FailoverHeld,
                    subject: Some(self.master_subject()),
                    detail: Detail::Held { reason },
                });
            }
            return;
        }
        self.held = None;
        let start_at =
            *self.attempt_at.get_or_insert_with(|| now + node.jitter(self.timing.election_jitter));
        if now < start_at {
            return;
        }
        // Never start an election that cannot be won: a node cut off from the majority would
        // only raise epochs and publish noise. Voters grant an automatic failover only if they see
        // the master down themselves, so count the peers heard very recently that report it down.
        let window = node.settings.contact_window();
        let supporters = peers
            .fresh_reports(&self.settings.name, now)
            .filter(|(_, p, r)| r.sdown && r.addr == self.master && p.is_fresh(now, window))
            .count()
            + self.sentinels.down_count(now);
        if supporters + 1 < votes_needed(self.voters(node), self.settings.quorum) {
            return;
        }
        self.attempt_at = None;
        self.start_failover(node, peers, now, false);
    }

    /// Adopts a maintenance change (an operator's here, or a newer one heard from a peer),
    /// durably, and announces it.
    pub fn set_maintenance(&mut self, node: &mut Node, maintenance: Maintenance) {
        let changed = maintenance.paused != self.maintenance.paused;
        self.maintenance = maintenance;
        node.out.mark_urgent();
        if changed {
            let kind = if maintenance.paused {
                EventKind::Maintenance
            } else {
                EventKind::MaintenanceCleared
            };
            node.emit_about(kind, self.master_subject());
        }
    }

    /// Why an automatic failover must not start now, if it must not: maintenance mode, or the
    /// minimum interval since the last failover (anti-flapping).
    fn hold_reason(&self, now: Instant) -> Option<&'static str> {
        if self.maintenance.paused {
            return Some("maintenance");
        }
        let flapping = self
            .settings
            .min_failover_interval
            .zip(self.last_switch_at)
            .is_some_and(|(interval, at)| now < at + interval);
        flapping.then_some("min-interval")
    }

    /// Whether nothing suggests a failover of this master is under way anywhere, so that
    /// instances may be corrected towards the current configuration.
    fn settled(&self, node: &Node, peers: &Peers, now: Instant) -> bool {
        let Some(master) = self.master_instance() else { return false };
        let master_sane = master.up_link().is_some()
            && master.sdown_since.is_none()
            && matches!(master.reported_role(), Some(ReportedRole::Master))
            && master.info_at.is_some_and(|at| now.saturating_since(at) < INFO_PERIOD * 3);
        master_sane
            && self.failover.is_none()
            && now >= self.unsettled_until
            && peers.fresh_count(now) + 1 >= node.settings.majority()
            // Reports held from before a partition say nothing about what happened during it.
            && peers.iter().filter(|(_, p)| p.is_fresh(now, peers.timeout())).all(|(_, p)| p.in_sync())
            && peers.fresh_reports(&self.settings.name, now).all(|(_, _, r)| r.failover.is_none())
    }

    /// Points replicas that follow the wrong master, or claim to be masters, at the current
    /// master (`+fix-slave-config`, `+convert-to-slave`). Any node may do it, as in Sentinel,
    /// but only when [`Self::settled`] and after the misconfiguration lasted `enforce_grace`.
    fn correct_instances(&mut self, node: &mut Node, peers: &Peers, now: Instant) {
        if !self.settled(node, peers, now) {
            return;
        }
        let grace = self.timing.enforce_grace;
        let due: Vec<Addr> = self
            .instances
            .iter()
            .filter(|(addr, i)| {
                **addr != self.master
                    && i.up_link().is_some()
                    && i.misconfigured_since.is_some_and(|t| now.saturating_since(t) >= grace)
                    && i.last_corrected_at.is_none_or(|t| now.saturating_since(t) >= grace)
            })
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in due {
            let subject = self.replica_subject(&addr, &self.master);
            let master = self.master.clone();
            let Some(instance) = self.instances.get_mut(&addr) else { continue };
            let kind = if matches!(instance.reported_role(), Some(ReportedRole::Master)) {
                EventKind::ConvertToReplica
            } else {
                EventKind::FixReplicaConfig
            };
            instance.last_corrected_at = Some(now);
            instance.send(node, now, RedisCommand::ReplicaOf { master });
            instance.send(node, now, RedisCommand::Info);
            node.emit_about(kind, subject);
        }
    }

    /// Adopts a newer configuration announced by a peer (Sentinel's `+config-update-from`).
    pub fn adopt(
        &mut self,
        node: &mut Node,
        from: Subject,
        addr: &Addr,
        config_epoch: u64,
        now: Instant,
    ) {
        self.config_epoch = config_epoch;
        node.out.mark_urgent();
        // A newer configuration ends any failover this node was leading.
        self.failover = None;
        let key = self.ensure_instance(node, addr, now);
        // The lease this node last read from the master of the newer configuration predates
        // the promotion that made it the master (again, if the address is unchanged: it may
        // have been demoted and promoted meanwhile), which set the leader's own lease: unknown
        // here until read back. A node cut off meanwhile stated fence windows from the older
        // reading (simulator seeds 8606187, and 8800359 for an unchanged address).
        if let Some(instance) = self.instances.get_mut(&key) {
            instance.lease = None;
        }
        if key == self.master {
            return;
        }
        node.emit_about(EventKind::ConfigUpdateFrom, from);
        // The role this node last saw the new master report (replica) predates its promotion
        // elsewhere: count the time it may claim to be a replica from now, as Sentinel does by
        // resetting the master instance when it switches, or the healthy new master would be
        // SDOWN at once and elections would start against it.
        if let Some(instance) = self.instances.get_mut(&key) {
            instance.role_reported_at = Some(now);
            instance.unsettle();
            instance.promoted_elsewhere_at = Some(now);
        }
        let old = self.replace_master(key);
        self.after_switch(node, &old, now);
    }

    /// Announces a new master (`+switch-master`, then `+slave` for every replica) and resets
    /// expectations about every instance's role.
    pub fn after_switch(&mut self, node: &mut Node, old: &Addr, now: Instant) {
        self.last_switch_at = Some(now);
        self.deposed = Some(old.clone());
        node.emit(Event {
            kind: EventKind::SwitchMaster,
            subject: None,
            detail: Detail::Switch {
                name: self.settings.name.clone(),
                old: old.clone(),
                new: self.master.clone(),
            },
        });
        self.odown_since = None;
        self.attempt_at = None;
        let replicas: Vec<Addr> =
            self.instances.keys().filter(|a| **a != self.master).cloned().collect();
        for addr in replicas {
            node.emit_about(EventKind::Replica, self.replica_subject(&addr, &self.master));
        }
        for instance in self.instances.values_mut() {
            instance.misconfigured_since = None;
        }
        node.lazy_dirty = true;
    }

    /// Notes peers' votes in epochs above the current configuration: a failover may be under way
    /// (or was tried) somewhere, so corrections wait a failover timeout.
    pub fn note_peer_vote(&mut self, slot: PeerId, voted_epoch: u64, now: Instant) {
        if voted_epoch > self.config_epoch
            && self.peer_votes_seen.get(&slot).is_none_or(|&seen| seen < voted_epoch)
        {
            self.peer_votes_seen.insert(slot, voted_epoch);
            self.unsettled_until = self.unsettled_until.max(now + self.timing.failover_timeout);
        }
    }

    /// The earliest instant after `now` at which the group has something to do.
    ///
    /// Deadlines at or before `now` are dropped: the evaluation at `now` has just run, so what is
    /// still due is waiting on something other than time (a majority of peers, a reply, a link),
    /// and every such event re-evaluates the group. Keeping them would make the timer fire again
    /// at the same instant forever.
    #[must_use]
    pub fn next_deadline(&self, node: &Node, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at.filter(|at| *at > now) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        for (addr, instance) in &self.instances {
            consider(instance.next_deadline(
                &self.timing,
                self.ping_period(addr, now),
                self.info_period(addr, now),
                now,
            ));
            if *addr == self.master {
                // Its replicas are polled faster from the moment its PING is late.
                consider(instance.late_at(&self.timing));
                consider(
                    instance
                        .role_reported_at
                        .filter(|_| {
                            matches!(instance.reported_role(), Some(ReportedRole::Replica(_)))
                        })
                        .map(|at| at + claim_limit(&self.timing) + Duration::from_millis(1)),
                );
                consider(
                    instance
                        .rebooted_at
                        .zip(self.settings.reboot_down_after)
                        .map(|(at, limit)| at + limit + Duration::from_millis(1)),
                );
            } else if let Some(since) = instance.misconfigured_since {
                let grace = self.timing.enforce_grace;
                consider(Some((since + grace).max(self.unsettled_until)));
                consider(instance.last_corrected_at.map(|t| t + grace));
            }
        }
        if !node.may_act() {
            return next;
        }
        if self.odown_since.is_some() && self.failover.is_none() {
            consider(Some(self.attempt_at.unwrap_or(self.next_attempt_at)));
            let deadline = self.timing.promotion_deadline();
            for (_, since) in self.peer_failovers.values() {
                consider(Some(*since + deadline));
            }
        }
        consider(self.sentinels_deadline(now));
        if let Some(watch) = &self.leader_watch {
            consider(Some(watch.voted_at + self.timing.election_timeout));
            consider(Some(watch.voted_at + self.timing.promotion_deadline()));
        }
        if let Some(failover) = &self.failover {
            consider(failover.next_deadline(&self.timing, node.settings.heartbeat));
            if matches!(failover.phase, Phase::Release { .. }) {
                consider(self.lasting_fence_at());
            }
        }
        for at in self.hold_deadlines() {
            consider(Some(at));
        }
        if self.isolation_fence {
            // Renewed while the isolation lasts (and lifted as soon as it ends).
            consider(Some(now + node.settings.heartbeat));
        }
        next
    }

    /// What this node persists about the group.
    #[must_use]
    pub fn durable(&self) -> DurableMaster {
        DurableMaster {
            configured_addr: self.settings.addr.clone(),
            addr: self.master.clone(),
            config_epoch: self.config_epoch,
            voted_epoch: self.ballot.epoch,
            voted_for: self.ballot.candidate,
            replicas: self.instances.keys().filter(|a| **a != self.master).cloned().collect(),
            history: self.history.clone(),
            maintenance: self.maintenance,
            priorities: self
                .instances
                .iter()
                .filter_map(|(addr, i)| Some((addr.clone(), i.replica_priority?)))
                .collect(),
            monitored_quorum: self.monitored_quorum,
            settings: self.changes.clone(),
        }
    }

    /// Closes the links of the instances `which` selects; they reconnect when next due.
    pub fn close_links(&mut self, node: &mut Node, now: Instant, which: impl Fn(&Addr) -> bool) {
        for (addr, instance) in &mut self.instances {
            if which(addr) {
                instance.close(node, now, &self.timing);
            }
        }
    }

    /// `SENTINEL RESET`: forgets the replicas (the master's INFO lists them again, with a `+slave`
    /// each), any failover this node leads, and the health flags.
    pub fn reset(&mut self, node: &mut Node, now: Instant) {
        let master = self.master.clone();
        self.close_links(node, now, |addr| *addr != master);
        self.instances.retain(|addr, _| *addr == master);
        self.replicas_forgotten = true;
        self.failover = None;
        self.odown_since = None;
        self.attempt_at = None;
        self.leader_watch = None;
        node.lazy_dirty = true;
    }

    /// Whether `addr` is being repointed or promoted by this node's failover.
    #[must_use]
    pub fn reconf_state(&self, addr: &Addr) -> Option<Reconf> {
        self.failover.as_ref().and_then(|f| f.reconf_state(addr))
    }
}

/// How long a master may report itself a replica before it counts as down: `down_after` plus two
/// INFO periods, as in Sentinel (the INFO that showed it may be up to a period old).
fn claim_limit(timing: &MasterTiming) -> Duration {
    timing.down_after + INFO_PERIOD * 2
}

fn master_claims_replica_too_long(
    instance: &Instance,
    now: Instant,
    timing: &MasterTiming,
) -> bool {
    matches!(instance.reported_role(), Some(ReportedRole::Replica(_)))
        && instance
            .role_reported_at
            .is_some_and(|at| now.saturating_since(at) > claim_limit(timing))
}
