//! The failover this node leads: one state per phase, one place for every transition.
//!
//! ```text
//!  Election ──won──► SelectReplica ──► Promote ──sent──► WaitPromotion ──role:master──► Reconfigure ──► end
//!     │                  │               │                   │                            │
//!     └─timeout─► abort  └─none─► abort  └──timeout──► abort ┘               timeout: best effort, end
//! ```
//!
//! Sentinel's phases and event names are kept (`wait_start`, `select_slave`,
//! `send_slaveof_noone`, `wait_promotion`, `reconf_slaves`, `update_config`), with two changes
//! for speed: the promotion is confirmed by polling INFO every few milliseconds instead of waiting
//! for the next one-second INFO, and the new configuration is announced to peers the moment the
//! promotion is seen, so every node answers the new address within a round trip.
//!
//! # No abandoned side effects
//!
//! A failover has side effects on Redis (the promotion, then the repointing), and a node can stop
//! leading one at any point: it crashes, an operator resets it, or a phase times out. The design
//! guarantees that whatever it leaves behind is a way forward for the next leader, never a dead
//! end:
//!
//! * **A leader past its election is never superseded while it may act.** Voters refuse newer
//!   epochs while it leads (see [`crate::engine::election`]), and it stops collecting votes or
//!   yields only while it is still in its election, before it has sent anything.
//! * **A promotion whose leader is gone is adopted by the next leader.** A replica that was
//!   promoted and then abandoned reports `role:master` with its old master's replication history
//!   as `master_replid2`. Replica selection takes such an instance as a candidate (the group
//!   remembers the history of its master's data, see [`Group::history`]), so the next leader
//!   completes the failover with it: re-promoting a master is a no-op for Redis, and the failover
//!   gives it a config epoch of its own. An instance reporting `role:master` with some other
//!   history (a replica restarted empty as a master) is never a candidate: promoting it would
//!   lose the data.
//! * **Repointing is idempotent and converges.** A replica repointed by a failover that then
//!   ended follows the promoted master; if a newer configuration wins, every node corrects it
//!   towards the highest config epoch (`+fix-slave-config`).
//!
//! Every way a failover ends early, and what it leaves:
//!
//! | how it ends | side effects sent | what the next leader finds |
//! | --- | --- | --- |
//! | election lost, split, timed out, yielded, or another node elected | none | the group as it was |
//! | no eligible replica after [`MasterTiming::info_grace`] | none | the group as it was |
//! | `Promote` timed out (the replica's link never came up) | none | the group as it was |
//! | `WaitPromotion` timed out, the leader crashed or was reset | a promotion that may take effect later | a replica reporting `role:master` with the master's history: taken over |
//! | a newer configuration adopted | a promotion, maybe repointing | the newer master; the rest is corrected towards it |
//! | `Reconfigure` timed out | the promotion (announced) and part of the repointing | the new master; unrepointed replicas corrected towards it |
//!
//! Elections that split are retried at once by the candidate every split candidate can name (the
//! smallest node id among them) while the others back off, so a split between the same
//! candidates does not repeat.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::election::{Ballot, votes_needed};
use crate::engine::event::{Detail, Event, EventKind, Subject};
use crate::engine::fence::{Fencing, Lease};
use crate::engine::gossip::Body;
use crate::engine::group::Group;
use crate::engine::ids::{NodeId, PeerId};
use crate::engine::io::{Output, PromotedWrites, RedisCommand};
use crate::engine::node::Node;
use crate::engine::peers::Peers;
use crate::engine::report::ReportedRole;
use crate::engine::selection::{self, Candidate, Ineligible, Limits};
use crate::engine::time::Instant;
use crate::engine::timing::{INFO_PERIOD, MasterTiming, STRICT_PAUSE};

/// Redis's `replica-priority` when it is not set.
const DEFAULT_REPLICA_PRIORITY: u32 = 100;

/// How soon the candidate every split candidate can name tries again: a deadline must lie in
/// the future, and a millisecond is all it needs.
const RETRY_AT_ONCE: Duration = Duration::from_millis(1);

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
    /// What fencing knows of the old and the new master (see [`crate::engine::fence`]).
    pub fence: FailoverFence,
}

/// What a failover knows of the old master's fence, and of the new master's in strict mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailoverFence {
    /// The master being replaced.
    pub old_master: Option<Addr>,
    /// The lease it ran under, as last read from it.
    pub old_lease: Option<Lease>,
    /// When it acknowledged a pause of its writes (a [`RedisCommand::Fence`]).
    pub old_paused_at: Option<Instant>,
    /// When the promoted replica was seen to be master: it stopped acknowledging the old one by
    /// then.
    pub promoted_at: Option<Instant>,
    /// When each repointed replica was seen following the new master.
    pub detached: BTreeMap<Addr, Instant>,
    /// Bounded mode: whether `+fence-window` was announced (once per failover).
    pub window_stated: bool,
    /// Strict mode: when the new master's pause was last sent.
    pub pause_sent_at: Option<Instant>,
    /// Strict mode: when the old master was last locked ([`Lease::LOCK`]); a reading of its
    /// lease taken since shows whether the lock holds.
    pub old_lock_sent_at: Option<Instant>,
    /// The old master's last known replication offset, and the promoted replica's, when the
    /// promotion was sent: their difference is what the failover may have lost.
    pub offsets: Option<(u64, u64)>,
}

/// The phases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Collecting votes (Sentinel's `wait_start`).
    Election {
        /// Peers that granted their vote (this node's own vote is implied).
        granted: BTreeSet<PeerId>,
        /// Peers that answered with a vote for another candidate in this epoch, and whom: final,
        /// since a node votes once per epoch.
        lost: BTreeMap<PeerId, NodeId>,
        /// When vote requests were last sent.
        asked_at: Instant,
    },
    /// Elected; choosing the replica (`select_slave`). If none is eligible yet, the leader polls
    /// every replica's INFO for a moment before it gives up: a replica's INFO is often older
    /// than selection accepts when the master has only just been seen down (replicas are polled
    /// every ten seconds while all is well), and aborting would cost every node a back-off.
    SelectReplica,
    /// A planned switchover: the old master's writes are paused and its clients disconnected;
    /// waiting for the chosen replica to reach the old master's offset before promoting it, so
    /// that nothing acknowledged is lost (`wait_catch_up`, Picket's own). Gives up, releasing
    /// the old master, after the master's `switchover_timeout`.
    Drain {
        /// The chosen replica.
        replica: Addr,
        /// The old master's offset once paused.
        target: Option<u64>,
    },
    /// The replica is chosen; waiting for its link to send the promotion
    /// (`send_slaveof_noone`).
    Promote {
        /// The chosen replica.
        replica: Addr,
    },
    /// Promotion sent; polling INFO until the replica reports `role:master` (`wait_promotion`).
    /// A promotion that does not show within [`MasterTiming::info_grace`] (refused, or lost
    /// with its connection) is sent again: it is idempotent.
    WaitPromotion {
        /// The chosen replica.
        replica: Addr,
        /// When the promotion was last sent.
        sent_at: Instant,
    },
    /// The replica is master; repointing the others at it (`reconf_slaves`).
    Reconfigure {
        /// The master before the failover.
        old_master: Addr,
        /// Progress per instance to repoint (the old master included, so that a master that is
        /// still reachable is demoted at once instead of accepting writes that will be lost).
        replicas: BTreeMap<Addr, Reconf>,
    },
    /// Strict mode: every replica follows the new master, whose writes stay paused until the old
    /// master surely refuses them (`wait_fence`, Picket's own).
    Release {
        /// The master before the failover.
        old_master: Addr,
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
            Phase::SelectReplica => "select_slave",
            Phase::Drain { .. } => "wait_catch_up",
            Phase::Promote { .. } => "send_slaveof_noone",
            Phase::WaitPromotion { .. } => "wait_promotion",
            Phase::Reconfigure { .. } => "reconf_slaves",
            Phase::Release { .. } => "wait_fence",
        }
    }

    /// The replica being promoted (or promoted), once chosen.
    #[must_use]
    pub fn promoted(&self, group_master: &Addr) -> Option<Addr> {
        match &self.phase {
            Phase::Election { .. } | Phase::SelectReplica | Phase::Drain { .. } => None,
            Phase::Promote { replica } | Phase::WaitPromotion { replica, .. } => {
                Some(replica.clone())
            }
            Phase::Reconfigure { .. } | Phase::Release { .. } => Some(group_master.clone()),
        }
    }

    /// Whether the failover polls `addr` for progress (while selecting, every replica; the
    /// caller excludes the master).
    #[must_use]
    pub fn is_waiting_on(&self, addr: &Addr) -> bool {
        match &self.phase {
            Phase::Election { .. } => false,
            Phase::SelectReplica => true,
            Phase::Drain { replica, .. }
            | Phase::Promote { replica }
            | Phase::WaitPromotion { replica, .. } => replica == addr,
            Phase::Release { .. } => false,
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
            Phase::SelectReplica => Some(self.phase_since + timing.info_grace()),
            Phase::Drain { .. } => Some(self.phase_since + timing.switchover_timeout),
            Phase::Promote { .. } => Some(phase_end),
            // The pause is renewed at half its length; the group also wakes when the old
            // master's fence closes.
            Phase::Release { .. } => Some(
                (self.fence.pause_sent_at.unwrap_or(self.phase_since) + STRICT_PAUSE / 2)
                    .min(phase_end),
            ),
            Phase::WaitPromotion { sent_at, .. } => {
                Some(phase_end.min(*sent_at + timing.info_grace()))
            }
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
                lost: BTreeMap::new(),
                asked_at: now,
            },
            fence: FailoverFence::default(),
        });
        node.emit(Event {
            kind: EventKind::TryFailover,
            subject: Some(self.master_subject()),
            detail: Detail::Attempt { epoch },
        });
        node.emit(Event {
            kind: EventKind::VoteForLeader,
            subject: None,
            detail: Detail::Vote { leader: node.id, epoch, master: self.settings.name.clone() },
        });
        self.ask_votes(node, peers, &BTreeSet::new(), now);
        // In TILT nothing advances (an operator's failover started in TILT, or during a stall's
        // re-read, waits for it to end).
        if node.may_act() {
            self.step_failover(node, peers, now);
        }
    }

    fn ask_votes(&self, node: &mut Node, peers: &Peers, granted: &BTreeSet<PeerId>, now: Instant) {
        let Some(failover) = &self.failover else { return };
        self.ask_sentinel_votes(node, failover.epoch, now);
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

    /// Counts the vote `slot` cast in `epoch` for `candidate` (this node, `me`, or another).
    pub fn record_vote(&mut self, slot: PeerId, epoch: u64, candidate: NodeId, me: NodeId) {
        if let Some(Failover { epoch: ours, phase: Phase::Election { granted, lost, .. }, .. }) =
            &mut self.failover
            && *ours == epoch
        {
            if candidate == me {
                granted.insert(slot);
            } else {
                lost.insert(slot, candidate);
            }
        }
    }

    /// Advances the failover as far as it can go at `now`.
    pub fn step_failover(&mut self, node: &mut Node, peers: &Peers, now: Instant) {
        let Some(failover) = self.failover.clone() else { return };
        match failover.phase {
            Phase::Election { granted, lost, asked_at } => {
                let needed = votes_needed(self.voters(node), self.settings.quorum);
                // Peers that have not answered and cannot be heard are not counted on: a dead
                // peer would otherwise keep a split election waiting for its whole timeout.
                let undecided = peers
                    .iter()
                    .filter(|(slot, p)| {
                        !granted.contains(slot)
                            && !lost.contains_key(slot)
                            && p.is_fresh(now, peers.timeout())
                    })
                    .count()
                    + self.sentinels.undecided(failover.epoch, now);
                let votes =
                    granted.len() + 1 + self.sentinels.votes_for(node.id, failover.epoch, now);
                if votes >= needed {
                    self.on_elected(node, now);
                } else if self.peer_elected(peers, now) {
                    // Another node won this master's failover: it acts, this attempt yields.
                    node.emit_about(EventKind::AbortNotElected, self.master_subject());
                    self.failover = None;
                    self.next_attempt_at = now + self.timing.election_jitter;
                } else if votes + undecided < needed {
                    let rivals = self.sentinels.rivals(node.id, failover.epoch, now);
                    self.on_split_vote(node, now, lost.values().copied().chain(rivals));
                } else if now.saturating_since(failover.started_at) >= self.timing.election_timeout
                {
                    self.abort(node, EventKind::AbortNotElected, now);
                } else if now.saturating_since(asked_at) >= node.settings.heartbeat {
                    self.ask_votes(node, peers, &granted, now);
                    if let Some(Phase::Election { asked_at, .. }) =
                        self.failover.as_mut().map(|f| &mut f.phase)
                    {
                        *asked_at = now;
                    }
                }
            }
            Phase::SelectReplica => self.select_or_wait(node, now),
            Phase::Drain { replica, target } => {
                self.step_drain(node, &replica, target, now);
                self.fence_returning_old_master(node, now);
            }
            Phase::Promote { replica } => {
                self.fence_returning_old_master(node, now);
                if !self.send_promotion(node, &replica, now)
                    && now.saturating_since(failover.phase_since) >= self.timing.failover_timeout
                {
                    self.abort(node, EventKind::AbortReplicaTimeout, now);
                }
            }
            Phase::WaitPromotion { replica, sent_at } => {
                self.fence_returning_old_master(node, now);
                // The promotion may have been reported while this node could not act (TILT, a
                // stall's re-read), when INFO replies do not advance the failover.
                let promoted = self
                    .instances
                    .get(&replica)
                    .is_some_and(|i| matches!(i.reported_role(), Some(ReportedRole::Master)));
                if promoted {
                    self.on_promoted(node, replica, failover.epoch, now);
                } else if now.saturating_since(failover.phase_since) >= self.timing.failover_timeout
                {
                    self.abort(node, EventKind::AbortReplicaTimeout, now);
                } else if now.saturating_since(sent_at) >= self.timing.info_grace() {
                    self.resend_promotion(node, &replica, now);
                }
            }
            Phase::Reconfigure { .. } => {
                self.renew_strict_pause(node, now);
                self.fence_returning_old_master(node, now);
                self.step_reconfigure(node, now);
            }
            Phase::Release { .. } => self.step_release(node, now),
        }
    }

    /// A split vote: the votes went to other candidates and cannot come back in this epoch.
    /// Every split candidate heard the others' names in the refusals, so they agree on the
    /// smallest id among them: that one tries again at once, in the next epoch, and the others
    /// back off long enough to vote for it. Random back-off alone lets the same candidates
    /// collide again whenever their delays fall within a message's flight of each other.
    fn on_split_vote(
        &mut self,
        node: &mut Node,
        now: Instant,
        rivals: impl Iterator<Item = NodeId>,
    ) {
        node.emit_about(EventKind::AbortNotElected, self.master_subject());
        self.failover = None;
        let jitter = self.timing.election_jitter;
        let first = rivals.min().is_none_or(|rival| node.id < rival);
        let backoff = if first { RETRY_AT_ONCE } else { jitter * 2 + node.jitter(jitter * 2) };
        self.next_attempt_at = now + backoff.min(self.timing.failover_timeout);
        // The retry must not wait for a new ODOWN jitter either.
        self.attempt_at = Some(self.next_attempt_at);
    }

    /// Whether a fresh peer reports that it was elected to fail this master over.
    fn peer_elected(&self, peers: &Peers, now: Instant) -> bool {
        peers
            .fresh_reports(&self.settings.name, now)
            .any(|(_, _, r)| r.addr == self.master && r.failover.is_some_and(|f| f.elected))
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
        self.set_phase(Phase::SelectReplica, now);
        self.select_or_wait(node, now);
    }

    /// Chooses the replica and sends the promotion; with none eligible, waits for fresh INFO
    /// replies up to [`MasterTiming::info_grace`], then gives up.
    fn select_or_wait(&mut self, node: &mut Node, now: Instant) {
        let Some(since) = self.failover.as_ref().map(|f| f.phase_since) else { return };
        let Some(replica) = self.select_replica(now) else {
            if now.saturating_since(since) >= self.timing.info_grace() {
                self.log_ineligible_replicas(now);
                self.abort(node, EventKind::AbortNoGoodReplica, now);
                // Its voters may know a candidate this node does not (a replica promoted by an
                // abandoned attempt, whose history this node never saw): leave them the next
                // attempt. They back off an election timeout or two once they see this one
                // stop; this node waits a whole failover timeout. Backing off like them, a
                // restarted leader that had lost track of its own promotion won election after
                // election while they waited (simulator seed 8703288).
                self.next_attempt_at = now + self.timing.failover_timeout;
            }
            return;
        };
        let subject = self.replica_subject(&replica, &self.master);
        node.emit_about(EventKind::SelectedReplica, subject);
        let manual = self.failover.as_ref().is_some_and(|f| f.manual);
        if self.fence_old_master(node, now) && manual {
            // A planned switchover: nothing acknowledged may be lost.
            node.emit_about(
                EventKind::StateWaitCatchUp,
                self.replica_subject(&replica, &self.master),
            );
            self.set_phase(Phase::Drain { replica, target: None }, now);
            return;
        }
        self.promote_chosen(node, replica, now);
    }

    /// Moves to the promotion of `replica` and sends it if its link is up (else
    /// `step_failover` retries until it is back or the failover times out).
    pub(crate) fn promote_chosen(&mut self, node: &mut Node, replica: Addr, now: Instant) {
        let subject = self.replica_subject(&replica, &self.master);
        node.emit_about(EventKind::StateSendPromotion, subject);
        self.set_phase(Phase::Promote { replica: replica.clone() }, now);
        self.send_promotion(node, &replica, now);
    }

    /// Sends the promotion if the replica's link is up; returns whether it was sent.
    fn send_promotion(&mut self, node: &mut Node, replica: &Addr, now: Instant) -> bool {
        if !self.send_promote_command(node, replica, now) {
            return false;
        }
        let subject = self.replica_subject(replica, &self.master);
        node.emit_about(EventKind::StateWaitPromotion, subject);
        let phase = Phase::WaitPromotion { replica: replica.clone(), sent_at: now };
        self.set_phase(phase, now);
        true
    }

    /// Sends the promotion again, within the same phase (whose timeout keeps running).
    fn resend_promotion(&mut self, node: &mut Node, replica: &Addr, now: Instant) {
        let sent = self.send_promote_command(node, replica, now);
        if let Some(Phase::WaitPromotion { sent_at, .. }) =
            self.failover.as_mut().map(|f| &mut f.phase)
        {
            // Without a link, try again at the next grace rather than at every evaluation.
            *sent_at = now;
        }
        if sent {
            tracing::info!(master = %self.settings.name, %replica, "promotion not confirmed: sent again");
        }
    }

    /// `REPLICAOF NO ONE` (as its transaction) to `replica`, with an INFO pipelined right behind
    /// it: its reply usually confirms the promotion at once.
    fn send_promote_command(&mut self, node: &mut Node, replica: &Addr, now: Instant) -> bool {
        let fencing = self.settings.fencing;
        // Strict mode locks the new master until the old one surely refuses writes; the wait
        // (or, if it gives up, the hold) lifts the lock.
        let lease =
            if fencing == Fencing::Strict { Some(Lease::LOCK) } else { self.promoted_lease() };
        let command = RedisCommand::Promote {
            lease,
            writes: match fencing {
                Fencing::Off => PromotedWrites::Untouched,
                Fencing::Bounded => PromotedWrites::Released,
                Fencing::Strict => PromotedWrites::Paused(STRICT_PAUSE),
            },
        };
        let offsets = self.loss_offsets(replica);
        let Some(instance) = self.instances.get_mut(replica) else { return false };
        if !instance.send(node, now, command) {
            return false;
        }
        instance.send(node, now, RedisCommand::Info);
        if let Some(lease) = lease {
            self.lease_set = Some((replica.clone(), lease));
        }
        if let Some(failover) = &mut self.failover {
            failover.fence.offsets = offsets;
            if fencing == Fencing::Strict {
                failover.fence.pause_sent_at = Some(now);
            }
        }
        true
    }

    /// The replica to promote, by [`selection`]'s rules.
    #[must_use]
    pub fn select_replica(&self, now: Instant) -> Option<Addr> {
        self.with_candidates(now, |candidates, limits| {
            selection::select(candidates, limits).cloned()
        })
    }

    /// Why the instance at `addr` cannot be promoted now, by [`selection`]'s rules (the very
    /// ones [`Self::select_replica`] applies); `Ok` if it can.
    ///
    /// # Errors
    /// The reason it cannot.
    pub fn eligibility(&self, addr: &Addr, now: Instant) -> Result<(), Ineligible> {
        if *addr == self.master {
            return Err(Ineligible::CurrentMaster);
        }
        self.with_candidates(now, |candidates, limits| {
            candidates
                .iter()
                .find(|c| c.addr == addr)
                .map_or(Err(Ineligible::NotAReplica), |c| selection::eligibility(c, limits))
        })
    }

    /// Logs why no replica can be promoted.
    fn log_ineligible_replicas(&self, now: Instant) {
        self.with_candidates(now, |candidates, _| {
            for c in candidates {
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
        });
    }

    /// How long every replica that follows the master has had its link to it down, at least
    /// (zero if one has it up, or none reports it): the master has been gone for all of them
    /// that long, whenever this node's own SDOWN clock started. A node that restarted (or was
    /// reset) seconds after the master died starts that clock anew, and measured from it alone
    /// every replica looked disconnected for too long, for ever (simulator seed 8903965). A
    /// replica disconnected long before the others still is.
    fn lost_by_replicas_for(&self, now: Instant) -> Duration {
        self.instances
            .iter()
            .filter(|(addr, _)| **addr != self.master)
            .filter_map(|(_, i)| match i.reported_role()? {
                ReportedRole::Replica(link) if self.follows_master(i.reported_role()?) => {
                    if link.link_up {
                        return Some(Duration::ZERO);
                    }
                    Some(link.link_down_for? + now.saturating_since(i.info_at?))
                }
                _ => None,
            })
            .min()
            .unwrap_or_default()
    }

    /// Calls `f` with every candidate for promotion and the limits they must be within.
    fn with_candidates<T>(
        &self,
        now: Instant,
        f: impl FnOnce(&[Candidate<'_>], &Limits) -> T,
    ) -> T {
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
        let master_down_for = master_down_since
            .map(|at| now.saturating_since(at).max(self.lost_by_replicas_for(now)));
        let mut limits = Limits::new(
            now,
            self.timing.max_reply_age(),
            self.timing.ping_period,
            INFO_PERIOD,
            self.timing.down_after,
            master_down_for,
        );
        // The master's last known offset: its own INFO, or the furthest replica if that is
        // ahead (the master's INFO comes only every ten seconds).
        limits.min_offset = self.settings.max_lag_on_failover_bytes.map(|max_lag| {
            let known = self.instances.values().filter_map(|i| i.replication_offset()).max();
            known.unwrap_or(0).saturating_sub(max_lag)
        });
        // An instance reporting `role:master` holds the master's data, and is a candidate, in two
        // cases. The master may have been demoted behind this node's back (repointed by a node
        // that missed a failover): the instance it now follows is one. And a replica promoted by
        // a failover that was then abandoned (its leader crashed, was reset, or timed out
        // waiting for it) carries the master's replication history as its previous one. Promoting
        // either is a no-op for Redis; the failover gives it a config epoch of its own, which is
        // the only way out (Sentinel, which selects among its known replicas whatever role they
        // report, takes the same way). Any other instance reporting `role:master` is not a
        // candidate: one restarted empty, say, would lose the data.
        let history = self.history.as_deref();
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
                // A master's INFO does not show its priority: use the one it last showed as a
                // replica. The master's own upstream holds the master's data whatever it is set
                // to, so an unknown priority is Redis's default there, as in Sentinel; any other
                // instance reporting role:master is promoted only if known not to be priority 0.
                let (repl_offset, link_down_for, priority) = match &info.role {
                    ReportedRole::Replica(link) => (
                        link.repl_offset,
                        link.link_down_for,
                        self.priority_of(addr).unwrap_or(info.replica_priority),
                    ),
                    ReportedRole::Master if upstream.as_ref() == Some(addr) => (
                        info.master_repl_offset,
                        None,
                        self.priority_of(addr).unwrap_or(DEFAULT_REPLICA_PRIORITY),
                    ),
                    ReportedRole::Master if history.is_some_and(|h| info.carries_history(h)) => {
                        (info.master_repl_offset, None, self.priority_of(addr)?)
                    }
                    ReportedRole::Master => return None,
                };
                Some(Candidate {
                    addr,
                    sdown: i.sdown_since.is_some(),
                    link_up: i.up_link().is_some(),
                    last_ok_reply_at: i.last_ok_reply_at,
                    info_at: i.info_at,
                    priority,
                    repl_offset,
                    run_id: info.run_id.as_deref(),
                    link_down_for,
                })
            })
            .collect();
        f(&candidates, &limits)
    }

    /// This node is about to vote for another candidate in `epoch`: its own attempt in an older
    /// epoch, still collecting votes, is given up (`-failover-abort-not-elected`), as a Raft
    /// candidate steps down on seeing a higher term. A leader past its election never gets here:
    /// it refuses newer epochs while it acts (see [`crate::engine::election`]), because its
    /// promotion may already have taken effect.
    pub fn yield_to_newer_epoch(&mut self, node: &mut Node, epoch: u64, now: Instant) {
        let collecting = self
            .failover
            .as_ref()
            .is_some_and(|f| f.epoch < epoch && matches!(f.phase, Phase::Election { .. }));
        if collecting {
            self.abort(node, EventKind::AbortNotElected, now);
        }
    }

    /// Whether this node leads a failover of the master past its election.
    #[must_use]
    pub fn leading_past_election(&self) -> bool {
        self.failover.as_ref().is_some_and(|f| !matches!(f.phase, Phase::Election { .. }))
    }

    pub(crate) fn abort(&mut self, node: &mut Node, kind: EventKind, now: Instant) {
        node.emit_about(kind, self.master_subject());
        self.release_old_master(node, now);
        self.failover = None;
        let backoff = self.timing.election_timeout + node.jitter(self.timing.election_timeout);
        self.next_attempt_at = now + backoff.min(self.timing.failover_timeout);
    }

    /// Follows the failover's progress in an INFO reply from `addr`.
    pub fn on_failover_info(&mut self, node: &mut Node, addr: &Addr, now: Instant) {
        let Some(failover) = &self.failover else { return };
        match &failover.phase {
            Phase::WaitPromotion { replica, .. } if replica == addr => {
                let promoted = self
                    .instances
                    .get(addr)
                    .is_some_and(|i| matches!(i.reported_role(), Some(ReportedRole::Master)));
                if promoted {
                    self.on_promoted(node, addr.clone(), failover.epoch, now);
                }
            }
            Phase::Drain { .. } => self.on_drain_info(addr, now),
            Phase::Reconfigure { .. } => self.on_reconf_info(node, addr, now),
            _ => {}
        }
    }

    /// The chosen replica reports `role:master`: make it the group's master under the failover
    /// epoch (durably, before anything announces it) and start repointing the others.
    fn on_promoted(&mut self, node: &mut Node, replica: Addr, epoch: u64, now: Instant) {
        let old_master = self.replace_master(replica.clone());
        self.config_epoch = epoch;
        node.out.mark_urgent();
        node.lazy_dirty = true;
        self.pause_new_master(node, now);
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
        self.on_promotion_seen(node, now);
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
        if let Some(failover) = &mut self.failover {
            failover.fence.detached.entry(addr.clone()).or_insert(now);
        }
        self.state_fence_window(node, false);
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
        // Enough replicas leave the old master at once for its lease to lapse, whatever
        // parallel_syncs says: a replica that follows the new master resynchronises partially.
        let limit = limit.max(self.detach_needed(&replicas));
        let mut in_flight = replicas
            .values()
            .filter(|r| matches!(r, Reconf::Sent(_) | Reconf::InProgress(_)))
            .count();
        let master = self.master.clone();
        // With fencing, the old master goes first and whatever the limit: it is the one that
        // may still accept writes.
        let fencing = self.settings.fencing != Fencing::Off;
        let mut order: Vec<Addr> = replicas.keys().cloned().collect();
        order.sort_by_key(|addr| !(fencing && *addr == old_master));
        for addr in &order {
            let Some(state) = replicas.get_mut(addr) else { continue };
            let first = fencing && *addr == old_master;
            if in_flight >= limit && !first {
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
            self.finish(node, &old_master, now);
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
            self.finish(node, &old_master, now);
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

    /// Sentinel's `update_config`: `+failover-end`, then the switch announcement. In strict
    /// mode, first the wait until the old master surely refuses writes.
    fn finish(&mut self, node: &mut Node, old_master: &Addr, now: Instant) {
        self.state_fence_window(node, true);
        if self.holds_strict_pause() {
            node.emit_about(EventKind::StateWaitFence, self.master_subject());
            self.set_phase(Phase::Release { old_master: old_master.clone() }, now);
            self.step_release(node, now);
            return;
        }
        self.end(node, old_master, now);
    }

    /// The end of a failover.
    pub(crate) fn end(&mut self, node: &mut Node, old_master: &Addr, now: Instant) {
        node.emit_about(
            EventKind::FailoverEnd,
            Subject::Master { name: self.settings.name.clone(), addr: old_master.clone() },
        );
        self.failover = None;
        self.after_switch(node, old_master, now);
    }
}
