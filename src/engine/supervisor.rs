//! [`Supervisor`]: the engine's one entry point.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::engine::addr::Addr;
use crate::engine::admin::SetOption;
use crate::engine::durable::{DurableState, KnownPeer, SettingChange};
use crate::engine::election::{self, Decision};
use crate::engine::event::{Detail, Event, EventKind};
use crate::engine::glob;
use crate::engine::gossip::{Body, Maintenance, MasterReport, PeerMessage, StateVersion};
use crate::engine::group::{Group, LeaderWatch, Voter};
use crate::engine::ids::{NodeId, PeerId, Ticket};
use crate::engine::io::{
    AdminAnswer, AdminCommand, AdminRefusal, CachedInfo, Input, Output, Reply,
};
use crate::engine::node::Node;
use crate::engine::peers::Peers;
use crate::engine::restore;
use crate::engine::sentinels::{DownAnswer, Hello, HelloOutcome};
use crate::engine::settings::{MasterSettings, Settings};
use crate::engine::time::Instant;
use crate::engine::timers::{Timer, Timers};
use crate::engine::timing::{LAZY_PERSIST_DELAY, REREAD_LIMIT};
use crate::engine::view::{self, MasterView, Stats, View};

/// The deterministic state machine that supervises every configured master.
///
/// # Contract
///
/// * [`Supervisor::handle`] is the only mutator. Every call carries `now`, which must never
///   decrease between calls (a smaller value is treated as a clock fault: TILT).
/// * After every `handle` (and after [`Supervisor::new`]), drain [`Supervisor::poll_output`]
///   and perform the outputs **in order**. [`Output::Persist`] is a barrier: do not perform any
///   later output until the state it carries is durable.
/// * Call `handle(now, Input::Tick)` no later than [`Supervisor::poll_timeout`]. The engine never
///   sleeps and never reads a clock; a simulator may jump straight to that instant.
/// * [`Supervisor::view`] returns a snapshot for readers (the Sentinel port, HTTP, metrics) that
///   they can keep as long as they like.
///
/// Given the same settings, restored state, seed and sequence of `(now, input)`, the outputs are
/// identical: the engine's only randomness is a ChaCha8 generator seeded by the caller.
#[derive(Debug)]
pub struct Supervisor {
    node: Node,
    peers: Peers,
    /// Master groups by a stable index (their timer key); masters added later get new indices.
    groups: BTreeMap<usize, Group>,
    next_group: usize,
    by_name: BTreeMap<String, usize>,
    /// Configured masters removed with `SENTINEL REMOVE` (see [`DurableState::removed`]).
    removed: BTreeMap<String, Addr>,
    timers: Timers,
    last_now: Instant,
    /// Groups to evaluate at the end of the current input.
    touched: BTreeSet<usize>,
    /// Groups whose view snapshot is out of date.
    stale_views: BTreeSet<usize>,
    /// What readers must see at once, per group and for the node, as last published.
    headlines: BTreeMap<usize, Headline>,
    node_headline: (u64, bool, usize),
    /// A headline changed since the last [`Supervisor::view`].
    view_urgent: bool,
    views: BTreeMap<usize, Arc<MasterView>>,
    /// The version of the reports last sent to peers, and the reports themselves.
    gossip_version: StateVersion,
    sent_reports: BTreeMap<String, MasterReport>,
    /// While learning the vote floor: the highest epoch heard from each peer, and when it was
    /// last heard.
    floor_heard: BTreeMap<PeerId, (u64, Instant)>,
    /// While learning the vote floor: from then on, hearing some of the peers is enough (see
    /// [`Supervisor::learn_vote_floor`]).
    floor_listen_from: Instant,
    stats: Stats,
}

impl Supervisor {
    /// Builds the engine from its settings, the state restored from disk (`None` on a first
    /// start), a seed for its RNG, and the current time.
    ///
    /// A first start draws a new node id and persists it before anything else (the first output).
    #[must_use]
    pub fn new(
        settings: Settings,
        restored: Option<DurableState>,
        seed: u64,
        now: Instant,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fresh = restored.is_none();
        let id = restored.as_ref().map_or_else(|| NodeId::random(&mut rng), |s| s.node_id);
        let incarnation = rng.random::<u64>();
        let known = restored.as_ref().map(|s| s.known_peers.clone()).unwrap_or_default();
        let peers = Peers::new(&settings.node.peers, settings.node.peer_timeout, &known);
        let mut node = Node::new(id, settings.node, rng);
        if let Some(state) = &restored {
            node.current_epoch = state.current_epoch;
            node.vote_floor = state.vote_floor;
            node.awaiting_vote_floor = state.awaiting_vote_floor;
        } else {
            node.awaiting_vote_floor = !peers.is_empty();
        }
        let masters = restore::masters(settings.masters, restored.as_ref());
        let groups: BTreeMap<usize, Group> = masters
            .into_iter()
            .enumerate()
            .map(|(index, restored_master)| {
                let restore::Restored { settings, saved, monitored_quorum, changes } =
                    restored_master;
                let mut group = Group::new(index, settings, saved.as_ref(), now);
                group.monitored_quorum = monitored_quorum;
                group.changes = changes;
                (index, group)
            })
            .collect();
        let by_name = groups.values().map(|g| (g.name().to_owned(), g.index)).collect();
        let removed = restored.as_ref().map(|s| s.removed.clone()).unwrap_or_default();
        let mut supervisor = Self {
            node,
            peers,
            by_name,
            removed,
            timers: Timers::default(),
            last_now: now,
            touched: BTreeSet::new(),
            stale_views: groups.keys().copied().collect(),
            headlines: BTreeMap::new(),
            node_headline: (0, false, 0),
            view_urgent: true,
            views: BTreeMap::new(),
            gossip_version: StateVersion { incarnation, seq: 0 },
            sent_reports: BTreeMap::new(),
            floor_heard: BTreeMap::new(),
            floor_listen_from: now,
            stats: Stats::default(),
            next_group: groups.len(),
            groups,
        };
        if supervisor.node.awaiting_vote_floor {
            supervisor.floor_listen_from = now + supervisor.floor_quarantine();
        }
        if fresh || restored.as_ref().is_some_and(|s| supervisor.durable() != *s) {
            supervisor.node.out.mark_urgent();
        }
        supervisor.start(now);
        supervisor
    }

    fn start(&mut self, now: Instant) {
        for group in self.groups.values() {
            self.node.emit(Event {
                kind: EventKind::Monitor,
                subject: Some(group.master_subject()),
                detail: Detail::MonitorQuorum { quorum: group.settings.quorum },
            });
        }
        self.sent_reports =
            self.groups.values().map(|g| (g.name().to_owned(), g.report(&self.node))).collect();
        self.send_full_state(self.peers.ids().collect(), now);
        self.timers.set(Timer::Heartbeat, Some(now + self.node.settings.heartbeat));
        self.touched.extend(self.groups.keys().copied());
        self.finish(now);
    }

    /// This node's id.
    #[must_use]
    pub const fn id(&self) -> NodeId {
        self.node.id
    }

    /// Handles one input at `now`, queueing outputs for [`Self::poll_output`].
    pub fn handle(&mut self, now: Instant, input: Input) {
        let now = self.advance_clock(now);
        match input {
            Input::Tick => {}
            Input::LinkUp { link, resolved } => {
                if let Some((group, addr)) = self.node.links.get(&link).cloned() {
                    if let Some(instance) =
                        self.groups.get_mut(&group).and_then(|g| g.instances.get_mut(&addr))
                    {
                        instance.link_up(link, resolved, now);
                    }
                    self.touched.insert(group);
                }
            }
            Input::LinkDown { link, reason, failure } => {
                if let Some((group, addr)) = self.node.links.get(&link).cloned() {
                    tracing::debug!(%addr, %reason, ?failure, "link down");
                    if let Some(g) = self.groups.get_mut(&group) {
                        let timing = g.timing;
                        if let Some(instance) = g.instances.get_mut(&addr) {
                            instance.link_down(&mut self.node, link, failure, now, &timing);
                        }
                        g.forget_pauses_of(&addr);
                    }
                    self.touched.insert(group);
                }
            }
            Input::Replied { link, request, reply } => self.on_reply(now, link, request, reply),
            Input::Peer(message) => self.on_peer_message(now, message),
            Input::SentinelAnswered { master, sentinel, master_addr, answer } => {
                if let Some(&index) = self.by_name.get(&master)
                    && let Some(group) = self.groups.get_mut(&index)
                {
                    group.on_sentinel_answer(&mut self.node, &sentinel, &master_addr, answer, now);
                    self.touched.insert(index);
                }
            }
            Input::Admin { ticket, command } => self.on_admin(now, ticket, command),
        }
        self.run_timers(now);
        self.poll_reread(now);
        self.finish(now);
    }

    /// The next output to perform, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.node.out.pop()
    }

    /// The instant by which [`Self::handle`] must be called with [`Input::Tick`].
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Whether the view changed since the last call to [`Self::view`].
    #[must_use]
    pub fn view_changed(&self) -> bool {
        !self.stale_views.is_empty()
    }

    /// Whether the view changed in a way readers must see at once: a master's address, config
    /// epoch, health, failover state or replicas, the epoch, TILT, which peers are reachable,
    /// anything an operator's command changed, or anything that emitted an event (a reader who
    /// saw the event must find its cause in the view).
    /// Other changes (reply times, offsets) can wait for the next periodic refresh, which spares
    /// a thousand-master node from republishing on every PING reply.
    #[must_use]
    pub fn view_urgent(&self) -> bool {
        self.view_urgent
    }

    /// A snapshot of everything readers may show. Takes `&mut self` only to refresh the cached
    /// per-master snapshots of masters that changed; no engine state changes.
    pub fn view(&mut self) -> View {
        let now = self.last_now;
        while let Some(index) = self.stale_views.pop_first() {
            match self.groups.get(&index) {
                Some(group) => {
                    self.views.insert(index, Arc::new(view::master(group, &self.peers, now)));
                }
                None => {
                    self.views.remove(&index);
                }
            }
        }
        let views: Vec<Arc<MasterView>> = self.views.values().cloned().collect();
        self.view_urgent = false;
        view::node(&self.node, &self.peers, &views, self.stats, now)
    }

    /// The state to persist now.
    #[must_use]
    pub fn durable(&self) -> DurableState {
        DurableState {
            node_id: self.node.id,
            current_epoch: self.node.current_epoch,
            vote_floor: self.node.vote_floor,
            awaiting_vote_floor: self.node.awaiting_vote_floor,
            masters: self.groups.values().map(|g| (g.name().to_owned(), g.durable())).collect(),
            removed: self.removed.clone(),
            known_peers: self.peers.known(),
        }
    }

    /// What [`Self::durable`] holds for master `name` alone, without building the whole state.
    #[must_use]
    pub fn durable_master(&self, name: &str) -> Option<crate::engine::durable::DurableMaster> {
        self.by_name.get(name).and_then(|i| self.groups.get(i)).map(Group::durable)
    }

    /// Checks the clock: a gap longer than the TILT trigger means the process stalled; time going
    /// backwards means the clock is broken. Both enter TILT. A shorter gap past the stall gap
    /// starts a re-read of the world. Returns the instant to use.
    fn advance_clock(&mut self, now: Instant) -> Instant {
        let trigger = self.node.settings.tilt_trigger;
        let now = if now < self.last_now {
            self.enter_tilt(self.last_now);
            self.last_now
        } else {
            let gap = now.saturating_since(self.last_now);
            if gap > trigger {
                self.enter_tilt(now);
            } else if gap > self.node.settings.stall_gap() {
                self.start_reread(now, gap);
            }
            now
        };
        self.last_now = now;
        now
    }

    fn enter_tilt(&mut self, now: Instant) {
        if self.node.tilt_since.is_none() {
            self.node.tilt_since = Some(now);
            self.node.emit(Event {
                kind: EventKind::Tilt,
                subject: None,
                detail: Detail::Tilt { entered: true },
            });
            self.touched.extend(self.groups.keys().copied());
        }
        // Every further anomaly restarts the period, as in Sentinel.
        self.timers.set(Timer::TiltEnd, Some(now + self.node.settings.tilt_period));
    }

    /// The process did not run for `gap`: what the node knew is stale and the silence it did
    /// not hear proves nothing. Instances' silence clocks skip the gap, every connected instance
    /// is asked for INFO at once, and the node acts on nothing until [`Self::reread_done`].
    /// Peers keep the moment they were really last heard: their reports from before the stall
    /// are no fresher for it (an ODOWN counted a crashed peer's old report as fresh when they
    /// were shifted by the gap, simulator seed 8307044); only their going down waits for the
    /// re-read to have listened (see [`Self::on_peer_expired`]).
    fn start_reread(&mut self, now: Instant, gap: Duration) {
        for group in self.groups.values_mut() {
            for instance in group.instances.values_mut() {
                instance.on_stall(now, gap);
            }
        }
        if self.node.rereading_since.is_none() {
            self.node.emit(Event {
                kind: EventKind::Stall,
                subject: None,
                detail: Detail::Stall { ms: u64::try_from(gap.as_millis()).unwrap_or(u64::MAX) },
            });
        }
        self.node.rereading_since = Some(now);
        self.timers.set(Timer::RereadEnd, Some(now + self.node.settings.stall_gap()));
        self.touched.extend(self.groups.keys().copied());
    }

    /// Whether the re-read started at `since` is complete: the peers had a contact window to
    /// be heard, and every connected instance answered an INFO asked after the stall (or
    /// [`REREAD_LIMIT`] passed).
    fn reread_done(&self, since: Instant, now: Instant) -> bool {
        let listened = now >= since + self.node.settings.stall_gap();
        let informed = now >= since + REREAD_LIMIT
            || self.groups.values().all(|g| g.instances.values().all(|i| i.informed_since(since)));
        listened && informed
    }

    /// Ends the re-read if it is complete (checked after every input while it lasts).
    fn poll_reread(&mut self, now: Instant) {
        let Some(since) = self.node.rereading_since else { return };
        if self.reread_done(since, now) {
            self.node.rereading_since = None;
            self.timers.set(Timer::RereadEnd, None);
            let ms = u64::try_from(now.saturating_since(since).as_millis()).unwrap_or(u64::MAX);
            self.node.emit(Event {
                kind: EventKind::StallCleared,
                subject: None,
                detail: Detail::Reread { ms },
            });
            self.touched.extend(self.groups.keys().copied());
        } else if now >= since + self.node.settings.stall_gap() {
            self.timers.set(Timer::RereadEnd, Some(since + REREAD_LIMIT));
        }
    }

    fn run_timers(&mut self, now: Instant) {
        while let Some(timer) = self.timers.pop_due(now) {
            match timer {
                Timer::Group(index) => {
                    self.touched.insert(index);
                }
                Timer::Heartbeat => {
                    let message = Arc::new(
                        self.node.message(Body::Heartbeat { version: self.gossip_version }),
                    );
                    for to in self.peers.ids() {
                        self.node.out.push(Output::SendPeer { to, message: Arc::clone(&message) });
                    }
                    self.timers.set(Timer::Heartbeat, Some(now + self.node.settings.heartbeat));
                }
                Timer::TiltEnd => {
                    self.node.tilt_since = None;
                    self.node.emit(Event {
                        kind: EventKind::TiltCleared,
                        subject: None,
                        detail: Detail::Tilt { entered: false },
                    });
                    self.touched.extend(self.groups.keys().copied());
                }
                Timer::RereadEnd => {}
                Timer::LazyPersist => {
                    if self.node.lazy_dirty {
                        self.node.out.mark_urgent();
                    }
                }
                Timer::PeerExpiry(slot) => self.on_peer_expired(now, slot),
            }
        }
    }

    fn on_peer_expired(&mut self, now: Instant, slot: PeerId) {
        if let Some(since) = self.node.rereading_since {
            let listened = since + self.node.settings.stall_gap();
            if now < listened {
                self.timers.set(Timer::PeerExpiry(slot), Some(listened));
                return;
            }
        }
        if self.peers.get(slot).is_none_or(|p| p.is_fresh(now, self.peers.timeout())) {
            return;
        }
        let Some(peer) = self.peers.get_mut(slot) else { return };
        peer.down = true;
        let (Some(id), Some(addr)) = (peer.node_id, peer.client_addr.clone()) else { return };
        for group in self.groups.values() {
            self.node.emit_about(EventKind::Sdown, group.peer_subject(id, &addr));
        }
        self.touched.extend(self.groups.keys().copied());
    }

    /// Ends an input: evaluates every touched group, reschedules it, sends what changed in this
    /// node's reports, and places the persist the input owes.
    fn finish(&mut self, now: Instant) {
        let mut changed = Vec::new();
        while let Some(index) = self.touched.pop_first() {
            let Some(group) = self.groups.get_mut(&index) else { continue };
            group.evaluate(&mut self.node, &self.peers, now);
            self.timers.set(Timer::Group(index), group.next_deadline(&self.node, now));
            self.stale_views.insert(index);
            let headline = Headline::of(group);
            if self.headlines.get(&index) != Some(&headline) {
                self.headlines.insert(index, headline);
                self.view_urgent = true;
            }
            let report = group.report(&self.node);
            if self.sent_reports.get(group.name()) != Some(&report) {
                self.sent_reports.insert(report.name.clone(), report.clone());
                changed.push(report);
            }
        }
        if !changed.is_empty() {
            let base = self.gossip_version;
            self.gossip_version.seq += 1;
            let message = Arc::new(self.node.message(Body::State {
                base: Some(base),
                version: self.gossip_version,
                masters: changed,
            }));
            for to in self.peers.ids() {
                self.node.out.push(Output::SendPeer { to, message: Arc::clone(&message) });
            }
        }
        if self.node.out.take_emitted() {
            self.view_urgent = true;
        }
        let node_headline =
            (self.node.current_epoch, self.node.in_tilt(), self.peers.fresh_count(now));
        if node_headline != self.node_headline {
            self.node_headline = node_headline;
            self.view_urgent = true;
        }
        if self.node.lazy_dirty && self.timers.deadline(Timer::LazyPersist).is_none() {
            self.timers.set(Timer::LazyPersist, Some(now + LAZY_PERSIST_DELAY));
        }
        if self.node.out.owes_persist() {
            self.node.lazy_dirty = false;
            self.timers.set(Timer::LazyPersist, None);
            let state = self.durable();
            self.node.out.seal(Output::Persist(Box::new(state)));
        }
    }

    fn on_reply(
        &mut self,
        now: Instant,
        link: crate::engine::ids::LinkId,
        request: crate::engine::ids::RequestId,
        reply: Reply,
    ) {
        let Some((index, addr)) = self.node.links.get(&link).cloned() else { return };
        let Some(group) = self.groups.get_mut(&index) else { return };
        let Some(instance) = group.instances.get_mut(&addr) else { return };
        let Some(digest) = instance.take_reply(link, request, reply, now, &group.timing) else {
            return;
        };
        if group.routine_reply(&addr, &digest) {
            // Only reply times changed (a refresh shows them) and the next PING is due: the
            // group's timer may fire earlier than needed, never later.
            let period = group.ping_period(&addr, now);
            let next_ping = group.instances.get(&addr).and_then(|i| i.ping_due_at(period));
            let current = self.timers.deadline(Timer::Group(index));
            let at = [next_ping, current].into_iter().flatten().min();
            self.timers.set(Timer::Group(index), at);
            self.stale_views.insert(index);
            return;
        }
        group.on_reply(&mut self.node, &addr, digest, now);
        self.touched.insert(index);
    }

    fn send_full_state(&mut self, to: Vec<PeerId>, now: Instant) {
        let _ = now;
        let message = Arc::new(self.node.message(Body::State {
            base: None,
            version: self.gossip_version,
            masters: self.sent_reports.values().cloned().collect(),
        }));
        for to in to {
            self.node.out.push(Output::SendPeer { to, message: Arc::clone(&message) });
        }
    }

    fn on_peer_message(&mut self, now: Instant, message: PeerMessage) {
        let PeerMessage { from, body } = message;
        let Some(slot) = self.peers.slot_of(&from.announce) else {
            self.stats.peer_messages_unknown_sender += 1;
            return;
        };
        if from.node_id == self.node.id {
            self.stats.peer_messages_own_id += 1;
            return;
        }
        self.stats.peer_messages += 1;
        let Some(peer) = self.peers.get_mut(slot) else { return };
        let replaced = peer.node_id.is_some_and(|id| id != from.node_id);
        if replaced {
            tracing::warn!(peer = %peer.addr, old = ?peer.node_id, new = %from.node_id, "peer replaced: forgetting what it said");
            peer.forget();
        }
        let first_contact = replaced || peer.node_id.is_none();
        let back_up = peer.down && !first_contact;
        peer.node_id = Some(from.node_id);
        peer.client_addr = Some(from.client_addr.clone());
        let known = KnownPeer { node_id: from.node_id, client_addr: from.client_addr.clone() };
        if peer.known.as_ref() != Some(&known) {
            // Only for `SENTINEL SENTINELS` after a restart: no rule depends on it.
            peer.known = Some(known);
            self.node.lazy_dirty = true;
        }
        peer.current_epoch = from.current_epoch;
        peer.last_heard_at = Some(now);
        peer.down = false;
        if first_contact || back_up {
            // What it said before it went quiet may be out of date: wait for it to announce its
            // current version (see `Peer::in_sync`).
            peer.announced = None;
        }
        self.timers.set(Timer::PeerExpiry(slot), self.peers.expiry(slot));
        if first_contact || back_up {
            let kind = if first_contact { EventKind::Peer } else { EventKind::SdownCleared };
            for group in self.groups.values() {
                self.node.emit_about(kind, group.peer_subject(from.node_id, &from.client_addr));
            }
            self.touched.extend(self.groups.keys().copied());
        }
        self.node.observe_epoch(from.current_epoch, None);
        self.learn_vote_floor(now, slot, from.current_epoch);
        match body {
            Body::Heartbeat { version } => self.on_heartbeat(now, slot, version),
            Body::State { base, version, masters } => {
                self.on_state(now, slot, base, version, masters)
            }
            Body::SyncRequest => self.send_full_state(vec![slot], now),
            Body::VoteRequest { master, epoch, config_epoch, manual } => {
                let request =
                    election::Request { candidate: from.node_id, epoch, config_epoch, manual };
                self.on_vote_request(now, slot, &master, request);
            }
            Body::VoteReply { master, epoch, voted_for } => {
                // A refusal without a vote (the peer does not see the master down yet) is not
                // final: vote requests are repeated, and the peer may grant one later.
                if let (Some(candidate), Some(&index)) = (voted_for, self.by_name.get(&master)) {
                    if let Some(group) = self.groups.get_mut(&index) {
                        group.record_vote(slot, epoch, candidate, self.node.id);
                    }
                    self.touched.insert(index);
                }
            }
        }
    }

    /// A node that started without state abstains from voting until it has heard the epochs of
    /// enough peers that any majority it may have voted in before includes one of them, and
    /// the floor is the highest epoch heard.
    ///
    /// Hearing every peer is always enough: the candidate the lost state voted for is among
    /// them, at that epoch or later. Hearing fewer (voters minus a majority, plus one) covers the
    /// elections that had ended, but with five voters or more an election still collecting votes
    /// could be completed later by a voter heard at a lower epoch (the lost vote went to X, X's
    /// other supporter Y had not voted yet, this node hears Y but not X, and grants the same epoch
    /// to someone else). So that shortcut counts only peers heard after
    /// [`Self::floor_quarantine`]: by then every election in which the lost state could have voted
    /// has been won or given up. With three voters the two coincide: both peers must be heard.
    fn learn_vote_floor(&mut self, now: Instant, slot: PeerId, epoch: u64) {
        if !self.node.awaiting_vote_floor {
            return;
        }
        let heard = self.floor_heard.entry(slot).or_insert((0, now));
        *heard = (heard.0.max(epoch), now);
        let needed = self.node.settings.voters() - self.node.settings.majority() + 1;
        let listening = now >= self.floor_listen_from;
        let heard_since = self.floor_heard.values().filter(|(_, at)| *at >= self.floor_listen_from);
        if self.floor_heard.len() >= self.peers.len()
            || (listening && heard_since.count() >= needed)
        {
            let floor = self.floor_heard.values().map(|(e, _)| *e).max().unwrap_or(0);
            self.node.vote_floor = floor.max(self.node.current_epoch);
            self.node.awaiting_vote_floor = false;
            self.floor_heard.clear();
            self.node.out.mark_urgent();
            tracing::info!(floor = self.node.vote_floor, "vote floor learned from peers");
        }
    }

    /// How long a node that lost its state waits before it counts peers' epochs for its vote
    /// floor: the longest a candidate collects votes in one epoch (a vote this node granted
    /// before it lost its state was granted before it started), plus the peer timeout for
    /// replies still in flight.
    fn floor_quarantine(&self) -> Duration {
        let election =
            self.groups.values().map(|g| g.timing.election_timeout).max().unwrap_or_default();
        election + self.node.settings.peer_timeout
    }

    fn request_sync(&mut self, now: Instant, slot: PeerId) {
        let heartbeat = self.node.settings.heartbeat;
        let Some(peer) = self.peers.get_mut(slot) else { return };
        if peer.last_sync_request_at.is_some_and(|at| now.saturating_since(at) < heartbeat) {
            return;
        }
        peer.last_sync_request_at = Some(now);
        let message = Arc::new(self.node.message(Body::SyncRequest));
        self.node.out.push(Output::SendPeer { to: slot, message });
    }

    fn on_heartbeat(&mut self, now: Instant, slot: PeerId, version: StateVersion) {
        if let Some(peer) = self.peers.get_mut(slot) {
            peer.announced = Some(version);
        }
        if self.peers.get(slot).is_some_and(|p| p.version != Some(version)) {
            self.request_sync(now, slot);
        }
    }

    fn on_state(
        &mut self,
        now: Instant,
        slot: PeerId,
        base: Option<StateVersion>,
        version: StateVersion,
        masters: Vec<MasterReport>,
    ) {
        let Some(peer) = self.peers.get_mut(slot) else { return };
        let newer = |a: StateVersion, b: Option<StateVersion>| {
            b.is_none_or(|b| a.incarnation != b.incarnation || a.seq > b.seq)
        };
        if newer(version, peer.announced) {
            peer.announced = Some(version);
        }
        let held = peer.version;
        let outdated =
            held.is_some_and(|v| v.incarnation == version.incarnation && v.seq >= version.seq);
        if outdated {
            return;
        }
        match base {
            None => {
                peer.reports = masters.iter().map(|r| (r.name.clone(), r.clone())).collect();
            }
            Some(base) if held == Some(base) => {
                for report in &masters {
                    peer.reports.insert(report.name.clone(), report.clone());
                }
            }
            Some(_) => {
                self.stats.peer_state_gaps += 1;
                self.request_sync(now, slot);
                return;
            }
        }
        peer.version = Some(version);
        // A full state may omit masters the peer no longer reports; re-evaluate them all.
        let indices: Vec<usize> = if base.is_none() {
            self.groups.keys().copied().collect()
        } else {
            masters.iter().filter_map(|r| self.by_name.get(&r.name).copied()).collect()
        };
        for report in masters {
            self.on_peer_report(now, slot, &report);
        }
        self.touched.extend(indices);
    }

    fn on_peer_report(&mut self, now: Instant, slot: PeerId, report: &MasterReport) {
        let Some(&index) = self.by_name.get(&report.name) else { return };
        let Some(group) = self.groups.get_mut(&index) else { return };
        group.note_peer_vote(slot, report.voted_epoch, now);
        group.note_peer_failover(slot, report.failover.map(|f| f.epoch), now);
        if report.maintenance > group.maintenance {
            group.set_maintenance(&mut self.node, report.maintenance);
        }
        if report.config_epoch > group.config_epoch {
            let Some(peer) = self.peers.get(slot) else { return };
            let (Some(id), Some(client_addr)) = (peer.node_id, peer.client_addr.clone()) else {
                return;
            };
            let from = group.peer_subject(id, &client_addr);
            tracing::info!(master = %report.name, addr = %report.addr, epoch = report.config_epoch, "adopting newer configuration");
            group.adopt(&mut self.node, from, &report.addr, report.config_epoch, now);
        }
        self.touched.insert(index);
    }

    fn on_vote_request(
        &mut self,
        now: Instant,
        slot: PeerId,
        master: &str,
        request: election::Request,
    ) {
        self.node.observe_epoch(request.epoch, Some(master));
        let Some(&index) = self.by_name.get(master) else { return };
        let voted_for = self.decide_vote(now, index, request, Voter::Peer(slot));
        let message = Arc::new(self.node.message(Body::VoteReply {
            master: master.to_owned(),
            epoch: request.epoch,
            voted_for,
        }));
        self.node.out.push(Output::SendPeer { to: slot, message });
    }

    /// Decides a vote request from a peer or a listed Sentinel for the group at `index`, against
    /// the one ballot both kinds of voters share, and returns whom this node voted for in the
    /// request's epoch. A granted vote is an urgent durable change: it is persisted before any
    /// answer queued after it.
    fn decide_vote(
        &mut self,
        now: Instant,
        index: usize,
        request: election::Request,
        leader: Voter,
    ) -> Option<NodeId> {
        let group = self.groups.get_mut(&index)?;
        let facts = election::VoterFacts {
            config_epoch: group.config_epoch,
            sees_master_down: group.master_sdown(),
            tilt: self.node.in_tilt(),
            awaiting_vote_floor: self.node.awaiting_vote_floor,
            leader_active: group.leader_active(&self.peers, now),
            paused: group.maintenance.paused,
            vote_floor: self.node.vote_floor,
        };
        match election::decide(&group.ballot, &request, &facts) {
            Decision::Grant => {
                // A newer epoch's candidate has this node's vote: its own, older attempt yields.
                group.yield_to_newer_epoch(&mut self.node, request.epoch, now);
                group.ballot =
                    election::Ballot { epoch: request.epoch, candidate: Some(request.candidate) };
                self.node.out.mark_urgent();
                self.node.emit(Event {
                    kind: EventKind::VoteForLeader,
                    subject: None,
                    detail: Detail::Vote {
                        leader: request.candidate,
                        epoch: request.epoch,
                        master: group.name().to_owned(),
                    },
                });
                // Leave the failover to the candidate, but watch it.
                let wait = group.timing.failover_timeout;
                group.next_attempt_at = group.next_attempt_at.max(now + wait);
                group.attempt_at = None;
                group.unsettled_until = group.unsettled_until.max(now + wait);
                group.leader_watch = Some(LeaderWatch {
                    leader,
                    epoch: request.epoch,
                    voted_at: now,
                    seen_running: false,
                });
            }
            Decision::Repeat => {}
            Decision::Refuse(reason) => {
                tracing::debug!(
                    master = group.name(),
                    epoch = request.epoch,
                    ?reason,
                    "vote refused"
                );
            }
        }
        self.touched.insert(index);
        (group.ballot.epoch == request.epoch).then_some(group.ballot.candidate).flatten()
    }

    /// `SENTINEL IS-MASTER-DOWN-BY-ADDR` with a run id: a vote request from a Sentinel. The master
    /// is looked up by address, as Sentinel does. Only a master with listed Sentinels votes
    /// through it, only for one of them, and the answer carries this node's ballot as Sentinel's
    /// does (`leader`, `leader_epoch`), whether it was granted now or earlier.
    fn on_sentinel_vote(
        &mut self,
        now: Instant,
        master_addr: &Addr,
        epoch: u64,
        candidate: NodeId,
    ) -> DownAnswer {
        let found = self.groups.values().find(|g| g.find(master_addr) == Some(&g.master));
        let Some(group) = found else {
            return DownAnswer { master_down: false, leader: None, leader_epoch: 0 };
        };
        let index = group.index;
        let master_down = !self.node.in_tilt() && group.master_sdown();
        let listed = group.sentinels.by_run_id(candidate).is_some();
        if group.sentinels.is_empty() {
            return DownAnswer { master_down, leader: None, leader_epoch: 0 };
        }
        if listed {
            let name = group.name().to_owned();
            self.node.observe_epoch(epoch, Some(&name));
            let config_epoch = group.config_epoch;
            let request = election::Request { candidate, epoch, config_epoch, manual: false };
            self.decide_vote(now, index, request, Voter::Sentinel(candidate));
        } else {
            self.stats.sentinel_votes_unlisted += 1;
        }
        let ballot = self.groups.get(&index).map(|g| g.ballot).unwrap_or_default();
        DownAnswer { master_down, leader: ballot.candidate, leader_epoch: ballot.epoch }
    }

    /// A Sentinel hello: given to the group it names if it comes from a listed Sentinel of that
    /// group; this node's own hellos and its peers' are ignored, anyone else's counted.
    fn on_sentinel_hello(&mut self, now: Instant, hello: &Hello) {
        let Some(&index) = self.by_name.get(&hello.master) else { return };
        if hello.run_id == self.node.id {
            return;
        }
        if self.peers.iter().any(|(_, p)| p.node_id == Some(hello.run_id)) {
            return;
        }
        let Some(group) = self.groups.get_mut(&index) else { return };
        match group.on_sentinel_hello(&mut self.node, hello, now) {
            HelloOutcome::Listed => {
                self.stats.sentinel_hellos += 1;
                self.touched.insert(index);
            }
            HelloOutcome::Unlisted => self.stats.sentinel_hellos_unlisted += 1,
        }
    }

    fn on_admin(&mut self, now: Instant, ticket: Ticket, command: AdminCommand) {
        // Sentinels' messages arrive every couple of seconds per Sentinel and master; what they
        // change that readers must see (a new master, an epoch) marks the view urgent anyway. A
        // read (INFO-CACHE) changes nothing.
        let from_operator = !matches!(
            command,
            AdminCommand::SentinelHello(_)
                | AdminCommand::SentinelVote { .. }
                | AdminCommand::InfoCache { .. }
        );
        let answer = match command {
            AdminCommand::Failover { master } => self.manual_failover(now, &master),
            AdminCommand::Monitor { name, addr, quorum } => self.monitor(now, name, addr, quorum),
            AdminCommand::Remove { name } => self.remove(now, &name),
            AdminCommand::Set { master, option } => self.set(&master, &option),
            AdminCommand::Reset { pattern } => self.reset(&pattern),
            AdminCommand::FlushConfig => {
                self.node.out.mark_urgent();
                AdminAnswer::Ok
            }
            AdminCommand::Maintenance { master, paused } => {
                self.maintenance(now, master.as_deref(), paused)
            }
            AdminCommand::SentinelVote { master_addr, epoch, candidate } => {
                AdminAnswer::Down(self.on_sentinel_vote(now, &master_addr, epoch, candidate))
            }
            AdminCommand::SentinelHello(hello) => {
                self.on_sentinel_hello(now, &hello);
                AdminAnswer::Ok
            }
            AdminCommand::InfoCache { masters } => {
                AdminAnswer::InfoCache(self.info_cache(&masters, now))
            }
        };
        self.node.out.push(Output::Answer { ticket, answer });
        // Whoever changed something expects to read it back at once.
        self.view_urgent |= from_operator;
    }

    /// `SENTINEL INFO-CACHE`: the named groups' last INFO texts, each group once, in the order
    /// first named. A set of the groups seen keeps the engine's work for a command with many
    /// repeated names at n log n: the engine serves every client and every instance.
    fn info_cache(&self, names: &[String], now: Instant) -> Vec<CachedInfo> {
        let mut seen = BTreeSet::new();
        names
            .iter()
            .filter_map(|name| self.by_name.get(name.as_str()))
            .filter(|&&index| seen.insert(index))
            .filter_map(|index| self.groups.get(index))
            .map(|group| group.info_cache(now))
            .collect()
    }

    fn manual_failover(&mut self, now: Instant, master: &str) -> AdminAnswer {
        let Some(group) = self.by_name.get(master).and_then(|i| self.groups.get_mut(i)) else {
            return AdminAnswer::Refused(AdminRefusal::NoSuchMaster);
        };
        let index = group.index;
        if group.failover.is_some() {
            return AdminAnswer::Refused(AdminRefusal::InProgress);
        }
        if group.select_replica(now).is_none() {
            return AdminAnswer::Refused(AdminRefusal::NoGoodReplica);
        }
        let authorisation = group.authorisation(&self.node, &self.peers, now);
        if let Some(why) = authorisation.blocked {
            return AdminAnswer::Refused(AdminRefusal::NoQuorum(why));
        }
        group.start_failover(&mut self.node, &self.peers, now, true);
        self.touched.insert(index);
        AdminAnswer::Ok
    }

    /// Pauses or resumes automatic failovers of `master` (or of every master): a version higher
    /// than any this node has heard, so that every node adopts it.
    fn maintenance(&mut self, now: Instant, master: Option<&str>, paused: bool) -> AdminAnswer {
        let targets: Vec<usize> = match master {
            Some(name) => match self.by_name.get(name) {
                Some(&index) => vec![index],
                None => return AdminAnswer::Refused(AdminRefusal::NoSuchMaster),
            },
            None => self.groups.keys().copied().collect(),
        };
        for index in targets {
            let Some(group) = self.groups.get_mut(&index) else { continue };
            let heard = self
                .peers
                .fresh_reports(group.name(), now)
                .map(|(_, _, r)| r.maintenance.version)
                .max()
                .unwrap_or(0);
            let version = group.maintenance.version.max(heard) + 1;
            group.set_maintenance(&mut self.node, Maintenance { version, paused });
            self.touched.insert(index);
        }
        AdminAnswer::Ok
    }

    fn monitor(&mut self, now: Instant, name: String, addr: Addr, quorum: u32) -> AdminAnswer {
        let refuse = AdminAnswer::Refused;
        if self.by_name.contains_key(&name) {
            return refuse(AdminRefusal::DuplicateName);
        }
        if quorum == 0 {
            return refuse(AdminRefusal::QuorumZero);
        }
        let voters = self.node.settings.voters();
        if usize::try_from(quorum).unwrap_or(usize::MAX) > voters {
            return refuse(AdminRefusal::QuorumAboveVoters { voters });
        }
        if let Some(other) = self.groups.values().find(|g| g.instances.contains_key(&addr)) {
            return refuse(AdminRefusal::AlreadyMonitored { addr, by: other.name().to_owned() });
        }
        let index = self.next_group;
        self.next_group += 1;
        let mut group = Group::new(index, MasterSettings::new(&name, addr, quorum), None, now);
        group.monitored_quorum = Some(quorum);
        self.node.out.mark_urgent();
        self.node.emit(Event {
            kind: EventKind::Monitor,
            subject: Some(group.master_subject()),
            detail: Detail::MonitorQuorum { quorum },
        });
        self.removed.remove(&name);
        self.by_name.insert(name, index);
        self.groups.insert(index, group);
        self.touched.insert(index);
        AdminAnswer::Ok
    }

    fn remove(&mut self, now: Instant, name: &str) -> AdminAnswer {
        let Some(index) = self.by_name.remove(name) else {
            return AdminAnswer::Refused(AdminRefusal::NoSuchMaster);
        };
        let Some(mut group) = self.groups.remove(&index) else {
            return AdminAnswer::Refused(AdminRefusal::NoSuchMaster);
        };
        group.close_links(&mut self.node, now, |_| true);
        if group.monitored_quorum.is_none() {
            self.removed.insert(name.to_owned(), group.settings.addr.clone());
        }
        self.node.out.mark_urgent();
        self.node.emit_about(EventKind::Unmonitor, group.master_subject());
        self.timers.set(Timer::Group(index), None);
        self.stale_views.insert(index);
        self.sent_reports.remove(name);
        // Deltas cannot say "gone": send everyone the complete state without it.
        self.gossip_version.seq += 1;
        self.send_full_state(self.peers.ids().collect(), now);
        self.node.out.mark_urgent();
        AdminAnswer::Ok
    }

    fn set(&mut self, master: &str, option: &SetOption) -> AdminAnswer {
        let Some(group) = self.by_name.get(master).and_then(|i| self.groups.get_mut(i)) else {
            return AdminAnswer::Refused(AdminRefusal::NoSuchMaster);
        };
        if let SetOption::Quorum(quorum) = option {
            let voters = group.voters(&self.node);
            if usize::try_from(*quorum).unwrap_or(usize::MAX) > voters {
                return AdminAnswer::Refused(AdminRefusal::QuorumAboveVoters { voters });
            }
        }
        if let SetOption::DownAfterRefused(Some(threshold)) = option {
            let down_after = group.settings.down_after;
            if *threshold >= down_after {
                return AdminAnswer::Refused(AdminRefusal::RefusedNotBelowDownAfter { down_after });
            }
        }
        let name = option.name();
        let file_value = match group.changes.get(name) {
            Some(change) => change.file_value.clone(),
            None if group.monitored_quorum.is_some() => None,
            None => SetOption::current(name, &group.settings),
        };
        group.changes.insert(name.to_owned(), SettingChange { file_value, value: option.value() });
        option.apply(&mut group.settings);
        group.timing = crate::engine::timing::MasterTiming::of(&group.settings);
        if matches!(option, SetOption::AuthPass(_) | SetOption::AuthUser(_)) {
            // New credentials take effect on new connections, as in Sentinel.
            let now = self.last_now;
            group.close_links(&mut self.node, now, |_| true);
        }
        let index = group.index;
        self.node.out.mark_urgent();
        self.node.emit(Event {
            kind: EventKind::Set,
            subject: Some(group.master_subject()),
            detail: Detail::Option { name: name.to_owned(), value: option.shown_value() },
        });
        self.touched.insert(index);
        AdminAnswer::Ok
    }

    /// `SENTINEL RESET pattern`. The pattern comes from any client: its length is capped and the
    /// matcher is linear per name, so this is bounded work for any input.
    fn reset(&mut self, pattern: &str) -> AdminAnswer {
        if let Err(too_long) = glob::check(pattern.as_bytes()) {
            return AdminAnswer::Refused(AdminRefusal::PatternTooLong(too_long));
        }
        let now = self.last_now;
        let mut count = 0;
        let matching = |g: &&mut Group| glob::matches(pattern.as_bytes(), g.name().as_bytes());
        for group in self.groups.values_mut().filter(matching) {
            group.reset(&mut self.node, now);
            self.node.emit_about(EventKind::ResetMaster, group.master_subject());
            self.touched.insert(group.index);
            count += 1;
        }
        AdminAnswer::Count(count)
    }
}

/// The parts of a master's view that readers must see as soon as they change.
#[derive(Debug, PartialEq, Eq)]
struct Headline {
    master: Addr,
    config_epoch: u64,
    sdown: bool,
    odown: bool,
    failover: Option<&'static str>,
    instances: usize,
}

impl Headline {
    fn of(group: &Group) -> Self {
        Self {
            master: group.master.clone(),
            config_epoch: group.config_epoch,
            sdown: group.master_sdown(),
            odown: group.odown_since.is_some(),
            failover: group.failover.as_ref().map(crate::engine::failover::Failover::state_name),
            instances: group.instances.len(),
        }
    }
}
