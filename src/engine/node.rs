//! Node-wide state shared by every master group: identity, epochs, TILT, the RNG, id counters,
//! and the outbox that orders outputs behind persistence.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::engine::addr::Addr;
use crate::engine::event::{Detail, Event, EventKind, Subject};
use crate::engine::gossip::{Body, PeerMessage, Sender};
use crate::engine::ids::{LinkId, NodeId, RequestId};
use crate::engine::io::Output;
use crate::engine::settings::NodeSettings;
use crate::engine::time::Instant;

/// Outputs waiting to be polled, with the persist-before-send rule built in.
///
/// When durable state changes "urgently" (an epoch, a vote, a master's address), the next output
/// pushed after the change is preceded by a [`Output::Persist`] slot. The slot is filled when the
/// input has been fully handled, with the state as it is then: that state includes the change and
/// anything later, and durable state only ever moves forward, so persisting it covers every output
/// that follows. One input therefore costs at most one write.
#[derive(Debug, Default)]
pub struct Outbox {
    queue: VecDeque<Output>,
    /// An urgent change happened and no persist slot covers it yet.
    urgent: bool,
    /// Where in `queue` the persist belongs, once an output has followed an urgent change.
    slot: Option<usize>,
    /// An event was queued since [`Self::take_emitted`] last ran.
    emitted: bool,
}

impl Outbox {
    /// Queues an output, after a persist slot if an urgent change is not yet covered.
    pub fn push(&mut self, output: Output) {
        if self.urgent && self.slot.is_none() {
            self.slot = Some(self.queue.len());
        }
        self.emitted |= matches!(output, Output::Emit(_));
        self.queue.push_back(output);
    }

    /// Records an urgent durable change.
    pub fn mark_urgent(&mut self) {
        self.urgent = true;
    }

    /// Whether a persist is owed (a slot placed, or an urgent change not yet covered).
    #[must_use]
    pub fn owes_persist(&self) -> bool {
        self.urgent
    }

    /// Places `output`, which must be a [`Output::Persist`] of the current state, where the
    /// first urgent change requires it (or last). Called at the end of an input if one is owed.
    pub fn seal(&mut self, output: Output) {
        debug_assert!(matches!(output, Output::Persist(_)));
        let index = self.slot.take().unwrap_or(self.queue.len());
        self.queue.insert(index, output);
        self.urgent = false;
    }

    /// Whether an event was queued since the last call: readers who saw the event must find
    /// the state that caused it in the view.
    pub fn take_emitted(&mut self) -> bool {
        std::mem::take(&mut self.emitted)
    }

    /// Takes the next output.
    pub fn pop(&mut self) -> Option<Output> {
        debug_assert!(self.slot.is_none(), "outputs polled before the persist slot was sealed");
        self.queue.pop_front()
    }

    /// Whether nothing is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// State that belongs to the node rather than to one master.
#[derive(Debug)]
pub struct Node {
    /// This node's id.
    pub id: NodeId,
    /// Membership and node-wide timings.
    pub settings: NodeSettings,
    /// The highest epoch seen or started.
    pub current_epoch: u64,
    /// Votes are only granted above this epoch.
    pub vote_floor: u64,
    /// Whether the vote floor still has to be learned from peers.
    pub awaiting_vote_floor: bool,
    /// Since when the node is in TILT, if it is.
    pub tilt_since: Option<Instant>,
    /// Since when the node re-reads the world after a stall, if it does (see
    /// [`NodeSettings::stall_gap`]): until it has fresh INFO and has listened to its peers,
    /// it acts on nothing.
    pub rereading_since: Option<Instant>,
    /// The seeded RNG: the engine's only source of randomness.
    pub rng: ChaCha8Rng,
    /// Outputs waiting to be polled.
    pub out: Outbox,
    next_link: u64,
    next_request: u64,
    /// Lazily persisted state changed (written within a second, or with the next urgent write).
    pub lazy_dirty: bool,
    /// Which group and instance each open link or connection attempt belongs to.
    pub links: BTreeMap<LinkId, (usize, Addr)>,
}

impl Node {
    /// A node with the given identity and restored epochs.
    #[must_use]
    pub fn new(id: NodeId, settings: NodeSettings, rng: ChaCha8Rng) -> Self {
        Self {
            id,
            settings,
            current_epoch: 0,
            vote_floor: 0,
            awaiting_vote_floor: false,
            tilt_since: None,
            rereading_since: None,
            rng,
            out: Outbox::default(),
            next_link: 0,
            next_request: 0,
            lazy_dirty: false,
            links: BTreeMap::new(),
        }
    }

    /// A message from this node to its peers.
    #[must_use]
    pub fn message(&self, body: Body) -> PeerMessage {
        PeerMessage {
            from: Sender {
                node_id: self.id,
                announce: self.settings.announce.clone(),
                client_addr: self.settings.client_addr.clone(),
                current_epoch: self.current_epoch,
            },
            body,
        }
    }

    /// Peers heard within the contact window: the voters besides itself this node can count on
    /// now (for [`crate::engine::election::Authorisation`]).
    #[must_use]
    pub fn peers_in_contact(&self, peers: &crate::engine::peers::Peers, now: Instant) -> usize {
        peers.heard_within(now, self.settings.contact_window())
    }

    /// Whether this node hears a majority of the nodes, itself included (see
    /// [`Self::peers_in_contact`]).
    #[must_use]
    pub fn hears_majority(&self, peers: &crate::engine::peers::Peers, now: Instant) -> bool {
        self.peers_in_contact(peers, now) + 1 >= self.settings.majority()
    }

    /// Whether the node is in TILT.
    #[must_use]
    pub const fn in_tilt(&self) -> bool {
        self.tilt_since.is_some()
    }

    /// Whether the node may act (judge SDOWN and ODOWN, start or advance a failover, correct or
    /// fence instances): not in TILT, and not re-reading the world after a stall.
    #[must_use]
    pub const fn may_act(&self) -> bool {
        self.tilt_since.is_none() && self.rereading_since.is_none()
    }

    /// A fresh link id.
    pub fn link_id(&mut self) -> LinkId {
        self.next_link += 1;
        LinkId(self.next_link)
    }

    /// A fresh request id.
    pub fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// A uniformly random duration in `[0, max)`.
    pub fn jitter(&mut self, max: Duration) -> Duration {
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if max_ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(self.rng.random_range(0..max_ms))
    }

    /// Publishes an event.
    pub fn emit(&mut self, event: Event) {
        self.out.push(Output::Emit(event));
    }

    /// Publishes an event about `subject` with no detail.
    pub fn emit_about(&mut self, kind: EventKind, subject: Subject) {
        self.emit(Event::about(kind, subject));
    }

    /// Raises the current epoch to `epoch` if it is higher (`+new-epoch`), as a durable change;
    /// `master` is the master whose failover or vote raised it, if one did.
    pub fn observe_epoch(&mut self, epoch: u64, master: Option<&str>) {
        if epoch > self.current_epoch {
            self.current_epoch = epoch;
            self.out.mark_urgent();
            let master = master.map(str::to_owned);
            self.emit(Event {
                kind: EventKind::NewEpoch,
                subject: None,
                detail: Detail::Epoch { epoch, master },
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::durable::DurableState;
    use std::collections::BTreeMap;

    fn persist() -> Output {
        Output::Persist(Box::new(DurableState {
            node_id: NodeId::from_bytes([1; 20]),
            current_epoch: 7,
            vote_floor: 0,
            awaiting_vote_floor: false,
            masters: BTreeMap::new(),
            removed: BTreeMap::new(),
            known_peers: BTreeMap::new(),
        }))
    }

    #[test]
    fn persist_lands_before_the_first_output_after_an_urgent_change() {
        let mut out = Outbox::default();
        out.push(Output::Disconnect { link: LinkId(1) });
        out.mark_urgent();
        out.push(Output::Disconnect { link: LinkId(2) });
        out.push(Output::Disconnect { link: LinkId(3) });
        out.seal(persist());
        let order: Vec<Output> = std::iter::from_fn(|| out.pop()).collect();
        assert_eq!(
            order,
            vec![
                Output::Disconnect { link: LinkId(1) },
                persist(),
                Output::Disconnect { link: LinkId(2) },
                Output::Disconnect { link: LinkId(3) },
            ]
        );
        assert!(!out.owes_persist());
    }

    #[test]
    fn an_urgent_change_with_nothing_after_it_is_persisted_at_the_end() {
        let mut out = Outbox::default();
        out.push(Output::Disconnect { link: LinkId(1) });
        out.mark_urgent();
        assert!(out.owes_persist());
        out.seal(persist());
        assert_eq!(out.pop(), Some(Output::Disconnect { link: LinkId(1) }));
        assert_eq!(out.pop(), Some(persist()));
        assert!(out.is_empty());
    }
}
