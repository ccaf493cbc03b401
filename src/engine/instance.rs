//! Monitoring one Redis instance: its link, PINGs, INFO requests and the SDOWN clock.
//!
//! An instance does not know whether it is its group's master; the group tells it what period to
//! use and decides what its replies mean. This module owns only the mechanics that are the same
//! for every instance.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::addr::Addr;
use crate::engine::fence::Lease;
use crate::engine::ids::{LinkId, RequestId};
use crate::engine::io::{LinkFailure, Output, RedisCommand, Reply};
use crate::engine::node::Node;
use crate::engine::report::InfoReport;
use crate::engine::settings::MasterSettings;
use crate::engine::time::Instant;
use crate::engine::timing::{MAX_PENDING_REQUESTS, MasterTiming, RECONNECT_MIN, SETTLING_PONGS};

/// The state of the connection to an instance.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum LinkState {
    /// Not connected; the next attempt is due at `retry_at`.
    Down {
        /// When to try again.
        retry_at: Instant,
        /// Consecutive failed attempts, for the backoff.
        failures: u32,
    },
    /// Connecting (and authenticating).
    Connecting {
        /// The attempt.
        id: LinkId,
        /// Failed attempts before this one.
        failures: u32,
    },
    /// Connected.
    Up {
        /// The connection.
        id: LinkId,
        /// Since when.
        since: Instant,
    },
}

/// A run of connection attempts the instance's host refused, with nothing else in between: the
/// evidence of the crash rule.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Refusals {
    /// The first refusal (or reset) of the run.
    pub first: Instant,
    /// The latest.
    pub last: Instant,
}

/// What a request was, so its reply can be interpreted.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum RequestKind {
    /// `PING`.
    Ping,
    /// `INFO`.
    Info,
    /// A promotion or repointing transaction.
    Reconfigure,
    /// `CONFIG GET` of the lease.
    ReadLease,
    /// A pause (this long) and disconnection of the instance's clients before a promotion.
    Fence(Duration),
    /// A pause of the instance's writes, this long.
    Pause(Duration),
    /// Releasing writes.
    Admin,
    /// A command that changes the lease: setting it, or a promotion that sets its own.
    LeaseChange,
}

/// What a reply means once the instance has digested it; the group acts on the INFO case.
#[derive(Debug)]
pub enum Digest {
    /// Nothing for the group to do.
    Nothing,
    /// A `PONG` from an instance neither down nor seen restarting: it only moves reply clocks,
    /// so unless the PING was late or the group is failing over, nothing in the group changes
    /// (see [`crate::engine::group::Group::routine_reply`]).
    Pong,
    /// A fresh INFO report to process.
    Info(Box<InfoReport>),
    /// The instance paused its writes and disconnected its clients (a [`RedisCommand::Fence`]
    /// succeeded).
    Fenced,
}

/// One monitored Redis instance.
#[derive(Debug)]
pub struct Instance {
    /// Its address, as configured or as its master reported it.
    pub addr: Addr,
    /// The connection.
    pub link: LinkState,
    /// The IP its host name resolved to on the current connection.
    pub resolved: Option<String>,
    /// Requests awaiting replies on the current connection.
    pub pending: BTreeMap<RequestId, (RequestKind, Instant)>,
    /// Last acceptable PING reply (`PONG`, `LOADING`, `MASTERDOWN`); monitoring start before any.
    pub last_ok_reply_at: Instant,
    /// When the oldest probe still without an acceptable answer was made: the first PING sent
    /// (or connection attempt started) since the last acceptable reply. The silence rule counts
    /// from here, not from the reply: the idle time between a reply and the next PING is not
    /// silence, so an instance busy for less than `down_after` is never down, whenever in the
    /// ping period its stall began. `None` while nothing has been asked since the last reply.
    pub unanswered_since: Option<Instant>,
    /// Last reply of any kind.
    pub last_reply_at: Option<Instant>,
    /// When the PING in flight was sent, if one is.
    pub ping_in_flight_since: Option<Instant>,
    /// When the last PING was sent.
    pub last_ping_at: Option<Instant>,
    /// Round trip of the last answered PING.
    pub ping_rtt: Option<Duration>,
    /// `PONG`s in a row that came within a fast ping period of their PING, on the current link,
    /// since the instance last changed role or was seen restarting, or this node stalled
    /// (saturating). From [`SETTLING_PONGS`] on, the instance is [`Self::settled`].
    pub prompt_pongs: u8,
    /// When the last INFO was requested.
    pub last_info_request_at: Option<Instant>,
    /// Whether an INFO is in flight.
    pub info_in_flight: bool,
    /// The last INFO report.
    pub info: Option<InfoReport>,
    /// When it arrived.
    pub info_at: Option<Instant>,
    /// When it was asked for.
    pub info_asked_at: Option<Instant>,
    /// The `replica-priority` it last reported. Redis prints it only while the instance is a
    /// replica, so a replica promoted since keeps the value it had (as Sentinel keeps it).
    pub replica_priority: Option<u32>,
    /// The lease it last said it runs under (`CONFIG GET`), if it was asked.
    pub lease: Option<Lease>,
    /// When [`Self::lease`] was last read from the instance.
    pub lease_read_at: Option<Instant>,
    /// The weakest lease peers reported setting on it when it stopped being this node's master,
    /// until it reports being a replica: a lease change another node sent may land long after
    /// this node's last reading (held by a partition, TCP delivers it when it heals).
    pub peer_lease: Option<Lease>,
    /// When the lease was last set on it, or its writes paused, by this node.
    pub fence_sent_at: Option<Instant>,
    /// When the reported role last changed (or was first seen).
    pub role_reported_at: Option<Instant>,
    /// Since when it reports its current role and master (the first INFO that showed them):
    /// a replica that follows another master stopped acknowledging the one before by then.
    pub followed_since: Option<Instant>,
    /// When this node adopted it as the master of a configuration another node promoted it in:
    /// an INFO older than that shows the role it had before its promotion.
    pub promoted_elsewhere_at: Option<Instant>,
    /// Until when its writes are surely paused: the send time plus the length of the last pause
    /// it acknowledged (Redis keeps the longer of two pauses). Cleared when this node lifts its
    /// pauses (`CLIENT UNPAUSE`, a promotion) and when it is seen restarted.
    pub paused_until: Option<Instant>,
    /// Since when the instance is subjectively down.
    pub sdown_since: Option<Instant>,
    /// The refusals since the link last came up or failed otherwise, if the last attempt was
    /// refused.
    pub refusals: Option<Refusals>,
    /// When a master was seen restarting (new run id), until its first `PONG`.
    pub rebooted_at: Option<Instant>,
    /// Since when the instance reports a role or master other than its group expects.
    pub misconfigured_since: Option<Instant>,
    /// When the engine last sent it a corrective `REPLICAOF`.
    pub last_corrected_at: Option<Instant>,
}

impl Instance {
    /// A newly monitored instance: not connected, first attempt due now; its SDOWN clock starts
    /// now, as if it had just answered.
    #[must_use]
    pub fn new(addr: Addr, now: Instant) -> Self {
        Self {
            addr,
            link: LinkState::Down { retry_at: now, failures: 0 },
            resolved: None,
            pending: BTreeMap::new(),
            last_ok_reply_at: now,
            unanswered_since: None,
            last_reply_at: None,
            ping_in_flight_since: None,
            last_ping_at: None,
            ping_rtt: None,
            prompt_pongs: 0,
            last_info_request_at: None,
            info_in_flight: false,
            info: None,
            info_at: None,
            info_asked_at: None,
            replica_priority: None,
            lease: None,
            lease_read_at: None,
            peer_lease: None,
            fence_sent_at: None,
            role_reported_at: None,
            followed_since: None,
            promoted_elsewhere_at: None,
            paused_until: None,
            sdown_since: None,
            refusals: None,
            rebooted_at: None,
            misconfigured_since: None,
            last_corrected_at: None,
        }
    }

    /// The connected link, if any.
    #[must_use]
    pub const fn up_link(&self) -> Option<LinkId> {
        match self.link {
            LinkState::Up { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether `link` is this instance's current connection or connection attempt.
    #[must_use]
    pub fn owns_link(&self, link: LinkId) -> bool {
        matches!(self.link, LinkState::Up { id, .. } | LinkState::Connecting { id, .. } if id == link)
    }

    /// Whether `addr` (as some instance reported it) designates this instance: same host and
    /// port, or same port and the IP its name resolved to.
    #[must_use]
    pub fn is_at(&self, addr: &Addr) -> bool {
        self.addr == *addr
            || (self.addr.port() == addr.port()
                && self.resolved.as_deref().is_some_and(|ip| ip == addr.host()))
    }

    /// Opens a connection if one is due, registering it as belonging to group `group`, with the
    /// credentials and TLS profile of the group's `settings`.
    pub fn poll_connect(
        &mut self,
        node: &mut Node,
        now: Instant,
        timing: &MasterTiming,
        settings: &MasterSettings,
        group: usize,
    ) {
        let LinkState::Down { retry_at, failures } = self.link else { return };
        if now < retry_at {
            return;
        }
        let id = node.link_id();
        self.link = LinkState::Connecting { id, failures };
        self.unanswered_since.get_or_insert(now);
        node.links.insert(id, (group, self.addr.clone()));
        node.out.push(Output::Connect {
            link: id,
            addr: self.addr.clone(),
            auth: settings.auth.clone(),
            tls: settings.tls.clone(),
            client_name: format!("picket-{}", node.id.short()),
            timeout: timing.connect_timeout,
        });
    }

    /// The connection attempt `link` succeeded.
    pub fn link_up(&mut self, link: LinkId, resolved: Option<String>, now: Instant) {
        if matches!(self.link, LinkState::Connecting { id, .. } if id == link) {
            self.link = LinkState::Up { id: link, since: now };
            self.refusals = None;
            self.resolved = resolved;
            self.pending.clear();
            self.ping_in_flight_since = None;
            self.info_in_flight = false;
            self.prompt_pongs = 0;
            // Probe at once: a reconnected instance may have restarted or changed role.
            self.last_ping_at = None;
            self.last_info_request_at = None;
        }
    }

    /// The connection `link` failed or broke: schedule a reconnect with bounded backoff. A
    /// refusal extends the run of refusals (or starts one); any other failure ends it.
    pub fn link_down(
        &mut self,
        node: &mut Node,
        link: LinkId,
        failure: LinkFailure,
        now: Instant,
        timing: &MasterTiming,
    ) {
        let failures = match self.link {
            LinkState::Connecting { id, failures } if id == link => failures + 1,
            LinkState::Up { id, .. } if id == link => 0,
            _ => return,
        };
        let refusals = match failure {
            LinkFailure::Refused => {
                Some(Refusals { first: self.refusals.map_or(now, |r| r.first), last: now })
            }
            LinkFailure::Other => None,
        };
        self.drop_link(node, now, failures, refusals, timing);
    }

    /// Forgets the current connection (closing it is the caller's business), records the run of
    /// refusals it leaves, and schedules the next attempt: at once after a working link broke,
    /// with doubling backoff after failed attempts, never longer than the ping period, nor than
    /// [`MasterTiming::refused_retry_max`] while a run of refusals has yet to reach the crash
    /// rule's threshold (once it has, the instance is down and a dead host costs no more
    /// attempts than before the rule).
    fn drop_link(
        &mut self,
        node: &mut Node,
        now: Instant,
        failures: u32,
        refusals: Option<Refusals>,
        timing: &MasterTiming,
    ) {
        if let LinkState::Up { id, .. } | LinkState::Connecting { id, .. } = self.link {
            node.links.remove(&id);
        }
        let counting = refusals.is_some() && !spans_threshold(refusals, timing);
        let longest = if counting { timing.refused_retry_max() } else { timing.reconnect_max() };
        let exponent = failures.saturating_sub(1).min(16);
        let backoff = (RECONNECT_MIN * 2u32.saturating_pow(exponent)).min(longest);
        let delay = if failures == 0 { Duration::ZERO } else { backoff };
        let delay = match threshold_passed_at(refusals, timing) {
            Some(at) if counting => delay.min(at.saturating_since(now)),
            _ => delay,
        };
        self.refusals = refusals;
        self.link = LinkState::Down { retry_at: now + delay, failures };
        self.pending.clear();
        self.ping_in_flight_since = None;
        self.info_in_flight = false;
        self.prompt_pongs = 0;
    }

    /// Closes the current connection or attempt (if any) at once; the next attempt is due now.
    pub fn close(&mut self, node: &mut Node, now: Instant, timing: &MasterTiming) {
        if let LinkState::Up { id, .. } | LinkState::Connecting { id, .. } = self.link {
            node.out.push(Output::Disconnect { link: id });
            self.drop_link(node, now, 0, None, timing);
        }
    }

    /// Sends a command on the connected link; returns false if there is none.
    pub fn send(&mut self, node: &mut Node, now: Instant, command: RedisCommand) -> bool {
        let Some(link) = self.up_link() else { return false };
        let kind = match command {
            RedisCommand::Ping => RequestKind::Ping,
            RedisCommand::Info => RequestKind::Info,
            RedisCommand::SetLease(_) | RedisCommand::Promote { lease: Some(_), .. } => {
                RequestKind::LeaseChange
            }
            RedisCommand::Promote { .. } | RedisCommand::ReplicaOf { .. } => {
                RequestKind::Reconfigure
            }
            RedisCommand::ReadLease => RequestKind::ReadLease,
            RedisCommand::Fence { pause } => RequestKind::Fence(pause),
            RedisCommand::PauseWrites { pause } => RequestKind::Pause(pause),
            RedisCommand::UnpauseWrites => RequestKind::Admin,
        };
        if matches!(command, RedisCommand::UnpauseWrites | RedisCommand::Promote { .. }) {
            // A promotion either lifts every pause or sets its own, which the new master's
            // holder tracks.
            self.paused_until = None;
        }
        if kind == RequestKind::LeaseChange {
            // The lease it runs under is unknown until read back: the old reading must not
            // stand for it (it would hide a lease lowered by a promotion from its raise, and
            // from the fence window of the next failover).
            self.lease = None;
        }
        let request = node.request_id();
        self.pending.insert(request, (kind, now));
        match kind {
            RequestKind::Ping => {
                self.ping_in_flight_since = Some(now);
                self.last_ping_at = Some(now);
                self.unanswered_since.get_or_insert(now);
            }
            RequestKind::Info => {
                self.info_in_flight = true;
                self.last_info_request_at = Some(now);
            }
            RequestKind::Reconfigure
            | RequestKind::ReadLease
            | RequestKind::Fence(_)
            | RequestKind::Pause(_)
            | RequestKind::Admin
            | RequestKind::LeaseChange => {}
        }
        node.out.push(Output::Send { link, request, command });
        true
    }

    /// Sends PING and INFO when due (at the ping and INFO periods the group wants), and closes a
    /// link whose PING has hung too long.
    pub fn poll_probes(
        &mut self,
        node: &mut Node,
        now: Instant,
        timing: &MasterTiming,
        ping_period: Duration,
        info_period: Duration,
    ) {
        let Some(link) = self.up_link() else { return };
        if self
            .ping_in_flight_since
            .is_some_and(|t| now.saturating_since(t) >= timing.link_watchdog)
        {
            node.out.push(Output::Disconnect { link });
            self.drop_link(node, now, 0, None, timing);
            return;
        }
        if self.pending.len() >= MAX_PENDING_REQUESTS {
            return;
        }
        if self.ping_due_at(ping_period).is_some_and(|at| at <= now) {
            self.send(node, now, RedisCommand::Ping);
        }
        if self.info_due_at(info_period).is_some_and(|at| at <= now) {
            self.send(node, now, RedisCommand::Info);
        }
    }

    /// When the next PING is due at `period`, if none is in flight.
    #[must_use]
    pub fn ping_due_at(&self, period: Duration) -> Option<Instant> {
        if self.ping_in_flight_since.is_some() {
            return None;
        }
        Some(self.last_ping_at.map_or(Instant::ZERO, |t| t + period))
    }

    /// Whether nothing about the instance itself is uncertain: it answered the last
    /// [`SETTLING_PONGS`] PINGs on its current link promptly (none late, refused or answered
    /// otherwise; none since a role change or restart it showed), and it is neither down nor
    /// seen restarting. Its group may then ping it at the calm period.
    #[must_use]
    pub fn settled(&self) -> bool {
        self.prompt_pongs >= SETTLING_PONGS
            && self.sdown_since.is_none()
            && self.rebooted_at.is_none()
    }

    /// Something about the instance changed (its role, its run id): it is pinged at the fast
    /// period again until it has answered promptly [`SETTLING_PONGS`] times.
    pub fn unsettle(&mut self) {
        self.prompt_pongs = 0;
    }

    fn info_due_at(&self, info_period: Duration) -> Option<Instant> {
        if self.info_in_flight {
            return None;
        }
        Some(self.last_info_request_at.map_or(Instant::ZERO, |t| t + info_period))
    }

    /// Digests a reply on `link`. Returns `None` if it is not for the current connection.
    pub fn take_reply(
        &mut self,
        link: LinkId,
        request: RequestId,
        reply: Reply,
        now: Instant,
        timing: &MasterTiming,
    ) -> Option<Digest> {
        if self.up_link() != Some(link) {
            return None;
        }
        let (kind, sent_at) = self.pending.remove(&request)?;
        self.last_reply_at = Some(now);
        Some(match (kind, reply) {
            (RequestKind::Ping, reply) => {
                let routine = reply == Reply::Pong
                    && self.sdown_since.is_none()
                    && self.rebooted_at.is_none();
                self.ping_in_flight_since = None;
                let rtt = now.saturating_since(sent_at);
                self.ping_rtt = Some(rtt);
                // Only a `PONG` within a fast period counts towards settling: a late one, or
                // `LOADING`/`MASTERDOWN` (alive but not serving), starts the count again.
                self.prompt_pongs = if reply == Reply::Pong && rtt <= timing.ping_period {
                    self.prompt_pongs.saturating_add(1)
                } else {
                    0
                };
                if is_acceptable_ping_reply(&reply) {
                    self.last_ok_reply_at = now;
                    self.unanswered_since = None;
                }
                if reply == Reply::Pong {
                    self.rebooted_at = None;
                }
                if routine { Digest::Pong } else { Digest::Nothing }
            }
            (RequestKind::Info, Reply::Info(report)) => {
                self.info_in_flight = false;
                self.info_asked_at = Some(sent_at);
                Digest::Info(report)
            }
            (RequestKind::Info, _) => {
                self.info_in_flight = false;
                Digest::Nothing
            }
            (RequestKind::ReadLease, Reply::Lease(lease)) => {
                // A change still unanswered may not have run yet (a promotion's transaction
                // can wait behind a slow `CONFIG REWRITE`, or be retried): the reading would
                // stand for a lease about to change (simulator seed 8802575 stated a fence
                // window from the lease a delayed promotion then lowered). It is read again.
                if !self.pending.values().any(|(k, _)| *k == RequestKind::LeaseChange) {
                    self.lease = Some(lease);
                    self.lease_read_at = Some(now);
                }
                Digest::Nothing
            }
            (RequestKind::Fence(pause), Reply::Done) => {
                self.note_paused(sent_at + pause);
                Digest::Fenced
            }
            (RequestKind::Pause(pause), Reply::Done) => {
                self.note_paused(sent_at + pause);
                Digest::Nothing
            }
            (
                RequestKind::Reconfigure
                | RequestKind::ReadLease
                | RequestKind::Fence(_)
                | RequestKind::Pause(_)
                | RequestKind::Admin
                | RequestKind::LeaseChange,
                _,
            ) => Digest::Nothing,
        })
    }

    /// It acknowledged a pause that lasts until `until` at the earliest.
    fn note_paused(&mut self, until: Instant) {
        self.paused_until = Some(self.paused_until.map_or(until, |u| u.max(until)));
    }

    /// The earliest instant after `now` at which monitoring this instance has something to do,
    /// given the ping and INFO periods the group wants. SDOWN deadlines are included so detection
    /// is exact. Deadlines at or before `now` are left out (what is due then waits on a reply or a link),
    /// each on its own: one of them must not hide a later one (a probe held back by the cap on
    /// requests in flight must not hide the SDOWN deadline).
    #[must_use]
    pub fn next_deadline(
        &self,
        timing: &MasterTiming,
        ping_period: Duration,
        info_period: Duration,
        now: Instant,
    ) -> Option<Instant> {
        let sdown = self.sdown_since.is_none().then(|| self.sdown_deadline(timing)).flatten();
        let link = match self.link {
            LinkState::Down { retry_at, .. } => Some(retry_at),
            LinkState::Connecting { .. } => None,
            LinkState::Up { .. } => {
                let watchdog = self.ping_in_flight_since.map(|t| t + timing.link_watchdog);
                [self.ping_due_at(ping_period), self.info_due_at(info_period), watchdog]
                    .into_iter()
                    .flatten()
                    .filter(|at| *at > now)
                    .min()
            }
        };
        [sdown, link].into_iter().flatten().filter(|at| *at > now).min()
    }

    /// The process stalled for `gap` until `now`: its silence clocks skip the gap (it was not
    /// listening), and a fresh INFO is due at once (replies already on their way answer
    /// requests made before the stall).
    pub fn on_stall(&mut self, now: Instant, gap: Duration) {
        self.last_ok_reply_at = (self.last_ok_reply_at + gap).min(now);
        self.unanswered_since = self.unanswered_since.map(|at| (at + gap).min(now));
        self.ping_in_flight_since = self.ping_in_flight_since.map(|at| (at + gap).min(now));
        self.info_in_flight = false;
        self.last_info_request_at = None;
        // Replies the stall delayed would look late; whatever the instance did meanwhile is
        // unknown: ping at the fast period until it has answered promptly again.
        self.prompt_pongs = 0;
    }

    /// Whether what the node knows of the instance was read after `since`: an INFO asked after
    /// it has been answered. An instance without a connection has nothing to read.
    #[must_use]
    pub fn informed_since(&self, since: Instant) -> bool {
        self.up_link().is_none() || self.info_asked_at.is_some_and(|at| at >= since)
    }

    /// Whether the instance may be failing: its link is not up, or its PING is late (unanswered
    /// for longer than a ping period). Its group then polls its replicas' INFO faster, so that
    /// their offsets are current if it is declared down.
    #[must_use]
    pub fn suspect(&self, now: Instant, timing: &MasterTiming) -> bool {
        self.up_link().is_none() || self.late_at(timing).is_some_and(|at| now >= at)
    }

    /// When the PING in flight becomes late, if one is in flight.
    #[must_use]
    pub fn late_at(&self, timing: &MasterTiming) -> Option<Instant> {
        self.ping_in_flight_since.map(|sent| sent + timing.ping_period + Duration::from_millis(1))
    }

    /// When the instance becomes subjectively down if no acceptable reply arrives: strictly
    /// more than `down_after` after the oldest probe still unanswered (as Sentinel counts from
    /// its oldest unanswered PING); none while nothing is unanswered.
    #[must_use]
    pub fn sdown_deadline(&self, timing: &MasterTiming) -> Option<Instant> {
        self.unanswered_since.map(|at| at + timing.down_after + Duration::from_millis(1))
    }

    /// Whether every connection attempt has been refused for longer than `down_after_refused`
    /// (the crash rule): the instance's port has had no process behind it all that time. It
    /// becomes true only as a refusal arrives, and stays so until an attempt ends otherwise.
    #[must_use]
    pub fn refused_too_long(&self, timing: &MasterTiming) -> bool {
        spans_threshold(self.refusals, timing)
    }

    /// Whether a probe has waited for an acceptable answer for longer than `down_after`.
    #[must_use]
    pub fn unresponsive(&self, now: Instant, timing: &MasterTiming) -> bool {
        self.sdown_deadline(timing).is_some_and(|at| now >= at)
    }

    /// The replication offset in the last INFO: a replica's processed offset, or a master's own.
    #[must_use]
    pub fn replication_offset(&self) -> Option<u64> {
        let info = self.info.as_ref()?;
        Some(match &info.role {
            crate::engine::report::ReportedRole::Replica(link) => link.repl_offset,
            crate::engine::report::ReportedRole::Master => info.master_repl_offset,
        })
    }

    /// Whether its last INFO predates its promotion by another node: the role it shows is not
    /// the one it has had since.
    #[must_use]
    pub fn role_predates_promotion(&self) -> bool {
        self.promoted_elsewhere_at.is_some_and(|at| self.info_at.is_none_or(|info| info < at))
    }

    /// The role reported in the last INFO, if any.
    #[must_use]
    pub fn reported_role(&self) -> Option<&crate::engine::report::ReportedRole> {
        self.info.as_ref().map(|i| &i.role)
    }
}

/// When a run of refusals that began at its first will have outlasted the crash rule's
/// threshold: an attempt refused then is the rule's evidence, so one is made then rather than at
/// the next backoff step, which would see a crash up to [`MasterTiming::refused_retry_max`] later.
fn threshold_passed_at(refusals: Option<Refusals>, timing: &MasterTiming) -> Option<Instant> {
    let (limit, run) = timing.down_after_refused.zip(refusals)?;
    Some(run.first + limit + Duration::from_millis(1))
}

/// Whether a run of refusals lasts longer than the crash rule's threshold (never, with it off).
fn spans_threshold(refusals: Option<Refusals>, timing: &MasterTiming) -> bool {
    timing
        .down_after_refused
        .zip(refusals)
        .is_some_and(|(limit, r)| r.last.saturating_since(r.first) > limit)
}

/// `PONG`, `LOADING` and `MASTERDOWN` mean the instance is alive (Sentinel's rule); anything
/// else, `NOAUTH` included, does not.
#[must_use]
pub fn is_acceptable_ping_reply(reply: &Reply) -> bool {
    match reply {
        Reply::Pong => true,
        Reply::Error(text) => text.starts_with("LOADING") || text.starts_with("MASTERDOWN"),
        Reply::Info(_) | Reply::Done | Reply::Lease(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::engine::ids::NodeId;
    use crate::engine::settings::{MasterSettings, NodeSettings};

    fn setup() -> (Node, Instance, MasterTiming, MasterSettings) {
        let a: Addr = "127.0.0.1:6379".parse().unwrap();
        let node = Node::new(
            NodeId::from_bytes([7; 20]),
            NodeSettings::new(a.clone(), a.clone(), Vec::new()),
            rand_chacha::ChaCha8Rng::seed_from_u64(1),
        );
        let mut m = MasterSettings::new("m", a.clone(), 1);
        m.down_after = Duration::from_millis(1000);
        (node, Instance::new(a.clone(), Instant::ZERO), MasterTiming::of(&m), m)
    }

    fn drain(node: &mut Node) -> Vec<Output> {
        std::iter::from_fn(|| node.out.pop()).collect()
    }

    #[test]
    fn connects_then_pings_and_requests_info_at_once() {
        let (mut node, mut i, t, mut m) = setup();
        // The link carries its group's TLS profile (the shell picks certificates by it).
        m.tls = Some(crate::engine::settings::TlsProfile("m".to_owned()));
        let now = Instant::from_millis(5);
        i.poll_connect(&mut node, now, &t, &m, 0);
        let out = drain(&mut node);
        assert!(
            matches!(&out[..], [Output::Connect { link: LinkId(1), client_name, tls: Some(p), .. }]
            if client_name == "picket-07070707" && p.0 == "m")
        );
        i.link_up(LinkId(1), Some("127.0.0.1".into()), now);
        i.poll_probes(&mut node, now, &t, t.ping_period, Duration::from_secs(10));
        let out = drain(&mut node);
        assert_eq!(
            out,
            vec![
                Output::Send {
                    link: LinkId(1),
                    request: RequestId(1),
                    command: RedisCommand::Ping
                },
                Output::Send {
                    link: LinkId(1),
                    request: RequestId(2),
                    command: RedisCommand::Info
                },
            ]
        );
        // Nothing more until the ping is answered and a period has passed, or it has waited a
        // second (the link watchdog, then SDOWN 1 ms later).
        assert_eq!(
            i.next_deadline(&t, t.ping_period, Duration::from_secs(10), now),
            Some(Instant::from_millis(1005))
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_ping_period() {
        let (mut node, mut i, t, m) = setup();
        let mut now = Instant::ZERO;
        let mut delays = Vec::new();
        for _ in 0..5 {
            i.poll_connect(&mut node, now, &t, &m, 0);
            let LinkState::Connecting { id, .. } = i.link else { panic!() };
            i.link_down(&mut node, id, LinkFailure::Other, now, &t);
            let LinkState::Down { retry_at, .. } = i.link else { panic!() };
            delays.push(retry_at.saturating_since(now).as_millis());
            now = retry_at;
        }
        assert_eq!(delays, vec![25, 50, 100, 100, 100]);
    }

    #[test]
    fn a_run_of_refusals_is_ended_by_any_other_outcome() {
        let (mut node, mut i, t, mut m) = setup();
        m.down_after_refused = Some(Duration::from_millis(300));
        let t = MasterTiming { down_after_refused: m.down_after_refused, ..t };
        let attempt = |i: &mut Instance, node: &mut Node, now: u64, failure| {
            let now = Instant::from_millis(now);
            i.poll_connect(node, now, &t, &m, 0);
            let LinkState::Connecting { id, .. } = i.link else { panic!() };
            i.link_down(node, id, failure, now, &t);
        };
        for now in [0, 25, 75, 125, 175, 225, 275] {
            attempt(&mut i, &mut node, now, LinkFailure::Refused);
        }
        assert!(!i.refused_too_long(&t), "275 ms of refusals");
        // An attempt that timed out proves nothing: the run starts again.
        attempt(&mut i, &mut node, 325, LinkFailure::Other);
        assert_eq!(i.refusals, None);
        // Then the ping period's backoff (100 ms) until the next refusal.
        for now in [425, 475, 525, 575, 625, 675, 725] {
            attempt(&mut i, &mut node, now, LinkFailure::Refused);
        }
        assert!(!i.refused_too_long(&t), "exactly 300 ms of refusals");
        attempt(&mut i, &mut node, 775, LinkFailure::Refused);
        assert!(i.refused_too_long(&t));
        // Past the threshold, attempts fall back to the ping period; a link that comes up ends
        // the run too.
        assert_eq!(i.link, LinkState::Down { retry_at: Instant::from_millis(875), failures: 16 });
        i.poll_connect(&mut node, Instant::from_millis(875), &t, &m, 0);
        let LinkState::Connecting { id, .. } = i.link else { panic!() };
        i.link_up(id, None, Instant::from_millis(875));
        assert!(!i.refused_too_long(&t));
    }

    #[test]
    fn refused_attempts_back_off_to_fifty_ms_at_most() {
        let (mut node, mut i, t, _) = setup();
        let m = MasterSettings::new("m", i.addr.clone(), 1);
        let t = MasterTiming { down_after_refused: m.down_after_refused, ..t };
        let mut now = Instant::ZERO;
        let mut delays = Vec::new();
        for _ in 0..5 {
            i.poll_connect(&mut node, now, &t, &m, 0);
            let LinkState::Connecting { id, .. } = i.link else { panic!() };
            i.link_down(&mut node, id, LinkFailure::Refused, now, &t);
            let LinkState::Down { retry_at, .. } = i.link else { panic!() };
            delays.push(retry_at.saturating_since(now).as_millis());
            now = retry_at;
        }
        assert_eq!(delays, vec![25, 50, 50, 50, 50]);
    }

    #[test]
    fn an_attempt_lands_just_past_the_crash_threshold() {
        let (mut node, mut i, t, _) = setup();
        let m = MasterSettings::new("m", i.addr.clone(), 1);
        let t = MasterTiming { down_after_refused: m.down_after_refused, ..t };
        assert_eq!(m.down_after_refused, Some(Duration::from_millis(300)));
        let mut now = Instant::ZERO;
        let mut attempts = Vec::new();
        while !i.refused_too_long(&t) {
            i.poll_connect(&mut node, now, &t, &m, 0);
            let LinkState::Connecting { id, .. } = i.link else { panic!() };
            i.link_down(&mut node, id, LinkFailure::Refused, now, &t);
            attempts.push(now.as_millis());
            let LinkState::Down { retry_at, .. } = i.link else { panic!() };
            now = retry_at;
        }
        // The backoff's own step would have been 325 ms: a crash would show 24 ms later.
        assert_eq!(attempts, vec![0, 25, 75, 125, 175, 225, 275, 301]);
    }

    #[test]
    fn only_pong_loading_and_masterdown_keep_an_instance_up() {
        assert!(is_acceptable_ping_reply(&Reply::Pong));
        assert!(is_acceptable_ping_reply(&Reply::Error("LOADING Redis is loading".into())));
        assert!(is_acceptable_ping_reply(&Reply::Error("MASTERDOWN Link down".into())));
        assert!(!is_acceptable_ping_reply(&Reply::Error("NOAUTH Authentication required.".into())));
        assert!(!is_acceptable_ping_reply(&Reply::Error("BUSY script".into())));
    }

    #[test]
    fn a_lease_read_while_a_change_is_unanswered_is_not_taken() {
        use crate::engine::fence::Lease;
        let (mut node, mut i, t, m) = setup();
        let now = Instant::from_millis(5);
        i.poll_connect(&mut node, now, &t, &m, 0);
        i.link_up(LinkId(1), None, now);
        let request_of = |i: &Instance, kind: RequestKind| {
            *i.pending.iter().find(|(_, (k, _))| *k == kind).expect("pending").0
        };
        i.send(&mut node, now, RedisCommand::SetLease(Lease::majority_of(0)));
        let change = request_of(&i, RequestKind::LeaseChange);
        i.send(&mut node, now, RedisCommand::ReadLease);
        let early = request_of(&i, RequestKind::ReadLease);
        // The reading comes back first (the change waits behind a slow CONFIG REWRITE, say): it
        // may show the lease from before the change.
        i.take_reply(LinkId(1), early, Reply::Lease(Lease::majority_of(2)), now, &t);
        assert_eq!(i.lease, None);
        i.take_reply(LinkId(1), change, Reply::Done, now, &t);
        i.send(&mut node, now, RedisCommand::ReadLease);
        let late = request_of(&i, RequestKind::ReadLease);
        i.take_reply(LinkId(1), late, Reply::Lease(Lease::majority_of(0)), now, &t);
        assert_eq!(i.lease, Some(Lease::majority_of(0)));
    }

    #[test]
    fn a_lease_sent_is_unknown_until_read_back() {
        use crate::engine::fence::Lease;
        use crate::engine::io::PromotedWrites;
        let (mut node, mut i, t, m) = setup();
        let now = Instant::from_millis(5);
        i.poll_connect(&mut node, now, &t, &m, 0);
        i.link_up(LinkId(1), None, now);
        let read = Lease::majority_of(1);
        // A promotion lowers the lease (no replica was up): the old reading must not stand.
        i.lease = Some(read);
        i.send(
            &mut node,
            now,
            RedisCommand::Promote {
                lease: Some(Lease::majority_of(0)),
                writes: PromotedWrites::Released,
            },
        );
        assert_eq!(i.lease, None);
        i.lease = Some(read);
        i.send(&mut node, now, RedisCommand::SetLease(Lease::majority_of(2)));
        assert_eq!(i.lease, None);
        // Other commands leave the reading alone.
        i.lease = Some(read);
        i.send(&mut node, now, RedisCommand::ReplicaOf { master: i.addr.clone() });
        i.send(&mut node, now, RedisCommand::PauseWrites { pause: Duration::from_secs(1) });
        assert_eq!(i.lease, Some(read));
    }

    #[test]
    fn a_stall_is_not_silence_and_asks_for_fresh_info() {
        let (mut node, mut i, t, m) = setup();
        let now = Instant::from_millis(5);
        i.poll_connect(&mut node, now, &t, &m, 0);
        i.link_up(LinkId(1), None, now);
        i.poll_probes(&mut node, now, &t, t.ping_period, Duration::from_secs(10));
        drain(&mut node);
        assert!(!i.informed_since(now));
        // 900 ms of silence before a 500 ms stall: not down (1 s), since 500 ms were not heard.
        let resumed = Instant::from_millis(1405);
        i.on_stall(resumed, Duration::from_millis(500));
        assert!(!i.unresponsive(resumed, &t));
        assert!(i.unresponsive(Instant::from_millis(1506), &t));
        // The INFO in flight was asked before the stall: a fresh one goes out at once, and only
        // its answer counts as read after the stall.
        i.poll_probes(&mut node, resumed, &t, t.ping_period, Duration::from_secs(10));
        let asked: Vec<_> = drain(&mut node)
            .into_iter()
            .filter_map(|o| match o {
                Output::Send { request, command: RedisCommand::Info, .. } => Some(request),
                _ => None,
            })
            .collect();
        assert_eq!(asked.len(), 1);
        let report = Box::new(InfoReport::master("r"));
        i.take_reply(LinkId(1), RequestId(2), Reply::Info(report.clone()), resumed, &t);
        assert!(!i.informed_since(resumed), "the answer to the INFO asked before the stall");
        i.take_reply(LinkId(1), asked[0], Reply::Info(report), resumed, &t);
        assert!(i.informed_since(resumed));
    }
}
