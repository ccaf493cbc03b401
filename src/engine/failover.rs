//! The failover this node leads: one state per phase, one place for every transition.
//!
//! ```text
//!  Election ──won──► (select) ──► Promote ──sent──► WaitPromotion ──role:master──► Reconfigure ──► end
//!     │                  │            │                   │                            │
//!     └─timeout─► abort  └─none─► abort └──timeout──► abort ┘               timeout: best effort, end
//! ```
//!
//! Sentinel's phases and event names are kept (`wait_start`, `select_slave`,
//! `send_slaveof_noone`, `wait_promotion`, `reconf_slaves`, `update_config`), with two changes
//! for speed: the promotion is confirmed by polling INFO every few milliseconds instead of waiting
//! for the next one-second INFO, and the new configuration is announced to peers the moment the
//! promotion is seen, so every node answers the new address within a round trip. A failover can
//! be aborted only before the promotion; after it, it always runs to the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::election::{Ballot, votes_needed};
use crate::engine::event::{Detail, Event, EventKind, Subject};
use crate::engine::gossip::Body;
use crate::engine::group::Group;
use crate::engine::ids::PeerId;
use crate::engine::io::{Output, RedisCommand};
use crate::engine::node::Node;
use crate::engine::peers::Peers;
use crate::engine::report::ReportedRole;
use crate::engine::selection::{self, Candidate, Limits};
use crate::engine::time::Instant;
use crate::engine::timing::{INFO_PERIOD, MasterTiming};

/// A failover led by this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failover {
    /// The failover epoch: the config epoch of the new master if it succeeds.
    pub epoch: u64,
    /// Requested by an operator.
    pub manual: bool,
    /// When it started.
    pub started_at: Instant,
    /// When the current phase began.
    pub phase_since: Instant,
    /// Where it is.
    pub phase: Phase,
}

/// The phases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Collecting votes (Sentinel's `wait_start`).
    Election {
        /// Peers that granted their vote (this node's own vote is implied).
        granted: BTreeSet<PeerId>,
        /// Peers that answered with a vote for another candidate in this epoch: final, since a
        /// node votes once per epoch.
        lost: BTreeSet<PeerId>,
        /// When vote requests were last sent.
        asked_at: Instant,
    },
    /// The replica is chosen; waiting for its link to send the promotion
    /// (`send_slaveof_noone`).
    Promote {
        /// The chosen replica.
        replica: Addr,
    },
    /// Promotion sent; polling INFO until the replica reports `role:master` (`wait_promotion`).
    WaitPromotion {
        /// The chosen replica.
        replica: Addr,
    },
    /// The replica is master; repointing the others at it (`reconf_slaves`).
    Reconfigure {
        /// The master before the failover.
        old_master: Addr,
        /// Progress per instance to repoint (the old master included, so that a master that is
        /// still reachable is demoted at once instead of accepting writes that will be lost).
        replicas: BTreeMap<Addr, Reconf>,
    },
}

/// Repointing progress of one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconf {
    /// Not yet sent.
    Pending,
    /// `REPLICAOF` sent at this instant (`reconf_sent`).
    Sent(Instant),
    /// The replica reports the new master, link not yet up (`reconf_inprog`).
    InProgress(Instant),
    /// The replica's link to the new master is up, or it timed out (`reconf_done`).
    Done,
}

impl Reconf {
    /// Sentinel's flag for this state, if any.
    #[must_use]
    pub const fn flag(self) -> Option<&'static str> {
        match self {
            Self::Pending => None,
            Self::Sent(_) => Some("reconf_sent"),
            Self::InProgress(_) => Some("reconf_inprog"),
            Self::Done => Some("reconf_done"),
        }
    }
}

impl Failover {
    /// Sentinel's name for the current phase, as `SENTINEL MASTER` shows it.
    #[must_use]
    pub const fn state_name(&self) -> &'static str {
        match self.phase {
            Phase::Election { .. } => "wait_start",
            Phase::Promote { .. } => "send_slaveof_noone",
            Phase::WaitPromotion { .. } => "wait_promotion",
            Phase::Reconfigure { .. } => "reconf_slaves",
        }
    }

    /// The replica being promoted (or promoted), once chosen.
    #[must_use]
    pub fn promoted(&self, group_master: &Addr) -> Option<Addr> {
        match &self.phase {
            Phase::Election { .. } => None,
            Phase::Promote { replica } | Phase::WaitPromotion { replica } => Some(replica.clone()),
            Phase::Reconfigure { .. } => Some(group_master.clone()),
        }
    }

    /// Whether the failover polls `addr` for progress.
    #[must_use]
    pub fn is_waiting_on(&self, addr: &Addr) -> bool {
        match &self.phase {
            Phase::Election { .. } => false,
            Phase::Promote { replica } | Phase::WaitPromotion { replica } => replica == addr,
            Phase::Reconfigure { replicas, .. } => {
                matches!(replicas.get(addr), Some(Reconf::Sent(_) | Reconf::InProgress(_)))
            }
        }
    }

    /// Repointing progress of `addr`, during `Reconfigure`.
    #[must_use]
    pub fn reconf_state(&self, addr: &Addr) -> Option<Reconf> {
        match &self.phase {
            Phase::Reconfigure { replicas, .. } => replicas.get(addr).copied(),
            _ => None,
        }
    }

    /// The next instant at which a timeout or a retry is due.
    #[must_use]
    pub fn next_deadline(&self, timing: &MasterTiming, retry: Duration) -> Option<Instant> {
        let phase_end = self.phase_since + timing.failover_timeout;
        match &self.phase {
            Phase::Election { asked_at, .. } => {
                Some((self.started_at + timing.election_timeout).min(*asked_at + retry))
            }
            Phase::Promote { .. } | Phase::WaitPromotion { .. } => Some(phase_end),
            Phase::Reconfigure { replicas, .. } => replicas
                .values()
                .filter_map(|r| match r {
                    Reconf::Sent(at) | Reconf::InProgress(at) => {
                        Some(*at + timing.replica_reconf_timeout)
                    }
                    Reconf::Pending | Reconf::Done => None,
                })
                .chain(std::iter::once(phase_end))
                .min(),
        }
    }
}

impl Group {
    /// Starts a failover: a new epoch, a vote for itself, and vote requests to every peer.
    pub fn start_failover(&mut self, node: &mut Node, peers: &Peers, now: Instant, manual: bool) {
        let epoch = node.current_epoch + 1;
        node.observe_epoch(epoch, Some(&self.settings.name));
        self.ballot = Ballot { epoch, candidate: Some(node.id) };
        self.leader_watch = None;
        node.out.mark_urgent();
        self.failover = Some(Failover {
            epoch,
            manual,
            started_at: now,
            phase_since: now,
            phase: Phase::Election {
                granted: BTreeSet::new(),
                lost: BTreeSet::new(),
                asked_at: now,
            },
        });
        node.emit_about(EventKind::TryFailover, self.master_subject());
        node.emit(Event {
            kind: EventKind::VoteForLeader,
            subject: None,
            detail: Detail::Vote { leader: node.id, epoch, master: self.settings.name.clone() },
        });
        self.ask_votes(node, peers, &BTreeSet::new());
        self.step_failover(node, peers, now);
    }

    fn ask_votes(&self, node: &mut Node, peers: &Peers, granted: &BTreeSet<PeerId>) {
        let Some(failover) = &self.failover else { return };
        let message = Arc::new(node.message(Body::VoteRequest {
            master: self.settings.name.clone(),
            epoch: failover.epoch,
            config_epoch: self.config_epoch,
            manual: failover.manual,
        }));
        for to in peers.ids().filter(|id| !granted.contains(id)) {
            node.out.push(Output::SendPeer { to, message: Arc::clone(&message) });
        }
    }

    /// Counts the vote `slot` cast in `epoch`: for this node (`mine`) or for another candidate.
    pub fn record_vote(&mut self, slot: PeerId, epoch: u64, mine: bool) {
        if let Some(Failover { epoch: ours, phase: Phase::Election { granted, lost, .. }, .. }) =
            &mut self.failover
            && *ours == epoch
        {
            if mine {
                granted.insert(slot);
            } else {
                lost.insert(slot);
            }
        }
    }

    /// Advances the failover as far as it can go at `now`.
    pub fn step_failover(&mut self, node: &mut Node, peers: &Peers, now: Instant) {
        let Some(failover) = self.failover.clone() else { return };
        match failover.phase {
            Phase::Election { granted, lost, asked_at } => {
                let needed = votes_needed(node.settings.voters(), self.settings.quorum);
                let answered = granted.len() + lost.len();
                let undecided = node.settings.peers.len().saturating_sub(answered);
                if granted.len() + 1 >= needed {
                    self.on_elected(node, now);
                } else if granted.len() + 1 + undecided < needed {
                    // A split vote: the votes went to other candidates and cannot come back in
                    // this epoch. Try again soon, after a random delay that makes the next
                    // attempts unlikely to collide, rather than waiting out the election timeout.
                    node.emit_about(EventKind::AbortNotElected, self.master_subject());
                    self.failover = None;
                    let jitter = self.timing.election_jitter;
                    let backoff = jitter + node.jitter(jitter * 2);
                    self.next_attempt_at = now + backoff.min(self.timing.failover_timeout);
                } else if now.saturating_since(failover.started_at) >= self.timing.election_timeout
                {
                    self.abort(node, EventKind::AbortNotElected, now);
                } else if now.saturating_since(asked_at) >= node.settings.heartbeat {
                    self.ask_votes(node, peers, &granted);
                    if let Some(Phase::Election { asked_at, .. }) =
                        self.failover.as_mut().map(|f| &mut f.phase)
                    {
                        *asked_at = now;
                    }
                }
            }
            Phase::Promote { replica } => {
                if !self.send_promotion(node, &replica, now)
                    && now.saturating_since(failover.phase_since) >= self.timing.failover_timeout
                {
                    self.abort(node, EventKind::AbortReplicaTimeout, now);
                }
            }
            Phase::WaitPromotion { replica } => {
                // The promotion may have been reported while this node was in TILT, when INFO
                // replies do not advance the failover.
                let promoted = self
                    .instances
                    .get(&replica)
                    .is_some_and(|i| matches!(i.reported_role(), Some(ReportedRole::Master)));
                if promoted {
                    self.on_promoted(node, replica, failover.epoch, now);
                } else if now.saturating_since(failover.phase_since) >= self.timing.failover_timeout
                {
                    self.abort(node, EventKind::AbortReplicaTimeout, now);
                }
            }
            Phase::Reconfigure { .. } => self.step_reconfigure(node, now),
        }
    }

    fn set_phase(&mut self, phase: Phase, now: Instant) {
        if let Some(failover) = &mut self.failover {
            failover.phase = phase;
            failover.phase_since = now;
        }
    }

    fn on_elected(&mut self, node: &mut Node, now: Instant) {
        node.emit_about(EventKind::ElectedLeader, self.master_subject());
        node.emit_about(EventKind::StateSelectReplica, self.master_subject());
        let Some(replica) = self.select_replica(now) else {
            self.abort(node, EventKind::AbortNoGoodReplica, now);
            return;
        };
        let subject = self.replica_subject(&replica, &self.master);
        node.emit_about(EventKind::SelectedReplica, subject.clone());
        node.emit_about(EventKind::StateSendPromotion, subject);
        self.set_phase(Phase::Promote { replica: replica.clone() }, now);
        // If the chosen replica's link is down, `step_failover` retries until it is back or the
        // failover times out.
        self.send_promotion(node, &replica, now);
    }

    /// Sends the promotion if the replica's link is up; returns whether it was sent.
    fn send_promotion(&mut self, node: &mut Node, replica: &Addr, now: Instant) -> bool {
        let Some(instance) = self.instances.get_mut(replica) else { return false };
        if !instance.send(node, now, RedisCommand::Promote) {
            return false;
        }
        // Pipelined right behind the promotion: its reply usually confirms it at once.
        instance.send(node, now, RedisCommand::Info);
        let subject = self.replica_subject(replica, &self.master);
        node.emit_about(EventKind::StateWaitPromotion, subject);
        self.set_phase(Phase::WaitPromotion { replica: replica.clone() }, now);
        true
    }

    /// The replica to promote, by [`selection`]'s rules.
    #[must_use]
    pub fn select_replica(&self, now: Instant) -> Option<Addr> {
        // A master that reports being a replica stopped serving as one when it said so, long
        // before it counts as down (`down_after` plus two INFO periods later): its replicas'
        // links have been down since then, and measuring from the SDOWN alone would make every
        // one of them ineligible (a group whose instances follow each other in a cycle could then
        // never recover).
        let master_down_since = self.master_instance().and_then(|m| {
            let demoted_at = m
                .role_reported_at
                .filter(|_| matches!(m.reported_role(), Some(ReportedRole::Replica(_))));
            match (m.sdown_since, demoted_at) {
                (Some(sdown), Some(demoted)) => Some(sdown.min(demoted)),
                (sdown, _) => sdown,
            }
        });
        let master_down_for = master_down_since.map(|at| now.saturating_since(at));
        let limits = Limits::new(
            now,
            self.timing.ping_period,
            INFO_PERIOD,
            self.timing.down_after,
            master_down_for,
        );
        // The master may have been demoted behind this node's back (repointed by a node that
        // missed a failover): if it reports following a known instance that reports
        // `role:master`, that instance holds its data and is a candidate too. Promoting it is a
        // no-op for Redis; the failover gives it a config epoch of its own, which is the only way
        // out (Sentinel, which selects among its known replicas whatever role they report, takes
        // the same way). Any other instance reporting `role:master` is not a candidate.
        let upstream = self
            .master_instance()
            .and_then(|m| match m.reported_role() {
                Some(ReportedRole::Replica(link)) => link.master.clone(),
                _ => None,
            })
            .and_then(|addr| self.find(&addr).cloned());
        let candidates: Vec<Candidate<'_>> = self
            .instances
            .iter()
            .filter(|(addr, _)| **addr != self.master)
            .filter_map(|(addr, i)| {
                let info = i.info.as_ref()?;
                let (repl_offset, link_down_for) = match &info.role {
                    ReportedRole::Replica(link) => (link.repl_offset, link.link_down_for),
                    ReportedRole::Master if upstream.as_ref() == Some(addr) => {
                        (info.master_repl_offset, None)
                    }
                    ReportedRole::Master => return None,
                };
                Some(Candidate {
                    addr,
                    sdown: i.sdown_since.is_some(),
                    link_up: i.up_link().is_some(),
                    last_ok_reply_at: i.last_ok_reply_at,
                    info_at: i.info_at,
                    priority: self
                        .settings
                        .priority_overrides
                        .get(addr)
                        .copied()
                        .unwrap_or(info.replica_priority),
                    repl_offset,
                    run_id: info.run_id.as_deref(),
                    link_down_for,
                })
            })
            .collect();
        let chosen = selection::select(&candidates, &limits).cloned();
        if chosen.is_none() {
            for c in &candidates {
                tracing::info!(
                    master = %self.settings.name,
                    replica = %c.addr,
                    sdown = c.sdown,
                    link_up = c.link_up,
                    priority = c.priority,
                    reply_age_ms = now.saturating_since(c.last_ok_reply_at).as_millis(),
                    info_age_ms = c.info_at.map(|at| now.saturating_since(at).as_millis()),
                    link_down_for = ?c.link_down_for,
                    "replica not eligible for promotion"
                );
            }
        }
        chosen
    }

    /// This node is about to vote for another candidate in `epoch`: a failover of its own in
    /// an older epoch that can still be aborted is aborted (`-failover-abort-not-elected`), as a
    /// Raft leader steps down on seeing a higher term. Carrying on would let two leaders of
    /// consecutive epochs promote different replicas and repoint each other's, which can leave
    /// the replicas following each other in a cycle with no master at all.
    pub fn yield_to_newer_epoch(&mut self, node: &mut Node, epoch: u64, now: Instant) {
        let abortable = self
            .failover
            .as_ref()
            .is_some_and(|f| f.epoch < epoch && !matches!(f.phase, Phase::Reconfigure { .. }));
        if abortable {
            self.abort(node, EventKind::AbortNotElected, now);
        }
    }

    fn abort(&mut self, node: &mut Node, kind: EventKind, now: Instant) {
        node.emit_about(kind, self.master_subject());
        self.failover = None;
        let backoff = self.timing.election_timeout + node.jitter(self.timing.election_timeout);
        self.next_attempt_at = now + backoff.min(self.timing.failover_timeout);
    }

    /// Follows the failover's progress in an INFO reply from `addr`.
    pub fn on_failover_info(&mut self, node: &mut Node, addr: &Addr, now: Instant) {
        let Some(failover) = &self.failover else { return };
        match &failover.phase {
            Phase::WaitPromotion { replica } if replica == addr => {
                let promoted = self
                    .instances
                    .get(addr)
                    .is_some_and(|i| matches!(i.reported_role(), Some(ReportedRole::Master)));
                if promoted {
                    self.on_promoted(node, addr.clone(), failover.epoch, now);
                }
            }
            Phase::Reconfigure { .. } => self.on_reconf_info(node, addr, now),
            _ => {}
        }
    }

    /// The chosen replica reports `role:master`: make it the group's master under the failover
    /// epoch (durably, before anything announces it) and start repointing the others.
    fn on_promoted(&mut self, node: &mut Node, replica: Addr, epoch: u64, now: Instant) {
        let old_master = std::mem::replace(&mut self.master, replica.clone());
        self.config_epoch = epoch;
        node.out.mark_urgent();
        node.lazy_dirty = true;
        node.emit_about(EventKind::PromotedReplica, self.replica_subject(&replica, &old_master));
        node.emit_about(
            EventKind::StateReconfReplicas,
            Subject::Master { name: self.settings.name.clone(), addr: old_master.clone() },
        );
        let replicas =
            self.instances.keys().filter(|a| **a != replica).map(|a| (a.clone(), Reconf::Pending));
        let replicas = replicas.collect();
        for instance in self.instances.values_mut() {
            instance.misconfigured_since = None;
        }
        if self.odown_since.take().is_some() {
            let old =
                Subject::Master { name: self.settings.name.clone(), addr: old_master.clone() };
            node.emit_about(EventKind::OdownCleared, old);
        }
        self.set_phase(Phase::Reconfigure { old_master, replicas }, now);
        self.step_reconfigure(node, now);
    }

    fn on_reconf_info(&mut self, node: &mut Node, addr: &Addr, now: Instant) {
        let follows = self
            .instances
            .get(addr)
            .and_then(|i| i.info.as_ref())
            .map(|info| (self.follows_new_master(&info.role), info.role.clone()));
        let Some((true, role)) = follows else { return };
        let link_up = matches!(role, ReportedRole::Replica(ref l) if l.link_up);
        let Some(Phase::Reconfigure { old_master, replicas }) =
            self.failover.as_ref().map(|f| f.phase.clone())
        else {
            return;
        };
        let Some(state) = replicas.get(addr).copied() else { return };
        let subject = self.replica_subject(addr, &old_master);
        let mut next = state;
        if let Reconf::Sent(_) = state {
            node.emit_about(EventKind::ReplicaReconfInProgress, subject.clone());
            next = Reconf::InProgress(now);
        }
        if matches!(next, Reconf::InProgress(_)) && link_up {
            node.emit_about(EventKind::ReplicaReconfDone, subject);
            next = Reconf::Done;
        }
        if next != state {
            if let Some(Phase::Reconfigure { replicas, .. }) =
                self.failover.as_mut().map(|f| &mut f.phase)
            {
                replicas.insert(addr.clone(), next);
            }
            self.step_reconfigure(node, now);
        }
    }

    fn follows_new_master(&self, role: &ReportedRole) -> bool {
        matches!(role, ReportedRole::Replica(link)
            if link.master.as_ref().is_some_and(|m| self.master_instance().is_some_and(|i| i.is_at(m))))
    }

    fn step_reconfigure(&mut self, node: &mut Node, now: Instant) {
        let Some(failover) = self.failover.clone() else { return };
        let Phase::Reconfigure { old_master, mut replicas } = failover.phase else { return };
        let timing = self.timing;
        for (addr, state) in &mut replicas {
            if let Reconf::Sent(at) | Reconf::InProgress(at) = *state
                && now.saturating_since(at) >= timing.replica_reconf_timeout
            {
                node.emit_about(
                    EventKind::ReplicaReconfTimeout,
                    self.replica_subject(addr, &old_master),
                );
                *state = Reconf::Done;
            }
        }
        let limit = usize::try_from(self.settings.parallel_syncs.max(1)).unwrap_or(usize::MAX);
        let mut in_flight = replicas
            .values()
            .filter(|r| matches!(r, Reconf::Sent(_) | Reconf::InProgress(_)))
            .count();
        let master = self.master.clone();
        for (addr, state) in &mut replicas {
            if in_flight >= limit {
                break;
            }
            let Some(instance) = self.instances.get_mut(addr) else { continue };
            if *state != Reconf::Pending || instance.sdown_since.is_some() {
                continue;
            }
            if instance.send(node, now, RedisCommand::ReplicaOf { master: master.clone() }) {
                instance.send(node, now, RedisCommand::Info);
                *state = Reconf::Sent(now);
                in_flight += 1;
                node.emit_about(
                    EventKind::ReplicaReconfSent,
                    Self::subject_of(&self.settings.name, addr, &old_master),
                );
            }
        }
        let promoted_up = self.master_instance().is_some_and(|m| m.sdown_since.is_none());
        let finished = promoted_up
            && replicas.iter().all(|(addr, state)| {
                *state == Reconf::Done
                    || self.instances.get(addr).is_none_or(|i| i.sdown_since.is_some())
            });
        if finished {
            self.finish(node, &old_master);
            return;
        }
        if now.saturating_since(failover.phase_since) >= timing.failover_timeout {
            node.emit_about(
                EventKind::FailoverEndForTimeout,
                Subject::Master { name: self.settings.name.clone(), addr: old_master.clone() },
            );
            for (addr, state) in &replicas {
                if *state == Reconf::Done {
                    continue;
                }
                let Some(instance) = self.instances.get_mut(addr) else { continue };
                if instance.send(node, now, RedisCommand::ReplicaOf { master: master.clone() }) {
                    node.emit_about(
                        EventKind::ReplicaReconfBestEffort,
                        Self::subject_of(&self.settings.name, addr, &old_master),
                    );
                }
            }
            self.finish(node, &old_master);
            return;
        }
        if let Some(failover) = &mut self.failover {
            failover.phase = Phase::Reconfigure { old_master, replicas };
        }
    }

    fn subject_of(name: &str, addr: &Addr, master_addr: &Addr) -> Subject {
        Subject::Replica {
            addr: addr.clone(),
            master: name.to_owned(),
            master_addr: master_addr.clone(),
        }
    }

    /// Sentinel's `update_config`: `+failover-end`, then the switch announcement.
    fn finish(&mut self, node: &mut Node, old_master: &Addr) {
        node.emit_about(
            EventKind::FailoverEnd,
            Subject::Master { name: self.settings.name.clone(), addr: old_master.clone() },
        );
        self.failover = None;
        self.after_switch(node, old_master);
    }
}
